"""Kill the train flow at each stage, resume it with the same command, check the outcome.

A "kill" raises out of the flow at the named point (the train flow then records the run as
failed), or, for `hard`, also skips that record, as `kill -9` would (status stays
"training"). Either way `driver.py --train --run DIR` must finish the run: exit 0, status
complete, one history row per epoch (never doubled), every artefact present.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import keras
import pytest
import yaml

import driver
from enterprise_tools.simulator import SimulatorParams, simulate_archive
from training import fit as fit_module
from training import outputs
from training import train as train_module
from utils.logs import teardown_logging
from utils.status import read_status

EPOCHS = 2
pytestmark = pytest.mark.slow  # kills and resumes of a tiny training


class Killed(BaseException):
    """Stands in for the process being killed (not an Exception: nothing may catch it)."""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("faults")
    archive = tmp / "archive"
    simulate_archive(archive, SimulatorParams.tiny(seed=4))
    config = {
        "run": {"name": "fault", "output_dir": str(tmp / "runs"), "log_dir": str(tmp / "logs"),
                "seed": 3},
        "data": {"dataset_loc": str(archive / "dcm"), "cache_dir": str(tmp / "cache"),
                 "workers": 1},
        "beam_settings": {"data_location": str(archive / "beam_settings")},
        "model": {"conv_filters": [4, 4, 4], "lstm_units": 4, "settings_units": [4],
                  "head_units": [4]},
        "train": {"epochs": EPOCHS, "batch_size": 32, "tensorboard": False,
                  "early_stopping_patience": 5},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return tmp, path


def _driver(*args) -> int:
    try:
        return driver.main(list(args), env={})
    finally:
        teardown_logging()


def _raiser(original=None, after=False):
    def hook(*args, **kwargs):
        if after:
            original(*args, **kwargs)
        raise Killed("killed")
    return hook


class _KillAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            raise Killed("killed after the first epoch's backup")


def _inject(monkeypatch, stage: str) -> None:
    if stage == "data":
        monkeypatch.setattr("data_preparation.pipeline.prepare_samples", _raiser())
    elif stage == "epoch":
        original = fit_module.standard_callbacks

        def callbacks(*args, **kwargs):
            return [*original(*args, **kwargs), _KillAfterFirstEpoch()]  # after the backup
        monkeypatch.setattr(fit_module, "standard_callbacks", callbacks)
    elif stage == "checkpoint":  # model.keras written, nothing after it
        monkeypatch.setattr(outputs, "publish_best_model",
                            _raiser(outputs.publish_best_model, after=True))
    elif stage == "threshold":
        monkeypatch.setattr(outputs, "choose_and_save_threshold",
                            _raiser(outputs.choose_and_save_threshold, after=True))
    elif stage == "report":  # metrics.json and the PDF written, status not yet complete
        monkeypatch.setattr(outputs, "write_train_outputs",
                            _raiser(outputs.write_train_outputs, after=True))


# One run, killed at each stage in turn: each command resumes what the kill before it left and
# is killed at the next stage; the last resumes it to the end. Soft kills record "failed",
# hard ones leave "training", as `kill -9` would. The kill after an epoch's backup (hard) is
# the deterministic test's below.
KILLS = [("data", False), ("checkpoint", True), ("threshold", False), ("report", True)]


def test_run_killed_at_each_stage_resumes_to_a_complete_run(setup, monkeypatch):
    tmp, config = setup
    run_dir = tmp / "runs" / "20260101-000000-killed"
    train = ("--train", "--run", str(run_dir), "--config", str(config), "--quiet")
    for stage, hard in KILLS:
        with monkeypatch.context() as patch:
            _inject(patch, stage)
            if hard:
                patch.setattr(train_module, "mark_failed", lambda *a: None)
            with pytest.raises(Killed):
                _driver(*train)
        status = read_status(run_dir)
        assert status.state == ("training" if hard else "failed"), (stage, status)
        # --test without --run never picks the unfinished run
        if not any(read_status(p).state == "complete" for p in (tmp / "runs").iterdir()):
            assert _driver("--test", "--config", str(config), "--quiet") == 2

    assert _driver(*train) == 0
    _assert_complete(run_dir, EPOCHS)


def _assert_complete(run_dir: Path, n_epochs: int) -> None:
    """Status complete, one history row per epoch (never doubled), every artefact, no leftovers."""
    assert read_status(run_dir).state == "complete"
    with open(run_dir / "history.csv") as handle:
        epochs = [int(row["epoch"]) for row in csv.DictReader(handle)]
    assert epochs == list(range(n_epochs)), epochs
    for name in ("model.keras", "threshold.json", "scalers.json", "metrics.json",
                 "train_metrics_report.pdf", "predictions.csv"):
        assert (run_dir / name).is_file(), name
    assert json.loads((run_dir / "metrics.json").read_text())["validation"]
    assert not (run_dir / "backup").exists()
    assert not list(Path(run_dir).glob(".*.tmp")) and not list(Path(run_dir).glob(".tmp-*"))


def _weights(path: Path) -> list:
    model = keras.saving.load_model(path, safe_mode=True)
    return [w.numpy() if hasattr(w, "numpy") else w for w in model.weights]


def test_deterministic_run_killed_after_an_epoch_resumes_bit_identical(setup, monkeypatch):
    import numpy as np

    import model  # noqa: F401  registers the custom layers for safe-mode loading

    tmp, config = setup
    runs = tmp / "runs"
    plain, broken = runs / "20260102-000000-plain", runs / "20260102-000000-broken"
    common = ("--config", str(config), "--quiet", "--set", "run.deterministic=true",
              "--set", "train.epochs=2")
    assert _driver("--train", "--run", str(plain), *common) == 0
    with monkeypatch.context() as patch:
        _inject(patch, "epoch")
        patch.setattr(train_module, "mark_failed", lambda *a: None)
        with pytest.raises(Killed):
            _driver("--train", "--run", str(broken), *common)
    assert read_status(broken).state == "training"  # as kill -9 leaves it
    assert _driver("--train", "--run", str(broken), *common) == 0
    _assert_complete(broken, 2)
    for a, b in zip(_weights(plain / "model.keras"), _weights(broken / "model.keras"), strict=True):
        np.testing.assert_array_equal(a, b)
    assert (plain / "history.csv").read_text() == (broken / "history.csv").read_text()


def test_later_archive_without_its_settings_is_refused_unless_allowed(setup, capsys):
    """--test --data <DCM root only> of a later period must not join the run's old settings."""
    from utils.status import newest_complete_run

    tmp, config = setup
    later = tmp / "later"
    simulate_archive(later, SimulatorParams.tiny(seed=6, start="2026-03-01T00:00:00+00:00",
                                                 hours=0.5))
    try:
        run_dir, _ = newest_complete_run(tmp / "runs")
    except FileNotFoundError:
        run_dir = tmp / "runs" / "20260103-000000-stale"
        assert _driver("--train", "--run", str(run_dir), "--config", str(config), "--quiet") == 0
    capsys.readouterr()
    code = _driver("--test", "--run", str(run_dir), "--data", str(later / "dcm"), "--quiet")
    err = capsys.readouterr().err
    assert code == 2
    assert "later than the beam-settings history" in err and "--allow-stale-settings" in err
    assert not (run_dir / "tests").exists() or not any((run_dir / "tests").iterdir())
    code = _driver("--test", "--run", str(run_dir), "--data", str(later / "dcm"), "--quiet",
                   "--allow-stale-settings")
    assert code == 1  # every pulse is stale: nothing left to score, said so
    assert "no pulses to score" in capsys.readouterr().err
