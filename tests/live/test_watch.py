"""`--watch`: files land one by one (one half-written, one corrupt, one foreign), the watcher
stops and restarts, and every pulse is scored exactly once; kill -9 loses nothing."""

from __future__ import annotations

import csv
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from enterprise_tools.trace_windows import pulse_windows
from live.watch import watch

REPO = Path(__file__).resolve().parents[2]


def _dcm_files(archive: Path, n: int) -> list[Path]:
    files = sorted((archive / "dcm").rglob("*.bin.gz"), key=lambda p: p.name)
    good = []
    for path in files:
        try:
            pulses = pulse_windows(path, shift=2000)
        except ValueError:
            continue
        if len(pulses.timestamps_ns):
            good.append(path)
    step = max(1, len(good) // n)
    return good[::step][:n]


def _rows(session: Path) -> list[dict]:
    with open(session / "alarms.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _expected_pulses(files: list[Path]) -> int:
    return sum(len(pulse_windows(p, shift=2000).timestamps_ns) for p in files)


def _accounted(session: Path) -> int:
    """Scored rows plus pulses the ledger says were skipped (settings filter, references)."""
    ledger = json.loads((session / "ledger.json").read_text())
    skipped = sum(e["count"] for e in ledger["entries"]
                  if e["scope"] == "pulse" and e["reason"] in ("no_settings", "non_production",
                                                                "no_reference"))
    return len(_rows(session)) + skipped


def test_watch_scores_each_pulse_once_through_partial_corrupt_and_restart(
        exported, tiny_archive, tmp_path, capsys):
    run = exported.parent
    files = _dcm_files(tiny_archive, 8)
    incoming = tmp_path / "incoming"
    (incoming / "a").mkdir(parents=True)
    partial = files[2]
    raw = partial.read_bytes()
    plan = {1: [files[0]], 2: [files[1]], 3: ["partial"], 5: ["complete", files[3]],
            6: ["corrupt", "foreign"], 60: ["stop"]}

    def drop(poll: int) -> None:
        for item in plan.get(poll, []):
            if item == "stop":
                raise KeyboardInterrupt  # the operator presses Ctrl-C
            if item == "partial":  # a writer half-way through a gzip file
                (incoming / "a" / partial.name).write_bytes(raw[: len(raw) // 2])
            elif item == "complete":
                (incoming / "a" / partial.name).write_bytes(raw)
            elif item == "corrupt":
                (incoming / "bad.bin.gz").write_bytes(gzip.compress(b"SNS-BIET2020" + b"\x07" * 99))
            elif item == "foreign":
                (incoming / "notes.txt").write_text("shift log, not a DCM file\n")
            else:
                shutil.copy(item, incoming / "a" / item.name)

    first = watch(run, incoming, poll_s=0.05, grace_s=1, idle_exit_s=30, on_poll=drop)
    out = capsys.readouterr().out
    assert "watch summary:" in out and "score" in out
    assert first.files == 4
    assert first.unseen == 0  # the files lie in the training period's configurations
    assert first.skipped.get("corrupt_file") == 1 and first.skipped.get("not_a_dcm_file") == 1
    # restart in the middle: the rest of the files land while it is down
    for path in files[4:]:
        shutil.copy(path, incoming / "a" / path.name)
    second = watch(run, incoming, poll_s=0.05, idle_exit_s=0.5, echo=False)
    assert second.session == first.session
    assert second.files == len(files) - 4
    rows = _rows(first.session)
    keys = [(r["file"], r["pulse_in_file"]) for r in rows]
    assert len(keys) == len(set(keys)), "a pulse was scored twice"
    assert {r["file"] for r in rows} <= {f"a/{p.name}" for p in files}
    assert _accounted(first.session) == _expected_pulses(files)
    ledger = json.loads((first.session / "ledger.json").read_text())
    reasons = {(e["path"], e["reason"]) for e in ledger["entries"]}
    assert ("bad.bin.gz", "corrupt_file") in reasons and ("notes.txt", "not_a_dcm_file") in reasons
    assert all(r["timestamp_ns"].isdigit() and 0.0 <= float(r["score"]) <= 1.0 for r in rows)

    # a crash after the rows were appended but before the state was written: cut back on start
    with open(first.session / "alarms.csv", "a") as handle:
        handle.write("a/half-written-row,0,1\n")
    third = watch(run, incoming, poll_s=0.05, idle_exit_s=0.2, echo=False)
    assert third.files == 0 and _rows(first.session) == rows


def test_kill_9_and_restart_leave_a_complete_alarm_log(exported, tiny_archive, tmp_path):
    run = exported.parent
    files = _dcm_files(tiny_archive, 14)
    incoming = tmp_path / "in"
    incoming.mkdir()
    for path in files:
        shutil.copy(path, incoming / path.name)
    command = [sys.executable, "driver.py", "--watch", str(incoming), "--run", str(run),
               "--idle-exit", "1", "--poll", "0.05", "--quiet",
               "--set", f"run.log_dir={tmp_path / 'logs'}"]  # never the project's logs/
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="-1")
    child = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    sessions = run / "watch"
    deadline = time.monotonic() + 120
    killed_with = None
    while time.monotonic() < deadline and child.poll() is None:
        found = [p for p in sessions.glob("*/alarms.csv") if str(incoming.resolve()) in
                 (p.parent / "state.json").read_text()] if sessions.exists() else []
        if found and len(found[0].read_text().splitlines()) >= 3:
            killed_with = len(json.loads((found[0].parent / "state.json").read_text())["done"])
            os.kill(child.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    child.wait(timeout=60)
    assert killed_with is not None, "the watcher finished before it could be killed"
    assert killed_with < len(files)
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (session,) = [p.parent for p in sessions.glob("*/state.json")
                  if str(incoming.resolve()) in p.read_text()]
    rows = _rows(session)
    keys = [(r["file"], r["pulse_in_file"]) for r in rows]
    assert len(keys) == len(set(keys))
    assert _accounted(session) == _expected_pulses(files)
    assert len(json.loads((session / "state.json").read_text())["done"]) == len(files)


def test_watch_refuses_a_missing_folder(exported, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        watch(exported.parent, tmp_path / "nope")


def test_ledger_entries_of_an_uncommitted_file_do_not_count_twice(exported, tiny_archive,
                                                                   tmp_path):
    # kill -9 between ledger.json and state.json: the file is scored again on restart, so the
    # ledger's entries for it from the killed session must not stay beside the new ones.
    run = exported.parent
    files = _dcm_files(tiny_archive, 2)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    shutil.copy(files[0], incoming / files[0].name)
    first = watch(run, incoming, poll_s=0.05, idle_exit_s=0.3, echo=False)
    ledger_path = first.session / "ledger.json"
    ledger = json.loads(ledger_path.read_text())
    ghost = files[1].name  # ledgered, but its state was never written
    ledger["entries"].append({"path": ghost, "reason": "no_reference", "count": 5,
                              "detail": "from a killed session", "scope": "pulse"})
    ledger_path.write_text(json.dumps(ledger))
    shutil.copy(files[1], incoming / ghost)
    watch(run, incoming, poll_s=0.05, idle_exit_s=0.3, echo=False)
    entries = json.loads(ledger_path.read_text())["entries"]
    assert not [e for e in entries if e["detail"] == "from a killed session"]
    assert _accounted(first.session) == _expected_pulses(files)
