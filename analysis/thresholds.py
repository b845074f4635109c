"""Choosing the alarm threshold (the operating point) on validation scores.

An alarm is raised when `score >= threshold`. The threshold is chosen on the validation part
only, never on test data, and saved with the run together with how it was chosen and what it
achieved on validation.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any

import numpy as np

from analysis._checks import check_labels_scores
from utils.text import listing

METHODS = ("false_alarms_per_hour", "target_false_alarm_rate", "best_f1")
SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class ThresholdChoice:
    """An operating point and its validation figures.

    Attributes:
        threshold: alarm when score >= threshold.
        method: "target_false_alarm_rate" or "best_f1".
        target_false_alarm_rate: the requested rate (None for best_f1).
        false_alarm_rate, recall, precision, f1: achieved on the validation data
            (precision is 0.0 when nothing alarms, as in scikit-learn's zero_division=0).
        n_normal, n_errant: validation sample counts per class.
        chosen_on: which data the threshold was chosen on ("validation part" in a run's
            threshold.json); optional, so records written before it existed still load.
        false_alarms_per_hour: the requested rate in operator units (method
            "false_alarms_per_hour"; `target_false_alarm_rate` then holds the same rate per
            pulse, which the online recalibration tracks).
        normal_beam_hours: the beam time the normal pulses it was placed on stand for at the
            pulse rate (n_normal / pulse_rate_hz / 3600).
        resolved: False when that time is too short to hold even one false alarm at the
            requested rate: the threshold then sits just above every normal score it saw, and
            only an every-pulse stream (live, with online recalibration) can place it.
    """

    threshold: float
    method: str
    target_false_alarm_rate: float | None
    false_alarm_rate: float
    recall: float
    precision: float
    f1: float
    n_normal: int
    n_errant: int
    chosen_on: str | None = None
    false_alarms_per_hour: float | None = None
    normal_beam_hours: float | None = None
    resolved: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON (threshold.json)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ThresholdChoice:
        """Rebuild from `to_dict()` output (threshold.json as the train flow writes it).

        Raises ValueError naming the problem: a missing required key, an unknown key, an
        unknown method or a threshold that is not a finite number.
        """
        if not isinstance(data, dict):
            raise ValueError(f"Bad threshold record: expected a JSON object; got {type(data).__name__}.")
        names = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls) if f.default is MISSING}
        missing, unknown = required - set(data), set(data) - names
        if missing or unknown:
            raise ValueError(
                f"Bad threshold record: missing keys {sorted(missing)}, unknown keys {sorted(unknown)}."
            )
        threshold = data["threshold"]
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not np.isfinite(threshold):
            raise ValueError(f"Bad threshold record: threshold must be a finite number; got {threshold!r}.")
        if data["method"] not in METHODS:
            raise ValueError(f"Bad threshold record: method {data['method']!r}; expected one of {listing(METHODS)}.")
        return cls(**data)


def _counts_at(threshold: float, normal_sorted: np.ndarray, errant_sorted: np.ndarray) -> tuple[int, int]:
    """(false positives, true positives) when alarming at score >= threshold."""
    fp = normal_sorted.size - int(np.searchsorted(normal_sorted, threshold, side="left"))
    tp = errant_sorted.size - int(np.searchsorted(errant_sorted, threshold, side="left"))
    return fp, tp


def _target_far_threshold(scores: np.ndarray, normal: np.ndarray, target: float, dtype) -> float:
    """Smallest unique score t with share(normal >= t) <= target; else just above the max normal."""
    candidates = np.unique(scores)  # ascending
    n_at_or_above = normal.size - np.searchsorted(normal, candidates, side="left")
    # The same division as the reported rate, so "achieved <= target" holds exactly as reported.
    ok = np.flatnonzero(n_at_or_above / normal.size <= target)
    if ok.size:
        return float(candidates[ok[0]])  # FAR is non-increasing in t: first ok is the smallest
    # Every score value would alarm too often (e.g. ties at the top): go just above every
    # normal score, in the scores' own precision so a float32 comparison later agrees.
    top = np.asarray(normal[-1], dtype=dtype)
    return float(np.nextafter(top, np.asarray(np.inf, dtype=dtype)))


def _best_f1_threshold(scores: np.ndarray, normal: np.ndarray, errant: np.ndarray) -> float:
    """Unique score maximising F1; ties go to the higher threshold (fewer alarms)."""
    candidates = np.unique(scores)[::-1]
    fp = normal.size - np.searchsorted(normal, candidates, side="left")
    tp = errant.size - np.searchsorted(errant, candidates, side="left")
    fn = errant.size - tp
    f1 = 2 * tp / (2 * tp + fp + fn)
    return float(candidates[int(np.argmax(f1))])


def choose_threshold(
    labels,
    scores,
    method: str = "target_false_alarm_rate",
    target_false_alarm_rate: float | None = 0.01,
    *,
    false_alarms_per_hour: float | None = None,
    pulse_rate_hz: float = 60.0,
) -> ThresholdChoice:
    """Choose the alarm threshold on validation labels (0 normal, 1 errant) and scores.

    Args:
        labels: array-like of 0/1, validation part.
        scores: array-like of finite scores (higher = more likely errant).
        method: "target_false_alarm_rate": the smallest threshold t (among the unique scores)
            whose false-alarm rate, the share of normal scores >= t, is at most the target.
            Ties are counted whole, so the achieved rate never exceeds the target; if no score
            value meets it, t is the next float above the highest normal score (rate 0).
            "best_f1": the unique score that maximises F1.
            "false_alarms_per_hour": the lowest threshold at which the normal pulses, standing
            for n_normal / pulse_rate_hz seconds of beam, give at most `false_alarms_per_hour`
            times those hours false alarms (`threshold_for_false_alarms`); `resolved` is False
            when that is less than one.
        target_false_alarm_rate: in [0, 1]; used by "target_false_alarm_rate" only.
        false_alarms_per_hour, pulse_rate_hz: used by "false_alarms_per_hour" only.

    Returns:
        A `ThresholdChoice` with the threshold and its validation figures.

    Example:
        >>> choice = choose_threshold([0, 0, 0, 1], [0.1, 0.2, 0.3, 0.9], target_false_alarm_rate=0.0)
        >>> choice.threshold, choice.recall
        (0.9, 1.0)
    """
    if method not in METHODS:
        raise ValueError(f"Unknown threshold method {method!r}; expected one of {listing(METHODS)}.")
    y, s = check_labels_scores(labels, scores, require_both_classes=True)
    score_dtype = np.asarray(scores).dtype
    if not np.issubdtype(score_dtype, np.floating):
        score_dtype = np.float64
    normal = np.sort(s[y == 0])
    errant = np.sort(s[y == 1])

    extra: dict[str, Any] = {}
    if method == "false_alarms_per_hour":
        if false_alarms_per_hour is None or not false_alarms_per_hour > 0 or not pulse_rate_hz > 0:
            raise ValueError(f"false_alarms_per_hour and pulse_rate_hz must be positive; got "
                             f"{false_alarms_per_hour!r} and {pulse_rate_hz!r}.")
        hours = normal.size / float(pulse_rate_hz) / SECONDS_PER_HOUR
        allowed = int(np.floor(float(false_alarms_per_hour) * hours + 1e-9))
        threshold = threshold_for_false_alarms(normal, allowed)
        target = float(false_alarms_per_hour) / (float(pulse_rate_hz) * SECONDS_PER_HOUR)
        extra = dict(false_alarms_per_hour=float(false_alarms_per_hour), normal_beam_hours=hours,
                     resolved=allowed >= 1)
    elif method == "target_false_alarm_rate":
        if target_false_alarm_rate is None or not 0.0 <= float(target_false_alarm_rate) <= 1.0:
            raise ValueError(
                f"target_false_alarm_rate must be a number in [0, 1]; got {target_false_alarm_rate!r}."
            )
        target = float(target_false_alarm_rate)
        threshold = _target_far_threshold(s, normal, target, score_dtype)
    else:
        target = None
        threshold = _best_f1_threshold(s, normal, errant)

    fp, tp = _counts_at(threshold, normal, errant)
    fn = errant.size - tp
    return ThresholdChoice(
        threshold=threshold,
        method=method,
        target_false_alarm_rate=target,
        false_alarm_rate=fp / normal.size,
        recall=tp / errant.size,
        precision=tp / (tp + fp) if tp + fp else 0.0,
        f1=2 * tp / (2 * tp + fp + fn),
        n_normal=int(normal.size),
        n_errant=int(errant.size),
        **extra,
    )


def threshold_for_false_alarms(normal_sorted: np.ndarray, allowed: int) -> float:
    """Lowest threshold (alarm at score >= t) at which at most `allowed` of the sorted normal
    scores alarm; ties are counted whole, so the count never exceeds `allowed`."""
    normal_sorted = np.asarray(normal_sorted)
    n = normal_sorted.size
    if allowed < 0:
        raise ValueError(f"allowed false alarms must be >= 0; got {allowed!r}.")
    if n == 0:
        raise ValueError("no normal scores to place a threshold on.")
    if allowed >= n:
        return float(normal_sorted[0])
    # the (allowed+1)-th highest normal score must stay below t: t is the next score above it
    pivot = normal_sorted[n - allowed - 1]
    above = normal_sorted[normal_sorted > pivot]
    if above.size:
        return float(above[0])
    return float(np.nextafter(pivot, np.asarray(np.inf, dtype=normal_sorted.dtype)))
