"""Turn per-PV beam-settings histories into one time-indexed table of settings.

``BeamConfigPreProcessor(config).run(data)`` takes the parser's ``{pv: (N, 2) [timestamp_ns,
value]}`` and returns a DataFrame with a ``timestamps`` column (datetime64[ns, UTC]) and one
float64 column per selected PV: every PV's change times joined (outer), sorted, forward-filled
(a setting stays in force until it changes), and cut to start where every PV has a value.
Optionally min-max rescaled. Matching pulses to rows (latest row at or before a pulse) is the
caller's job (``data_preparation.data_transformer``).

NaN values (strings that did not parse) are treated as absent readings, so the previous
value stays in force. Several rows of one PV at one timestamp collapse to the last one.
Timestamps come in as float64 (the parser's contract) and are rounded back to int64 ns.

Example:

>>> table, used = BeamConfigPreProcessor({"features": ["ICS_Tim:Gate_BeamOn:RR"]}).run(data)
>>> list(table.columns)                                    # doctest: +SKIP
['timestamps', 'ICS_Tim:Gate_BeamOn:RR']
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from enterprise_tools.beam_settings_parser_hdf5 import BeamSettingsConfigError, missing_pv_message

logger = logging.getLogger("beamwatch.beam_settings")

TIMESTAMP_COLUMN = "timestamps"


class BeamConfigPreProcessor:
    """Join, forward-fill and optionally rescale beam-settings PV histories.

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

    def run(self, data: Mapping[str, np.ndarray]) -> tuple[pd.DataFrame, dict[str, Any]]:
        """Return ``(table, configurations)`` for the selected PVs of ``data``."""
        features = self._features(data)
        columns = [_pv_series(pv, data[pv]) for pv in features]
        joined = pd.concat(columns, axis=1, join="outer", sort=True)
        filled = joined.ffill()
        complete = filled.dropna(how="any")
        dropped = len(filled) - len(complete)
        table = complete.reset_index(drop=True).astype(np.float64)
        configurations: dict[str, Any] = {
            "name": self.name,
            "features": list(features),
            "rescale": bool(self.config.get("rescale", False)),
            "scaling_min_max": None,
            "rows": int(len(table)),
            "rows_before_all_pvs_set": int(dropped),
            "first_timestamp_ns": int(complete.index[0]) if len(complete) else None,
            "last_timestamp_ns": int(complete.index[-1]) if len(complete) else None,
        }
        if configurations["rescale"]:
            ranges = self._ranges(table)
            table = _rescale(table, ranges)
            configurations["scaling_min_max"] = ranges
        stamps = pd.to_datetime(complete.index.to_numpy(dtype=np.int64), unit="ns", utc=True)
        table.insert(0, TIMESTAMP_COLUMN, stamps.as_unit("ns"))
        return table, configurations

    def _features(self, data: Mapping[str, np.ndarray]) -> list[str]:
        features = self.config.get("features")
        if features is None:
            if not data:
                raise BeamSettingsConfigError("no beam-settings PVs to prepare (empty data)")
            return sorted(data)
        if isinstance(features, str) or not all(isinstance(f, str) for f in features):
            raise BeamSettingsConfigError(
                f"'features' must be a list of PV names or None, got {features!r}"
            )
        if not features:
            raise BeamSettingsConfigError("'features' is empty; list PVs or pass None for all")
        missing = [pv for pv in features if pv not in data]
        if missing:
            raise BeamSettingsConfigError(missing_pv_message(missing, data))
        if len(set(features)) != len(features):
            raise BeamSettingsConfigError(f"'features' lists a PV twice: {list(features)}")
        return list(features)

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


def _pv_series(pv: str, rows: np.ndarray) -> pd.Series:
    """One PV as a float64 Series on a unique, sorted int64-ns index (last row wins)."""
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] != 2:
        raise ValueError(
            f"PV {pv!r}: expected an (N, 2) array of [timestamp_ns, value] rows, got {rows.shape}"
        )
    rows = rows[~np.isnan(rows[:, 1])]
    if not len(rows):
        raise ValueError(f"PV {pv!r} has no numeric values; it cannot be forward-filled")
    stamps = np.rint(rows[:, 0]).astype(np.int64)
    series = pd.Series(rows[:, 1], index=stamps, name=pv)
    series = series.iloc[np.argsort(stamps, kind="stable")]
    return series[~series.index.duplicated(keep="last")]


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
