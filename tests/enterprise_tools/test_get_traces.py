"""Tests for get_traces: the spec §1 rules that turn a DCM file into training windows."""

import gzip

import numpy as np
import pytest

from enterprise_tools import sample_rules
from enterprise_tools.biet_format import CorruptFileError
from enterprise_tools.biet_reader import ReadStorage
from enterprise_tools.biet_writer import write_storage
from enterprise_tools.sample_rules import (
    SKIP_FIRST_PULSE_TRIP,
    SKIP_LOW_BWIDTH,
    SKIP_MISLABELLED,
    SKIP_MISSING_TRACE,
    SKIP_NO_TRIP,
    SKIP_QUALITY,
    SKIP_SHORT_TRACE,
    SKIP_TIMESTAMP_MISMATCH,
    Skip,
)
from enterprise_tools.trace_windows import QualityCut, get_traces

T0 = 1_700_000_000_123_456_789  # ns; exact int64 arithmetic matters
PERIOD = 16_666_667  # 60 Hz
BEGIN, SHIFT, LENGTH = 2, 6, 10
WINDOW = {"begin": BEGIN, "shift": SHIFT}


def stamp(k: int) -> int:
    return T0 + k * PERIOD


def trace(k: int, channel: int, length: int = LENGTH) -> np.ndarray:
    """A trace whose samples encode pulse ``k`` and channel, so a window shows where it came from."""
    return (k * 10 + channel + np.arange(length) / 100).astype(np.float32)


def pulse(k, alarm=0, bwidth=1000.0, length=LENGTH, ts=None, order=("t1", "t2", "s")):
    """The records of pulse ``k``; ``ts`` maps a part ("t1", "t2", "s") to another timestamp."""
    when = {part: stamp(k) for part in ("t1", "t2", "s")} | (ts or {})
    parts = {
        "t1": {"name": "DCM:BLM:Trace1", "timestamp_ns": when["t1"], "value": trace(k, 1, length)},
        "t2": {"name": "DCM:BLM:Trace2", "timestamp_ns": when["t2"], "value": trace(k, 2, length)},
        "s": {
            "name": "DCM:MPS",
            "timestamp_ns": when["s"],
            "parameters": {"Alarm": alarm, "bWidth": bwidth},
        },
    }
    return [parts[name] for name in order]


def write(tmp_path, records, name="f.bin.gz"):
    path = tmp_path / name
    write_storage(path, records)
    return path


def window_of(k, channel=2):
    return trace(k, channel)[BEGIN : BEGIN + SHIFT]


def assert_samples(result, pulses):
    assert result.traces.dtype == np.float32 and result.traces.shape == (len(pulses), SHIFT)
    assert result.timestamps_ns.dtype == np.int64
    assert result.timestamps_ns.tolist() == [stamp(k) for k in pulses]
    for row, k in zip(result.traces, pulses, strict=True):
        np.testing.assert_array_equal(row, window_of(k))


def reasons(result):
    return [(s.reason, s.scope) for s in result.skipped]


# -- triple rules -------------------------------------------------------------------------


def test_normal_file_every_pulse_is_a_sample(tmp_path):
    path = write(tmp_path, [r for k in range(4) for r in pulse(k)])
    result = get_traces(path, **WINDOW)
    assert_samples(result, [0, 1, 2, 3])
    assert result.skipped == []


def test_defaults_take_trace2_window_3000_to_13000(tmp_path):
    records = [r for k in range(2) for r in pulse(k, length=13_500)]
    result = get_traces(write(tmp_path, records))
    assert result.traces.shape == (2, 10_000)
    np.testing.assert_array_equal(result.traces[1], trace(1, 2, 13_500)[3000:13_000])


def test_mislabelled_normal_file_is_skipped_whole(tmp_path):
    records = [r for k in range(4) for r in pulse(k, alarm=48 if k == 2 else 0)]
    result = get_traces(write(tmp_path, records), **WINDOW)
    assert result.traces.shape == (0, SHIFT) and result.timestamps_ns.shape == (0,)
    assert reasons(result) == [(SKIP_MISLABELLED, "file")]
    assert "Alarm=48" in result.skipped[0].detail and "record 8" in result.skipped[0].detail


def test_anomaly_file_uses_pulse_before_trip(tmp_path):
    records = [r for k in range(5) for r in pulse(k, alarm=48 if k == 3 else 0)]
    result = get_traces(write(tmp_path, records), alarm=48, **WINDOW)
    assert_samples(result, [2])
    assert result.skipped == []


def test_anomaly_file_ignores_other_alarm_codes_unless_any_alarm_asked(tmp_path):
    alarms = {1: 16, 3: 48}
    records = [r for k in range(5) for r in pulse(k, alarm=alarms.get(k, 0))]
    path = write(tmp_path, records)
    assert_samples(get_traces(path, alarm=48, **WINDOW), [2])
    assert_samples(get_traces(path, alarm=-1, **WINDOW), [0, 2])


def test_consecutive_trips_each_take_their_previous_pulse(tmp_path):
    records = [r for k in range(4) for r in pulse(k, alarm=48 if k in (2, 3) else 0)]
    assert_samples(get_traces(write(tmp_path, records), alarm=48, **WINDOW), [1, 2])


def test_trip_on_first_pulse_is_skipped_and_logged(tmp_path):
    records = [r for k in range(4) for r in pulse(k, alarm=48 if k in (0, 2) else 0)]
    result = get_traces(write(tmp_path, records), alarm=48, **WINDOW)
    assert_samples(result, [1])
    assert reasons(result) == [(SKIP_FIRST_PULSE_TRIP, "pulse")]
    assert str(stamp(0)) in result.skipped[0].detail


def test_anomaly_file_without_matching_trip_is_skipped_whole(tmp_path):
    records = [r for k in range(3) for r in pulse(k, alarm=16 if k == 1 else 0)]
    result = get_traces(write(tmp_path, records), alarm=48, **WINDOW)
    assert result.traces.shape == (0, SHIFT)
    assert reasons(result) == [(SKIP_NO_TRIP, "file")]


@pytest.mark.parametrize("shifted", ["t1", "t2", "s"])
def test_out_of_order_pulse_is_skipped_and_others_resynchronise(tmp_path, shifted):
    records = []
    for k in range(5):
        ts = {shifted: stamp(k) + 1} if k == 2 else None
        records += pulse(k, ts=ts)
    result = get_traces(write(tmp_path, records), **WINDOW)
    assert_samples(result, [0, 1, 3, 4])
    assert reasons(result) == [(SKIP_TIMESTAMP_MISMATCH, "pulse")]
    assert (
        str(stamp(2)) in result.skipped[0].detail or str(stamp(2) + 1) in result.skipped[0].detail
    )


def test_two_adjacent_out_of_order_pulses_count_twice(tmp_path):
    records = []
    for k in range(5):
        records += pulse(k, ts={"s": stamp(k) + 1} if k in (1, 2) else None)
    result = get_traces(write(tmp_path, records), **WINDOW)
    assert_samples(result, [0, 3, 4])
    assert reasons(result) == [(SKIP_TIMESTAMP_MISMATCH, "pulse")] * 2


def test_anomaly_precursor_out_of_order_loses_the_sample_with_a_log(tmp_path):
    records = []
    for k in range(4):
        records += pulse(k, alarm=48 if k == 3 else 0, ts={"t2": stamp(k) - 5} if k == 2 else None)
    result = get_traces(write(tmp_path, records), alarm=48, **WINDOW)
    assert result.traces.shape == (0, SHIFT)
    assert reasons(result) == [(SKIP_TIMESTAMP_MISMATCH, "pulse")]


def test_anomaly_trip_pulse_out_of_order_is_skipped_not_treated_as_missing_trip(tmp_path):
    records = []
    for k in range(4):
        records += pulse(k, alarm=48 if k == 3 else 0, ts={"s": stamp(k) + 9} if k == 3 else None)
    result = get_traces(write(tmp_path, records), alarm=48, **WINDOW)
    assert result.traces.shape == (0, SHIFT)
    assert reasons(result) == [(SKIP_TIMESTAMP_MISMATCH, "pulse")]


def test_record_order_inside_a_pulse_does_not_matter(tmp_path):
    records = [r for k in range(3) for r in pulse(k, order=("s", "t2", "t1"))]
    assert_samples(get_traces(write(tmp_path, records), **WINDOW), [0, 1, 2])


def test_var_id_selects_the_trace(tmp_path):
    records = [r for k in range(2) for r in pulse(k)]
    result = get_traces(write(tmp_path, records), var_id="Trace1", **WINDOW)
    np.testing.assert_array_equal(result.traces[1], window_of(1, channel=1))


def test_low_bwidth_anywhere_skips_the_file(tmp_path):
    records = [r for k in range(3) for r in pulse(k, bwidth=500.0 if k == 1 else 1000.0)]
    path = write(tmp_path, records)
    result = get_traces(path, **WINDOW)
    assert result.traces.shape == (0, SHIFT)
    assert (
        reasons(result) == [(SKIP_LOW_BWIDTH, "file")] and "bWidth=500" in result.skipped[0].detail
    )
    assert len(get_traces(path, bwidth_cut=None, **WINDOW).traces) == 3
    assert len(get_traces(path, bwidth_cut=400, **WINDOW).traces) == 3


def test_integer_bwidth_is_honoured(tmp_path):
    records = [r for k in range(2) for r in pulse(k, bwidth=899)]
    assert reasons(get_traces(write(tmp_path, records), **WINDOW)) == [(SKIP_LOW_BWIDTH, "file")]


def test_short_trace_is_skipped_per_pulse(tmp_path):
    records = [
        r for k in range(3) for r in pulse(k, length=BEGIN + SHIFT - 1 if k == 1 else LENGTH)
    ]
    result = get_traces(write(tmp_path, records), **WINDOW)
    assert_samples(result, [0, 2])
    assert reasons(result) == [(SKIP_SHORT_TRACE, "pulse")]
    assert "7 samples, window needs 8" in result.skipped[0].detail


def test_pulse_without_the_trace_record_is_logged_missing(tmp_path):
    records = [
        r for k in range(3) for r in pulse(k, order=("t1", "s") if k == 1 else ("t1", "t2", "s"))
    ]
    result = get_traces(write(tmp_path, records), **WINDOW)
    assert_samples(result, [0, 2])
    assert reasons(result) == [(SKIP_MISSING_TRACE, "pulse")]


def test_pulse_without_trace1_is_logged_missing(tmp_path):
    records = [
        r for k in range(3) for r in pulse(k, order=("t2", "s") if k == 1 else ("t1", "t2", "s"))
    ]
    result = get_traces(write(tmp_path, records), **WINDOW)
    assert_samples(result, [0, 2])
    assert (
        reasons(result) == [(SKIP_MISSING_TRACE, "pulse")] and "*Trace1" in result.skipped[0].detail
    )


def test_file_without_var_id_records_is_logged_missing(tmp_path):
    result = get_traces(write(tmp_path, pulse(0) + pulse(1)), var_id="Trace3", **WINDOW)
    assert reasons(result) == [(SKIP_MISSING_TRACE, "file")]


def test_trace_record_without_waveform_is_logged_missing(tmp_path):
    records = [r for k in range(2) for r in pulse(k)]
    records[4] = {**records[4], "value": None}
    result = get_traces(write(tmp_path, records), **WINDOW)
    assert_samples(result, [0])
    assert reasons(result) == [(SKIP_MISSING_TRACE, "pulse")]


# -- tag rules (older files without status records) ---------------------------------------


def tagged_file(tmp_path, tags=("Before", "During")):
    records = []
    for k, tag in enumerate(tags):
        records += [
            {"name": "DCM:Trace1", "timestamp_ns": stamp(k), "tags": [tag], "value": trace(k, 1)},
            {"name": "DCM:Trace2", "timestamp_ns": stamp(k), "tags": [tag], "value": trace(k, 2)},
        ]
    return write(tmp_path, records)


@pytest.mark.parametrize("alarm", [0, 48, -1])
def test_tag_rules_take_before_trace_in_normal_and_anomaly_files(tmp_path, alarm):
    result = get_traces(tagged_file(tmp_path), alarm=alarm, **WINDOW)
    assert_samples(result, [0])
    assert result.skipped == []


def test_tag_rules_anomaly_file_without_tags_is_skipped(tmp_path):
    result = get_traces(tagged_file(tmp_path, tags=("Other",)), alarm=48, **WINDOW)
    assert reasons(result) == [(SKIP_NO_TRIP, "file")]


def test_tag_rules_file_without_before_trace_is_logged_missing(tmp_path):
    assert reasons(get_traces(tagged_file(tmp_path, ("During",)), alarm=0, **WINDOW)) == [
        (SKIP_MISSING_TRACE, "file")
    ]
    assert reasons(get_traces(tagged_file(tmp_path, ("During",)), alarm=48, **WINDOW)) == [
        (SKIP_MISSING_TRACE, "file")
    ]


# -- quality cut --------------------------------------------------------------------------


def beam_like(length: int, period: int = 80) -> np.ndarray:
    """Flat-topped pulses (0.03 for 60 % of each period, 0 otherwise): passes the JLab cut."""
    phase = np.arange(length) % period
    return np.where(phase < period * 0.6, 0.03, 0.0).astype(np.float32)


def quality_file(tmp_path, good: list[bool], length=10_000):
    records = []
    for k, ok in enumerate(good):
        trace1 = beam_like(length) if ok else np.full(length, 0.001, np.float32)
        records += [
            {"name": "DCM:Trace1", "timestamp_ns": stamp(k), "value": trace1},
            {"name": "DCM:Trace2", "timestamp_ns": stamp(k), "value": trace(k, 2, length)},
            {
                "name": "DCM:MPS",
                "timestamp_ns": stamp(k),
                "parameters": {"Alarm": 0, "bWidth": 1000},
            },
        ]
    return write(tmp_path, records)


def test_quality_cut_with_jlab_defaults_drops_pulses_without_beam(tmp_path):
    path = quality_file(tmp_path, [True, False, True])
    result = get_traces(path, begin=0, shift=10_000, quality_cut=QualityCut())
    assert result.timestamps_ns.tolist() == [stamp(0), stamp(2)]
    assert reasons(result) == [(SKIP_QUALITY, "pulse")]
    assert "0 peaks (need >= 100)" in result.skipped[0].detail
    assert len(get_traces(path, begin=0, shift=10_000).traces) == 3  # no cut asked: all kept


def test_quality_cut_thresholds_are_parameters(tmp_path):
    path = quality_file(tmp_path, [True], length=2000)
    assert (
        len(get_traces(path, begin=0, shift=2000, quality_cut=QualityCut(min_peaks=24)).traces) == 1
    )
    strict = QualityCut(min_peaks=25)  # 25 flat tops, the first at the window edge is no peak
    assert reasons(get_traces(path, begin=0, shift=2000, quality_cut=strict)) == [
        (SKIP_QUALITY, "pulse")
    ]


def test_quality_cut_without_its_trace_is_logged_missing(tmp_path):
    path = quality_file(tmp_path, [True], length=2000)
    result = get_traces(
        path, begin=0, shift=2000, quality_cut=QualityCut(min_peaks=1, trace="Trace9")
    )
    assert (
        reasons(result) == [(SKIP_MISSING_TRACE, "pulse")] and "Trace9" in result.skipped[0].detail
    )


def test_quality_cut_rejects_bad_settings():
    with pytest.raises(ValueError, match="min_peaks"):
        QualityCut(min_peaks=-1)


# -- input handling -----------------------------------------------------------------------


def test_gzip_detected_by_content_despite_misleading_name(tmp_path):
    gz = write(tmp_path, [r for k in range(2) for r in pulse(k)], name="real.bin.gz")
    misleading = tmp_path / "normal_00000000.bin"
    misleading.write_bytes(gz.read_bytes())
    assert_samples(get_traces(misleading, **WINDOW), [0, 1])
    plain = tmp_path / "plain.gz"
    plain.write_bytes(gzip.decompress(gz.read_bytes()))
    assert_samples(get_traces(plain, **WINDOW), [0, 1])


def test_corrupt_file_error_propagates(tmp_path):
    path = tmp_path / "broken.bin.gz"
    path.write_bytes(write(tmp_path, pulse(0)).read_bytes()[:-12])
    with pytest.raises(CorruptFileError):
        get_traces(path, **WINDOW)


def test_unknown_field_in_file_propagates_with_record_index(tmp_path):
    data = bytearray(gzip.decompress(write(tmp_path, pulse(0) + pulse(1)).read_bytes()))
    data[16] = 0x0A  # first field of record 0 becomes an unknown code
    path = tmp_path / "bad.bin"
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError) as info:
        get_traces(path, **WINDOW)
    assert info.value.record_index == 0 and info.value.offset == 16


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"begin": -1}, "begin"),
        ({"shift": 0}, "shift"),
        ({"alarm": -2}, "alarm"),
        ({"bwidth_cut": "900"}, "bwidth_cut"),
        ({"quality_cut": {"min_peaks": 1}}, "quality_cut"),
    ],
)
def test_bad_arguments_are_rejected(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        get_traces(tmp_path / "never_read.bin", **kwargs)


def test_decodes_only_the_windows_it_needs(tmp_path, monkeypatch):
    records = [r for k in range(5) for r in pulse(k, alarm=48 if k == 3 else 0)]
    path = write(tmp_path, records)
    calls = []
    original = ReadStorage._decode_window

    def counting(self, waveform, begin, length):
        calls.append(waveform)
        return original(self, waveform, begin, length)

    def forbidden(self, waveform):
        raise AssertionError("get_traces decoded a whole waveform")

    monkeypatch.setattr(ReadStorage, "_decode_window", counting)
    monkeypatch.setattr(ReadStorage, "_decode_waveform", forbidden)
    assert_samples(get_traces(path, alarm=48, **WINDOW), [2])
    assert len(calls) == 1


def test_skip_is_frozen_and_codes_match_the_contract():
    skip = Skip(SKIP_QUALITY, "why", "pulse")
    with pytest.raises(AttributeError):
        skip.reason = "other"
    codes = [
        getattr(sample_rules, name)
        for name in (
            "SKIP_MISLABELLED",
            "SKIP_LOW_BWIDTH",
            "SKIP_FIRST_PULSE_TRIP",
            "SKIP_TIMESTAMP_MISMATCH",
            "SKIP_MISSING_TRACE",
            "SKIP_SHORT_TRACE",
            "SKIP_QUALITY",
            "SKIP_NO_TRIP",
        )
    ]
    assert codes == [
        "mislabelled_normal_file",
        "no_production_beam",
        "trip_on_first_pulse",
        "pulse_records_out_of_order",
        "trace_missing",
        "trace_shorter_than_window",
        "failed_quality_cut",
        "anomaly_file_without_trip",
    ]


# -- in-file references (get_traces(references=K)) ------------------------------------------


def refs_of(result):
    """Per sample: the pulse numbers in its reference slots (None for an empty slot)."""
    out = []
    for windows, stamps in zip(result.references, result.reference_timestamp_ns, strict=True):
        row = []
        for window, ts in zip(windows, stamps, strict=True):
            if ts == -1:
                assert not window.any()  # empty slots are zeros
                row.append(None)
            else:
                k = (int(ts) - T0) // PERIOD
                np.testing.assert_array_equal(window, window_of(k))
                row.append(k)
        out.append(row)
    return out


def test_references_default_off_gives_k0_arrays(tmp_path):
    result = get_traces(write(tmp_path, [r for k in range(3) for r in pulse(k)]), **WINDOW)
    assert result.references.shape == (3, 0, SHIFT) and result.references.dtype == np.float32
    assert result.reference_timestamp_ns.shape == (3, 0)
    assert result.reference_count.dtype == np.int16 and result.reference_count.tolist() == [0] * 3


def test_references_are_right_aligned_and_the_first_pulse_has_none(tmp_path):
    path = write(tmp_path, [r for k in range(4) for r in pulse(k)])
    result = get_traces(path, references=2, **WINDOW)
    assert_samples(result, [0, 1, 2, 3])  # the samples themselves are unchanged
    assert refs_of(result) == [[None, None], [None, 0], [0, 1], [1, 2]]
    assert result.reference_count.tolist() == [0, 1, 2, 2]
    assert result.reference_timestamp_ns.dtype == np.int64


def test_anomaly_sample_references_precede_the_precursor(tmp_path):
    records = [r for k in range(5) for r in pulse(k, alarm=48 if k == 4 else 0)]
    result = get_traces(write(tmp_path, records), alarm=48, references=3, **WINDOW)
    assert_samples(result, [3])
    assert refs_of(result) == [[0, 1, 2]]


def test_tripping_and_malformed_pulses_are_never_references(tmp_path):
    records = [r for k in range(5) for r in pulse(k, alarm=48 if k == 4 else 0)]
    records[4] = {**records[4], "timestamp_ns": stamp(1) + 5}  # pulse 1 malformed
    records[8] = {**records[8], "parameters": {"Alarm": 16, "bWidth": 1000.0}}  # pulse 2 trips
    result = get_traces(write(tmp_path, records), alarm=48, references=3, **WINDOW)
    assert_samples(result, [3])
    assert refs_of(result) == [[None, None, 0]]  # 2 tripped, 1 malformed: only pulse 0
    assert result.reference_count.tolist() == [1]
    records[8] = {**records[8], "parameters": {"Alarm": 0, "bWidth": 1000.0}}
    result = get_traces(write(tmp_path, records, name="g.bin.gz"), alarm=48, references=3,
                        **WINDOW)
    assert refs_of(result) == [[None, 0, 2]]  # the same file with pulse 2 normal again


def test_short_trace_is_no_reference_and_quality_cut_does_not_apply(tmp_path):
    records = [r for k in range(4) for r in pulse(k, length=LENGTH if k != 1 else 4)]
    result = get_traces(write(tmp_path, records), references=2, **WINDOW)
    assert_samples(result, [0, 2, 3])
    assert refs_of(result) == [[None, None], [None, 0], [0, 2]]


def test_references_are_strictly_earlier_in_time(tmp_path):
    # Pulse 2 is stored after pulse 3 but its time is later: it precedes 3 in the file only.
    records = [r for k in (0, 1, 3, 2) for r in pulse(k)]
    result = get_traces(write(tmp_path, records), references=3, **WINDOW)
    by_time = dict(zip(((t - T0) // PERIOD for t in result.timestamps_ns), refs_of(result),
                       strict=True))
    assert by_time[2] == [None, 0, 1]  # pulse 3 is later in time: never a reference of 2
    for stamps, ts in zip(result.reference_timestamp_ns, result.timestamps_ns, strict=True):
        assert np.all(stamps[stamps >= 0] < ts)


@pytest.mark.parametrize("alarm", [0, 48])
def test_tag_rule_files_have_no_references(tmp_path, alarm):
    result = get_traces(tagged_file(tmp_path, ("Before", "Before", "During")), alarm=alarm,
                        references=2, **WINDOW)
    assert len(result.timestamps_ns) == 2
    assert result.reference_count.tolist() == [0, 0]
    assert result.references.shape == (2, 2, SHIFT) and not result.references.any()


def test_references_argument_is_checked(tmp_path):
    with pytest.raises(ValueError, match="references"):
        get_traces(tmp_path / "never_read.bin", references=-1)
