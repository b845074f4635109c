"""Split pulses into train / validation / test parts, before anything is fitted.

Every statistic (scalers, SMOTE, undersampling, class weights) is fitted on the training part
only, so the split comes first; `split_indices` returns the index arrays the callers hand on.
Methods and their guarantees are in `split_indices`' docstring.
"""

from __future__ import annotations

import numpy as np

PARTS = ("train", "val", "test")


def split_indices(
    timestamp_ns, label, groups, config, seed: int = 0, acquisition=None
) -> dict[str, np.ndarray]:
    """Indices of the train, val and test parts (each in time order) per `config.method`.

    Methods (`SplitConfig.method`):

    * `"time"`: the oldest `train_fraction` of pulses (by count, in time order) train, the next
      `val_fraction` validate, the newest rest test. With `acquisition` (an id per pulse, e.g.
      its source file index) a cut moves forward to the next acquisition, so the pulses of one
      DCM file never straddle two parts. With `gap_seconds > 0`, every pulse within
      that many seconds of a boundary (the first pulse time of the later part) is dropped.
    * `"config_group"`: whole configuration groups, ordered by their first pulse, are cut into
      three runs whose sizes best match the fractions; a group never straddles parts.
    * `"stratified_random"`: random, stratified by label (overstates accuracy on time series:
      neighbouring pulses land in different parts).

    Returns:
        `{"train", "val", "test", "dropped"}` int64 index arrays; `dropped` holds the pulses the
        gap removed (empty otherwise) for the caller to ledger.

    Raises:
        ValueError: when a part would be empty, saying how many pulses (and groups) there are.
    """
    timestamp_ns = np.asarray(timestamp_ns, dtype=np.int64)
    label = np.asarray(label)
    n = timestamp_ns.size
    if label.shape != (n,):
        raise ValueError(f"split_indices: label has shape {label.shape}, expected ({n},).")
    order = np.argsort(timestamp_ns, kind="stable")
    if config.method == "time":
        part, dropped = _time_parts(timestamp_ns, order, config, acquisition)
    elif config.method == "config_group":
        part, dropped = _group_parts(np.asarray(groups), timestamp_ns, order, config)
    elif config.method == "stratified_random":
        part, dropped = _stratified_parts(label, config, seed)
    else:
        raise ValueError(
            f"split.method={config.method!r} is not known; use one of "
            "'time', 'config_group', 'stratified_random'."
        )
    out = {name: order[part[order] == k] for k, name in enumerate(PARTS)}
    out["dropped"] = order[dropped[order]]
    for name in PARTS:
        if out[name].size == 0:
            raise ValueError(
                f"split ({config.method}): the {name} part is empty; there are {n} pulses"
                f" ({out['dropped'].size} dropped by the gap) with train_fraction="
                f"{config.train_fraction}, val_fraction={config.val_fraction}. Use more data, "
                "other fractions or a smaller split.gap_seconds."
            )
    return out


def _cut_counts(n: int, config) -> tuple[int, int]:
    """Pulse counts at the train/val and val/test boundaries."""
    first = int(round(n * config.train_fraction))
    second = int(round(n * (config.train_fraction + config.val_fraction)))
    return first, second


def _between_acquisitions(sorted_acquisition: np.ndarray | None, cut: int) -> int:
    """The first index at or after `cut` that starts a new acquisition (or n).

    One DCM file holds consecutive 60 Hz pulses, 16.7 ms apart and nearly identical; a cut
    between two of them would put the same beam in two parts.
    """
    if sorted_acquisition is None:
        return cut
    n = sorted_acquisition.size
    while 0 < cut < n and sorted_acquisition[cut] == sorted_acquisition[cut - 1]:
        cut += 1
    return cut


def _time_parts(timestamp_ns, order, config, acquisition=None) -> tuple[np.ndarray, np.ndarray]:
    n = timestamp_ns.size
    first, second = _cut_counts(n, config)
    sorted_acquisition = None if acquisition is None else np.asarray(acquisition)[order]
    first = _between_acquisitions(sorted_acquisition, first)
    second = max(first, _between_acquisitions(sorted_acquisition, second))
    part = np.empty(n, dtype=np.int8)
    part[order[:first]] = 0
    part[order[first:second]] = 1
    part[order[second:]] = 2
    dropped = np.zeros(n, dtype=bool)
    gap_ns = int(round(config.gap_seconds * 1e9))
    if gap_ns > 0:
        for cut in (first, second):
            if 0 < cut < n:
                boundary = timestamp_ns[order[cut]]
                dropped |= np.abs(timestamp_ns - boundary) < gap_ns
    part[dropped] = -1
    return part, dropped


def _group_parts(groups, timestamp_ns, order, config) -> tuple[np.ndarray, np.ndarray]:
    n = timestamp_ns.size
    if groups.shape != (n,):
        raise ValueError(f"split_indices: groups has shape {groups.shape}, expected ({n},).")
    # Groups in order of their first pulse, and their sizes in that order.
    ids, first_pos, inverse = np.unique(groups[order], return_index=True, return_inverse=True)
    rank = np.empty(ids.size, dtype=np.int64)
    rank[np.argsort(first_pos, kind="stable")] = np.arange(ids.size)
    sizes = np.bincount(rank[inverse], minlength=ids.size)
    if ids.size < 3:
        raise ValueError(
            f"split (config_group): needs at least 3 configuration groups, found {ids.size} "
            f"among {n} pulses. Use split.method=time."
        )
    cum = np.concatenate([[0], np.cumsum(sizes)])  # cum[c]: pulses before group c
    target_1, target_2 = _cut_counts(n, config)
    # First cut in [1, G-2], second in [c1+1, G-1], each closest to its target.
    c1 = 1 + int(np.argmin(np.abs(cum[1 : ids.size - 1] - target_1)))
    c2 = c1 + 1 + int(np.argmin(np.abs(cum[c1 + 1 : ids.size] - target_2)))
    group_part = np.where(rank < c1, 0, np.where(rank < c2, 1, 2)).astype(np.int8)
    part = np.empty(n, dtype=np.int8)
    part[order] = group_part[rank[inverse]]
    return part, np.zeros(n, dtype=bool)


def _stratified_parts(label, config, seed) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    n = label.size
    idx = np.arange(n)
    rest_share = config.val_fraction / (1.0 - config.train_fraction)
    try:
        train, rest = train_test_split(
            idx, train_size=config.train_fraction, stratify=label, random_state=seed
        )
        val, test = train_test_split(
            rest, train_size=rest_share, stratify=label[rest], random_state=seed
        )
    except ValueError as exc:
        counts = dict(zip(*np.unique(label, return_counts=True), strict=True))
        raise ValueError(
            f"split (stratified_random): cannot split {n} pulses with label counts "
            f"{ {int(k): int(v) for k, v in counts.items()} }: {exc}"
        ) from exc
    part = np.empty(n, dtype=np.int8)
    part[train], part[val], part[test] = 0, 1, 2
    return part, np.zeros(n, dtype=bool)

