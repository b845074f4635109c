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
from analysis.evaluation import SECONDS_PER_HOUR, rates_by_block, time_blocks
from analysis.intervals import poisson_interval, wilson_interval
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
        skipped_files: (path, reason) of skipped files (the first 50 are listed), or paths.
        history: per-epoch metrics (Keras History.history), or None for the test flow.
        labels, scores: of the evaluated part (curves, histograms, calibration).
        example_traces: category -> [ExampleTrace(trace, caption, references [K, L] or None)]
            (see `plots.pick_examples`; plain (trace, caption) tuples work too).
        config_text: the resolved config as YAML.
        facts: plain facts about the run shown on the title page (split, replicas, data).
        notes: warnings shown on the title page (what should make a reader wary).
        part_name: name of the evaluated part ("test", "validation", ...).
        timestamps_ns: int64 per pulse (aligned with labels), for the per-time-block page.
        groups: configuration group id per pulse, for the per-group page.
        online: `recalibration.OnlineResult.summary()` of the online threshold, or None.
        online_alarms, online_thresholds: per pulse (aligned with labels), or None.
        group_descriptions: configuration group id -> the settings that set it apart (see
            `analysis.groups.describe_groups`), shown beside each group on the per-group page.
        trace_quantity: the y axis of the example traces (quantity and unit).
        missing_pages: page title -> why the page is not in this report (a re-render from
            saved files says so on the page instead of dropping it).
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
    skipped_files: list = field(default_factory=list)
    history: dict | None = None
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))
    example_traces: dict = field(default_factory=dict)
    config_text: str = ""
    facts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    part_name: str = "test"
    timestamps_ns: np.ndarray | None = None
    groups: np.ndarray | None = None
    online: dict | None = None
    online_alarms: np.ndarray | None = None
    online_thresholds: np.ndarray | None = None
    group_descriptions: dict = field(default_factory=dict)
    trace_quantity: str = plots.TRACE_QUANTITY
    missing_pages: dict[str, str] = field(default_factory=dict)


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


def _interval(bounds, show=format_number) -> str:
    """A 95 % interval as "[lo, hi]" ("" when there is none)."""
    if bounds is None:
        return ""
    return f"[{show(bounds[0])}, {show(bounds[1])}]"


def _percent_interval(bounds) -> str:
    if bounds is None:
        return ""
    return f"[{format_number(100.0 * bounds[0], 3)}, {format_number(100.0 * bounds[1], 3)}] %"


def _per_hour_interval(bounds) -> str:
    return _interval(bounds, lambda v: format_number(v, 3))


def _part_phrase(part_name: str) -> str:
    """How a report names what it evaluated: "validation part", "every pulse scored"."""
    return "every pulse scored" if part_name == "all" else f"{part_name} part"


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
        ("TOPPADDING", (0, 0), (-1, -1), 1.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
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
        ["Data period", f"{c.data_period[0]} to {c.data_period[1]} (UTC)"],
        ["Evaluated", _part_phrase(c.part_name)],
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
    if c.facts:
        story += [_p("About this run", st["h2"])]
        story += [Paragraph(escape(fact), st["body"], bulletText="-") for fact in c.facts]
    if c.notes:
        story += [_p("Warnings", st["h2"])]
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
    ("false_alarm_rate", "False-alarm rate (share of normal pulses alarmed)"),
    ("brier", "Brier score"),
    ("expected_calibration_error", "Expected calibration error"),
)
_METRIC_INTERVALS = {"recall": "recall_interval", "false_alarm_rate": "false_alarm_rate_interval"}
_SHOWN_ELSEWHERE = {k for k, _ in _METRIC_ROWS} | {
    "n", "n_errant", "n_normal", "threshold", "recall_at_threshold", "confusion_matrix",
    "reliability", "errant_caught", "false_alarms_per_hour", "pulse_rate_hz", "notes",
    "recall_interval", "false_alarm_rate_interval", "false_alarms_per_hour_interval",
    "normal_beam_hours",
}


def _share_interval(k, n) -> list[float] | None:
    """Wilson 95 % interval of k of n, or None when either is unknown or n is 0."""
    if k is None or n is None or not n:
        return None
    return list(wilson_interval(int(k), int(n)))


def _per_hour_bounds(false_alarms, n_normal, rate_hz) -> list[float] | None:
    """Poisson 95 % interval of false alarms per hour over the beam time `n_normal` pulses at
    `rate_hz` stand for, or None when a count is unknown."""
    if false_alarms is None or not n_normal or not rate_hz:
        return None
    return list(poisson_interval(int(false_alarms), n_normal / rate_hz / SECONDS_PER_HOUR))


def _summary_page(c: ReportContent, st) -> list:
    m, t = c.metrics, c.threshold
    caught = m.get("errant_caught") or {}
    rate = m.get("pulse_rate_hz", 60.0)
    cm = m.get("confusion_matrix") or {}
    story = [_p(f"Summary: {_part_phrase(c.part_name)}", st["h1"])]
    operator = [
        ["", "Value", "95 % interval"],
        ["Errant pulses caught", f"{format_number(caught.get('caught'))} of {format_number(caught.get('total'))}",
         _interval(m.get("recall_interval"), lambda v: format_number(v, 3)) + " (recall)"
         if m.get("recall_interval") else ""],
        ["False alarms", f"{format_number(cm.get('fp'))} of {format_number(m.get('n_normal'))} normal pulses",
         _percent_interval(m.get("false_alarm_rate_interval"))],
        ["False alarms per hour of beam", format_number(m.get("false_alarms_per_hour"), 3),
         _per_hour_interval(m.get("false_alarms_per_hour_interval"))],
        ["Pulses evaluated", f"{format_number(m.get('n'))} ({format_number(m.get('n_errant'))} errant, "
                             f"{format_number(m.get('n_normal'))} normal)",
         _beam_time(m.get("normal_beam_hours"))],
        ["Alarm threshold (score >=)", format_number(t.get("threshold", m.get("threshold"))), ""],
    ]
    story += [_table(operator, col_widths=[2.3 * inch, 2.3 * inch, 1.9 * inch]),
              _p(f"False alarms per hour extrapolate the false-alarm rate to every pulse at "
                 f"{format_number(rate, 3)} Hz, assuming all beam pulses are like the normal pulses "
                 "of this sample. Intervals are 95 %: exact Poisson for false alarms per hour, "
                 "Wilson for shares (recall, false-alarm rate); a figure read off a few events has a "
                 "wide one.", st["small"]),
              Spacer(1, 0.15 * inch)]
    if c.online:
        story += _online_summary(m, t.get("threshold", m.get("threshold")), c.online, st)
    rows = [["Metric", "Value", "95 % interval"]] + [
        [label, format_number(m.get(key)), _interval(m.get(_METRIC_INTERVALS.get(key, "")))]
        for key, label in _METRIC_ROWS if key in m]
    extras = [[k, format_number(v), ""] for k, v in m.items()
              if k not in _SHOWN_ELSEWHERE and (v is None or isinstance(v, int | float | str))]
    story += [_table(rows + extras, col_widths=[3.2 * inch, 1.2 * inch, 1.6 * inch]),
              Spacer(1, 0.15 * inch)]
    # Confusion matrix and the validation operating point side by side: stacked, the second
    # table no longer fits the page once the online comparison is shown.
    cells = []
    if cm:
        cm_rows = [["Confusion matrix", "No alarm", "Alarm"],
                   ["Normal", format_number(cm.get("tn")), format_number(cm.get("fp"))],
                   ["Errant", format_number(cm.get("fn")), format_number(cm.get("tp"))]]
        cells.append(_table(cm_rows, col_widths=[1.15 * inch, 0.8 * inch, 0.8 * inch]))
    if t:
        target = t.get("target_false_alarm_rate")
        n_normal, n_errant = t.get("n_normal"), t.get("n_errant")
        val_far, val_recall = t.get("false_alarm_rate"), t.get("recall")
        far_bounds = (_share_interval(round(val_far * n_normal), n_normal)
                      if val_far is not None and n_normal else None)
        recall_bounds = (_share_interval(round(val_recall * n_errant), n_errant)
                         if val_recall is not None and n_errant else None)
        op = [["Operating point", "chosen on validation"],
              ["Method", str(t.get("method", "n/a"))],
              *_target_rows(t, target),
              ["Validation false-alarm rate",
               f"{_percent(val_far)} {_percent_interval(far_bounds)}".strip()],
              ["Validation recall", f"{format_number(val_recall)} {_interval(recall_bounds)}".strip()],
              ["Validation precision", format_number(t.get("precision"))],
              ["Validation F1", format_number(t.get("f1"))],
              ["Validation pulses (normal / errant)",
               f"{format_number(t.get('n_normal'))} / {format_number(t.get('n_errant'))}"]]
        cells.append(_table(op, col_widths=[2.1 * inch, 1.9 * inch]))
    if cells:
        side = Table([cells], hAlign="LEFT")
        side.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (0, 0), 0)]))
        story.append(side)
    for note in m.get("notes", []):
        story.append(Paragraph(escape(note), st["note"], bulletText="!"))
    return story


def _beam_time(hours) -> str:
    """The beam time normal pulses stand for, in seconds or hours."""
    if hours is None:
        return ""
    seconds = hours * 3600.0
    return (f"{format_number(seconds, 3)} s of beam" if seconds < 600
            else f"{format_number(hours, 3)} h of beam")


def _target_rows(t: dict, target) -> list[list[str]]:
    """The operating point's target: in false alarms per hour with the beam time it was placed
    on and whether that time could hold it, or (older runs, other methods) a per-pulse rate."""
    per_hour = t.get("false_alarms_per_hour")
    if per_hour is None:
        return [["Target false-alarm rate", _percent(target) if target is not None else "n/a"]]
    hours = t.get("normal_beam_hours")
    beam = (f"{format_number(t.get('n_normal'))} pulses, {_beam_time(hours)}"
            if hours is not None else "n/a")
    resolved = t.get("resolved")
    placed = ("yes" if resolved else "no (too little beam)") if resolved is not None else "n/a"
    return [["Target false alarms per hour", format_number(per_hour, 3)],
            ["Placed on (normal)", beam],
            ["Target resolvable", placed]]


def _online_summary(m: dict, threshold: float, o: dict, st) -> list:
    """The fixed and the online-recalibrated operating point side by side on the same pulses
    (the fixed threshold stays the headline)."""
    caught = m.get("errant_caught") or {}
    rate = m.get("pulse_rate_hz", 60.0)
    online_far = _percent_interval(_share_interval(o.get("false_alarms"), o.get("n_normal")))
    online_per_hour = _per_hour_interval(_per_hour_bounds(o.get("false_alarms"), o.get("n_normal"), rate))
    online_recall = _interval(_share_interval(o.get("caught"), o.get("n_errant")),
                              lambda v: format_number(v, 3))
    rows = [["Same pulses, in time order", "Fixed threshold", "Online threshold"],
            ["Threshold", format_number(threshold),
             f"{format_number(o.get('initial_threshold'))} -> {format_number(o.get('final_threshold'))} "
             f"(range {format_number(o.get('threshold_min'), 3)}..{format_number(o.get('threshold_max'), 3)})"],
            [f"False-alarm rate (target {_percent(o.get('target_false_alarm_rate'))})",
             f"{_percent(m.get('false_alarm_rate'))} {_percent_interval(m.get('false_alarm_rate_interval'))}",
             f"{_percent(o.get('false_alarm_rate'))} ({format_number(o.get('false_alarms'))} of "
             f"{format_number(o.get('n_normal'))}) {online_far}"],
            ["False alarms per hour of beam",
             f"{format_number(m.get('false_alarms_per_hour'), 3)} "
             f"{_per_hour_interval(m.get('false_alarms_per_hour_interval'))}",
             f"{format_number(o.get('false_alarms_per_hour'), 3)} {online_per_hour}"],
            ["Errant pulses caught",
             f"{format_number(caught.get('caught'))} of {format_number(caught.get('total'))} "
             f"{_interval(m.get('recall_interval'), lambda v: format_number(v, 3))}",
             f"{format_number(o.get('caught'))} of {format_number(o.get('n_errant'))} {online_recall}"]]
    return [_p("Online recalibration", st["h2"]),
            _table(rows, col_widths=[2.0 * inch, 1.9 * inch, 2.6 * inch]),
            _p("In brackets: the 95 % interval (Wilson for shares, Poisson per hour).", st["small"]),
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
        story += [_p(f"Skipped files ({len(c.skipped_files):,}; first {len(shown)} shown, each with "
                     "its reason)", st["h2"])]
        rows = [["File", "Reason"]] + [[Paragraph(escape(str(path)), st["small"]),
                                        Paragraph(escape(str(reason)), st["small"])]
                                       for path, reason in (_path_reason(item) for item in shown)]
        story.append(_table(rows, col_widths=[4.9 * inch, 2.0 * inch]))
        if len(c.skipped_files) > len(shown):
            story.append(_p(f"... and {len(c.skipped_files) - len(shown):,} more (see data_ledger.json).",
                            st["small"]))
    return story


def _path_reason(item) -> tuple[str, str]:
    """A skipped-files entry: (path, reason), or a bare path (reason in data_ledger.json)."""
    if isinstance(item, str):
        return item, "see data_ledger.json"
    path, reason = item
    return str(path), str(reason)


def _curve_pages(c: ReportContent, st) -> list:
    labels, scores = np.asarray(c.labels), np.asarray(c.scores)
    threshold = float(c.threshold.get("threshold", c.metrics.get("threshold", 0.5)))
    story = [_p(f"Operating and precision-recall curves ({_part_phrase(c.part_name)})", st["h1"])]
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
        rate = c.metrics.get("pulse_rate_hz", 60.0)
        story.append(Table([[figure_to_flowable(plots.plot_operating_curve(labels, scores, threshold, rate), half),
                             figure_to_flowable(plots.plot_pr_curve(labels, scores, threshold), half)]]))
        story.append(_p("Left: the ROC curve in operator units, recall against false alarms per hour of "
                        "beam on a log axis (each normal pulse stands for 1/"
                        f"{format_number(rate, 3)} s of beam); grey squares: the best recall at 1, 3, "
                        "10, ... false alarms per hour, for the rates this part is long enough to "
                        "tell from zero, with 95 % intervals. The green dot marks this "
                        "run's operating point (alarm when score >= threshold) with its intervals; an "
                        "open dot on the left edge means no false alarm. ROC AUC is on the summary "
                        "page.", st["small"]))
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
        why = c.missing_pages.get("Example traces", "no example traces were provided")
        return story + [_p(f"Not shown: {why}.", st["body"])]
    fig = plots.plot_example_traces(c.example_traces, quantity=c.trace_quantity)
    story.append(figure_to_flowable(fig, FRAME_WIDTH, max_height=FRAME_HEIGHT - 1.0 * inch))
    story.append(_p("Caught: errant, alarmed (highest scores). Missed: errant, no alarm (lowest "
                    "scores). False alarms: normal, alarmed (highest scores). Each panel is titled "
                    "with the pulse's file and time (UTC). Each pulse is drawn as its 1 µs envelope "
                    "(mean per 10-sample bin: one chopper mini-pulse period at 10 MS/s); where it has "
                    "reference pulses, over their median (grey line) and min-max band.", st["small"]))
    return story


def _rate_cell(false_alarms: int, n_normal: int) -> str:
    """A block's false-alarm rate with its 95 % Wilson interval on a second line."""
    if not n_normal:
        return "n/a"
    return (f"{_percent(false_alarms / n_normal)}\n"
            f"{_percent_interval(_share_interval(false_alarms, n_normal))}")


def _recall_cell(caught: int, n_errant: int) -> str:
    if not n_errant:
        return "n/a"
    return f"{caught} of {n_errant}\n{_interval(_share_interval(caught, n_errant), lambda v: format_number(v, 2))}"


def _block_rows(table: list[dict], names: list, online: bool, first: str) -> list[list]:
    head = [first, "Pulses", "False alarms", "FA rate [95 %]", "Caught [95 %]"]
    if online:
        head += ["Online FA rate", "Online caught"]
    rows = [head]
    for row, name in zip(table, names, strict=True):
        cells = [name, format_number(row["n"]),
                 f"{format_number(row['false_alarms'])} of {format_number(row['n_normal'])}",
                 _rate_cell(row["false_alarms"], row["n_normal"]),
                 _recall_cell(row["caught"], row["n_errant"])]
        if online:
            cells += [_rate_cell(row["online_false_alarms"], row["n_normal"]),
                      _recall_cell(row["online_caught"], row["n_errant"])]
        rows.append(cells)
    return rows


def _blocks_page(c: ReportContent, st) -> list:
    """False-alarm rate and recall per time block and per configuration group: whether the
    operating point held through the period, or only on average."""
    labels, scores = np.asarray(c.labels), np.asarray(c.scores)
    title = f"Operating point over time and per configuration ({_part_phrase(c.part_name)})"
    if labels.size == 0 or (c.timestamps_ns is None and c.groups is None):
        why = c.missing_pages.get("Operating point over time and per configuration")
        return [_p(title, st["h1"]), _p(f"Not shown: {why}.", st["body"])] if why else []
    threshold = float(c.threshold.get("threshold", c.metrics.get("threshold", 0.5)))
    target = (c.online or {}).get("target_false_alarm_rate", c.threshold.get("target_false_alarm_rate"))
    online = c.online_alarms is not None
    story = [_p(title, st["h1"]),
             _p("The false-alarm rate within each block, against the target with a 0.5x-2x band: "
                "a block whose interval lies outside the band is a stretch of beam where the "
                "threshold did not hold. Error bars and bracketed figures are 95 % Wilson "
                "intervals: a rate from a few pulses says little."
                + (" Online: the recalibrated threshold (see summary)." if online else ""), st["small"])]
    width = [1.0 * inch, 0.55 * inch, 0.85 * inch, 1.05 * inch, 0.95 * inch, 1.05 * inch,
             0.95 * inch][:7 if online else 5]
    if c.timestamps_ns is not None:
        ts = np.asarray(c.timestamps_ns, dtype=np.int64)
        blocks = time_blocks(ts, min(N_TIME_BLOCKS, max(1, ts.size // MIN_PULSES_PER_BLOCK)))
        table = rates_by_block(labels, scores, threshold, blocks, c.online_alarms)
        starts = [datetime.fromtimestamp(int(ts[blocks == row["block"]].min()) / 1e9, tz=UTC)
                  .strftime("%m-%d %H:%M") for row in table]
        names = [f"{row['block'] + 1}: {start}" for row, start in zip(table, starts, strict=True)]
        fig = plots.plot_rates_by_block(table, target, xlabel="time block (start, UTC)")
        fig.axes[-1].set_xticks(range(len(names)), [n.replace(": ", "\n") for n in names], fontsize=7.5)
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
        heading = (f"Per configuration group ({ids.size:,} groups; the {MAX_GROUPS_SHOWN} largest "
                   "shown, the rest pooled as 'other')" if ids.size > MAX_GROUPS_SHOWN
                   else f"Per configuration group ({ids.size:,} groups)")
        story += [PageBreak(), _p(heading, st["h2"]),
                  _p("A configuration group is a stretch of beam with the same settings (a new group "
                     "starts when a setting moves beyond its tolerance). Groups are numbered in time "
                     "order; the table says how each differs from the largest group.", st["small"]),
                  figure_to_flowable(plots.plot_rates_by_block(table, target, xlabel="configuration group"),
                                     FRAME_WIDTH, max_height=3.3 * inch),
                  _table(_block_rows(table, [_group_cell(name, c.group_descriptions, st) for name in names],
                                     online, "Group"), col_widths=_group_widths(online))]
    elif "Per configuration group" in c.missing_pages:
        story += [PageBreak(), _p("Per configuration group", st["h2"]),
                  _p(f"Not shown: {c.missing_pages['Per configuration group']}.", st["body"])]
    return story


def _group_cell(name: str, descriptions: dict, st) -> Paragraph:
    """A group's id with the settings that set it apart, when the report has them."""
    described = descriptions.get(name) if name != "other" else "the smaller groups, pooled"
    text = f"<b>{escape(name)}</b>" + (f"<br/>{escape(described)}" if described else "")
    return Paragraph(text, st["small"])


def _group_widths(online: bool) -> list[float]:
    if online:
        return [1.9 * inch, 0.5 * inch, 0.8 * inch, 1.0 * inch, 0.85 * inch, 1.0 * inch, 0.85 * inch]
    return [3.0 * inch, 0.6 * inch, 0.9 * inch, 1.1 * inch, 1.0 * inch]


def _config_page(c: ReportContent, st) -> list:
    text = c.config_text or "(no config given)"
    return [_p("Resolved configuration", st["h1"]), Preformatted(text, st["code"], maxLineLength=120)]


def _training_page(c: ReportContent, st) -> list:
    if not c.history:
        why = c.missing_pages.get("Training curves")
        return [_p("Training curves", st["h1"]), _p(f"Not shown: {why}.", st["body"])] if why else []
    threshold = c.threshold.get("threshold", c.metrics.get("threshold"))
    return [_p("Training curves", st["h1"]),
            _p("Per epoch, on the training part (solid) and the validation part (dashed). The "
               "precision and recall panels are Keras' own, counting a score >= 0.5 as an alarm, not "
               f"the run's threshold ({format_number(threshold)}): the summary page gives them at the "
               "threshold.", st["small"]),
            figure_to_flowable(plots.plot_training_curves(c.history), FRAME_WIDTH,
                               max_height=FRAME_HEIGHT - 1.4 * inch)]


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
