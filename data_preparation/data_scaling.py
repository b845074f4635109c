"""Split pulses into train / validation / test, fit scalers on the training part, rebalance it.

Order matters and is enforced by the callers' flow: split first, then fit everything (scalers,
SMOTE, undersampling, class weights) on the training part only, so no statistic sees a pulse
from the validation or test period. Scalers keep their learned state in attributes ending in
`_` and save it as JSON (`to_dict` / `from_dict`, `save_scalers` / `load_scalers`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from utils.run_folder import atomic_write_json

PARTS = ("train", "val", "test")
SCALER_KINDS = ("robust", "standard", "minmax", "none")
_SCALERS_FORMAT = 1


# ----------------------------------------------------------------------------------------------
# Splits


def split_indices(
    timestamp_ns, label, groups, config, seed: int = 0, acquisition=None
) -> dict[str, np.ndarray]:
    """Indices of the train, val and test parts (each in time order) per `config.method`.

    Methods (`SplitConfig.method`):

    * `"time"`: the oldest `train_fraction` of pulses (by count, in time order) train, the next
      `val_fraction` validate, the newest rest test. With `acquisition` (an id per pulse, e.g.
      its source file index) a cut moves forward to the next acquisition, so the pulses of one
      DCM file never straddle two parts. With `gap_seconds > 0`, every pulse within
      that many seconds of a boundary (the first pulse time of the later part) is dropped.
    * `"config_group"`: whole configuration groups, ordered by their first pulse, are cut into
      three runs whose sizes best match the fractions; a group never straddles parts.
    * `"stratified_random"`: random, stratified by label (overstates accuracy on time series:
      neighbouring pulses land in different parts).

    Returns:
        `{"train", "val", "test", "dropped"}` int64 index arrays; `dropped` holds the pulses the
        gap removed (empty otherwise) for the caller to ledger.

    Raises:
        ValueError: when a part would be empty, saying how many pulses (and groups) there are.
    """
    timestamp_ns = np.asarray(timestamp_ns, dtype=np.int64)
    label = np.asarray(label)
    n = timestamp_ns.size
    if label.shape != (n,):
        raise ValueError(f"split_indices: label has shape {label.shape}, expected ({n},).")
    order = np.argsort(timestamp_ns, kind="stable")
    if config.method == "time":
        part, dropped = _time_parts(timestamp_ns, order, config, acquisition)
    elif config.method == "config_group":
        part, dropped = _group_parts(np.asarray(groups), timestamp_ns, order, config)
    elif config.method == "stratified_random":
        part, dropped = _stratified_parts(label, config, seed)
    else:
        raise ValueError(
            f"split.method={config.method!r} is not known; use one of "
            "'time', 'config_group', 'stratified_random'."
        )
    out = {name: order[part[order] == k] for k, name in enumerate(PARTS)}
    out["dropped"] = order[dropped[order]]
    for name in PARTS:
        if out[name].size == 0:
            raise ValueError(
                f"split ({config.method}): the {name} part is empty; there are {n} pulses"
                f" ({out['dropped'].size} dropped by the gap) with train_fraction="
                f"{config.train_fraction}, val_fraction={config.val_fraction}. Use more data, "
                "other fractions or a smaller split.gap_seconds."
            )
    return out


def _cut_counts(n: int, config) -> tuple[int, int]:
    """Pulse counts at the train/val and val/test boundaries."""
    first = int(round(n * config.train_fraction))
    second = int(round(n * (config.train_fraction + config.val_fraction)))
    return first, second


def _between_acquisitions(sorted_acquisition: np.ndarray | None, cut: int) -> int:
    """The first index at or after `cut` that starts a new acquisition (or n).

    One DCM file holds consecutive 60 Hz pulses, 16.7 ms apart and nearly identical; a cut
    between two of them would put the same beam in two parts.
    """
    if sorted_acquisition is None:
        return cut
    n = sorted_acquisition.size
    while 0 < cut < n and sorted_acquisition[cut] == sorted_acquisition[cut - 1]:
        cut += 1
    return cut


def _time_parts(timestamp_ns, order, config, acquisition=None) -> tuple[np.ndarray, np.ndarray]:
    n = timestamp_ns.size
    first, second = _cut_counts(n, config)
    sorted_acquisition = None if acquisition is None else np.asarray(acquisition)[order]
    first = _between_acquisitions(sorted_acquisition, first)
    second = max(first, _between_acquisitions(sorted_acquisition, second))
    part = np.empty(n, dtype=np.int8)
    part[order[:first]] = 0
    part[order[first:second]] = 1
    part[order[second:]] = 2
    dropped = np.zeros(n, dtype=bool)
    gap_ns = int(round(config.gap_seconds * 1e9))
    if gap_ns > 0:
        for cut in (first, second):
            if 0 < cut < n:
                boundary = timestamp_ns[order[cut]]
                dropped |= np.abs(timestamp_ns - boundary) < gap_ns
    part[dropped] = -1
    return part, dropped


def _group_parts(groups, timestamp_ns, order, config) -> tuple[np.ndarray, np.ndarray]:
    n = timestamp_ns.size
    if groups.shape != (n,):
        raise ValueError(f"split_indices: groups has shape {groups.shape}, expected ({n},).")
    # Groups in order of their first pulse, and their sizes in that order.
    ids, first_pos, inverse = np.unique(groups[order], return_index=True, return_inverse=True)
    rank = np.empty(ids.size, dtype=np.int64)
    rank[np.argsort(first_pos, kind="stable")] = np.arange(ids.size)
    sizes = np.bincount(rank[inverse], minlength=ids.size)
    if ids.size < 3:
        raise ValueError(
            f"split (config_group): needs at least 3 configuration groups, found {ids.size} "
            f"among {n} pulses. Use split.method=time."
        )
    cum = np.concatenate([[0], np.cumsum(sizes)])  # cum[c]: pulses before group c
    target_1, target_2 = _cut_counts(n, config)
    # First cut in [1, G-2], second in [c1+1, G-1], each closest to its target.
    c1 = 1 + int(np.argmin(np.abs(cum[1 : ids.size - 1] - target_1)))
    c2 = c1 + 1 + int(np.argmin(np.abs(cum[c1 + 1 : ids.size] - target_2)))
    group_part = np.where(rank < c1, 0, np.where(rank < c2, 1, 2)).astype(np.int8)
    part = np.empty(n, dtype=np.int8)
    part[order] = group_part[rank[inverse]]
    return part, np.zeros(n, dtype=bool)


def _stratified_parts(label, config, seed) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    n = label.size
    idx = np.arange(n)
    rest_share = config.val_fraction / (1.0 - config.train_fraction)
    try:
        train, rest = train_test_split(
            idx, train_size=config.train_fraction, stratify=label, random_state=seed
        )
        val, test = train_test_split(
            rest, train_size=rest_share, stratify=label[rest], random_state=seed
        )
    except ValueError as exc:
        counts = dict(zip(*np.unique(label, return_counts=True), strict=True))
        raise ValueError(
            f"split (stratified_random): cannot split {n} pulses with label counts "
            f"{ {int(k): int(v) for k, v in counts.items()} }: {exc}"
        ) from exc
    part = np.empty(n, dtype=np.int8)
    part[train], part[val], part[test] = 0, 1, 2
    return part, np.zeros(n, dtype=bool)


# ----------------------------------------------------------------------------------------------
# Scalers


def _check_kind(kind: str, owner: str) -> None:
    if kind not in SCALER_KINDS:
        raise ValueError(f"{owner}: kind={kind!r} is not known; use one of {SCALER_KINDS}.")


def _check_fitted(scaler) -> None:
    if not hasattr(scaler, "center_"):
        raise NotFittedError(
            f"This {type(scaler).__name__} is not fitted yet; call fit() on the training part "
            "first (or load fitted state with from_dict())."
        )


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


class TraceScaler(BaseEstimator):
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
    `TraceStore` (anything with `len` and `__getitem__` taking an index array).

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

    def _robust(self, traces, n: int) -> tuple[float, float]:
        picked = np.arange(n)
        if n > self.max_fit_traces:
            rng = np.random.default_rng(self.random_state)
            picked = np.sort(rng.choice(n, size=self.max_fit_traces, replace=False))
        sample = np.concatenate(
            [np.asarray(traces[picked[s]], dtype=np.float32).ravel()
             for s in _chunks(picked.size, self.chunk_size)]
        )
        q1, median, q3 = np.percentile(sample, [25, 50, 75])
        return median, q3 - q1

    def _exact(self, traces, n: int) -> tuple[float, float]:
        count, mean, m2 = 0, 0.0, 0.0
        low, high = np.inf, -np.inf
        for s in _chunks(n, self.chunk_size):
            block = np.asarray(traces[np.arange(s.start, s.stop)], dtype=np.float64).ravel()
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
        traces = np.asarray(traces, dtype=np.float32)
        return ((traces - np.float32(self.center_)) / np.float32(self.scale_)).astype(np.float32)

    def inverse_transform(self, traces) -> np.ndarray:
        """Undo `transform` (float32)."""
        _check_fitted(self)
        traces = np.asarray(traces, dtype=np.float32)
        return (traces * np.float32(self.scale_) + np.float32(self.center_)).astype(np.float32)

    def fit_transform(self, traces, y=None) -> np.ndarray:
        return self.fit(traces).transform(traces)

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


class SettingsScaler(BaseEstimator):
    """A centre and scale per beam-settings feature (column), fitted on the training part.

    Args:
        kind: `"robust"` (median, IQR), `"standard"` (mean, std), `"minmax"` (min, range) or
            `"none"` (0, 1). Default `"robust"`.

    A feature that does not vary in the training part (spread 0, common for a PV held constant)
    gets scale 1, so it is only shifted. Works with zero features (`[n, 0]`).

    >>> SettingsScaler("minmax").fit(np.array([[1.0, 5.0], [3.0, 5.0]])).scale_.tolist()
    [2.0, 1.0]
    """

    def __init__(self, kind: str = "robust"):
        self.kind = kind

    def fit(self, x, y=None) -> SettingsScaler:
        """Learn `center_`, `scale_` (float64 [k]) and `n_features_in_`."""
        _check_kind(self.kind, "SettingsScaler")
        x = self._validate(x)
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

    @staticmethod
    def _validate(x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(f"SettingsScaler: expected a 2-D array [n, k], got shape {x.shape}.")
        if np.isnan(x).any():
            raise ValueError("SettingsScaler: settings contain NaN (pulses without settings?).")
        return x

    def transform(self, x) -> np.ndarray:
        """Scaled copy of `x` as float32."""
        _check_fitted(self)
        x = self._validate(x)
        if x.shape[1] != self.n_features_in_:
            raise ValueError(
                f"SettingsScaler was fitted on {self.n_features_in_} features, got {x.shape[1]}."
            )
        return ((x - self.center_) / self.scale_).astype(np.float32)

    def inverse_transform(self, x) -> np.ndarray:
        """Undo `transform` (float64)."""
        _check_fitted(self)
        return np.asarray(x, dtype=np.float64) * self.scale_ + self.center_

    def fit_transform(self, x, y=None) -> np.ndarray:
        return self.fit(x).transform(x)

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
    """A fitted state must be finite with positive scales: anything else makes every score equal."""
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


# ----------------------------------------------------------------------------------------------
# Imbalance (training part only)


def _class_counts(labels) -> tuple[int, int]:
    labels = np.asarray(labels)
    bad = np.setdiff1d(np.unique(labels), [0, 1])
    if bad.size:
        raise ValueError(f"labels must be 0 or 1, found {bad.tolist()}.")
    positives = int(np.count_nonzero(labels == 1))
    return labels.size - positives, positives


def class_weights(labels) -> dict[int, float]:
    """Balanced weights `n / (2 * n_class)` for the training labels, as `{0: w0, 1: w1}`."""
    negatives, positives = _class_counts(labels)
    if negatives == 0 or positives == 0:
        raise ValueError(
            f"class_weights: the training part needs both classes, found {negatives} normal and "
            f"{positives} errant pulses."
        )
    n = negatives + positives
    return {0: n / (2.0 * negatives), 1: n / (2.0 * positives)}


def smote(x_flat, y, ratio: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Oversample the minority class of the training part with SMOTE to `ratio` minority/majority.

    `x_flat` is the in-memory training matrix (`[trace | settings]` flattened per pulse); the
    synthetic rows lie between training rows only. Returns `(x_resampled, y_resampled)`, the
    originals first. When the ratio already holds, the input is returned unchanged.
    """
    if not isinstance(x_flat, np.ndarray):
        raise TypeError(
            "smote needs the training data in memory (a NumPy array), got "
            f"{type(x_flat).__name__}. Set train.streaming=false, or use "
            "scaling.imbalance=class_weight or undersample for streamed data."
        )
    from imblearn.over_sampling import SMOTE

    y = np.asarray(y)
    negatives, positives = _class_counts(y)
    minority, majority = sorted((negatives, positives))
    if minority == 0:
        raise ValueError("smote: the training part has only one class.")
    if minority / majority >= ratio:
        return x_flat, y
    neighbours = min(5, minority - 1)
    if neighbours < 1:
        raise ValueError(f"smote: needs at least 2 minority pulses in training, found {minority}.")
    sampler = SMOTE(sampling_strategy=ratio, k_neighbors=neighbours, random_state=seed)
    x_res, y_res = sampler.fit_resample(x_flat, y)
    return np.asarray(x_res, dtype=x_flat.dtype), np.asarray(y_res, dtype=y.dtype)


def undersample(indices, labels, ratio: float, seed: int) -> np.ndarray:
    """Drop random majority pulses until minority/majority >= `ratio`; returns kept indices.

    `labels[i]` is the label of `indices[i]`. The kept indices come back sorted.
    """
    indices = np.asarray(indices)
    labels = np.asarray(labels)
    if labels.shape != indices.shape:
        raise ValueError(
            f"undersample: labels {labels.shape} must match indices {indices.shape} one to one."
        )
    negatives, positives = _class_counts(labels)
    minority_class = 1 if positives <= negatives else 0
    minority = min(negatives, positives)
    if minority == 0:
        raise ValueError("undersample: the training part has only one class.")
    majority_pos = np.flatnonzero(labels != minority_class)
    keep_majority = min(majority_pos.size, int(math.ceil(minority / ratio)))
    rng = np.random.default_rng(seed)
    kept = rng.choice(majority_pos, size=keep_majority, replace=False)
    keep = np.concatenate([np.flatnonzero(labels == minority_class), kept])
    return np.sort(indices[keep])
