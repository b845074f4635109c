"""The PDF report of the sample-contract jobs (sessions, windows, feature tables, text).

It speaks of samples and classes: title (run, data, split sizes per class, notes), summary
(accuracy, balanced accuracy, macro/weighted F1), per-class table, the n x n confusion matrix,
one-vs-rest ROC and PR curves per class, training curves, data ledger and the resolved config.
SNS runs keep `analysis.report` and its operator units. Plain data in, a PDF out (atomic).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

import numpy as np
from matplotlib.figure import Figure
from reportlab.lib import colors
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.platypus import (
    PageBreak,
    Paragraph,
    Preformatted,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)
from sklearn.metrics import precision_recall_curve, roc_curve

from analysis import plots
from analysis.report import (
    FRAME_HEIGHT,
    FRAME_WIDTH,
    MARGIN,
    PAGE_SIZE,
    figure_to_flowable,
    format_number,
)
from utils.run_folder import atomic_write_bytes

MAX_LEDGER_ROWS = 40


@dataclass
class ClassReportContent:
    """What the report shows.

    Attributes:
        title, run_id, created (display string), data: where the samples came from.
        class_names: the classes, in index order.
        split_sizes: part -> {"n", "per_class": {class: count}}.
        metrics: `analysis.classification.classification_metrics` of the evaluated part.
        part_name: the evaluated part ("validation", "test", ...).
        labels [n], probabilities [n, k]: of the evaluated part (curves).
        history: per-epoch metrics, or None.
        ledger_summary: [{"reason", "files", "pulses"}] (pulses = samples here).
        notes: lines for the title page; config_text: the resolved config.
        comparison: part -> `analysis.classification.compare_with_peer` (the network beside
            the simple peer fitted on the same split), or None when no peer ran.
    """

    title: str
    run_id: str
    created: str
    data: str
    class_names: list[str]
    split_sizes: dict
    metrics: dict
    part_name: str
    labels: np.ndarray
    probabilities: np.ndarray
    history: dict | None = None
    ledger_summary: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    config_text: str = ""
    comparison: dict | None = None


def _fmt_interval(interval) -> str:
    return "" if interval is None else f"[{interval[0]:.3f}, {interval[1]:.3f}]"


def peer_rows(comparison: dict) -> list[list[str]]:
    """The network and the peer per part: accuracy with its 95 % interval, macro F1."""
    rows = [["part", "model", "accuracy", "95 % interval", "balanced acc.", "macro F1"]]
    for part, c in comparison.items():
        for who, label in (("network", "network"), ("peer", c["peer_name"])):
            m = c[who]
            rows.append([part, label, format_number(m["accuracy"]),
                         _fmt_interval(m["accuracy_interval"]),
                         format_number(m["balanced_accuracy"]), format_number(m["macro_f1"])])
    return rows


def _table(rows, widths=None) -> Table:
    table = Table([list(map(str, r)) for r in rows], colWidths=widths, repeatRows=1,
                  hAlign="LEFT")
    table.setStyle(TableStyle([
        ("FONTSIZE", (0, 0), (-1, -1), 8),
        ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#b0b0b0")),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde5ee")),
        ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
    ]))
    return table


def plot_confusion(matrix, class_names) -> Figure:
    """The n x n confusion matrix as counts, rows true class, columns predicted class."""
    matrix = np.asarray(matrix)
    k = len(class_names)
    fig = Figure(figsize=(1.2 + 0.6 * k, 1.0 + 0.6 * k), layout="constrained")
    ax = fig.subplots()
    ax.imshow(matrix, cmap="Blues")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    ax.set_xticks(range(k), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), class_names, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    return fig


def plot_one_vs_rest(labels, probabilities, class_names) -> Figure:
    """ROC and precision-recall curves of each class against the rest."""
    fig = Figure(figsize=(9, 4), layout="constrained")
    roc_ax, pr_ax = fig.subplots(1, 2)
    for c, name in enumerate(class_names):
        positive = np.asarray(labels) == c
        if positive.all() or not positive.any():
            continue
        fpr, tpr, _ = roc_curve(positive, probabilities[:, c])
        precision, recall, _ = precision_recall_curve(positive, probabilities[:, c])
        roc_ax.plot(fpr, tpr, label=name)
        pr_ax.plot(recall, precision, label=name)
    roc_ax.plot([0, 1], [0, 1], ":", color="gray")
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate",
               title="ROC, one class vs the rest")
    pr_ax.set(xlabel="recall", ylabel="precision", title="Precision-recall, one vs rest")
    for ax in (roc_ax, pr_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def write_class_report(path, c: ClassReportContent) -> None:
    """Write the report (letter portrait) to `path` atomically."""
    base = getSampleStyleSheet()

    def p(text, style="BodyText"):
        return Paragraph(escape(str(text)), base[style])

    m = c.metrics
    story = [p(c.title, "Title"), Spacer(1, 8),
             _table([["", ""], ["Run", c.run_id], ["Created", c.created], ["Data", c.data],
                     ["Classes", ", ".join(c.class_names)], ["Evaluated part", c.part_name]],
                    [1.4 * 72, FRAME_WIDTH - 1.4 * 72]),
             Spacer(1, 8), p("Samples per part and class", "Heading2")]
    rows = [["part", "samples", *c.class_names]]
    for part, info in c.split_sizes.items():
        rows.append([part, info["n"], *[info["per_class"].get(k, 0) for k in c.class_names]])
    story += [_table(rows)]
    for note in c.notes:
        story += [Spacer(1, 4), p(note)]
    story += [PageBreak(), p(f"Summary: {c.part_name} part ({m['n']} samples)", "Heading1")]
    if c.comparison:
        headline = c.comparison.get("test") or c.comparison.get(c.part_name)
        story += [p("Network and simple peer, fitted on the same split", "Heading2"),
                  _table(peer_rows(c.comparison)), Spacer(1, 4)]
        if headline is not None:
            story += [Paragraph(f"<b>{escape(headline['verdict'])}</b>", base["BodyText"]),
                      Spacer(1, 8)]
    story += [_table([["metric", "value"],
                      ["accuracy", format_number(m["accuracy"])],
                      ["balanced accuracy", format_number(m["balanced_accuracy"])],
                      ["macro F1", format_number(m["macro_f1"])],
                      ["weighted F1", format_number(m["weighted_f1"])],
                      ["decision", "argmax of the class probabilities" if m.get("threshold") is None
                       else f"class {c.class_names[-1]} when its probability >= "
                            f"{format_number(m['threshold'])} (chosen on validation)"]]),
              Spacer(1, 8), p("Per class", "Heading2")]
    rows = [["class", "support", "precision", "recall", "F1", "ROC AUC", "PR AUC"]]
    for name, v in m["per_class"].items():
        rows.append([name, v["support"], *[format_number(v[k]) for k in
                                           ("precision", "recall", "f1", "roc_auc", "pr_auc")]])
    story += [_table(rows), Spacer(1, 8),
              figure_to_flowable(plot_confusion(m["confusion_matrix"], c.class_names),
                                 FRAME_WIDTH * 0.6, max_height=FRAME_HEIGHT * 0.45), PageBreak()]
    if len(c.labels):
        story += [p("One class against the rest", "Heading1"),
                  figure_to_flowable(plot_one_vs_rest(c.labels, c.probabilities, c.class_names),
                                     FRAME_WIDTH), PageBreak()]
    if c.history:
        story += [p("Training curves", "Heading1"),
                  figure_to_flowable(plots.plot_training_curves(c.history), FRAME_WIDTH,
                                     max_height=FRAME_HEIGHT - 72), PageBreak()]
    story += [p("Data ledger: what was skipped and why", "Heading1")]
    if c.ledger_summary:
        rows = [["reason", "files", "samples"]] + [
            [r["reason"], r.get("files", ""), r.get("pulses", "")]
            for r in c.ledger_summary[:MAX_LEDGER_ROWS]]
        story += [_table(rows)]
    else:
        story += [p("Nothing was skipped.")]
    story += [PageBreak(), p("Resolved configuration", "Heading1"),
              Preformatted(c.config_text or "(none)", base["Code"], maxLineLength=110)]
    buffer = io.BytesIO()
    SimpleDocTemplate(buffer, pagesize=PAGE_SIZE, leftMargin=MARGIN, rightMargin=MARGIN,
                      topMargin=MARGIN, bottomMargin=MARGIN, title=c.title,
                      author="beamwatch").build(story)
    atomic_write_bytes(path, buffer.getvalue())
