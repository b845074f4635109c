"""`driver.py --report RUN`: re-render a finished run's PDF from its saved files, no retraining.

The re-render is a new file beside the original (`train_metrics_report.rerendered-<time>.pdf`):
the original is never touched, so it keeps its hash. Sample-contract runs (preprocessing.json)
re-render through `samples_flow.render_train_report`; SNS runs rebuild the operator-units
report from predictions.csv (validation rows), threshold.json, metrics.json, history.csv,
data_ledger.json and config.yaml, with the same pages as the original. A page whose input is
not in the run folder (the raw traces of the examples page; configuration groups of runs older
than the `group` column) says so on the page.

The figures equal the original's: predictions.csv holds full-precision scores, and in runs
written before it did (scores rounded to 6 digits) the saved `alarm` column decides each pulse's
alarm, so a pulse at the threshold counts as it did when the run was made.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from analysis.evaluation import compute_metrics
from analysis.report import ReportContent, write_report
from data_preparation.ledger import DataLedger
from parser.configs import load_config
from training.callbacks import read_history_csv
from training.outputs import skipped_files, split_warnings, trace_quantity, train_facts
from training.samples_flow import is_samples_run, render_train_report
from utils.logs import start_logging
from utils.run_folder import TIMESTAMP_FORMAT

log = logging.getLogger("beamwatch.rerender")

REPORT_NAME = "train_metrics_report.pdf"
EXAMPLES_NOT_STORED = ("the raw traces are not kept in the run folder; the original report "
                       f"({REPORT_NAME}) shows them")


def run_report_flow(config, run_dir: Path, *, quiet: bool = False, debug: bool = False) -> Path:
    """`driver.py --report RUN`: logs (the test flow's files), then `render_run_report`."""
    logger = start_logging(Path(config.run.log_dir), "test", quiet=quiet, debug=debug)
    path = render_run_report(Path(run_dir))
    logger.info("report re-rendered into a new file beside the original: %s", path)
    return path


def rerendered_path(run_dir: Path, now: datetime | None = None) -> Path:
    """A new file name beside the original report: `<stem>.rerendered-<YYYYmmdd-HHMMSS>.pdf`,
    with `-2`, `-3`, ... when that name is taken (nothing is overwritten)."""
    stamp = (now or datetime.now(UTC)).strftime(TIMESTAMP_FORMAT)
    stem = Path(REPORT_NAME).stem
    path = Path(run_dir) / f"{stem}.rerendered-{stamp}.pdf"
    n = 2
    while path.exists():
        path = Path(run_dir) / f"{stem}.rerendered-{stamp}-{n}.pdf"
        n += 1
    return path


def render_run_report(run_dir: Path) -> Path:
    """Re-render `run_dir`'s training report into a new file beside it; returns its path."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"--report {run_dir}: no such run folder")
    path = rerendered_path(run_dir)
    if is_samples_run(run_dir):
        return render_train_report(run_dir, path)
    needed = ("config.yaml", "metrics.json", "predictions.csv", "threshold.json")
    missing = [n for n in needed if not (run_dir / n).exists()]
    if missing:
        raise FileNotFoundError(f"{run_dir} is not a finished training run: it has no "
                                f"{', '.join(missing)}")
    config = load_config(run_dir / "config.yaml")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    threshold = json.loads((run_dir / "threshold.json").read_text())
    val = read_validation_rows(run_dir / "predictions.csv")
    scores, adjusted = scores_matching_alarms(val.scores, val.alarms, float(threshold["threshold"]))
    if adjusted:
        log.info("%d validation score(s) within rounding of the threshold: alarm taken from the "
                 "saved alarm column (this run's predictions.csv holds rounded scores)", adjusted)
    ledger_path = run_dir / "data_ledger.json"
    ledger = (DataLedger.from_dict(json.loads(ledger_path.read_text())) if ledger_path.exists()
              else DataLedger())
    splits = metrics.get("splits", {})
    period = ((min(s["start"] for s in splits.values()), max(s["end"] for s in splits.values()))
              if splits else (val.times[0], val.times[-1]))
    history = read_history_csv(run_dir / "history.csv")
    missing_pages = {"Example traces": EXAMPLES_NOT_STORED}
    if not history:
        missing_pages["Training curves"] = f"{run_dir / 'history.csv'} is missing or empty"
    if val.groups is None:
        missing_pages["Per configuration group"] = (
            "this run's predictions.csv has no group column (written before it had one)")
    facts = train_facts(config, metrics.get("imbalance", "not recorded in metrics.json"),
                        metrics.get("replicas", 1), metrics.get("workers", 1), metrics.get("test"))
    facts.append(f"Re-rendered on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC from the run's saved "
                 f"files (driver.py --report); the original report is {REPORT_NAME}, untouched.")
    write_report(path, ReportContent(
        title="beamwatch training report (re-rendered)",
        run_id=run_dir.name,
        created=datetime.now(UTC),
        data_period=period,
        split_sizes=splits,
        seeds=metrics.get("seeds", {}),
        metrics=compute_metrics(val.labels, scores, threshold["threshold"],
                                pulse_rate_hz=config.threshold.pulse_rate_hz),
        threshold=threshold,
        ledger_summary=ledger.summary(),
        skipped_files=skipped_files(ledger),
        history=history or None,
        labels=val.labels,
        scores=scores,
        example_traces={},
        config_text=(run_dir / "config.yaml").read_text(),
        facts=facts,
        notes=split_warnings(config),
        part_name="validation",
        timestamps_ns=val.timestamps_ns,
        groups=val.groups,
        group_descriptions=metrics.get("validation_groups", {}),
        trace_quantity=trace_quantity(config),
        missing_pages=missing_pages,
    ))
    return path


@dataclass(frozen=True)
class SavedRows:
    """One part's rows of a run's predictions.csv, as arrays."""

    labels: np.ndarray
    scores: np.ndarray
    alarms: np.ndarray
    timestamps_ns: np.ndarray
    times: list[str]
    groups: np.ndarray | None


def read_validation_rows(path: Path) -> SavedRows:
    """The validation rows of predictions.csv; a missing column or bad cell is one line
    naming the file, the line and what was expected."""
    labels, scores, alarms, stamps, times, groups = [], [], [], [], [], []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        columns = set(reader.fieldnames or ())
        needed = {"part", "label", "score", "alarm", "timestamp_ns", "time_utc"}
        if not needed <= columns:
            raise ValueError(f"{path}: expected the columns {', '.join(sorted(needed))}; "
                             f"missing {', '.join(sorted(needed - columns))}")
        has_groups = "group" in columns
        for line, row in enumerate(reader, start=2):
            if row["part"] != "val":
                continue
            try:
                labels.append(int(row["label"]))
                scores.append(float(row["score"]))
                alarms.append(int(row["alarm"]) == 1)
                stamps.append(int(row["timestamp_ns"]))
                if has_groups:
                    groups.append(int(row["group"]))
            except ValueError:
                raise ValueError(f"{path} line {line}: expected numbers in label, score, alarm, "
                                 "timestamp_ns and group") from None
            times.append(row["time_utc"])
    if not labels:
        raise ValueError(f"{path} holds no validation rows (part 'val') to report on")
    return SavedRows(np.asarray(labels, np.int64), np.asarray(scores, np.float64),
                     np.asarray(alarms, bool), np.asarray(stamps, np.int64), times,
                     np.asarray(groups, np.int64) if has_groups else None)


def scores_matching_alarms(scores: np.ndarray, alarms: np.ndarray, threshold: float
                           ) -> tuple[np.ndarray, int]:
    """Scores moved onto the side of `threshold` their saved alarm says, and how many moved.

    Full-precision scores never move. A score rounded to 6 digits can land on the wrong side
    (0.695747 saved for 0.6957470774650574 at that threshold, alarm 1): it is set to the
    threshold (alarm) or to the float just below it (no alarm), a change below the rounding.
    """
    fixed = np.array(scores, dtype=np.float64, copy=True)
    up = alarms & (fixed < threshold)
    down = ~alarms & (fixed >= threshold)
    fixed[up] = threshold
    fixed[down] = np.nextafter(threshold, -np.inf)
    return fixed, int(up.sum() + down.sum())
