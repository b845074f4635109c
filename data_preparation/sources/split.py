"""Split the sample contract into train/val/test by `split.method`, whatever the source.

* `time`: oldest train, next val, newest test (needs times; `data_preparation.split.split_indices`).
* `stratified_random`: random, stratified by class.
* `group` (and `config_group`): whole groups (sessions, subjects) per part, groups drawn at
  random (seeded) until each part holds about its fraction of the samples.
* `predefined`: the data's own train/val/test (split column, `split` array or top-level
  folders); with no validation part, it is carved from the training part, stratified.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from data_preparation.ledger import GAP_DROPPED
from data_preparation.sources.contract import PARTS, Samples
from data_preparation.split import split_indices


def split_samples(samples: Samples, config, seed: int) -> dict[str, np.ndarray]:
    """`{"train", "val", "test"}` int64 index arrays (sorted) per `config.method`."""
    n = len(samples)
    method = config.method
    if method == "predefined":
        parts = _predefined(samples, config, seed)
    elif method in ("group", "config_group"):
        parts = _groups(samples.group, config, seed)
    elif method == "time":
        if samples.timestamp_ns is None:
            raise ValueError("split.method=time needs sample times, and this source has none; "
                             "use stratified_random, group or predefined.")
        parts = split_indices(samples.timestamp_ns, samples.label, samples.group, config,
                              seed=seed)
        dropped = parts.pop("dropped")
        for i in dropped:
            samples.ledger.add(samples.ids[i], GAP_DROPPED, 1,
                               "within split.gap_seconds of a part boundary")
    else:  # stratified_random (the config allows no other value)
        parts = split_indices(np.zeros(n, np.int64), samples.label, samples.group,
                              dataclasses.replace(config, method="stratified_random"), seed=seed)
        parts.pop("dropped", None)
    for name in PARTS:
        if len(parts[name]) == 0:
            raise ValueError(f"split ({method}): the {name} part is empty among {n} samples; "
                             "use more data or other fractions.")
    return {name: np.sort(np.asarray(parts[name], dtype=np.int64)) for name in PARTS}


def _predefined(samples: Samples, config, seed: int) -> dict[str, np.ndarray]:
    if samples.split is None:
        raise ValueError("split.method=predefined: the data gives no train/val/test parts (a "
                         "'split' column, a 'split' array, or train/ val/ test/ folders).")
    split = np.asarray(samples.split)
    parts = {name: np.flatnonzero(split == name) for name in PARTS}
    unassigned = int(np.sum(~np.isin(split, PARTS)))
    if unassigned:
        samples.ledger.add("split", "no_split_part", unassigned,
                           "samples without train/val/test in a predefined split")
    if parts["val"].size == 0 and parts["train"].size:
        share = config.val_fraction / (config.train_fraction + config.val_fraction)
        train = parts["train"]
        from sklearn.model_selection import train_test_split

        labels = samples.label[train]
        counts = np.bincount(labels)
        n_classes = int(np.count_nonzero(counts))
        stratify = labels if counts[counts > 0].min() >= 2 else None
        n_val = int(np.ceil(share * train.size))  # as scikit-learn rounds a fractional size
        if stratify is not None:
            # stratified, each part holds at least one of each class (every class has two or
            # more here, so the training part keeps one of each)
            n_val = min(max(n_val, n_classes), train.size - n_classes)
        keep, val = train_test_split(train, test_size=n_val, stratify=stratify,
                                     random_state=seed)
        parts["train"], parts["val"] = keep, val
    return parts


def _groups(groups: np.ndarray, config, seed: int) -> dict[str, np.ndarray]:
    ids, counts = np.unique(groups, return_counts=True)
    if ids.size < 3:
        raise ValueError(f"split (group): needs at least 3 groups, found {ids.size}; use "
                         "stratified_random.")
    order = np.random.default_rng(seed).permutation(ids.size)
    cum = np.cumsum(counts[order]) / counts.sum()
    cut1 = int(np.clip(np.searchsorted(cum, config.train_fraction) + 1, 1, ids.size - 2))
    cut2 = int(np.clip(np.searchsorted(cum, config.train_fraction + config.val_fraction) + 1,
                       cut1 + 1, ids.size - 1))
    chosen = {"train": ids[order[:cut1]], "val": ids[order[cut1:cut2]],
              "test": ids[order[cut2:]]}
    return {name: np.flatnonzero(np.isin(groups, g)) for name, g in chosen.items()}
