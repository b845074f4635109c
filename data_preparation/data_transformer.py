"""Beam settings for each pulse: load the PV table, join it to pulses, filter, group.

The join is a backward as-of join on int64 nanoseconds: a pulse gets the latest settings row at
or before its own timestamp, never a later one (the original prototype's `nearest` join let a
pulse see settings from its future). Times stay int64 ns from the HDF5 file to the join
(`enterprise_tools` `read_pv_histories` -> `settings_table`). Everything here is vectorised
over pulses.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from data_preparation.ledger import NO_SETTINGS, NON_PRODUCTION, STALE_SETTINGS
from enterprise_tools.beam_settings_parser_hdf5 import read_pv_histories
from enterprise_tools.beam_settings_prep import SettingsTable, settings_table
from utils.text import listing

logger = logging.getLogger(__name__)


def settings_columns(config) -> list[str]:
    """The PVs to load: the selected features, then any production-filter PV not among them."""
    columns = list(config.features or [])
    for pv in dict(config.production_filter or {}):
        if pv not in columns:
            columns.append(pv)
    return columns


def load_settings(config) -> SettingsTable:
    """Read the beam-settings archive of a `BPMDataConfig` into one time-indexed PV table.

    The table holds int64 ns change times and one float64 column per PV of
    `settings_columns(config)`, sorted by time and forward-filled (see
    `enterprise_tools.beam_settings_prep.settings_table`). Values are not rescaled here: scaling
    is fitted on the training part later.
    """
    columns = settings_columns(config) or None
    table = settings_table(read_pv_histories(config.data_location, columns), columns)
    if len(table):
        logger.info(
            "beam settings: %d rows x %d PVs from %s (%d earlier rows before every PV was set)",
            len(table), len(table.pvs), config.data_location, table.rows_before_all_pvs_set,
        )
    return table


def settings_timestamps_ns(settings: SettingsTable | pd.DataFrame) -> np.ndarray:
    """The settings table's times as int64 ns since the Unix epoch (UTC).

    A `SettingsTable` carries them as is; a DataFrame (e.g. `BeamConfigPreProcessor`'s) has a
    `timestamps` column (datetime or int64 ns) or a DatetimeIndex.
    """
    if isinstance(settings, SettingsTable):
        return settings.timestamp_ns
    if "timestamps" in settings.columns:
        times = settings["timestamps"]
    elif isinstance(settings.index, pd.DatetimeIndex):
        times = settings.index.to_series()
    else:
        raise ValueError(
            "Settings table: expected a 'timestamps' column or a DatetimeIndex, "
            f"found columns {listing(settings.columns, 8)}."
        )
    if pd.api.types.is_integer_dtype(times.dtype):
        return times.to_numpy(dtype=np.int64)
    times = pd.to_datetime(times, utc=True).dt.tz_localize(None)
    return times.to_numpy(dtype="datetime64[ns]").view(np.int64)


def _frame_rows(settings_df: pd.DataFrame, columns: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """A DataFrame's int64 ns times, sorted (stable), and the named columns' values."""
    missing = [c for c in columns if c not in settings_df.columns]
    if missing:
        raise KeyError(
            f"Settings table has no column(s) {listing(missing)}; it has {listing(settings_df.columns)}."
        )
    row_ns = settings_timestamps_ns(settings_df)
    values = settings_df[list(columns)].to_numpy(dtype=np.float64)
    if row_ns.size and np.any(np.diff(row_ns) < 0):
        order = np.argsort(row_ns, kind="stable")
        row_ns, values = row_ns[order], values[order]
    return row_ns, values


def attach_settings(
    timestamp_ns, settings: SettingsTable | pd.DataFrame, columns: Sequence[str]
) -> np.ndarray:
    """Give each pulse the latest settings row at or before it (backward as-of join).

    Args:
        timestamp_ns: int64 [n] pulse times in ns since the Unix epoch (any order).
        settings: the `SettingsTable` from `load_settings`, or a DataFrame with a `timestamps`
            column plus one column per PV (a user's table, e.g. `BeamConfigPreProcessor`'s).
        columns: the PV columns to return, in this order.

    Returns:
        float64 [n, len(columns)]; a row is all NaN when the pulse precedes the first settings
        row (the caller ledgers those pulses as `no_settings`). A pulse exactly at a row's
        timestamp gets that row.
    """
    pulse_ns = np.asarray(timestamp_ns, dtype=np.int64)
    if isinstance(settings, SettingsTable):
        row_ns, values = settings.timestamp_ns, settings.select(columns)  # sorted, unique
    else:
        row_ns, values = _frame_rows(settings, columns)
    row = np.searchsorted(row_ns, pulse_ns, side="right") - 1
    out = np.full((pulse_ns.size, len(columns)), np.nan)
    known = row >= 0
    out[known] = values[row[known]]
    return out


def stale_settings_mask(timestamp_ns, row_ns, max_age_s: float | None) -> np.ndarray:
    """True for pulses later than the last settings row plus `max_age_s` (None: no limit).

    The history says nothing about what was set after its last row; a pulse far past it
    (another month's data joined to an older history) would silently get outdated settings.
    """
    pulse_ns = np.asarray(timestamp_ns, dtype=np.int64)
    row_ns = np.asarray(row_ns, dtype=np.int64)
    if max_age_s is None or row_ns.size == 0:
        return np.zeros(pulse_ns.size, dtype=bool)
    return pulse_ns > int(row_ns.max()) + int(round(float(max_age_s) * 1e9))


def production_mask(values, columns: Sequence[str], rules: Mapping[str, float]) -> np.ndarray:
    """True for pulses whose settings meet every `pv >= minimum` rule (NaN fails)."""
    values = np.asarray(values, dtype=np.float64)
    columns = list(columns)
    mask = np.ones(values.shape[0], dtype=bool)
    for pv, minimum in dict(rules or {}).items():
        if pv not in columns:
            raise KeyError(
                f"Production filter PV {pv!r} is not among the attached settings {columns}."
            )
        with np.errstate(invalid="ignore"):
            mask &= values[:, columns.index(pv)] >= float(minimum)
    return mask


def settings_verdicts(timestamp_ns, values, columns: Sequence[str],
                      rules: Mapping[str, float], last_row_ns: int | None,
                      max_age_s: float | None) -> dict[str, np.ndarray]:
    """Which settings rule keeps each pulse out: the one rule of training and live scoring.

    `values` [n, len(columns)] are the attached settings (NaN: no row precedes the pulse),
    `last_row_ns` the time of the history's last row (None: empty history). Returns exclusive
    boolean masks in the order they are tested, keyed by ledger reason: `no_settings` (no
    row before the pulse), `stale_settings` (later than the last row plus `max_age_s`),
    `non_production` (fails a `pv >= minimum` rule). A pulse in none of them is usable.
    """
    values = np.asarray(values, dtype=np.float64).reshape(len(timestamp_ns), len(columns))
    has = ~np.isnan(values).any(axis=1)
    rows = np.zeros(0, np.int64) if last_row_ns is None else np.array([last_row_ns], np.int64)
    stale = has & stale_settings_mask(timestamp_ns, rows, max_age_s)
    production = production_mask(values, columns, rules)
    return {NO_SETTINGS: ~has, STALE_SETTINGS: stale,
            NON_PRODUCTION: has & ~stale & ~production}


def config_groups(values, tolerance: float) -> np.ndarray:
    """Label runs of unchanged settings: a new group whenever the settings in force change.

    `values` are the settings attached to pulses in time order. Pulse i starts a new group when
    any column differs from pulse i-1 by more than `tolerance` (absolute), or turns NaN / non-NaN.
    Comparing consecutive pulses means a change and a change back between two pulses is not seen,
    and a slow drift in steps below `tolerance` stays one group. Ids are consecutive from 0.
    """
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if values.ndim == 1:
        values = values[:, None]
    prev, curr = values[:-1], values[1:]
    nan_prev, nan_curr = np.isnan(prev), np.isnan(curr)
    with np.errstate(invalid="ignore"):
        moved = np.abs(curr - prev) > tolerance
    changed = np.any(moved | (nan_prev != nan_curr), axis=1)
    groups = np.zeros(n, dtype=np.int64)
    groups[1:] = np.cumsum(changed)
    return groups
