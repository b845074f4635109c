"""The command line: exit codes and the one-line errors users see."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import driver

ROOT = Path(__file__).resolve().parents[1]


def run_main(args, tmp_path, capsys):
    code = driver.main([*args, "--set", f"run.log_dir={tmp_path / 'logs'}",
                        "--set", f"run.output_dir={tmp_path / 'runs'}"], env={})
    return code, capsys.readouterr()


def test_help_exits_zero_and_explains_each_option(capsys):
    code = driver.main(["--help"], env={})
    out = capsys.readouterr().out
    assert code == 0
    for option in ("--train", "--test", "--config", "--set", "--run", "--data", "--name",
                   "--seed", "--quiet"):
        assert option in out
    assert "examples:" in out


def test_missing_config_file_is_a_usage_error_naming_it(tmp_path, capsys):
    code, captured = run_main(["--train", "--config", str(tmp_path / "nope.yaml")], tmp_path, capsys)
    assert code == 2
    assert "nope.yaml" in captured.err
    assert "Traceback" not in captured.err


def test_misspelt_key_is_a_usage_error_with_suggestion(tmp_path, capsys):
    code, captured = run_main(["--train", "--set", "train.learnig_rate=0.1"], tmp_path, capsys)
    assert code == 2
    assert "train.learnig_rate" in captured.err
    assert "train.learning_rate" in captured.err


def test_unknown_source_is_a_usage_error_naming_the_registered_ones(tmp_path, capsys):
    """The parser keeps no list of sources: the driver checks data.source with the registry."""
    code, captured = run_main(["--test", "--set", "data.source=sesions"], tmp_path, capsys)
    assert code == 2
    assert "data.source: unknown source 'sesions'" in captured.err
    assert "Did you mean 'sessions'?" in captured.err
    assert "Traceback" not in captured.err


def test_bad_key_in_config_file_names_file_and_key(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("model:\n  lstm_unit: 8\n")
    code, captured = run_main(["--train", "--config", str(cfg)], tmp_path, capsys)
    assert code == 2
    assert "bad.yaml" in captured.err and "model.lstm_units" in captured.err


def test_missing_run_folder_is_a_usage_error(tmp_path, capsys):
    code, captured = run_main(["--test", "--run", str(tmp_path / "no-such-run")], tmp_path, capsys)
    assert code == 2
    assert "no-such-run" in captured.err
    assert "Traceback" not in captured.err


def test_test_without_any_run_is_a_usage_error(tmp_path, capsys):
    code, captured = run_main(["--test"], tmp_path, capsys)
    assert code == 2
    assert str(tmp_path / "runs") in captured.err


def test_folder_that_is_not_a_run_is_rejected_clearly(tmp_path, capsys):
    (tmp_path / "empty-run").mkdir()
    code, captured = run_main(["--test", "--run", str(tmp_path / "empty-run")], tmp_path, capsys)
    assert code == 2
    assert "config.yaml" in captured.err


def test_data_without_test_is_a_usage_error(tmp_path, capsys):
    code, captured = run_main(["--train", "--data", str(tmp_path)], tmp_path, capsys)
    assert code == 2
    assert "--data" in captured.err


@pytest.mark.parametrize("args", [["--bogus"], ["--seed", "x"]])
def test_argparse_errors_exit_two(args, capsys):
    assert driver.main(args, env={}) == 2


def test_script_exit_code_through_the_interpreter(tmp_path):
    """The real process: `python driver.py --test --run missing` exits 2 with one error line."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "driver.py"), "--test", "--run", str(tmp_path / "missing"),
         "--set", f"run.log_dir={tmp_path / 'logs'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    error_lines = [line for line in proc.stderr.splitlines() if line.startswith("driver.py: error")]
    assert len(error_lines) == 1 and "missing" in error_lines[0]
    # TensorFlow was imported (the driver does it before any flow) and said nothing: no absl,
    # cudart, cpu_feature_guard or cuInit line; only ours
    others = [line for line in proc.stderr.splitlines()
              if not line.startswith(("driver.py: error", "(full traceback in"))]
    assert others == [], others


# ---- the error paths a newcomer meets: one sentence each, no Python value in it

PYTHON_VALUES = ("['", "('", "((", "{'", "[]", "()", "None", "Traceback", " object at ")


def _no_python_values(message: str) -> None:
    for marker in PYTHON_VALUES:
        assert marker not in message, f"{marker!r} in {message!r}"


def _complete_run(root: Path, name: str, source: str) -> Path:
    from parser.configs import dump_config, load_config
    from utils.status import COMPLETE, write_status

    run = root / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(dump_config(load_config(None, [f"data.source={source}"])))
    write_status(run, COMPLETE, "done")
    return run


def test_export_after_a_sessions_run_names_that_run_and_its_kind(tmp_path, capsys):
    run = _complete_run(tmp_path / "runs", "20261127-101500-sessions", "sessions")
    code, captured = run_main(["--export"], tmp_path, capsys)
    assert code == 2
    line = captured.err.strip().splitlines()[0]
    assert line == (f"driver.py: error: --export needs an SNS (DCM archive) run and {tmp_path / 'runs'} "
                    f"holds none complete; the newest run, {run}, is a sessions run. Train one, or "
                    "pass --run DIR.")
    _no_python_values(captured.err)


def test_export_of_a_named_sessions_run_is_refused_by_kind(tmp_path, capsys):
    run = _complete_run(tmp_path / "runs", "20261127-101500-sessions", "sessions")
    code, captured = run_main(["--export", "--run", str(run)], tmp_path, capsys)
    assert code == 2
    assert f"--export needs an SNS (DCM archive) run; {run} is a sessions run" in captured.err
    _no_python_values(captured.err)


def test_predict_after_an_sns_run_names_that_run(tmp_path, capsys):
    run = _complete_run(tmp_path / "runs", "20261127-101500-demo", "sns_dcm")
    code, captured = run_main(["--predict", str(tmp_path / "s1.csv")], tmp_path, capsys)
    assert code == 2
    assert f"the newest run, {run}, is an SNS (DCM archive) run" in captured.err
    _no_python_values(captured.err)


def test_key_errors_read_as_their_message_not_a_quoted_repr():
    assert driver.error_line(KeyError("f.npz: no array X; found a, b")) == "f.npz: no array X; found a, b"
    assert driver.error_line(ValueError("")) == "ValueError"


def test_source_errors_list_names_not_python_values(tmp_path):
    from data_preparation.sources import load_samples
    from parser.configs import load_config

    empty = tmp_path / "sessions"
    empty.mkdir()
    npz = tmp_path / "w.npz"
    import numpy as np

    np.savez(npz, a=np.zeros(2), b=np.zeros(2))
    for overrides in (["data.source=sessions", f"data.dataset_loc={empty}"],
                      ["data.source=npz", f"data.dataset_loc={npz}"]):
        with pytest.raises(Exception) as caught:
            load_samples(load_config(None, overrides))
        message = driver.error_line(caught.value)
        assert str(tmp_path) in message
        _no_python_values(message)
