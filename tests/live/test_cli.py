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


def test_live_verbs_refuse_a_history_run_in_one_line_before_writing(tmp_path, capsys):
    from parser.configs import Config, HistoryConfig, ModelConfig, ReferenceConfig, dump_config

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(dump_config(Config(
        model=ModelConfig(name="sns_history_siamese"), history=HistoryConfig(count=3),
        reference=ReferenceConfig(own_file=False))))
    for verb in (("--export",), ("--watch", str(tmp_path / "in"))):
        code = _run(*verb, "--run", str(run), "--set", f"run.log_dir={tmp_path / 'logs'}")
        err = capsys.readouterr().err.strip().splitlines()
        # a usage error: one line (then the usual pointer to the traceback)
        assert code == 2 and err[0].startswith("driver.py: error: ")
        assert f"{verb[0]}: run {run} reads a history of 3 pulses (history.count=3)" in err[0]
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml"]
