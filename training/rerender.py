"""`driver.py --report RUN`: re-render a finished run's PDF from its saved files, no retraining.

Sample-contract runs (preprocessing.json) re-render through `samples_flow.render_train_report`;
SNS runs rebuild the operator-units report from predictions.csv (validation rows), threshold.json,
metrics.json, history.csv, data_ledger.json and config.yaml. The raw traces are not in the run
folder, so the examples page of an SNS re-render says so instead of showing traces.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from analysis.evaluation import compute_metrics
from analysis.report import ReportContent, write_report
from data_preparation.ledger import DataLedger
from parser.configs import load_config
from training.callbacks import read_history_csv
from training.outputs import skipped_files, split_notes
from training.samples_flow import is_samples_run, render_train_report
from utils.logs import setup_logging


def run_report_flow(config, run_dir: Path, *, quiet: bool = False, debug: bool = False) -> Path:
    """`driver.py --report RUN`: logs (the test flow's files), then `render_run_report`."""
    logger = setup_logging(Path(config.run.log_dir), "test", quiet=quiet, debug=debug)
    path = render_run_report(Path(run_dir))
    logger.info("report re-rendered: %s", path)
    return path


def render_run_report(run_dir: Path) -> Path:
    """Re-render `run_dir`'s train_metrics_report.pdf; returns its path."""
    run_dir = Path(run_dir)
    if is_samples_run(run_dir):
        return render_train_report(run_dir)
    needed = ("config.yaml", "metrics.json", "predictions.csv", "threshold.json")
    missing = [n for n in needed if not (run_dir / n).exists()]
    if missing:
        raise FileNotFoundError(f"{run_dir} is not a finished run: no {', '.join(missing)}")
    config = load_config(run_dir / "config.yaml")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    threshold = json.loads((run_dir / "threshold.json").read_text())
    labels, scores, stamps = [], [], []
    with (run_dir / "predictions.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            if row["part"] == "val":
                labels.append(int(row["label"]))
                scores.append(float(row["score"]))
                stamps.append(row["time_utc"])
    if not labels:
        raise ValueError(f"{run_dir}/predictions.csv holds no validation rows to report on")
    labels_a, scores_a = np.asarray(labels, np.int64), np.asarray(scores, np.float64)
    ledger_path = run_dir / "data_ledger.json"
    ledger = (DataLedger.from_dict(json.loads(ledger_path.read_text())) if ledger_path.exists()
              else DataLedger())
    splits = metrics.get("splits", {})
    period = (min(s["start"] for s in splits.values()), max(s["end"] for s in splits.values())) \
        if splits else (min(stamps), max(stamps))
    path = run_dir / "train_metrics_report.pdf"
    write_report(path, ReportContent(
        title="beamwatch training report (re-rendered)",
        run_id=run_dir.name,
        created=datetime.now(UTC),
        data_period=period,
        split_sizes=splits,
        seeds=metrics.get("seeds", {}),
        metrics=compute_metrics(labels_a, scores_a, threshold["threshold"],
                                pulse_rate_hz=config.threshold.pulse_rate_hz),
        threshold=threshold,
        ledger_summary=ledger.summary(),
        skipped_files=skipped_files(ledger),
        history=read_history_csv(run_dir / "history.csv") or None,
        labels=labels_a,
        scores=scores_a,
        example_traces={},
        config_text=(run_dir / "config.yaml").read_text(),
        notes=split_notes(config) + ["Re-rendered from the run's saved predictions "
                                     "(driver.py --report); example traces are not stored."],
        part_name="validation",
    ))
    return path
