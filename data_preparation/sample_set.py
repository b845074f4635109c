"""`SampleSet`: the model-ready samples of the SNS flows, with their references and history.

`data_preparation.pipeline.prepare_samples` builds it; the split, the scalers, `tf.data`
(`training.dataset`) and the reports read it. Rows are taken together (`take`), in memory or
lazily from the cache, so a sample never parts from its references and history.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from data_preparation.ledger import DataLedger
from data_preparation.references import ReferenceView
from data_preparation.trace_store import TraceStore


@dataclass
class SampleSet:
    """Model-ready samples in time order, with where they came from and what was dropped.

    Attributes:
        traces: float32 [n, L] (or [n, L, C] from npz) array, or a `TraceStore` (streaming).
        settings: float32 [n, k] beam settings in force at each pulse ([n, 0] without settings).
        settings_names: the k PV names.
        label: int8 [n]; timestamp_ns: int64 [n]; group: int64 [n] configuration group.
        file_index: int32 [n] into `files`; ledger: every skipped file and pulse.
        references: float32 [n, K, L] (or [n, K, L, C]) reference windows each sample is
            judged against (a lazy `ReferenceView` when streaming), None when off.
        reference_timestamp_ns: int64 [n, K] their times (-1 empty); reference_source: int8
            [n, K] where each came from (0 empty, 1 same file, 2 archive, 3 the sample itself).
        history: float32 [n, N, L] the N pulses just before each sample in its own file
            (right-aligned, zeros in empty slots; a `TraceStore` when streaming), None when off.
        history_timestamp_ns: int64 [n, N] their times, -1 for empty slots.
    """

    traces: np.ndarray | TraceStore
    settings: np.ndarray
    settings_names: tuple[str, ...]
    label: np.ndarray
    timestamp_ns: np.ndarray
    group: np.ndarray
    file_index: np.ndarray
    files: list[str]
    ledger: DataLedger = field(default_factory=DataLedger)
    one_file_per_acquisition: bool = True  # DCM: a file is one acquisition; npz: windows apart
    references: np.ndarray | ReferenceView | None = None
    reference_timestamp_ns: np.ndarray | None = None
    reference_source: np.ndarray | None = None
    history: np.ndarray | TraceStore | None = None
    history_timestamp_ns: np.ndarray | None = None

    @property
    def acquisition(self) -> np.ndarray | None:
        """An id per sample that a time split must not cut through (None: every sample apart)."""
        return self.file_index if self.one_file_per_acquisition else None

    def __len__(self) -> int:
        return int(self.label.size)

    @property
    def streaming(self) -> bool:
        """True when the traces are read lazily from the cache."""
        return isinstance(self.traces, TraceStore)

    @property
    def n_references(self) -> int:
        """K, the reference pulses per sample (0 without references)."""
        return 0 if self.references is None else int(self.references.shape[1])

    @property
    def n_history(self) -> int:
        """N, the history pulses per sample (0 without a history)."""
        return 0 if self.history is None else int(self.history.shape[1])

    @property
    def history_count(self) -> np.ndarray | None:
        """int32 [n]: filled history slots per sample (the last ones); None without a history."""
        if self.history_timestamp_ns is None:
            return None
        return (self.history_timestamp_ns >= 0).sum(axis=1).astype(np.int32)

    @property
    def trace_shape(self) -> tuple[int, int]:
        """(length, channels) of one trace."""
        shape = tuple(self.traces.shape[1:])
        return (shape[0], shape[1] if len(shape) > 1 else 1)

    def take(self, indices) -> SampleSet:
        """The samples at `indices` (same file table and ledger)."""
        indices = np.asarray(indices, dtype=np.int64)
        traces = (
            self.traces.take(indices) if self.streaming else self.traces[indices]
        )
        references = self.references
        if isinstance(references, ReferenceView):
            references = references.take(indices)
        elif references is not None:
            references = references[indices]
        history = self.history
        if isinstance(history, TraceStore):
            history = history.take(indices)
        elif history is not None:
            history = history[indices]
        return dataclasses.replace(
            self,
            traces=traces,
            settings=self.settings[indices],
            label=self.label[indices],
            timestamp_ns=self.timestamp_ns[indices],
            group=self.group[indices],
            file_index=self.file_index[indices],
            references=references,
            reference_timestamp_ns=_rows_or_none(self.reference_timestamp_ns, indices),
            reference_source=_rows_or_none(self.reference_source, indices),
            history=history,
            history_timestamp_ns=_rows_or_none(self.history_timestamp_ns, indices),
        )

    def ledger_pulses(self, indices, reason: str, detail: str = "") -> None:
        """Ledger the pulses at `indices` as skipped for `reason`, one entry per file."""
        ledger_pulses(self.ledger, self.files, self.file_index[np.asarray(indices)], reason, detail)


def _rows_or_none(array, indices):
    return None if array is None else array[indices]


def ledger_pulses(ledger: DataLedger, files, file_index, reason: str, detail: str = "") -> None:
    """Add one ledger entry per file with the number of its pulses in `file_index`."""
    file_index = np.asarray(file_index, dtype=np.int64)
    counts = np.bincount(file_index[file_index >= 0], minlength=len(files))
    for i in np.flatnonzero(counts):
        ledger.add(files[i], reason, int(counts[i]), detail)
