"""`TraceStore`: a lazy, read-only array over the windows of trace-cache shards (HDF5).

It reads only the rows asked for, checks each against its CRC32, and can be pickled into
`tf.data` workers (open files are not carried along).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import h5py
import numpy as np

from data_preparation.cache_checksums import SUMS, CacheChecksumError, mark_damaged, row_checksums


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
                source = int(src[positions[0]])
                handle = self._file(source)
                dataset, sums = handle[self.dataset], handle[SUMS[self.dataset]]
                rows, inverse = np.unique(self.row[indices[positions]], return_inverse=True)
                if rows[-1] - rows[0] + 1 <= 2 * rows.size:  # dense: one contiguous read
                    block = dataset[rows[0] : rows[-1] + 1][rows - rows[0]]
                    crc = sums[rows[0] : rows[-1] + 1][rows - rows[0]]
                else:
                    block, crc = dataset[rows], sums[rows]
                bad = np.flatnonzero(row_checksums(block) != crc)
                if bad.size:
                    mark_damaged(self.sources[source])
                    raise CacheChecksumError(self.sources[source], rows[bad])
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
