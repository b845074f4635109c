"""Input checks shared by the analysis modules: labels are 0/1, scores finite, lengths match."""

from __future__ import annotations

import numpy as np


def check_labels_scores(labels, scores, *, require_both_classes: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Return `(labels int64, scores float64)` as 1-D arrays after validating them.

    Raises ValueError naming the problem: different lengths, no samples, labels other than
    0/1, non-finite scores, or (with `require_both_classes`) a missing class.
    """
    y = _as_vector(labels)
    s = _as_vector(scores)
    if y.ndim != 1 or s.ndim != 1:
        raise ValueError(f"labels and scores must be 1-D; got shapes {np.shape(labels)} and {np.shape(scores)}.")
    if y.shape[0] != s.shape[0]:
        raise ValueError(f"labels and scores must have the same length; got {y.shape[0]} and {s.shape[0]}.")
    if y.shape[0] == 0:
        raise ValueError("labels and scores are empty; need at least one sample.")
    if not np.issubdtype(s.dtype, np.number) or np.issubdtype(s.dtype, np.complexfloating):
        raise ValueError(f"scores must be real numbers; got dtype {s.dtype}.")
    bad_labels = np.setdiff1d(np.unique(y), [0, 1])
    if bad_labels.size:
        raise ValueError(f"labels must be 0 (normal) or 1 (errant); found {bad_labels[:5].tolist()}.")
    s64 = s.astype(np.float64)
    finite = np.isfinite(s64)
    if not finite.all():
        first = int(np.flatnonzero(~finite)[0])
        raise ValueError(
            f"scores must be finite; {int((~finite).sum())} are NaN/inf (first at index {first})."
        )
    y64 = y.astype(np.int64)
    if require_both_classes:
        n_errant = int(y64.sum())
        if n_errant == 0:
            raise ValueError("labels hold no errant samples (label 1); both classes are needed.")
        if n_errant == y64.size:
            raise ValueError("labels hold no normal samples (label 0); both classes are needed.")
    return y64, s64


def _as_vector(values) -> np.ndarray:
    """Array of `values`; a column `(n, 1)` (as `model.predict` returns) becomes `(n,)`."""
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:
        return array[:, 0]
    return array
