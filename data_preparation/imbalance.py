"""Class imbalance handling on the training part only: class weights, SMOTE, undersampling.

Errant pulses are rare (a few per thousand), so the training part is rebalanced after the split
and after the scalers are fitted; validation and test keep their natural class shares so their
figures say what to expect in operation.
"""

from __future__ import annotations

import math

import numpy as np


def _class_counts(labels) -> tuple[int, int]:
    labels = np.asarray(labels)
    bad = np.setdiff1d(np.unique(labels), [0, 1])
    if bad.size:
        raise ValueError(f"labels must be 0 or 1, found {bad.tolist()}.")
    positives = int(np.count_nonzero(labels == 1))
    return labels.size - positives, positives


def class_weights(labels) -> dict[int, float]:
    """Balanced weights `n / (2 * n_class)` for the training labels, as `{0: w0, 1: w1}`."""
    negatives, positives = _class_counts(labels)
    if negatives == 0 or positives == 0:
        raise ValueError(
            f"class_weights: the training part needs both classes, found {negatives} normal and "
            f"{positives} errant pulses."
        )
    n = negatives + positives
    return {0: n / (2.0 * negatives), 1: n / (2.0 * positives)}


def smote(x_flat, y, ratio: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Oversample the minority class of the training part with SMOTE to `ratio` minority/majority.

    `x_flat` is the in-memory training matrix (`[trace | settings]` flattened per pulse); the
    synthetic rows lie between training rows only. Returns `(x_resampled, y_resampled)`, the
    originals first. When the ratio already holds, the input is returned unchanged.
    """
    if not isinstance(x_flat, np.ndarray):
        raise TypeError(
            "smote needs the training data in memory (a NumPy array), got "
            f"{type(x_flat).__name__}. Set train.streaming=false, or use "
            "scaling.imbalance=class_weight or undersample for streamed data."
        )
    from imblearn.over_sampling import SMOTE

    y = np.asarray(y)
    negatives, positives = _class_counts(y)
    minority, majority = sorted((negatives, positives))
    if minority == 0:
        raise ValueError("smote: the training part has only one class.")
    if minority / majority >= ratio:
        return x_flat, y
    neighbours = min(5, minority - 1)
    if neighbours < 1:
        raise ValueError(f"smote: needs at least 2 minority pulses in training, found {minority}.")
    sampler = SMOTE(sampling_strategy=ratio, k_neighbors=neighbours, random_state=seed)
    x_res, y_res = sampler.fit_resample(x_flat, y)
    return np.asarray(x_res, dtype=x_flat.dtype), np.asarray(y_res, dtype=y.dtype)


def undersample(indices, labels, ratio: float, seed: int) -> np.ndarray:
    """Drop random majority pulses until minority/majority >= `ratio`; returns kept indices.

    `labels[i]` is the label of `indices[i]`. The kept indices come back sorted.
    """
    indices = np.asarray(indices)
    labels = np.asarray(labels)
    if labels.shape != indices.shape:
        raise ValueError(
            f"undersample: labels {labels.shape} must match indices {indices.shape} one to one."
        )
    negatives, positives = _class_counts(labels)
    minority_class = 1 if positives <= negatives else 0
    minority = min(negatives, positives)
    if minority == 0:
        raise ValueError("undersample: the training part has only one class.")
    majority_pos = np.flatnonzero(labels != minority_class)
    keep_majority = min(majority_pos.size, int(math.ceil(minority / ratio)))
    rng = np.random.default_rng(seed)
    kept = rng.choice(majority_pos, size=keep_majority, replace=False)
    keep = np.concatenate([np.flatnonzero(labels == minority_class), kept])
    return np.sort(indices[keep])
