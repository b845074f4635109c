"""Rolling-origin evaluation, part 1: cut an archive's samples into contiguous time blocks
(acquisitions kept whole) and the folds that train only on the past."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

FIRST_TEST_BLOCK = 2  # 0-based: every fold trains on at least two blocks of the past


def _acquisition_order(timestamp_ns, acquisition) -> tuple[np.ndarray, np.ndarray]:
    """Acquisitions in order of their first pulse, and each one's sample indices (time order).

    Without `acquisition` (npz windows) every sample is its own acquisition.
    """
    ts = np.asarray(timestamp_ns, dtype=np.int64)
    acq = np.arange(ts.size) if acquisition is None else np.asarray(acquisition)
    ids, inverse = np.unique(acq, return_inverse=True)
    first = np.full(ids.size, np.iinfo(np.int64).max)
    np.minimum.at(first, inverse, ts)
    rank = np.empty(ids.size, dtype=np.int64)
    rank[np.lexsort((ids, first))] = np.arange(ids.size)
    return rank[inverse], np.lexsort((ts, rank[inverse]))


def cut_blocks(timestamp_ns, acquisition, n_blocks: int) -> list[np.ndarray]:
    """`n_blocks` contiguous time blocks of about equal sample counts, acquisitions kept whole.

    Acquisitions are ordered by their first pulse; block `b` ends at the acquisition boundary
    closest to `n * (b + 1) / n_blocks` samples. Each block's indices are in
    time order. ValueError when a block would be empty (too few acquisitions).
    """
    if n_blocks < 1:
        raise ValueError(f"cut_blocks: n_blocks must be >= 1, got {n_blocks}")
    rank, order = _acquisition_order(timestamp_ns, acquisition)
    n = order.size
    sorted_rank = rank[order]
    # Positions where a new acquisition starts in `order`; a cut may only fall there.
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_rank) != 0) + 1, n]
    cuts = [0]
    for b in range(1, n_blocks + 1):
        target = n * b / n_blocks
        cut = n if b == n_blocks else _nearest(starts, target)
        cuts.append(max(cut, cuts[-1]))
    blocks = [np.sort(order[a:b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    empty = [i for i, block in enumerate(blocks) if block.size == 0]
    if empty:
        raise ValueError(
            f"cut_blocks: blocks {empty} of {n_blocks} are empty: {n} samples in "
            f"{int(sorted_rank.max()) + 1 if n else 0} acquisitions; use fewer blocks or a "
            "longer archive")
    return [block[np.argsort(np.asarray(timestamp_ns)[block], kind="stable")] for block in blocks]


def split_newest(indices, timestamp_ns, acquisition, fraction: float) -> tuple[np.ndarray,
                                                                                np.ndarray]:
    """(older, newest): the newest `fraction` of `indices` by count, acquisitions kept whole."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"split_newest: fraction must be in (0, 1), got {fraction}")
    indices = np.asarray(indices, dtype=np.int64)
    acq = None if acquisition is None else np.asarray(acquisition)[indices]
    rank, order = _acquisition_order(np.asarray(timestamp_ns)[indices], acq)
    n = order.size
    sorted_rank = rank[order]
    starts = np.r_[np.flatnonzero(np.diff(sorted_rank) != 0) + 1, n]
    interior = starts[(starts > 0) & (starts < n)]
    if interior.size == 0:
        raise ValueError(f"split_newest: cannot cut {n} samples in "
                         f"{int(sorted_rank.max()) + 1 if n else 0} acquisitions at "
                         f"fraction {fraction}: one side would be empty")
    cut = _nearest(interior, n * (1.0 - fraction))
    return np.sort(indices[order[:cut]]), np.sort(indices[order[cut:]])


def _nearest(boundaries: np.ndarray, target: float) -> int:
    """The acquisition boundary closest to `target` (the earlier one on a tie)."""
    return int(boundaries[np.argmin(np.abs(boundaries - target))])


def make_folds(blocks: Sequence[np.ndarray], timestamp_ns, acquisition, *, val_fraction: float,
               last_folds: int | None = None) -> list[dict]:
    """One fold per test block `k >= FIRST_TEST_BLOCK`: train/val from blocks `< k`, test `k`.

    `last_folds` keeps only the newest folds (the quick profile). Index arrays are sorted by
    position; "test" is in time order (online recalibration walks it in order).
    """
    folds = []
    for k in range(FIRST_TEST_BLOCK, len(blocks)):
        past = np.concatenate(blocks[:k])
        train, val = split_newest(past, timestamp_ns, acquisition, val_fraction)
        folds.append({"block": k, "train": train, "val": val, "test": blocks[k]})
    if last_folds is not None:
        folds = folds[-last_folds:] if last_folds > 0 else []
    if not folds:
        raise ValueError(f"make_folds: no fold: {len(blocks)} blocks (a fold needs a test "
                         f"block at index >= {FIRST_TEST_BLOCK}), last_folds={last_folds}")
    return folds

