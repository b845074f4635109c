"""Figures with their uncertainty: bootstrap intervals at an operating point, mean +- spread, ratios.

Every benchmark table reports a value with how far it can be trusted: a bootstrap 95 % interval
over the test pulses (`analysis.evaluation.bootstrap_interval`, stratified by class) and, for
models trained with several seeds, the mean and spread over seeds. Ratios put two figures
measured side by side in one run into one number.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from analysis.evaluation import SECONDS_PER_HOUR, bootstrap_interval, compute_metrics

METRICS = ("pr_auc", "roc_auc", "recall", "false_alarms_per_hour", "caught")


def metric_functions(threshold: float, pulse_rate_hz: float = 60.0) -> dict[str, Callable]:
    """`{name: fn(labels, scores) -> float}` for each of `METRICS` at the alarm `threshold`."""
    t = float(threshold)

    def recall(y, s):
        errant = s[y == 1]
        return float(np.mean(errant >= t)) if errant.size else None

    def fa_per_hour(y, s):
        normal = s[y == 0]
        return float(np.mean(normal >= t)) * pulse_rate_hz * SECONDS_PER_HOUR if normal.size else None

    def caught(y, s):
        return float(np.sum(s[y == 1] >= t))

    return {
        "pr_auc": lambda y, s: float(average_precision_score(y, s)),
        "roc_auc": lambda y, s: float(roc_auc_score(y, s)),
        "recall": recall,
        "false_alarms_per_hour": fa_per_hour,
        "caught": caught,
    }


def scored_figures(labels, scores, threshold: float, *, pulse_rate_hz: float = 60.0,
                   n_boot: int = 1000, seed: int = 0) -> dict:
    """Test-part figures at `threshold`, each `{"value", "lo", "hi"}` (bootstrap 95 % interval).

    Also `n_errant` and `n_normal`; `caught` is a count out of `n_errant`. The full
    `compute_metrics` dict is under `"metrics"`.
    """
    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    metrics = compute_metrics(y, s, threshold, pulse_rate_hz=pulse_rate_hz)
    both = metrics["n_errant"] > 0 and metrics["n_normal"] > 0
    values = {
        "pr_auc": metrics["pr_auc"],
        "roc_auc": metrics["roc_auc"],
        "recall": metrics["recall"],
        "false_alarms_per_hour": metrics["false_alarms_per_hour"],
        "caught": float(metrics["errant_caught"]["caught"]),
    }
    out = {"n_errant": metrics["n_errant"], "n_normal": metrics["n_normal"],
           "threshold": float(threshold), "metrics": metrics}
    for name, fn in metric_functions(threshold, pulse_rate_hz).items():
        value = values[name]
        if value is None or not both:
            out[name] = {"value": value, "lo": None, "hi": None}
            continue
        lo, hi = bootstrap_interval(y, s, fn, n_boot=n_boot, seed=seed)
        out[name] = {"value": float(value), "lo": lo, "hi": hi}
    return out


def mean_spread(values: Sequence[float | None]) -> dict:
    """`{"mean", "spread", "n"}` of the finite values; spread is the sample standard deviation.

    With one value the spread is None (one seed says nothing about seed-to-seed variation);
    with none, mean and spread are None.
    """
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return {"mean": None, "spread": None, "n": 0}
    spread = float(np.std(finite, ddof=1)) if len(finite) > 1 else None
    return {"mean": float(np.mean(finite)), "spread": spread, "n": len(finite)}


def combine_seeds(per_seed: Sequence[dict]) -> dict:
    """Per-metric mean +- spread over seeds of `scored_figures` results.

    The interval reported is the mean of the seeds' interval ends: the test-sample uncertainty
    of a typical seed (the spread says how much seeds disagree).
    """
    out = {"seeds": len(per_seed)}
    for name in METRICS:
        cells = [fig[name] for fig in per_seed]
        summary = mean_spread([c["value"] for c in cells])
        los = [c["lo"] for c in cells if c["lo"] is not None]
        his = [c["hi"] for c in cells if c["hi"] is not None]
        summary["lo"] = float(np.mean(los)) if los else None
        summary["hi"] = float(np.mean(his)) if his else None
        out[name] = summary
    out["n_errant"] = per_seed[0]["n_errant"] if per_seed else 0
    out["n_normal"] = per_seed[0]["n_normal"] if per_seed else 0
    return out


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return float(numerator) / float(denominator)


def format_ratio(value: float | None, digits: int = 2) -> str:
    """`"3.20x"`; `"n/a"` for None."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f}x"


def format_number(value: float | None, digits: int = 3) -> str:
    """Fixed decimals below 1000, thousands separators above; `"n/a"` for None."""
    if value is None or not math.isfinite(float(value)):
        return "n/a"
    value = float(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def format_mean_spread(summary: dict, digits: int = 3) -> str:
    """`"0.812 +- 0.031"`, or `"0.812"` when there is no spread (one seed)."""
    text = format_number(summary.get("mean"), digits)
    if summary.get("spread") is not None:
        text += f" ± {format_number(summary['spread'], digits)}"
    return text


def format_interval(lo: float | None, hi: float | None, digits: int = 3) -> str:
    """`"[0.700, 0.900]"`; empty when the interval is not defined."""
    if lo is None or hi is None:
        return ""
    return f"[{format_number(lo, digits)}, {format_number(hi, digits)}]"
