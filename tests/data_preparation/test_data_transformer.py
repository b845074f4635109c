import h5py
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_preparation.data_transformer import (
    attach_settings,
    config_groups,
    load_settings,
    production_mask,
    settings_columns,
)
from parser.configs import BPMDataConfig
from tests.data_preparation import builders as b

S = 10**9  # one second in ns


def _table(stamps_ns, **columns) -> pd.DataFrame:
    table = pd.DataFrame(columns)
    table.insert(0, "timestamps", pd.to_datetime(np.asarray(stamps_ns), unit="ns", utc=True))
    return table


def test_pulse_gets_latest_row_at_or_before_it():
    table = _table([b.T0 + 10 * S, b.T0 + 20 * S], pv=[1.0, 2.0])
    pulses = b.T0 + np.array([5, 10, 15, 20, 25]) * S
    values = attach_settings(pulses, table, ["pv"])
    assert np.isnan(values[0, 0])  # before the first row: no settings yet
    assert values[1:, 0].tolist() == [1.0, 1.0, 2.0, 2.0]  # exact time gets that row


def test_one_ns_before_a_change_still_sees_the_old_row():
    table = _table([b.T0, b.T0 + S], pv=[1.0, 2.0])
    values = attach_settings(np.array([b.T0 + S - 1, b.T0 + S]), table, ["pv"])
    assert values[:, 0].tolist() == [1.0, 2.0]


@settings(max_examples=50, deadline=None)
@given(
    rows=st.lists(st.integers(0, 10**6), min_size=1, max_size=20, unique=True),
    pulses=st.lists(st.integers(-10, 10**6 + 10), min_size=1, max_size=30),
)
def test_a_pulse_never_sees_a_later_setting(rows, pulses):
    rows_ns = np.array(rows, dtype=np.int64)
    table = _table(rows_ns, value=rows_ns.astype(float))  # each row's value is its own time
    values = attach_settings(np.array(pulses, dtype=np.int64), table, ["value"])[:, 0]
    for pulse, seen in zip(pulses, values, strict=True):
        earlier = rows_ns[rows_ns <= pulse]
        if earlier.size == 0:
            assert np.isnan(seen)
        else:
            assert seen == earlier.max()


def test_unsorted_table_and_missing_column():
    table = _table([b.T0 + 2 * S, b.T0], pv=[2.0, 1.0])
    assert attach_settings(np.array([b.T0 + S]), table, ["pv"])[0, 0] == 1.0
    with pytest.raises(KeyError, match="other"):
        attach_settings(np.array([b.T0]), table, ["other"])


def test_production_mask_needs_every_rule_and_fails_nan():
    values = np.array([[60.0, 900.0], [60.0, 800.0], [30.0, 900.0], [np.nan, 900.0], [59.9, 850.0]])
    rules = {"rr": 59.9, "beam_on": 850}
    assert production_mask(values, ["rr", "beam_on"], rules).tolist() == [
        True, False, False, False, True
    ]
    with pytest.raises(KeyError, match="missing_pv"):
        production_mask(values, ["rr", "beam_on"], {"missing_pv": 1})


def test_config_groups_change_exactly_where_settings_change():
    values = np.array([[1.0, 5.0], [1.0, 5.0], [1.0, 6.0], [1.0, 6.0], [2.0, 6.0], [1.0, 5.0]])
    assert config_groups(values, 1e-6).tolist() == [0, 0, 1, 1, 2, 3]


def test_config_groups_ignore_changes_within_tolerance_and_track_nan():
    values = np.array([[1.0], [1.0 + 1e-9], [1.5], [np.nan], [np.nan], [1.5]])
    assert config_groups(values, 1e-6).tolist() == [0, 0, 1, 2, 2, 3]
    assert config_groups(values[:3], 1.0).tolist() == [0, 0, 0]
    assert config_groups(np.zeros((4, 0)), 1e-6).tolist() == [0, 0, 0, 0]
    assert config_groups(np.zeros((0, 2)), 1e-6).size == 0


def test_load_settings_reads_features_and_filter_pvs(tmp_path):
    path = b.write_settings(
        tmp_path / "bs" / "day.hdf5",
        {
            "A:pv": [(b.T0, 1.0), (b.T0 + 5 * S, 2.0)],
            "B:pv": [(b.T0 + S, 10.0)],
            "RR": [(b.T0, 60.0)],
            "Unused": [(b.T0, 0.0)],
        },
    )
    config = BPMDataConfig(
        data_location=str(path.parent), features=["A:pv", "B:pv"], production_filter={"RR": 59.9}
    )
    assert settings_columns(config) == ["A:pv", "B:pv", "RR"]
    table = load_settings(config)
    # load_settings returns the typed SettingsTable now (was a DataFrame with "timestamps")
    assert table.pvs == ("A:pv", "B:pv", "RR") and table.timestamp_ns.dtype == np.int64
    pulses = b.T0 + np.array([0, 2, 6]) * S
    values = attach_settings(pulses, table, settings_columns(config))
    assert np.isnan(values[0]).all()  # B:pv has no value yet: the table starts at T0 + 1 s
    assert values[1:].tolist() == [[1.0, 10.0, 60.0], [2.0, 10.0, 60.0]]


def test_load_settings_keeps_exact_ns_so_a_pulse_at_a_change_gets_that_row(tmp_path):
    # float64 holds these times only to 256 ns: UP would round later, DOWN earlier
    up, down = b.T0 + 123_456_968, b.T0 + 5 * S + 123_456_789
    rows = np.array([(b.T0, 1.0), (up, 2.0), (down, 3.0)], dtype=[("timestamp", "<i8"), ("value", "<f8")])
    (tmp_path / "bs").mkdir()
    with h5py.File(tmp_path / "bs" / "day.h5", "w") as h5:
        h5.create_dataset("A:pv", data=rows)
    config = BPMDataConfig(data_location=str(tmp_path / "bs"), features=["A:pv"], production_filter={})
    table = load_settings(config)
    assert table.timestamp_ns.tolist() == [b.T0, up, down]
    pulses = np.array([up - 1, up, down - 1, down])
    assert attach_settings(pulses, table, ["A:pv"])[:, 0].tolist() == [1.0, 2.0, 2.0, 3.0]
