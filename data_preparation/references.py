"""The reference rule: which earlier pulses each sample is judged against (pure arrays).

Every new period brings beam configurations the model never saw, so a pulse is judged against
reference pulses of its own configuration (architecture.md, "Reference pulses"). The rule, in
one place for the data pipeline and, later, live scoring:

1. The K pulses just before the sample in its own DCM file (`get_traces(references=K)`:
   well-formed, `Alarm` 0, strictly earlier), right-aligned: slot K-1 is the nearest.
2. Empty slots are filled newest first from the most recent earlier NORMAL samples (label 0)
   of the same configuration group, at most `window_s` before the sample and strictly earlier
   than the oldest in-file reference (so nothing is used twice and slots stay oldest first).
3. A sample with fewer than `min_count` references is reported in `missing` (the pipeline
   ledgers it `no_reference`) or, with `missing="self"`, is its own reference in every slot.
4. Remaining empty slots repeat the oldest filled one (its window, source and timestamp).

Never a later pulse: every reference timestamp is below the sample's (only `self` equals it).

`own_file=False` keeps references out of a run-up: the pulses just before a sample in its file
are the run-up of a precursor that grows over several pulses, and judging the sample against
them cancels the very signal that grows through it. Step 1 is then skipped, and step 2 takes
only normal samples of other acquisitions that ended at least `min_age_s` before the sample's
acquisition began - the same rule for normal and errant samples (references from the sample's
own file for one class and from other acquisitions for the other would leak the label), and
the rule the live engine applies with the same `min_age_s`.

`plan_references` decides, per sample and slot, where the window comes from (`source`,
`row`); `resolve_in_place` writes the windows into the in-file array (in memory), and
`ReferenceView` reads them lazily (streaming from the cache).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

SOURCE_EMPTY, SOURCE_FILE, SOURCE_ARCHIVE, SOURCE_SELF = 0, 1, 2, 3
MISSING_CHOICES = ("skip", "self")
_NS_PER_S = 1_000_000_000


@dataclass
class ReferencePlan:
    """Where each reference slot's window comes from.

    Attributes:
        source: int8 [n, K]: 0 empty, 1 same file, 2 archive, 3 the sample itself.
        timestamp_ns: int64 [n, K]: the reference pulse's time, -1 for empty slots.
        row: int64 [n, K]: source 1: the in-file slot of the same sample holding the window;
            source 2 / 3: the sample whose window it is; -1 for empty slots.
        missing: bool [n]: fewer than `min_count` references (`missing="skip"` only).
    """

    source: np.ndarray
    timestamp_ns: np.ndarray
    row: np.ndarray
    missing: np.ndarray

    def take(self, indices) -> ReferencePlan:
        """The plan of the samples at `indices` (rows of sources 2 / 3 keep their meaning)."""
        indices = np.asarray(indices, dtype=np.int64)
        return dataclasses.replace(
            self, source=self.source[indices], timestamp_ns=self.timestamp_ns[indices],
            row=self.row[indices], missing=self.missing[indices],
        )


def plan_references(
    reference_timestamp_ns,
    timestamp_ns,
    label,
    group,
    *,
    window_s: float,
    min_count: int,
    missing: str = "skip",
    own_file: bool = True,
    acquisition=None,
    min_age_s: float = 0.0,
) -> ReferencePlan:
    """Apply the reference rule (module docstring) to n samples.

    Args:
        reference_timestamp_ns: int64 [n, K]: the in-file references' times, right-aligned,
            -1 for empty slots (`get_traces` output).
        timestamp_ns: int64 [n] sample times; label: [n] 0 normal / 1 errant;
        group: [n] configuration group ids (any integers).
        window_s: archive references lie at most this many seconds before the sample.
        min_count: a sample needs at least this many references.
        missing: "skip" (report in `missing`) or "self" (the sample is its own reference).
        own_file: False: no reference from the sample's own acquisition (module docstring);
            needs `acquisition` [n], the acquisition (file) id of each sample.
        min_age_s: with own_file False, archive references end at least this long before the
            sample's acquisition began.

    Vectorised: one sort of the normal samples by (group, time) and one `searchsorted`, then
    [n, K] array operations; 20k samples take milliseconds.
    """
    in_file = np.asarray(reference_timestamp_ns, dtype=np.int64)
    t = np.asarray(timestamp_ns, dtype=np.int64)
    label = np.asarray(label)
    group = np.asarray(group)
    if in_file.ndim != 2 or in_file.shape[0] != t.shape[0]:
        raise ValueError(
            f"plan_references: reference_timestamp_ns has shape {in_file.shape}, expected "
            f"[n={t.shape[0]}, K]."
        )
    if label.shape != t.shape or group.shape != t.shape:
        raise ValueError(
            f"plan_references: label {label.shape} and group {group.shape} must match "
            f"timestamp_ns {t.shape}."
        )
    if missing not in MISSING_CHOICES:
        raise ValueError(f"plan_references: missing={missing!r}; expected one of {MISSING_CHOICES}.")
    n, k = in_file.shape
    filled = in_file >= 0
    count = filled.sum(axis=1)
    slots = np.arange(k)
    if np.any(filled != (slots[None, :] >= k - count[:, None])):
        raise ValueError("plan_references: in-file references must be right-aligned "
                         "(empty slots first, -1).")
    if np.any(in_file[filled] >= np.repeat(t, count)):
        raise ValueError("plan_references: an in-file reference is not earlier than its sample.")
    if own_file:
        # archive references are older than the oldest in-file one (nothing used twice)
        oldest = in_file[np.arange(n), np.minimum(k - count, k - 1)] if k else t
        boundary = np.where(count > 0, np.minimum(oldest, t), t)
    else:
        if acquisition is None or np.asarray(acquisition).shape != t.shape:
            raise ValueError("plan_references: own_file=False needs one acquisition id per sample.")
        filled[:] = False
        count = np.zeros(n, dtype=np.int64)
        boundary = _acquisition_start(np.asarray(acquisition), t) - int(round(min_age_s * _NS_PER_S))
    source = np.where(filled, SOURCE_FILE, SOURCE_EMPTY).astype(np.int8)
    row = np.where(filled, slots[None, :], -1).astype(np.int64)
    stamps = np.where(filled, in_file, -1)
    if n and k:
        _fill_from_archive(source, row, stamps, count, t, label, group, window_s, boundary)
    total = (source != SOURCE_EMPTY).sum(axis=1)
    short = total < min_count
    if missing == "self":
        source[short] = SOURCE_SELF
        row[short] = np.flatnonzero(short)[:, None]
        stamps[short] = t[short, None]
        total[short] = k
        short = np.zeros(n, dtype=bool)
    _pad(source, row, stamps, total)
    return ReferencePlan(source, stamps, row, short)


def _acquisition_start(acquisition: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per sample: the earliest sample time of its acquisition."""
    ids, inverse = np.unique(acquisition, return_inverse=True)
    start = np.full(ids.size, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(start, inverse.reshape(-1), t)
    return start[inverse.reshape(-1)]


def _fill_from_archive(source, row, stamps, count, t, label, group, window_s, boundary) -> None:
    """Step 2 of the rule, in place: newest first from the normal samples of the group earlier
    than each sample's `boundary`."""
    n, k = source.shape
    _, g = np.unique(group, return_inverse=True)
    g = g.astype(np.int64)
    # Rank r(x) = number of samples strictly earlier than time x; for a sample time t_j and
    # any time b, t_j < b exactly when r(t_j) < r(b). Keys group * (n + 1) + rank order the
    # normal samples by (group, time) without int64 overflow of raw nanoseconds.
    ordered = np.sort(t)
    candidates = np.flatnonzero(label == 0)
    keys = g[candidates] * (n + 1) + np.searchsorted(ordered, t[candidates], side="left")
    order = np.argsort(keys, kind="stable")
    candidates, keys = candidates[order], keys[order]
    query = g * (n + 1) + np.searchsorted(ordered, boundary, side="left")
    pos = np.searchsorted(keys, query, side="left")  # candidates before pos: earlier, or lower group
    step = np.arange(1, k + 1)[None, :]  # m-th most recent candidate
    index = pos[:, None] - step
    j = candidates[np.clip(index, 0, None)] if candidates.size else np.zeros_like(index)
    window_ns = int(round(window_s * _NS_PER_S))
    valid = (
        (index >= 0)
        & (g[j] == g[:, None])
        & (t[:, None] - t[j] <= window_ns)
        & (step <= (k - count)[:, None])
    )
    valid = np.logical_and.accumulate(valid, axis=1)  # stop at the first gap (sorted anyway)
    rows, m = np.nonzero(valid)
    slot = k - count[rows] - m - 1
    source[rows, slot] = SOURCE_ARCHIVE
    row[rows, slot] = j[rows, m]
    stamps[rows, slot] = t[j[rows, m]]


def _pad(source, row, stamps, total) -> None:
    """Step 4, in place: empty slots of a sample with some references repeat its oldest one."""
    n, k = source.shape
    some = (total > 0) & (total < k)
    if not some.any():
        return
    first = (k - total[some])[:, None]
    pick = np.maximum(np.arange(k)[None, :], first)
    for array in (source, row, stamps):
        array[some] = np.take_along_axis(array[some], pick, axis=1)


def resolve_in_place(plan: ReferencePlan, in_file: np.ndarray, windows, chunk: int = 1024
                     ) -> np.ndarray:
    """Write the planned windows into `in_file` ([n, K, ...], the in-file references).

    Archive and self slots are read from `windows` (the samples' traces: an array, or
    anything indexable by an index array), padding slots copy their in-file slot. Returns
    `in_file`; no full-size copy is made.
    """
    n, k = plan.source.shape
    if in_file.shape[:2] != (n, k):
        raise ValueError(f"resolve_in_place: in_file has shape {in_file.shape}, expected "
                         f"[{n}, {k}, ...] like the plan.")
    for slot in range(k):
        source, row = plan.source[:, slot], plan.row[:, slot]
        padded = np.flatnonzero((source == SOURCE_FILE) & (row != slot))
        in_file[padded, slot] = in_file[padded, row[padded]]
        other = np.flatnonzero(source >= SOURCE_ARCHIVE)
        for start in range(0, other.size, chunk):
            part = other[start : start + chunk]
            in_file[part, slot] = np.asarray(windows[row[part]], dtype=in_file.dtype)
        in_file[source == SOURCE_EMPTY, slot] = 0
    return in_file


class ReferenceView:
    """Lazy [n, K, ...] reference windows, for traces streamed from the cache.

    In-file slots are read from `in_file` ([n, K, ...]: a `TraceStore` or an array), archive
    and self slots from `windows` (the traces of the samples the plan was made on, kept whole
    so the plan's rows stay valid after `take`).
    """

    def __init__(self, in_file, windows, plan: ReferencePlan):
        self.in_file, self.windows, self.plan = in_file, windows, plan
        if len(in_file) != plan.source.shape[0]:
            raise ValueError(f"ReferenceView: {len(in_file)} in-file rows for a plan of "
                             f"{plan.source.shape[0]} samples.")

    dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return int(self.plan.source.shape[0])

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *tuple(self.in_file.shape[1:]))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes the references would take in memory."""
        return int(np.prod(self.shape)) * 4

    def take(self, indices) -> ReferenceView:
        """The references of the samples at `indices` (nothing read)."""
        indices = np.asarray(indices, dtype=np.int64)
        in_file = (self.in_file.take(indices) if hasattr(self.in_file, "take")
                   and not isinstance(self.in_file, np.ndarray) else self.in_file[indices])
        return ReferenceView(in_file, self.windows, self.plan.take(indices))

    def read(self, indices) -> np.ndarray:
        """float32 [m, K, ...]: the reference windows of the samples at `indices`."""
        indices = np.asarray(indices, dtype=np.int64)
        out = np.asarray(self.in_file[indices], dtype=np.float32)
        resolve_in_place(self.plan.take(indices), out, self.windows)
        return out

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self.read(np.array([key]))[0]
        if isinstance(key, slice):
            return self.read(np.arange(len(self))[key])
        return self.read(key)

    def to_array(self, chunk: int = 256) -> np.ndarray:
        out = np.empty(self.shape, dtype=np.float32)
        for start in range(0, len(self), chunk):
            out[start : start + chunk] = self.read(np.arange(start, min(start + chunk, len(self))))
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        array = self.to_array()
        return array if dtype is None else array.astype(dtype)

    def __repr__(self) -> str:
        return f"ReferenceView(shape={self.shape})"


class EmptySlots:
    """Lazy zeros `[n, K, ...]`: the in-file slots of a `ReferenceView` when no reference is
    taken from the sample's file (`own_file=False` beside a history, whose windows the in-file
    extraction then holds); every filled slot comes from `windows`."""

    dtype = np.dtype(np.float32)

    def __init__(self, n: int, slots: int, item_shape: tuple[int, ...]):
        self.n, self.slots, self.item_shape = int(n), int(slots), tuple(item_shape)

    def __len__(self) -> int:
        return self.n

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.n, self.slots, *self.item_shape)

    def take(self, indices) -> EmptySlots:
        return EmptySlots(np.asarray(indices).size, self.slots, self.item_shape)

    def __getitem__(self, indices) -> np.ndarray:
        return np.zeros((np.asarray(indices).size, self.slots, *self.item_shape), np.float32)


def source_counts(source: np.ndarray) -> dict[str, int]:
    """Samples by where their references came from: all from the same file, some from the
    archive, the sample itself, none."""
    source = np.asarray(source)
    if source.ndim != 2 or source.shape[1] == 0:
        return {"same_file": 0, "archive": 0, "self": 0, "none": int(source.shape[0])}
    archive = (source == SOURCE_ARCHIVE).any(axis=1)
    own = (source == SOURCE_SELF).any(axis=1)
    none = (source == SOURCE_EMPTY).all(axis=1)
    return {
        "same_file": int((~archive & ~own & ~none).sum()),
        "archive": int(archive.sum()),
        "self": int(own.sum()),
        "none": int(none.sum()),
    }
