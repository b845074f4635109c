"""`driver.py --watch DIR`: score DCM files as they land, one line and one alarms.csv row per pulse.

Polls DIR (any depth). A file is taken once its size and mtime held still over one poll and it
reads whole (a gzip file that is still being written fails its trailer check and is waited for,
up to `grace_s` after its last change); a file that stays damaged, or is not a DCM file at all,
is ledgered and skipped, never fatal. Files are scored in the order of their first pulse, every
pulse through `live.engine.LiveScorer` with the run's exported artefact.

Session folder RUN/watch/<start>/ (one per watched folder; a restart resumes it):
    alarms.csv    one row per scored pulse (engine.CSV_COLUMNS)
    ledger.json   every skipped file or pulse with its reason
    state.json    files done, the committed length of alarms.csv, the reference buffer file
Exactly once, even after kill -9: a file's rows are appended and fsynced, then state.json is
replaced atomically; on start alarms.csv is cut back to the length state.json committed, so
rows of a file whose state was not written are dropped and the file is scored again.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from data_preparation.ledger import CORRUPT_FILE, NOT_A_DCM_FILE, DataLedger
from live.engine import CSV_COLUMNS, LiveScorer, PulseRow, csv_row, iso_time
from utils.run_folder import atomic_path, atomic_write_json, create_run_dir

log = logging.getLogger("beamwatch.watch")

STATE = "state.json"
ARTEFACTS = {"saved_model": "saved_model", "litert": "model_float32.tflite",
             "litert_int8": "model_int8.tflite", "onnx": "model.onnx"}


@dataclasses.dataclass
class WatchSummary:
    session: Path
    files: int
    pulses: int
    alarms: int
    unseen: int
    skipped: dict
    seconds: float

    def line(self) -> str:
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items())) or "none"
        return (f"watch summary: {self.files} files, {self.pulses} pulses scored, {self.alarms} "
                f"alarms, {self.unseen} on unseen configurations, skipped: {skipped}; "
                f"{self.seconds:.0f} s; log {self.session / 'alarms.csv'}")


# ----------------------------------------------------------------------------------------------
# Session state


def open_session(run_dir: Path, watched: Path) -> Path:
    """The session folder for `watched`: the newest earlier one for the same folder, or new."""
    root = run_dir / "watch"
    root.mkdir(parents=True, exist_ok=True)
    key = str(watched.resolve())
    for folder in sorted(root.iterdir(), reverse=True):
        state = folder / STATE
        if state.is_file():
            try:
                if json.loads(state.read_text()).get("watched") == key:
                    return folder
            except (OSError, json.JSONDecodeError):
                continue
    folder = create_run_dir(root, watched.name)  # <start>-<folder name>, never reused
    atomic_write_json(folder / STATE, {"watched": key, "done": {}, "alarms_bytes": 0,
                                       "buffer": None})
    return folder


def _recover_alarms(session: Path, state: dict) -> None:
    """Cut alarms.csv back to what state.json committed (a crash may have left more)."""
    path = session / "alarms.csv"
    committed = int(state["alarms_bytes"])
    if not path.exists() or committed == 0:
        with open(path, "w", newline="") as handle:
            csv.writer(handle, lineterminator="\n").writerow(CSV_COLUMNS)
            handle.flush()
            os.fsync(handle.fileno())
        state["alarms_bytes"] = path.stat().st_size
        return
    size = path.stat().st_size
    if size > committed:
        log.warning("alarms.csv holds %d bytes past the last committed file (a crash); removed, "
                    "that file is scored again", size - committed)
        with open(path, "r+b") as handle:
            handle.truncate(committed)
    elif size < committed:
        raise RuntimeError(f"{path} is shorter ({size} bytes) than state.json committed "
                           f"({committed}); it was edited or lost; start a new session")


# ----------------------------------------------------------------------------------------------
# Beam settings, reloaded when the archive changes


class SettingsSource:
    """The beam-settings table of a `BPMDataConfig`, re-read when its files change."""

    def __init__(self, bpm_config, columns: list[str]):
        self.bpm = bpm_config
        self.columns = columns
        self._listing = None
        self._table = None

    def _current_listing(self):
        root = Path(self.bpm.data_location)
        files = [root] if root.is_file() else sorted(root.rglob("*.h*5")) if root.is_dir() else []
        return tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)

    def values(self, timestamps_ns) -> np.ndarray:
        from data_preparation.data_transformer import attach_settings, load_settings

        listing = self._current_listing()
        if not listing:
            raise FileNotFoundError(f"beam settings {self.bpm.data_location}: no .hdf5/.h5 file; "
                                    "the model needs the settings (--settings DIR)")
        if listing != self._listing:
            self._table = load_settings(self.bpm)
            self._listing = listing
        return attach_settings(timestamps_ns, self._table, self.columns)


# ----------------------------------------------------------------------------------------------
# The loop


@dataclasses.dataclass
class _Seen:
    size: int
    mtime_ns: int
    changed_at: float  # monotonic time of the last size/mtime change


def watch(run_dir: Path, watched: Path, *, artefact: str = "saved_model",
          settings_dir: Path | None = None, poll_s: float = 1.0, grace_s: float = 30.0,
          idle_exit_s: float | None = None, echo: bool = True,
          publishers: tuple[Callable[[PulseRow, float], None], ...] = (),
          on_poll: Callable[[int], None] | None = None) -> WatchSummary:
    """Follow `watched` and score every pulse of every file (see the module docstring).

    Runs until Ctrl-C, or until nothing new arrived for `idle_exit_s` seconds when given.
    `publishers` are called with each scored row and the threshold (EPICS); `on_poll(n)` after
    each poll (tests drop files there).
    """
    from enterprise_tools.data_utils import CorruptFileError, pulse_windows
    from live.export import EXPORT_DIR, export_run, read_serving
    from live.scorer import load_backend
    from live.serving import InputLayout
    from parser.configs import load_config

    run_dir, watched = Path(run_dir), Path(watched)
    if not watched.is_dir():
        raise FileNotFoundError(f"--watch {watched}: no such folder")
    if artefact not in ARTEFACTS:
        raise ValueError(f"artefact {artefact!r}: expected one of {', '.join(ARTEFACTS)}")
    export_dir = run_dir / EXPORT_DIR
    if not (export_dir / "serving.json").exists():
        log.info("no export in %s yet: exporting the SavedModel first", run_dir)
        export_run(run_dir, ("saved_model", "litert") if artefact.startswith("litert")
                   else ("saved_model", artefact) if artefact == "onnx" else ("saved_model",),
                   progress=False)
    meta = read_serving(export_dir)
    config = load_config(run_dir / "config.yaml")
    backend = load_backend(export_dir / ARTEFACTS[artefact], InputLayout.from_dict(meta["layout"]))
    scorer = LiveScorer(backend, meta)
    settings = None
    if meta["settings"]["use"] and scorer.filter_columns:
        bpm = config.beam_settings
        if settings_dir is not None:
            bpm = dataclasses.replace(bpm, data_location=str(settings_dir))
        settings = SettingsSource(bpm, scorer.filter_columns)
    window = meta["window"]

    session = open_session(run_dir, watched)
    state = json.loads((session / STATE).read_text())
    _recover_alarms(session, state)
    ledger_path = session / "ledger.json"
    ledger = (DataLedger.from_dict(json.loads(ledger_path.read_text()))
              if ledger_path.exists() else DataLedger())
    # ledger.json is written just before state.json: a kill between the two leaves entries of
    # a file that was not committed and is scored again now, so they would count twice.
    committed = DataLedger()
    committed.extend(e for e in ledger.entries if e.path in state["done"])
    ledger = committed
    if state.get("buffer") and scorer.buffer is not None:
        with np.load(session / state["buffer"], allow_pickle=False) as arrays:
            scorer.buffer.load_arrays(arrays)
    log.info("watching %s with %s (%s); session %s, %d files already done", watched,
             backend.name, run_dir.name, session, len(state["done"]))

    seen: dict[str, _Seen] = {}
    counts = Counter()
    started = time.monotonic()
    last_new = time.monotonic()
    polls = 0
    try:
        while True:
            now = time.monotonic()
            ready = []
            for path in _files(watched):
                rel = str(path.relative_to(watched))
                if rel in state["done"]:
                    continue
                try:
                    stat = path.stat()
                except FileNotFoundError:  # removed between listing and stat
                    continue
                previous = seen.get(rel)
                if previous is None or (previous.size, previous.mtime_ns) != (stat.st_size,
                                                                              stat.st_mtime_ns):
                    seen[rel] = _Seen(stat.st_size, stat.st_mtime_ns, now)
                    last_new = now
                    continue
                ready.append((rel, path, previous))
            loaded = []
            for rel, path, previous in ready:
                try:
                    pulses = pulse_windows(path, window["var_id"], window["begin"],
                                           window["shift"], window["bwidth_cut"])
                except CorruptFileError as exc:
                    still_young = now - previous.changed_at < grace_s
                    if "truncated" in exc.reason and still_young:
                        continue  # still being written (gzip trailer missing): wait
                    reason = NOT_A_DCM_FILE if "bad header" in exc.reason else CORRUPT_FILE
                    _commit_skip(session, state, ledger, rel, reason, str(exc), previous)
                    counts[reason] += 1
                    seen.pop(rel, None)
                    log.warning("skipped %s: %s", rel, exc)
                    continue
                except OSError as exc:
                    _commit_skip(session, state, ledger, rel, CORRUPT_FILE, str(exc), previous)
                    counts[CORRUPT_FILE] += 1
                    seen.pop(rel, None)
                    continue
                first = int(pulses.timestamps_ns[0]) if len(pulses.timestamps_ns) else 0
                loaded.append((first, rel, pulses, previous))
            for _, rel, pulses, previous in sorted(loaded, key=lambda item: (item[0], item[1])):
                values = settings.values(pulses.timestamps_ns) if settings is not None else None
                rows, skipped = scorer.score_file(rel, pulses.traces, pulses.timestamps_ns,
                                                  pulses.alarms, values)
                for skip in pulses.skipped:
                    ledger.add(rel, skip.reason, 0 if skip.scope == "file" else 1, skip.detail,
                               scope=skip.scope)
                for reason, count, detail in skipped:
                    ledger.add(rel, reason, count, detail)
                _commit_file(session, state, ledger, scorer, rel, rows, previous)
                seen.pop(rel, None)
                counts["files"] += 1
                counts["pulses"] += len(rows)
                counts["alarms"] += sum(r.alarm for r in rows)
                counts["unseen"] += sum(bool(r.unseen_configuration) for r in rows)
                for row in rows:
                    if echo:
                        print(_line(row), flush=False)
                    for publish in publishers:
                        publish(row, row.threshold)
                if echo:
                    sys.stdout.flush()
                last_new = time.monotonic()
            polls += 1
            if on_poll is not None:
                on_poll(polls)
            if idle_exit_s is not None and time.monotonic() - last_new >= idle_exit_s:
                break
            time.sleep(poll_s)
    except KeyboardInterrupt:
        log.info("interrupted: stopping cleanly (state is committed after every file)")
    skipped = dict(scorer.skipped)
    for reason in (CORRUPT_FILE, NOT_A_DCM_FILE):
        if counts[reason]:
            skipped[reason] = skipped.get(reason, 0) + counts[reason]
    summary = WatchSummary(session, counts["files"], counts["pulses"], counts["alarms"],
                           counts["unseen"], skipped, time.monotonic() - started)
    if echo:
        print(summary.line())
    log.info("%s", summary.line())
    return summary


def _files(root: Path):
    """Regular files under `root`, hidden ones (temp files being written) left out."""
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if not name.startswith("."):
                yield Path(folder) / name


def _line(row: PulseRow) -> str:
    flag = " unseen-configuration" if row.unseen_configuration else ""
    return (f"{iso_time(row.timestamp_ns)}  score {row.score:.4f}  "
            f"{'ALARM' if row.alarm else 'ok   '}{flag}  {row.file}#{row.pulse_in_file}")


def _commit_file(session: Path, state: dict, ledger: DataLedger, scorer: LiveScorer, rel: str,
                 rows: list[PulseRow], seen: _Seen) -> None:
    """Append the file's rows (fsync), then the buffer, ledger and state (atomic, last)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    for row in rows:
        writer.writerow(csv_row(row))
    with open(session / "alarms.csv", "ab") as handle:
        handle.write(text.getvalue().encode())
        handle.flush()
        os.fsync(handle.fileno())
        size = handle.tell()
    old_buffer = state.get("buffer")
    if scorer.buffer is not None:
        name = f"buffer-{len(state['done']) + 1}.npz"
        with atomic_path(session / name, suffix=".npz") as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **scorer.buffer.to_arrays())
        state["buffer"] = name
    state["done"][rel] = {"size": seen.size, "mtime_ns": seen.mtime_ns, "pulses": len(rows)}
    state["alarms_bytes"] = size
    atomic_write_json(session / "ledger.json", ledger.to_dict())
    atomic_write_json(session / STATE, state)
    if old_buffer and old_buffer != state.get("buffer"):
        (session / old_buffer).unlink(missing_ok=True)


def _commit_skip(session: Path, state: dict, ledger: DataLedger, rel: str, reason: str,
                 detail: str, seen: _Seen) -> None:
    ledger.add(rel, reason, 0, detail, scope="file")
    state["done"][rel] = {"size": seen.size, "mtime_ns": seen.mtime_ns, "pulses": 0,
                          "skipped": reason}
    atomic_write_json(session / "ledger.json", ledger.to_dict())
    atomic_write_json(session / STATE, state)
