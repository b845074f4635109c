"""Physics of one pulse: the beam a configuration makes, drift, precursors, noise."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from enterprise_tools.simulator.params import (
    MINIPULSE_NS,
    N_SAMPLES,
    NOMINAL_LOSS,
    NOMINAL_PEAK,
    NS,
    PRODUCTION_RANGES,
    PV_NAMES,
    SAMPLE_NS,
    TRACE1_RANGE,
    TRACE1_STEP,
    TRACE2_RANGE,
    TRACE2_STEP,
    WINDOW_BEGIN,
    SimulatorParams,
    parse_start,
)

# --------------------------------------------------------------------------------------
# Physics of one pulse
# --------------------------------------------------------------------------------------


class Beam(NamedTuple):
    """What a pulse looks like under one set of settings (derived, deterministic)."""

    peak: float  # Trace1 peak current
    droop: float  # relative current loss from pulse start to end
    ripple: float  # relative RF ripple amplitude
    ripple_khz: float
    start: int  # first beam sample
    length: int  # beam samples
    bwidth: float  # us, as the status record reports it
    on_ns: float  # mini-pulse on width at flat top
    start_ns: float  # on width at the start of the ramp-up
    ramp_up_us: float
    ramp_down_us: float
    pw_change_ns: float
    leak: float  # beam fraction leaking through the chopper gaps
    edge: float  # chopper edge softness (share spilled into the neighbouring samples)
    loss: float  # baseline lost fraction
    slope: float  # relative change of the loss across the pulse
    bump_at: float  # loss bump centre (pulse fraction), width and height (lost fraction)
    bump_width: float
    bump: float


def beam_for(values: Sequence[float], loss_multiplier_max: float = 4.0) -> Beam:
    """Map the settings to the beam they produce (see the module docstring)."""
    v = {pv: values[i] for i, pv in enumerate(PV_NAMES)}
    rf, ign, h2 = v["Src:RF_Gnd:Pwr_Set"], v["Src:Ign:Pwr_Set"], v["Src:H2:Flw_Set"]
    peak = NOMINAL_PEAK * (rf / 55.0) ** 0.8 * (1.0 + 0.04 * (ign - 300.0) / 50.0)
    peak *= 1.0 + 0.01 * (v["Src:Accel:V_Set"] - 65.0)
    droop = float(np.clip(0.06 + 0.006 * (rf - 55.0) + 0.012 * (28.0 - h2), 0.02, 0.15))
    tuner = (v["FE_IS:Match:TunerPos"] - 50.0) / 10.0
    chop_kv = (v["LEBT:Chop_P:V_Set"] - v["LEBT:Chop_N:V_Set"]) / 2.0

    def share(pv):  # where a PV sits in its production range, 0..1
        lo, hi = PRODUCTION_RANGES[pv]
        return float(np.clip((v[pv] - lo) / (hi - lo), 0.0, 1.0))

    # LEBT transport: over-focusing and steering off axis scrape beam (monotone in the range
    # used), the source tuner adds a little; 0 = best, 1 = worst configuration
    mismatch = np.clip(
        0.45 * share("LEBT:Focus_1:V_Set") + 0.45 * share("LEBT:Steer_A:V_Set") + 0.1 * tuner**2,
        0.0,
        1.0,
    )
    loss = NOMINAL_LOSS * (1.0 + (loss_multiplier_max - 1.0) * mismatch)
    beam_on = v["ICS_Tim:Chop_Flavor1:BeamOn"]
    return Beam(
        peak=float(peak),
        droop=droop,
        ripple=0.005 + 0.008 * min(1.0, tuner * tuner),
        ripple_khz=8.0 + 8.0 * (v["Src:Ign:Pwr_Set"] - 250.0) / 100.0,
        start=WINDOW_BEGIN + int(round(v["ICS_MPS:Gate_Source:Offset"] * 10)),
        length=int(round(beam_on * 10)),
        bwidth=beam_on,
        on_ns=v["ICS_Tim:Chop_Flavor1:OnPulseWidth"],
        start_ns=v["ICS_Tim:Chop_Flavor1:StartPulseWidth"],
        ramp_up_us=v["ICS_Tim:Chop_Flavor1:RampUp"],
        ramp_down_us=v["ICS_Chop:RampDown:PW"],
        pw_change_ns=v["ICS_Chop:RampUp:PWChange"],
        leak=0.01 * (2.5 / chop_kv) ** 3,
        edge=float(np.clip(0.12 * (2.5 / chop_kv) ** 2 - 0.05, 0.02, 0.12)),
        loss=float(loss),
        # the loss grows along the pulse as the source droops and the LEBT lens follows
        slope=-0.3 + 1.5 * share("LEBT:Steer_B:V_Set"),
        bump_at=0.15 + 0.7 * share("LEBT:Focus_2:V_Set"),
        bump_width=0.02 + 0.2 * share("LEBT:Steer_C:V_Set"),
        bump=float(loss * 1.5 * share("LEBT:Steer_D:V_Set")),
    )


_DRIFT_CHANNELS = 4  # baseline loss, slope, bump height, bump place
_DRIFT_TERMS = 4


def _drift_terms(params: SimulatorParams) -> np.ndarray:
    """[channel, term, (period_h, phase)] of the slow machine drift, fixed by the seed."""
    rng = np.random.default_rng(np.random.SeedSequence(params.seed, spawn_key=(4,)))
    shape = (_DRIFT_CHANNELS, _DRIFT_TERMS)
    periods = params.drift_hours * np.exp(rng.uniform(np.log(0.5), np.log(2.0), shape))
    phases = rng.uniform(0.0, 2 * np.pi, shape)
    return np.stack([periods, phases], axis=-1)


def drift_at(t_ns: int, params: SimulatorParams) -> np.ndarray:
    """The four drift signals (unit rms, smooth over ``drift_hours``) at time ``t_ns``.

    A sum of sinusoids with random periods and phases: slow wander of the machine (vacuum,
    temperatures, source ageing) that no set point records, continuous across settings changes.
    """
    terms = _drift_terms(params)
    hours = (t_ns - parse_start(params.start)) / (3600.0 * NS)
    waves = np.sin(2 * np.pi * hours / terms[..., 0] + terms[..., 1])
    return waves.sum(axis=1) * np.sqrt(2.0 / _DRIFT_TERMS)


def beam_at(values: Sequence[float], t_ns: int, params: SimulatorParams) -> Beam:
    """``beam_for`` the settings, moved by the slow drift at ``t_ns`` (none when the drift knobs
    are 0: then exactly ``beam_for``)."""
    beam = beam_for(values, params.loss_multiplier_max)
    if params.drift_loss == 0 and params.drift_shape == 0:
        return beam
    d = drift_at(t_ns, params)
    return beam._replace(
        loss=beam.loss * max(0.3, 1.0 + params.drift_loss * d[0]),
        slope=beam.slope + params.drift_shape * d[1],
        bump=beam.bump * max(0.0, 1.0 + params.drift_shape * d[2]),
        bump_at=float(np.clip(beam.bump_at + 0.2 * params.drift_shape * d[3], 0.1, 0.9)),
    )


class Event(NamedTuple):
    """What happens on one pulse beyond normal operation."""

    precursor: str = "none"  # none | ramp | burst | sag | rf_jitter
    strength: float = 0.0  # in units of the configuration's baseline loss
    abort_at: float | None = None  # pulse fraction where the beam is cut (a trip)
    surge: float = 0.0  # loss surge before the abort, in units of the baseline loss
    blip: float = 0.0  # benign loss blip height (baseline-loss units); 0 = none


class RunUp(NamedTuple):
    """The precursor of one errant trip: its shape, full strength and onset (pulses before the
    trip where it began; 0 for a trip without precursor)."""

    precursor: str
    strength: float
    onset: int

    def event(self, distance: int, growth: float) -> Event:
        """The pulse ``distance`` pulses before the trip (1 = the sample pulse): the precursor
        grown to ``strength * ((onset - distance + 1) / onset) ** growth``, or nothing before
        the onset."""
        if self.onset == 0 or distance > self.onset:
            return Event()
        return Event(self.precursor, self.strength * ((self.onset - distance + 1) / self.onset) ** growth)

    def trip(self, rng: np.random.Generator) -> Event:
        """The trip pulse: the loss surges (8-40x the baseline) and the beam aborts part way."""
        return Event(self.precursor, self.strength, abort_at=rng.uniform(0.1, 0.9),
                     surge=rng.uniform(8.0, 40.0))


def draw_run_up(params: SimulatorParams, rng: np.random.Generator) -> RunUp:
    """Draw an errant trip's precursor as the archive and the every-pulse stream both do: none
    for ``no_precursor_fraction`` of trips, else a kind, a log-uniform strength and an onset
    from ``precursor_onset_pmf``."""
    if rng.random() < params.no_precursor_fraction:
        return RunUp("none", 0.0, 0)
    kind = str(rng.choice(params.precursor_kinds))
    lo, hi = params.precursor_strength
    strength = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    onset = 1
    if params.precursor_onset_max > 1:
        pmf = params.precursor_onset_pmf()
        onset = int(rng.choice(len(pmf), p=pmf)) + 1
    return RunUp(kind, strength, onset)


def draw_blip(params: SimulatorParams, rng: np.random.Generator) -> float:
    """A benign blip's height on one non-trip pulse (0: none), ``blip_fraction`` of pulses."""
    if params.blip_fraction > 0 and rng.random() < params.blip_fraction:
        lo, hi = params.blip_strength
        return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    return 0.0


def _flicker(rng: np.random.Generator, n: int, rms: float) -> np.ndarray:
    """1/f noise of the given rms, shaped in the frequency domain."""
    if rms <= 0:
        return np.zeros(n)
    half = n // 2 + 1
    spectrum = rng.standard_normal(half) + 1j * rng.standard_normal(half)
    spectrum /= np.sqrt(np.maximum(np.arange(half), 1.0))
    spectrum[0] = 0.0
    noise = np.fft.irfft(spectrum, n)
    return noise * (rms / (noise.std() or 1.0))


def _window(u: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Smooth 0..1..0 window over pulse fractions [lo, hi] (raised cosine)."""
    inside = (u >= lo) & (u <= hi)
    out = np.zeros_like(u)
    out[inside] = 0.5 - 0.5 * np.cos(2 * np.pi * (u[inside] - lo) / (hi - lo))
    return out


def _chopper(beam: Beam, t_ns: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Share of each 100 ns sample during which the chopper lets beam through."""
    t_us = t_ns / 1000.0
    width = beam.start_ns + (beam.on_ns - beam.start_ns) * np.clip(t_us / beam.ramp_up_us, 0, 1)
    tail = (t_us - (beam.bwidth - beam.ramp_down_us)) / beam.ramp_down_us
    width = width - beam.pw_change_ns * np.clip(tail, 0, 1)
    phase = t_ns + rng.uniform(0.0, MINIPULSE_NS)

    def on_time(a):  # beam-on time accumulated from phase 0 up to a
        turns, rest = np.divmod(a, MINIPULSE_NS)
        return turns * width + np.minimum(rest, width)

    share = (on_time(phase + SAMPLE_NS) - on_time(phase)) / SAMPLE_NS
    edge = beam.edge
    share = np.convolve(share, [edge, 1.0 - 2.0 * edge, edge], mode="same")
    return beam.leak + (1.0 - beam.leak) * share


def _precursor_loss(
    event: Event, u: np.ndarray, loss: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Extra lost fraction and relative current change of a precursor pulse."""
    extra = np.zeros_like(u)
    current = np.ones_like(u)
    size = event.strength * loss
    if event.precursor == "ramp":
        onset = rng.uniform(0.2, 0.8)
        power = rng.uniform(1.0, 2.5)
        extra = size * np.clip((u - onset) / (1.0 - onset), 0.0, 1.0) ** power
    elif event.precursor == "burst":
        for _ in range(int(rng.integers(1, 5))):
            centre, width = rng.uniform(0.1, 0.95), rng.uniform(0.005, 0.04)
            extra += 2.0 * size * np.exp(-0.5 * ((u - centre) / width) ** 2)
    elif event.precursor == "sag":
        lo = rng.uniform(0.05, 0.6)
        shape = _window(u, lo, min(1.0, lo + rng.uniform(0.15, 0.5)))
        current = 1.0 - min(0.5, 0.04 * event.strength) * shape
        extra = 0.7 * size * shape
    elif event.precursor == "rf_jitter":
        lo = rng.uniform(0.05, 0.7)
        shape = _window(u, lo, min(1.0, lo + rng.uniform(0.2, 0.5)))
        cycles = rng.uniform(20.0, 80.0)  # kHz-scale modulation, phase wandering
        phase = np.cumsum(rng.normal(0.0, 0.15, len(u)))
        wobble = 0.5 + 0.5 * np.sin(2 * np.pi * cycles * u + phase)
        extra = size * shape * wobble
        current = 1.0 + 0.02 * min(1.0, event.strength / 2.0) * shape * np.sin(
            2 * np.pi * cycles * u + phase
        )
    return extra, current


def pulse_traces(
    beam: Beam, event: Event, rng: np.random.Generator, params: SimulatorParams
) -> tuple[np.ndarray, np.ndarray]:
    """Trace1 (upstream current) and Trace2 (differential current) of one pulse, float32."""
    i = np.arange(N_SAMPLES)
    t_ns = (i - beam.start) * SAMPLE_NS
    u = np.clip((i - beam.start) / beam.length, 0.0, 1.0)
    inside = (i >= beam.start) & (i < beam.start + beam.length)
    jitter = params.pulse_jitter
    peak = beam.peak * (1.0 + 0.3 * jitter * rng.standard_normal())
    rise = 1.0 - np.exp(-np.maximum(t_ns, 0.0) / 8000.0)  # ~8 us source rise
    ripple = beam.ripple * np.sin(2 * np.pi * beam.ripple_khz * t_ns / 1e6 + rng.uniform(0, 6.3))
    current = peak * (1.0 - beam.droop * u) * rise * (1.0 + ripple) * inside
    loss = beam.loss * (1.0 + jitter * rng.standard_normal())
    lost = loss * (1.0 + beam.slope * (u - 0.5))
    lost = lost + beam.bump * (1.0 + jitter * rng.standard_normal()) * np.exp(
        -0.5 * ((u - beam.bump_at) / beam.bump_width) ** 2
    )
    extra, change = _precursor_loss(event, u, loss, rng)
    lost = lost + extra
    if event.blip > 0:
        # a benign disturbance: one or two short loss bursts that do not grow into a trip
        for _ in range(int(rng.integers(1, 3))):
            centre, width = rng.uniform(0.05, 0.95), rng.uniform(0.003, 0.02)
            lost = lost + 2.0 * event.blip * loss * np.exp(-0.5 * ((u - centre) / width) ** 2)
    current = current * change
    if event.abort_at is not None:
        # the loss surges and the machine-protection system cuts the beam ~2 us later
        tau = rng.uniform(0.005, 0.05)
        before = np.exp(-np.clip(event.abort_at - u, 0.0, None) / tau) * (u <= event.abort_at)
        lost = lost + event.surge * loss * before
        cut = np.exp(-np.clip(u - event.abort_at, 0.0, None) * beam.length / 20.0)
        current = current * cut
    beam_current = current * _chopper(beam, t_ns, rng)
    trace1 = beam_current + _noise(rng, params.trace1_noise, params)
    trace2 = beam_current * np.clip(lost, 0.0, 0.9) + _noise(rng, params.trace2_noise, params)
    return (
        _digitise(trace1, TRACE1_STEP, TRACE1_RANGE),
        _digitise(trace2, TRACE2_STEP, TRACE2_RANGE),
    )


def _noise(rng: np.random.Generator, rms: float, params: SimulatorParams) -> np.ndarray:
    noise = rng.normal(0.0, rms, N_SAMPLES) + _flicker(rng, N_SAMPLES, rms * params.flicker_noise)
    for _ in range(rng.poisson(params.glitches_per_trace)):  # single-sample ADC glitches
        noise[rng.integers(0, N_SAMPLES)] += rng.choice([-1.0, 1.0]) * rng.uniform(5.0, 30.0) * rms
    return noise


def _digitise(x: np.ndarray, step: float, bounds: tuple[float, float]) -> np.ndarray:
    return (np.round(np.clip(x, *bounds) / step) * step).astype(np.float32)
