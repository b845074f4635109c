"""`driver.py --export` and `--watch`: the verbs end to end (a history run included), and a bad
format named in one line."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

import driver
from tests.live.conftest import build_run
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



# A history run (sns_history_siamese, history.count 2): exported and watched through driver.py.
# References from other acquisitions only; a pulse without any is judged alone (missing: self),
# so a fresh watch of a few files scores every pulse.
HISTORY = ["model.name=sns_history_siamese", "history.count=2", "reference.count=2",
           "reference.own_file=false", "reference.min_age_s=30", "reference.missing=self"]


@pytest.fixture(scope="module")
def history_export(tiny_archive, tmp_path_factory):
    """One untrained history run (`build_run`), exported once by `driver.py --export`."""
    tmp = tmp_path_factory.mktemp("historyrun")
    run = build_run(tmp, tiny_archive, HISTORY)
    code = _run("--export", "--run", str(run), "--format", "saved_model,litert", "--quiet",
                "--set", f"run.log_dir={tmp / 'logs'}")
    assert code == 0
    return run


def test_history_run_exports_with_the_keras_scores_in_every_format(history_export):
    export = history_export / "export"
    parity = json.loads((export / "parity.json").read_text())
    assert parity["inputs"] == ["trace", "settings", "reference", "history", "history_count"]
    counts = parity["history_counts"]  # the parity pulses hold empty, partial and full histories
    assert counts["0"] and counts["1"] + counts["2"]
    for name in ("saved_model", "saved_model_serve_one", "litert_float32"):
        assert parity["formats"][name]["max_abs_diff"] <= 1e-5, name
    assert "saved_model_encode_once" not in parity["formats"]  # scored whole, no encoder split
    meta = json.loads((export / "serving.json").read_text())
    assert meta["layout"]["n_history"] == 2 and meta["history"]["count"] == 2
    assert meta["layout"]["inputs"]["history_count"] == [None]
    assert meta["encode_once"] is None


def test_watch_scores_a_history_run(history_export, tiny_archive, tmp_path, capsys):
    from enterprise_tools.trace_windows import pulse_windows

    incoming = tmp_path / "incoming"
    incoming.mkdir()
    files = sorted((tiny_archive / "dcm").rglob("*.bin.gz"), key=lambda p: p.name)
    picked = [p for p in files if len(pulse_windows(p, shift=2000).timestamps_ns) > 2][:3]
    for path in picked:
        shutil.copy(path, incoming / path.name)
    code = _run("--watch", str(incoming), "--run", str(history_export), "--idle-exit", "1",
                "--poll", "0.05", "--quiet", "--set", f"run.log_dir={tmp_path / 'logs'}")
    assert code == 0
    (session,) = (f for f in (history_export / "watch").iterdir() if f.is_dir())
    with open(session / "alarms.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["file"] for r in rows} == {p.name for p in picked}
    assert len(rows) == sum(len(pulse_windows(p, shift=2000).timestamps_ns) for p in picked)
    assert all(0.0 <= float(r["score"]) <= 1.0 for r in rows)
