"""Figures for the reports: training curves, ROC/PR, confusion matrix, score histograms,
calibration and example traces.

Each function returns a `matplotlib.figure.Figure` built without pyplot: no GUI backend is
needed or switched (headless nodes, SLURM jobs) and no figure piles up in pyplot's global
registry. Save with `fig.savefig(...)`; the figure is freed when it goes out of scope.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import precision_recall_curve, roc_curve

from analysis._checks import check_labels_scores
from analysis.evaluation import confusion_counts

NORMAL_COLOR = "#1f77b4"
ERRANT_COLOR = "#d62728"
POINT_COLOR = "#2ca02c"
EXAMPLE_CATEGORIES = ("caught", "missed", "false alarms")
_LR_KEYS = ("learning_rate", "lr")


def _metric_groups(history: Mapping[str, Sequence[float]]) -> list[str]:
    """Base metric names in plotting order: loss first, then the others; no lr, no epoch."""
    bases = []
    for key in history:
        base = key[4:] if key.startswith("val_") else key
        if base not in bases and base not in _LR_KEYS and base != "epoch":
            bases.append(base)
    return sorted(bases, key=lambda b: (b != "loss", bases.index(b)))


def plot_training_curves(history: Mapping[str, Sequence[float]]) -> Figure:
    """Per-epoch curves: one panel per metric (training and `val_` together), plus the
    learning rate (log scale) when the history holds `learning_rate` or `lr`."""
    if not history or not any(len(v) for v in history.values()):
        raise ValueError("history is empty; nothing to plot.")
    groups = _metric_groups(history)
    lr_key = next((k for k in _LR_KEYS if k in history and len(history[k])), None)
    n_panels = len(groups) + (lr_key is not None)
    n_cols = min(2, n_panels)
    n_rows = int(np.ceil(n_panels / n_cols))
    fig = Figure(figsize=(9, 3.2 * n_rows), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax, base in zip(axes, groups, strict=False):
        for key, style in ((base, "-"), (f"val_{base}", "--")):
            values = np.asarray(history.get(key, []), dtype=float)
            if values.size:
                ax.plot(np.arange(1, values.size + 1), values, style, marker="o", ms=3, label=key)
        ax.set_title(base)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if lr_key is not None:
        ax = axes[len(groups)]
        values = np.asarray(history[lr_key], dtype=float)
        ax.plot(np.arange(1, values.size + 1), values, marker="o", ms=3, color="gray")
        ax.set_yscale("log")
        ax.set_title("learning rate")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig


def _operating_point(labels, scores, threshold: float) -> tuple[float, float, float]:
    """(false-alarm rate, recall, precision) at `score >= threshold`."""
    cm = confusion_counts(labels, scores, threshold)
    far = cm["fp"] / (cm["fp"] + cm["tn"])
    recall = cm["tp"] / (cm["tp"] + cm["fn"])
    precision = cm["tp"] / (cm["tp"] + cm["fp"]) if cm["tp"] + cm["fp"] else 0.0
    return far, recall, precision


def plot_roc_curve(labels, scores, threshold: float) -> Figure:
    """ROC curve (recall against false-alarm rate) with the operating point marked."""
    y, s = check_labels_scores(labels, scores, require_both_classes=True)
    fpr, tpr, _ = roc_curve(y, s)
    far, recall, _ = _operating_point(y, s, threshold)
    fig = Figure(figsize=(5, 4.2), layout="constrained")
    ax = fig.subplots()
    ax.plot(fpr, tpr, color=ERRANT_COLOR, label="model")
    ax.plot([0, 1], [0, 1], ":", color="gray", label="chance")
    ax.plot([far], [recall], "o", color=POINT_COLOR, ms=8,
            label=f"threshold {threshold:.4g}\nFAR {far:.3g}, recall {recall:.3g}")
    ax.set_xlabel("false-alarm rate (normal pulses alarmed)")
    ax.set_ylabel("recall (errant pulses caught)")
    ax.set_title("ROC curve")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def plot_pr_curve(labels, scores, threshold: float) -> Figure:
    """Precision-recall curve with the prevalence baseline and the operating point."""
    y, s = check_labels_scores(labels, scores, require_both_classes=True)
    precision, recall, _ = precision_recall_curve(y, s)
    far, op_recall, op_precision = _operating_point(y, s, threshold)
    fig = Figure(figsize=(5, 4.2), layout="constrained")
    ax = fig.subplots()
    ax.step(recall, precision, where="post", color=ERRANT_COLOR, label="model")
    ax.axhline(y.mean(), ls=":", color="gray", label=f"prevalence {y.mean():.3g}")
    ax.plot([op_recall], [op_precision], "o", color=POINT_COLOR, ms=8,
            label=f"threshold {threshold:.4g}\nrecall {op_recall:.3g}, precision {op_precision:.3g}")
    ax.set_xlabel("recall (errant pulses caught)")
    ax.set_ylabel("precision (alarms that were errant)")
    ax.set_title("Precision-recall curve")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    return fig


def plot_confusion_matrix(confusion: Mapping[str, int]) -> Figure:
    """2x2 confusion matrix (rows: true class, columns: alarm or not) with counts and row shares."""
    try:
        grid = np.array([[confusion["tn"], confusion["fp"]], [confusion["fn"], confusion["tp"]]])
    except KeyError as err:
        raise ValueError(f"confusion needs keys tn, fp, fn, tp; missing {err}.") from None
    rows = grid.sum(axis=1, keepdims=True)
    shares = np.divide(grid, rows, out=np.zeros(grid.shape), where=rows > 0)
    fig = Figure(figsize=(4.6, 3.8), layout="constrained")
    ax = fig.subplots()
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    names = [["true normal", "false alarm"], ["missed", "caught"]]
    for i in range(2):
        for j in range(2):
            color = "white" if shares[i, j] > 0.6 else "black"
            ax.text(j, i, f"{grid[i, j]:,}\n{names[i][j]}\n({shares[i, j]:.1%} of row)",
                    ha="center", va="center", color=color, fontsize=9)
    ax.set_xticks([0, 1], ["no alarm", "alarm"])
    ax.set_yticks([0, 1], ["normal", "errant"])
    ax.set_xlabel("prediction")
    ax.set_ylabel("truth")
    ax.set_title("Confusion matrix")
    return fig


def plot_score_histograms(labels, scores, threshold: float, bins: int = 50) -> Figure:
    """Score histogram per class (log counts) with the threshold line; one class is fine."""
    y, s = check_labels_scores(labels, scores, require_both_classes=False)
    lo, hi = (0.0, 1.0) if s.min() >= 0.0 and s.max() <= 1.0 else (s.min(), s.max())
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    fig = Figure(figsize=(7, 3.6), layout="constrained")
    ax = fig.subplots()
    for label, name, color in ((0, "normal", NORMAL_COLOR), (1, "errant", ERRANT_COLOR)):
        part = s[y == label]
        if part.size:
            ax.hist(part, bins=edges, alpha=0.55, color=color, label=f"{name} (n={part.size:,})")
    ax.axvline(threshold, color="black", ls="--", label=f"threshold {threshold:.4g}")
    ax.set_yscale("log")
    ax.set_xlabel("score")
    ax.set_ylabel("pulses")
    ax.set_title("Scores by true class")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def plot_reliability_diagram(reliability: Sequence[Mapping]) -> Figure:
    """Calibration: observed errant frequency against mean score per bin, counts below.

    `reliability` is the list of bins from `evaluation.reliability_curve`.
    """
    filled = [b for b in reliability if b.get("count")]
    fig = Figure(figsize=(5.5, 5.2), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    top.plot([0, 1], [0, 1], ":", color="gray", label="perfect calibration")
    if filled:
        top.plot([b["mean_predicted"] for b in filled], [b["observed_frequency"] for b in filled],
                 "o-", color=ERRANT_COLOR, label="model")
    top.set_ylabel("observed errant frequency")
    top.set_title("Reliability diagram")
    top.set_xlim(0, 1)
    top.set_ylim(-0.02, 1.02)
    top.grid(alpha=0.3)
    top.legend(fontsize=8, loc="upper left")
    lefts = [b["lo"] for b in reliability]
    widths = [b["hi"] - b["lo"] for b in reliability]
    counts = [max(b["count"], 0) for b in reliability]
    bottom.bar(lefts, counts, width=widths, align="edge", color="gray", edgecolor="white")
    bottom.set_xlabel("mean score in bin")
    bottom.set_ylabel("pulses")
    return fig


def plot_example_traces(
    examples: Mapping[str, Sequence[tuple[np.ndarray, str]]], max_per_category: int = 4
) -> Figure:
    """Grid of traces: one row per category (e.g. caught, missed, false alarms), captioned."""
    if not examples:
        raise ValueError("examples is empty; nothing to plot.")
    n_cols = max(1, min(max_per_category, max((len(v) for v in examples.values()), default=1)))
    n_rows = len(examples)
    fig = Figure(figsize=(2.6 * n_cols + 0.6, 1.9 * n_rows + 0.4), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for row, (category, items) in enumerate(examples.items()):
        items = list(items)[:max_per_category]
        for col in range(n_cols):
            ax = axes[row, col]
            ax.tick_params(labelsize=6)
            if col < len(items):
                trace, caption = items[col]
                ax.plot(np.asarray(trace, dtype=float).reshape(-1), lw=0.6, color="black")
                ax.set_title(caption, fontsize=7)
            elif col == 0:
                ax.text(0.5, 0.5, "none", ha="center", va="center", transform=ax.transAxes)
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                ax.set_visible(False)
            if col == 0:
                ax.set_ylabel(category, fontsize=9)
    return fig


def pick_examples(traces, labels, scores, threshold: float, per_category: int = 4) -> dict:
    """Choose example traces for the report: {category: [(trace, caption), ...]}.

    "caught" (errant, alarmed) and "false alarms" (normal, alarmed) take the highest scores;
    "missed" (errant, not alarmed) the lowest, i.e. the clearest cases of each. `traces` is
    anything indexable by an int that yields one trace (array or an on-disk store).
    """
    y, s = check_labels_scores(labels, scores, require_both_classes=False)
    if len(traces) != y.size:
        raise ValueError(f"traces has {len(traces)} rows but labels has {y.size}.")
    alarm = s >= threshold
    chosen = {
        "caught": np.flatnonzero((y == 1) & alarm)[np.argsort(-s[(y == 1) & alarm], kind="stable")],
        "missed": np.flatnonzero((y == 1) & ~alarm)[np.argsort(s[(y == 1) & ~alarm], kind="stable")],
        "false alarms": np.flatnonzero((y == 0) & alarm)[np.argsort(-s[(y == 0) & alarm], kind="stable")],
    }
    return {
        name: [(np.asarray(traces[int(i)]), f"#{int(i)} score {s[i]:.3f}") for i in idx[:per_category]]
        for name, idx in chosen.items()
    }
