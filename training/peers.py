"""The strong simple peer of each samples job: what a practitioner tries before a network.

A network that does not beat these on the same split has not earned its keep, so every run of
the sessions, windows, feature-table and text jobs fits one beside it (`train.peer`):

* sequences (`trace` [n, steps, channels]: sessions, npz windows): `MiniRocketClassifier`,
  MiniRocket random convolution features (aeon) -> standardise -> ridge with built-in
  cross-validation of its penalty. Zero-padded steps stay zeros (unequal lengths by padding).
* feature tables (`features` [n, f]): standardised features -> logistic regression.
* text (`text`, raw strings): TF-IDF of words and word pairs -> logistic regression.

Each peer is fitted on the training part's raw inputs only, with balanced class weights (as the
network's class weights), and scores any part as [n, k] class probabilities (MiniRocket's
ridge scores through a softmax / logistic, which keeps its argmax decision). The SNS peers of
the benchmarks (`benchmarks.peers`) use the same `MiniRocketClassifier`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

log = logging.getLogger("beamwatch.train")

RIDGE_ALPHAS = np.logspace(-3, 3, 10)
MINIROCKET_MIN_LENGTH = 9  # MiniRocket's kernels have length 9
PEER_NAMES = {"trace": "minirocket_ridge", "features": "logistic_regression",
              "text": "tfidf_logistic_regression"}


def logistic_model():
    """Standardised features, logistic regression with balanced class weights."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(),
                         LogisticRegression(class_weight="balanced", max_iter=5000))


def tfidf_logistic_model():
    """TF-IDF of words and word pairs (sublinear counts) -> balanced logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
                         LogisticRegression(class_weight="balanced", max_iter=5000, C=10.0))


class MiniRocketClassifier:
    """MiniRocket features (biases fitted on the training series) -> standardise -> ridge.

    `x` is [n, channels, steps] (aeon's layout); `decision_function` gives ridge scores ([n] for
    two classes, [n, k] for more): only their order matters for PR AUC and a threshold.
    """

    def __init__(self, n_kernels: int = 10_000, random_state: int = 0):
        self.n_kernels = int(n_kernels)
        self.random_state = int(random_state)

    def fit(self, x: np.ndarray, y: np.ndarray) -> MiniRocketClassifier:
        from aeon.transformations.collection.convolution_based import MiniRocket
        from sklearn.linear_model import RidgeClassifierCV
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.transform_ = MiniRocket(n_kernels=self.n_kernels, random_state=self.random_state,
                                     n_jobs=1)
        features = self.transform_.fit_transform(np.asarray(x, dtype=np.float32))
        self.head_ = make_pipeline(StandardScaler(),
                                   RidgeClassifierCV(alphas=RIDGE_ALPHAS, class_weight="balanced"))
        self.head_.fit(features, np.asarray(y))
        return self

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        features = self.transform_.transform(np.asarray(x, dtype=np.float32))
        return np.asarray(self.head_.decision_function(features), dtype=np.float64)


@dataclass(frozen=True)
class PeerResult:
    """A fitted peer's class probabilities per part and how long fitting took."""

    name: str
    probabilities: dict[str, np.ndarray]  # part -> [n, k]
    fit_seconds: float


def peer_name(input_names) -> str:
    """The peer for a model's inputs (the first of trace, features, text present)."""
    for key in ("trace", "features", "text"):
        if key in input_names:
            return PEER_NAMES[key]
    raise ValueError(f"no peer for inputs {sorted(input_names)}; expected one of "
                     f"{sorted(PEER_NAMES)}")


def _as_series(trace: np.ndarray) -> np.ndarray:
    """[n, steps, channels] -> aeon's [n, channels, steps], zero-padded to MiniRocket's minimum."""
    x = np.transpose(np.asarray(trace, dtype=np.float32), (0, 2, 1))
    if x.shape[2] < MINIROCKET_MIN_LENGTH:
        x = np.pad(x, ((0, 0), (0, 0), (0, MINIROCKET_MIN_LENGTH - x.shape[2])))
    return np.ascontiguousarray(x)


def _softmax(scores: np.ndarray) -> np.ndarray:
    z = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _ridge_probabilities(scores: np.ndarray) -> np.ndarray:
    """Ridge scores -> probabilities over the classes seen in training (same argmax)."""
    if scores.ndim == 1:  # two classes: one ridge score, > 0 means class 1
        p1 = 1.0 / (1.0 + np.exp(-np.clip(scores, -50, 50)))
        return np.stack([1.0 - p1, p1], axis=1)
    return _softmax(scores)


def _full_probabilities(model, probs: np.ndarray, n_classes: int) -> np.ndarray:
    """sklearn's columns are the classes seen in training; absent classes get probability 0."""
    out = np.zeros((probs.shape[0], n_classes))
    out[:, np.asarray(model.classes_, dtype=np.int64)] = probs
    return out


def fit_peer(inputs: dict[str, np.ndarray], labels: np.ndarray, parts: dict[str, np.ndarray],
             n_classes: int, seed: int) -> PeerResult:
    """Fit the job's peer on `parts["train"]` of the raw `inputs`; probabilities of every other
    part in `parts` ([n, n_classes], argmax is the peer's decision)."""
    name = peer_name(inputs)
    train = parts["train"]
    y = np.asarray(labels)[train]
    if np.unique(y).size < 2:
        raise ValueError(f"peer {name}: the training part holds one class only")
    started = time.perf_counter()
    scored = [p for p in parts if p != "train"]
    if name == "minirocket_ridge":
        x = _as_series(inputs["trace"])
        model = MiniRocketClassifier(random_state=seed).fit(x[train], y)
        probs = {}
        for p in scored:
            seen = _ridge_probabilities(model.decision_function(x[parts[p]]))
            probs[p] = (seen if seen.shape[1] == n_classes
                        else _full_probabilities(model.head_, seen, n_classes))
    else:
        x = inputs["features"] if name == "logistic_regression" else inputs["text"]
        model = logistic_model() if name == "logistic_regression" else tfidf_logistic_model()
        model.fit(x[train], y)
        probs = {p: _full_probabilities(model, model.predict_proba(x[parts[p]]), n_classes)
                 for p in scored}
    seconds = time.perf_counter() - started
    log.info("peer %s fitted on %d training samples in %.1f s", name, train.size, seconds)
    return PeerResult(name, probs, seconds)
