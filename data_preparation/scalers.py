"""Scalers fitted on the training part: one centre and scale for all trace samples, one per setting.

They follow scikit-learn's conventions so they behave like any other transformer:

* `__init__` only stores its parameters (so `get_params`, `clone` and `repr` work);
* `fit(X, y=None)` validates the training data, learns the attributes ending in `_` and
  returns the scaler;
* `transform` / `inverse_transform` first check the scaler is fitted (`check_is_fitted`, which
  raises `NotFittedError`), then validate their input: numeric, the expected rank, the fitted
  number of settings, finite values. A NaN or inf would turn every score it reaches into NaN
  without another error, so it is refused with the position of the first one;
* `fit_transform` comes from `TransformerMixin`.

The fitted state is saved as JSON, never pickled: `to_dict` / `from_dict`, and `save_scalers` /
`load_scalers` for the run folder's `scalers.json` (format 1, the same bytes as every earlier
version wrote).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from utils.run_folder import atomic_write_json
from utils.text import listing

SCALER_KINDS = ("robust", "standard", "minmax", "none")
_SCALERS_FORMAT = 1
_NOT_FITTED = (
    "This %(name)s is not fitted yet; call fit() on the training part first (or load fitted "
    "state with from_dict())."
)
# The arrays a TraceScaler takes: traces [n, L] / [n, L, C] and the reference windows
# [n, K, L] / [n, K, L, C] scaled with the same statistics. One global centre and scale, so
# the layout past the rank never matters and there is no feature count to check.
_TRACE_RANKS = (2, 3, 4)
_TRACE_LAYOUTS = "traces [n, L] / [n, L, C] or reference windows [n, K, L] / [n, K, L, C]"


def _check_kind(kind: str, owner: str) -> None:
    if kind not in SCALER_KINDS:
        raise ValueError(f"{owner}: kind={kind!r} is not known; use one of {listing(SCALER_KINDS)}.")


def _check_fitted(scaler) -> None:
    check_is_fitted(scaler, "center_", msg=_NOT_FITTED)


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _as_float(x, dtype, owner: str, what: str) -> np.ndarray:
    """`x` as a `dtype` array, or a one-line ValueError saying what `owner` expected."""
    if np.iscomplexobj(x):
        raise ValueError(f"{owner}: expected real-valued {what}, got complex numbers.")
    try:
        return np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{owner}: expected {what} as a numeric array ({exc}).") from exc


def _check_finite(x: np.ndarray, owner: str, what: str, hint: str = "") -> None:
    """Refuse NaN and inf, naming the first one's index and how many there are."""
    finite = np.isfinite(x)
    if finite.all():
        return
    bad = np.flatnonzero(~finite)
    first = tuple(int(i) for i in np.unravel_index(bad[0], x.shape))
    raise ValueError(
        f"{owner}: expected finite {what}; found {x[first]} at index {first}, {bad.size} of "
        f"{x.size} values NaN or inf{hint}."
    )


class TraceScaler(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    """One global centre and scale for all samples of all training traces.

    Args:
        kind: `"robust"` (median, interquartile range), `"standard"` (mean, standard deviation),
            `"minmax"` (minimum, range) or `"none"` (0, 1). Default `"robust"`.
        max_fit_traces: robust only: the median and quartiles are computed exactly over all
            samples of at most this many training traces, drawn at random (seeded by
            `random_state`) when there are more; this bounds memory on streamed data.
            Standard and minmax statistics are exact, accumulated in chunks. Default 2048.
        random_state: seed of that draw. Default 0.
        chunk_size: traces read at a time while fitting. Default 512.

    A spread of zero gives scale 1. `fit` accepts an array `[n, L]` / `[n, L, C]` or a
    `TraceStore` (anything with `len` and `__getitem__` taking an index array); kind `"none"`
    reads no data. `transform` takes traces and reference windows alike (`[n, L]`,
    `[n, L, C]`, `[n, K, L]`, `[n, K, L, C]`); every value read must be finite.

    >>> scaler = TraceScaler("standard").fit(np.array([[0.0, 2.0], [4.0, 6.0]]))
    >>> scaler.center_, scaler.scale_
    (3.0, 2.23606797749979)
    """

    def __init__(
        self,
        kind: str = "robust",
        max_fit_traces: int = 2048,
        random_state: int = 0,
        chunk_size: int = 512,
    ):
        self.kind = kind
        self.max_fit_traces = max_fit_traces
        self.random_state = random_state
        self.chunk_size = chunk_size

    def fit(self, traces, y=None) -> TraceScaler:
        """Learn `center_`, `scale_` and `n_traces_seen_` from the training traces."""
        _check_kind(self.kind, "TraceScaler")
        n = len(traces)
        if n == 0:
            raise ValueError("TraceScaler.fit: no training traces.")
        if self.kind == "none":
            center, scale = 0.0, 1.0
        elif self.kind == "robust":
            center, scale = self._robust(traces, n)
        else:
            center, scale = self._exact(traces, n)
        self.center_ = float(center)
        self.scale_ = float(scale) if scale > 0 and math.isfinite(scale) else 1.0
        self.n_traces_seen_ = int(n)
        return self

    @staticmethod
    def _checked(traces, method: str, dtype=np.float32) -> np.ndarray:
        """`traces` as a finite `dtype` array of an accepted rank (see `_TRACE_RANKS`)."""
        owner = f"TraceScaler.{method}"
        x = _as_float(traces, dtype, owner, _TRACE_LAYOUTS)
        if x.ndim not in _TRACE_RANKS:
            raise ValueError(f"{owner}: expected {_TRACE_LAYOUTS}, got shape {x.shape}.")
        _check_finite(x, owner, "trace values")
        return x

    def _robust(self, traces, n: int) -> tuple[float, float]:
        picked = np.arange(n)
        if n > self.max_fit_traces:
            rng = np.random.default_rng(self.random_state)
            picked = np.sort(rng.choice(n, size=self.max_fit_traces, replace=False))
        sample = np.concatenate(
            [self._checked(traces[picked[s]], "fit").ravel()
             for s in _chunks(picked.size, self.chunk_size)]
        )
        q1, median, q3 = np.percentile(sample, [25, 50, 75])
        return median, q3 - q1

    def _exact(self, traces, n: int) -> tuple[float, float]:
        count, mean, m2 = 0, 0.0, 0.0
        low, high = np.inf, -np.inf
        for s in _chunks(n, self.chunk_size):
            block = self._checked(traces[np.arange(s.start, s.stop)], "fit", np.float64).ravel()
            low, high = min(low, block.min()), max(high, block.max())
            # Chan et al. parallel update of mean and sum of squared deviations.
            b_count, b_mean = block.size, block.mean()
            b_m2 = float(np.sum((block - b_mean) ** 2))
            delta = b_mean - mean
            total = count + b_count
            mean += delta * b_count / total
            m2 += b_m2 + delta**2 * count * b_count / total
            count = total
        if self.kind == "standard":
            return mean, math.sqrt(m2 / count)
        return low, high - low

    def transform(self, traces) -> np.ndarray:
        """Scaled copy of `traces` as float32."""
        _check_fitted(self)
        traces = self._checked(traces, "transform")
        return ((traces - np.float32(self.center_)) / np.float32(self.scale_)).astype(
            np.float32, copy=False)

    def inverse_transform(self, traces) -> np.ndarray:
        """Undo `transform` (float32)."""
        _check_fitted(self)
        traces = self._checked(traces, "inverse_transform")
        return (traces * np.float32(self.scale_) + np.float32(self.center_)).astype(
            np.float32, copy=False)

    def to_dict(self) -> dict:
        """Parameters and fitted state, JSON-ready."""
        _check_fitted(self)
        return {
            "class": type(self).__name__,
            "params": self.get_params(),
            "center_": self.center_,
            "scale_": self.scale_,
            "n_traces_seen_": self.n_traces_seen_,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> TraceScaler:
        """A fitted scaler from `to_dict()` output."""
        scaler = cls(**_params(data, cls))
        try:
            scaler.center_ = float(data["center_"])
            scaler.scale_ = float(data["scale_"])
            scaler.n_traces_seen_ = int(data.get("n_traces_seen_", 0))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{cls.__name__}.from_dict: bad fitted state in {data!r}.") from exc
        _check_state(cls.__name__, np.array([scaler.center_]), np.array([scaler.scale_]))
        return scaler


class SettingsScaler(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    """A centre and scale per beam-settings feature (column), fitted on the training part.

    Args:
        kind: `"robust"` (median, IQR), `"standard"` (mean, std), `"minmax"` (min, range) or
            `"none"` (0, 1). Default `"robust"`.

    A feature that does not vary in the training part (spread 0, common for a PV held constant)
    gets scale 1, so it is only shifted. Works with zero features (`[n, 0]`). Settings must be
    finite: a NaN is a pulse without settings, which the pipeline ledgers and drops before.

    >>> SettingsScaler("minmax").fit(np.array([[1.0, 5.0], [3.0, 5.0]])).scale_.tolist()
    [2.0, 1.0]
    """

    def __init__(self, kind: str = "robust"):
        self.kind = kind

    def fit(self, x, y=None) -> SettingsScaler:
        """Learn `center_`, `scale_` (float64 [k]) and `n_features_in_`."""
        _check_kind(self.kind, "SettingsScaler")
        x = self._checked(x, "fit")
        if x.shape[0] == 0:
            raise ValueError("SettingsScaler.fit: no training rows.")
        k = x.shape[1]
        if self.kind == "none" or k == 0:
            center, scale = np.zeros(k), np.ones(k)
        elif self.kind == "robust":
            q1, center, q3 = np.percentile(x, [25, 50, 75], axis=0)
            scale = q3 - q1
        elif self.kind == "standard":
            center, scale = x.mean(axis=0), x.std(axis=0)
        else:
            center = x.min(axis=0)
            scale = x.max(axis=0) - center
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        self.center_ = np.asarray(center, dtype=np.float64)
        self.scale_ = np.asarray(scale, dtype=np.float64)
        self.n_features_in_ = k
        return self

    def _checked(self, x, method: str) -> np.ndarray:
        """`x` as a finite float64 [n, k] array; after fit, k must be `n_features_in_`."""
        owner = f"SettingsScaler.{method}"
        x = _as_float(x, np.float64, owner, "settings [n, k]")
        if x.ndim != 2:
            raise ValueError(f"{owner}: expected a 2-D array [n, k], got shape {x.shape}.")
        _check_finite(x, owner, "settings", hint=" (pulses without settings?)")
        if method != "fit" and x.shape[1] != self.n_features_in_:
            raise ValueError(
                f"SettingsScaler was fitted on {self.n_features_in_} features, got {x.shape[1]}."
            )
        return x

    def transform(self, x) -> np.ndarray:
        """Scaled copy of `x` as float32."""
        _check_fitted(self)
        x = self._checked(x, "transform")
        return ((x - self.center_) / self.scale_).astype(np.float32)

    def inverse_transform(self, x) -> np.ndarray:
        """Undo `transform` (float64)."""
        _check_fitted(self)
        return self._checked(x, "inverse_transform") * self.scale_ + self.center_

    def to_dict(self) -> dict:
        _check_fitted(self)
        return {
            "class": type(self).__name__,
            "params": self.get_params(),
            "center_": self.center_.tolist(),
            "scale_": self.scale_.tolist(),
            "n_features_in_": self.n_features_in_,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> SettingsScaler:
        scaler = cls(**_params(data, cls))
        try:
            scaler.center_ = np.asarray(data["center_"], dtype=np.float64)
            scaler.scale_ = np.asarray(data["scale_"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{cls.__name__}.from_dict: bad fitted state in {data!r}.") from exc
        if scaler.center_.shape != scaler.scale_.shape or scaler.center_.ndim != 1:
            raise ValueError(f"{cls.__name__}.from_dict: center_ and scale_ must be equal-length lists.")
        _check_state(cls.__name__, scaler.center_, scaler.scale_)
        scaler.n_features_in_ = int(scaler.center_.size)
        return scaler


def _check_state(owner: str, center: np.ndarray, scale: np.ndarray) -> None:
    """A loaded state must be finite with positive scales: a NaN centre or a zero scale would
    make every score NaN or inf, and transform could only report it later, on the input side."""
    bad_center = np.flatnonzero(~np.isfinite(center))
    if bad_center.size:
        i = int(bad_center[0])
        raise ValueError(f"{owner}: center_[{i}] is {center[i]}; expected a finite number.")
    bad_scale = np.flatnonzero(~(np.isfinite(scale) & (scale > 0)))
    if bad_scale.size:
        i = int(bad_scale[0])
        raise ValueError(f"{owner}: scale_[{i}] is {scale[i]}; expected a finite number > 0.")


def _params(data: Mapping, cls) -> dict:
    if not isinstance(data, Mapping) or data.get("class") != cls.__name__:
        found = data.get("class") if isinstance(data, Mapping) else type(data).__name__
        raise ValueError(f"{cls.__name__}.from_dict: expected class {cls.__name__!r}, got {found!r}.")
    params = dict(data.get("params", {}))
    allowed = set(cls().get_params())
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(f"{cls.__name__}.from_dict: unknown parameters {unknown}.")
    return params


def save_scalers(
    path, trace_scaler: TraceScaler, settings_scaler: SettingsScaler, extra: Mapping | None = None
) -> None:
    """Write both fitted scalers (and any `extra` JSON-able info) to `path`, atomically."""
    atomic_write_json(
        path,
        {
            "format": _SCALERS_FORMAT,
            "trace_scaler": trace_scaler.to_dict(),
            "settings_scaler": settings_scaler.to_dict(),
            "extra": dict(extra or {}),
        },
    )


def load_scalers(path) -> tuple[TraceScaler, SettingsScaler, dict]:
    """Read `save_scalers` output: `(trace_scaler, settings_scaler, extra)`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"Cannot read scalers from {path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != _SCALERS_FORMAT:
        raise ValueError(
            f"{path}: not a beamwatch scalers file (expected format {_SCALERS_FORMAT})."
        )
    for key in ("trace_scaler", "settings_scaler"):
        if key not in data:
            raise ValueError(f"{path}: missing key {key!r}.")
    try:
        return (
            TraceScaler.from_dict(data["trace_scaler"]),
            SettingsScaler.from_dict(data["settings_scaler"]),
            dict(data.get("extra") or {}),
        )
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc
