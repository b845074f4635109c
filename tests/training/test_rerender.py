"""`driver.py --report RUN` for an SNS run: a new PDF beside the original, from the saved files
alone, with the alarms the run counted (also from old runs whose scores were rounded)."""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import UTC, datetime

import numpy as np
import pytest

import driver
from parser.configs import Config, dump_config
from training.rerender import rerendered_path, scores_matching_alarms
from utils.logs import teardown_logging

pypdf = pytest.importorskip("pypdf")
THRESHOLD = 0.6957470774650574  # the case: saved as 0.695747, alarm 1


def _run_folder(tmp_path, rows, *, group_column: bool = True):
    run = tmp_path / "20261127-000000-sns"
    run.mkdir()
    (run / "config.yaml").write_text(dump_config(Config()))
    (run / "threshold.json").write_text(json.dumps({"threshold": THRESHOLD, "method": "best_f1"}))
    split = {"n": len(rows), "n_errant": sum(r[0] for r in rows), "start": "2026-01-01 00:00:00",
             "end": "2026-01-01 01:00:00"}
    (run / "metrics.json").write_text(json.dumps({"splits": {"val": split}, "seeds": {"seed": 1}}))
    (run / "train_metrics_report.pdf").write_bytes(b"%PDF-1.4 the original report\n")
    with (run / "predictions.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["part", "timestamp_ns", "time_utc", "file", "label", "score", "alarm"]
                        + (["group"] if group_column else []))
        for i, (label, score, alarm) in enumerate(rows):
            writer.writerow(["val", i * 10**9, f"2026-01-01 00:00:{i:02d}", "f.bin.gz", label, score,
                             alarm] + ([i % 2] if group_column else []))
    return run


def _report(run, tmp_path, capsys):
    try:
        code = driver.main(["--report", str(run), "--quiet", "--set",
                            f"run.log_dir={tmp_path / 'logs'}"], env={})
    finally:
        teardown_logging()
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _text(pdf) -> str:
    """The PDF's text with runs of whitespace as one space (lines wrap where they fit)."""
    return " ".join(" ".join(p.extract_text() for p in pypdf.PdfReader(str(pdf)).pages).split())


def _rows():
    rng = np.random.default_rng(0)
    rows = []
    for label in [0, 1] * 10:
        score = float(np.clip(0.3 + 0.4 * label + rng.normal(0, 0.1), 0, 1))
        rows.append((label, f"{score:.6g}", int(score >= THRESHOLD)))
    rows.append((0, "0.695747", 1))  # a false alarm at the threshold, rounded below it
    return rows


def test_report_goes_to_a_new_file_and_leaves_the_original(tmp_path, capsys):
    run = _run_folder(tmp_path, _rows())
    original = hashlib.sha256((run / "train_metrics_report.pdf").read_bytes()).hexdigest()
    code, out, _ = _report(run, tmp_path, capsys)
    assert code == 0
    new = run / out.strip().splitlines()[-1].removeprefix("report: ").split("/")[-1]
    assert new.name.startswith("train_metrics_report.rerendered-") and new.is_file()
    assert hashlib.sha256((run / "train_metrics_report.pdf").read_bytes()).hexdigest() == original
    text = _text(new)
    assert "re-rendered" in text and "False alarms per hour" in text
    # the pages the run has no input for say why instead of vanishing
    assert "Not shown: the raw traces are not kept in the run folder" in text
    assert "Not shown:" in text and "history.csv is missing" in text
    assert "Per configuration group (2 groups)" in text


def test_saved_alarm_decides_a_rounded_score_at_the_threshold(tmp_path, capsys):
    rows = _rows()
    run = _run_folder(tmp_path, rows)
    assert _report(run, tmp_path, capsys)[0] == 0
    (new,) = run.glob("train_metrics_report.rerendered-*.pdf")
    summary = " ".join(pypdf.PdfReader(str(new)).pages[1].extract_text().split())
    false_alarms = sum(alarm for label, _, alarm in rows if label == 0)
    normal = sum(1 for label, _, _ in rows if label == 0)
    assert f"False alarms {false_alarms} of {normal} normal pulses" in summary


def test_old_run_without_group_column_says_why_the_group_table_is_missing(tmp_path, capsys):
    run = _run_folder(tmp_path, _rows(), group_column=False)
    assert _report(run, tmp_path, capsys)[0] == 0
    (new,) = run.glob("train_metrics_report.rerendered-*.pdf")
    text = _text(new)
    assert "Per configuration group" in text and "has no group column" in text


def test_scores_move_only_across_the_threshold_their_alarm_says():
    scores = np.array([0.695747, 0.9, 0.1, 0.6957470774650574])
    alarms = np.array([True, True, False, False])
    fixed, moved = scores_matching_alarms(scores, alarms, THRESHOLD)
    assert moved == 2
    assert fixed[0] == THRESHOLD and fixed[3] < THRESHOLD and fixed[3] > THRESHOLD - 1e-12
    assert fixed[1] == 0.9 and fixed[2] == 0.1


def test_rerendered_path_never_reuses_a_name(tmp_path):
    now = datetime(2026, 12, 7, 8, 0, 0, tzinfo=UTC)
    first = rerendered_path(tmp_path, now)
    first.write_bytes(b"x")
    second = rerendered_path(tmp_path, now)
    assert first.name == "train_metrics_report.rerendered-20261207-080000.pdf"
    assert second.name == "train_metrics_report.rerendered-20261207-080000-2.pdf"


def test_report_on_a_missing_folder_is_one_line(tmp_path, capsys):
    code, _, err = _report(tmp_path / "nope", tmp_path, capsys)
    assert code == 2 and "no such run folder" in err and "Traceback" not in err
