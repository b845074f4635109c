"""The PDF metrics report (reportlab platypus) written at the end of the train and test flows.

Pages (`PAGES`, in order): title (run, data period, split sizes, seeds, notes), summary metrics
in operator units (with the online-recalibrated operating point when given), data ledger,
training curves, ROC/PR with the operating point, confusion matrix and score histograms,
reliability diagram, example pulses over their references, false-alarm rate and recall per time
block and per configuration group, the resolved config. Figures are embedded as PNGs at 160 dpi.
The file is built in memory and written atomically.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from xml.sax.saxutils import escape

import numpy as np
from matplotlib.figure import Figure
from reportlab.lib import colors
from reportlab.lib.pagesizes import letter
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import inch
from reportlab.platypus import (
    Image,
    PageBreak,
    Paragraph,
    Preformatted,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from analysis import plots
from analysis.evaluation import rates_by_block, time_blocks
from utils.run_folder import atomic_write_bytes

FIGURE_DPI = 160
MAX_SKIPPED_FILES_SHOWN = 50
PAGE_SIZE = letter
MARGIN = 0.7 * inch
FRAME_WIDTH = PAGE_SIZE[0] - 2 * MARGIN
FRAME_HEIGHT = PAGE_SIZE[1] - 2 * MARGIN
N_TIME_BLOCKS = 10  # consecutive equal-count blocks of the evaluated pulses in time order...
MIN_PULSES_PER_BLOCK = 50  # ...but fewer blocks when a part is small: a rate of 3 pulses says nothing
MAX_GROUPS_SHOWN = 15  # largest configuration groups shown one by one; the rest pooled as "other"


@dataclass
class ReportContent:
    """Everything the report shows; plain data only (arrays, dicts, strings).

    Attributes:
        title: report title, e.g. "beamwatch training report".
        run_id: run folder name.
        created: when the report was made.
        data_period: (start, end) of the data, as display strings.
        split_sizes: part name -> {"n", "n_errant", "start", "end"}.
        seeds: name -> seed.
        metrics: `evaluation.compute_metrics` output for the evaluated part (extra scalar keys
            are shown too); the report shows these figures, it does not recompute them.
        threshold: `ThresholdChoice.to_dict()`.
        ledger_summary: [{"reason", "files", "pulses"}, ...] from the data ledger.
        skipped_files: paths of skipped files (the first 50 are listed).
        history: per-epoch metrics (Keras History.history), or None for the test flow.
        labels, scores: of the evaluated part (curves, histograms, calibration).
        example_traces: category -> [ExampleTrace(trace, caption, references [K, L] or None)]
            (see `plots.pick_examples`; plain (trace, caption) tuples work too).
        config_text: the resolved config as YAML.
        notes: warnings shown on the title page.
        part_name: name of the evaluated part ("test", "validation", ...).
        timestamps_ns: int64 per pulse (aligned with labels), for the per-time-block page.
        groups: configuration group id per pulse, for the per-group page.
        online: `recalibration.OnlineResult.summary()` of the online threshold, or None.
        online_alarms, online_thresholds: per pulse (aligned with labels), or None.
    """

    title: str
    run_id: str
    created: datetime
    data_period: tuple[str, str]
    split_sizes: dict[str, dict]
    seeds: dict
    metrics: dict
    threshold: dict
    ledger_summary: list[dict] = field(default_factory=list)
    skipped_files: list[str] = field(default_factory=list)
    history: dict | None = None
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))
    example_traces: dict = field(default_factory=dict)
    config_text: str = ""
    notes: list[str] = field(default_factory=list)
    part_name: str = "test"
    timestamps_ns: np.ndarray | None = None
    groups: np.ndarray | None = None
    online: dict | None = None
    online_alarms: np.ndarray | None = None
    online_thresholds: np.ndarray | None = None


def format_number(value, digits: int = 4) -> str:
    """Display a figure: None/NaN -> "n/a", ints with thousands separators, floats to
    `digits` significant digits (large values without decimals)."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        value = float(value)
        if not math.isfinite(value):
            return "n/a"
        if abs(value) >= 10 ** digits:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    return str(value)


def _percent(value) -> str:
    return "n/a" if value is None else f"{format_number(100.0 * value, 3)} %"


def figure_to_flowable(fig: Figure, width: float, max_height: float | None = None) -> Image:
    """Embed a matplotlib figure as a PNG image flowable `width` points wide (aspect kept,
    shrunk to fit `max_height`), rendered at FIGURE_DPI through an in-memory buffer."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=FIGURE_DPI)
    fig_w, fig_h = fig.get_size_inches()
    buffer.seek(0)
    height = width * fig_h / fig_w
    if max_height is not None and height > max_height:
        width, height = width * max_height / height, max_height
    return Image(buffer, width=width, height=height)


# ---------------------------------------------------------------- styles and small builders


def _styles() -> dict[str, ParagraphStyle]:
    base = getSampleStyleSheet()
    return {
        "title": base["Title"],
        "h1": base["Heading1"],
        "h2": base["Heading2"],
        "body": base["BodyText"],
        "note": ParagraphStyle("note", parent=base["BodyText"], textColor=colors.HexColor("#8a4b00"),
                               leftIndent=10, bulletIndent=0),
        "small": ParagraphStyle("small", parent=base["BodyText"], fontSize=7.5, leading=9),
        "code": ParagraphStyle("code", parent=base["Code"], fontSize=6.5, leading=8),
    }


def _table(rows: Sequence[Sequence], col_widths=None, header: bool = True) -> Table:
    table = Table([list(row) for row in rows], colWidths=col_widths, repeatRows=1 if header else 0, hAlign="LEFT")
    style = [
        ("FONTSIZE", (0, 0), (-1, -1), 8.5),
        ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#b0b0b0")),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("ROWBACKGROUNDS", (0, 1 if header else 0), (-1, -1), [colors.white, colors.HexColor("#f3f3f3")]),
    ]
    if header:
        style += [("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde5ee")),
                  ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold")]
    table.setStyle(TableStyle(style))
    return table


def _p(text: str, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape(str(text)), style)


def _footer(run_id: str):
    def draw(canvas, doc):
        canvas.saveState()
        canvas.setFont("Helvetica", 8)
        canvas.setFillColor(colors.gray)
        canvas.drawString(MARGIN, 0.45 * inch, f"beamwatch - {run_id}")
        canvas.drawRightString(PAGE_SIZE[0] - MARGIN, 0.45 * inch, f"Page {doc.page}")
        canvas.restoreState()
    return draw


# ---------------------------------------------------------------- sections


def _title_page(c: ReportContent, st) -> list:
    story = [Spacer(1, 0.6 * inch), _p(c.title, st["title"]), Spacer(1, 0.2 * inch)]
    facts = [
        ["Run", c.run_id],
        ["Created", c.created.strftime("%Y-%m-%d %H:%M:%S")],
        ["Data period", f"{c.data_period[0]} to {c.data_period[1]}"],
        ["Evaluated part", c.part_name],
    ]
    story += [_table(facts, col_widths=[1.5 * inch, 5 * inch], header=False), Spacer(1, 0.2 * inch)]
    if c.split_sizes:
        rows = [["Part", "Pulses", "Errant", "Errant share", "Start", "End"]]
        for name, part in c.split_sizes.items():
            n, n_errant = part.get("n"), part.get("n_errant")
            share = n_errant / n if n and n_errant is not None else None
            rows.append([name, format_number(n), format_number(n_errant), _percent(share),
                         str(part.get("start", "")), str(part.get("end", ""))])
        widths = [w * inch for w in (0.9, 0.8, 0.7, 0.9, 1.9, 1.9)]
        story += [_p("Split sizes", st["h2"]), _table(rows, col_widths=widths), Spacer(1, 0.15 * inch)]
    if c.seeds:
        rows = [["Seed", "Value"]] + [[k, str(v)] for k, v in c.seeds.items()]
        story += [_p("Seeds", st["h2"]), _table(rows, col_widths=[2 * inch, 2 * inch])]
    if c.notes:
        story += [_p("Notes", st["h2"])]
        story += [Paragraph(escape(note), st["note"], bulletText="!") for note in c.notes]
    return story


_METRIC_ROWS = (
    ("roc_auc", "ROC AUC"),
    ("pr_auc", "PR AUC (average precision)"),
    ("precision", "Precision (alarms that were errant)"),
    ("recall", "Recall (errant pulses caught)"),
    ("specificity", "Specificity (normal pulses left alone)"),
    ("f1", "F1"),
    ("mcc", "Matthews correlation (MCC)"),
    ("false_alarm_rate", "False-alarm rate (per normal pulse)"),
    ("brier", "Brier score"),
    ("expected_calibration_error", "Expected calibration error"),
)
_SHOWN_ELSEWHERE = {k for k, _ in _METRIC_ROWS} | {
    "n", "n_errant", "n_normal", "threshold", "recall_at_threshold", "confusion_matrix",
    "reliability", "errant_caught", "false_alarms_per_hour", "pulse_rate_hz", "notes",
}


def _summary_page(c: ReportContent, st) -> list:
    m, t = c.metrics, c.threshold
    caught = m.get("errant_caught") or {}
    rate = m.get("pulse_rate_hz", 60.0)
    story = [_p(f"Summary ({c.part_name} part)", st["h1"])]
    operator = [
        ["Errant pulses caught", f"{format_number(caught.get('caught'))} of {format_number(caught.get('total'))}"],
        ["False alarms per hour of beam", format_number(m.get("false_alarms_per_hour"), 3)],
        ["Pulses evaluated", f"{format_number(m.get('n'))} ({format_number(m.get('n_errant'))} errant, "
                             f"{format_number(m.get('n_normal'))} normal)"],
        ["Alarm threshold (score >=)", format_number(t.get("threshold", m.get("threshold")))],
    ]
    story += [_table(operator, col_widths=[2.6 * inch, 3.8 * inch], header=False),
              _p(f"False alarms per hour extrapolate the false-alarm rate to every pulse at "
                 f"{format_number(rate, 3)} Hz, assuming all beam pulses are like the normal pulses "
                 "of this sample.", st["small"]),
              Spacer(1, 0.15 * inch)]
    if c.online:
        story += _online_summary(m, t.get("threshold", m.get("threshold")), c.online, st)
    rows = [["Metric", "Value"]] + [[label, format_number(m.get(key))] for key, label in _METRIC_ROWS
                                    if key in m]
    extras = [[k, format_number(v)] for k, v in m.items()
              if k not in _SHOWN_ELSEWHERE and (v is None or isinstance(v, int | float | str))]
    story += [_table(rows + extras, col_widths=[3.2 * inch, 1.6 * inch]), Spacer(1, 0.15 * inch)]
    # Confusion matrix and the validation operating point side by side: stacked, the second
    # table no longer fits the page once the online comparison is shown.
    cells = []
    cm = m.get("confusion_matrix")
    if cm:
        cm_rows = [["Confusion matrix", "No alarm", "Alarm"],
                   ["Normal", format_number(cm.get("tn")), format_number(cm.get("fp"))],
                   ["Errant", format_number(cm.get("fn")), format_number(cm.get("tp"))]]
        cells.append(_table(cm_rows, col_widths=[1.15 * inch, 0.8 * inch, 0.8 * inch]))
    if t:
        target = t.get("target_false_alarm_rate")
        op = [["Operating point (chosen on validation)", ""],
              ["Method", str(t.get("method", "n/a"))],
              ["Target false-alarm rate", _percent(target) if target is not None else "n/a"],
              ["Validation false-alarm rate", _percent(t.get("false_alarm_rate"))],
              ["Validation recall", format_number(t.get("recall"))],
              ["Validation precision", format_number(t.get("precision"))],
              ["Validation F1", format_number(t.get("f1"))],
              ["Validation pulses (normal / errant)",
               f"{format_number(t.get('n_normal'))} / {format_number(t.get('n_errant'))}"]]
        cells.append(_table(op, col_widths=[2.3 * inch, 1.5 * inch]))
    if cells:
        side = Table([cells], hAlign="LEFT")
        side.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (0, 0), 0)]))
        story.append(side)
    for note in m.get("notes", []):
        story.append(Paragraph(escape(note), st["note"], bulletText="!"))
    return story


def _online_summary(m: dict, threshold: float, o: dict, st) -> list:
    """The fixed and the online-recalibrated operating point side by side on the same pulses
    (the fixed threshold stays the headline)."""
    caught = m.get("errant_caught") or {}
    rows = [["Same pulses, in time order", "Fixed threshold", "Online threshold"],
            ["Threshold", format_number(threshold),
             f"{format_number(o.get('initial_threshold'))} -> {format_number(o.get('final_threshold'))} "
             f"(range {format_number(o.get('threshold_min'), 3)}..{format_number(o.get('threshold_max'), 3)})"],
            [f"False-alarm rate (target {_percent(o.get('target_false_alarm_rate'))})",
             _percent(m.get("false_alarm_rate")),
             f"{_percent(o.get('false_alarm_rate'))} ({format_number(o.get('false_alarms'))} of "
             f"{format_number(o.get('n_normal'))})"],
            ["False alarms per hour of beam", format_number(m.get("false_alarms_per_hour"), 3),
             format_number(o.get("false_alarms_per_hour"), 3)],
            ["Errant pulses caught", f"{format_number(caught.get('caught'))} of {format_number(caught.get('total'))}",
             f"{format_number(o.get('caught'))} of {format_number(o.get('n_errant'))}"]]
    return [_p("Online recalibration", st["h2"]),
            _table(rows, col_widths=[2.4 * inch, 1.3 * inch, 2.7 * inch]),
            _p("The online threshold starts at the validation threshold; after each pulse known to be "
               "normal (the next pulse did not trip) it rises on a false alarm and falls slightly "
               f"otherwise ({o.get('method', 'quantile tracking')}, step {format_number(o.get('step'))} "
               f"in {o.get('space', '?')} units). The threshold for a pulse uses only earlier pulses; "
               "errant pulses give no feedback.", st["small"]),
            Spacer(1, 0.1 * inch)]


def _ledger_page(c: ReportContent, st) -> list:
    story = [_p("Data ledger (skipped files and pulses)", st["h1"])]
    if c.ledger_summary:
        rows = [["Reason", "Files", "Pulses"]]
        rows += [[str(r.get("reason")), format_number(r.get("files")), format_number(r.get("pulses"))]
                 for r in c.ledger_summary]
        story.append(_table(rows, col_widths=[3.6 * inch, 1 * inch, 1 * inch]))
    else:
        story.append(_p("Nothing was skipped.", st["body"]))
    if c.skipped_files:
        shown = c.skipped_files[:MAX_SKIPPED_FILES_SHOWN]
        story += [_p(f"Skipped files ({len(c.skipped_files):,}; first {len(shown)} shown)", st["h2"])]
        story += [_p(path, st["small"]) for path in shown]
        if len(c.skipped_files) > len(shown):
            story.append(_p(f"... and {len(c.skipped_files) - len(shown):,} more (see data_ledger.json).",
                            st["small"]))
    return story


def _curve_pages(c: ReportContent, st) -> list:
    labels, scores = np.asarray(c.labels), np.asarray(c.scores)
    threshold = float(c.threshold.get("threshold", c.metrics.get("threshold", 0.5)))
    story = [_p(f"ROC and precision-recall curves ({c.part_name} part)", st["h1"])]
    n_errant = int(np.sum(labels == 1))
    if labels.size == 0:
        reason = "no samples in this part"
    elif n_errant in (0, labels.size):
        reason = f"only one class ({'no errant' if n_errant == 0 else 'no normal'} pulses in this part)"
    else:
        reason = None
    if reason:
        story.append(_p(f"ROC and PR curves not defined: {reason}.", st["body"]))
    else:
        half = FRAME_WIDTH / 2 - 14  # the table adds 6 pt padding each side of a cell
        story.append(Table([[figure_to_flowable(plots.plot_roc_curve(labels, scores, threshold), half),
                             figure_to_flowable(plots.plot_pr_curve(labels, scores, threshold), half)]]))
        story.append(_p("The dot marks the operating point (alarm when score >= threshold).", st["small"]))
    story.append(PageBreak())
    story.append(_p("Confusion matrix and score distributions", st["h1"]))
    if labels.size == 0:
        story.append(_p("Not defined: no samples in this part.", st["body"]))
        return story
    if c.metrics.get("confusion_matrix"):
        story += [figure_to_flowable(plots.plot_confusion_matrix(c.metrics["confusion_matrix"]), 3.6 * inch),
                  Spacer(1, 0.1 * inch)]
    else:
        story.append(_p("No confusion matrix in the metrics given.", st["body"]))
    story += [figure_to_flowable(plots.plot_score_histograms(labels, scores, threshold), FRAME_WIDTH),
              PageBreak(), _p("Calibration", st["h1"])]
    if c.metrics.get("reliability"):
        story += [figure_to_flowable(plots.plot_reliability_diagram(c.metrics["reliability"]), 4.8 * inch),
                  _p("Points on the diagonal mean a score of p is errant with frequency p.", st["small"])]
    elif "reliability" not in c.metrics:
        story.append(_p("No calibration table in the metrics given.", st["body"]))
    else:
        story.append(_p("Not defined: scores are not probabilities in [0, 1].", st["body"]))
    return story


def _examples_page(c: ReportContent, st) -> list:
    story = [_p("Example traces", st["h1"])]
    if not c.example_traces:
        return story + [_p("No example traces were provided.", st["body"])]
    fig = plots.plot_example_traces(c.example_traces)
    story.append(figure_to_flowable(fig, FRAME_WIDTH, max_height=FRAME_HEIGHT - 1.0 * inch))
    story.append(_p("Caught: errant, alarmed (highest scores). Missed: errant, no alarm (lowest "
                    "scores). False alarms: normal, alarmed (highest scores). Each pulse is drawn as "
                    "its 1 us envelope (mean per 10-sample bin: one chopper mini-pulse period at "
                    "10 MS/s); where it has reference pulses, over their median (grey line) and "
                    "min-max band.", st["small"]))
    return story


def _block_rows(table: list[dict], names: list[str], online: bool, first: str) -> list[list[str]]:
    head = [first, "Pulses", "Errant", "False alarms", "FA rate", "Recall"]
    if online:
        head += ["Online FA rate", "Online recall"]
    rows = [head]
    for row, name in zip(table, names, strict=True):
        cells = [name, format_number(row["n"]), format_number(row["n_errant"]),
                 format_number(row["false_alarms"]), _percent(row["false_alarm_rate"]),
                 format_number(row["recall"], 3)]
        if online:
            cells += [_percent(row["online_false_alarm_rate"]), format_number(row["online_recall"], 3)]
        rows.append(cells)
    return rows


def _blocks_page(c: ReportContent, st) -> list:
    """False-alarm rate and recall per time block and per configuration group: whether the
    operating point held through the period, or only on average."""
    labels, scores = np.asarray(c.labels), np.asarray(c.scores)
    if labels.size == 0 or (c.timestamps_ns is None and c.groups is None):
        return []
    threshold = float(c.threshold.get("threshold", c.metrics.get("threshold", 0.5)))
    target = (c.online or {}).get("target_false_alarm_rate", c.threshold.get("target_false_alarm_rate"))
    online = c.online_alarms is not None
    story = [_p(f"Operating point over time and per configuration ({c.part_name} part)", st["h1"]),
             _p("The false-alarm rate within each block, against the target with a 0.5x-2x band: "
                "a block outside the band is a stretch of beam where the threshold did not hold."
                + (" Online: the recalibrated threshold (see summary)." if online else ""), st["small"])]
    width = [1.15 * inch, 0.6 * inch, 0.55 * inch, 0.85 * inch, 0.65 * inch, 0.55 * inch, 0.95 * inch,
             0.9 * inch][:8 if online else 6]
    if c.timestamps_ns is not None:
        ts = np.asarray(c.timestamps_ns, dtype=np.int64)
        blocks = time_blocks(ts, min(N_TIME_BLOCKS, max(1, ts.size // MIN_PULSES_PER_BLOCK)))
        table = rates_by_block(labels, scores, threshold, blocks, c.online_alarms)
        starts = [datetime.fromtimestamp(int(ts[blocks == row["block"]].min()) / 1e9, tz=UTC)
                  .strftime("%m-%d %H:%M") for row in table]
        names = [f"{row['block'] + 1}: {start}" for row, start in zip(table, starts, strict=True)]
        fig = plots.plot_rates_by_block(table, target, xlabel="time block (start, UTC)")
        fig.axes[-1].set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=6)
        story.append(figure_to_flowable(fig, FRAME_WIDTH, max_height=3.3 * inch))
        if c.online_thresholds is not None:
            story.append(figure_to_flowable(plots.plot_online_threshold(ts, c.online_thresholds, threshold,
                                                                        labels), FRAME_WIDTH,
                                            max_height=2.0 * inch))
        story.append(_table(_block_rows(table, names, online, "Time block"), col_widths=width))
    if c.groups is not None:
        groups = np.asarray(c.groups)
        ids, counts = np.unique(groups, return_counts=True)
        largest = ids[np.argsort(-counts, kind="stable")][:MAX_GROUPS_SHOWN]
        pooled = np.where(np.isin(groups, largest), groups.astype(str), "other")
        table = sorted(rates_by_block(labels, scores, threshold, pooled, c.online_alarms),
                       key=lambda row: (row["block"] == "other", -row["n"]))
        names = [str(row["block"]) for row in table]
        story += [PageBreak(), _p(f"Per configuration group ({ids.size:,} groups; the "
                                  f"{min(ids.size, MAX_GROUPS_SHOWN)} largest shown, the rest pooled "
                                  "as 'other')", st["h2"]),
                  figure_to_flowable(plots.plot_rates_by_block(table, target, xlabel="configuration group"),
                                     FRAME_WIDTH, max_height=3.6 * inch),
                  _table(_block_rows(table, names, online, "Group"), col_widths=width)]
    return story


def _config_page(c: ReportContent, st) -> list:
    text = c.config_text or "(no config given)"
    return [_p("Resolved configuration", st["h1"]), Preformatted(text, st["code"], maxLineLength=120)]


def _training_page(c: ReportContent, st) -> list:
    if not c.history:
        return []
    return [_p("Training curves", st["h1"]),
            figure_to_flowable(plots.plot_training_curves(c.history), FRAME_WIDTH,
                               max_height=FRAME_HEIGHT - 1.0 * inch)]


# The report's pages in order: each takes (content, styles) and returns flowables ([] to skip).
PAGES = (_title_page, _summary_page, _ledger_page, _training_page, _curve_pages, _examples_page,
         _blocks_page, _config_page)


def write_report(path, content: ReportContent) -> None:
    """Write the PDF report for `content` to `path` (atomic; letter portrait, numbered pages).

    Works with tiny parts and with one-class parts (the curves then say why they are not
    defined). Raises ValueError if labels and scores differ in length.
    """
    if np.asarray(content.labels).shape != np.asarray(content.scores).shape:
        raise ValueError(
            f"ReportContent labels and scores differ in shape: {np.shape(content.labels)} "
            f"vs {np.shape(content.scores)}."
        )
    for name in ("timestamps_ns", "groups", "online_alarms", "online_thresholds"):
        value = getattr(content, name)
        if value is not None and np.shape(value) != np.shape(content.labels):
            raise ValueError(f"ReportContent {name} has shape {np.shape(value)}; expected one value "
                             f"per pulse, {np.shape(content.labels)}.")
    st = _styles()
    story = []
    for page in PAGES:
        part = page(content, st)
        if part:
            story += ([PageBreak()] if story else []) + part

    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=PAGE_SIZE, leftMargin=MARGIN, rightMargin=MARGIN,
                            topMargin=MARGIN, bottomMargin=MARGIN, title=content.title,
                            author="beamwatch", subject=content.run_id)
    footer = _footer(content.run_id)
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    atomic_write_bytes(path, buffer.getvalue())
