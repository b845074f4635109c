"""The on-disk cache of extracted windows (HDF5): look files up, pack workers' results, clean up.

Extracting windows means gunzipping and parsing every DCM file; the cache makes that a
one-time cost. Per set of extraction parameters (a hash of them names the folder):

    <cache_dir>/<params hash>/
        index.h5                one row per source file: its key (absolute path, size,
                                mtime_ns), where its windows lie (shard, offset, count), its
                                pulse timestamps, skips (JSON) and whole-file error (JSON)
        shard-<id>.h5           `traces` float32 [rows, shift]: many files' windows back to back,
                                and `crc32` uint32 [rows]: each row's checksum, verified on read
                                (with references K > 0 also `references` float32 [rows, K,
                                shift] and `references_crc32` beside them, and
                                `reference_timestamps_ns` int64 [rows, K] in the index: -1
                                marks an empty slot)
        pending/<sha1>-<writer>.h5  one worker's result for one source file, before packing
        .lock                   taken (flock) while a build packs a shard and rewrites the index

A source file hits when its key still matches its index row, so a changed or added file
invalidates only its own row. Workers write only their own pending files (atomically:
temporary file, then `os.replace`), named after the build that started them (host, process,
random id), so two builds never touch each other's entries; the parent process alone packs them
into a new shard and rewrites the index atomically, holding the folder's lock while it re-reads
the index, merges its rows in and writes it back, so concurrent builders never lose each other's
rows or delete each other's files. A warm build therefore opens one index, stats the sources
and reads a few large shards: no gzip at all. Every row read is checked against its CRC32; a
mismatch raises `CacheChecksumError` naming the shard and rows, and the loader re-reads the
source files whose rows were damaged (and logs it).

Rows of changed files leave dead rows in old shards; when dead rows outnumber live ones the
shards are compacted into one. Shards no longer referenced are removed (an unknown one only
once it is an hour old); a pending entry of another build only once its process is gone (same
host) or it is a week old. Concurrent builds stay correct but may redo each other's work.

Neighbours with one job each: `cache_checksums` (row CRC32s, `CacheChecksumError`),
`cache_locks` (the folder's locks and pending-entry writers) and `trace_store`
(`TraceStore`, the lazy array over the shards); their names still import from here.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np

from data_preparation.cache_checksums import SUMS, row_checksums, verify_rows
from data_preparation.cache_locks import (
    hold_reader_lock,
    host_name,
    locked,
    sole_user,
    writer_gone,
    writer_pid,
)
from utils.run_folder import atomic_path

logger = logging.getLogger(__name__)

__all__ = ["CACHE_FORMAT", "FileKey", "FileResult", "TraceCache", "write_pending"]

CACHE_FORMAT = 3  # bump when the layout or the extraction rules change (3: row checksums)
_INDEX = "index.h5"
_PENDING = "pending"
_LOCK = ".lock"
_WINDOWS = ("traces", "references")  # the window datasets of a shard (references: K > 0)
_STORED = ("traces", "crc32", "references", "references_crc32")
_STALE_S = 3600  # unreferenced shards older than this are removed
_PENDING_STALE_S = 7 * 86400  # another host's pending entries older than this are removed
_FREE_MARGIN_BYTES = 64 << 20  # HDF5 metadata and the index rewrite need some room too


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
        h5.create_dataset("crc32", data=row_checksums(result.traces))
        h5.create_dataset("timestamps_ns", data=result.timestamps_ns)
        if result.reference_timestamps_ns is not None:
            h5.create_dataset("references", data=result.references)
            h5.create_dataset("references_crc32", data=row_checksums(result.references))
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
        # This build's pending entries carry its host, process id and a random id, so two
        # builds sharing the folder never write, pack or delete each other's entries.
        self._writer = f"{host_name()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        self._invalid: set[str] = set()  # rows found damaged: replaced at the next commit

    # -- lookup -----------------------------------------------------------------------------

    def pending_path(self, key: FileKey) -> str:
        """Where this build's worker stores `key`'s result before packing."""
        return str(self.folder / _PENDING / f"{_path_hash(key)}-{self._writer}.h5")

    def lookup(self, key: FileKey) -> FileResult | None:
        """The cached result for this version of the file, or None (a miss).

        Besides the index, a pending entry left by a build that is no longer running (an
        interrupted one) counts; a live build's entries are its own business.
        """
        row = self._index().get(key.path)
        if row is not None and row.key == key:
            return row.result
        for entry in sorted((self.folder / _PENDING).glob(f"{_path_hash(key)}-*.h5")):
            if writer_gone(entry) or writer_pid(entry) == os.getpid():
                found = _read_pending(entry, key)
                if found is not None:
                    return found
        return None

    def invalidate(self, paths) -> None:
        """Forget the index rows of these source files (their next lookup is a miss)."""
        rows = self._index()
        for path in paths:
            rows.pop(str(path), None)
            self._invalid.add(str(path))

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
        present = {shard for shard in set(shards) if shard and (self.folder / shard).exists()
                   and not (self.folder / f"{shard}.damaged").exists()}
        for shard in sorted(set(shards) - present):
            if shard and (self.folder / f"{shard}.damaged").exists():
                logger.warning("Cache shard %s failed its checksum earlier; re-reading its files.",
                               self.folder / shard)
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
        """Pack pending results into a new shard, update the index; results then name shards.

        Holds the folder's lock throughout and merges into the index as it is on disk now, so
        rows another build committed meanwhile are kept.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        hold_reader_lock(self.folder)
        with locked(self.folder / _LOCK):
            self._rows = None  # re-read: another build may have committed since our lookup
            rows = dict(self._index())
            for path in self._invalid:
                rows.pop(path, None)
            self._invalid.clear()
            return self._commit_locked(rows, keys, results)

    def _commit_locked(self, rows, keys, results) -> list[FileResult]:
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
        fresh = set(pending)
        for i, (key, result) in enumerate(zip(keys, results, strict=True)):
            if i in fresh or key.path not in rows or rows[key.path].key != key:
                rows[key.path] = _Row(key, result)
                changed = True
            else:  # a hit: where the index says its rows are now (another build may have compacted)
                results[i] = rows[key.path].result
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
        _check_free_space(self.folder, sum(os.path.getsize(r.pending) for r in pending if r.n))
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
                    blocks = {name: entry[name][()] for name in _STORED if name in entry}
                if not datasets:
                    shift = blocks["traces"].shape[1]
                    datasets = {name: h5.create_dataset(name, shape=(total, *block.shape[1:]),
                                                        dtype=block.dtype)
                                for name, block in blocks.items()}
                for name, block in blocks.items():
                    datasets[name][start : start + result.n] = block
                start += result.n
            h5.attrs["format"] = CACHE_FORMAT

        _atomic_h5(self.folder / name, write)
        self._known.add(name)
        return name

    def _compact(self, rows: dict[str, _Row]) -> tuple[dict[str, _Row], bool]:
        """Rewrite all live rows into one shard when dead rows outnumber them.

        Skipped while another process uses the folder: it may be reading the old shards.
        """
        live = sum(row.result.n for row in rows.values())
        stored = 0
        shards = {row.result.shard for row in rows.values() if row.result.shard}
        for shard in shards:
            with h5py.File(self.folder / shard, "r") as h5:
                stored += h5["traces"].shape[0]
        if stored - live <= live or not sole_user(self.folder):
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
                              for name in _STORED if name in old}
                for name in _WINDOWS:
                    if name in blocks:
                        verify_rows(str(self.folder / result.shard), result.offset,
                                     blocks[name], blocks[SUMS[name]])
                if not datasets:
                    datasets = {name: h5.create_dataset(name, shape=(live, *block.shape[1:]),
                                                        dtype=block.dtype)
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
        sole = sole_user(self.folder)  # another process may still read an old shard
        for path in self.folder.glob("shard-*.h5") if sole else ():
            stale = now - path.stat().st_mtime > _STALE_S
            damaged = Path(f"{path}.damaged")
            if damaged.exists() and path.name not in referenced:
                _remove(path)
                _remove(damaged)
            elif path.name not in referenced and (path.name in self._known or stale):
                _remove(path)
        for path in (self.folder / _PENDING).glob("*.h5"):
            try:
                age = now - path.stat().st_mtime
            except FileNotFoundError:
                continue
            if (age > _STALE_S and writer_gone(path)) or age > _PENDING_STALE_S:
                _remove(path)


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _check_free_space(folder: Path, needed: int) -> None:
    """Refuse a shard the disk cannot hold, before writing a byte of it (one clear line)."""
    free = shutil.disk_usage(folder).free
    if free < needed + _FREE_MARGIN_BYTES:
        raise OSError(errno.ENOSPC, f"not enough free space for a new cache shard ({needed} bytes "
                      f"needed, {free} free); the cache is unchanged. Free space or set "
                      "data.cache_dir elsewhere", str(folder))

def _path_hash(key: FileKey) -> str:
    return hashlib.sha1(key.path.encode()).hexdigest()
