"""Old import path of the unseen-configuration detector; the code is `analysis.unseen` (arrays only)."""

from analysis.unseen import DEFAULT_QUANTILE, MIN_RADIUS, UnseenDetector, fit_unseen

__all__ = ["DEFAULT_QUANTILE", "MIN_RADIUS", "UnseenDetector", "fit_unseen"]
