"""An uninterrupted 60 Hz SNS pulse stream from the simulator: every pulse, for H hours.

The archive simulator writes sampled acquisitions (a few pulses a minute); what an operator
feels is every pulse. This module replays the simulator's machine - its settings schedule
(`build_schedule`), beam physics (`beam_for`, `pulse_traces`) and fault model (`Event`) - as a
continuous stream of analysis windows, in memory and in bounded chunks, so hours of beam can be
scored through the live path without touching the disk.

* Pulses come at the segment's repetition rate during production segments only (beam off,
  short-pulse studies and low-rate periods carry no production beam, which the model is not
  asked about), 1 s clear of each settings change, like the archive's acquisitions.
* Errant trips (Alarm 48) arrive as a Poisson process at `params.errant_trips_per_hour`: the
  precursor pulse (a shape and strength drawn as the archive does, or none for
  `no_precursor_fraction`), then the trip pulse; other machine-protection trips at
  `params.mps_trips_per_hour` abort a pulse without a precursor. After any trip the beam is
  off for `recovery_s`.
* Cost: one full pulse simulation takes ~6 ms (16000 samples, 1/f noise), too slow for hours at
  60 Hz. So normal pulses are drawn from a bank of `bank_size` fully simulated pulses of the
  current configuration, each with white noise of the simulator's `trace2_noise` rms added (a
  random stretch of a per-segment pool of 2**18 draws, so no two streamed pulses are equal);
  precursor and trip pulses are always simulated in full.
  `bank_size=0` simulates every pulse in full.
* Chunks never split a precursor from its trip, so the label of every pulse (1 when the next
  pulse is an errant trip) is known inside its chunk.

Knows no ML: NumPy arrays out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np

from enterprise_tools.sns_pvs import ERRANT_BEAM_PVS
from enterprise_tools.sns_simulator import (
    Event,
    SimulatorParams,
    beam_for,
    build_schedule,
    pulse_traces,
)

ERRANT_ALARM = 48
_NS = 1_000_000_000


@dataclasses.dataclass
class StreamChunk:
    """Consecutive pulses: times, Trace2 windows, settings (the asked PVs), alarms, labels."""

    timestamps_ns: np.ndarray  # int64 [n]
    traces: np.ndarray  # float32 [n, shift]
    settings: np.ndarray  # float64 [n, len(pvs)]
    alarms: np.ndarray  # int64 [n]
    labels: np.ndarray  # int8 [n]: 1 the next pulse is an errant trip, 0 not, -1 trip pulses
    config_id: np.ndarray  # int32 [n]: the schedule segment


@dataclasses.dataclass(frozen=True)
class StreamSpec:
    """What to stream: the simulated machine, how long, which window and PVs, chunking."""

    params: SimulatorParams
    hours: float  # of production beam (the schedule's other periods are skipped)
    begin: int = 3000
    shift: int = 10000
    pvs: tuple[str, ...] = ERRANT_BEAM_PVS
    chunk_pulses: int = 60
    bank_size: int = 64
    recovery_s: float = 5.0

    def __post_init__(self):
        if self.hours <= 0 or self.chunk_pulses < 1 or self.bank_size < 0 or self.recovery_s < 0:
            raise ValueError(f"StreamSpec: need hours > 0, chunk_pulses >= 1, bank_size >= 0, "
                             f"recovery_s >= 0; got {self}")
        unknown = [pv for pv in self.pvs if pv not in ERRANT_BEAM_PVS]
        if unknown:
            raise ValueError(f"StreamSpec.pvs: the simulator has no PV {unknown}; it knows "
                             f"{list(ERRANT_BEAM_PVS)}")
        if self.begin + self.shift > 16000:
            raise ValueError(f"StreamSpec: window [{self.begin}, {self.begin + self.shift}) runs "
                             "past the 16000 samples of a DCM record")


def _precursor_event(params: SimulatorParams, rng: np.random.Generator) -> Event:
    if rng.random() < params.no_precursor_fraction:
        return Event()
    lo, hi = params.precursor_strength
    return Event(str(rng.choice(params.precursor_kinds)),
                 float(np.exp(rng.uniform(np.log(lo), np.log(hi)))))


def pulse_stream(spec: StreamSpec, seed: int = 0) -> Iterator[StreamChunk]:
    """Yield the stream in chunks of about `spec.chunk_pulses` pulses (module docstring)."""
    # `hours` counts production beam: schedule a longer period and stop once that much is out
    params = dataclasses.replace(spec.params, hours=4.0 * spec.hours + 2.0)
    budget = int(spec.hours * 3600 * _NS)
    streamed = 0
    rng = np.random.default_rng(np.random.SeedSequence(params.seed, spawn_key=(7, seed)))
    columns = [ERRANT_BEAM_PVS.index(pv) for pv in spec.pvs]
    rr_index = ERRANT_BEAM_PVS.index("ICS_Tim:Gate_BeamOn:RR")
    window = slice(spec.begin, spec.begin + spec.shift)
    pending: list[tuple] = []  # (t, trace, settings, alarm, label, config)

    def flush(final: bool = False):
        nonlocal pending
        cut = len(pending) if final else spec.chunk_pulses
        while cut < len(pending) and pending[cut - 1][4] == 1:  # keep precursor + trip together
            cut += 1
        out, pending = pending[:cut], pending[cut:]
        return StreamChunk(np.array([p[0] for p in out], np.int64),
                           np.stack([p[1] for p in out]).astype(np.float32),
                           np.array([p[2] for p in out], np.float64).reshape(len(out), len(columns)),
                           np.array([p[3] for p in out], np.int64),
                           np.array([p[4] for p in out], np.int8),
                           np.array([p[5] for p in out], np.int32))

    for config, segment in enumerate(build_schedule(params)):
        if streamed >= budget:
            break
        if segment.mode != "production":
            continue
        values = segment.values
        beam = beam_for(values, params.loss_multiplier_max)
        period = int(round(_NS / values[rr_index]))
        settings = [values[i] for i in columns]
        start, stop = segment.start_ns + _NS, segment.end_ns - _NS
        if stop <= start:
            continue
        bank = [pulse_traces(beam, Event(), rng, params)[1][window]
                for _ in range(spec.bank_size)]
        noise = rng.normal(0.0, params.trace2_noise, 1 << 18).astype(np.float32) if bank else None
        # fault times in this segment (Poisson), as pulse indices
        hours = (stop - start) / _NS / 3600.0
        n_pulses = (stop - start) // period
        trips = {int(i): ERRANT_ALARM for i in rng.integers(
            1, max(2, n_pulses), rng.poisson(hours * params.errant_trips_per_hour))}
        for i in rng.integers(0, max(1, n_pulses), rng.poisson(hours * params.mps_trips_per_hour)):
            trips.setdefault(int(i), int(rng.choice(params.mps_alarm_codes)))
        recovery = int(spec.recovery_s * _NS / period)
        k = 0
        while k < n_pulses and streamed < budget:
            t = start + k * period
            before = len(pending)
            # a fault scheduled on pulse k + 1 (one that falls in a recovery gap is lost)
            alarm = trips.get(k + 1, 0) if k + 1 < n_pulses else 0
            if alarm == ERRANT_ALARM:
                event = _precursor_event(params, rng)
                precursor = pulse_traces(beam, event, rng, params)[1][window]
                pending.append((t, precursor, settings, 0, 1, config))
                trip = Event(event.precursor, event.strength, abort_at=rng.uniform(0.1, 0.9),
                             surge=rng.uniform(8.0, 40.0))
                pending.append((t + period, pulse_traces(beam, trip, rng, params)[1][window],
                                settings, ERRANT_ALARM, -1, config))
                k += 2 + recovery
            elif alarm:
                pending.append((t, _normal(bank, noise, beam, rng, params, window), settings, 0, 0,
                                config))
                mps = Event(abort_at=rng.uniform(0.1, 0.9))
                pending.append((t + period, pulse_traces(beam, mps, rng, params)[1][window],
                                settings, alarm, -1, config))
                k += 2 + recovery
            else:
                pending.append((t, _normal(bank, noise, beam, rng, params, window), settings, 0, 0,
                                config))
                k += 1
            streamed += (len(pending) - before) * period
            while len(pending) > spec.chunk_pulses and pending[spec.chunk_pulses - 1][4] != 1:
                yield flush()
    while pending:
        yield flush(final=True)


def _normal(bank: Sequence[np.ndarray], noise: np.ndarray | None, beam, rng: np.random.Generator,
            params: SimulatorParams, window: slice) -> np.ndarray:
    """A normal pulse: a bank pulse plus white noise (a random stretch of the segment's noise
    pool), or a full simulation without a bank."""
    if not bank:
        return pulse_traces(beam, Event(), rng, params)[1][window]
    base = bank[int(rng.integers(len(bank)))]
    offset = int(rng.integers(0, noise.size - base.size))
    return base + noise[offset:offset + base.size]


def stream_hours(chunk: StreamChunk) -> float:
    """Beam time a chunk spans at 60 Hz (its pulse count / 60 / 3600)."""
    return len(chunk.timestamps_ns) / 60.0 / 3600.0
