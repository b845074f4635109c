"""Confidence intervals for the counts and rates a report quotes.

A rate read off a handful of events says little without its interval: "1 false alarm in 95 s"
is 38 per hour, but anything from 1 to 210 per hour is consistent with it. Two intervals cover
what the reports quote:

* `poisson_interval`: an event count over an exposure (false alarms per hour of beam, per
  million pulses): the exact (Garwood) central interval from the chi-square quantiles.
* `wilson_interval`: a share k of n (a recall, a per-block false-alarm rate): the Wilson score
  interval, which stays inside [0, 1] and behaves at k = 0 and k = n.

Both return plain floats, so they go straight into metrics.json.
"""

from __future__ import annotations

import math

from scipy.stats import chi2, norm


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1); got {level!r}.")


def poisson_interval(count: int, exposure: float = 1.0, level: float = 0.95) -> tuple[float, float]:
    """Exact central interval of a Poisson rate: `count` events over `exposure` units.

    Returns `(lo, hi)` in events per unit of exposure; `lo` is 0 when `count` is 0.

    Example:
        >>> lo, hi = poisson_interval(3, exposure=0.5)   # 3 false alarms in half an hour
        >>> round(lo, 2), round(hi, 2)
        (1.24, 17.53)
    """
    _check_level(level)
    if isinstance(count, bool) or int(count) != count or count < 0:
        raise ValueError(f"count must be a non-negative integer; got {count!r}.")
    if not exposure > 0 or not math.isfinite(exposure):
        raise ValueError(f"exposure must be a positive finite number; got {exposure!r}.")
    alpha = 1.0 - level
    lo = 0.0 if count == 0 else chi2.ppf(alpha / 2.0, 2 * count) / 2.0
    hi = chi2.ppf(1.0 - alpha / 2.0, 2 * count + 2) / 2.0
    return float(lo / exposure), float(hi / exposure)


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval of the share `k / n`; None when `n` is 0 (no share to bound).

    Example:
        >>> lo, hi = wilson_interval(1, 8)   # 1 false alarm among 8 normal pulses
        >>> round(lo, 3), round(hi, 3)
        (0.022, 0.471)
    """
    _check_level(level)
    if isinstance(k, bool) or isinstance(n, bool) or int(k) != k or int(n) != n or not 0 <= k <= n:
        raise ValueError(f"need integers 0 <= k <= n; got k={k!r}, n={n!r}.")
    if n == 0:
        return None
    z = float(norm.ppf(1.0 - (1.0 - level) / 2.0))
    share = k / n
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return float(lo), float(hi)
