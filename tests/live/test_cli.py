"""`driver.py --export`: the verb end to end, and a bad format named in one line."""

from __future__ import annotations

import json
import shutil

import driver
from utils.logs import teardown_logging


def _run(*args: str) -> int:
    try:
        return driver.main(list(args), env={})
    finally:
        teardown_logging()


def test_export_verb_writes_the_saved_model_and_parity(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"  # a copy: the shared run's export belongs to the other tests
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("export", "watch"))
    code = _run("--export", "--run", str(run), "--format", "saved_model", "--quiet",
                "--set", f"run.log_dir={tmp_path / 'logs'}")
    assert code == 0
    parity = json.loads((run / "export" / "parity.json").read_text())
    assert set(parity["formats"]) == {"saved_model", "saved_model_serve_one",
                                      "saved_model_encode_once"}
    assert not (run / "export" / "model_float32.tflite").exists()
    assert (tmp_path / "logs" / "live_flow.log").exists()


def test_unknown_format_is_one_clear_line(tiny_run, tmp_path, capsys):
    code = _run("--export", "--run", str(tiny_run), "--format", "tflite",
                "--set", f"run.log_dir={tmp_path / 'logs'}")
    assert code != 0
    err = capsys.readouterr().err
    assert "--format 'tflite': expected a comma-separated subset of saved_model,litert,onnx" in err

