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
