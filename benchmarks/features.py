"""Hand-made trace features for the non-neural baselines (gradient boosting, logistic, isolation).

What an accelerator physicist would look at first in a DCM differential-current window: its
level and spread, its quantiles, where in the macropulse the energy sits (early, middle, late
thirds), the largest smoothed excursion, the slope at the end of the pulse (a ramp into a trip),
how many samples stand far outside the trace's own noise, and the spectral energy in a few
bands. If these features beat the CNN-LSTM, the network has not earned its cost.

`trace_features(traces)` -> float64 `[n, len(feature_names())]`; `traces` is `[n, L]`,
`[n, L, 1]` or a lazy store indexable by an index array (read in chunks).
"""

from __future__ import annotations

import numpy as np

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
SEGMENTS = ("early", "middle", "late")
SMOOTH_SAMPLES = 50        # moving-average width for the smoothed maximum (5 us at 10 MS/s)
OUTLIER_SIGMAS = 5.0       # "far outside the noise": |x - median| > k * 1.4826 * MAD
BAND_EDGES = (0.0, 1 / 256, 1 / 64, 1 / 16, 1 / 4, 1.0)  # fractions of the Nyquist frequency
CHUNK = 512


def feature_names() -> list[str]:
    """The column names of `trace_features`, in order."""
    names = ["mean", "std", "min", "max"]
    names += [f"q{int(round(q * 100)):02d}" for q in QUANTILES]
    names += [f"energy_{s}" for s in SEGMENTS]
    names += [f"mean_{s}" for s in SEGMENTS]
    names += ["smoothed_max", "smoothed_min", "slope_late", "outlier_count"]
    names += [f"band{i}_energy" for i in range(len(BAND_EDGES) - 1)]
    return names


def trace_features(traces, chunk_size: int = CHUNK) -> np.ndarray:
    """Features of every trace, computed `chunk_size` traces at a time."""
    n = len(traces)
    out = np.empty((n, len(feature_names())), dtype=np.float64)
    for start in range(0, n, chunk_size):
        rows = np.arange(start, min(start + chunk_size, n))
        block = np.asarray(traces[rows], dtype=np.float64)
        if block.ndim == 3:
            if block.shape[2] != 1:
                raise ValueError(
                    f"trace_features: traces must have one channel, got shape {block.shape}")
            block = block[:, :, 0]
        if block.ndim != 2 or block.shape[1] < 2 * len(SEGMENTS):
            raise ValueError(
                f"trace_features: expected traces [n, L] with L >= {2 * len(SEGMENTS)}, "
                f"got shape {block.shape}")
        out[rows] = _block_features(block)
    return out


def _block_features(x: np.ndarray) -> np.ndarray:
    n, length = x.shape
    cols = [x.mean(axis=1), x.std(axis=1), x.min(axis=1), x.max(axis=1)]
    cols += list(np.quantile(x, QUANTILES, axis=1))
    segments = np.array_split(np.arange(length), len(SEGMENTS))
    cols += [np.mean(x[:, seg] ** 2, axis=1) for seg in segments]
    cols += [np.mean(x[:, seg], axis=1) for seg in segments]
    smoothed = _moving_average(x, min(SMOOTH_SAMPLES, length))
    cols += [smoothed.max(axis=1), smoothed.min(axis=1)]
    cols.append(_slope(x[:, segments[-1]]))
    median = np.median(x, axis=1, keepdims=True)
    sigma = 1.4826 * np.median(np.abs(x - median), axis=1, keepdims=True)
    # A noiseless flat trace has sigma 0: count nothing rather than every sample.
    far = np.abs(x - median) > OUTLIER_SIGMAS * np.where(sigma > 0, sigma, np.inf)
    cols.append(far.sum(axis=1).astype(np.float64))
    cols += _band_energies(x)
    return np.stack(cols, axis=1)


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
    """Mean over each full window of `width` samples (valid part only)."""
    csum = np.cumsum(np.pad(x, ((0, 0), (1, 0))), axis=1)
    return (csum[:, width:] - csum[:, :-width]) / width


def _slope(y: np.ndarray) -> np.ndarray:
    """Least-squares slope per sample index of each row."""
    t = np.arange(y.shape[1], dtype=np.float64)
    t -= t.mean()
    return (y - y.mean(axis=1, keepdims=True)) @ t / np.sum(t * t)


def _band_energies(x: np.ndarray) -> list[np.ndarray]:
    """Mean power of the mean-removed trace in each band of `BAND_EDGES` (rfft bins)."""
    power = np.abs(np.fft.rfft(x - x.mean(axis=1, keepdims=True), axis=1)) ** 2 / x.shape[1]
    n_bins = power.shape[1]
    edges = [int(round(f * (n_bins - 1))) for f in BAND_EDGES]
    out = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        hi = max(hi, lo + 1)
        last = hi + 1 if hi == n_bins - 1 else hi  # the top band includes the Nyquist bin
        out.append(power[:, lo:last].mean(axis=1))
    return out
