"""Detection benchmark, part 4: the Markdown tables of the detection section (figures per
model, recall breakdown, calibration checks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks import stats
from benchmarks.detection_truth import STRENGTH_BINS
from benchmarks.report import render_table


def _cell(summary: dict, digits: int = 3) -> str:
    text = stats.format_mean_spread(summary, digits)
    interval = stats.format_interval(summary.get("lo"), summary.get("hi"), digits)
    return f"{text} {interval}".strip()


def render(result: dict) -> str:
    """Markdown tables of the detection section."""
    rows = []
    best_pr = result["models"].get("sns_cnn_lstm", {}).get("summary", {}).get("pr_auc", {})
    for name, model in result["models"].items():
        s = model["summary"]
        caught = s["caught"]
        run = model["runs"][0]
        note = f"{s['seeds']} seed{'s' if s['seeds'] > 1 else ''}"
        if "epochs_trained" in run:
            note += f", {run['epochs_trained']} ep, {run['train_samples']} fitted"
        rows.append([
            name, note, _cell(s["pr_auc"]),
            stats.format_ratio(stats.ratio(s["pr_auc"]["mean"], best_pr.get("mean"))),
            _cell(s["roc_auc"]), _cell(s["recall"]), _cell(s["false_alarms_per_hour"], 0),
            f"{stats.format_number(caught['mean'], 1)} of {s['n_errant']} "
            f"{stats.format_interval(caught['lo'], caught['hi'], 0)}",
            stats.format_number(np.mean([r["train_seconds"] for r in model["runs"]]), 1),
        ])
    split = result["split"]
    lines = [
        "### Detection quality (test part)",
        "",
        f"Archive `{Path(result['archive']).name}`: {result['samples']} samples; split by time "
        + ", ".join(f"{p} {v['n']} ({v['n_errant']} errant)" for p, v in split.items())
        + f". Operating point chosen on validation at false-alarm rate "
        f"{result['target_false_alarm_rate']}; bootstrap intervals over the test pulses "
        f"({result['n_boot']} resamples). Mean ± sample s.d. over seeds, then the 95 % interval.",
        "",
        render_table(["model", "runs", "PR AUC", "vs default", "ROC AUC", "recall",
                      "false alarms / h", "errant caught", "train s"], rows, align="llrrrrrrr"),
    ]
    lines += ["", _render_breakdown(result), "", _render_calibration(result)]
    return "\n".join(lines)


def _render_breakdown(result: dict) -> str:
    kinds = sorted({k for m in result["models"].values() for s in m["seeds"]
                    for k in s["breakdown"]["by_kind"]})
    headers = ["model"] + [f"kind {k}" for k in kinds] + [f"{b}" for b in STRENGTH_BINS]
    rows = []
    for name, model in result["models"].items():
        row = [name]
        for group, keys in (("by_kind", kinds), ("by_strength", STRENGTH_BINS)):
            for key in keys:
                caught = sum(s["breakdown"][group].get(key, {}).get("caught", 0)
                             for s in model["seeds"])
                total = sum(s["breakdown"][group].get(key, {}).get("total", 0)
                            for s in model["seeds"])
                row.append(f"{caught}/{total} ({stats.format_number(stats.ratio(caught, total), 2)})"
                           if total else "")
        rows.append(row)
    first = next(iter(result["models"].values()))["seeds"][0]["breakdown"]
    ceiling = first["ceiling"]
    edges = ", ".join(stats.format_number(e, 3) for e in result["strength_edges"])
    return "\n".join([
        "Recall at the operating point by precursor kind and strength bin (test trips, summed "
        f"over seeds; strength tertile edges {edges}). Ceiling: "
        f"{ceiling['with_precursor']} of {ceiling['trips']} test trips have any precursor "
        f"({stats.format_number(ceiling['share'], 3)}); {first['unmatched']} test trips not "
        "found in truth.csv.",
        "",
        render_table(headers, rows),
    ])


def _render_calibration(result: dict) -> str:
    rows = [[c["check"], c["figure"], c["criterion"], "yes" if c["passed"] else "NO"]
            for c in result["calibration"]]
    return "\n".join(["Simulator calibration checks:", "",
                      render_table(["check", "figure", "criterion", "met"], rows, align="llll")])
