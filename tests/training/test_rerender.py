"""`driver.py --report RUN` for an SNS run: the PDF comes back from the saved files alone."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import driver
from parser.configs import Config, dump_config
from utils.logs import teardown_logging

pypdf = pytest.importorskip("pypdf")


def test_sns_report_is_rerendered_from_saved_predictions(tmp_path):
    run = tmp_path / "20261127-000000-sns"
    run.mkdir()
    (run / "config.yaml").write_text(dump_config(Config()))
    (run / "threshold.json").write_text(json.dumps({"threshold": 0.5, "method": "best_f1"}))
    split = {"n": 8, "n_errant": 4, "start": "2026-01-01 00:00:00", "end": "2026-01-01 01:00:00"}
    (run / "metrics.json").write_text(json.dumps({"splits": {"val": split}, "seeds": {"seed": 1}}))
    rng = np.random.default_rng(0)
    with (run / "predictions.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["part", "timestamp_ns", "time_utc", "file", "label", "score", "alarm"])
        for i, label in enumerate([0, 1] * 4):
            score = float(np.clip(0.3 + 0.4 * label + rng.normal(0, 0.1), 0, 1))
            writer.writerow(["val", i, f"2026-01-01 00:00:0{i}", "f", label, score,
                             int(score >= 0.5)])
    try:
        assert driver.main(["--report", str(run), "--quiet"], env={}) == 0
    finally:
        teardown_logging()
    text = "\n".join(p.extract_text() or "" for p in pypdf.PdfReader(
        str(run / "train_metrics_report.pdf")).pages)
    assert "re-rendered" in text and "False alarms per hour" in text
