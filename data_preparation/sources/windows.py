"""`data.source = npz`: windowed arrays in one .npz file, one sample per window.

`X` [n, steps, features] (zero-padded; [n, steps] is one feature) and `y` [n] (integers or
strings) by default (`windows.x_key`, `windows.y_key`); the older beamwatch layout `traces` /
`label` is read too. Optional arrays: `timestamp_ns` int [n], `group` [n] (subject/session),
`split` [n] (train/val/test), `class_names` [k] (names of the integer labels), `settings`
float [n, k] with `settings_names` [k]. Read with `allow_pickle=False`, after the file's
size on disk and uncompressed (zip directory) is checked against `data.max_table_mb`; a window
whose X or settings hold NaN or inf is ledgered `non_finite_values` and left out.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from data_preparation.ledger import DataLedger
from data_preparation.sources.contract import (
    PARTS,
    UNLABELLED,
    Samples,
    encode_labels,
    group_ids,
    normalise_split,
    split_files,
)
from data_preparation.sources.input_files import check_npz_size, finite_rows, ledger_non_finite
from utils.text import listing


def _read(path: Path, max_bytes: int) -> dict[str, np.ndarray]:
    check_npz_size(path, max_bytes)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read as an .npz archive ({exc}).") from exc
    with archive:
        try:
            return {name: archive[name] for name in archive.files}
        except ValueError as exc:
            raise ValueError(f"{path}: holds object arrays, which are not allowed ({exc}).") from exc


def _pick(arrays: dict, path: Path, *names: str, required: bool = True):
    for name in names:
        if name in arrays:
            return arrays[name]
    if required:
        raise KeyError(f"{path}: no array {' or '.join(dict.fromkeys(names))}; found "
                       f"{listing(sorted(arrays))}. Expected X [n, steps, features] and y [n].")
    return None


def load(config, location: str | None = None, layout: dict | None = None,
         files: list[str] | None = None) -> Samples:
    """Windows of `data.dataset_loc` (or of `files`, labels optional, for --predict)."""
    root = Path(location or config.data.dataset_loc)
    max_bytes = int(config.data.max_table_mb) * 2**20
    ledger = DataLedger()
    if files is None and root.is_dir():  # train.npz / val.npz / test.npz, as benchmarks ship
        named = split_files(root, (".npz",), ledger)
        names = (layout or {}).get("class_names") or _joint_class_names(
            [p for _, p in named], config.windows, max_bytes)
        shared = {**(layout or {}), "class_names": list(names)}
        parts = [_load_one(p, config.windows, shared, labelled=True, max_bytes=max_bytes,
                           part=part) for part, p in named]
    else:
        paths = [Path(f) for f in files] if files is not None else [root]
        parts = [_load_one(p, config.windows, layout, labelled=files is None,
                           max_bytes=max_bytes) for p in paths]
    for part in parts:
        ledger.extend(part.ledger)
    if len(parts) == 1:
        return dataclasses.replace(parts[0], ledger=ledger)
    first = parts[0]
    times = [p.timestamp_ns for p in parts]
    splits = [p.split for p in parts]
    return Samples(
        inputs={k: np.concatenate([p.inputs[k] for p in parts]) for k in first.inputs},
        label=np.concatenate([p.label for p in parts]),
        class_names=first.class_names,
        group=np.concatenate([p.group + 1_000_000 * i for i, p in enumerate(parts)]),
        ids=np.concatenate([p.ids for p in parts]),
        timestamp_ns=None if any(t is None for t in times) else np.concatenate(times),
        split=None if any(s is None for s in splits) else np.concatenate(splits),
        layout=first.layout,
        ledger=ledger,
    )


def _raw_labels(arrays: dict, path: Path, wcfg, required: bool) -> np.ndarray | None:
    """The label array, integer labels mapped through a stored `class_names` array."""
    y = _pick(arrays, path, wcfg.y_key, "y", "label", required=required)
    names = arrays.get("class_names")
    if y is None or names is None or y.dtype.kind not in "iu":
        return y
    names = np.asarray([str(s) for s in names.astype(str)], dtype=object)
    if y.size and (y.min() < 0 or y.max() >= len(names)):
        raise ValueError(f"{path}: labels run {y.min()}..{y.max()}, but class_names has "
                         f"{len(names)} entries.")
    return names[y]


def _joint_class_names(paths: list[Path], wcfg, max_bytes: int) -> tuple[str, ...]:
    """Class names over all part files, so every part indexes the same classes."""
    raw = [_raw_labels(_read(p, max_bytes), p, wcfg, required=True) for p in paths]
    return encode_labels(np.concatenate(raw), ", ".join(map(str, paths)))[1]


def _load_one(path: Path, wcfg, layout: dict | None, labelled: bool, max_bytes: int,
              part: str | None = None) -> Samples:
    if not path.is_file():
        raise FileNotFoundError(f"data.dataset_loc {path} is not an .npz file.")
    arrays = _read(path, max_bytes)
    x = _pick(arrays, path, wcfg.x_key, "X", "traces")
    if x.ndim not in (2, 3) or not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"{path}: {wcfg.x_key} must be numeric [n, steps] or [n, steps, "
                         f"features], got {x.dtype} {x.shape}.")
    x = x.astype(np.float32)
    if x.ndim == 2:
        x = x[..., None]
    n = x.shape[0]
    if layout and tuple(layout.get("window_shape", x.shape[1:])) != x.shape[1:]:
        raise ValueError(f"{path}: windows are {x.shape[1:]}, the run was trained on "
                         f"{tuple(layout['window_shape'])}.")
    y = _raw_labels(arrays, path, wcfg, required=labelled)
    trained_names = tuple(layout["class_names"]) if layout and "class_names" in layout else None
    if y is None:
        label, class_names = np.full(n, UNLABELLED, dtype=np.int64), trained_names or ()
    else:
        if y.shape != (n,):
            raise ValueError(f"{path}: {wcfg.y_key} has shape {y.shape}, expected ({n},).")
        label, class_names = encode_labels(y, f"{path} {wcfg.y_key}", trained_names)
    inputs = {"trace": x}
    if "settings" in arrays:
        settings = arrays["settings"]
        if settings.ndim != 2 or settings.shape[0] != n:
            raise ValueError(f"{path}: settings must be [n={n}, k], got {settings.shape}.")
        inputs["settings"] = settings.astype(np.float32)
    stamps = arrays.get("timestamp_ns")
    if stamps is not None and (stamps.shape != (n,) or not np.issubdtype(stamps.dtype,
                                                                          np.integer)):
        raise ValueError(f"{path}: timestamp_ns must be integers (ns) of shape ({n},).")
    group = arrays.get("group")
    split = arrays.get("split")
    samples = Samples(
        inputs=inputs,
        label=label,
        class_names=class_names,
        group=group_ids(group) if group is not None else np.arange(n, dtype=np.int64),
        ids=np.asarray([f"{path}#{i}" for i in range(n)], dtype=object),
        timestamp_ns=None if stamps is None else stamps.astype(np.int64),
        split=(np.full(n, part, dtype=object) if part is not None
               else None if split is None or not labelled
               else normalise_split(split, f"{path} split")),
        layout={"window_shape": list(x.shape[1:]), "class_names": list(class_names)},
        ledger=DataLedger(),
    )
    keep = finite_rows(x)
    if "settings" in inputs:
        keep &= finite_rows(inputs["settings"])
    if keep.all():
        return samples
    ledger_non_finite(samples.ids, keep, samples.ledger, f"{wcfg.x_key} or settings")
    return samples.take(np.flatnonzero(keep))


def split_given(samples: Samples) -> bool:
    return samples.split is not None and any(s in PARTS for s in samples.split)
