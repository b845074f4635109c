"""The on-disk cache of extracted windows (HDF5), and `TraceStore`, the lazy array over it.

Extracting windows means gunzipping and parsing every DCM file; the cache makes that a
one-time cost. Per set of extraction parameters (a hash of them names the folder):

    <cache_dir>/<params hash>/
        index.h5                one row per source file: its key (absolute path, size,
                                mtime_ns), where its windows lie (shard, offset, count), its
                                pulse timestamps, skips (JSON) and whole-file error (JSON)
        shard-<id>.h5           `traces` float32 [rows, shift]: many files' windows back to back
                                (with references K > 0 also `references` float32 [rows, K,
                                shift] beside them, and `reference_timestamps_ns` int64
                                [rows, K] in the index: -1 marks an empty slot)
        pending/<sha1>.h5       one worker's result for one source file, before packing

A source file hits when its key still matches its index row, so a changed or added file
invalidates only its own row. Workers write only their own pending files (atomically:
temporary file, then `os.replace`); the parent process alone packs them into a new shard and
rewrites the index atomically, so no two processes ever write one HDF5 file. A warm build
therefore opens one index, stats the sources and reads a few large shards: no gzip at all.

Rows of changed files leave dead rows in old shards; when dead rows outnumber live ones the
shards are compacted into one. Shards no longer referenced are removed (an unknown one, maybe
another process's fresh, not yet indexed shard, only once it is an hour old). One build per cache folder at a time
is the intended use; concurrent builds stay correct but may redo each other's work.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np

from utils.run_folder import atomic_path

logger = logging.getLogger(__name__)

CACHE_FORMAT = 2  # bump when the layout or the extraction rules change
_INDEX = "index.h5"
_PENDING = "pending"
_STALE_S = 3600  # unreferenced shards / pending files older than this are removed
_WINDOWS = ("traces", "references")  # the window datasets of a shard (references: K > 0)


class FileKey(NamedTuple):
    """What identifies one version of a source file."""

    path: str  # absolute
    size: int
    mtime_ns: int


class FileResult(NamedTuple):
    """The extraction result of one source file, wherever its windows are.

    `traces` holds the windows in memory (no cache), `pending` names a worker's entry not yet
    packed, `shard` + `offset` locate them in a shard (relative file name in the cache folder).
    `references` [n, K, shift] (in memory, like `traces`) and `reference_timestamps_ns`
    [n, K] are the in-file reference pulses; None when K = 0.
    """

    n: int
    timestamps_ns: np.ndarray
    skips: list  # [(reason, detail, scope)]
    error: tuple | None  # (reason, detail) when the whole file could not be read
    traces: np.ndarray | None = None
    pending: str | None = None
    shard: str | None = None
    offset: int = 0
    references: np.ndarray | None = None
    reference_timestamps_ns: np.ndarray | None = None


def _atomic_h5(path: Path, write) -> None:
    """Create the HDF5 file `path` by `write(h5)` on a temporary file, then `os.replace`."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        write(h5)


def write_pending(path: str, key: FileKey, result: FileResult) -> FileResult:
    """Worker side: store one file's result as a pending entry; return it without traces."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)

    def write(h5):
        h5.create_dataset("traces", data=result.traces)
        h5.create_dataset("timestamps_ns", data=result.timestamps_ns)
        if result.reference_timestamps_ns is not None:
            h5.create_dataset("references", data=result.references)
            h5.create_dataset("reference_timestamps_ns", data=result.reference_timestamps_ns)
        h5.attrs.update(
            format=CACHE_FORMAT, path=key.path, size=key.size, mtime_ns=key.mtime_ns,
            skips=json.dumps(result.skips), error=json.dumps(result.error),
        )

    _atomic_h5(target, write)
    return result._replace(traces=None, references=None, pending=str(target))


def _read_pending(path: Path, key: FileKey) -> FileResult | None:
    """A pending entry left by an interrupted build, when it matches `key`."""
    if not path.exists():
        return None
    try:
        with h5py.File(path, "r") as h5:
            attrs = h5.attrs
            if (int(attrs["format"]), str(attrs["path"]), int(attrs["size"]),
                    int(attrs["mtime_ns"])) != (CACHE_FORMAT, *key):
                return None
            stamps = h5["timestamps_ns"][()].astype(np.int64)
            skips = [tuple(s) for s in json.loads(attrs["skips"])]
            error = json.loads(attrs["error"])
            ref_stamps = _optional(h5, "reference_timestamps_ns")
    except (OSError, KeyError, ValueError):
        return None
    error = None if error is None else tuple(error)
    return FileResult(len(stamps), stamps, skips, error, pending=str(path),
                      reference_timestamps_ns=ref_stamps)


def _optional(h5, name: str) -> np.ndarray | None:
    """An int64 dataset that only caches with references hold (None when absent)."""
    return h5[name][()].astype(np.int64) if name in h5 else None


class _Row(NamedTuple):
    key: FileKey
    result: FileResult


class TraceCache:
    """One cache folder: look up source files, then `commit` what the workers extracted.

    Example:

    >>> cache = TraceCache("/tmp/cache/abcd")          # doctest: +SKIP
    >>> hit = cache.lookup(key)                        # None on a miss
    >>> results = cache.commit(keys, results)          # pending entries -> one new shard
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        self._rows: dict[str, _Row] | None = None
        self._known: set[str] = set()  # shards this process has seen indexed or written

    # -- lookup -----------------------------------------------------------------------------

    def pending_path(self, key: FileKey) -> str:
        name = hashlib.sha1(key.path.encode()).hexdigest() + ".h5"
        return str(self.folder / _PENDING / name)

    def lookup(self, key: FileKey) -> FileResult | None:
        """The cached result for this version of the file, or None (a miss)."""
        row = self._index().get(key.path)
        if row is not None and row.key == key:
            return row.result
        return _read_pending(Path(self.pending_path(key)), key)

    def _index(self) -> dict[str, _Row]:
        if self._rows is None:
            self._rows = self._read_index()
            self._known |= {row.result.shard for row in self._rows.values() if row.result.shard}
        return self._rows

    def _read_index(self) -> dict[str, _Row]:
        path = self.folder / _INDEX
        if not path.exists():
            return {}
        try:
            with h5py.File(path, "r") as h5:
                if int(h5.attrs["format"]) != CACHE_FORMAT:
                    return {}
                paths = h5["path"].asstr()[()]
                shards = h5["shard"].asstr()[()]
                skips = h5["skips"].asstr()[()]
                errors = h5["error"].asstr()[()]
                size, mtime = h5["size"][()], h5["mtime_ns"][()]
                count, offset = h5["count"][()], h5["offset"][()]
                stamps = h5["timestamps_ns"][()]
                ref_stamps = _optional(h5, "reference_timestamps_ns")
        except (OSError, KeyError, ValueError) as exc:
            logger.warning("Cache index %s is unreadable (%s); rebuilding the cache.", path, exc)
            return {}
        starts = np.concatenate([[0], np.cumsum(count)])
        present = {shard for shard in set(shards) if shard and (self.folder / shard).exists()}
        rows = {}
        for i, p in enumerate(paths):
            if shards[i] and shards[i] not in present:
                continue  # its shard is gone: a miss
            error = json.loads(errors[i])
            result = FileResult(
                int(count[i]), stamps[starts[i] : starts[i + 1]],
                [tuple(s) for s in json.loads(skips[i])], None if error is None else tuple(error),
                shard=shards[i] or None, offset=int(offset[i]),
                reference_timestamps_ns=None if ref_stamps is None
                else ref_stamps[starts[i] : starts[i + 1]],
            )
            rows[p] = _Row(FileKey(p, int(size[i]), int(mtime[i])), result)
        return rows

    # -- commit -----------------------------------------------------------------------------

    def commit(self, keys: Sequence[FileKey], results: Sequence[FileResult]) -> list[FileResult]:
        """Pack pending results into a new shard, update the index; results then name shards."""
        rows = dict(self._index())
        pending = [i for i, r in enumerate(results) if r.pending is not None]
        results = list(results)
        entries = [Path(results[i].pending) for i in pending]
        if pending:
            shard = self._write_shard([results[i] for i in pending])
            offset = 0
            for i in pending:
                n = results[i].n
                results[i] = results[i]._replace(
                    pending=None, shard=shard if n else None, offset=offset if n else 0
                )
                offset += n
        changed = bool(pending)
        for key, result in zip(keys, results, strict=True):
            if key.path not in rows or rows[key.path].key != key:
                rows[key.path] = _Row(key, result)
                changed = True
        seen = {key.path for key in keys}
        for path in [p for p in rows if p not in seen and not os.path.exists(p)]:
            del rows[path]  # its source file is gone
            changed = True
        if changed:
            rows, moved = self._compact(rows)
            if moved:
                results = [rows[key.path].result for key in keys]
            self._write_index(rows)
            self._rows = rows
        for entry in entries:
            _remove(entry)
        self._remove_unreferenced(rows)
        return results

    def _write_shard(self, pending: Sequence[FileResult]) -> str | None:
        total = sum(r.n for r in pending)
        if total == 0:
            return None
        name = f"shard-{uuid.uuid4().hex[:16]}.h5"
        shift = None

        def write(h5):
            nonlocal shift
            datasets = {}
            start = 0
            for result in pending:
                if not result.n:
                    continue
                with h5py.File(result.pending, "r") as entry:
                    blocks = {name: entry[name][()] for name in _WINDOWS if name in entry}
                if not datasets:
                    shift = blocks["traces"].shape[1]
                    datasets = {name: h5.create_dataset(name, shape=(total, *block.shape[1:]),
                                                        dtype=np.float32)
                                for name, block in blocks.items()}
                for name, block in blocks.items():
                    datasets[name][start : start + result.n] = block
                start += result.n
            h5.attrs["format"] = CACHE_FORMAT

        _atomic_h5(self.folder / name, write)
        self._known.add(name)
        return name

    def _compact(self, rows: dict[str, _Row]) -> tuple[dict[str, _Row], bool]:
        """Rewrite all live rows into one shard when dead rows outnumber them."""
        live = sum(row.result.n for row in rows.values())
        stored = 0
        shards = {row.result.shard for row in rows.values() if row.result.shard}
        for shard in shards:
            with h5py.File(self.folder / shard, "r") as h5:
                stored += h5["traces"].shape[0]
        if stored - live <= live:
            return rows, False
        name = f"shard-{uuid.uuid4().hex[:16]}.h5"
        order = [p for p, row in rows.items() if row.result.n]
        offsets = {}

        def write(h5):
            datasets, start = {}, 0
            for path in order:
                result = rows[path].result
                with h5py.File(self.folder / result.shard, "r") as old:
                    blocks = {name: old[name][result.offset : result.offset + result.n]
                              for name in _WINDOWS if name in old}
                if not datasets:
                    datasets = {name: h5.create_dataset(name, shape=(live, *block.shape[1:]),
                                                        dtype=np.float32)
                                for name, block in blocks.items()}
                for name, block in blocks.items():
                    datasets[name][start : start + result.n] = block
                offsets[path] = start
                start += result.n
            h5.attrs["format"] = CACHE_FORMAT

        _atomic_h5(self.folder / name, write)
        self._known.add(name)
        logger.info("Compacted the cache: %d live of %d stored rows.", live, stored)
        compacted = {
            path: row._replace(result=row.result._replace(shard=name, offset=offsets[path]))
            if path in offsets else row
            for path, row in rows.items()
        }
        return compacted, True

    def _write_index(self, rows: dict[str, _Row]) -> None:
        paths = list(rows)
        results = [rows[p].result for p in paths]
        text = h5py.string_dtype()

        def write(h5):
            h5.attrs["format"] = CACHE_FORMAT
            h5.create_dataset("path", data=np.array(paths, dtype=object), dtype=text)
            h5.create_dataset("size", data=np.array([rows[p].key.size for p in paths], np.int64))
            h5.create_dataset(
                "mtime_ns", data=np.array([rows[p].key.mtime_ns for p in paths], np.int64)
            )
            h5.create_dataset("count", data=np.array([r.n for r in results], np.int64))
            h5.create_dataset("offset", data=np.array([r.offset for r in results], np.int64))
            h5.create_dataset(
                "shard", data=np.array([r.shard or "" for r in results], dtype=object), dtype=text
            )
            h5.create_dataset(
                "skips", data=np.array([json.dumps(r.skips) for r in results], dtype=object),
                dtype=text,
            )
            h5.create_dataset(
                "error", data=np.array([json.dumps(r.error) for r in results], dtype=object),
                dtype=text,
            )
            stamps = [r.timestamps_ns for r in results]
            h5.create_dataset(
                "timestamps_ns",
                data=np.concatenate(stamps).astype(np.int64) if stamps else np.zeros(0, np.int64),
            )
            # Only files with pulses hold reference rows (an unreadable file has none).
            ref_stamps = [r.reference_timestamps_ns for r in results if r.n]
            if ref_stamps and all(r is not None for r in ref_stamps):
                h5.create_dataset(
                    "reference_timestamps_ns", data=np.concatenate(ref_stamps).astype(np.int64)
                )

        self.folder.mkdir(parents=True, exist_ok=True)
        _atomic_h5(self.folder / _INDEX, write)

    def _remove_unreferenced(self, rows: dict[str, _Row]) -> None:
        referenced = {row.result.shard for row in rows.values()}
        now = time.time()
        for path in self.folder.glob("shard-*.h5"):
            stale = now - path.stat().st_mtime > _STALE_S
            if path.name not in referenced and (path.name in self._known or stale):
                _remove(path)
        for path in (self.folder / _PENDING).glob("*.h5"):
            if now - path.stat().st_mtime > _STALE_S:
                _remove(path)


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


# ----------------------------------------------------------------------------------------------
# Lazy reading


class TraceStore:
    """Lazy, read-only `[n, shift]` float32 array over cache entries (HDF5 files).

    Pulse `i` is row `row[i]` of the `traces` dataset in `sources[source_index[i]]`. Indexing
    with an int, a slice or an index array reads only those rows, grouped per file, through a
    small LRU of open files; it is thread-safe, so a `tf.data` generator can use it.
    With `slots=K` it reads the `references` dataset instead: a `[n, K, shift]` array.
    """

    def __init__(
        self,
        sources: Sequence[str],
        source_index,
        row,
        shift: int,
        max_open: int = 16,
        slots: int = 0,
    ):
        self.sources = [str(s) for s in sources]
        self.source_index = np.asarray(source_index, dtype=np.int32)
        self.row = np.asarray(row, dtype=np.int64)
        if self.source_index.shape != self.row.shape or self.row.ndim != 1:
            raise ValueError("TraceStore: source_index and row must be 1-D and the same length.")
        self.shift = int(shift)
        self.max_open = int(max_open)
        self.slots = int(slots)
        self.dataset = "references" if self.slots else "traces"
        self.item_shape = (self.slots, self.shift) if self.slots else (self.shift,)
        self._open: OrderedDict[int, h5py.File] = OrderedDict()
        self._lock = threading.Lock()

    dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return int(self.row.size)

    @property
    def ndim(self) -> int:
        return 1 + len(self.item_shape)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.item_shape)

    @property
    def nbytes(self) -> int:
        """Bytes the traces would take in memory."""
        return len(self) * int(np.prod(self.item_shape)) * 4

    def take(self, indices) -> TraceStore:
        """A store of the pulses at `indices` (same files, nothing read)."""
        indices = _as_indices(indices, len(self))
        return TraceStore(
            self.sources, self.source_index[indices], self.row[indices], self.shift, self.max_open,
            self.slots,
        )

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self.read(np.array([key]))[0]
        return self.read(key)

    def read(self, indices) -> np.ndarray:
        """float32 [m, shift] (or [m, K, shift]): the traces at `indices`, in that order."""
        indices = _as_indices(indices, len(self))
        out = np.empty((indices.size, *self.item_shape), dtype=np.float32)
        if indices.size == 0:
            return out
        src = self.source_index[indices]
        order = np.argsort(src, kind="stable")
        cuts = np.flatnonzero(np.diff(src[order])) + 1
        with self._lock:
            for positions in np.split(order, cuts):
                dataset = self._file(int(src[positions[0]]))[self.dataset]
                rows, inverse = np.unique(self.row[indices[positions]], return_inverse=True)
                if rows[-1] - rows[0] + 1 <= 2 * rows.size:  # dense: one contiguous read
                    block = dataset[rows[0] : rows[-1] + 1][rows - rows[0]]
                else:
                    block = dataset[rows]
                out[positions] = block[inverse]
        return out

    def to_array(self, chunk: int = 1024) -> np.ndarray:
        """All traces in memory."""
        out = np.empty(self.shape, dtype=np.float32)
        for start in range(0, len(self), chunk):
            stop = min(start + chunk, len(self))
            out[start:stop] = self.read(np.arange(start, stop))
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        array = self.to_array()
        return array if dtype is None else array.astype(dtype)

    def _file(self, source: int) -> h5py.File:
        handle = self._open.get(source)
        if handle is not None:
            self._open.move_to_end(source)
            return handle
        path = self.sources[source]
        try:
            handle = h5py.File(path, "r")
        except OSError as exc:
            raise OSError(
                f"TraceStore: cannot open cache entry {path} ({exc}); was the cache cleared "
                "while the store was in use? Rebuild the data set."
            ) from exc
        self._open[source] = handle
        while len(self._open) > self.max_open:
            _, oldest = self._open.popitem(last=False)
            oldest.close()
        return handle

    def close(self) -> None:
        """Close the open HDF5 files (they reopen on the next read)."""
        with self._lock:
            while self._open:
                self._open.popitem()[1].close()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_open"] = OrderedDict()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TraceStore(shape={self.shape}, files={len(self.sources)})"


def _as_indices(key, n: int) -> np.ndarray:
    if isinstance(key, slice):
        return np.arange(n)[key]
    key = np.asarray(key)
    if key.dtype == bool:
        if key.shape != (n,):
            raise IndexError(f"boolean index of shape {key.shape} for {n} traces")
        return np.flatnonzero(key)
    if key.ndim != 1 or not np.issubdtype(key.dtype, np.integer):
        raise IndexError(f"index must be a slice or a 1-D integer array, got {key.dtype} {key.shape}")
    key = key.astype(np.int64)
    if key.size and (key.min() < -n or key.max() >= n):
        raise IndexError(f"index out of range for {n} traces")
    return np.where(key < 0, key + n, key)


