"""Checks at the boundaries where a bad value would otherwise become a quiet wrong answer.

A non-finite score, a threshold file that does not hold a number, or settings that do not
cover the pulses they are joined to all produce figures that look valid. These helpers turn
each into one clear error that names the file or key, before anything is written.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from data_preparation.ledger import STALE_SETTINGS, DataLedger
from utils.errors import UsageError


class StaleSettingsError(UsageError, ValueError):
    """Settings that do not cover the data they would be joined to."""


def check_scores(scores: np.ndarray, where: str = "model scores") -> None:
    """Refuse NaN/inf scores (a broken scaler or model), naming the first bad sample."""
    scores = np.asarray(scores)
    bad = np.flatnonzero(~np.isfinite(scores))
    if bad.size:
        raise ValueError(
            f"{where}: {bad.size} of {scores.size} scores are NaN or inf (first at sample "
            f"{int(bad[0])}); check the run's scalers.json and the input data for NaN/inf.")


def finite_pulses(traces, references=None) -> np.ndarray:
    """True for the pulses whose window (and reference windows, if given) hold no NaN or inf.

    The one rule of the training reader and live scoring: a non-finite sample would poison
    the scaler and every score, so such a pulse is ledgered `non_finite_trace`, never scored.
    `traces` [n, ...]; `references` [n, K, ...] or None.
    """
    traces = np.asarray(traces)
    finite = np.isfinite(traces).all(axis=tuple(range(1, traces.ndim)))
    if references is not None:  # a reference is scaled and fed like the trace itself
        references = np.asarray(references)
        finite &= np.isfinite(references).all(axis=tuple(range(1, references.ndim)))
    return finite


def read_threshold(path: Path) -> dict:
    """threshold.json as a dict whose `threshold` is a finite number, or a one-line error."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot be read as JSON ({exc})") from exc
    value = data.get("threshold") if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{path}: 'threshold' is {value!r}; expected a finite number")
    return data


def refuse_stale_settings(ledger: DataLedger, settings_location: str, *, allow: bool) -> int:
    """Refuse a test whose pulses lie past the settings history, unless `allow`.

    Returns the number of stale pulses (ledgered and left out when allowed).
    """
    stale = [e for e in ledger.entries if e.reason == STALE_SETTINGS]
    count = sum(e.count for e in stale)
    if count and not allow:
        raise StaleSettingsError(
            f"{count} pulse(s) in {len(stale)} file(s) (first {stale[0].path}) are later than the "
            f"beam-settings history {settings_location} covers; give --data a folder with its "
            "own beam_settings/, or pass --allow-stale-settings to score only the covered pulses")
    return count
