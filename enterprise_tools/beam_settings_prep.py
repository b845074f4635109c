"""Turn per-PV beam-settings histories into one time-indexed table of settings.

The core is ``settings_table(histories, pvs) -> SettingsTable``: every selected PV's change
times joined (outer), sorted, forward-filled (a setting stays in force until it changes), and
cut to start where every PV has a value; int64 ns times, float64 values. Matching pulses to rows
(latest row at or before a pulse) is the caller's job (``data_preparation.data_transformer``).

NaN values (strings that did not parse) are treated as absent readings, so the previous
value stays in force. Several rows of one PV at one timestamp collapse to the last one.

``BeamConfigPreProcessor(config).run(data)`` is a thin wrapper kept for users' scripts: it takes
the parser's ``{pv: (N, 2) [timestamp_ns, value]}`` (float64, rounded back to int64 ns) or
``{pv: PVHistory}`` (exact), and returns a DataFrame with a ``timestamps`` column
(datetime64[ns, UTC]) and one float64 column per selected PV, optionally min-max rescaled.

Example:

>>> table = settings_table(read_pv_histories(folder, ["ICS_Tim:Gate_BeamOn:RR"]), None)
>>> table.pvs, table.timestamp_ns.dtype                      # doctest: +SKIP
(('ICS_Tim:Gate_BeamOn:RR',), dtype('int64'))
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from enterprise_tools.beam_settings_parser_hdf5 import (
    BeamSettingsConfigError,
    PVHistory,
    missing_pv_message,
    ns_timestamps,
    pv_selection,
)

logger = logging.getLogger("beamwatch.beam_settings")

TIMESTAMP_COLUMN = "timestamps"


@dataclass(frozen=True, eq=False)
class SettingsTable:
    """The settings in force from each change time on: one row per time any selected PV changed.

    Attributes:
        timestamp_ns: int64 [m] ns since the Unix epoch (UTC), strictly increasing.
        values: float64 [m, k]; row i holds every PV's value in force from ``timestamp_ns[i]``
            until the next row.
        pvs: the k PV names, the columns of ``values`` in order.
        rows_before_all_pvs_set: change times dropped because some PV had no value yet.
    """

    timestamp_ns: np.ndarray
    values: np.ndarray
    pvs: tuple[str, ...]
    rows_before_all_pvs_set: int = 0

    def __post_init__(self) -> None:
        stamps = ns_timestamps(self.timestamp_ns, "SettingsTable", strictly_increasing=True)
        pvs = tuple(self.pvs)
        values = np.asarray(self.values, dtype=np.float64)
        if values.shape != (stamps.size, len(pvs)):
            raise ValueError(
                f"SettingsTable needs timestamp_ns [m] and values [m, {len(pvs)}] for PVs "
                f"{list(pvs)}, got shapes {stamps.shape} and {values.shape}"
            )
        object.__setattr__(self, "timestamp_ns", stamps)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "pvs", pvs)

    def __len__(self) -> int:
        return int(self.timestamp_ns.size)

    def select(self, pvs: Sequence[str]) -> np.ndarray:
        """float64 [m, len(pvs)]: the named PV columns, in that order."""
        missing = [pv for pv in pvs if pv not in self.pvs]
        if missing:
            raise KeyError(f"Settings table has no column(s) {', '.join(map(str, missing))}; it has {', '.join(map(str, self.pvs))}.")
        return self.values[:, [self.pvs.index(pv) for pv in pvs]]


def settings_table(
    histories: Mapping[str, PVHistory], pvs: Sequence[str] | None = None
) -> SettingsTable:
    """Join PV histories into one forward-filled table (see the module docstring).

    Args:
        histories: ``{pv: PVHistory}``, e.g. from ``read_pv_histories``.
        pvs: the table's columns, in this order (None: every PV, in name order). A PV missing
            from ``histories`` raises ``BeamSettingsConfigError`` naming the closest names.
    """
    names = require_pvs(pvs, histories)
    columns = [_last_per_timestamp(pv, histories[pv]) for pv in names]
    joined = np.sort(np.concatenate([t for t, _ in columns]))  # sort + dedupe: np.unique
    joined = joined[np.r_[True, joined[1:] != joined[:-1]]]   # hashes, far slower here
    # rows before every PV has a value are dropped: start at the latest first reading
    start = int(np.searchsorted(joined, max(int(t[0]) for t, _ in columns)))
    kept = joined[start:]
    values = np.empty((kept.size, len(names)))
    for j, (t, v) in enumerate(columns):
        # forward fill: each change time takes the PV's latest value at or before it
        values[:, j] = v[np.searchsorted(t, kept, side="right") - 1]
    return SettingsTable(kept, values, tuple(names), start)


def require_pvs(pvs: Sequence[str] | None, available: Mapping[str, Any], what: str = "pvs") -> list[str]:
    """The selected PV names (None: all of ``available`` by name); every one must exist."""
    names = pv_selection(pvs, what)
    if names is None:
        if not available:
            raise BeamSettingsConfigError("no beam-settings PVs to prepare (empty data)")
        return sorted(available)
    missing = [pv for pv in names if pv not in available]
    if missing:
        raise BeamSettingsConfigError(missing_pv_message(missing, available))
    return names


def _last_per_timestamp(pv: str, history: PVHistory) -> tuple[np.ndarray, np.ndarray]:
    """The PV's numeric readings, one per timestamp (the last row of a run of equal times)."""
    readable = ~np.isnan(history.value)
    t, v = history.timestamp_ns[readable], history.value[readable]
    if not t.size:
        raise ValueError(f"PV {pv!r} has no numeric values; it cannot be forward-filled")
    last = np.r_[t[1:] != t[:-1], True]
    return t[last], v[last]


class BeamConfigPreProcessor:
    """Join, forward-fill and optionally rescale beam-settings PV histories.

    A thin wrapper over ``settings_table`` for scripts written against the JLab class.

    Args:
        config: plain mapping. ``features`` (default None = every PV in the data, in name
            order): the PV columns, in this order; a PV missing from the data raises
            ``BeamSettingsConfigError`` naming it and the closest names. ``rescale`` (default
            False): min-max scale each column to [0, 1]. ``scaling_min_max`` (optional
            ``{pv: [lo, hi]}``): the ranges to scale with; PVs it lacks use the data's own
            min/max, and every range used is returned in ``configurations``. A constant
            column (hi == lo) scales to 0. Other keys are ignored.
        name: label recorded in the returned configurations (default: the class name).
    """

    def __init__(self, config: Mapping[str, Any], name: str | None = None):
        self.config = config
        self.name = name or type(self).__name__

    def run(
        self, data: Mapping[str, np.ndarray | PVHistory]
    ) -> tuple[pd.DataFrame, dict[str, Any]]:
        """Return ``(table, configurations)`` for the selected PVs of ``data``."""
        features = require_pvs(self.config.get("features"), data, "'features'")
        histories = {pv: as_history(pv, data[pv]) for pv in features}
        core = settings_table(histories, features)
        table = pd.DataFrame(core.values, columns=list(core.pvs))
        configurations: dict[str, Any] = {
            "name": self.name,
            "features": list(features),
            "rescale": bool(self.config.get("rescale", False)),
            "scaling_min_max": None,
            "rows": len(core),
            "rows_before_all_pvs_set": core.rows_before_all_pvs_set,
            "first_timestamp_ns": int(core.timestamp_ns[0]) if len(core) else None,
            "last_timestamp_ns": int(core.timestamp_ns[-1]) if len(core) else None,
        }
        if configurations["rescale"]:
            ranges = self._ranges(table)
            table = _rescale(table, ranges)
            configurations["scaling_min_max"] = ranges
        stamps = pd.to_datetime(core.timestamp_ns, unit="ns", utc=True)
        table.insert(0, TIMESTAMP_COLUMN, stamps.as_unit("ns"))
        return table, configurations

    def _ranges(self, table: pd.DataFrame) -> dict[str, list[float]]:
        given = self.config.get("scaling_min_max") or {}
        unused = sorted(set(given) - set(table.columns))
        if unused:
            logger.warning("scaling_min_max names PVs that are not selected: %s", unused)
        ranges = {}
        for pv in table.columns:
            if pv in given:
                lo, hi = _range_pair(pv, given[pv])
            else:
                lo, hi = float(table[pv].min()), float(table[pv].max())
            ranges[pv] = [lo, hi]
        return ranges


def as_history(pv: str, data: np.ndarray | PVHistory) -> PVHistory:
    """A PVHistory as is, or one from a JLab ``(N, 2)`` float64 array (times rounded to ns)."""
    if isinstance(data, PVHistory):
        return data
    rows = np.asarray(data, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] != 2:
        raise ValueError(
            f"PV {pv!r}: expected an (N, 2) array of [timestamp_ns, value] rows, got {rows.shape}"
        )
    if not np.isfinite(rows[:, 0]).all():
        row = int(np.flatnonzero(~np.isfinite(rows[:, 0]))[0])
        raise ValueError(f"PV {pv!r}: timestamp of row {row} is {rows[row, 0]}; expected ns")
    order = np.argsort(rows[:, 0], kind="stable")  # stable: the last of equal times stays last
    return PVHistory(np.rint(rows[order, 0]).astype(np.int64), rows[order, 1])


def _range_pair(pv: str, pair: Any) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in pair)
    except (TypeError, ValueError):
        raise BeamSettingsConfigError(
            f"scaling_min_max[{pv!r}] must be [lo, hi], got {pair!r}"
        ) from None
    if not hi >= lo:
        raise BeamSettingsConfigError(f"scaling_min_max[{pv!r}] has hi < lo: {pair!r}")
    return lo, hi


def _rescale(table: pd.DataFrame, ranges: Mapping[str, list[float]]) -> pd.DataFrame:
    lo = np.array([ranges[pv][0] for pv in table.columns])
    span = np.array([ranges[pv][1] - ranges[pv][0] for pv in table.columns])
    scaled = (table.to_numpy() - lo) / np.where(span > 0, span, 1.0)
    scaled[:, span == 0] = 0.0
    return pd.DataFrame(scaled, columns=table.columns)
