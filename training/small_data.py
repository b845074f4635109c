"""How many epochs a samples job trains when its validation part is too small to decide.

Early stopping on validation macro F1 needs a validation part whose F1 moves for a reason: with
m samples in a class, one sample changes that class's recall by 1/m, so with m = 2 (a 40-session
set's 8-session validation part) the epoch-to-epoch changes are noise and training stops at a
lucky epoch (measured on BasicMotions: stopped at 13 of 40, test accuracy 0.33). The rule
(`train.epoch_choice: auto`): validation decides only when every class has at least
`train.min_val_per_class` (default 10: one sample then moves a recall by at most 0.1)
validation samples; otherwise the epoch count is chosen by stratified k-fold cross-validation on
the training part (`cv`): each fold trains `train.epochs` epochs and records its held-out macro
F1 (and loss) after every epoch; the count with the best mean held-out macro F1 (ties: the lower
mean held-out loss, then the earlier epoch) is used to train one model on the whole training
part. `fixed` trains `train.epochs` epochs without looking at validation. Folds are drawn from
the run seed, so the choice is the same on every rerun with the same seed.

This module decides and averages; the flow (`training.samples_flow`) trains the fold models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

METHODS = ("validation", "cv", "fixed")


@dataclass(frozen=True)
class EpochChoice:
    """What was chosen, why, and (cv) the mean held-out curve it was chosen from."""

    method: str  # validation | cv | fixed
    reason: str
    epochs: int | None  # cv: the chosen count; fixed: train.epochs; validation: None (early stop)
    folds: int = 0
    mean_macro_f1: tuple[float, ...] = ()  # cv: per epoch, mean over folds
    mean_loss: tuple[float, ...] = ()

    def to_dict(self) -> dict:
        return asdict(self) | {"mean_macro_f1": list(self.mean_macro_f1),
                               "mean_loss": list(self.mean_loss)}

    def summary(self) -> str:
        """One line for the log and the report."""
        if self.method == "validation":
            return f"early stopping on validation macro F1 ({self.reason})"
        if self.method == "fixed":
            return f"a fixed schedule of {self.epochs} epochs ({self.reason})"
        best = self.mean_macro_f1[self.epochs - 1]
        return (f"{self.epochs} epochs, chosen by {self.folds}-fold cross-validation on the "
                f"training part (mean held-out macro F1 {best:.3f}) ({self.reason})")


def small_validation(val_per_class: Sequence[int], train_per_class: Sequence[int],
                     min_val_per_class: int) -> str | None:
    """Why the validation part is too small to decide anything (a class of the training part
    has fewer than `min_val_per_class` validation samples), or None when it is large enough.

    >>> small_validation([2, 7], [20, 21], 10)
    'the validation part holds 9 samples, 2 in its smallest class (< train.min_val_per_class=10)'
    """
    val = np.asarray(val_per_class, dtype=np.int64)
    present = np.asarray(train_per_class, dtype=np.int64) > 0
    fewest = int(val[present].min()) if present.any() else 0
    if fewest >= min_val_per_class:
        return None
    return (f"the validation part holds {int(val.sum())} samples, {fewest} in its smallest class "
            f"(< train.min_val_per_class={min_val_per_class})")


def decide_method(setting: str, val_per_class: Sequence[int], train_per_class: Sequence[int],
                  min_val_per_class: int, cv_folds: int) -> tuple[str, str]:
    """(method, reason) for `train.epoch_choice = setting` and the parts' class counts."""
    train = np.asarray(train_per_class, dtype=np.int64)
    fewest_train = int(train[train > 0].min()) if (train > 0).any() else 0
    if setting == "validation":
        return "validation", "train.epoch_choice=validation"
    if setting == "fixed":
        return "fixed", "train.epoch_choice=fixed"
    too_small = small_validation(val_per_class, train_per_class, min_val_per_class)
    if setting == "auto" and too_small is None:
        fewest_val = int(np.min(np.asarray(val_per_class)[train > 0]))
        return "validation", (f"every class has at least {min_val_per_class} validation samples "
                              f"(fewest {fewest_val})")
    why = "train.epoch_choice=cv" if setting == "cv" else f"{too_small}: too few to pick an epoch"
    if fewest_train < 2:
        return "fixed", (f"{why}; cross-validation needs 2 training samples per class, the "
                         f"smallest class has {fewest_train}")
    return "cv", why


def fold_indices(labels: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified, seeded (train, held-out) positions into `labels`; fewer folds when the
    smallest class has fewer samples than `folds` (at least 2)."""
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels)
    counts = np.bincount(labels)
    k = int(min(folds, counts[counts > 0].min()))
    if k < 2:
        raise ValueError(f"cross-validation needs 2 samples per class; the smallest class has "
                         f"{counts[counts > 0].min()}")
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(np.asarray(a), np.asarray(b))
            for a, b in splitter.split(np.zeros(labels.size), labels)]


def choose_epochs(macro_f1: np.ndarray, loss: np.ndarray) -> int:
    """The epoch count (1-based) with the best mean held-out macro F1 over folds [folds, epochs];
    ties go to the lower mean held-out loss, then to the earlier epoch."""
    f1 = np.nanmean(np.asarray(macro_f1, dtype=np.float64), axis=0)
    mean_loss = np.nanmean(np.asarray(loss, dtype=np.float64), axis=0)
    best = np.flatnonzero(np.isclose(f1, np.nanmax(f1), rtol=0, atol=1e-9))
    return int(best[np.argmin(mean_loss[best])]) + 1


def cv_choice(reason: str, macro_f1: np.ndarray, loss: np.ndarray) -> EpochChoice:
    """The `EpochChoice` of per-fold held-out curves [folds, epochs]."""
    macro_f1, loss = np.asarray(macro_f1, np.float64), np.asarray(loss, np.float64)
    return EpochChoice("cv", reason, choose_epochs(macro_f1, loss), folds=macro_f1.shape[0],
                       mean_macro_f1=tuple(float(v) for v in np.nanmean(macro_f1, axis=0)),
                       mean_loss=tuple(float(v) for v in np.nanmean(loss, axis=0)))
