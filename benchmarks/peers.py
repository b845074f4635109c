"""Peers that are hard to beat: what a neural default must outperform to earn its cost.

* `minirocket`: MiniRocket random convolution features (aeon, fixed `random_state`) on the
  pulse averaged over one chopper period (~1 us, `model.input_pool` samples: the loss envelope
  without the chopper carrier), with a ridge head (RidgeClassifierCV, balanced classes).
* `minirocket_reference`: the same on (pulse - median of its reference pulses): what changed
  since the recent normal pulses of the same configuration.
* `logistic_reference`: logistic regression on the hand-made features (`benchmarks.features`)
  of (pulse - median reference) plus the beam settings.
* the detection section's baselines: `hist_gradient_boosting`, `logistic_regression` (features
  of the pulse plus settings) and `isolation_forest` (`benchmarks.detection_models.baseline_scores`).

Every peer is fitted on the training rows only (MiniRocket's biases too) and scores the
validation and test rows; the caller chooses the threshold on validation. The reference peers
need `SampleSet.references` (the reference pipeline, CONTRACT.md section 3); without it they
are skipped with a note.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import numpy as np

from benchmarks.detection_models import BASELINES, baseline_scores
from benchmarks.features import trace_features
from training.peers import MiniRocketClassifier, logistic_model

log = logging.getLogger("beamwatch.benchmarks.peers")

REFERENCE_PEERS = ("minirocket_reference", "logistic_reference")
PEERS = ("minirocket", *REFERENCE_PEERS, *BASELINES)
CHUNK = 512


class PeerData:
    """The arrays the peers work on, computed once per archive and shared by every fold.

    Only per-trace transforms live here (averages, differences, hand-made features): nothing
    is fitted, so sharing them across folds leaks nothing from the test period.
    """

    def __init__(self, samples, pool: int):
        self.samples = samples
        self.pool = max(1, int(pool))
        self.labels = np.asarray(samples.label, dtype=np.int64)
        self.settings = np.asarray(samples.settings, dtype=np.float64)
        self._cache: dict[str, np.ndarray] = {}
        self.seconds: dict[str, float] = {}  # time spent computing each cached array

    def _cached(self, key: str, compute) -> np.ndarray:
        if key not in self._cache:
            started = time.perf_counter()
            self._cache[key] = compute()
            self.seconds[key] = time.perf_counter() - started
        return self._cache[key]

    @property
    def has_references(self) -> bool:
        # The SampleSet field the reference peers read: None or K = 0 means no references.
        references = self.samples.references
        return references is not None and references.shape[1] > 0

    def pulse(self) -> np.ndarray:
        """float32 [n, L] traces (first channel)."""
        return self._cached("pulse", lambda: _first_channel(np.asarray(
            self.samples.traces[np.arange(len(self.samples))], dtype=np.float32)))

    def difference(self) -> np.ndarray:
        """float32 [n, L]: each pulse minus the sample-wise median of its K references."""
        return self._cached("difference", self._difference)

    def _difference(self) -> np.ndarray:
        refs = self.samples.references
        pulse = self.pulse()
        out = np.empty_like(pulse)
        for start in range(0, len(out), CHUNK):
            rows = np.arange(start, min(start + CHUNK, len(out)))
            block = np.asarray(refs[rows], dtype=np.float32)
            if block.ndim == 4:  # [n, K, L, C]
                block = block[..., 0]
            out[rows] = pulse[rows] - np.median(block, axis=1)
        return out

    def averaged(self, which: str) -> np.ndarray:
        """[n, 1, L // pool]: `which` ("pulse" | "difference") averaged over `pool` samples."""
        return self._cached(f"averaged_{which}", lambda: average_pool(
            getattr(self, which)(), self.pool)[:, None, :])

    def features(self, which: str) -> np.ndarray:
        """Hand-made features of `which` plus the settings, float64 [n, f + k]."""
        return self._cached(f"features_{which}", lambda: np.concatenate(
            [trace_features(getattr(self, which)()), self.settings], axis=1))


def average_pool(x: np.ndarray, pool: int) -> np.ndarray:
    """Mean over consecutive windows of `pool` samples along the last axis (tail dropped)."""
    x = np.asarray(x, dtype=np.float32)
    usable = (x.shape[-1] // pool) * pool
    if usable == 0:
        raise ValueError(f"average_pool: traces of {x.shape[-1]} samples are shorter than one "
                         f"pooling window of {pool}")
    return x[..., :usable].reshape(*x.shape[:-1], usable // pool, pool).mean(axis=-1)


def unavailable(name: str, data: PeerData) -> str | None:
    """Why peer `name` cannot run on `data` (None when it can)."""
    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r}; expected one of {PEERS}")
    if name in REFERENCE_PEERS and not data.has_references:
        return "no reference pulses in this pipeline (SampleSet.references absent or K = 0)"
    if name.startswith("minirocket"):
        try:
            import aeon  # noqa: F401
        except ImportError:
            return "aeon is not installed (pip install aeon)"
    return None


def fit_score(name: str, data: PeerData, parts: Mapping[str, np.ndarray], seed: int, *,
              n_kernels: int = 10_000) -> dict:
    """Fit peer `name` on `parts["train"]`; `{"scores": {"val", "test"}, "indices",
    "train_seconds"}`."""
    if name in BASELINES:
        return baseline_scores(name, data.features("pulse"), data.labels, dict(parts), seed)
    started = time.perf_counter()
    if name.startswith("minirocket"):
        series = data.averaged("difference" if name == "minirocket_reference" else "pulse")
        model = MiniRocketClassifier(n_kernels=n_kernels, random_state=seed)
        model.fit(series[parts["train"]], data.labels[parts["train"]])
        score = model.decision_function
        x = series
    elif name == "logistic_reference":
        model = logistic_model()
        x = data.features("difference")
        model.fit(x[parts["train"]], data.labels[parts["train"]])
        score = lambda features: model.predict_proba(features)[:, 1]  # noqa: E731
    else:
        raise ValueError(f"unknown peer {name!r}; expected one of {PEERS}")
    scores = {p: np.asarray(score(x[parts[p]]), dtype=np.float64) for p in ("val", "test")}
    return {"scores": scores, "indices": {p: parts[p] for p in ("val", "test")},
            "train_seconds": time.perf_counter() - started}


def _first_channel(traces: np.ndarray) -> np.ndarray:
    return traces[..., 0] if traces.ndim == 3 else traces
