"""Plain `driver.py` (train, then test): each part is scored once, and the test flow's outputs
are the ones a separate `--test` of the same run writes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

import data_preparation.pipeline as pipeline
import driver
from enterprise_tools.simulator import SimulatorParams, simulate_archive
from training import outputs
from utils.logs import teardown_logging


def _driver(*args: str) -> int:
    try:
        return driver.main(list(args), env={})
    finally:
        teardown_logging()


def _test_outputs(test_dir):
    metrics = json.loads((test_dir / "metrics.json").read_text())
    for key in ("created", "environment"):
        metrics.pop(key)
    with (test_dir / "predictions.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    return metrics, rows, json.loads((test_dir / "data_ledger.json").read_text())


def test_default_flow_scores_the_test_part_once(tmp_path, monkeypatch):
    archive = tmp_path / "archive"
    simulate_archive(archive, SimulatorParams.tiny(seed=3))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "run": {"name": "once", "output_dir": str(tmp_path / "runs"),
                "log_dir": str(tmp_path / "logs"), "seed": 5},
        "data": {"dataset_loc": str(archive / "dcm"), "cache_dir": str(tmp_path / "cache"),
                 "workers": 1},
        "beam_settings": {"data_location": str(archive / "beam_settings")},
        "model": {"conv_filters": [4, 4, 4], "lstm_units": 4, "settings_units": [4],
                  "head_units": [4]},
        "train": {"epochs": 1, "batch_size": 16, "tensorboard": False},
        "split": {"gap_seconds": 20.0},  # the train ledger gets gap entries; the test's must not
    }))
    scored, prepared = [], []
    predict, prepare = outputs.predict, pipeline.prepare_samples

    def counted_predict(*args):
        scores = predict(*args)
        scored.append(scores.size)
        return scores

    def counted_prepare(*args, **kwargs):
        prepared.append(1)
        return prepare(*args, **kwargs)

    monkeypatch.setattr(outputs, "predict", counted_predict)
    monkeypatch.setattr(pipeline, "prepare_samples", counted_prepare)

    assert _driver("--config", str(config), "--quiet") == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    splits = json.loads((run_dir / "metrics.json").read_text())["splits"]
    # validation and test once each (by the train flow); the data prepared once
    assert sorted(scored) == sorted([splits["val"]["n"], splits["test"]["n"]])
    assert len(prepared) == 1
    (first,) = (run_dir / "tests").iterdir()

    scored.clear()
    assert _driver("--test", "--run", str(run_dir), "--config", str(config), "--quiet") == 0
    assert scored == [splits["test"]["n"]]  # a test flow of its own scores the part itself
    second = next(p for p in (run_dir / "tests").iterdir() if p != first)
    assert _test_outputs(first) == _test_outputs(second)
    ledger = json.loads((run_dir / "data_ledger.json").read_text())
    assert "gap_dropped" in {e["reason"] for e in ledger["entries"]}
    assert "gap_dropped" not in {e["reason"] for e in _test_outputs(first)[2]["entries"]}


@pytest.fixture(autouse=True)
def _no_stray_logging():
    yield
    teardown_logging()


def test_default_flow_of_a_samples_job_scores_the_test_part_once(tmp_path, monkeypatch):
    from benchmarks import synthetic_jobs as sj
    from training import samples_flow

    data = sj.write_sessions(tmp_path / "sessions", per_class=8, length=32)
    config = tmp_path / "sessions.yaml"
    job = yaml.safe_load((Path(__file__).resolve().parents[2] / "configs" / "sessions.yaml")
                         .read_text())
    job["run"].update(output_dir=str(tmp_path / "runs"), log_dir=str(tmp_path / "logs"))
    job["data"]["dataset_loc"] = str(data)
    job["model"].update(conv_filters=[4, 4], conv_kernels=[3, 3], conv_strides=[1, 1],
                        lstm_units=4, head_units=[4])
    # a fixed schedule: the cross-validated epoch choice has its own tests (test_small_data)
    job["train"].update(epochs=1, batch_size=8, epoch_choice="fixed")
    config.write_text(yaml.safe_dump(job))
    calls = {"score": 0, "load": 0}
    score, load = samples_flow._score, samples_flow.load_samples

    def counted_score(*args):
        calls["score"] += 1
        return score(*args)

    def counted_load(*args, **kwargs):
        calls["load"] += 1
        return load(*args, **kwargs)

    monkeypatch.setattr(samples_flow, "_score", counted_score)
    monkeypatch.setattr(samples_flow, "load_samples", counted_load)
    assert _driver("--config", str(config), "--quiet") == 0
    assert calls == {"score": 0, "load": 1}  # the train flow's load and scores serve the test
    (run_dir,) = (tmp_path / "runs").iterdir()
    (first,) = (run_dir / "tests").iterdir()
    assert _driver("--test", "--run", str(run_dir), "--config", str(config), "--quiet") == 0
    assert calls == {"score": 1, "load": 2}
    second = next(p for p in (run_dir / "tests").iterdir() if p != first)
    assert _test_outputs(first) == _test_outputs(second)
