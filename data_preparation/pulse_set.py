"""`PulseSet`: the pulses every archive loader returns (DCM files or windowed `.npz` arrays)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from data_preparation.ledger import DataLedger
from data_preparation.trace_store import TraceStore


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
