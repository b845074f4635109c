"""The sample contract every data source returns, and the label helpers the sources share.

A `Samples` holds model inputs by name (arrays with the sample axis first), integer labels with
their class names, optional int64 times, a group id per sample (file, session, subject), an id
per sample saying where it came from, an optional predefined part per sample, and the ledger of
what was skipped. Splitting, scaling, balancing and augmentation work on this and never ask
which source it came from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from data_preparation.ledger import DataLedger
from utils.text import listing

PARTS = ("train", "val", "test")
UNLABELLED = -1  # label of a sample scored by --predict without a known class

# Ledger reasons of the non-SNS sources.
MISSING_COLUMNS = "missing_columns"
NO_TIMESTAMP = "no_timestamp"
UNREADABLE_FILE = "unreadable_file"
UNLABELLED_FILE = "unlabelled_file"
UNKNOWN_CLASS = "unknown_class"
EMPTY_SAMPLE = "empty_sample"
DUPLICATE_FILE = "duplicate_file"


@dataclass
class Samples:
    """Model-ready samples of any source.

    Attributes:
        inputs: input name -> array [n, ...]: "trace" float32 [n, L, C] (sequences, zero-padded),
            "features" float32 [n, F], "text" str [n], "settings" float32 [n, k].
        label: int64 [n] class index into `class_names` (UNLABELLED for unknown).
        class_names: the class of each index, in index order.
        group: int64 [n] grouping id (session, subject, file) for split.method=group.
        ids: str [n] where each sample came from (file, file#row).
        timestamp_ns: int64 [n] or None when the source has no times.
        split: str [n] of "train"/"val"/"test"/"" given by the data, or None.
        layout: what a run must reuse to read new files the same way (channels, length, ...).
        ledger: every skipped file or sample with its reason.
    """

    inputs: dict[str, np.ndarray]
    label: np.ndarray
    class_names: tuple[str, ...]
    group: np.ndarray
    ids: np.ndarray
    timestamp_ns: np.ndarray | None = None
    split: np.ndarray | None = None
    layout: dict = field(default_factory=dict)
    ledger: DataLedger = field(default_factory=DataLedger)

    def __post_init__(self) -> None:
        n = len(self.label)
        for name, array in {**self.inputs, "group": self.group, "ids": self.ids}.items():
            if len(array) != n:
                raise ValueError(f"Samples: {name} has {len(array)} rows, labels have {n}.")

    def __len__(self) -> int:
        return int(len(self.label))

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def take(self, indices) -> Samples:
        """The samples at `indices` (same class names, layout and ledger)."""
        idx = np.asarray(indices, dtype=np.int64)
        return dataclasses.replace(
            self,
            inputs={k: v[idx] for k, v in self.inputs.items()},
            label=self.label[idx],
            group=self.group[idx],
            ids=self.ids[idx],
            timestamp_ns=None if self.timestamp_ns is None else self.timestamp_ns[idx],
            split=None if self.split is None else self.split[idx],
        )


def encode_labels(
    raw: Sequence, where: str, class_names: Sequence[str] | None = None
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Raw labels (strings or integers) -> (int64 class indices, class names).

    Without `class_names`, the classes are the sorted distinct labels (integers sort as numbers,
    so 0/1 stay 0/1). With them (a trained run), a label outside them is an error naming
    `where`: a trained model cannot score a class it never saw.
    """
    values = np.asarray(raw)
    if values.dtype.kind == "f":
        if np.isnan(values).any() or not np.all(values == np.round(values)):
            raise ValueError(f"{where}: labels must be integers or names, found non-integral "
                             f"numbers such as {values[~(values == np.round(values))][:3]}.")
        values = values.astype(np.int64)
    if values.dtype.kind in "iu":
        distinct = [str(v) for v in np.unique(values)]
        text = values.astype(str)
    else:
        text = np.asarray([str(v).strip() for v in values], dtype=object)
        distinct = sorted(set(text.tolist()))
    if class_names is None:
        class_names = tuple(distinct)
    lookup = {name: i for i, name in enumerate(class_names)}
    unknown = sorted(set(text.tolist()) - set(lookup))
    if unknown:
        raise ValueError(f"{where}: label(s) {listing(unknown, 5)} are not among the classes "
                         f"{listing(class_names)}.")
    return np.asarray([lookup[t] for t in text.tolist()], dtype=np.int64), tuple(class_names)


def normalise_split(values, where: str) -> np.ndarray:
    """A split column -> "train"/"val"/"test" strings ("validation"/"dev" read as "val")."""
    aliases = {"train": "train", "training": "train", "val": "val", "valid": "val",
               "validation": "val", "dev": "val", "test": "test", "testing": "test", "": ""}
    out = []
    for v in values:
        key = "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip().lower()
        if key not in aliases:
            raise ValueError(f"{where}: split value {v!r} is not train, val or test.")
        out.append(aliases[key])
    return np.asarray(out, dtype=object)


SPLIT_STEMS = {"train": "train", "training": "train", "val": "val", "valid": "val",
               "validation": "val", "dev": "val", "test": "test", "testing": "test"}


def split_files(folder, suffixes: tuple[str, ...], ledger: DataLedger) -> list[tuple[str, object]]:
    """[(part, path)] of the files `train.*`, `val.*` (or validation/valid/dev), `test.*` in a
    folder - the way benchmark datasets ship their parts; a clear error when there are none.
    A part that resolves outside the folder (a symlink leaving it) is ledgered, not read."""
    from pathlib import Path

    from data_preparation.sources.input_files import resolve_inside

    found = sorted((SPLIT_STEMS[p.stem.lower()], p) for p in Path(folder).iterdir()
                   if p.suffix.lower() in suffixes and p.stem.lower() in SPLIT_STEMS
                   and resolve_inside(p, Path(folder), ledger) is not None)
    if not found:
        raise FileNotFoundError(f"{folder} is a folder without train/val/test files "
                                f"({'/'.join(suffixes)}); give the file, or name the parts "
                                "train, val and test.")
    return found


def group_ids(values) -> np.ndarray:
    """Arbitrary group keys (names, numbers) -> int64 ids in order of first appearance."""
    _, first, inverse = np.unique(np.asarray(values).astype(str), return_index=True,
                                  return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return rank[inverse.reshape(-1)]
