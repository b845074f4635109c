"""Read beam-settings PV histories exported from the EPICS archiver to HDF5.

The core is ``read_pv_histories(location, pvs) -> {pv: PVHistory}``: per PV, int64 ns
timestamps (sorted) and float64 values, exact to the nanosecond. ``beam_settings_prep.
settings_table`` turns histories into one time-indexed table; the pipeline calls both directly.

``BeamConfigParserHDF5(config).run()`` is a thin wrapper kept for users' scripts: it keeps the
JLab class name and plain-mapping config and returns ``{pv_name: (N, 2) float64 array of
[timestamp_ns, value]}`` plus a ``configurations`` summary, without the original's habits
(``sys.exit``, pickle, silent skips).

Layout rules (``shared/specs/sns-data-formats.md`` section 2):

* ``location`` is one ``.hdf5``/``.h5`` file or a folder of them (not searched recursively).
* Groups are walked recursively. A PV's name is its dataset path relative to the root without
  the leading ``/``: ``LEBT:Chop_N:V_Set`` at the root, ``LEBT/Chop_N:V_Set`` inside group
  ``LEBT`` (``:`` is legal in HDF5 names; ``/`` can only come from a group).
* A PV dataset is an ``(N, 2)`` array of ``[timestamp_ns, value]`` rows (numeric, or strings),
  or a compound array with fields ``timestamp`` (int64 ns) and ``value``. Rows may be unsorted.
  Values that do not parse as numbers become NaN (counted in ``PVHistory.nan_values`` and
  logged); a timestamp that does not parse is an error naming file, dataset and row.
* Several files are read in name order. Their rows are merged per PV; where the same PV has a
  row at the same timestamp in more than one file, the first file wins (the JLab rule) and the
  dropped rows are counted and logged. Merging rows rather than whole PVs is what lets one file
  per day (the simulator's and the archiver's export layout) form one history.

Precision: ``PVHistory`` keeps int64 ns as read. Only the wrapper's ``(N, 2)`` float64 output
rounds them: ns since the Unix epoch (~1.8e18) exceed 2**53, so there a timestamp is stored to
the nearest multiple of 256 ns (whole seconds and multiples of 512 ns are exact).

Example:

>>> histories = read_pv_histories("data/demo/beam_settings", ["ICS_Tim:Gate_BeamOn:RR"])
>>> histories["ICS_Tim:Gate_BeamOn:RR"].timestamp_ns[:2]     # doctest: +SKIP
array([1767571200000000000, 1767571260000000000])
"""

from __future__ import annotations

import difflib
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from enterprise_tools.atomic import atomic_path

logger = logging.getLogger("beamwatch.beam_settings")

HDF5_SUFFIXES = (".hdf5", ".h5")
SAVED_DATA_NAME = "beam_settings.h5"
SAVED_CONFIG_NAME = "beam_settings.json"


class BeamSettingsConfigError(ValueError):
    """The beam-settings config is unusable (missing key, missing path, unknown PV...)."""


class BeamSettingsFileError(ValueError):
    """A beam-settings HDF5 file cannot be read or holds a dataset of the wrong layout."""


@dataclass(frozen=True, eq=False)
class PVHistory:
    """One PV's archived history: when it was set, and to what.

    Attributes:
        timestamp_ns: int64 [n] ns since the Unix epoch (UTC), sorted (non-decreasing: rows one
            file repeats at one timestamp are kept in file order; ``settings_table`` keeps the
            last of them).
        value: float64 [n]; NaN where the archived value did not parse (an absent reading).
        files: names of the files the rows came from, in read order.
        duplicate_rows: rows dropped because an earlier file held the same timestamp.
        nan_values: values read that did not parse (before the merge).
    """

    timestamp_ns: np.ndarray
    value: np.ndarray
    files: tuple[str, ...] = ()
    duplicate_rows: int = 0
    nan_values: int = 0

    def __post_init__(self) -> None:
        stamps = ns_timestamps(self.timestamp_ns, "PVHistory", strictly_increasing=False)
        values = np.asarray(self.value, dtype=np.float64)
        if values.shape != stamps.shape:
            raise ValueError(
                f"PVHistory needs timestamp_ns and value of one length, got shapes "
                f"{stamps.shape} and {values.shape}"
            )
        object.__setattr__(self, "timestamp_ns", stamps)
        object.__setattr__(self, "value", values)

    def __len__(self) -> int:
        return int(self.timestamp_ns.size)

    def rows(self) -> np.ndarray:
        """The JLab ``(N, 2)`` float64 ``[timestamp_ns, value]`` layout (times to ~256 ns)."""
        return np.column_stack([self.timestamp_ns.astype(np.float64), self.value])


def ns_timestamps(stamps: Any, owner: str, *, strictly_increasing: bool) -> np.ndarray:
    """Check a 1-D int64 ns time axis (sorted; unique too where asked) and return it as int64."""
    stamps = np.asarray(stamps)
    if stamps.dtype.kind not in "iu":
        raise TypeError(f"{owner}.timestamp_ns must be int64 ns, got dtype {stamps.dtype}")
    if stamps.ndim != 1:
        raise ValueError(f"{owner}.timestamp_ns must be 1-D, got shape {stamps.shape}")
    stamps = stamps.astype(np.int64, copy=False)
    steps = np.diff(stamps)
    if np.any(steps <= 0 if strictly_increasing else steps < 0):
        order = "strictly increasing" if strictly_increasing else "sorted (non-decreasing)"
        raise ValueError(f"{owner}.timestamp_ns must be {order}")
    return stamps


def missing_pv_message(missing: Sequence[str], available: Iterable[str]) -> str:
    """Name each missing PV with the closest names that do exist (a typo is the usual cause)."""
    available = sorted(available)
    parts = []
    for pv in missing:
        near = difflib.get_close_matches(pv, available, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(repr(n) for n in near)}?" if near else "no similar name"
        parts.append(f"{pv!r} ({hint})")
    return (
        f"{len(missing)} selected PV(s) not found in the beam-settings data: "
        + "; ".join(parts)
        + f". {len(available)} PVs are available."
    )


def pv_selection(pvs: Sequence[str] | None, what: str = "pvs") -> list[str] | None:
    """Check a PV selection: None (every PV) or a non-empty list of distinct names."""
    if pvs is None:
        return None
    if isinstance(pvs, str) or not all(isinstance(pv, str) for pv in pvs):
        raise BeamSettingsConfigError(f"{what} must be a list of PV names or None, got {pvs!r}")
    pvs = list(pvs)
    if not pvs:
        raise BeamSettingsConfigError(f"{what} is empty; list PVs or pass None for all")
    if len(set(pvs)) != len(pvs):
        raise BeamSettingsConfigError(f"{what} lists a PV twice: {pvs}")
    return pvs


def settings_files(location: str | os.PathLike) -> list[Path]:
    """The beam-settings files at ``location`` (one file, or a folder's files by name)."""
    path = Path(location)
    if str(location) == "":
        raise BeamSettingsConfigError(
            "beam-settings location is empty; give an .hdf5/.h5 file or a folder of them"
        )
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(
            p for p in path.iterdir() if p.is_file() and p.suffix.lower() in HDF5_SUFFIXES
        )
        if not files:
            raise BeamSettingsConfigError(
                f"data_location {str(path)!r} holds no {'/'.join(HDF5_SUFFIXES)} files"
            )
        return files
    raise BeamSettingsConfigError(f"data_location {str(path)!r} does not exist")


def read_pv_histories(
    location: str | os.PathLike, pvs: Sequence[str] | None = None
) -> dict[str, PVHistory]:
    """Read the PV histories at ``location`` (file or folder), in PV-name order.

    Args:
        location: an ``.hdf5``/``.h5`` file or a folder holding them.
        pvs: the PVs to read (None: every PV found). A name not found raises
            ``BeamSettingsConfigError`` listing it with the closest names that exist.

    Several files are merged row by row per PV; on a timestamp two files share, the first
    file by name wins and the dropped rows are logged.
    """
    wanted = pv_selection(pvs)
    files = settings_files(location)
    per_pv: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    sources: dict[str, list[str]] = {}
    for path in files:
        for pv, part in _read_file(path, wanted).items():
            per_pv.setdefault(pv, []).append(part)
            sources.setdefault(pv, []).append(path.name)
    if wanted is not None:
        missing = [pv for pv in wanted if pv not in per_pv]
        if missing:
            raise BeamSettingsConfigError(
                missing_pv_message(missing, _all_pv_names(files)) + f" Searched: {location}"
            )
    histories: dict[str, PVHistory] = {}
    for pv in sorted(per_pv):
        stamps, values, dropped = _merge_first_wins(per_pv[pv])
        nan_values = sum(int(np.isnan(v).sum()) for _, v in per_pv[pv])
        if dropped:
            logger.warning(
                "PV %s: %d row(s) at timestamps already read from an earlier file were "
                "dropped (first file by name wins; files: %s)",
                pv, dropped, ", ".join(sources[pv]),
            )
        if nan_values:
            logger.warning("PV %s: %d value(s) did not parse as numbers; kept as NaN", pv, nan_values)
        histories[pv] = PVHistory(stamps, values, tuple(sources[pv]), dropped, nan_values)
    logger.info("read %d PVs from %d beam-settings file(s)", len(histories), len(files))
    return histories


class BeamConfigParserHDF5:
    """Parse beam-settings HDF5 archives into per-PV ``[timestamp_ns, value]`` arrays.

    A thin wrapper over ``read_pv_histories`` for scripts written against the JLab class.

    Args:
        config: plain mapping. ``data_location`` (required): an ``.hdf5``/``.h5`` file or a
            folder holding them (not searched recursively). ``features`` (optional, default
            None = every PV found): PV names to keep; a name not found raises
            ``BeamSettingsConfigError`` listing the closest names. ``save_dir`` (optional):
            where ``run(save=True)`` writes. Other keys are ignored (the prep step shares
            the mapping).
        name: label recorded in the returned configurations (default: the class name).
    """

    def __init__(self, config: Mapping[str, Any], name: str | None = None):
        self.config = config
        self.name = name or type(self).__name__

    def run(self, save: bool = False) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Read every file and return ``(data, configurations)``; optionally save both."""
        location = self.config.get("data_location")
        if location is None or str(location) == "":
            raise BeamSettingsConfigError(
                "beam-settings config has no 'data_location'; set it to an .hdf5/.h5 file "
                "or a folder of them"
            )
        features = pv_selection(self.config.get("features"), "'features'")
        files = settings_files(location)
        histories = read_pv_histories(location, features)
        data = {pv: history.rows() for pv, history in histories.items()}
        configurations = {
            "name": self.name,
            "data_location": str(location),
            "files": [str(p) for p in files],
            "features": list(data),
            "n_pvs": len(data),
            "rows": {pv: len(h) for pv, h in histories.items()},
            "duplicate_rows": {pv: h.duplicate_rows for pv, h in histories.items() if h.duplicate_rows},
            "nan_values": {pv: h.nan_values for pv, h in histories.items() if h.nan_values},
        }
        if save:
            self._save(data, configurations)
        return data, configurations

    def _save(self, data: Mapping[str, np.ndarray], configurations: dict) -> None:
        save_dir = self.config.get("save_dir")
        if not save_dir:
            raise BeamSettingsConfigError("run(save=True) needs 'save_dir' in the config")
        save_dir = Path(save_dir)
        save_dir.mkdir(parents=True, exist_ok=True)
        write_pv_file(save_dir / SAVED_DATA_NAME, data)
        text = json.dumps(configurations, indent=2, sort_keys=True) + "\n"
        with atomic_path(save_dir / SAVED_CONFIG_NAME) as tmp:
            tmp.write_text(text)
        configurations["saved"] = [str(save_dir / SAVED_DATA_NAME), str(save_dir / SAVED_CONFIG_NAME)]


def write_pv_file(path: str | os.PathLike, data: Mapping[str, np.ndarray]) -> None:
    """Write ``{pv: (N, 2) array}`` as one HDF5 file, one dataset per PV, atomically.

    Datasets carry no modification times and the file is pinned to one format version, so
    the same data always gives the same bytes (the simulator's archives are reproducible).
    """

    # the root group records times unless the file-creation list says otherwise
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_V110, h5py.h5f.LIBVER_V110)
    with atomic_path(path) as tmp:
        fid = h5py.h5f.create(os.fsencode(str(tmp)), h5py.h5f.ACC_TRUNC, fcpl=fcpl, fapl=fapl)
        with h5py.File(fid) as h5:
            for pv, arr in data.items():
                h5.create_dataset(pv, data=np.asarray(arr, dtype=np.float64), track_times=False)


def _open(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise BeamSettingsFileError(f"cannot read beam-settings file {str(path)!r}: {exc}") from exc


def _dataset_names(h5: h5py.File) -> list[str]:
    names: list[str] = []
    h5.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return names


def _all_pv_names(files: Sequence[Path]) -> set[str]:
    names: set[str] = set()
    for path in files:
        with _open(path) as h5:
            names.update(_dataset_names(h5))
    return names


def _read_file(
    path: Path, features: Sequence[str] | None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Return ``{pv: (int64 timestamps, float64 values)}`` for the selected PVs of one file."""
    wanted = None if features is None else set(features)
    out = {}
    with _open(path) as h5:
        for pv in _dataset_names(h5):
            if wanted is None or pv in wanted:
                where = f"file {str(path)!r}, dataset {pv!r}"
                try:
                    raw = h5[pv][()]
                except OSError as exc:
                    raise BeamSettingsFileError(f"cannot read {where}: {exc}") from exc
                out[pv] = _rows(raw, where)
    return out


def _rows(raw: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Split one PV dataset into int64 ns timestamps and float64 values (unparsable: NaN)."""
    if raw.dtype.names is not None:
        if not {"timestamp", "value"} <= set(raw.dtype.names):
            raise BeamSettingsFileError(
                f"{where}: compound dataset needs fields 'timestamp' and 'value', "
                f"found {list(raw.dtype.names)}"
            )
        if raw.ndim != 1:
            raise BeamSettingsFileError(f"{where}: compound dataset must be 1-D, got {raw.shape}")
        stamps, values = raw["timestamp"], raw["value"]
    elif raw.ndim == 2 and raw.shape[1] == 2:
        stamps, values = raw[:, 0], raw[:, 1]
    else:
        raise BeamSettingsFileError(
            f"{where}: expected an (N, 2) array of [timestamp_ns, value] rows or a compound "
            f"array with fields 'timestamp' and 'value', got shape {raw.shape} dtype {raw.dtype}"
        )
    return _timestamps(stamps, where), _finite_or_nan(_values(values), where)


def _finite_or_nan(values: np.ndarray, where: str) -> np.ndarray:
    """Refuse +-inf: forward-filled, it would give every later pulse the same broken setting."""
    bad = np.isinf(values)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise BeamSettingsFileError(
            f"{where}: value of row {row} is {values[row]} ({int(bad.sum())} infinite value(s)); "
            "expected finite numbers (unreadable values may be NaN, which count as absent)"
        )
    return values


def _timestamps(stamps: np.ndarray, where: str) -> np.ndarray:
    if stamps.dtype.kind in "iu":
        return stamps.astype(np.int64)
    as_float = _values(stamps) if stamps.dtype.kind in "OSU" else stamps.astype(np.float64)
    bad = ~np.isfinite(as_float)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise BeamSettingsFileError(
            f"{where}: timestamp of row {row} is not a number ({stamps[row]!r}); "
            "expected ns since the Unix epoch"
        )
    return np.rint(as_float).astype(np.int64)


def _values(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind in "iufb":
        return values.astype(np.float64)
    return np.array([_to_float(v) for v in values.ravel()], dtype=np.float64)


def _to_float(value: Any) -> float:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _merge_first_wins(
    parts: list[tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, int]:
    """Merge one PV's rows from several files (in file order); first file wins per timestamp.

    Returns sorted int64 timestamps, their values and the number of rows dropped. Rows
    repeated at one timestamp within a single file are all kept in file order
    (``settings_table`` collapses them, last wins).
    """
    stamps = np.concatenate([s for s, _ in parts])
    values = np.concatenate([v for _, v in parts])
    file_index = np.concatenate([np.full(len(s), i) for i, (s, _) in enumerate(parts)])
    # sort by time, then file order; per timestamp keep rows of the earliest file present
    order = np.lexsort((file_index, stamps))
    stamps, values, file_index = stamps[order], values[order], file_index[order]
    keep = np.ones(len(stamps), dtype=bool)
    if len(parts) > 1 and len(stamps):
        starts = _run_starts(stamps)
        first_file = np.minimum.reduceat(file_index, starts)
        keep = file_index == np.repeat(first_file, np.diff(np.append(starts, len(stamps))))
    return stamps[keep], values[keep], int((~keep).sum())


def _run_starts(sorted_stamps: np.ndarray) -> np.ndarray:
    """Index of the first row of each run of equal timestamps (input sorted, non-empty)."""
    return np.flatnonzero(np.r_[True, sorted_stamps[1:] != sorted_stamps[:-1]])
