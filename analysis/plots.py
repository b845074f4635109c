"""Figures for the reports: training curves, ROC/PR, confusion matrix, score histograms,
calibration, example pulses over their references, and the operating point per block.

Each function returns a `matplotlib.figure.Figure` built without pyplot: no GUI backend is
needed or switched (headless nodes, SLURM jobs) and no figure piles up in pyplot's global
registry. Save with `fig.savefig(...)`; the figure is freed when it goes out of scope.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter
from sklearn.metrics import precision_recall_curve, roc_curve

from analysis._checks import check_labels_scores
from analysis.evaluation import SECONDS_PER_HOUR, confusion_counts, operating_curve
from analysis.intervals import poisson_interval, wilson_interval

NORMAL_COLOR = "#1f77b4"
ERRANT_COLOR = "#d62728"
POINT_COLOR = "#2ca02c"
EXAMPLE_CATEGORIES = ("caught", "missed", "false alarms")
_LR_KEYS = ("learning_rate", "lr")
KERAS_CUT_METRICS = ("precision", "recall")  # Keras' own metrics count a score >= 0.5 as an alarm
TRACE_QUANTITY = "differential current (archive units)"


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
        ax.set_title(f"{base} (Keras, score >= 0.5)" if base in KERAS_CUT_METRICS else base)
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
    _unit_square(ax, "false-alarm rate (normal pulses alarmed)", "recall (errant pulses caught)",
                 "ROC curve", legend_loc="lower right")
    return fig


def plot_operating_curve(labels, scores, threshold: float, pulse_rate_hz: float = 60.0) -> Figure:
    """Recall against false alarms per hour of beam (log x axis), the run's operating point
    marked, with 95 % intervals: the ROC curve in the units an operator plans with.

    The line is every threshold; the points with error bars are `evaluation.operating_curve`'s
    rows (the highest recall at 1, 3, 10, ... false alarms per hour; Poisson across, Wilson up);
    the threshold's own point is green. Thresholds with no false alarm at all sit on the left
    edge as open markers (a log axis has no zero).
    """
    y, s = check_labels_scores(labels, scores, require_both_classes=True)
    n_normal = int(np.sum(y == 0))
    hours = n_normal / pulse_rate_hz / SECONDS_PER_HOUR
    fpr, tpr, _ = roc_curve(y, s)
    per_hour = fpr * n_normal / hours
    rows = [r for r in operating_curve(y, s, pulse_rate_hz) if r["resolved"]]
    cm = confusion_counts(y, s, threshold)
    op_per_hour, op_recall = cm["fp"] / hours, cm["tp"] / max(cm["tp"] + cm["fn"], 1)
    positive = per_hour[per_hour > 0]
    floor = min([*positive, op_per_hour or np.inf, 1.0 / hours]) / 3
    fig = Figure(figsize=(5, 4.2), layout="constrained")
    ax = fig.subplots()
    shown = per_hour > 0
    ax.plot(per_hour[shown], tpr[shown], color=ERRANT_COLOR, lw=1, label="model (every threshold)")
    zero_recall = tpr[~shown].max() if (~shown).any() else None
    if zero_recall:
        ax.plot([floor], [zero_recall], "o", mfc="none", color=ERRANT_COLOR, ms=6,
                label=f"no false alarm: recall {zero_recall:.3g}")
        if shown.any():  # from the no-false-alarm point to the first threshold with one
            first = np.flatnonzero(shown)[0]
            ax.plot([floor, per_hour[first]], [zero_recall, tpr[first]], ":", color=ERRANT_COLOR, lw=1)
    if rows:
        x = np.array([r["false_alarms_per_hour"] for r in rows])
        xerr = np.abs(np.array([r["false_alarms_per_hour_interval"] for r in rows]).T - x)
        rec = np.array([r["recall"] for r in rows])
        yerr = np.abs(np.array([r["recall_interval"] for r in rows]).T - rec)
        keep = x > 0
        if keep.any():
            targets = ", ".join(f"{r['per_hour']:g}" for r, k in zip(rows, keep, strict=True) if k)
            ax.errorbar(x[keep], rec[keep], xerr=xerr[:, keep], yerr=yerr[:, keep], fmt="s",
                        color="gray", ms=3, lw=0.7, capsize=2,
                        label=f"best recall at {targets} per hour (95 %)")
    fa_lo, fa_hi = poisson_interval(cm["fp"], hours)
    rec_lo, rec_hi = wilson_interval(cm["tp"], cm["tp"] + cm["fn"])
    op_x = op_per_hour if op_per_hour > 0 else floor
    ax.errorbar([op_x], [op_recall], xerr=[[op_x - max(fa_lo, floor)], [max(fa_hi - op_x, 0.0)]],
                yerr=[[op_recall - rec_lo], [rec_hi - op_recall]], fmt="o", color=POINT_COLOR, ms=8,
                mfc=POINT_COLOR if op_per_hour > 0 else "none", capsize=3,
                label=f"threshold {threshold:.4g}: {_per_hour_text(op_per_hour)} per hour,\n"
                      f"recall {op_recall:.3g}")
    ax.set_xscale("log")
    ax.set_xlim(left=floor / 1.5)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel(f"false alarms per hour of beam ({pulse_rate_hz:g} Hz)")
    ax.set_ylabel("recall (errant pulses caught)")
    ax.set_title("Operating curve")
    ax.grid(alpha=0.3, which="both", lw=0.4)
    ax.legend(loc="lower right", fontsize=7)
    return fig


def _per_hour_text(value: float) -> str:
    """A rate per hour for a label: "1,917", "38.2", "0"."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


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
    _unit_square(ax, "recall (errant pulses caught)", "precision (alarms that were errant)",
                 "Precision-recall curve", legend_loc="lower left")
    return fig


def _unit_square(ax, xlabel: str, ylabel: str, title: str, *, legend_loc: str) -> None:
    """Labels, [0, 1] limits (a margin so the curve's edges show), grid and legend of a
    rate-against-rate panel (ROC, precision-recall)."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(loc=legend_loc, fontsize=8)


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


ENVELOPE_BIN = 10  # samples per envelope bin: one 1 µs chopper mini-pulse period at 10 MS/s
SAMPLE_RATE_HZ = 10e6  # DCM waveform sampling rate (spec: 10 MS/s)
REFERENCE_COLOR = "#7f7f7f"
_PULSE_COLORS = {"caught": ERRANT_COLOR, "missed": "#ff7f0e", "false alarms": NORMAL_COLOR}


class ExampleTrace(NamedTuple):
    """One example pulse for the report: its trace [L], a caption, and optionally the K
    reference pulses it was judged against [K, L] (None: no references)."""

    trace: np.ndarray
    caption: str
    references: np.ndarray | None = None


def envelope(traces, bin_samples: int = ENVELOPE_BIN) -> np.ndarray:
    """Mean over consecutive `bin_samples`-sample bins along the last axis ([L] -> [ceil(L/b)],
    [K, L] -> [K, ceil(L/b)]); a short last bin is the mean of what it holds.

    Why: a 10 MS/s trace of a chopped beam swings through a full mini-pulse every 10 samples,
    so 10,000 raw samples print as a solid block; the mean per 1 µs bin keeps the pulse's shape
    (droop, notches, an early end) that an errant pulse changes.
    """
    x = np.asarray(traces, dtype=np.float64)
    if x.ndim not in (1, 2) or x.shape[-1] == 0:
        raise ValueError(f"traces must be [L] or [K, L] with L >= 1; got shape {x.shape}.")
    if int(bin_samples) < 1:
        raise ValueError(f"bin_samples must be at least 1; got {bin_samples!r}.")
    b = int(bin_samples)
    length = x.shape[-1]
    n_bins = -(-length // b)
    padded = np.full(x.shape[:-1] + (n_bins * b,), np.nan)
    padded[..., :length] = x
    return np.nanmean(padded.reshape(x.shape[:-1] + (n_bins, b)), axis=-1)


def _as_channel0(array, ndim: int) -> np.ndarray:
    """First channel of a trace ([L] or [L, C]) or of references ([K, L] or [K, L, C])."""
    x = np.asarray(array, dtype=np.float64)
    return x[..., 0] if x.ndim == ndim + 1 else x


def _draw_example(ax, example: ExampleTrace, color: str, bin_samples: int) -> None:
    """The pulse's envelope as a line over its references' median envelope and min-max band."""
    trace = _as_channel0(example.trace, 1).reshape(-1)
    step_us = bin_samples / SAMPLE_RATE_HZ * 1e6
    pulse = envelope(trace, bin_samples)
    t = (np.arange(pulse.size) + 0.5) * step_us
    if example.references is not None:
        refs = _as_channel0(example.references, 2)
        refs = refs[np.any(refs != 0.0, axis=1)] if refs.ndim == 2 else refs  # zero rows: empty slots
        if refs.ndim == 2 and refs.shape[0] and refs.shape[1] == trace.size:
            ref_env = envelope(refs, bin_samples)
            ax.fill_between(t, ref_env.min(axis=0), ref_env.max(axis=0), color=REFERENCE_COLOR,
                            alpha=0.35, lw=0, label=f"references (K={refs.shape[0]}) min-max")
            ax.plot(t, np.median(ref_env, axis=0), color=REFERENCE_COLOR, lw=0.9, label="reference median")
    ax.plot(t, pulse, color=color, lw=0.9, label="pulse")


def _example_legend(categories, n_references: int) -> tuple[list, list[str]]:
    """One legend entry per colour on the examples page: each category's pulse colour, and
    the references' median and band when any example has references (K of them, at most)."""
    handles = [Line2D([], [], color=_PULSE_COLORS.get(c, "black"), lw=1.2) for c in categories]
    names = [f"{c} (pulse)" for c in categories]
    if n_references:
        handles += [Line2D([], [], color=REFERENCE_COLOR, lw=0.9),
                    Line2D([], [], color=REFERENCE_COLOR, lw=6, alpha=0.35)]
        names += ["reference median", f"references (K={n_references}) min-max"]
    return handles, names


def _drawn_references(example: ExampleTrace) -> int:
    """How many reference pulses `_draw_example` draws for `example` (empty slots left out)."""
    if example.references is None:
        return 0
    refs = _as_channel0(example.references, 2)
    return int(np.any(refs != 0.0, axis=1).sum()) if refs.ndim == 2 else 0


def plot_example_traces(
    examples: Mapping[str, Sequence[tuple]], max_per_category: int = 4,
    bin_samples: int = ENVELOPE_BIN, quantity: str = TRACE_QUANTITY,
) -> Figure:
    """Grid of example pulses: one row per category (caught, missed, false alarms), captioned.

    Each item is an `ExampleTrace` or a `(trace, caption)` / `(trace, caption, references)`
    tuple. A pulse is drawn as its 1 µs envelope (mean per `bin_samples` bin) on top of its
    references' median envelope and min-max band, or alone when it has no references; the y
    axis is `quantity` (what the trace holds, with its unit), the legend names every colour.
    """
    if not examples:
        raise ValueError("examples is empty; nothing to plot.")
    n_cols = max(1, min(max_per_category, max((len(v) for v in examples.values()), default=1)))
    n_rows = len(examples)
    fig = Figure(figsize=(2.6 * n_cols + 0.6, 2.4 * n_rows + 0.6), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    n_references = 0
    for row, (category, items) in enumerate(examples.items()):
        items = [ExampleTrace(*item) for item in list(items)[:max_per_category]]
        for col in range(n_cols):
            ax = axes[row, col]
            ax.tick_params(labelsize=6)
            if col < len(items):
                _draw_example(ax, items[col], _PULSE_COLORS.get(category, "black"), bin_samples)
                ax.set_title(items[col].caption, fontsize=6.5)
                ax.grid(alpha=0.25, lw=0.4)
                n_references = max(n_references, _drawn_references(items[col]))
                if row == n_rows - 1:
                    ax.set_xlabel("time in window (µs)", fontsize=7)
            elif col == 0:
                ax.text(0.5, 0.5, "none", ha="center", va="center", transform=ax.transAxes)
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                ax.set_visible(False)
            if col == 0:
                ax.set_ylabel(f"{category}\n{quantity}", fontsize=7)
    handles, names = _example_legend(list(examples), n_references)
    fig.legend(handles, names, loc="outside lower center", ncols=len(names), fontsize=7, frameon=False)
    return fig


def pick_examples(traces, labels, scores, threshold: float, per_category: int = 4,
                  references=None, names=None) -> dict[str, list[ExampleTrace]]:
    """Choose example pulses for the report: {category: [ExampleTrace, ...]}.

    "caught" (errant, alarmed) and "false alarms" (normal, alarmed) take the highest scores;
    "missed" (errant, not alarmed) the lowest, i.e. the clearest cases of each. `traces` (and
    `references`, optional, one [K, L] stack per pulse) are anything indexable by an int that
    yields one pulse's array (an array or an on-disk store). `names` (optional, indexable the
    same way) says which pulse it is, e.g. its file and time; the caption then starts with it
    (else with the pulse's row number, "#12").
    """
    y, s = check_labels_scores(labels, scores, require_both_classes=False)
    if len(traces) != y.size:
        raise ValueError(f"traces has {len(traces)} rows but labels has {y.size}.")
    if references is not None and len(references) != y.size:
        raise ValueError(f"references has {len(references)} rows but labels has {y.size}.")
    alarm = s >= threshold
    chosen = {
        "caught": np.flatnonzero((y == 1) & alarm)[np.argsort(-s[(y == 1) & alarm], kind="stable")],
        "missed": np.flatnonzero((y == 1) & ~alarm)[np.argsort(s[(y == 1) & ~alarm], kind="stable")],
        "false alarms": np.flatnonzero((y == 0) & alarm)[np.argsort(-s[(y == 0) & alarm], kind="stable")],
    }
    return {
        name: [ExampleTrace(np.asarray(traces[int(i)]),
                            f"{'#' + str(int(i)) if names is None else names[int(i)]}\nscore {s[i]:.3f}",
                            None if references is None else np.asarray(references[int(i)]))
               for i in idx[:per_category]]
        for name, idx in chosen.items()
    }


def plot_rates_by_block(table: Sequence[Mapping], target_false_alarm_rate: float | None,
                        xlabel: str = "block") -> Figure:
    """False-alarm rate (log scale) and recall per block from `evaluation.rates_by_block`.

    The target rate is drawn with a 0.5x-2x band: blocks outside it are where the operating
    point did not hold. Online-threshold rates are drawn beside the fixed ones when the table
    has them. Every rate carries its 95 % Wilson interval as an error bar (12.5 % from 1 of 8
    pulses is anything from 2 % to 47 %). A block without false alarms is drawn at the bottom
    edge with an open marker, its bar reaching up to its upper bound.
    """
    if not table:
        raise ValueError("table is empty; nothing to plot.")
    x = np.arange(len(table))
    names = [str(row["block"]) for row in table]
    series = [("", "fixed threshold", "o", "black")]
    if "online_false_alarm_rate" in table[0]:
        series.append(("online_", "online threshold", "s", POINT_COLOR))
    fig = Figure(figsize=(8, 5.4), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 2])
    rates = [row[f"{p}false_alarm_rate"] for p, *_ in series for row in table]
    positive = [r for r in rates if r]
    floor = min(positive + ([target_false_alarm_rate] if target_false_alarm_rate else [])
                or [1e-3]) / 4
    if target_false_alarm_rate:
        top.axhspan(0.5 * target_false_alarm_rate, 2 * target_false_alarm_rate, color=POINT_COLOR,
                    alpha=0.12, label="0.5x-2x target")
        top.axhline(target_false_alarm_rate, color=POINT_COLOR, ls="--", lw=1,
                    label=f"target {target_false_alarm_rate:.3g}")
    offsets = np.linspace(-0.12, 0.12, len(series)) if len(series) > 1 else [0.0]
    for (prefix, label, marker, color), dx in zip(series, offsets, strict=True):
        far = np.array([np.nan if r[f"{prefix}false_alarm_rate"] is None else r[f"{prefix}false_alarm_rate"]
                        for r in table], dtype=float)
        far_bounds = _bounds(table, f"{prefix}false_alarms", "n_normal")
        zero = far == 0
        shown = np.where(zero, floor, far)
        err = np.vstack([np.clip(shown - far_bounds[0], 0, None), np.clip(far_bounds[1] - shown, 0, None)])
        err = np.nan_to_num(err)
        top.errorbar(x[~zero] + dx, far[~zero], yerr=err[:, ~zero], fmt=marker, color=color, ms=5,
                     lw=0.8, capsize=2, label=label)
        if zero.any():
            top.errorbar(x[zero] + dx, shown[zero], yerr=err[:, zero], fmt=marker, color=color, ms=5,
                         mfc="none", lw=0.8, capsize=2, label=f"{label}: 0 false alarms")
        rec = np.array([np.nan if r[f"{prefix}recall"] is None else r[f"{prefix}recall"] for r in table],
                       dtype=float)
        rec_bounds = _bounds(table, f"{prefix}caught", "n_errant")
        rec_err = np.nan_to_num(np.vstack([np.clip(rec - rec_bounds[0], 0, None),
                                           np.clip(rec_bounds[1] - rec, 0, None)]))
        bottom.errorbar(x + dx, rec, yerr=rec_err, fmt=marker, color=color, ms=5, lw=0.8, capsize=2,
                        label=label)
    top.set_yscale("log")
    highest = [b for p, *_ in series for b in _bounds(table, f"{p}false_alarms", "n_normal")[1]
               if np.isfinite(b) and b > 0]
    top.set_ylim(floor / 1.5, max(highest + [floor * 4, 2 * (target_false_alarm_rate or 0)]) * 1.5)
    top.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    top.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:.3g} %"))
    top.yaxis.set_minor_formatter(NullFormatter())
    top.set_ylabel("false-alarm rate\n(per normal pulse, 95 % bars)")
    top.grid(alpha=0.3, which="both", lw=0.4)
    top.legend(fontsize=7, loc="best", ncols=2)
    top.set_title(f"Operating point per {xlabel}")
    bottom.set_ylim(-0.05, 1.05)
    bottom.set_ylabel("recall")
    bottom.grid(alpha=0.3)
    bottom.set_xlabel(xlabel)
    bottom.set_xticks(x, names, rotation=90 if len(names) > 12 else 0, fontsize=8)
    return fig


def _bounds(table: Sequence[Mapping], count_key: str, total_key: str) -> np.ndarray:
    """[2, n_rows] Wilson 95 % bounds of count/total per row (NaN where total is 0)."""
    out = np.full((2, len(table)), np.nan)
    for i, row in enumerate(table):
        interval = wilson_interval(int(row[count_key]), int(row[total_key]))
        if interval is not None:
            out[:, i] = interval
    return out


def plot_online_threshold(timestamps_ns, thresholds, fixed_threshold: float, labels=None) -> Figure:
    """The online threshold over time (hours from the first pulse) beside the fixed one; errant
    pulses, when `labels` are given, as red ticks at the bottom. Logit y scale for thresholds
    strictly inside (0, 1), where sigmoid scores live."""
    ts = np.asarray(timestamps_ns, dtype=np.int64)
    thr = np.asarray(thresholds, dtype=np.float64)
    if ts.shape != thr.shape or ts.ndim != 1 or ts.size == 0:
        raise ValueError(f"timestamps_ns and thresholds must be 1-D, non-empty and of one length; "
                         f"got {ts.shape} and {thr.shape}.")
    order = np.argsort(ts, kind="stable")
    hours = (ts[order] - ts[order[0]]) / 3.6e12
    fig = Figure(figsize=(8, 2.6), layout="constrained")
    ax = fig.subplots()
    ax.step(hours, thr[order], where="post", color=POINT_COLOR, lw=0.9, label="online threshold")
    ax.axhline(fixed_threshold, color="black", ls="--", lw=0.9, label=f"fixed {fixed_threshold:.4g}")
    values = np.r_[thr, fixed_threshold]
    if values.min() > 0.0 and values.max() < 1.0:
        ax.set_yscale("logit")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    if labels is not None:
        errant = np.asarray(labels)[order] == 1
        if errant.any():
            ax.plot(hours[errant], np.full(errant.sum(), values.min()), "|", color=ERRANT_COLOR, ms=8,
                    label="errant pulse")
    ax.set_xlabel("hours from the first evaluated pulse")
    ax.set_ylabel("threshold")
    ax.set_title("Online threshold over time")
    ax.grid(alpha=0.3, lw=0.4)
    ax.legend(fontsize=7, loc="best")
    return fig
