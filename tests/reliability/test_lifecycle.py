"""Run lifecycle (status.json), resume refusals and early, one-line errors of the driver."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

import driver
from parser.configs import ConfigError, dump_config, load_config
from training.run_start import RunStateError, check_resume
from utils.logs import teardown_logging
from utils.run_folder import NoRunFoundError
from utils.status import (
    COMPLETE,
    FAILED,
    TRAINING,
    newest_complete_run,
    read_status,
    write_status,
)


def _run(root, name, state=None, stage="", config=None):
    run = root / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(dump_config(config or load_config(None)))
    if state:
        write_status(run, state, stage)
    return run


def test_status_round_trip_and_damaged_file_is_never_complete(tmp_path):
    write_status(tmp_path, TRAINING, "fit")
    status = read_status(tmp_path)
    assert (status.state, status.stage) == (TRAINING, "fit")
    assert status.reached("data") and status.reached("fit") and not status.reached("fitted")
    (tmp_path / "status.json").write_text('{"state": "compl')
    assert read_status(tmp_path).state == "unknown"
    (tmp_path / "status.json").unlink()
    (tmp_path / "metrics.json").write_text("{}")  # a folder from before status.json
    assert read_status(tmp_path).state == COMPLETE


def test_newest_complete_run_skips_and_names_incomplete_ones(tmp_path):
    old = _run(tmp_path, "20260101-000000-a", COMPLETE, "done")
    _run(tmp_path, "20260102-000000-b", FAILED, "fit")
    _run(tmp_path, "20260103-000000-c", TRAINING, "data")
    run, incomplete = newest_complete_run(tmp_path)
    assert run == old
    assert [r.name for r, _ in incomplete] == ["20260103-000000-c", "20260102-000000-b"]


def test_no_complete_run_names_the_resume_commands(tmp_path):
    failed = _run(tmp_path, "20260102-000000-b", FAILED, "fit")
    with pytest.raises(NoRunFoundError, match=f"python driver.py --train --run {failed}"):
        newest_complete_run(tmp_path)


def test_changed_config_is_refused_before_anything_is_written(tmp_path):
    run = _run(tmp_path, "20260102-000000-b", TRAINING, "fit")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    changed = load_config(None, ["train.epochs=7", "model.lstm_units=5"])
    with pytest.raises(RunStateError, match=r"lstm_units: 32 in .*, 5 now; train.epochs: 15 in .*, 7 now"):
        check_resume(changed, run)
    code = driver.main(["--train", "--run", str(run), "--set", "train.epochs=7",
                        "--set", f"run.log_dir={tmp_path / 'logs'}"], env={})
    teardown_logging()
    assert code == 2
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    assert not (tmp_path / "logs").exists()


def test_same_config_may_resume_and_complete_run_may_not(tmp_path):
    run = _run(tmp_path, "20260102-000000-b", FAILED, "fit")
    check_resume(load_config(None, ["data.workers=3"]), run)  # workers may differ
    write_status(run, COMPLETE, "done")
    with pytest.raises(RunStateError, match="finished run"):
        check_resume(load_config(None), run)


def test_unknown_model_name_fails_before_any_data_with_a_suggestion(tmp_path, capsys):
    code = driver.main(["--train", "--set", "model.name=sns_cnn_lstn",
                        "--set", f"run.output_dir={tmp_path / 'runs'}",
                        "--set", f"run.log_dir={tmp_path / 'logs'}"], env={})
    teardown_logging()
    err = capsys.readouterr().err
    assert code == 2
    assert "did you mean 'sns_cnn_lstm'" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_log_folder_that_is_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "logs").write_text("")
    code = driver.main(["--test", "--set", f"run.log_dir={tmp_path / 'logs'}"], env={})
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "run.log_dir" in err and str(tmp_path / "logs") in err


def test_deeply_nested_yaml_is_a_config_error(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("run: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="nested 5000 levels"):
        load_config(path)
    path.write_text("".join(" " * i + f"k{i}:\n" for i in range(3000)) + " " * 3000 + "x: 1\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_config(path)


def test_truncated_model_is_named_as_damaged_not_missing(tmp_path, capsys):
    from analysis.thresholds import ThresholdChoice
    from data_preparation.scalers import SettingsScaler, TraceScaler, save_scalers

    run = _run(tmp_path / "runs", "20260102-000000-b", COMPLETE, "done")
    # a complete threshold record (the test flow checks it before it opens the model)
    choice = ThresholdChoice(threshold=0.5, method="best_f1", target_false_alarm_rate=None,
                             false_alarm_rate=0.0, recall=1.0, precision=1.0, f1=1.0,
                             n_normal=1, n_errant=1)
    (run / "threshold.json").write_text(json.dumps(choice.to_dict()))
    save_scalers(run / "scalers.json", TraceScaler().fit(np.array([[0.0, 1.0]])),
                 SettingsScaler().fit(np.array([[0.0], [1.0]])))
    (run / "model.keras").write_bytes(b"PK\x03\x04" + os.urandom(100))
    code = driver.main(["--test", "--run", str(run), "--set", f"run.log_dir={tmp_path / 'logs'}"],
                       env={})
    teardown_logging()
    err = capsys.readouterr().err
    assert code == 1
    assert "model.keras is damaged or truncated" in err
    assert "not found" not in err.lower()
