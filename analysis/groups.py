"""Configuration groups in words: which beam settings set a group apart from the largest one.

A group id ("17") tells a reader nothing; "Src:RF_Gnd:Pwr_Set 41.2 (largest group: 40.0)"
tells them what changed. The report's per-group page shows this beside each group's figures.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MAX_SETTINGS_NAMED = 2  # settings named per group; the rest counted ("+2 more settings")
RELATIVE_TOLERANCE = 1e-3  # medians closer than this share of the setting's range are the same


def describe_groups(groups, settings, settings_names: Sequence[str], shown=None) -> dict[str, str]:
    """{group id as text: description} for the groups in `shown` (default: every group).

    The largest group (most pulses) is the reference; each other group is described by the
    settings whose median differs from the reference's median, the largest change (as a share
    of the setting's range over all the pulses) first: "LEBT:Chop_N:V_Set 2.1 (largest group:
    2.0); +1 more setting". A group with the reference's
    settings (the beam came back to them) says so. Without settings (`settings` [n, 0]) the
    result is empty.

    Args:
        groups: [n] configuration group id per pulse.
        settings: [n, k] settings in force at each pulse (raw, not scaled).
        settings_names: the k setting (PV) names.
        shown: group ids to describe (ids not in `groups` are left out).
    """
    ids = np.asarray(groups)
    values = np.asarray(settings, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] != ids.size:
        raise ValueError(f"settings must be [n, k] with one row per group id; got shape "
                         f"{values.shape} for {ids.size} pulses.")
    if values.shape[1] != len(settings_names):
        raise ValueError(f"settings has {values.shape[1]} columns but {len(settings_names)} names.")
    if ids.size == 0 or values.shape[1] == 0:
        return {}
    unique, counts = np.unique(ids, return_counts=True)
    reference = unique[np.argmax(counts)]
    medians = {g: np.median(values[ids == g], axis=0) for g in unique}
    base = medians[reference]
    span = np.ptp(values, axis=0)
    span = np.where(span > 0, span, np.maximum(np.abs(base), 1e-12))
    wanted = unique if shown is None else [g for g in unique if str(g) in {str(s) for s in shown}]
    out = {}
    for g in wanted:
        if g == reference:
            out[str(g)] = "largest group (the reference for the others)"
            continue
        change = np.abs(medians[g] - base) / span
        moved = [i for i in np.argsort(-change, kind="stable") if change[i] > RELATIVE_TOLERANCE]
        if not moved:
            out[str(g)] = "same settings as the largest group (the beam came back to them)"
            continue
        named = [f"{settings_names[i]} {medians[g][i]:.3g} (largest group: {base[i]:.3g})"
                 for i in moved[:MAX_SETTINGS_NAMED]]
        extra = len(moved) - MAX_SETTINGS_NAMED
        more = f"; +{extra} more setting{'s' if extra > 1 else ''}" if extra > 0 else ""
        out[str(g)] = "; ".join(named) + more
    return out
