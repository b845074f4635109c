"""Hostile cases for `--watch` (issue 22, items 1, 2 and 5): it cannot hang, double or forget.

A FIFO never blocks it, a second watcher refuses, a pulse is scored once however many files
hold it, files that arrive empty, stall, grow, vanish and come back are all scored, bombs stop
at data.max_file_mb, SIGTERM stops like Ctrl-C, the training side's data rules hold live, and
an artefact that is not what the export wrote is refused.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest

from enterprise_tools.biet_format import HEADER
from enterprise_tools.trace_windows import pulse_windows
from live.engine import LiveScorer
from live.watch import WatchBusyError, _lock_session, watch
from tests.live.conftest import build_run

SHIFT = 2000
PULSE_SKIPS = ("no_settings", "non_production", "no_reference", "stale_settings",
               "out_of_order_pulse", "non_finite_trace")


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    from enterprise_tools.simulator import SimulatorParams, simulate_archive

    folder = tmp_path_factory.mktemp("hostile") / "archive"
    simulate_archive(folder, SimulatorParams.tiny(seed=3, hours=0.6))
    return folder


@pytest.fixture(scope="module")
def run(archive, tmp_path_factory) -> Path:
    from live.export import export_run

    folder = build_run(tmp_path_factory.mktemp("hostilerun"), archive)
    export_run(folder, ("saved_model",), progress=False, max_parity_pulses=64)
    return folder


@pytest.fixture(scope="module")
def files(archive) -> list[Path]:
    """Eight DCM files with pulses, spread over the archive."""
    good = []
    for path in sorted((archive / "dcm").rglob("*.bin.gz"), key=lambda p: p.name):
        try:
            if len(pulse_windows(path, shift=SHIFT).timestamps_ns):
                good.append(path)
        except ValueError:
            continue
    step = max(1, len(good) // 8)
    return good[::step][:8]


def _copy_run(run: Path, tmp_path: Path, *, max_file_mb: int | None = None) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("watch"))
    if max_file_mb is not None:
        config = copy / "config.yaml"
        text = config.read_text()
        assert "max_file_mb: 512" in text
        config.write_text(text.replace("max_file_mb: 512", f"max_file_mb: {max_file_mb}"))
    return copy


def _rows(session: Path) -> list[dict]:
    with open(session / "alarms.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _ledger(session: Path) -> list[dict]:
    return json.loads((session / "ledger.json").read_text())["entries"]


def _pulses(paths) -> int:
    return sum(len(pulse_windows(p, shift=SHIFT).timestamps_ns) for p in paths)


def _accounted(session: Path) -> int:
    """Scored rows plus the pulses the ledger says were skipped by a data rule."""
    skipped = sum(e["count"] for e in _ledger(session)
                  if e["scope"] == "pulse" and e["reason"] in PULSE_SKIPS)
    return len(_rows(session)) + skipped


def _unique_pulses(session: Path) -> bool:
    stamps = [r["timestamp_ns"] for r in _rows(session)]
    return len(stamps) == len(set(stamps))


# ----------------------------------------------------------------------------------------------
# Cannot hang


def test_fifo_in_the_folder_is_ledgered_and_never_opened(run, files, tmp_path, time_limit):
    incoming = tmp_path / "in"
    incoming.mkdir()
    os.mkfifo(incoming / "pipe.bin.gz")
    shutil.copy(files[0], incoming / files[0].name)
    with time_limit(120):
        summary = watch(run, incoming, poll_s=0.05, grace_s=0.2, idle_exit_s=0.5, echo=False)
    assert summary.files == 1 and summary.skipped.get("not_a_regular_file") == 1
    entry = next(e for e in _ledger(summary.session) if e["path"] == "pipe.bin.gz")
    assert entry["reason"] == "not_a_regular_file" and "FIFO" in entry["detail"]
    assert _accounted(summary.session) == _pulses(files[:1])


def test_gzip_bomb_and_oversized_file_stop_at_the_cap(run, files, tmp_path):
    capped = _copy_run(run, tmp_path, max_file_mb=1)
    incoming = tmp_path / "in"
    incoming.mkdir()
    (incoming / "bomb.bin.gz").write_bytes(gzip.compress(HEADER + bytes(3 * 2**20)))
    (incoming / "big.bin").write_bytes(HEADER + bytes(2 * 2**20))
    shutil.copy(files[0], incoming / files[0].name)
    summary = watch(capped, incoming, poll_s=0.05, grace_s=0.2, idle_exit_s=0.5, echo=False)
    reasons = {e["path"]: e["reason"] for e in _ledger(summary.session) if e["scope"] == "file"}
    assert reasons == {"bomb.bin.gz": "file_too_large", "big.bin": "file_too_large"}
    assert summary.files == 1


# ----------------------------------------------------------------------------------------------
# Cannot double


def test_second_watcher_on_the_same_folder_refuses_with_one_line(run, tmp_path, capsys):
    incoming = tmp_path / "in"
    incoming.mkdir()
    held = _lock_session(run, incoming)  # the first watcher
    try:
        with pytest.raises(WatchBusyError, match="already watched") as caught:
            watch(run, incoming, poll_s=0.05, idle_exit_s=0.2, echo=False)
        assert "\n" not in str(caught.value) and f"pid {os.getpid()}" in str(caught.value)
        import driver

        code = driver.main(["--watch", str(incoming), "--run", str(run), "--quiet",
                            "--set", f"run.log_dir={tmp_path / 'logs'}"], env={})
        lines = [line for line in capsys.readouterr().err.splitlines()
                 if line.startswith("driver.py: error:")]
        assert code == 1 and len(lines) == 1 and "already watched" in lines[0]
    finally:
        held.close()
    watch(run, incoming, poll_s=0.05, idle_exit_s=0.2, echo=False)  # free again


def test_a_pulse_is_scored_once_across_copies_and_restarts(run, files, tmp_path):
    incoming = tmp_path / "in"
    incoming.mkdir()
    shutil.copy(files[0], incoming / "a.bin.gz")
    shutil.copy(files[0], incoming / "copy-of-a.bin.gz")
    shutil.copy(files[1], incoming / "b.bin.gz")
    first = watch(run, incoming, poll_s=0.05, idle_exit_s=0.5, echo=False)
    rows = _rows(first.session)
    assert _unique_pulses(first.session) and len(rows) == first.pulses
    shutil.copy(files[1], incoming / "b-again.bin.gz")  # lands while the watcher is down
    second = watch(run, incoming, poll_s=0.05, idle_exit_s=0.5, echo=False)
    assert second.session == first.session and second.pulses == 0
    assert _rows(first.session) == rows
    duplicates = {e["path"]: e["count"] for e in _ledger(first.session)
                  if e["reason"] == "duplicate_pulse"}
    scored = {name: sum(r["file"] == name for r in rows) for name in ("a.bin.gz", "b.bin.gz")}
    assert duplicates == {"copy-of-a.bin.gz": scored["a.bin.gz"],
                          "b-again.bin.gz": scored["b.bin.gz"]}
    assert scored["a.bin.gz"] > 0 and scored["b.bin.gz"] > 0


# ----------------------------------------------------------------------------------------------
# Cannot forget


def test_files_that_arrive_empty_stall_grow_vanish_and_return_are_scored_once(run, files,
                                                                             tmp_path):
    incoming = tmp_path / "in"
    incoming.mkdir()
    empty_first, stalled, growing, vanishing = files[2:6]
    stalled_raw = stalled.read_bytes()
    growing_raw = gzip.decompress(growing.read_bytes())  # an uncompressed .bin being written
    plan = {
        1: [("write", "empty.bin.gz", b""), ("write", "stall.bin.gz", stalled_raw[:800])],
        3: [("write", "grow.bin", growing_raw[: len(growing_raw) // 3])],
        5: [("write", "empty.bin.gz", empty_first.read_bytes())],
        8: [("write", "grow.bin", growing_raw)],
        10: [("write", "gone.bin.gz", vanishing.read_bytes())],
        30: [("delete", "gone.bin.gz", None)],
        # the stalled file was given up after the grace (0.3 s = 6 polls); it is finished now
        40: [("write", "stall.bin.gz", stalled_raw)],
        45: [("write", "gone.bin.gz", vanishing.read_bytes())],  # restored, new mtime
    }
    given_up = []

    def drop(poll: int) -> None:
        if poll == 39:
            (state,) = [json.loads(p.read_text()) for p in (run / "watch").glob("*/state.json")
                        if str(incoming.resolve()) in p.read_text()]
            given_up.extend(k for k, v in state["done"].items() if v.get("skipped"))
        for action, name, data in plan.get(poll, []):
            if action == "delete":
                (incoming / name).unlink()
            else:
                (incoming / name).write_bytes(data)

    summary = watch(run, incoming, poll_s=0.05, grace_s=0.3, idle_exit_s=3.0, echo=False,
                    on_poll=drop)
    session = summary.session
    assert given_up == ["stall.bin.gz"], "the stalled file should have been given up once"
    assert _unique_pulses(session)
    assert _accounted(session) == _pulses([empty_first, stalled, growing, vanishing])
    entries = _ledger(session)
    for name, source in (("empty.bin.gz", empty_first), ("stall.bin.gz", stalled),
                         ("grow.bin", growing), ("gone.bin.gz", vanishing)):
        rows = sum(r["file"] == name for r in _rows(session))
        skipped = sum(e["count"] for e in entries if e["path"] == name
                      and e["reason"] in PULSE_SKIPS)
        assert rows + skipped == _pulses([source]), name  # every pulse of each file, once
    assert not [e for e in entries if e["scope"] == "file"], entries  # no file given up for good
    state = json.loads((session / "state.json").read_text())
    assert set(state["done"]) == {"empty.bin.gz", "stall.bin.gz", "grow.bin", "gone.bin.gz"}
    for name, done in state["done"].items():  # a file read again keeps its earlier count
        assert done["pulses"] == sum(r["file"] == name for r in _rows(session)), name


# ----------------------------------------------------------------------------------------------
# Stops cleanly


def test_sigterm_stops_like_ctrl_c_and_writes_the_summary(run, files, tmp_path):
    incoming = tmp_path / "in"
    incoming.mkdir()
    shutil.copy(files[0], incoming / files[0].name)
    before = signal.getsignal(signal.SIGTERM)

    def terminate(poll: int) -> None:
        if poll == 4:
            os.kill(os.getpid(), signal.SIGTERM)

    summary = watch(run, incoming, poll_s=0.05, echo=False, on_poll=terminate)
    assert signal.getsignal(signal.SIGTERM) == before
    written = json.loads((summary.session / "summary.json").read_text())
    assert written["stopped_by"] == "SIGTERM" and written["files"] == summary.files == 1
    assert _accounted(summary.session) == _pulses(files[:1])


# ----------------------------------------------------------------------------------------------
# The training side's data rules, live


def test_stale_settings_non_finite_and_out_of_order_pulses_are_ledgered_live(run, files):
    from live.formats import load_backend
    from live.serving import InputLayout
    from live.watch import SettingsSource
    from parser.configs import load_config
    from utils.serving_files import read_serving

    meta = read_serving(run / "export")
    config = load_config(run / "config.yaml")
    backend = load_backend(run / "export" / "saved_model", InputLayout.from_dict(meta["layout"]))
    pulses = pulse_windows(files[0], shift=SHIFT)
    stamps = pulses.timestamps_ns.copy()
    settings = SettingsSource(config.beam_settings, LiveScorer(backend, meta).filter_columns)
    values = settings.values(stamps)
    n = len(stamps)
    assert n >= 3

    scorer = LiveScorer(backend, meta, max_settings_age_s=3600.0)
    rows, skipped = scorer.score_file("f", pulses.traces, stamps, pulses.alarms, values,
                                      settings_until_ns=int(stamps.min()) - 400 * 86400 * 10**9)
    counts = {reason: count for reason, count, _ in skipped}
    assert rows == [] and counts.get("stale_settings", 0) > 0
    assert sum(counts.values()) == n

    traces = pulses.traces.copy()
    traces[1, 5] = np.nan
    shuffled = stamps.copy()
    shuffled[2] = shuffled[0]  # not later than the pulse before it
    rows, skipped = LiveScorer(backend, meta).score_file(
        "g", traces, shuffled, pulses.alarms, values, settings_until_ns=int(stamps.max()))
    counts = {reason: count for reason, count, _ in skipped}
    assert counts["out_of_order_pulse"] == 1
    assert counts.get("non_finite_trace", 0) + counts.get("no_settings", 0) \
        + counts.get("non_production", 0) >= 1
    assert all(r.pulse_in_file not in (1, 2) for r in rows)
    assert all(np.isfinite(r.score) for r in rows)


# ----------------------------------------------------------------------------------------------
# Artefacts are what the export wrote


def test_changed_artefact_is_refused_before_loading(run, tmp_path):
    from utils.serving_files import ArtefactCheckError

    copy = _copy_run(run, tmp_path)
    with open(copy / "export" / "saved_model" / "saved_model.pb", "ab") as handle:
        handle.write(b"\0")
    incoming = tmp_path / "in"
    incoming.mkdir()
    with pytest.raises(ArtefactCheckError, match="does not match the sha256"):
        watch(copy, incoming, poll_s=0.05, idle_exit_s=0.2, echo=False)


def test_artefact_out_of_parity_tolerance_fails_export_and_watch(run, tmp_path):
    from live.export import ExportParityError, ExportResult, check_parity
    from utils.serving_files import ArtefactCheckError

    copy = _copy_run(run, tmp_path)
    parity_path = copy / "export" / "parity.json"
    parity = json.loads(parity_path.read_text())
    assert parity["formats"]["saved_model"]["within_tolerance"] is True
    check_parity(ExportResult(copy / "export", {}, parity))  # within tolerance: no error
    parity["formats"]["saved_model"].update(within_tolerance=False, max_abs_diff=0.3)
    parity_path.write_text(json.dumps(parity))
    with pytest.raises(ExportParityError, match="saved_model: max |dscore| 3.00e-01"):
        check_parity(ExportResult(copy / "export", {}, parity))
    incoming = tmp_path / "in"
    incoming.mkdir()
    with pytest.raises(ArtefactCheckError, match="out of parity tolerance"):
        watch(copy, incoming, poll_s=0.05, idle_exit_s=0.2, echo=False)

