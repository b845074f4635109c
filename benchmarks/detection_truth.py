"""Detection benchmark, part 1: the simulated archive and its truth (make or reuse the archive,
load truth.csv, join it to scored pulses, recall by precursor kind, strength and onset)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import stats

STRENGTH_BINS = ("weak", "medium", "strong")
ONSET = "precursor_onset"  # truth.csv: pulses before the trip where the precursor began (0 none)
ONSET_BINS = 4             # onsets of this many pulses or more share one bin


def ensure_archive(path: Path, params) -> dict:
    """Simulate `params` into `path` unless an archive of exactly these parameters is there.

    Returns `{"path", "simulate_seconds" (0 when reused), "summary"}`.
    """
    import json

    from enterprise_tools.simulator import simulate_archive

    path = Path(path)
    recorded = path / "simulation.json"
    if (path / "truth.csv").exists() and recorded.exists():
        saved = json.loads(recorded.read_text())
        wanted = json.loads(json.dumps(dataclasses.asdict(params)))
        if saved.get("params") == wanted:
            return {"path": str(path), "simulate_seconds": 0.0, "reused": True,
                    "summary": saved.get("summary", {})}
    if path.exists():
        shutil.rmtree(path)
    started = time.perf_counter()
    summary = simulate_archive(path, params, workers=os.cpu_count() or 1)
    return {"path": str(path), "simulate_seconds": time.perf_counter() - started,
            "reused": False, "summary": dataclasses.asdict(summary) | {"out_dir": None}}



def load_truth(archive: Path) -> pd.DataFrame:
    """The simulator's truth table, one row per sample pulse (label 0 or 1)."""
    path = archive / "truth.csv"
    truth = pd.read_csv(path)
    needed = {"timestamp_ns", "label", "precursor_kind", "precursor_strength"}
    missing = needed - set(truth.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}; expected the "
                         "sns_simulator truth.csv layout (docs/internals.md)")
    truth = truth[truth["label"].isin([0, 1])]
    return truth.drop_duplicates(subset=["timestamp_ns", "label"])


def strength_edges(truth: pd.DataFrame) -> list[float]:
    """Tertile edges of the precursor strength over all errant samples that have a precursor."""
    errant = truth[(truth["label"] == 1) & (truth["precursor_kind"] != "none")]
    strengths = errant["precursor_strength"].astype(float).to_numpy()
    if strengths.size < 3:
        return [float("-inf"), float("inf")]
    return [float(v) for v in np.quantile(strengths, [1 / 3, 2 / 3])]


def join_truth(timestamp_ns, label, truth: pd.DataFrame, edges: Sequence[float]) -> pd.DataFrame:
    """Per pulse: precursor kind, strength bin and (when truth has it) onset bin.

    Bins are "" for normal pulses and trips without a precursor.
    """
    pulses = pd.DataFrame({"timestamp_ns": np.asarray(timestamp_ns, dtype=np.int64),
                           "label": np.asarray(label, dtype=np.int64)})
    columns = ["timestamp_ns", "label", "precursor_kind", "precursor_strength"]
    if ONSET in truth.columns:  # the realistic simulator's truth.csv has it; older ones do not
        columns.append(ONSET)
    joined = pulses.merge(truth[columns], on=["timestamp_ns", "label"], how="left")
    kind = joined["precursor_kind"].fillna("unknown").astype(str)
    strength = joined["precursor_strength"].astype(float).to_numpy()
    bins = np.array(STRENGTH_BINS)[np.searchsorted(np.asarray(edges), strength, side="right")
                                   .clip(0, len(STRENGTH_BINS) - 1)]
    has_precursor = (joined["label"] == 1) & ~kind.isin(["none", "unknown"])
    joined["strength_bin"] = np.where(has_precursor, bins, "")
    joined["precursor_kind"] = kind
    if ONSET in joined.columns:
        onset = joined[ONSET].fillna(0).astype(np.int64).to_numpy()
        joined["onset_bin"] = np.where(has_precursor & (onset > 0), _onset_bin(onset), "")
    return joined


def _onset_bin(onset: np.ndarray) -> np.ndarray:
    """"1", "2", ... pulses before the trip, the longest lead times pooled as ">=N"."""
    last = ONSET_BINS
    return np.where(onset >= last, f">={last}", onset.astype(str))


def recall_breakdown(joined: pd.DataFrame, scores, threshold: float) -> dict:
    """Recall at the operating point by precursor kind, strength bin and onset (when joined),
    and the ceiling."""
    errant = (joined["label"] == 1).to_numpy()
    alarm = np.asarray(scores) >= threshold
    kinds = joined["precursor_kind"].to_numpy()
    bins = joined["strength_bin"].to_numpy()
    out = {"by_kind": {}, "by_strength": {}}
    for kind in sorted(set(kinds[errant])):
        members = errant & (kinds == kind)
        out["by_kind"][kind] = _caught(alarm, members)
    for name in STRENGTH_BINS:
        members = errant & (bins == name)
        if members.any():
            out["by_strength"][name] = _caught(alarm, members)
    if "onset_bin" in joined.columns:
        onsets = joined["onset_bin"].to_numpy()
        out["by_onset"] = {name: _caught(alarm, errant & (onsets == name))
                           for name in sorted(set(onsets[errant]) - {""})}
    with_precursor = errant & ~np.isin(kinds, ["none", "unknown"])
    out["ceiling"] = {"with_precursor": int(with_precursor.sum()), "trips": int(errant.sum()),
                      "share": stats.ratio(int(with_precursor.sum()), int(errant.sum()))}
    out["unmatched"] = int(np.sum(errant & (kinds == "unknown")))
    return out


def _caught(alarm, members) -> dict:
    caught, total = int(np.sum(alarm & members)), int(np.sum(members))
    return {"caught": caught, "total": total, "recall": stats.ratio(caught, total)}

