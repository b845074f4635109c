"""Pulses from a DCM archive: find the files, extract the windows, cache them, ledger the rest.

`load_pulses` walks `data.dataset_loc`, labels each file by its nearest "normal" / "anomal"
folder, and applies the `get_traces` rules of `enterprise_tools.data_utils` to every file, in
parallel worker processes (started with "forkserver" or "spawn", never "fork", because the
parent may already hold TensorFlow). Extracted windows, timestamps and skips are cached on disk
(`data_preparation.trace_cache`), keyed by file path, size, mtime and the extraction
parameters, so a warm rebuild reads no gzip at all and a changed or added file is re-read alone.

Damaged and non-DCM files are never fatal: they, and every skipped pulse, go to the ledger.
`load_npz_pulses` reads the other data source, windowed arrays in an `.npz`.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tqdm.auto import tqdm

from data_preparation.ledger import (
    CORRUPT_FILE,
    FILE_TOO_LARGE,
    NON_FINITE_TRACE,
    NOT_A_DCM_FILE,
    NOT_A_REGULAR_FILE,
    UNLABELLED_FOLDER,
    UNREADABLE_LINK,
    DataLedger,
)
from data_preparation.trace_cache import (
    CACHE_FORMAT,
    CacheChecksumError,
    FileKey,
    FileResult,
    TraceCache,
    TraceStore,
    write_pending,
)
from enterprise_tools.data_utils import (
    HEADER,
    CorruptFileError,
    FileTooLargeError,
    QualityCut,
    ReadStorage,
    decompress,
    get_traces,
)

logger = logging.getLogger(__name__)

DATA_SUFFIXES = (".gz", ".bin")  # ".bin.gz" ends with ".gz"
NORMAL, ANOMALY = 0, 1
_GZIP_MAGIC = b"\x1f\x8b"
_FROM_CONFIG = object()  # sentinel: take cache_dir from the config


# ----------------------------------------------------------------------------------------------
# Results


@dataclass
class PulseSet:
    """The pulses of an archive, sorted by time (stable).

    Attributes:
        traces: float32 [n, shift] array, or a `TraceStore` reading the cache lazily.
        timestamp_ns: int64 [n] pulse times (ns since the Unix epoch, UTC).
        label: int8 [n], 1 for an errant-beam precursor, 0 for a normal pulse.
        file_index: int32 [n] index into `files`.
        files: the file table (paths as str).
        ledger: every skipped file and pulse.
        settings: float [n, k] settings stored with the pulses (npz source only), else None.
        settings_names: the k settings names (npz source only).
        references: float32 [n, K, shift] in-file reference windows (`get_traces`
            references; a `TraceStore` when streaming), or None when none were asked for.
        reference_timestamp_ns: int64 [n, K] their times, -1 for empty slots (None with them).
    """

    traces: np.ndarray | TraceStore
    timestamp_ns: np.ndarray
    label: np.ndarray
    file_index: np.ndarray
    files: list[str]
    ledger: DataLedger = field(default_factory=DataLedger)
    settings: np.ndarray | None = None
    settings_names: tuple[str, ...] = ()
    references: np.ndarray | TraceStore | None = None
    reference_timestamp_ns: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.timestamp_ns.size)


# ----------------------------------------------------------------------------------------------
# Finding and labelling files


def folder_label(path: Path, root: Path) -> int | None:
    """Label from the nearest folder whose name holds "anomal" (1) or "normal" (0), else None.

    Folders between `root` and the file count nearest first, then `root`'s own name.
    """
    parts = list(path.relative_to(root).parent.parts)[::-1] + [root.name]
    for part in parts:
        name = part.lower()
        if "anomal" in name:
            return ANOMALY
        if "normal" in name:
            return NORMAL
    return None


def find_data_files(
    root, max_files: int | None = None
) -> tuple[list[tuple[Path, int]], list[Path]]:
    """Data files under `root` (sorted by relative path) with their labels, and unlabelled ones.

    `max_files` keeps the first N files of each class.
    """
    root = Path(root)
    found: list[Path] = []
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        found.extend(Path(folder) / n for n in names if n.lower().endswith(DATA_SUFFIXES))
    found.sort(key=lambda p: p.relative_to(root).as_posix())
    labelled, unlabelled = [], []
    per_class = {NORMAL: 0, ANOMALY: 0}
    for path in found:
        label = folder_label(path, root)
        if label is None:
            unlabelled.append(path)
        elif max_files is None or per_class[label] < max_files:
            per_class[label] += 1
            labelled.append((path, label))
    return labelled, unlabelled


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


def _read_regular(path: str, max_bytes: int) -> _Content:
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
            raise _NotRegular(f"not a regular file ({_kind(info.st_mode)})")
        if info.st_size > max_bytes:
            raise FileTooLargeError(path, max_bytes)
        raw = handle.read(max_bytes + 1)
    return _Content(decompress(raw, path, max_bytes), path)


class _NotRegular(Exception):
    """A path that is not a regular file (FIFO, socket, device, folder)."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a regular file"


def _extract(path: str, alarm: int, params: _Extraction) -> FileResult:
    """Apply the get_traces rules to one file; data problems become the result's error."""
    quality = None if params.quality_cut is None else QualityCut(*params.quality_cut)
    try:
        content = _read_regular(path, params.max_file_bytes)
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
    except _NotRegular as exc:
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
    finite = np.isfinite(traces).all(axis=1)
    if references is not None:  # a reference is scaled and fed like the trace itself
        finite &= np.isfinite(references).all(axis=tuple(range(1, references.ndim)))
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
    files = _usable_files(files, ledger)
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
            pulses = _assemble(files, results, params, DataLedger(), stream, cache)
            break
        except CacheChecksumError as exc:
            damaged = _files_in_rows(files, results, exc)
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


def _usable_files(files, ledger: DataLedger) -> list[tuple[Path, int]]:
    """The files that are (links to) regular files; the rest are ledgered, not read.

    A dangling link or a link loop is `unreadable_link`; a FIFO, socket or device that carries
    a data-file name is `not_a_regular_file` (opening a FIFO would block the reader forever).
    """
    usable = []
    for path, label in files:
        try:
            info = os.stat(path)  # follows links: ELOOP / ENOENT for loops and dangling links
        except OSError as exc:
            reason = UNREADABLE_LINK if os.path.islink(path) else CORRUPT_FILE
            ledger.add(path, reason, 0, f"{exc.strerror or exc}", scope="file")
            continue
        if not stat.S_ISREG(info.st_mode):
            ledger.add(path, NOT_A_REGULAR_FILE, 0, _kind(info.st_mode), scope="file")
            continue
        usable.append((path, label))
    return usable


def check_window(path: Path, params: _Extraction) -> None:
    """Refuse a window that does not fit the traces of `path` (the first file), naming both.

    Otherwise every pulse of the archive would be skipped one by one and the run would fail
    late with "no samples". A first file that cannot be read is left to the ledger.
    """
    try:
        content = _read_regular(str(path), params.max_file_bytes)
        with ReadStorage(content) as storage:
            for i in range(len(storage)):
                record = storage._record(i, lazy=True)
                if str(record.get("name", "")).endswith(params.var_id):
                    length = int(getattr(record["value"], "size", 0))
                    break
            else:
                return
    except (CorruptFileError, _NotRegular, OSError, ValueError, KeyError):
        return
    end = params.begin + params.shift
    if length and end > length:
        raise ValueError(
            f"data.begin={params.begin} + data.shift={params.shift} = {end} samples, but the "
            f"{params.var_id} traces of the first file {path} hold {length} samples; choose a "
            f"window that ends at or before sample {length}."
        )


def _files_in_rows(files, results, exc: CacheChecksumError) -> list[str]:
    """The source files whose cached rows include the damaged rows of `exc.shard`."""
    name = Path(exc.shard).name
    damaged = []
    for (path, _), result in zip(files, results, strict=True):
        if result.shard == name and result.n:
            rows = np.arange(result.offset, result.offset + result.n)
            if np.isin(rows, exc.rows).any():
                damaged.append(str(path))
    return damaged


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


def _assemble(files, results, params: _Extraction, ledger: DataLedger, stream: bool, cache
              ) -> PulseSet:
    """Concatenate the per-file results in time order and ledger their skips."""
    shift, k = params.shift, params.references
    for (path, _), result in zip(files, results, strict=True):
        if result.error is not None:
            ledger.add(path, result.error[0], 0, result.error[1], scope="file")
        for reason, detail, scope in result.skips:
            ledger.add(path, reason, 1 if scope == "pulse" else 0, detail, scope=scope)
    counts = np.array([r.n for r in results], dtype=np.int64)
    file_index = np.repeat(np.arange(len(files), dtype=np.int32), counts)
    label = np.repeat(np.array([lab for _, lab in files], dtype=np.int8), counts)
    timestamp_ns = np.concatenate([r.timestamps_ns for r in results]).astype(np.int64)
    order = np.argsort(timestamp_ns, kind="stable")
    references = reference_stamps = None
    if cache is None:
        traces = _fill_from_results(results, counts, order, (shift,))
        if k:
            references = _fill_from_results(results, counts, order, (k, shift), "references")
    else:
        store = _store(results, counts, shift, cache)
        traces = store.take(order) if stream else _fill_from_store(store, order)
        if k:
            # The references live beside the windows in the same shard rows.
            refs = TraceStore(store.sources, store.source_index, store.row, shift, slots=k)
            references = refs.take(order) if stream else _fill_from_store(refs, order)
    if k:
        reference_stamps = np.concatenate(
            [np.full((0, k), -1, np.int64)]
            + [np.reshape(r.reference_timestamps_ns, (r.n, k)) for r in results if r.n]
        ).astype(np.int64)[order]
    return PulseSet(
        traces=traces,
        timestamp_ns=timestamp_ns[order],
        label=label[order],
        file_index=file_index[order],
        files=[str(path) for path, _ in files],
        ledger=ledger,
        references=references,
        reference_timestamp_ns=reference_stamps,
    )


def _store(results, counts, shift: int, cache: TraceCache) -> TraceStore:
    """A TraceStore over the shards, pulses in file order."""
    shards = sorted({r.shard for r in results if r.n})
    slot = {name: i for i, name in enumerate(shards)}
    source = np.repeat([slot.get(r.shard, -1) for r in results], counts).astype(np.int32)
    starts = np.repeat([r.offset for r in results], counts)
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return TraceStore([str(cache.folder / s) for s in shards], source, starts + within, shift)


def _fill_from_store(store: TraceStore, order) -> np.ndarray:
    """One in-memory array in time order, read shard by shard in storage order."""
    destination = np.empty(order.size, dtype=np.int64)
    destination[order] = np.arange(order.size)
    traces = np.empty(store.shape, dtype=np.float32)
    rows = max(1, 2**25 // max(1, store.nbytes // max(1, len(store))))  # ~32 MB per read
    for chunk in np.array_split(np.arange(len(store)), max(1, len(store) // rows)):
        traces[destination[chunk]] = store.read(chunk)
    store.close()
    return traces


def _fill_from_results(results, counts, order, item_shape: tuple, attr: str = "traces"
                       ) -> np.ndarray:
    """One float32 array in time order from in-memory results (no second full-size copy)."""
    destination = np.empty(order.size, dtype=np.int64)
    destination[order] = np.arange(order.size)
    traces = np.empty((order.size, *item_shape), dtype=np.float32)
    start = 0
    for result, count in zip(results, counts, strict=True):
        if count:
            traces[destination[start : start + count]] = getattr(result, attr)
        start += count
    return traces


# ----------------------------------------------------------------------------------------------
# Windowed arrays (data.source = "npz")


def load_npz_pulses(path) -> PulseSet:
    """Pulses from an `.npz` of windowed arrays (read with `allow_pickle=False`).

    Required: `traces` float [n, L] or [n, L, C], `label` (0/1) [n], `timestamp_ns` int [n].
    Optional: `settings` float [n, k] with `settings_names` str [k]; `references` float
    [n, K, L(, C)] with `reference_timestamp_ns` int [n, K] (-1: empty slot), the windows
    each sample is judged against. Sorted by time on return.
    """
    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read as an .npz archive ({exc}).") from exc
    with archive:
        missing = [k for k in ("traces", "label", "timestamp_ns") if k not in archive.files]
        if missing:
            raise KeyError(
                f"{path}: missing array(s) {missing}; found {sorted(archive.files)}. Expected "
                "traces [n, L] or [n, L, C], label [n], timestamp_ns [n]."
            )
        try:
            arrays = {name: archive[name] for name in archive.files}
        except ValueError as exc:
            raise ValueError(f"{path}: holds object arrays, which are not allowed ({exc}).") from exc
    traces, label, stamps = arrays["traces"], arrays["label"], arrays["timestamp_ns"]
    if traces.ndim not in (2, 3) or not np.issubdtype(traces.dtype, np.number):
        raise ValueError(
            f"{path}: traces must be numeric [n, L] or [n, L, C], got {traces.dtype} {traces.shape}."
        )
    n = traces.shape[0]
    for name, array in (("label", label), ("timestamp_ns", stamps)):
        if array.shape != (n,):
            raise ValueError(f"{path}: {name} has shape {array.shape}, expected ({n},) like traces.")
    if not np.issubdtype(stamps.dtype, np.integer):
        raise ValueError(f"{path}: timestamp_ns must be integers (ns), got {stamps.dtype}.")
    bad = np.setdiff1d(np.unique(label), [0, 1])
    if bad.size:
        raise ValueError(f"{path}: label must be 0 or 1, found {bad.tolist()[:5]}.")
    settings, names = _npz_settings(path, arrays, n)
    for name, array in (("traces", traces), ("settings", settings)):
        if array is not None and n and not np.isfinite(array).all():
            rows = np.flatnonzero(~np.isfinite(array.reshape(n, -1)).all(axis=1))
            raise ValueError(
                f"{path}: {name} of record {int(rows[0])} hold NaN or inf ({rows.size} record(s)); "
                "expected finite numbers.")
    references, reference_stamps = _npz_references(path, arrays, traces.shape)
    if references is not None and n and not np.isfinite(references).all():
        rows = np.flatnonzero(~np.isfinite(references.reshape(n, -1)).all(axis=1))
        raise ValueError(f"{path}: references of record {int(rows[0])} hold NaN or inf "
                         f"({rows.size} record(s)); expected finite numbers.")
    order = np.argsort(stamps, kind="stable")
    return PulseSet(
        traces=traces.astype(np.float32)[order],
        timestamp_ns=stamps.astype(np.int64)[order],
        label=label.astype(np.int8)[order],
        file_index=np.zeros(n, dtype=np.int32),
        files=[str(path)],
        ledger=DataLedger(),
        settings=None if settings is None else settings[order],
        settings_names=names,
        references=None if references is None else references[order],
        reference_timestamp_ns=None if reference_stamps is None else reference_stamps[order],
    )


def _npz_references(path, arrays, shape) -> tuple[np.ndarray | None, np.ndarray | None]:
    if "references" not in arrays:
        return None, None
    references, stamps = arrays["references"], arrays.get("reference_timestamp_ns")
    n = shape[0]
    if references.ndim != len(shape) + 1 or references.shape[0] != n or \
            references.shape[2:] != shape[1:] or not np.issubdtype(references.dtype, np.number):
        raise ValueError(
            f"{path}: references must be numeric [n={n}, K, {', '.join(map(str, shape[1:]))}] "
            f"like traces, got {references.dtype} {references.shape}."
        )
    k = references.shape[1]
    if stamps is None or stamps.shape != (n, k) or not np.issubdtype(stamps.dtype, np.integer):
        got = "none" if stamps is None else f"{stamps.dtype} {stamps.shape}"
        raise ValueError(
            f"{path}: references need reference_timestamp_ns int [n={n}, K={k}] (-1 for an "
            f"empty slot), got {got}."
        )
    return references.astype(np.float32), stamps.astype(np.int64)


def _npz_settings(path, arrays, n: int) -> tuple[np.ndarray | None, tuple[str, ...]]:
    if "settings" not in arrays:
        return None, ()
    settings = arrays["settings"]
    if settings.ndim != 2 or settings.shape[0] != n or not np.issubdtype(settings.dtype, np.number):
        raise ValueError(
            f"{path}: settings must be numeric [n={n}, k], got {settings.dtype} {settings.shape}."
        )
    k = settings.shape[1]
    if "settings_names" in arrays:
        names = arrays["settings_names"]
        if names.shape != (k,) or names.dtype.kind not in "US":
            raise ValueError(
                f"{path}: settings_names must be {k} strings, got {names.dtype} {names.shape}."
            )
        return settings.astype(np.float64), tuple(str(x) for x in names.astype(str))
    raise KeyError(f"{path}: has settings but no settings_names (the {k} column names).")
