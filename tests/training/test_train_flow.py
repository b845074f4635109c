"""The train and test flows end to end on a tiny simulated archive, through the driver."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

import driver
from enterprise_tools.simulator import SimulatorParams, simulate_archive
from utils.logs import teardown_logging

pypdf = pytest.importorskip("pypdf")

TINY_MODEL = {"conv_filters": [8, 8, 8], "lstm_units": 8, "settings_units": [8],
              "head_units": [8]}


def write_config(tmp: Path, archive: Path, **sections) -> Path:
    config = {
        "run": {"name": "flow", "output_dir": str(tmp / "runs"), "log_dir": str(tmp / "logs"),
                "seed": 5},
        "data": {"dataset_loc": str(archive / "dcm"), "cache_dir": str(tmp / "cache"),
                 "workers": 1},
        "beam_settings": {"data_location": str(archive / "beam_settings")},
        "model": dict(TINY_MODEL),
        "train": {"epochs": 2, "batch_size": 16, "tensorboard": False},
    }
    for name, values in sections.items():
        config.setdefault(name, {}).update(values)
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_driver(*args: str) -> int:
    try:
        return driver.main(list(args), env={})
    finally:
        teardown_logging()


def pdf_text(path: Path) -> tuple[int, str]:
    reader = pypdf.PdfReader(str(path))
    return len(reader.pages), "\n".join(page.extract_text() or "" for page in reader.pages)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("flow")
    archive = tmp / "archive"
    simulate_archive(archive, SimulatorParams.tiny(seed=3))
    config = write_config(tmp, archive)
    assert run_driver("--train", "--config", str(config), "--quiet") == 0
    (run_dir,) = sorted((tmp / "runs").iterdir())
    return tmp, archive, config, run_dir


def test_train_writes_a_complete_run_folder(trained):
    _, _, _, run_dir = trained
    for name in ("config.yaml", "model.keras", "scalers.json", "threshold.json", "history.csv",
                 "metrics.json", "data_ledger.json", "predictions.csv",
                 "train_metrics_report.pdf", "train.log"):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    splits = metrics["splits"]
    assert splits["train"]["end"] <= splits["val"]["start"] <= splits["val"]["end"] \
        <= splits["test"]["start"]
    assert metrics["seeds"]["seed"] == 5 and metrics["replicas"] == 1
    assert 0.0 <= metrics["validation"]["pr_auc"] <= 1.0
    threshold = json.loads((run_dir / "threshold.json").read_text())
    # the default operating point: false alarms per hour, placed on what validation can hold
    assert threshold["method"] == "false_alarms_per_hour"
    assert threshold["normal_beam_hours"] == pytest.approx(threshold["n_normal"] / 60 / 3600)
    allowed = int(threshold["false_alarms_per_hour"] * threshold["normal_beam_hours"])
    assert threshold["false_alarm_rate"] * threshold["n_normal"] <= allowed
    assert threshold["resolved"] is (allowed >= 1)


def test_model_of_record_loads_in_safe_mode(trained):
    import keras

    model = keras.saving.load_model(trained[3] / "model.keras", safe_mode=True)
    # the default model: the pulse, its reference pulses and the settings
    assert {t.name.split(":")[0] for t in model.inputs} == {"trace", "settings", "reference"}


def test_training_history_has_every_epoch(trained):
    with open(trained[3] / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 and "val_auc_pr" in rows[0]


def test_ledger_lists_the_skipped_files(trained):
    ledger = json.loads((trained[3] / "data_ledger.json").read_text())
    reasons = {entry["reason"] for entry in ledger["entries"]}
    assert {"mislabelled_normal_file", "no_production_beam"} <= reasons


def test_train_report_shows_the_validation_summary(trained):
    run_dir = trained[3]
    pages, text = pdf_text(run_dir / "train_metrics_report.pdf")
    metrics = json.loads((run_dir / "metrics.json").read_text())["validation"]
    assert pages >= 6
    assert run_dir.name in text
    assert "errant pulses caught" in text.lower()
    assert f"{metrics['errant_caught']['caught']} of {metrics['errant_caught']['total']}" in text
    assert "mislabelled_normal_file" in text


def test_test_on_validation_part_reproduces_validation_metrics(trained):
    tmp, _, config, run_dir = trained
    assert run_driver("--test", "--run", str(run_dir), "--part", "val", "--config", str(config),
                      "--quiet") == 0
    out = sorted((run_dir / "tests").iterdir())[-1]
    tested = json.loads((out / "metrics.json").read_text())["metrics"]
    trained_val = json.loads((run_dir / "metrics.json").read_text())["validation"]
    for key in ("pr_auc", "roc_auc", "recall", "false_alarm_rate", "n", "n_errant"):
        assert tested[key] == pytest.approx(trained_val[key], abs=1e-6), key


def test_test_flow_writes_its_own_folder_and_report(trained):
    tmp, _, config, run_dir = trained
    assert run_driver("--test", "--run", str(run_dir), "--config", str(config), "--quiet") == 0
    out = sorted((run_dir / "tests").iterdir())[-1]
    for name in ("metrics.json", "predictions.csv", "test_metrics_report.pdf"):
        assert (out / name).is_file(), name
    result = json.loads((out / "metrics.json").read_text())
    assert result["part"] == "test"
    with open(out / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == result["metrics"]["n"]
    assert {row["part"] for row in rows} == {"test"}
    # The online threshold (threshold.online defaults to true): causal, from the validation one.
    online = result["online_threshold"]
    assert online["initial_threshold"] == pytest.approx(result["threshold"]["threshold"])
    assert online["n_normal"] + online["n_errant"] == len(rows)
    assert online["false_alarms"] == sum(int(r["online_alarm"]) for r in rows if r["label"] == "0")
    first = min(rows, key=lambda r: int(r["timestamp_ns"]))
    assert float(first["online_threshold"]) == pytest.approx(online["initial_threshold"], rel=1e-5)
    _, text = pdf_text(out / "test_metrics_report.pdf")
    assert "test" in text and run_dir.name in text
    assert "Online recalibration" in text and "over time and per configuration" in text


def test_test_on_another_archive_scores_every_pulse(trained, tmp_path):
    _, _, config, run_dir = trained
    other = tmp_path / "later-month"
    simulate_archive(other, SimulatorParams.tiny(seed=11, hours=0.5))
    assert run_driver("--test", "--run", str(run_dir), "--data", str(other), "--config",
                      str(config), "--quiet") == 0
    out = sorted((run_dir / "tests").iterdir())[-1]
    result = json.loads((out / "metrics.json").read_text())
    assert result["part"] == "all" and str(other) in result["data"]
    truth = np.genfromtxt(other / "truth.csv", delimiter=",", names=True, dtype=None,
                          encoding="utf-8")
    usable = (truth["label"] >= 0) & (truth["expected_skip"] == "")
    # The first pulse of a configuration has no earlier pulse to be judged against.
    no_reference = sum(row["pulses"] for row in result["ledger_summary"]
                       if row["reason"] == "no_reference")
    assert result["metrics"]["n"] == int(usable.sum()) - no_reference
    references = result["split"]["references"]
    assert references["same_file"] + references["archive"] == result["metrics"]["n"]


def test_finished_run_is_never_trained_over(trained, capsys):
    _, _, config, run_dir = trained
    code = run_driver("--train", "--run", str(run_dir), "--config", str(config), "--quiet")
    assert code == 2
    assert "finished run" in capsys.readouterr().err


def test_test_flow_in_a_fresh_process_loads_the_model(trained):
    """What submit.sh runs: `driver.py --test` in a new interpreter (custom layers registered)."""
    import subprocess
    import sys

    _, _, config, run_dir = trained
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, str(root / "driver.py"), "--test", "--run", str(run_dir),
                           "--config", str(config), "--quiet"],
                          cwd=root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_npz_windows_train_and_test_with_the_generic_model(tmp_path):
    """Windowed arrays from another source (one .npz file) through the same driver."""
    rng = np.random.default_rng(0)
    n = 240
    label = (rng.random(n) < 0.25).astype(np.int8)
    traces = rng.normal(0, 1, (n, 64, 3)).astype(np.float32)
    traces[label == 1, 40:, 0] += 2.0
    np.savez(tmp_path / "sessions.npz", traces=traces, label=label,
             timestamp_ns=(1_700_000_000 + np.arange(n)) * 1_000_000_000,
             settings=rng.normal(0, 1, (n, 2)).astype(np.float32),
             settings_names=np.array(["pressure", "speed"]))
    config = tmp_path / "npz.yaml"
    config.write_text(yaml.safe_dump({
        "run": {"name": "npz", "output_dir": str(tmp_path / "runs"),
                "log_dir": str(tmp_path / "logs")},
        "data": {"source": "npz", "dataset_loc": str(tmp_path / "sessions.npz"),
                 "cache_dir": None},
        "model": {"name": "cnn_lstm", "input_pool": 1, "conv_filters": [8, 8],
                  "conv_kernels": [5, 3], "conv_strides": [2, 2], "lstm_units": 8},
        # a fixed schedule: the cross-validated epoch choice has its own tests (test_small_data)
        "train": {"epochs": 2, "batch_size": 16, "tensorboard": False, "epoch_choice": "fixed"},
    }))
    assert run_driver("--config", str(config), "--quiet") == 0
    (run_dir,) = sorted((tmp_path / "runs").iterdir())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["splits"]["test"]["n"] == 36  # every window its own sample: 70/15/15 of 240
    assert len(list(run_dir.glob("tests/*/test_metrics_report.pdf"))) == 1


def _page_numbers(text: str) -> list[str]:
    """The figures a page quotes (counts, rates, intervals), in order; dates and times left out."""
    import re

    text = re.sub(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2})?", "", text)
    return re.findall(r"-?\d[\d,]*(?:\.\d+)?(?:e-?\d+)?", text)


def test_report_rerender_is_a_new_file_with_the_originals_numbers(trained, capsys):
    import hashlib

    tmp, _, config, run_dir = trained
    original = run_dir / "train_metrics_report.pdf"
    digest = hashlib.sha256(original.read_bytes()).hexdigest()
    assert run_driver("--report", str(run_dir), "--config", str(config), "--quiet") == 0
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    new = Path(printed.removeprefix("report: "))
    assert new.parent == run_dir and new.name.startswith("train_metrics_report.rerendered-")
    assert hashlib.sha256(original.read_bytes()).hexdigest() == digest  # original untouched
    before, after = pypdf.PdfReader(str(original)), pypdf.PdfReader(str(new))
    assert len(after.pages) == len(before.pages)
    texts = [(b.extract_text(), a.extract_text()) for b, a in zip(before.pages, after.pages, strict=True)]
    examples = [i for i, (b, _) in enumerate(texts) if "Example traces" in b]
    assert len(examples) == 1 and "raw traces are not kept" in texts[examples[0]][1]
    for i, (b, a) in enumerate(texts[1:], start=1):  # the title page's facts differ (re-rendered on ...)
        if i not in examples and "Resolved configuration" not in b:
            assert _page_numbers(a) == _page_numbers(b), f"page {i + 1}"
