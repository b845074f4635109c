"""Settings history (segments of constant settings) and the acquisition plan."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from enterprise_tools.simulator.params import (
    ERRANT_ALARM,
    NS,
    PRODUCTION_RANGES,
    PV_INDEX,
    PV_NAMES,
    TUNABLE,
    TUNING_STEP,
    SimulatorParams,
    parse_start,
)

# --------------------------------------------------------------------------------------
# Settings schedule: segments of constant settings
# --------------------------------------------------------------------------------------


class Segment(NamedTuple):
    start_ns: int
    end_ns: int
    mode: str  # production | off | study | low_rr
    values: tuple[float, ...]  # one per PV_NAMES


def _draw_configuration(rng: np.random.Generator) -> dict[str, float]:
    values = {pv: float(rng.uniform(lo, hi)) for pv, (lo, hi) in PRODUCTION_RANGES.items()}
    values["ICS_Tim:Gate_BeamRef:GateWidth"] = values["ICS_Tim:Chop_Flavor1:BeamOn"] + float(
        rng.uniform(20.0, 60.0)
    )
    values["ICS_Tim:Gate_BeamOn:RR"] = 60.0
    return _rounded(values)


def _tune(values: dict[str, float], rng: np.random.Generator) -> dict[str, float]:
    tuned = dict(values)
    for pv in rng.choice(TUNABLE, size=int(rng.integers(1, 4)), replace=False):
        lo, hi = PRODUCTION_RANGES[pv]
        step = rng.normal(0.0, TUNING_STEP * (hi - lo))
        tuned[pv] = float(np.clip(tuned[pv] + step, lo, hi))
    return _rounded(tuned)


def _rounded(values: dict[str, float]) -> dict[str, float]:
    # set points as an operator types them: 4 significant decimals
    return {pv: round(v, 4) for pv, v in values.items()}


def _mode_values(base: dict[str, float], mode: str, rng: np.random.Generator) -> dict[str, float]:
    values = dict(base)
    if mode == "off":
        values["ICS_Tim:Gate_BeamOn:RR"] = 0.0
    elif mode == "study":
        values["ICS_Tim:Gate_BeamOn:RR"] = float(rng.choice([30.0, 1.0]))
        values["ICS_Tim:Chop_Flavor1:BeamOn"] = round(float(rng.uniform(100.0, 600.0)), 1)
        values["ICS_Tim:Gate_BeamRef:GateWidth"] = values["ICS_Tim:Chop_Flavor1:BeamOn"] + 40.0
    elif mode == "low_rr":
        values["ICS_Tim:Gate_BeamOn:RR"] = float(rng.choice([30.0, 10.0]))
    return values


def build_schedule(params: SimulatorParams) -> list[Segment]:
    """Cut the simulated period into segments of constant settings (changes on whole seconds).

    Production runs with competing random events: tuning steps, re-configurations, and
    excursions (beam off, study, low rep rate) after which production resumes.
    """
    rng = np.random.default_rng(np.random.SeedSequence(params.seed, spawn_key=(0,)))
    start = parse_start(params.start)
    end = start + int(round(params.hours * 3600)) * NS
    rates = {  # per hour
        "tune": 1.0 / params.tuning_interval_h,
        "reconfig": 1.0 / params.reconfig_interval_h,
        "off": params.beam_off_per_day / 24.0,
        "study": params.study_per_day / 24.0,
        "low_rr": params.low_rr_per_day / 24.0,
    }
    lengths = {"off": params.beam_off_hours, "study": params.study_hours,
               "low_rr": params.low_rr_hours}
    names = list(rates)
    total = sum(rates.values())
    weights = np.array([rates[n] for n in names]) / total
    production = _draw_configuration(rng)
    segments: list[Segment] = []
    t = start

    def add(mode: str, values: dict[str, float], hours: float) -> int:
        stop = min(end, t + max(1, int(round(hours * 3600))) * NS)
        segments.append(Segment(t, stop, mode, tuple(values[pv] for pv in PV_NAMES)))
        return stop

    while t < end:
        t = add("production", production, rng.exponential(1.0 / total))
        if t >= end:
            break
        event = names[int(rng.choice(len(names), p=weights))]
        if event == "tune":
            production = _tune(production, rng)
        elif event == "reconfig":
            production = _draw_configuration(rng)
        else:
            hours = rng.uniform(*lengths[event])
            t = add(event, _mode_values(production, event, rng), hours)
    return segments


def settings_rows(
    segments: Sequence[Segment], day_start: int, day_end: int, heartbeat_s: float
) -> dict[str, np.ndarray]:
    """The archiver's rows for one day: every change, plus a heartbeat of every PV."""
    starts = np.array([s.start_ns for s in segments], dtype=np.int64)
    table = np.array([s.values for s in segments], dtype=np.float64)
    step = int(round(heartbeat_s)) * NS
    first = segments[0].start_ns
    k0 = -(-(max(first, day_start) - first) // step)  # first heartbeat of the day
    beats = first + step * np.arange(k0, max(k0, -(-(day_end - first) // step)), dtype=np.int64)
    rows = {}
    for k, pv in enumerate(PV_NAMES):
        column = table[:, k]
        changed = np.r_[True, column[1:] != column[:-1]]
        change_times = starts[changed]
        change_times = change_times[(change_times >= day_start) & (change_times < day_end)]
        times = np.union1d(change_times, beats)
        times = times[times >= first]
        if not len(times):
            continue
        seg = np.searchsorted(starts, times, side="right") - 1
        rows[pv] = np.column_stack([times.astype(np.float64), column[seg]])
    return rows


# --------------------------------------------------------------------------------------
# Acquisitions: which files exist, when, and what happens in them
# --------------------------------------------------------------------------------------

KIND_NORMAL, KIND_ERRANT, KIND_MPS = 0, 1, 2
_ACQ_DTYPE = np.dtype(
    [("t_ns", "i8"), ("kind", "i1"), ("segment", "i4"), ("alarm", "i2"), ("bad_pulse", "i2"),
     ("corrupt", "i1"), ("n_pulses", "i2"), ("old_style", "i1")]
)


def pulse_period_ns(rep_rate: float) -> int:
    return int(round(NS / rep_rate))


def _length_drawer(params: SimulatorParams, rng: np.random.Generator):
    """``kind -> (n_pulses, old_style)`` for one acquisition (module docstring: no position leak).

    Errant files hold i earlier pulses + the sample + the trip; with ``match_sample_index``
    i follows a normal sample's index distribution. Older-style files hold the
    ``Before``/``During`` pair only. Draws from ``rng`` only for the knobs that are on.
    """
    lengths, length_p = params.normal_file_lengths()
    index_pmf = params.sample_index_pmf()
    old_normal = params.old_style_normal_file_fraction()

    def draw(kind: int) -> tuple[int, int]:
        if kind == KIND_MPS:
            return params.context_pulses + 2, 0
        if kind == KIND_NORMAL:
            if old_normal > 0 and rng.random() < old_normal:
                return 2, 1
            if len(lengths) == 1:
                return int(lengths[0]), 0
            return int(rng.choice(lengths, p=length_p)), 0
        if params.old_style_fraction > 0 and rng.random() < params.old_style_fraction:
            return 2, 1
        if not params.match_sample_index:
            return params.context_pulses + 2, 0
        return int(rng.choice(len(index_pmf), p=index_pmf)) + 2, 0

    return draw


def plan_acquisitions(params: SimulatorParams, segments: Sequence[Segment]) -> np.ndarray:
    """Every acquisition (structured array, time order): start time, kind, segment, alarm,
    number of pulses and style (1 = older-style ``Before``/``During`` pair).

    An acquisition lies wholly inside one segment (1 s clear of its edges) and 1 s clear of the
    previous one, so all its pulses see one set of settings.
    """
    rng = np.random.default_rng(np.random.SeedSequence(params.seed, spawn_key=(1,)))
    # lengths and styles of the realism knobs come from their own stream, drawn only when a
    # knob is on, so archives without them keep every earlier random draw (and their bytes)
    shape_rng = np.random.default_rng(np.random.SeedSequence(params.seed, spawn_key=(3,)))
    draw_length = _length_drawer(params, shape_rng)
    longest = {KIND_NORMAL: int(params.normal_file_lengths()[0].max()),
               KIND_ERRANT: (len(params.sample_index_pmf()) + 1 if params.match_sample_index
                             else params.context_pulses + 2),
               KIND_MPS: params.context_pulses + 2}
    planned = []
    for index, seg in enumerate(segments):
        if seg.mode == "off":
            continue
        period = pulse_period_ns(seg.values[PV_INDEX["ICS_Tim:Gate_BeamOn:RR"]])
        hours = (seg.end_ns - seg.start_ns) / NS / 3600.0
        draws = [
            (KIND_NORMAL, rng.poisson(hours * 3600.0 / params.normal_interval_s)),
            (KIND_ERRANT, rng.poisson(hours * params.errant_trips_per_hour)),
            (KIND_MPS, rng.poisson(hours * params.mps_trips_per_hour)),
        ]
        items = []
        for kind, count in draws:
            length = (longest[kind] - 1) * period  # room for the longest file of this kind
            lo, hi = seg.start_ns + NS, seg.end_ns - NS - length
            if hi <= lo:
                continue
            # times on whole microseconds, like the timing system's stamps
            times = rng.integers(lo // 1000, hi // 1000, size=count) * 1000
            for t in times:
                n_pulses, old_style = draw_length(kind)
                items.append((int(t), kind, (n_pulses - 1) * period, n_pulses, old_style))
        items.sort()
        last_end = -np.inf
        for t, kind, length, n_pulses, old_style in items:
            if t < last_end + NS:
                continue
            last_end = t + length
            alarm, bad_pulse = 0, -1
            if kind == KIND_ERRANT:
                alarm = ERRANT_ALARM
            elif kind == KIND_MPS:
                alarm = int(rng.choice(params.mps_alarm_codes))
            elif not old_style and rng.random() < params.mislabelled_fraction:
                alarm = int(rng.choice((ERRANT_ALARM, *params.mps_alarm_codes)))
                bad_pulse = int(rng.integers(0, n_pulses))
            planned.append((t, kind, index, alarm, bad_pulse, 0, n_pulses, old_style))
    plan = np.array(planned, dtype=_ACQ_DTYPE)
    if params.corrupt_files and len(plan):
        chosen = rng.choice(len(plan), size=min(params.corrupt_files, len(plan)), replace=False)
        plan["corrupt"][np.sort(chosen)] = 1 + (np.arange(len(chosen)) % 2)  # 1 cut, 2 garbled
    return plan
