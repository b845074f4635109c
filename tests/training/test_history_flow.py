"""A history model through plain `driver.py` (train, then test) on a tiny simulated archive.
Its export and `--watch` are in tests/live/test_cli.py (an untrained run: cheaper)."""

from __future__ import annotations

import json

import pytest
import yaml

import driver
from enterprise_tools.simulator import SimulatorParams, simulate_archive
from utils.logs import teardown_logging


def _driver(*args: str) -> int:
    try:
        return driver.main(list(args), env={})
    finally:
        teardown_logging()


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("historyflow") / "archive"
    simulate_archive(root, SimulatorParams.tiny(seed=3))
    return root


@pytest.mark.slow  # ~80 s on 2 loaded cores: simulate, train one epoch, test, two reports
def test_history_model_trains_and_tests(archive, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "run": {"name": "history", "output_dir": str(tmp_path / "runs"),
                "log_dir": str(tmp_path / "logs"), "seed": 2, "demo_archive": False},
        "data": {"dataset_loc": str(archive / "dcm"), "cache_dir": str(tmp_path / "cache"),
                 "workers": 1, "shift": 2000},
        "beam_settings": {"data_location": str(archive / "beam_settings")},
        "model": {"name": "sns_history_siamese", "conv_filters": [4, 4], "conv_kernels": [5, 5],
                  "conv_strides": [4, 4], "lstm_units": 4, "bidirectional": False,
                  "attention": False, "settings_units": [4], "head_units": [4]},
        "train": {"epochs": 1, "batch_size": 16, "tensorboard": False},
        "reference": {"count": 2, "own_file": False, "min_age_s": 30.0},
        "history": {"count": 2},
    }))
    assert _driver("--config", str(config), "--quiet") == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    splits = json.loads((run_dir / "metrics.json").read_text())["splits"]
    for part in ("train", "val", "test"):  # references from other acquisitions, both classes
        counts = splits[part]["references"]
        assert counts["archive"] == splits[part]["n"] and counts["same_file"] == 0
        assert splits[part]["history"]["slots"] == 2
    (test_dir,) = (run_dir / "tests").iterdir()
    tested = json.loads((test_dir / "metrics.json").read_text())
    assert tested["split"]["n"] == splits["test"]["n"] and tested["metrics"]["pr_auc"] is not None
