"""The continuous 60 Hz stream: every pulse, trips with their precursors, bounded chunks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from enterprise_tools.simulator import SimulatorParams
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


def test_chunks_stay_bounded_when_a_precursor_falls_on_a_chunk_boundary():
    """A precursor at the chunk's last place extends that chunk by its trip; it must not stop
    the stream from cutting chunks (it once held every later pulse in memory until the end)."""
    chunks = _stream(chunk_pulses=2, hours=0.02)
    labels = [c.labels for c in chunks]
    assert sum(1 for c in labels if len(c) == 3 and c[1] == 1) >= 1  # the case happened
    assert max(len(c) for c in labels) <= 3
    assert all(c[-1] != 1 for c in labels)


def test_stream_is_reproducible_and_normal_pulses_differ():
    a, b = _stream(), _stream()
    assert np.array_equal(a[0].traces, b[0].traces)
    normal = a[0].traces[a[0].alarms == 0]
    assert not np.array_equal(normal[0], normal[1])


def test_stream_rejects_unknown_pvs():
    with pytest.raises(ValueError, match="no PV.*'Nope'"):
        StreamSpec(SimulatorParams.tiny(), hours=1.0, pvs=("Nope",))


def _realistic(**overrides):
    values = dict(seed=11, study_per_day=0.0, beam_off_per_day=0.0, low_rr_per_day=0.0)
    values.update(overrides)
    return SimulatorParams.realistic(**values)


def test_errant_run_up_grows_over_its_onset_and_only_the_pulse_before_the_trip_is_a_sample():
    params = _realistic(errant_trips_per_hour=600.0, mps_trips_per_hour=0.0)
    chunks = list(pulse_stream(StreamSpec(params, hours=0.02, shift=500, pvs=PVS, bank_size=4),
                               seed=2))
    field = {name: np.concatenate([getattr(c, name) for c in chunks])
             for name in ("alarms", "labels", "strength", "onset", "precursor")}
    trips = np.flatnonzero(field["alarms"] == 48)
    long_onsets = [t for t in trips if field["onset"][t] >= 3 and t >= field["onset"][t]]
    assert len(long_onsets) >= 3
    for trip in long_onsets:
        onset = int(field["onset"][trip])
        run_up = np.arange(trip - onset, trip)
        assert field["labels"][trip - 1] == 1 and np.all(field["labels"][run_up[:-1]] == -1)
        grown = field["strength"][run_up]
        assert np.all(np.diff(grown) > 0) and grown[0] > 0  # growing towards the trip
        assert len(set(field["precursor"][run_up])) == 1 and field["precursor"][trip - 1] != "none"
        assert field["labels"][trip - onset - 1] in (0, -1)  # before the onset: no precursor
        assert field["strength"][trip - onset - 1] == 0.0 or field["labels"][trip - onset - 1] != 0


def test_stream_and_archive_are_one_machine(tmp_path):
    """Same seed and period: the stream's settings are the archive's settings in force, its
    normal pulses carry the archive's loss level, and its errant run-ups the archive's
    precursor statistics (kinds, onsets, strengths) within sampling error."""
    import pandas as pd
    from scipy import stats

    from enterprise_tools.beam_settings_parser_hdf5 import read_pv_histories
    from enterprise_tools.beam_settings_prep import settings_table
    from enterprise_tools.simulator import simulate_archive
    from enterprise_tools.trace_windows import get_traces

    archive_params = _realistic(hours=0.5, errant_trips_per_hour=240.0, normal_interval_s=30.0)
    simulate_archive(tmp_path, archive_params)
    truth = pd.read_csv(tmp_path / "truth.csv")
    stream_params = dataclasses.replace(archive_params, errant_trips_per_hour=1200.0)
    chunks = []
    for chunk in pulse_stream(StreamSpec(stream_params, hours=0.1, shift=10000), seed=0):
        chunk.traces = chunk.traces.sum(axis=1)  # the loss over the window: keeps memory small
        chunks.append(chunk)
    field = {name: np.concatenate([getattr(c, name) for c in chunks])
             for name in ("timestamps_ns", "settings", "alarms", "labels", "precursor", "onset",
                          "strength", "traces")}

    # configurations: every streamed pulse carries the archive's settings in force at its time
    table = settings_table(read_pv_histories(tmp_path / "beam_settings"))
    row = np.searchsorted(table.timestamp_ns, field["timestamps_ns"], side="right") - 1
    assert np.all(row >= 0)
    assert np.allclose(field["settings"], table.select(list(StreamSpec.pvs))[row])

    # precursor statistics of the errant samples
    archive = truth[truth.role == "precursor"]
    stream = np.flatnonzero(field["labels"] == 1)
    assert len(archive) >= 60 and len(stream) >= 60
    kinds = sorted(set(archive.precursor_kind))
    table_kinds = [[int((archive.precursor_kind == k).sum()) for k in kinds],
                   [int((field["precursor"][stream] == k).sum()) for k in kinds]]
    assert stats.chi2_contingency(table_kinds).pvalue > 0.01
    bins = [0, 1, 2, 3, 99]  # onset 0 (no precursor), 1, 2, 3+
    onsets = [np.histogram(archive.precursor_onset, bins + [100])[0],
              np.histogram(field["onset"][stream], bins + [100])[0]]
    onsets = [o[:-1] for o in onsets]
    assert stats.chi2_contingency(onsets).pvalue > 0.01
    strong = archive.precursor_strength[archive.precursor_strength > 0]
    assert stats.ks_2samp(np.log(strong), np.log(field["strength"][stream][
        field["strength"][stream] > 0])).pvalue > 0.01

    # normal beam: the loss the stream's normal pulses carry is the archive's (drift, jitter)
    files = sorted(set(truth.file[(truth.role == "normal") & (truth.expected_skip.isna())]))
    archive_loss = np.concatenate([get_traces(tmp_path / f).traces.sum(axis=1) for f in files])
    normal = field["labels"] == 0
    stream_loss = field["traces"][normal]
    assert abs(np.median(stream_loss) / np.median(archive_loss) - 1) < 0.05
    ratio = np.std(stream_loss) / np.std(archive_loss)
    assert 0.67 < ratio < 1.5  # pulse-to-pulse jitter of the same size


def test_stream_replays_a_period_from_its_start_on_the_same_schedule():
    from enterprise_tools.sns_stream import params_start_ns

    params = SimulatorParams.tiny(seed=4, study_per_day=0.0, beam_off_per_day=0.0,
                                  low_rr_per_day=0.0)
    whole = _stream(params=params, hours=0.5, bank_size=1)
    start = params_start_ns(params) + int(0.3 * 3600 * 1e9)
    later = _stream(params=params, hours=0.05, bank_size=1, start_ns=start)
    times = np.concatenate([c.timestamps_ns for c in later])
    assert times[0] >= start and times[0] - start < 2 * 10**9  # the first pulse after the start
    config = np.concatenate([c.settings for c in later])
    full_times = np.concatenate([c.timestamps_ns for c in whole])
    full_settings = np.concatenate([c.settings for c in whole])
    at = np.searchsorted(full_times, times[[0, -1]], side="right") - 1
    assert np.array_equal(config[[0, -1]], full_settings[at])  # the same configurations
