"""`driver.py --watch DIR`: score DCM files as they land, one line and one alarms.csv row per pulse.

Polls DIR (any depth). A file is taken once its size and mtime held still over one poll; only
regular files are opened, through the training reader's own `read_regular_file` (non-blocking,
fstat on the descriptor, `data.max_file_mb` on disk and decompressed), so a FIFO, socket or
device is ledgered `not_a_regular_file` and can never hang the loop, and a gzip bomb stops at
the cap (`file_too_large`). A file that fails to read is retried each time its size or mtime
changes, and is ledgered (`corrupt_file`, `not_a_dcm_file`) only once it has held still for
`grace_s` and still fails; a file ledgered or scored earlier whose size or mtime changes later
(written after an empty start, restored after a delete, grown) is read again, its old ledger
entries replaced. Files are scored in the order of their first pulse, every pulse through
`live.engine.LiveScorer` with the run's exported artefact (checked against the sha256 that
serving.json recorded, and refused when parity.json marks it out of tolerance), under the
training side's data rules (stale settings with `beam_settings.max_settings_age_s`, production
filter, non-finite windows). A pulse is scored once per session: one already scored (same
timestamp; the trace is the run's `data.var_id`) is not scored again, and ledgered
`duplicate_pulse` when it came from another file.

One watcher per session: a second `--watch` of the same folder for the same run refuses with
one line (an fcntl lock held while the first runs). Ctrl-C and SIGTERM stop alike: the file in
hand is committed, the summary printed, logged and written to summary.json.

Session folder RUN/watch/<start>/ (one per watched folder; a restart resumes it):
    alarms.csv    one row per scored pulse (engine.CSV_COLUMNS)
    ledger.json   every skipped file or pulse with its reason
    state.json    files done (size, mtime), the committed length of alarms.csv, the buffer file
    summary.json  the last run's summary
Exactly once, even after kill -9: a file's rows are appended and fsynced, then state.json is
replaced atomically; on start alarms.csv is cut back to the length state.json committed, so
rows of a file whose state was not written are dropped and the file is scored again.
"""

from __future__ import annotations

import csv
import dataclasses
import fcntl
import hashlib
import io
import json
import logging
import os
import signal
import stat
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from data_preparation.dcm_files import file_kind
from data_preparation.ledger import (
    CORRUPT_FILE,
    DUPLICATE_PULSE,
    FILE_TOO_LARGE,
    NOT_A_DCM_FILE,
    NOT_A_REGULAR_FILE,
    UNREADABLE_LINK,
    DataLedger,
)
from live.engine import CSV_COLUMNS, LiveScorer, PulseRow, csv_row, iso_time
from live.formats import BASE_FORMAT, find_artefact
from utils.run_folder import atomic_path, atomic_write_json, create_run_dir
from utils.serving_files import check_artefact

log = logging.getLogger("beamwatch.watch")

STATE = "state.json"


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

    @property
    def last_row_ns(self) -> int | None:
        """Time of the settings history's last row (after `values`); None when empty."""
        stamps = self._table.timestamp_ns
        return int(stamps[-1]) if len(stamps) else None


# ----------------------------------------------------------------------------------------------
# One watcher per session


class WatchBusyError(RuntimeError):
    """Another watcher already follows this folder for this run."""


def _lock_session(run_dir: Path, watched: Path):
    """Hold the run's lock for `watched` (fcntl, released when the process ends), or refuse."""
    root = run_dir / "watch"
    root.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha1(str(watched.resolve()).encode()).hexdigest()[:16]
    handle = open(root / f".lock-{key}", "a+")  # noqa: SIM115 (held open while watching)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise WatchBusyError(f"--watch {watched}: already watched for run {run_dir.name} by "
                             f"{holder}; one watcher per folder (stop it first)") from None
    handle.seek(0)
    handle.truncate(0)
    handle.write(f"pid {os.getpid()}\n")
    handle.flush()
    return handle


# ----------------------------------------------------------------------------------------------
# The loop


@dataclasses.dataclass
class _Seen:
    size: int
    mtime_ns: int
    changed_at: float  # monotonic time of the last size/mtime change
    failed: bool = False  # the last read failed while the file was young: wait for a change


def watch(run_dir: Path, watched: Path, *, artefact: str = "saved_model",
          settings_dir: Path | None = None, poll_s: float = 1.0, grace_s: float = 30.0,
          idle_exit_s: float | None = None, echo: bool = True,
          publishers: tuple[Callable[[PulseRow, float], None], ...] = (),
          on_poll: Callable[[int], None] | None = None) -> WatchSummary:
    """Follow `watched` and score every pulse of every file (see the module docstring).

    Runs until Ctrl-C or SIGTERM, or until nothing new arrived for `idle_exit_s` seconds when
    given (and no failed file waits out its `grace_s`). `publishers` are called with each
    scored row and the threshold (EPICS); `on_poll(n)` after each poll (tests drop files there).
    """
    from parser.configs import load_config

    run_dir, watched = Path(run_dir), Path(watched)
    if not watched.is_dir():
        raise FileNotFoundError(f"--watch {watched}: no such folder")
    find_artefact(artefact)  # an unknown name is refused before anything is opened
    lock = _lock_session(run_dir, watched)
    try:
        config = load_config(run_dir / "config.yaml")
        scorer, meta = open_scorer(run_dir, artefact, config.beam_settings.max_settings_age_s)
        settings = None
        if meta["settings"]["use"] and scorer.filter_columns:
            bpm = config.beam_settings
            if settings_dir is not None:
                bpm = dataclasses.replace(bpm, data_location=str(settings_dir))
            settings = SettingsSource(bpm, scorer.filter_columns)
        loop = _Loop(run_dir, watched, scorer, settings, meta["window"],
                     int(config.data.max_file_mb) * 2**20, grace_s, echo, publishers)
        return loop.run(poll_s, idle_exit_s, on_poll)
    finally:
        lock.close()


def open_scorer(run_dir: Path, artefact: str, max_settings_age_s: float | None,
                per_pulse: bool = False) -> tuple[LiveScorer, dict]:
    """The run's checked export artefact ready to score (exported first, parity checked, when
    the run has no export yet) and its serving.json; the one way --watch and the EPICS input
    load a model."""
    from live.export import check_parity, export_run
    from live.serving import InputLayout
    from utils.serving_files import EXPORT_DIR, read_serving

    export_format, chosen = find_artefact(artefact)
    export_dir = run_dir / EXPORT_DIR
    if not (export_dir / "serving.json").exists():
        log.info("no export in %s yet: exporting the SavedModel first", run_dir)
        check_parity(export_run(run_dir, tuple(dict.fromkeys((BASE_FORMAT, export_format.name))),
                                progress=False))
    meta = read_serving(export_dir)
    path = check_artefact(export_dir, meta, chosen.key,
                          tuple(row.name for row in chosen.parity if row.guards_watch),
                          export_format.name)
    backend = export_format.backend(path, InputLayout.from_dict(meta["layout"]))
    return LiveScorer(backend, meta, max_settings_age_s=max_settings_age_s,
                      per_pulse=per_pulse), meta


class _Stop(Exception):
    """SIGTERM arrived: stop as Ctrl-C does."""


class _Loop:
    """The state of one watch: the session files, what was seen, what was scored."""

    def __init__(self, run_dir: Path, watched: Path, scorer: LiveScorer, settings, window: dict,
                 max_bytes: int, grace_s: float, echo: bool, publishers):
        self.watched, self.scorer, self.settings = watched, scorer, settings
        self.window, self.max_bytes, self.grace_s = window, max_bytes, grace_s
        self.echo, self.publishers = echo, publishers
        self.session = open_session(run_dir, watched)
        self.state = json.loads((self.session / STATE).read_text())
        _recover_alarms(self.session, self.state)
        ledger_path = self.session / "ledger.json"
        ledger = (DataLedger.from_dict(json.loads(ledger_path.read_text()))
                  if ledger_path.exists() else DataLedger())
        # ledger.json is written just before state.json: a kill between the two leaves entries
        # of a file that was not committed and is scored again now, so they would count twice.
        self.ledger = DataLedger(e for e in ledger.entries if e.path in self.state["done"])
        if self.state.get("buffer") and scorer.buffer is not None:
            with np.load(self.session / self.state["buffer"], allow_pickle=False) as arrays:
                scorer.buffer.load_arrays(arrays)
        self.scored = _scored_pulses(self.session / "alarms.csv")  # timestamp_ns -> file
        self.seen: dict[str, _Seen] = {}
        self.carried: dict[str, int] = {}  # pulses scored from a file before it changed
        self.counts: Counter = Counter()
        self.stop_signal: int | None = None
        log.info("watching %s with %s (%s); session %s, %d files already done", watched,
                 scorer.backend.name, run_dir.name, self.session, len(self.state["done"]))

    # -- the loop ----------------------------------------------------------------------------

    def run(self, poll_s: float, idle_exit_s: float | None, on_poll) -> WatchSummary:
        started = last_new = time.monotonic()
        polls = 0
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, self._on_term)
        try:
            while True:
                if self.poll():
                    last_new = time.monotonic()
                polls += 1
                if on_poll is not None:
                    on_poll(polls)
                self._check_stop()
                waiting = any(s.failed for s in self.seen.values())
                if (idle_exit_s is not None and not waiting
                        and time.monotonic() - last_new >= idle_exit_s):
                    break
                time.sleep(poll_s)
                self._check_stop()
        except KeyboardInterrupt:
            log.info("interrupted: stopping cleanly (state is committed after every file)")
        except _Stop:
            log.info("stopped by signal %d: stopping cleanly (state is committed after every "
                     "file)", self.stop_signal)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        return self._summary(time.monotonic() - started)

    def _on_term(self, signum, frame) -> None:
        self.stop_signal = signum  # acted on between files, never inside a commit

    def _check_stop(self) -> None:
        if self.stop_signal is not None:
            raise _Stop

    def poll(self) -> bool:
        """One look at the folder: read what is ready, score it. True when anything changed."""
        now = time.monotonic()
        changed = False
        ready = []
        listed = set()
        for path in _files(self.watched):
            rel = str(path.relative_to(self.watched))
            listed.add(rel)
            signature = _signature(path)
            if signature is None:  # removed between listing and stat
                continue
            size, mtime_ns, kind = signature
            done = self.state["done"].get(rel)
            if done is not None:
                if (done["size"], done["mtime_ns"]) == (size, mtime_ns):
                    continue
                log.info("%s changed since it was %s: read again", rel,
                         "skipped" if done.get("skipped") else "scored")
                self.carried[rel] = int(done.get("pulses", 0))  # its rows stay in alarms.csv
                del self.state["done"][rel]
                self.ledger = DataLedger(e for e in self.ledger.entries if e.path != rel)
            if kind is not None:  # a FIFO, socket, device or dangling link: never opened
                reason = UNREADABLE_LINK if kind == "a dangling link" else NOT_A_REGULAR_FILE
                self._commit_skip(rel, reason, kind, size, mtime_ns)
                changed = True
                continue
            seen = self.seen.get(rel)
            if seen is None or (seen.size, seen.mtime_ns) != (size, mtime_ns):
                self.seen[rel] = _Seen(size, mtime_ns, now)
                changed = True
                continue
            if seen.failed and now - seen.changed_at < self.grace_s:
                continue  # failed while young: wait for it to change, or for the grace to end
            ready.append((rel, path, seen))
        for rel in set(self.seen) - listed:  # vanished: forgotten until it comes back
            del self.seen[rel]
        loaded = []
        for rel, path, seen in ready:
            pulses = self._read(rel, path, seen, now)
            if pulses is not None:
                first = int(pulses.timestamps_ns[0]) if len(pulses.timestamps_ns) else 0
                loaded.append((first, rel, pulses, seen))
            changed = True
        for _, rel, pulses, seen in sorted(loaded, key=lambda item: (item[0], item[1])):
            self._score(rel, pulses, seen)
            self._check_stop()
        return changed

    def _read(self, rel: str, path: Path, seen: _Seen, now: float):
        """The file's pulses, or None (ledgered, or waiting for the writer)."""
        from data_preparation.data_loader import NotRegularFileError, read_regular_file
        from enterprise_tools.biet_format import CorruptFileError, FileTooLargeError
        from enterprise_tools.trace_windows import pulse_windows

        window = self.window
        try:
            content = read_regular_file(str(path), self.max_bytes)
            return pulse_windows(content, window["var_id"], window["begin"], window["shift"],
                                 window["bwidth_cut"])
        except FileTooLargeError as exc:
            reason, detail = FILE_TOO_LARGE, f"{exc} (data.max_file_mb)"
        except NotRegularFileError as exc:
            reason, detail = NOT_A_REGULAR_FILE, str(exc)
        except CorruptFileError as exc:
            reason = NOT_A_DCM_FILE if "bad header" in exc.reason else CORRUPT_FILE
            detail = str(exc)
        except OSError as exc:
            reason, detail = CORRUPT_FILE, f"{type(exc).__name__}: {exc}"
        if reason in (CORRUPT_FILE, NOT_A_DCM_FILE) and now - seen.changed_at < self.grace_s:
            seen.failed = True  # maybe still being written: read again when it changes
            return None
        self._commit_skip(rel, reason, detail, seen.size, seen.mtime_ns)
        self.seen.pop(rel, None)
        log.warning("skipped %s: %s", rel, detail)
        return None

    def _score(self, rel: str, pulses, seen: _Seen) -> None:
        scorer = self.scorer
        stamps = pulses.timestamps_ns
        before = [self.scored.get(int(ts)) for ts in stamps]
        already = np.array([b is not None for b in before], bool)
        elsewhere = Counter(b for b in before if b is not None and b != rel)
        values = until = None
        if self.settings is not None:
            values, until = self.settings.values(stamps), self.settings.last_row_ns
        rows, skipped = scorer.score_file(rel, pulses.traces, stamps, pulses.alarms, values,
                                          settings_until_ns=until, already_scored=already)
        for skip in pulses.skipped:
            self.ledger.add(rel, skip.reason, 0 if skip.scope == "file" else 1, skip.detail,
                            scope=skip.scope)
        for reason, count, detail in skipped:
            self.ledger.add(rel, reason, count, detail)
        for other, count in elsewhere.items():
            self.ledger.add(rel, DUPLICATE_PULSE, count, f"already scored from {other}")
            self.counts[DUPLICATE_PULSE] += count
        self._commit_file(rel, rows, seen)
        for row in rows:
            self.scored[row.timestamp_ns] = rel
        self.seen.pop(rel, None)
        self.counts["files"] += 1
        self.counts["pulses"] += len(rows)
        self.counts["alarms"] += sum(r.alarm for r in rows)
        self.counts["unseen"] += sum(bool(r.unseen_configuration) for r in rows)
        for row in rows:
            if self.echo:
                print(watch_line(row), flush=False)
            for publish in self.publishers:
                publish(row, row.threshold)
        if self.echo:
            sys.stdout.flush()

    def _summary(self, seconds: float) -> WatchSummary:
        skipped = dict(self.scorer.skipped)
        for reason, count in self.counts.items():
            if reason not in ("files", "pulses", "alarms", "unseen") and count:
                skipped[reason] = skipped.get(reason, 0) + count
        summary = WatchSummary(self.session, self.counts["files"], self.counts["pulses"],
                               self.counts["alarms"], self.counts["unseen"], skipped, seconds)
        atomic_write_json(self.session / "summary.json", {
            "files": summary.files, "pulses": summary.pulses, "alarms": summary.alarms,
            "unseen": summary.unseen, "skipped": summary.skipped,
            "seconds": round(summary.seconds, 3),
            "stopped_by": "SIGTERM" if self.stop_signal == signal.SIGTERM else "end"})
        if self.echo:
            print(summary.line())
        log.info("%s", summary.line())
        return summary

    # -- commits -----------------------------------------------------------------------------

    def _commit_file(self, rel: str, rows: list[PulseRow], seen: _Seen) -> None:
        """Append the file's rows (fsync), then the buffer, ledger and state (atomic, last)."""
        session, state, scorer = self.session, self.state, self.scorer
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
        state["done"][rel] = {"size": seen.size, "mtime_ns": seen.mtime_ns,
                              "pulses": len(rows) + self.carried.pop(rel, 0)}
        state["alarms_bytes"] = size
        atomic_write_json(session / "ledger.json", self.ledger.to_dict())
        atomic_write_json(session / STATE, state)
        if old_buffer and old_buffer != state.get("buffer"):
            (session / old_buffer).unlink(missing_ok=True)

    def _commit_skip(self, rel: str, reason: str, detail: str, size: int, mtime_ns: int) -> None:
        self.ledger.add(rel, reason, 0, detail, scope="file")
        self.state["done"][rel] = {"size": size, "mtime_ns": mtime_ns,
                                   "pulses": self.carried.pop(rel, 0), "skipped": reason}
        self.counts[reason] += 1
        atomic_write_json(self.session / "ledger.json", self.ledger.to_dict())
        atomic_write_json(self.session / STATE, self.state)


def _signature(path: Path) -> tuple[int, int, str | None] | None:
    """(size, mtime_ns, what it is when not a regular file) of `path`; None when it is gone."""
    try:
        info = os.stat(path)  # follows links
    except FileNotFoundError:
        if not os.path.islink(path):
            return None
        info = os.lstat(path)
        return info.st_size, info.st_mtime_ns, "a dangling link"
    except OSError:  # a link loop
        info = os.lstat(path)
        return info.st_size, info.st_mtime_ns, "a dangling link"
    if stat.S_ISREG(info.st_mode):
        return info.st_size, info.st_mtime_ns, None
    return info.st_size, info.st_mtime_ns, file_kind(info.st_mode)


def _scored_pulses(alarms_csv: Path) -> dict[int, str]:
    """timestamp_ns -> file of every pulse alarms.csv holds (what a restart must not repeat)."""
    scored: dict[int, str] = {}
    with open(alarms_csv, newline="") as handle:
        for row in csv.DictReader(handle):
            scored[int(row["timestamp_ns"])] = row["file"]
    return scored


def _files(root: Path):
    """Files under `root` (any kind: the caller refuses what is not regular), hidden ones
    (temp files being written) left out."""
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if not name.startswith("."):
                yield Path(folder) / name


def watch_line(row: PulseRow) -> str:
    flag = " unseen-configuration" if row.unseen_configuration else ""
    return (f"{iso_time(row.timestamp_ns)}  score {row.score:.4f}  "
            f"{'ALARM' if row.alarm else 'ok   '}{flag}  {row.file}#{row.pulse_in_file}")
