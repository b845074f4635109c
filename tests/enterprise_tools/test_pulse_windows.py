"""pulse_windows: every well-formed pulse of a file with its alarm, for live scoring."""

import numpy as np

from enterprise_tools.sample_rules import SKIP_LOW_BWIDTH, SKIP_TIMESTAMP_MISMATCH
from enterprise_tools.trace_windows import pulse_windows
from tests.enterprise_tools.test_get_traces import SHIFT, WINDOW, pulse, stamp, window_of, write


def test_every_pulse_of_a_tripping_file_with_its_alarm(tmp_path):
    path = write(tmp_path, pulse(0) + pulse(1) + pulse(2, alarm=48) + pulse(3, alarm=16))
    result = pulse_windows(path, **WINDOW)
    assert result.timestamps_ns.tolist() == [stamp(k) for k in range(4)]
    assert result.alarms.tolist() == [0, 0, 48, 16]
    assert result.traces.shape == (4, SHIFT) and result.traces.dtype == np.float32
    for row, k in zip(result.traces, range(4), strict=True):
        np.testing.assert_array_equal(row, window_of(k))
    assert result.skipped == []


def test_malformed_pulse_is_skipped_the_rest_kept(tmp_path):
    shifted = pulse(1, ts={"t2": stamp(1) + 5})
    result = pulse_windows(write(tmp_path, pulse(0) + shifted + pulse(2)), **WINDOW)
    assert result.timestamps_ns.tolist() == [stamp(0), stamp(2)]
    assert [s.reason for s in result.skipped] == [SKIP_TIMESTAMP_MISMATCH]


def test_low_bwidth_file_gives_no_pulse(tmp_path):
    result = pulse_windows(write(tmp_path, pulse(0) + pulse(1, bwidth=500.0)), **WINDOW)
    assert len(result.timestamps_ns) == 0 and result.traces.shape == (0, SHIFT)
    assert [(s.reason, s.scope) for s in result.skipped] == [(SKIP_LOW_BWIDTH, "file")]
