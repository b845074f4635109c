"""Unseen-configuration warning: is a pulse's beam configuration far from every trained one?

Every run period brings configurations the model never saw, and a score on such a pulse deserves
less trust. The detector keeps the distinct scaled settings vectors of the training part (the
"anchors") and flags a pulse whose settings lie farther from all of them than a radius chosen on
the validation part: the `quantile` of the validation pulses' nearest-anchor distances, so the
flag means "more novel than (1 - quantile) of the validation period was". Distances are RMS over
the features in the run's scaled settings space (the SettingsScaler fitted on the training part),
so a radius reads as a typical per-feature deviation in those units. Arrays in, arrays out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_QUANTILE = 0.99
_DECIMALS = 6  # anchors closer than this (scaled units) are one configuration
# Smallest radius: settings read back from the archive in float32 or float64 differ by ~1e-7
# scaled units; a configuration within 0.1 % of a feature's training range is the same one.
MIN_RADIUS = 1e-3


@dataclass(frozen=True)
class UnseenDetector:
    """Anchors float32 [m, S] (scaled training configurations) and the radius (scaled RMS units)."""

    anchors: np.ndarray
    radius: float
    quantile: float = DEFAULT_QUANTILE

    def distances(self, settings_scaled) -> np.ndarray:
        """RMS distance of each row of `settings_scaled` [n, S] to its nearest anchor."""
        x = np.asarray(settings_scaled, dtype=np.float64)
        if x.ndim == 1:
            x = x[None, :]
        if x.shape[1] != self.anchors.shape[1]:
            raise ValueError(f"settings have {x.shape[1]} features; the detector was fitted on "
                             f"{self.anchors.shape[1]}")
        out = np.empty(x.shape[0])
        anchors = self.anchors.astype(np.float64)
        for start in range(0, x.shape[0], 4096):  # bounded memory: [4096, m] at a time
            block = x[start:start + 4096]
            d2 = ((block[:, None, :] - anchors[None, :, :]) ** 2).mean(axis=2)
            out[start:start + 4096] = np.sqrt(d2.min(axis=1))
        return out

    def flags(self, settings_scaled) -> np.ndarray:
        """True where a pulse's configuration is farther than the radius from every anchor."""
        return self.distances(settings_scaled) > self.radius

    def to_dict(self) -> dict:
        return {"radius": self.radius, "quantile": self.quantile,
                "anchors": np.asarray(self.anchors, dtype=np.float64).tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> UnseenDetector:
        try:
            anchors = np.asarray(data["anchors"], dtype=np.float32)
            radius = float(data["radius"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"unseen-configuration detector: bad data ({exc})") from exc
        if anchors.ndim != 2 or not anchors.shape[0]:
            raise ValueError(f"unseen-configuration detector: anchors must be [m, S] with m >= 1, "
                             f"got shape {anchors.shape}")
        return cls(anchors, radius, float(data.get("quantile", DEFAULT_QUANTILE)))


def fit_unseen(train_scaled, val_scaled, quantile: float = DEFAULT_QUANTILE) -> UnseenDetector:
    """Anchors from the training part's settings, radius from the validation part's distances."""
    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"quantile must be in (0, 1], got {quantile}")
    train = np.asarray(train_scaled, dtype=np.float64)
    if train.ndim != 2 or train.shape[0] == 0 or train.shape[1] == 0:
        raise ValueError(f"fit_unseen needs training settings [n >= 1, S >= 1], got {train.shape}")
    anchors = np.unique(np.round(train, _DECIMALS), axis=0).astype(np.float32)
    detector = UnseenDetector(anchors, 0.0, quantile)
    val = np.asarray(val_scaled, dtype=np.float64)
    if val.shape[0] == 0:
        raise ValueError("fit_unseen needs validation settings to choose the radius")
    radius = max(MIN_RADIUS, float(np.quantile(detector.distances(val), quantile)))
    return UnseenDetector(anchors, radius, quantile)
