"""Operating figures of an every-pulse stream: recall against false alarms per hour, measured.

The stream section (`benchmarks.stream`) scores every pulse of hours of simulated beam through
the exported artefact and the live engine; this module turns those scores into what an operator
asks: at 1, 10 or 100 false alarms an hour, what share of errant trips is warned of - overall and
by precursor kind, strength and onset - and whether the deployed operating point (the run's
threshold followed by the online recalibration) holds the configured rate. Arrays in, plain
dicts out, so the figures go into the results JSON and the rendered doc.

Truth comes from the simulator, not from the engine's live labels: a pulse is errant (1) when
the next pulse trips, normal (0), or neither (-1: the trip pulse, and run-up pulses earlier than
the one before the trip, whose alarms are early warnings, not false alarms).
"""

from __future__ import annotations

import numpy as np

from analysis.evaluation import operating_curve
from analysis.intervals import poisson_interval, wilson_interval
from benchmarks.report import render_table

CURVE_RATES = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
BREAKDOWN_RATES = (10.0, 100.0)
STRENGTH_BINS = (0.0, 0.3, 1.0, np.inf)  # weak / medium / strong, baseline-loss units


def _counts(labels: np.ndarray, alarms: np.ndarray, hours: float) -> dict:
    normal, errant = labels == 0, labels == 1
    false_alarms, caught = int(alarms[normal].sum()), int(alarms[errant].sum())
    return {"false_alarms": false_alarms, "false_alarms_per_hour": false_alarms / hours,
            "false_alarms_per_hour_interval": list(poisson_interval(false_alarms, hours)),
            "caught": caught, "errant": int(errant.sum()),
            "recall": caught / errant.sum() if errant.any() else None,
            "recall_interval": (list(wilson_interval(caught, int(errant.sum())))
                                if errant.any() else None)}


def stream_figures(labels, scores, online_alarms, fixed_threshold: float, *, precursor,
                   onset, strength, pulse_rate_hz: float = 60.0,
                   target_per_hour: float | None = None) -> dict:
    """Curve, deployed operating points and the recall breakdown of one scored stream.

    Args:
        labels: int [n] truth per scored pulse (1 errant, 0 normal, -1 neither).
        scores: float [n]; online_alarms: bool [n] at the threshold in force (online) or None.
        fixed_threshold: the run's validation threshold.
        precursor, onset, strength: per pulse, from the stream's truth.
        target_per_hour: the configured false alarms per hour (None: not configured so).
    """
    y = np.asarray(labels, np.int64)
    s = np.asarray(scores, np.float64)
    keep = y >= 0
    hours = float((y == 0).sum()) / pulse_rate_hz / 3600.0
    curve = operating_curve(y[keep], s[keep], pulse_rate_hz, CURVE_RATES)
    out = {"hours_of_normal_beam": hours, "n_normal": int((y == 0).sum()),
           "n_errant": int((y == 1).sum()), "curve": curve,
           "fixed": {"threshold": float(fixed_threshold),
                     **_counts(y, s >= fixed_threshold, hours)},
           "target_per_hour": target_per_hour}
    if online_alarms is not None:
        online = _counts(y, np.asarray(online_alarms, bool), hours)
        if target_per_hour:
            online["measured_over_target"] = online["false_alarms_per_hour"] / target_per_hour
        out["online"] = online
    errant = y == 1
    groups = {"kind": np.asarray(precursor)[errant],
              "onset": np.where(np.asarray(onset)[errant] >= 3, "3+",
                                np.asarray(onset)[errant].astype(str)),
              "strength": np.array(["weak (<0.3)", "medium (0.3-1)", "strong (>1)"])[
                  np.clip(np.digitize(np.asarray(strength)[errant], STRENGTH_BINS) - 1, 0, 2)]}
    s_errant = s[errant]
    breakdown = {}
    for rate in BREAKDOWN_RATES:
        threshold = next(r["threshold"] for r in curve if r["per_hour"] == rate)
        caught = s_errant >= threshold
        breakdown[str(rate)] = {
            by: {str(value): {"caught": int(caught[values == value].sum()),
                              "total": int((values == value).sum())}
                 for value in sorted(set(values.tolist()))}
            for by, values in groups.items()}
    out["breakdown"] = breakdown
    return out


def _cell(value: float | None, interval, digits: int = 2) -> str:
    if value is None:
        return "-"
    text = f"{value:.{digits}f}"
    return text if not interval else f"{text} [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"


def render(figures: dict) -> str:
    """Markdown: the operating curve, the deployed points and recall by precursor."""
    f = figures
    lines = [f"**Recall against false alarms per hour, measured on every pulse** "
             f"({f['hours_of_normal_beam']:.2f} h of normal beam, {f['n_normal']:,} normal and "
             f"{f['n_errant']} errant pulses; 95 % intervals: Wilson for recall, Poisson for "
             "the rate; a row is *unresolved* where the stream is too short to hold one false "
             "alarm at that rate):", ""]
    rows = [[f"{r['per_hour']:g}", f"{r['threshold']:.4g}", str(r["false_alarms"]),
             _cell(r["false_alarms_per_hour"], r["false_alarms_per_hour_interval"], 1),
             _cell(r["recall"], r["recall_interval"]),
             "" if r["resolved"] else "unresolved"] for r in f["curve"]]
    lines += [render_table(["false alarms / h (placed)", "threshold", "false alarms",
                            "false alarms / h (measured)", "recall", ""], rows), ""]
    points = [["fixed validation threshold", f"{f['fixed']['threshold']:.4g}",
               _cell(f["fixed"]["false_alarms_per_hour"],
                     f["fixed"]["false_alarms_per_hour_interval"], 1),
               _cell(f["fixed"]["recall"], f["fixed"]["recall_interval"])]]
    if "online" in f:
        o = f["online"]
        ratio = o.get("measured_over_target")
        points.append([f"online recalibration (target {f['target_per_hour']} / h)"
                       if f["target_per_hour"] else "online recalibration", "follows",
                       _cell(o["false_alarms_per_hour"], o["false_alarms_per_hour_interval"], 1)
                       + ("" if ratio is None else f" ({ratio:.2f}x target)"),
                       _cell(o["recall"], o["recall_interval"])])
    lines += ["**The deployed operating point on the same stream:**", "",
              render_table(["operating point", "threshold", "false alarms / h", "recall"],
                           points), ""]
    for rate, table in f["breakdown"].items():
        rows = [[by, value, f"{c['caught']} / {c['total']}",
                 _cell(c["caught"] / c["total"] if c["total"] else None,
                       wilson_interval(c["caught"], c["total"]))]
                for by, values in table.items() for value, c in values.items()]
        lines += [f"**Errant trips warned of at {float(rate):g} false alarms per hour, by "
                  "precursor:**", "", render_table(["by", "value", "caught", "recall"], rows), ""]
    return "\n".join(lines)
