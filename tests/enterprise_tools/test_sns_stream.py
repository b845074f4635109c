"""The continuous 60 Hz stream: every pulse, trips with their precursors, bounded chunks."""

from __future__ import annotations

import numpy as np
import pytest

from enterprise_tools.sns_simulator import SimulatorParams
from enterprise_tools.sns_stream import StreamSpec, pulse_stream

PVS = ("ICS_Tim:Gate_BeamOn:RR", "LEBT:Focus_1:V_Set")


def _stream(**overrides):
    params = SimulatorParams.tiny(seed=4, errant_trips_per_hour=400.0, mps_trips_per_hour=60.0,
                                  study_per_day=0.0, beam_off_per_day=0.0, low_rr_per_day=0.0)
    values = dict(params=params, hours=0.03, shift=500, pvs=PVS, chunk_pulses=50, bank_size=3,
                  recovery_s=0.5)
    values.update(overrides)
    return list(pulse_stream(StreamSpec(**values), seed=1))


def test_stream_holds_every_pulse_at_60_hz_with_each_precursor_before_its_trip():
    chunks = _stream()
    times = np.concatenate([c.timestamps_ns for c in chunks])
    alarms = np.concatenate([c.alarms for c in chunks])
    labels = np.concatenate([c.labels for c in chunks])
    assert len(times) == pytest.approx(0.03 * 3600 * 60, rel=0.01)
    steps = np.diff(times)
    assert np.all(steps > 0)
    assert np.median(steps) == round(1e9 / 60)  # consecutive pulses, nothing sampled out
    trips = np.flatnonzero(alarms == 48)
    assert trips.size >= 3 and np.all(labels[trips - 1] == 1)
    assert np.flatnonzero(labels == 1).tolist() == (trips - 1).tolist()
    for chunk in chunks:  # a precursor is never the last pulse of its chunk
        assert chunk.labels[-1] != 1
        assert chunk.traces.shape == (len(chunk.timestamps_ns), 500)
        assert chunk.traces.dtype == np.float32 and chunk.settings.shape[1] == 2
    assert np.all(np.concatenate([c.settings for c in chunks])[:, 0] == 60.0)
    assert all(len(c.timestamps_ns) <= 52 for c in chunks)


def test_stream_is_reproducible_and_normal_pulses_differ():
    a, b = _stream(), _stream()
    assert np.array_equal(a[0].traces, b[0].traces)
    normal = a[0].traces[a[0].alarms == 0]
    assert not np.array_equal(normal[0], normal[1])


def test_stream_rejects_unknown_pvs():
    with pytest.raises(ValueError, match="no PV.*'Nope'"):
        StreamSpec(SimulatorParams.tiny(), hours=1.0, pvs=("Nope",))
