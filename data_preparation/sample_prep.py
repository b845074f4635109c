"""Preparation of the sample contract after the split: fitted on the training part only.

`Preprocessor` scales every numeric input per channel (the last axis) with the training part's
statistics and turns texts into token ids with a `TextVectorization` adapted to the training
texts. All-zero steps of a sequence are padding: they are left out of the fit and stay zero, so
masking models still see them as padding. The fitted state (centres, scales, vocabulary) is
plain JSON, saved in the run folder as `preprocessing.json`.

`rebalance` applies `scaling.imbalance` to the (already transformed) training arrays.
"""

from __future__ import annotations

import math

import numpy as np

KINDS = ("robust", "standard", "minmax", "none")


class ChannelScaler:
    """Per-channel centring and scaling of [n, F] or [n, L, C] arrays (padding kept at zero)."""

    def __init__(self, kind: str = "robust"):
        if kind not in KINDS:
            raise ValueError(f"ChannelScaler: kind {kind!r} is not one of {KINDS}.")
        self.kind = kind

    def fit(self, x: np.ndarray) -> ChannelScaler:
        rows = _real_rows(np.asarray(x, dtype=np.float64))
        if rows.shape[0] == 0:
            raise ValueError("ChannelScaler.fit: no data (every step is zero padding).")
        if self.kind == "robust":
            q1, median, q3 = np.percentile(rows, [25, 50, 75], axis=0)
            center, scale = median, q3 - q1
        elif self.kind == "standard":
            center, scale = rows.mean(axis=0), rows.std(axis=0)
        elif self.kind == "minmax":
            center, scale = rows.min(axis=0), rows.max(axis=0) - rows.min(axis=0)
        else:
            center, scale = np.zeros(rows.shape[1]), np.ones(rows.shape[1])
        self.center_ = center
        self.scale_ = np.where(scale > 1e-12, scale, 1.0)  # a constant channel is only centred
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        if not hasattr(self, "center_"):
            raise RuntimeError("ChannelScaler: call fit before transform.")
        x = np.asarray(x, dtype=np.float32)
        if x.shape[-1] != self.center_.size:
            raise ValueError(f"ChannelScaler: data has {x.shape[-1]} channels, the scaler was "
                             f"fitted on {self.center_.size}.")
        out = ((x - self.center_) / self.scale_).astype(np.float32)
        if x.ndim == 3:
            out[np.all(x == 0, axis=-1)] = 0.0
        return out

    def to_dict(self) -> dict:
        return {"kind": self.kind, "center": self.center_.tolist(), "scale": self.scale_.tolist()}

    @classmethod
    def from_dict(cls, data) -> ChannelScaler:
        scaler = cls(data["kind"])
        scaler.center_ = np.asarray(data["center"], dtype=np.float64)
        scaler.scale_ = np.asarray(data["scale"], dtype=np.float64)
        return scaler


def _real_rows(x: np.ndarray) -> np.ndarray:
    """[rows, C]: every sample (2-D) or every non-padding step (3-D)."""
    if x.ndim == 2:
        return x
    rows = x.reshape(-1, x.shape[-1])
    return rows[~np.all(rows == 0, axis=1)]


def make_vectorizer(text_config, vocabulary: list[str] | None = None):
    """A `TextVectorization` to ids (0 padding, 1 out-of-vocabulary), optionally with a saved
    vocabulary (which starts with "" and "[UNK]", as `get_vocabulary` returns it)."""
    import keras

    layer = keras.layers.TextVectorization(
        max_tokens=text_config.max_tokens, standardize=text_config.standardize,
        output_mode="int", output_sequence_length=text_config.max_length)
    if vocabulary is not None:
        layer.set_vocabulary(vocabulary[2:] if vocabulary[:2] == ["", "[UNK]"] else vocabulary)
    return layer


class Preprocessor:
    """Fits on the training part; turns `Samples.inputs` into model inputs.

    "trace", "features" -> scaled with `scaler` kind; "settings" -> `settings_scaler` kind;
    "text" -> "tokens" int32 [n, max_length].
    """

    def __init__(self, scaler: str, settings_scaler: str, text_config):
        self.scaler, self.settings_scaler, self.text_config = scaler, settings_scaler, text_config
        self.scalers_: dict[str, ChannelScaler] = {}
        self.vocabulary_: list[str] | None = None
        self._vectorizer = None

    def fit(self, inputs: dict[str, np.ndarray]) -> Preprocessor:
        for name, x in inputs.items():
            if name == "text":
                layer = make_vectorizer(self.text_config)
                layer.adapt(np.asarray(x, dtype=str))
                self.vocabulary_ = [str(t) for t in layer.get_vocabulary()]
                self._vectorizer = layer
            else:
                kind = self.settings_scaler if name == "settings" else self.scaler
                self.scalers_[name] = ChannelScaler(kind).fit(x)
        return self

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary_) if self.vocabulary_ is not None else 0

    def transform(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {}
        for name, x in inputs.items():
            if name == "text":
                if self._vectorizer is None:
                    self._vectorizer = make_vectorizer(self.text_config, self.vocabulary_)
                ids = self._vectorizer(np.asarray(x, dtype=str))
                out["tokens"] = np.asarray(ids, dtype=np.int32)
            else:
                out[name] = self.scalers_[name].transform(x)
        return out

    def to_dict(self) -> dict:
        return {"scalers": {k: s.to_dict() for k, s in self.scalers_.items()},
                "vocabulary": self.vocabulary_}

    @classmethod
    def from_dict(cls, data, scaler: str, settings_scaler: str, text_config) -> Preprocessor:
        prep = cls(scaler, settings_scaler, text_config)
        prep.scalers_ = {k: ChannelScaler.from_dict(v) for k, v in data["scalers"].items()}
        prep.vocabulary_ = data.get("vocabulary")
        return prep


def class_weight_vector(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Balanced weights n / (k_present * n_c) per class (0 for classes absent from training)."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = labels.size / (present.sum() * counts[present])
    return weights


def rebalance(x: dict[str, np.ndarray], labels: np.ndarray, n_classes: int, scaling_config,
              seed: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray | None, str]:
    """`scaling.imbalance` on the training arrays: (inputs, labels, sample weights, note)."""
    kind = scaling_config.imbalance
    if kind == "class_weight":
        weights = class_weight_vector(labels, n_classes)
        note = "class weights " + ", ".join(f"{w:.3g}" for w in weights)
        return x, labels, weights[labels].astype(np.float32), note
    if kind == "none":
        return x, labels, None, "none"
    counts = np.bincount(labels, minlength=n_classes)
    if kind == "undersample":
        cap = int(math.ceil(counts[counts > 0].min() / scaling_config.undersample_ratio))
        rng = np.random.default_rng(seed)
        keep = np.sort(np.concatenate([
            rng.permutation(np.flatnonzero(labels == c))[:cap] for c in range(n_classes)]))
        return ({k: v[keep] for k, v in x.items()}, labels[keep], None,
                f"random undersampling to at most {cap} per class: {labels.size} -> {keep.size}")
    return _smote(x, labels, counts, scaling_config.smote_ratio, seed)


def _smote(x, labels, counts, ratio, seed):
    from imblearn.over_sampling import SMOTE

    if "tokens" in x:
        raise ValueError("scaling.imbalance=smote interpolates numeric inputs and cannot make "
                         "texts; use class_weight for data.source=text.")
    present = np.flatnonzero(counts)
    target = {int(c): max(int(counts[c]), int(math.ceil(ratio * counts.max()))) for c in present}
    minority = int(counts[present].min())
    if minority < 2:
        raise ValueError(f"smote: every class needs 2 training samples, the smallest has "
                         f"{minority}.")
    names = sorted(x)
    shapes = {k: x[k].shape[1:] for k in names}
    flat = np.concatenate([x[k].reshape(len(labels), -1) for k in names], axis=1)
    sampler = SMOTE(sampling_strategy=target, k_neighbors=min(5, minority - 1), random_state=seed)
    flat_res, y_res = sampler.fit_resample(flat, labels)
    out, start = {}, 0
    for k in names:
        width = int(np.prod(shapes[k]))
        out[k] = flat_res[:, start:start + width].reshape((-1, *shapes[k])).astype(np.float32)
        start += width
    note = (f"SMOTE on the training part to {ratio:g} of the largest class: {labels.size} -> "
            f"{y_res.size} samples")
    return out, np.asarray(y_res, dtype=np.int64), None, note
