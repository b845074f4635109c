"""The `npz` data source: pulses from an `.npz` of windowed arrays, validated array by array."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_preparation.ledger import DataLedger
from data_preparation.pulse_set import PulseSet
from utils.text import listing


def load_npz_pulses(path) -> PulseSet:
    """Pulses from an `.npz` of windowed arrays (read with `allow_pickle=False`).

    Required: `traces` float [n, L] or [n, L, C], `label` (0/1) [n], `timestamp_ns` int [n].
    Optional: `settings` float [n, k] with `settings_names` str [k]; `references` float
    [n, K, L(, C)] with `reference_timestamp_ns` int [n, K] (-1: empty slot), the windows
    each sample is judged against. Sorted by time on return.
    """
    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read as an .npz archive ({exc}).") from exc
    with archive:
        missing = [k for k in ("traces", "label", "timestamp_ns") if k not in archive.files]
        if missing:
            raise KeyError(
                f"{path}: missing array(s) {listing(missing)}; found {listing(sorted(archive.files))}. Expected "
                "traces [n, L] or [n, L, C], label [n], timestamp_ns [n]."
            )
        try:
            arrays = {name: archive[name] for name in archive.files}
        except ValueError as exc:
            raise ValueError(f"{path}: holds object arrays, which are not allowed ({exc}).") from exc
    traces, label, stamps = arrays["traces"], arrays["label"], arrays["timestamp_ns"]
    if traces.ndim not in (2, 3) or not np.issubdtype(traces.dtype, np.number):
        raise ValueError(
            f"{path}: traces must be numeric [n, L] or [n, L, C], got {traces.dtype} {traces.shape}."
        )
    n = traces.shape[0]
    for name, array in (("label", label), ("timestamp_ns", stamps)):
        if array.shape != (n,):
            raise ValueError(f"{path}: {name} has shape {array.shape}, expected ({n},) like traces.")
    if not np.issubdtype(stamps.dtype, np.integer):
        raise ValueError(f"{path}: timestamp_ns must be integers (ns), got {stamps.dtype}.")
    bad = np.setdiff1d(np.unique(label), [0, 1])
    if bad.size:
        raise ValueError(f"{path}: label must be 0 or 1, found {bad.tolist()[:5]}.")
    settings, names = _npz_settings(path, arrays, n)
    for name, array in (("traces", traces), ("settings", settings)):
        if array is not None and n and not np.isfinite(array).all():
            rows = np.flatnonzero(~np.isfinite(array.reshape(n, -1)).all(axis=1))
            raise ValueError(
                f"{path}: {name} of record {int(rows[0])} hold NaN or inf ({rows.size} record(s)); "
                "expected finite numbers.")
    references, reference_stamps = _npz_references(path, arrays, traces.shape)
    if references is not None and n and not np.isfinite(references).all():
        rows = np.flatnonzero(~np.isfinite(references.reshape(n, -1)).all(axis=1))
        raise ValueError(f"{path}: references of record {int(rows[0])} hold NaN or inf "
                         f"({rows.size} record(s)); expected finite numbers.")
    order = np.argsort(stamps, kind="stable")
    return PulseSet(
        traces=traces.astype(np.float32)[order],
        timestamp_ns=stamps.astype(np.int64)[order],
        label=label.astype(np.int8)[order],
        file_index=np.zeros(n, dtype=np.int32),
        files=[str(path)],
        ledger=DataLedger(),
        settings=None if settings is None else settings[order],
        settings_names=names,
        references=None if references is None else references[order],
        reference_timestamp_ns=None if reference_stamps is None else reference_stamps[order],
    )


def _npz_references(path, arrays, shape) -> tuple[np.ndarray | None, np.ndarray | None]:
    if "references" not in arrays:
        return None, None
    references, stamps = arrays["references"], arrays.get("reference_timestamp_ns")
    n = shape[0]
    if references.ndim != len(shape) + 1 or references.shape[0] != n or \
            references.shape[2:] != shape[1:] or not np.issubdtype(references.dtype, np.number):
        raise ValueError(
            f"{path}: references must be numeric [n={n}, K, {', '.join(map(str, shape[1:]))}] "
            f"like traces, got {references.dtype} {references.shape}."
        )
    k = references.shape[1]
    if stamps is None or stamps.shape != (n, k) or not np.issubdtype(stamps.dtype, np.integer):
        got = "none" if stamps is None else f"{stamps.dtype} {stamps.shape}"
        raise ValueError(
            f"{path}: references need reference_timestamp_ns int [n={n}, K={k}] (-1 for an "
            f"empty slot), got {got}."
        )
    return references.astype(np.float32), stamps.astype(np.int64)


def _npz_settings(path, arrays, n: int) -> tuple[np.ndarray | None, tuple[str, ...]]:
    if "settings" not in arrays:
        return None, ()
    settings = arrays["settings"]
    if settings.ndim != 2 or settings.shape[0] != n or not np.issubdtype(settings.dtype, np.number):
        raise ValueError(
            f"{path}: settings must be numeric [n={n}, k], got {settings.dtype} {settings.shape}."
        )
    k = settings.shape[1]
    if "settings_names" in arrays:
        names = arrays["settings_names"]
        if names.shape != (k,) or names.dtype.kind not in "US":
            raise ValueError(
                f"{path}: settings_names must be {k} strings, got {names.dtype} {names.shape}."
            )
        return settings.astype(np.float64), tuple(str(x) for x in names.astype(str))
    raise KeyError(f"{path}: has settings but no settings_names (the {k} column names).")
