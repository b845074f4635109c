"""Metrics of a scored part (labels 0 normal / 1 errant, scores in [0, 1]) at a threshold.

Everything returned is plain Python (int, float, None, dict, list), so it goes straight into
metrics.json. Metrics that need both classes are None when a class is missing, with a note
saying why, rather than an error: a short test period may hold no errant pulse at all.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    matthews_corrcoef,
    roc_auc_score,
)

from analysis._checks import check_labels_scores
from analysis.intervals import poisson_interval, wilson_interval
from analysis.thresholds import choose_threshold, threshold_for_false_alarms

SECONDS_PER_HOUR = 3600.0
RELIABILITY_BINS = 10


def confusion_counts(labels, scores, threshold: float) -> dict[str, int]:
    """Confusion matrix at `score >= threshold` as {"tn", "fp", "fn", "tp"}."""
    y, s = check_labels_scores(labels, scores, require_both_classes=False)
    alarm = s >= float(threshold)
    return {
        "tn": int(np.sum(~alarm & (y == 0))),
        "fp": int(np.sum(alarm & (y == 0))),
        "fn": int(np.sum(~alarm & (y == 1))),
        "tp": int(np.sum(alarm & (y == 1))),
    }


def reliability_curve(labels, scores, n_bins: int = RELIABILITY_BINS) -> list[dict]:
    """Calibration table: equal-width score bins over [0, 1].

    One dict per bin: `lo`, `hi`, `count`, `mean_predicted`, `observed_frequency` (the share of
    errant samples in the bin); the two means are None for an empty bin. Scores outside [0, 1]
    are clipped into the end bins.
    """
    y, s = check_labels_scores(labels, scores, require_both_classes=False)
    edges = np.arange(n_bins + 1) / n_bins  # exact decimal edges (0.3, not 0.30000000000000004)
    index = np.clip(np.digitize(s, edges[1:-1], right=False), 0, n_bins - 1)
    table = []
    for b in range(n_bins):
        members = index == b
        count = int(members.sum())
        table.append({
            "lo": float(edges[b]),
            "hi": float(edges[b + 1]),
            "count": count,
            "mean_predicted": float(s[members].mean()) if count else None,
            "observed_frequency": float(y[members].mean()) if count else None,
        })
    return table


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def compute_metrics(labels, scores, threshold: float, pulse_rate_hz: float = 60.0) -> dict:
    """All summary metrics of one part at the chosen threshold (alarm when score >= threshold).

    Returns a JSON-able dict with: n, n_errant, n_normal, threshold, roc_auc, pr_auc (average
    precision), precision, recall, recall_at_threshold, specificity, f1, mcc,
    confusion_matrix {tn, fp, fn, tp}, false_alarm_rate (FP / normal pulses), brier,
    normal_beam_hours (the beam time the normal pulses stand for at `pulse_rate_hz`),
    expected_calibration_error, reliability (10 bins), errant_caught {caught, total},
    false_alarms_per_hour, pulse_rate_hz and notes (list of str); with 95 % intervals
    `recall_interval` and `false_alarm_rate_interval` (Wilson) and
    `false_alarms_per_hour_interval` (exact Poisson on the false alarms over the beam time
    the normal pulses stand for), each [lo, hi] or None.

    `false_alarms_per_hour` = false_alarm_rate * pulse_rate_hz * 3600: an extrapolation that
    treats every pulse of the beam (60 Hz at SNS) like the normal pulses of this sample.
    Precision is 0.0 when nothing alarms (scikit-learn's zero_division=0), with a note.
    """
    y, s = check_labels_scores(labels, scores, require_both_classes=False)
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number; got {threshold!r}.")
    if not pulse_rate_hz > 0:
        raise ValueError(f"pulse_rate_hz must be positive; got {pulse_rate_hz!r}.")
    n, n_errant = int(y.size), int(y.sum())
    n_normal = n - n_errant
    both = n_errant > 0 and n_normal > 0
    cm = confusion_counts(y, s, threshold)
    tp, fp, fn, tn = cm["tp"], cm["fp"], cm["fn"], cm["tn"]
    notes: list[str] = []
    if not both:
        missing = "errant (label 1)" if n_errant == 0 else "normal (label 0)"
        notes.append(
            f"Only one class present (no {missing} samples): ROC AUC, PR AUC and MCC are not "
            "defined; recall, specificity and rates that need the missing class are None."
        )
    if tp + fp == 0:
        notes.append("No alarms at this threshold: precision reported as 0.")

    recall = _ratio(tp, n_errant)
    far = _ratio(fp, n_normal)
    in_unit_range = bool(np.all((s >= 0.0) & (s <= 1.0)))
    if not in_unit_range:
        notes.append("Scores are not all in [0, 1]: Brier score and calibration are not defined.")
    reliability = reliability_curve(y, s) if in_unit_range else []
    return {
        "n": n,
        "normal_beam_hours": n_normal / pulse_rate_hz / SECONDS_PER_HOUR,
        "n_errant": n_errant,
        "n_normal": n_normal,
        "threshold": float(threshold),
        "roc_auc": float(roc_auc_score(y, s)) if both else None,
        "pr_auc": float(average_precision_score(y, s)) if both else None,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": recall,
        "recall_at_threshold": recall,
        "specificity": _ratio(tn, n_normal),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "mcc": float(matthews_corrcoef(y, (s >= threshold).astype(np.int64))) if both else None,
        "confusion_matrix": cm,
        "false_alarm_rate": far,
        "brier": float(brier_score_loss(y, s, labels=[0, 1])) if in_unit_range else None,
        "expected_calibration_error": _expected_calibration_error(reliability, n) if in_unit_range else None,
        "reliability": reliability,
        "errant_caught": {"caught": tp, "total": n_errant},
        "false_alarms_per_hour": far * pulse_rate_hz * SECONDS_PER_HOUR if far is not None else None,
        "pulse_rate_hz": float(pulse_rate_hz),
        "recall_interval": _as_list(wilson_interval(tp, n_errant)),
        "false_alarm_rate_interval": _as_list(wilson_interval(fp, n_normal)),
        "false_alarms_per_hour_interval": (
            list(poisson_interval(fp, n_normal / pulse_rate_hz / SECONDS_PER_HOUR)) if n_normal else None),
        "notes": notes,
    }


def _as_list(interval: tuple[float, float] | None) -> list[float] | None:
    return None if interval is None else list(interval)


def _expected_calibration_error(reliability: list[dict], n: int) -> float:
    """Count-weighted mean |observed frequency - mean predicted| over the bins."""
    total = sum(
        b["count"] * abs(b["observed_frequency"] - b["mean_predicted"]) for b in reliability if b["count"]
    )
    return float(total / n)


def recall_at_false_alarm_rate(labels, scores, far: float) -> float:
    """Recall at the smallest threshold whose false-alarm rate on these data is <= `far`.

    Uses the same rule as `choose_threshold(method="target_false_alarm_rate")`; both classes
    are required.
    """
    return choose_threshold(labels, scores, "target_false_alarm_rate", far).recall


def bootstrap_interval(
    labels,
    scores,
    metric_fn: Callable[[np.ndarray, np.ndarray], float | None],
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile bootstrap interval `(lo, hi)` of `metric_fn(labels, scores)`.

    Resampling is stratified: each class is resampled with replacement to its own size, so
    every replicate keeps the class counts (a rare-class metric never sees zero errant pulses).
    Replicates where the metric returns None or NaN are left out; if all are, ValueError.
    The same `seed` gives the same interval.

    Example:
        >>> lo, hi = bootstrap_interval(y, s, roc_auc_score, n_boot=500, seed=1)
    """
    y, s = check_labels_scores(labels, scores, require_both_classes=False)
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be at least 1; got {n_boot!r}.")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1); got {alpha!r}.")
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(y == c) for c in (0, 1)]
    groups = [g for g in groups if g.size]
    values = []
    for _ in range(int(n_boot)):
        idx = np.concatenate([rng.choice(g, size=g.size, replace=True) for g in groups])
        value = metric_fn(y[idx], s[idx])
        if value is not None and np.isfinite(value):
            values.append(float(value))
    if not values:
        raise ValueError("The metric was undefined (None/NaN) on every bootstrap replicate.")
    lo, hi = np.quantile(values, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(lo), float(hi)


def time_blocks(timestamps_ns, n_blocks: int) -> np.ndarray:
    """Block id (0 = earliest) per pulse: the pulses in time order cut into `n_blocks`
    consecutive blocks of (nearly) equal counts, so each block's rate has similar precision.
    Fewer pulses than blocks give one block per pulse."""
    ts = np.asarray(timestamps_ns)
    if ts.ndim != 1:
        raise ValueError(f"timestamps_ns must be 1-D; got shape {ts.shape}.")
    if int(n_blocks) < 1:
        raise ValueError(f"n_blocks must be at least 1; got {n_blocks!r}.")
    order = np.argsort(ts, kind="stable")
    blocks = np.empty(ts.size, dtype=np.int64)
    blocks[order] = np.arange(ts.size) * min(int(n_blocks), max(ts.size, 1)) // max(ts.size, 1)
    return blocks


def rates_by_block(labels, scores, threshold: float, block_ids, online_alarms=None) -> list[dict]:
    """False-alarm rate and recall per block (a time block or a configuration group).

    One dict per block id, in ascending id order: `block`, `n`, `n_normal`, `n_errant`,
    `false_alarms`, `false_alarm_rate`, `caught`, `recall` at the fixed `threshold`; with
    `online_alarms` (bool per pulse, from `recalibration.online_thresholds`) also
    `online_false_alarms`, `online_false_alarm_rate`, `online_caught`, `online_recall`.
    Rates are None where the block has no pulse of that class.
    """
    y, s = check_labels_scores(labels, scores, require_both_classes=False)
    ids = np.asarray(block_ids)
    if ids.shape != y.shape:
        raise ValueError(f"block_ids must have one id per pulse; got shape {ids.shape} for {y.size} pulses.")
    alarm_sets = {"": s >= float(threshold)}
    if online_alarms is not None:
        online = np.asarray(online_alarms)
        if online.shape != y.shape or online.dtype != bool:
            raise ValueError(f"online_alarms must be bool with one flag per pulse; got {online.dtype} "
                             f"shape {online.shape} for {y.size} pulses.")
        alarm_sets["online_"] = online
    table = []
    for block in np.unique(ids):
        members = ids == block
        normal, errant = members & (y == 0), members & (y == 1)
        n_normal, n_errant = int(normal.sum()), int(errant.sum())
        row = {"block": block.item(), "n": int(members.sum()), "n_normal": n_normal, "n_errant": n_errant}
        for prefix, alarms in alarm_sets.items():
            false_alarms, caught = int(alarms[normal].sum()), int(alarms[errant].sum())
            row |= {f"{prefix}false_alarms": false_alarms,
                    f"{prefix}false_alarm_rate": _ratio(false_alarms, n_normal),
                    f"{prefix}caught": caught, f"{prefix}recall": _ratio(caught, n_errant)}
        table.append(row)
    return table


OPERATING_RATES_PER_HOUR = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)


def operating_curve(labels, scores, pulse_rate_hz: float = 60.0,
                    per_hour=OPERATING_RATES_PER_HOUR) -> list[dict]:
    """Recall of errant pulses against false alarms per hour of beam, one row per rate.

    The normal pulses stand for `n_normal / pulse_rate_hz` seconds of beam (exact for an
    every-pulse stream; an extrapolation for sampled acquisitions). For each rate r the
    threshold is the lowest score whose false alarms stay at or below r times those hours
    (`threshold_for_false_alarms`). Each row: `per_hour` (r), `threshold`, `false_alarms`,
    `false_alarms_per_hour` (achieved) with its Poisson interval, `caught`, `recall` with its
    Wilson interval (None without errant pulses), and `resolved`: False where r times the
    hours is below one false alarm, so the data cannot tell that rate from zero (the row then
    holds the zero-false-alarm point).
    """
    y, s = check_labels_scores(labels, scores, require_both_classes=False)
    if not pulse_rate_hz > 0:
        raise ValueError(f"pulse_rate_hz must be positive; got {pulse_rate_hz!r}.")
    normal, errant = np.sort(s[y == 0]), np.sort(s[y == 1])
    if not normal.size:
        raise ValueError("operating_curve: no normal pulses (label 0) to place false alarms on.")
    hours = normal.size / pulse_rate_hz / SECONDS_PER_HOUR
    rows = []
    for rate in per_hour:
        if not rate > 0:
            raise ValueError(f"per_hour rates must be positive; got {rate!r}.")
        allowed = int(np.floor(rate * hours + 1e-9))
        threshold = threshold_for_false_alarms(normal, allowed)
        false_alarms = normal.size - int(np.searchsorted(normal, threshold, side="left"))
        caught = errant.size - int(np.searchsorted(errant, threshold, side="left"))
        rows.append({
            "per_hour": float(rate), "threshold": threshold, "false_alarms": false_alarms,
            "false_alarms_per_hour": false_alarms / hours,
            "false_alarms_per_hour_interval": list(poisson_interval(false_alarms, hours)),
            "caught": caught, "recall": caught / errant.size if errant.size else None,
            "recall_interval": _as_list(wilson_interval(caught, errant.size)),
            "resolved": allowed >= 1, "hours": hours,
        })
    return rows

