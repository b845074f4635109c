"""Pulses from a DCM archive: extract every file's windows in workers, cache them, ledger the rest.

`load_pulses` walks `data.dataset_loc`, labels each file by its nearest "normal" / "anomal"
folder, and applies the `get_traces` rules of `enterprise_tools.trace_windows` to every file, in
parallel worker processes (started with "forkserver" or "spawn", never "fork", because the
parent may already hold TensorFlow). Extracted windows, timestamps and skips are cached on disk
(`data_preparation.trace_cache`), keyed by file path, size, mtime and the extraction
parameters, so a warm rebuild reads no gzip at all and a changed or added file is re-read alone.

Damaged and non-DCM files are never fatal: they, and every skipped pulse, go to the ledger.
Neighbours with one job each: `dcm_files` (find and label the files), `pulse_assembly` (join
the per-file results in time order), `pulse_set` (`PulseSet`) and `npz_source`
(`load_npz_pulses`, the other data source); their names still import from here. The worker
half (`_extract`, `_read_file`) stays here beside `load_pulses`, which is its only caller.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import multiprocessing
import os
import signal
import stat
import sys
import threading
import time
import zlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tqdm.auto import tqdm

from data_preparation.cache_checksums import CacheChecksumError
from data_preparation.dcm_files import ANOMALY, file_kind, find_data_files, usable_files
from data_preparation.ledger import (
    CORRUPT_FILE,
    FILE_TOO_LARGE,
    NON_FINITE_TRACE,
    NOT_A_DCM_FILE,
    NOT_A_REGULAR_FILE,
    UNLABELLED_FOLDER,
    DataLedger,
)
from data_preparation.pulse_assembly import assemble, files_in_rows
from data_preparation.pulse_set import PulseSet
from data_preparation.trace_cache import (
    CACHE_FORMAT,
    FileKey,
    FileResult,
    TraceCache,
    write_pending,
)
from data_preparation.validation import finite_pulses
from enterprise_tools.biet_format import HEADER, CorruptFileError, FileTooLargeError
from enterprise_tools.biet_reader import ReadStorage, decompress
from enterprise_tools.trace_windows import QualityCut, get_traces

logger = logging.getLogger(__name__)

__all__ = ["cache_folder", "check_window", "load_pulses"]

_GZIP_MAGIC = b"\x1f\x8b"
_FROM_CONFIG = object()  # sentinel: take cache_dir from the config


# ----------------------------------------------------------------------------------------------
# Extraction of one file (runs in worker processes)


class _Extraction(NamedTuple):
    """What decides a file's windows, besides the file itself."""

    var_id: str
    begin: int
    shift: int
    anomaly_alarm: int
    bwidth_cut: float | None
    quality_cut: tuple | None  # (min_peaks, min_median, max_q1) when the cut is on
    max_file_bytes: int  # a file larger than this (on disk or decompressed) is ledgered
    references: int = 0  # K in-file reference pulses per sample

    @classmethod
    def from_config(cls, config, references: int = 0) -> _Extraction:
        quality = None
        if config.quality_cut:
            quality = (
                int(config.quality_min_peaks),
                float(config.quality_min_median),
                float(config.quality_max_q1),
            )
        return cls(
            config.var_id,
            int(config.begin),
            int(config.shift),
            int(config.alarm),
            None if config.bwidth_cut is None else float(config.bwidth_cut),
            quality,
            int(config.max_file_mb) * 2**20,
            int(references),
        )

    def digest(self) -> str:
        fields = self._asdict()
        if not fields["references"]:  # K = 0 keeps the folder name of caches made before K
            del fields["references"]
        text = json.dumps({"format": CACHE_FORMAT, **fields}, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:16]


def _sniff(content) -> tuple[str, str] | None:
    """A whole-file problem visible in the first bytes: not SNS-BIET2020, or broken gzip."""
    if isinstance(content, _Content):
        head = content.data[:4096]
    else:
        with open(content, "rb") as handle:
            head = handle.read(4096)
    if head[:2] == _GZIP_MAGIC:
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, len(HEADER))
        except zlib.error as exc:
            return CORRUPT_FILE, f"bad gzip stream: {exc}"
        if len(head) < len(HEADER):
            return CORRUPT_FILE, "gzip stream ends before the SNS-BIET2020 header"
    if head[: len(HEADER)] != HEADER:
        return NOT_A_DCM_FILE, f"starts with {head[:len(HEADER)]!r}, expected {HEADER!r}"
    return None


class _Content:
    """A file's SNS-BIET2020 bytes with its name: what `get_traces` reads instead of the path.

    `read()` hands over the bytes themselves (no copy, unlike `io.BytesIO`).
    """

    def __init__(self, data: bytes, name: str):
        self.data, self.name = data, name

    def read(self) -> bytes:
        return self.data


def read_regular_file(path: str, max_bytes: int) -> _Content:
    """The file's SNS-BIET2020 bytes (gunzipped), read only if it is a regular file.

    Opened non-blocking and checked with fstat on the open descriptor, so a FIFO or device
    that appeared under a data-file name can neither hang the reader nor slip in between a
    check and the open. Files above `max_bytes` on disk or decompressed raise
    `FileTooLargeError` before they can fill the memory.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFileError(f"not a regular file ({file_kind(info.st_mode)})")
        if info.st_size > max_bytes:
            raise FileTooLargeError(path, max_bytes)
        raw = handle.read(max_bytes + 1)
    return _Content(decompress(raw, path, max_bytes), path)


class NotRegularFileError(Exception):
    """A path that is not a regular file (FIFO, socket, device, folder)."""


def _extract(path: str, alarm: int, params: _Extraction) -> FileResult:
    """Apply the get_traces rules to one file; data problems become the result's error."""
    quality = None if params.quality_cut is None else QualityCut(*params.quality_cut)
    try:
        content = read_regular_file(path, params.max_file_bytes)
        problem = _sniff(content)
        if problem is None:
            found = get_traces(
                content,
                var_id=params.var_id,
                begin=params.begin,
                shift=params.shift,
                alarm=alarm,
                bwidth_cut=params.bwidth_cut,
                quality_cut=quality,
                references=params.references,
            )
    except FileTooLargeError as exc:
        problem = (FILE_TOO_LARGE, f"{exc.reason} (data.max_file_mb)")
    except CorruptFileError as exc:
        problem = (CORRUPT_FILE, str(exc))
    except NotRegularFileError as exc:
        problem = (NOT_A_REGULAR_FILE, str(exc))
    except (OSError, EOFError) as exc:
        problem = (CORRUPT_FILE, f"{type(exc).__name__}: {exc}")
    if problem is not None:
        empty = np.empty((0, params.shift), dtype=np.float32)
        return FileResult(0, np.empty(0, np.int64), [], problem, traces=empty)
    traces = np.asarray(found.traces, dtype=np.float32).reshape(-1, params.shift)
    skips = [(s.reason, s.detail, s.scope) for s in found.skipped]
    stamps = np.asarray(found.timestamps_ns, dtype=np.int64)
    references = reference_stamps = None
    if params.references:
        references = np.asarray(found.references, dtype=np.float32)
        reference_stamps = found.reference_timestamp_ns.astype(np.int64)
    finite = finite_pulses(traces, references)
    if not finite.all():  # a NaN/inf sample would poison the scaler and every score
        for i in np.flatnonzero(~finite):
            skips.append((NON_FINITE_TRACE, f"pulse at {int(stamps[i])} ns: NaN or inf in "
                          f"the {params.var_id} window or its reference pulses", "pulse"))
        traces, stamps = traces[finite], stamps[finite]
        if references is not None:
            references, reference_stamps = references[finite], reference_stamps[finite]
    if references is None:
        return FileResult(len(stamps), stamps, skips, None, traces=traces)
    return FileResult(len(stamps), stamps, skips, None, traces=traces, references=references,
                      reference_timestamps_ns=reference_stamps)


def _read_file(key: FileKey, alarm: int, params: _Extraction, pending: str | None) -> FileResult:
    """Worker task: extract one file and, with a cache, store the result as a pending entry."""
    try:
        result = _extract(key.path, alarm, params)
        return result if pending is None else write_pending(pending, key, result)
    except Exception as exc:  # a bug, not bad data: say which file triggered it
        raise RuntimeError(f"reading {key.path} failed: {type(exc).__name__}: {exc}") from exc


# ----------------------------------------------------------------------------------------------
# The loader


def load_pulses(
    config, *, progress: bool = True, cache_dir=_FROM_CONFIG, stream: bool = False,
    references: int = 0,
) -> PulseSet:
    """Read every pulse of the archive at `config.dataset_loc` (a `DCMDataConfig`).

    Args:
        config: the `data` section; `DCMDataConfig(dataset_loc=...)` alone works.
        progress: show a progress bar (only when stderr is a terminal).
        cache_dir: where to cache extracted windows; default `config.cache_dir`, None disables.
        stream: True returns `traces` as a `TraceStore` over the cache (needs a cache).
        references: K in-file reference pulses per sample (`get_traces` rules); part of the
            cache key, so a changed K reads the files again.

    Returns:
        A `PulseSet` sorted by timestamp, with every skipped file and pulse in its ledger.
    """
    if getattr(config, "source", "sns_dcm") != "sns_dcm":
        raise ValueError(
            f"load_pulses reads DCM archives (data.source='sns_dcm'), got source="
            f"{config.source!r}; use load_npz_pulses for 'npz'."
        )
    root = Path(config.dataset_loc)
    if not root.is_dir():
        raise FileNotFoundError(
            f"data.dataset_loc={str(root)!r} is not a folder; it must hold the normal/ and "
            "anomaly/ folders of DCM files."
        )
    cache_dir = config.cache_dir if cache_dir is _FROM_CONFIG else cache_dir
    if stream and cache_dir is None:
        raise ValueError("Streaming traces needs the cache: set data.cache_dir to a folder.")
    params = _Extraction.from_config(config, references)
    started = time.perf_counter()
    ledger = DataLedger()
    files, unlabelled = find_data_files(root, config.max_files)
    for path in unlabelled:
        ledger.add(
            path, UNLABELLED_FOLDER, 0,
            "not under a folder whose name contains 'normal' or 'anomal'", scope="file",
        )
    files = usable_files(files, ledger)
    if not files:
        raise FileNotFoundError(
            f"No DCM files (.gz, .bin, .bin.gz) under a 'normal' or 'anomal*' folder in {root} "
            f"({len(unlabelled)} unlabelled data files found)."
        )
    check_window(files[0][0], params)
    cache = None if cache_dir is None else TraceCache(cache_folder(cache_dir, params))
    for attempt in (1, 2):
        keys, results = _gather(files, params, cache, config.workers, progress)
        if cache is not None:
            results = cache.commit(keys, results)
        try:
            pulses = assemble(files, results, params.shift, params.references, DataLedger(),
                                stream, cache)
            break
        except CacheChecksumError as exc:
            damaged = files_in_rows(files, results, exc)
            if attempt == 2 or not damaged:
                raise
            logger.warning("%s; re-reading %d source file(s) whose rows were damaged: %s",
                           exc, len(damaged), ", ".join(Path(p).name for p in damaged[:5]))
            cache.invalidate(os.path.abspath(p) for p in damaged)
    ledger.extend(pulses.ledger)
    pulses.ledger = ledger
    logger.info(
        "Read %d pulses from %d files in %.1f s (%d skipped pulses, %d ledger entries).",
        len(pulses), len(files), time.perf_counter() - started,
        ledger.total_pulses_skipped, len(ledger),
    )
    return pulses


def check_window(path: Path, params: _Extraction) -> None:
    """Refuse a window that does not fit the traces of `path` (the first file), naming both.

    Otherwise every pulse of the archive would be skipped one by one and the run would fail
    late with "no samples". A first file that cannot be read is left to the ledger.
    """
    try:
        content = read_regular_file(str(path), params.max_file_bytes)
        with ReadStorage(content) as storage:
            for i in range(len(storage)):
                record = storage._record(i, lazy=True)
                if str(record.get("name", "")).endswith(params.var_id):
                    length = int(getattr(record["value"], "size", 0))
                    break
            else:
                return
    except (CorruptFileError, NotRegularFileError, OSError, ValueError, KeyError):
        return
    end = params.begin + params.shift
    if length and end > length:
        raise ValueError(
            f"data.begin={params.begin} + data.shift={params.shift} = {end} samples, but the "
            f"{params.var_id} traces of the first file {path} hold {length} samples; choose a "
            f"window that ends at or before sample {length}."
        )


def cache_folder(cache_dir, params: _Extraction) -> Path:
    """The cache folder of one set of extraction parameters."""
    return Path(cache_dir) / params.digest()


def _gather(files, params: _Extraction, cache: TraceCache | None, workers: int, progress: bool):
    """Keys and results for every file: cache hits first, then the misses read by workers."""
    keys, results, todo = [], [], []
    for i, (path, _) in enumerate(files):
        stat = path.stat()
        key = FileKey(os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
        keys.append(key)
        hit = None if cache is None else cache.lookup(key)
        results.append(hit)
        if hit is None:
            todo.append(i)
    logger.info("%d files: %d cached, %d to read.", len(files), len(files) - len(todo), len(todo))
    jobs = {
        i: (keys[i], params.anomaly_alarm if files[i][1] == ANOMALY else 0, params,
            None if cache is None else cache.pending_path(keys[i]))
        for i in todo
    }
    workers = int(workers) or os.cpu_count() or 1
    show = progress and sys.stderr.isatty()
    with tqdm(
        total=len(files), initial=len(files) - len(todo), unit="file",
        desc="Reading DCM files", disable=not show,
    ) as bar:
        if workers == 1 or len(todo) <= 1:
            for i, job in jobs.items():
                results[i] = _read_file(*job)
                bar.update()
        else:
            with ProcessPoolExecutor(
                max_workers=min(workers, len(todo)), mp_context=_pool_context(),
                initializer=_die_with_parent, initargs=(os.getpid(),),
            ) as pool:
                futures = {pool.submit(_read_file, *job): i for i, job in jobs.items()}
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    bar.update()
    return keys, results


def _die_with_parent(parent_pid: int) -> None:
    """Worker initializer: end this reader when the process that started the build is gone.

    A reader must not outlive a `kill -9` of the run. Linux delivers SIGKILL when the direct
    parent (the forkserver) dies; a watchdog thread also polls the build's own process, which
    covers platforms without that signal and a forkserver that outlives the run.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while True:
            try:
                os.kill(parent_pid, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:
                pass
            time.sleep(1.0)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _pool_context():
    """'forkserver' where available, else 'spawn': never fork a parent that may hold TensorFlow."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
