"""Join the per-file extraction results of a DCM archive into one time-ordered `PulseSet`.

From memory (no cache) or from the cache shards (read in storage order, or left lazy as a
`TraceStore` when streaming); also maps damaged shard rows back to their source files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_preparation.cache_checksums import CacheChecksumError
from data_preparation.ledger import DataLedger
from data_preparation.pulse_set import PulseSet
from data_preparation.trace_cache import TraceCache
from data_preparation.trace_store import TraceStore


def files_in_rows(files, results, exc: CacheChecksumError) -> list[str]:
    """The source files whose cached rows include the damaged rows of `exc.shard`."""
    name = Path(exc.shard).name
    damaged = []
    for (path, _), result in zip(files, results, strict=True):
        if result.shard == name and result.n:
            rows = np.arange(result.offset, result.offset + result.n)
            if np.isin(rows, exc.rows).any():
                damaged.append(str(path))
    return damaged


def assemble(files, results, shift: int, k: int, ledger: DataLedger, stream: bool, cache
             ) -> PulseSet:
    """Concatenate the per-file results in time order and ledger their skips (windows of
    `shift` samples, `k` in-file references per sample)."""
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
