"""Row checksums of the trace cache: the CRC32 each shard row is written with and checked against.

Shared by the cache writer (`trace_cache`) and the lazy reader (`trace_store`); a mismatch is a
`CacheChecksumError` naming the shard and rows, and `mark_damaged` flags the shard for rebuild.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np

# each window dataset's per-row CRC32 dataset
SUMS = {"traces": "crc32", "references": "references_crc32"}


class CacheChecksumError(OSError):
    """Rows of a cache shard whose bytes no longer match the checksum written with them."""

    def __init__(self, shard: str, rows):
        self.shard = str(shard)
        self.rows = np.asarray(rows, dtype=np.int64)
        shown = ", ".join(str(r) for r in self.rows[:5]) + (" ..." if self.rows.size > 5 else "")
        super().__init__(
            f"cache shard {self.shard}: {self.rows.size} row(s) fail their CRC32 checksum "
            f"(rows {shown}); the shard is damaged. Delete the cache folder or rebuild the data set."
        )


def mark_damaged(shard: str | os.PathLike) -> None:
    """Leave `<shard>.damaged` beside a shard that failed its checksum: the next build treats
    the shard as gone and re-reads its files (a streamed training cannot rebuild mid-fit)."""
    try:
        Path(f"{shard}.damaged").touch()
    except OSError:
        pass  # a read-only cache: the error raised still names the shard


def row_checksums(traces: np.ndarray) -> np.ndarray:
    """uint32 [rows]: the CRC32 of each row's float32 bytes (what a shard stores per row)."""
    block = np.ascontiguousarray(traces, dtype=np.float32)
    return np.array([zlib.crc32(row.tobytes()) for row in block], dtype=np.uint32)


def verify_rows(shard: str, first_row: int, block: np.ndarray, stored: np.ndarray) -> None:
    """Raise `CacheChecksumError` when any row of `block` differs from its stored checksum."""
    bad = np.flatnonzero(row_checksums(block) != np.asarray(stored, dtype=np.uint32))
    if bad.size:
        raise CacheChecksumError(shard, bad + first_row)
