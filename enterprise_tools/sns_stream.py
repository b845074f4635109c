"""An uninterrupted 60 Hz SNS pulse stream from the simulator: every pulse, for H hours.

The archive simulator writes sampled acquisitions (a few pulses a minute); what an operator
feels is every pulse, and false alarms per hour can only be placed and checked on every pulse.
This module replays the archive simulator's machine - the same settings schedule
(`build_schedule`), beam physics with its slow drift (`beam_at`), pulse-to-pulse jitter, benign
blips and errant run-ups (`draw_run_up`, `draw_blip`: the archive's own draws) - as a continuous
stream of analysis windows, in memory and in bounded chunks, so hours of beam can be scored
through the live path without touching the disk.

* Pulses come at the segment's repetition rate during production segments only (beam off,
  short-pulse studies and low-rate periods carry no production beam, which the model is not
  asked about), 1 s clear of each settings change, like the archive's acquisitions.
* Errant trips (Alarm 48) arrive as a Poisson process at `params.errant_trips_per_hour`. Each
  has the archive's run-up: a precursor kind and strength, growing over the last `onset`
  pulses before the trip (`precursor_onset_pmf`, `precursor_growth`), or none for
  `no_precursor_fraction`. The pulse just before the trip is the sample (label 1); earlier
  run-up pulses are context (label -1, neither a false alarm nor a catch), as in the archive.
  Other machine-protection trips at `params.mps_trips_per_hour` abort a pulse without a
  precursor. After any trip the beam is off for `recovery_s`.
* Cost: one full pulse simulation takes ~6 ms (16000 samples, 1/f noise), too slow for hours at
  60 Hz. So plain normal pulses are drawn from a bank of `bank_size` fully simulated pulses of
  the current configuration, re-simulated every `bank_refresh_s` at the drifted beam of that
  moment (the drift moves over hours), each with white noise of the simulator's `trace2_noise`
  rms added (a random stretch of a per-segment pool of 2**18 draws, so no two streamed pulses
  are equal); run-up, blip and trip pulses are always simulated in full.
  `bank_size=0` simulates every pulse in full.
* Chunks never split a precursor from its trip, so the label of every pulse (1 when the next
  pulse is an errant trip) is known inside its chunk.

Knows no ML: NumPy arrays out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np

from enterprise_tools.simulator import (
    Event,
    SimulatorParams,
    beam_at,
    build_schedule,
    pulse_traces,
)
from enterprise_tools.simulator.params import parse_start
from enterprise_tools.simulator.physics import RunUp, draw_blip, draw_run_up
from enterprise_tools.sns_pvs import ERRANT_BEAM_PVS

ERRANT_ALARM = 48
_NS = 1_000_000_000


@dataclasses.dataclass
class StreamChunk:
    """Consecutive pulses: times, Trace2 windows, settings (the asked PVs), alarms, labels, and
    what the simulator put on each pulse (the truth the benchmarks break recall down by)."""

    timestamps_ns: np.ndarray  # int64 [n]
    traces: np.ndarray  # float32 [n, shift]
    settings: np.ndarray  # float64 [n, len(pvs)]
    alarms: np.ndarray  # int64 [n]
    labels: np.ndarray  # int8 [n]: 1 the next pulse is an errant trip, 0 normal, -1 neither
    #                     (trip pulses, and run-up pulses earlier than the one before the trip)
    config_id: np.ndarray  # int32 [n]: the schedule segment
    precursor: np.ndarray  # <U9 [n]: none | ramp | burst | sag | rf_jitter
    strength: np.ndarray  # float32 [n]: precursor strength on this pulse (baseline-loss units)
    onset: np.ndarray  # int8 [n]: the trip's onset (pulses before it), on its run-up pulses
    blip: np.ndarray  # float32 [n]: benign blip height, 0 none


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
    bank_refresh_s: float = 120.0
    recovery_s: float = 5.0
    start_ns: int | None = None  # replay from this time on (e.g. a test period's start)

    def __post_init__(self):
        if (self.hours <= 0 or self.chunk_pulses < 1 or self.bank_size < 0 or self.recovery_s < 0
                or self.bank_refresh_s <= 0):
            raise ValueError(f"StreamSpec: need hours > 0, chunk_pulses >= 1, bank_size >= 0, "
                             f"bank_refresh_s > 0, recovery_s >= 0; got {self}")
        unknown = [pv for pv in self.pvs if pv not in ERRANT_BEAM_PVS]
        if unknown:
            raise ValueError(f"StreamSpec.pvs: the simulator has no PV {unknown}; it knows "
                             f"{list(ERRANT_BEAM_PVS)}")
        if self.begin + self.shift > 16000:
            raise ValueError(f"StreamSpec: window [{self.begin}, {self.begin + self.shift}) runs "
                             "past the 16000 samples of a DCM record")


_FIELDS = ("timestamps_ns", "traces", "settings", "alarms", "labels", "config_id", "precursor",
           "strength", "onset", "blip")
_DTYPES = (np.int64, np.float32, np.float64, np.int64, np.int8, np.int32, "<U9", np.float32,
           np.int8, np.float32)


def _chunk(pulses: list[tuple], n_pvs: int) -> StreamChunk:
    columns = {}
    for j, (name, dtype) in enumerate(zip(_FIELDS, _DTYPES, strict=True)):
        values = [p[j] for p in pulses]
        columns[name] = (np.stack(values).astype(dtype) if name == "traces"
                         else np.array(values, dtype=dtype))
    columns["settings"] = columns["settings"].reshape(len(pulses), n_pvs)
    return StreamChunk(**columns)


def _fault_plan(params: SimulatorParams, n_pulses: int, hours: float,
                rng: np.random.Generator) -> tuple[dict[int, int], dict[int, tuple[RunUp, int]]]:
    """Trips of one segment (pulse index -> alarm) and the errant run-ups (pulse index ->
    (run-up, pulses before its trip)), Poisson in time like the archive's acquisitions."""
    trips = {int(i): ERRANT_ALARM for i in rng.integers(
        1, max(2, n_pulses), rng.poisson(hours * params.errant_trips_per_hour))}
    for i in rng.integers(1, max(2, n_pulses), rng.poisson(hours * params.mps_trips_per_hour)):
        trips.setdefault(int(i), int(rng.choice(params.mps_alarm_codes)))
    run_ups: dict[int, tuple[RunUp, int]] = {}
    for trip in sorted(i for i, alarm in trips.items() if alarm == ERRANT_ALARM):
        run_up = draw_run_up(params, rng)
        for distance in range(max(1, run_up.onset), 0, -1):  # the sample pulse at least
            if trip - distance >= 0 and trip - distance not in trips:
                run_ups[trip - distance] = (run_up, distance)
    return trips, run_ups


def pulse_stream(spec: StreamSpec, seed: int = 0) -> Iterator[StreamChunk]:
    """Yield the stream in chunks of about `spec.chunk_pulses` pulses (module docstring)."""
    # `hours` counts production beam: schedule a longer period and stop once that much is out
    params = spec.params
    start_at = params_start_ns(params) if spec.start_ns is None else int(spec.start_ns)
    params = dataclasses.replace(
        params, hours=4.0 * spec.hours + 2.0 + (start_at - params_start_ns(params)) / _NS / 3600.0)
    budget = int(spec.hours * 3600 * _NS)
    streamed = 0
    rng = np.random.default_rng(np.random.SeedSequence(params.seed, spawn_key=(7, seed)))
    columns = [ERRANT_BEAM_PVS.index(pv) for pv in spec.pvs]
    rr_index = ERRANT_BEAM_PVS.index("ICS_Tim:Gate_BeamOn:RR")
    window = slice(spec.begin, spec.begin + spec.shift)
    growth = params.precursor_growth
    pending: list[tuple] = []  # one tuple per pulse, in the order of _FIELDS

    def flush(final: bool = False) -> StreamChunk:
        nonlocal pending
        cut = len(pending) if final else spec.chunk_pulses
        while cut < len(pending) and pending[cut - 1][4] == 1:  # keep precursor + trip together
            cut += 1
        out, pending = pending[:cut], pending[cut:]
        return _chunk(out, len(columns))

    for config, segment in enumerate(build_schedule(params)):
        if streamed >= budget:
            break
        if segment.mode != "production":
            continue
        values = segment.values
        period = int(round(_NS / values[rr_index]))
        settings = [values[i] for i in columns]
        start, stop = segment.start_ns + _NS, segment.end_ns - _NS
        if start < start_at:  # replaying from start_at: skip to its first whole pulse
            start += -(-(start_at - start) // period) * period
        if stop <= start:
            continue
        noise = (rng.normal(0.0, params.trace2_noise, 1 << 18).astype(np.float32)
                 if spec.bank_size else None)
        n_pulses = (stop - start) // period
        trips, run_ups = _fault_plan(params, n_pulses, (stop - start) / _NS / 3600.0, rng)
        recovery = int(spec.recovery_s * _NS / period)
        bank: list[np.ndarray] = []
        bank_until = start
        k = 0
        while k < n_pulses and streamed < budget:
            t = start + k * period
            alarm = trips.get(k, 0)
            if alarm:
                run_up = run_ups.get(k - 1, (RunUp("none", 0.0, 0), 1))[0]
                event = run_up.trip(rng) if alarm == ERRANT_ALARM else Event(
                    abort_at=rng.uniform(0.1, 0.9))
                pending.append((t, pulse_traces(beam_at(values, t, params), event, rng, params)[1][window], settings,
                                alarm, -1, config, run_up.precursor, event.strength,
                                run_up.onset, 0.0))
                k += 1 + recovery
            else:
                label = 1 if trips.get(k + 1) == ERRANT_ALARM else 0
                run_up, distance = run_ups.get(k, (None, 0))
                event = run_up.event(distance, growth) if run_up else Event()
                if run_up and distance > 1:
                    label = -1  # inside a run-up, before the sample pulse: context
                event = event._replace(blip=draw_blip(params, rng))
                if event != Event() or not spec.bank_size:
                    trace = pulse_traces(beam_at(values, t, params), event, rng, params)[1][window]
                else:
                    if t >= bank_until:  # the drift moves over hours: re-simulate the bank
                        beam = beam_at(values, t, params)
                        bank = [pulse_traces(beam, Event(), rng, params)[1][window]
                                for _ in range(spec.bank_size)]
                        bank_until = t + int(spec.bank_refresh_s * _NS)
                    trace = _normal(bank, noise, rng)
                pending.append((t, trace, settings, 0, label, config, event.precursor,
                                event.strength, run_up.onset if run_up else 0, event.blip))
                k += 1
            streamed += period
            while len(pending) > spec.chunk_pulses:  # flush() keeps a precursor with its trip
                yield flush()
    while pending:
        yield flush(final=True)


def params_start_ns(params: SimulatorParams) -> int:
    """The simulated machine's first moment (its schedule's start), int64 ns."""
    return int(parse_start(params.start))


def _normal(bank: Sequence[np.ndarray], noise: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plain normal pulse: a bank pulse plus white noise (a random stretch of the segment's
    noise pool)."""
    base = bank[int(rng.integers(len(bank)))]
    offset = int(rng.integers(0, noise.size - base.size))
    return base + noise[offset:offset + base.size]


def stream_hours(chunk: StreamChunk) -> float:
    """Beam time a chunk spans at 60 Hz (its pulse count / 60 / 3600)."""
    return len(chunk.timestamps_ns) / 60.0 / 3600.0
