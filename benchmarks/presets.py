"""Which simulator parameters a benchmark preset's archive is made with (suite and device runner)."""

from __future__ import annotations


def preset_params(preset: str, seed: int, *, demo_hours: float, hours: float | None = None):
    """`SimulatorParams` of `preset`'s benchmark archive, or None when this code base lacks it.

    "demo" is `demo_hours` long; any other preset keeps its own length (the realistic preset is
    sized so that each of 5-7 rolling blocks holds >= 1,000 normal and >= 50 errant samples).
    `hours` shortens either (smoke tests).
    """
    from enterprise_tools.simulator import SimulatorParams

    if preset == "demo":
        return SimulatorParams.demo(hours=hours or demo_hours, seed=seed)
    make = getattr(SimulatorParams, preset, None)
    if make is None:
        return None
    return make(seed=seed) if hours is None else make(seed=seed, hours=hours)
