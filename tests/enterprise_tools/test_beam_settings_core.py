"""Tests for the typed beam-settings core: read_pv_histories -> PVHistory, settings_table."""

import logging

import h5py
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enterprise_tools.beam_settings_parser_hdf5 import (
    BeamConfigParserHDF5,
    BeamSettingsConfigError,
    BeamSettingsFileError,
    PVHistory,
    read_pv_histories,
)
from enterprise_tools.beam_settings_prep import (
    BeamConfigPreProcessor,
    SettingsTable,
    settings_table,
)

T0 = 1_767_571_200 * 10**9  # 2026-01-05T00:00:00Z
SEC = 10**9
ODD = 123_456_789  # not a multiple of 256 ns: float64 cannot hold T0 + ODD exactly
COMPOUND = np.dtype([("timestamp", "<i8"), ("value", "<f8")])


def _history(*pairs):
    return PVHistory(np.array([t for t, _ in pairs], dtype=np.int64), np.array([v for _, v in pairs]))


def test_int64_timestamps_stay_exact_to_the_nanosecond(tmp_path):
    assert float(T0 + ODD) != T0 + ODD  # the premise: float64 would round this time
    with h5py.File(tmp_path / "a.h5", "w") as h5:
        h5.create_dataset("PV:C", data=np.array([(T0 + ODD, 2.0), (T0, 1.0)], dtype=COMPOUND))
        h5["PV:N"] = np.array([[T0 + ODD + 1, 7], [T0 - 3, 6]], dtype=np.int64)
    histories = read_pv_histories(tmp_path, ["PV:C", "PV:N"])
    assert histories["PV:C"].timestamp_ns.dtype == np.int64
    assert histories["PV:C"].timestamp_ns.tolist() == [T0, T0 + ODD]
    assert histories["PV:N"].timestamp_ns.tolist() == [T0 - 3, T0 + ODD + 1]
    assert histories["PV:N"].value.tolist() == [6.0, 7.0]
    table = settings_table(histories, ["PV:N", "PV:C"])
    assert table.timestamp_ns.tolist() == [T0, T0 + ODD, T0 + ODD + 1]
    assert table.values.tolist() == [[6.0, 1.0], [6.0, 2.0], [7.0, 2.0]]
    assert table.rows_before_all_pvs_set == 1  # T0 - 3: PV:C not set yet


def test_prep_wrapper_keeps_exact_times_when_given_histories(tmp_path):
    histories = {"A": _history((T0 + ODD, 1.0))}
    frame, used = BeamConfigPreProcessor({}).run(histories)
    assert int(frame["timestamps"].astype("int64").iloc[0]) == T0 + ODD
    assert used["first_timestamp_ns"] == T0 + ODD


def test_files_merge_row_by_row_first_file_by_name_wins(tmp_path, caplog):
    with h5py.File(tmp_path / "2026-01-07.h5", "w") as h5:
        h5["PV:A"] = np.array([[T0 + 2 * SEC, 30.0], [T0 + 3 * SEC, 4.0]])
    with h5py.File(tmp_path / "2026-01-06.h5", "w") as h5:
        h5["PV:A"] = np.array([[T0 + SEC, 20.0], [T0 + 2 * SEC, 3.0]])
        h5["PV:B"] = np.array([[T0, 5.0]])
    with h5py.File(tmp_path / "2026-01-05.h5", "w") as h5:
        h5["PV:A"] = np.array([[T0, 1.0], [T0 + SEC, 2.0]])
    with caplog.at_level(logging.WARNING, logger="beamwatch.beam_settings"):
        histories = read_pv_histories(tmp_path)
    a = histories["PV:A"]
    assert a.timestamp_ns.tolist() == [T0 + s * SEC for s in range(4)]
    assert a.value.tolist() == [1.0, 2.0, 3.0, 4.0]  # T0+1s from 01-05, T0+2s from 01-06
    assert a.duplicate_rows == 2
    assert a.files == ("2026-01-05.h5", "2026-01-06.h5", "2026-01-07.h5")
    assert histories["PV:B"].duplicate_rows == 0 and histories["PV:B"].files == ("2026-01-06.h5",)
    assert "PV:A: 2 row(s)" in caplog.text and "PV:B" not in caplog.text


def test_equal_times_in_one_file_last_row_wins_and_nan_is_absent():
    history = _history((T0, 1.0), (T0 + SEC, 2.0), (T0 + SEC, 3.0), (T0 + 2 * SEC, np.nan))
    table = settings_table({"A": history, "B": _history((T0, 9.0))})
    assert table.pvs == ("A", "B")
    assert table.timestamp_ns.tolist() == [T0, T0 + SEC]
    assert table.select(["A"])[:, 0].tolist() == [1.0, 3.0]


def test_missing_pv_names_the_location_and_the_nearest_name(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as h5:
        h5.create_group("LEBT")["Focus_1:V_Set"] = np.array([[T0, 1.0]])
    with pytest.raises(BeamSettingsConfigError, match=r"'LEBT/Focus1:V_Set'.*'LEBT/Focus_1:V_Set'.*a\.h5"):
        read_pv_histories(tmp_path / "a.h5", ["LEBT/Focus1:V_Set"])
    with pytest.raises(BeamSettingsConfigError, match=r"did you mean 'B:pv'"):
        settings_table({"B:pv": _history((T0, 1.0))}, ["B:pw"])


def test_bad_selection_and_location_errors(tmp_path):
    with pytest.raises(BeamSettingsConfigError, match="list of PV names"):
        read_pv_histories(tmp_path, "PV:A")
    with pytest.raises(BeamSettingsConfigError, match="twice"):
        settings_table({"A": _history((T0, 1.0))}, ["A", "A"])
    with pytest.raises(BeamSettingsConfigError, match="empty"):
        settings_table({"A": _history((T0, 1.0))}, [])
    with pytest.raises(BeamSettingsConfigError, match="does not exist"):
        read_pv_histories(tmp_path / "nope")
    with pytest.raises(BeamSettingsConfigError, match="'features' must be a list"):
        BeamConfigParserHDF5({"data_location": str(tmp_path), "features": "PV:A"}).run()


def test_bad_dataset_error_names_file_and_dataset(tmp_path):
    with h5py.File(tmp_path / "day.h5", "w") as h5:
        h5["PV:A"] = np.zeros((3, 4))
    with pytest.raises(BeamSettingsFileError, match=r"day\.h5.*PV:A.*\(N, 2\)"):
        read_pv_histories(tmp_path)


def test_pv_with_no_numeric_value_cannot_be_filled():
    with pytest.raises(ValueError, match="'A' has no numeric values"):
        settings_table({"A": _history((T0, np.nan))})


def test_typed_values_refuse_wrong_dtypes_and_order():
    with pytest.raises(TypeError, match="int64"):
        PVHistory(np.array([float(T0)]), np.array([1.0]))
    with pytest.raises(ValueError, match="sorted"):
        PVHistory(np.array([T0 + 1, T0]), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="strictly increasing"):
        SettingsTable(np.array([T0, T0]), np.zeros((2, 1)), ("A",))
    with pytest.raises(ValueError, match=r"values \[m, 2\]"):
        SettingsTable(np.array([T0]), np.zeros((1, 1)), ("A", "B"))
    with pytest.raises(KeyError, match=r"no column\(s\) C; it has A, B"):
        SettingsTable(np.array([T0]), np.zeros((1, 2)), ("A", "B")).select(["B", "C"])


def _pandas_reference(histories, pvs):
    """The former pandas implementation: outer join, forward fill, drop incomplete rows."""
    columns = []
    for pv in pvs:
        h = histories[pv]
        keep = ~np.isnan(h.value)
        s = pd.Series(h.value[keep], index=h.timestamp_ns[keep], name=pv)
        columns.append(s[~s.index.duplicated(keep="last")])
    joined = pd.concat(columns, axis=1, join="outer", sort=True).ffill().dropna(how="any")
    return joined.index.to_numpy(dtype=np.int64), joined.to_numpy(dtype=np.float64)


_rows = st.lists(
    st.tuples(st.integers(0, 40), st.one_of(st.floats(-5, 5), st.just(float("nan")))),
    min_size=1, max_size=12,
)


@settings(max_examples=40, deadline=None)
@given(a=_rows, b=_rows)
def test_settings_table_matches_the_former_pandas_join(a, b):
    histories = {}
    for pv, rows in (("A", a), ("B", b)):
        rows = sorted(rows, key=lambda r: r[0])  # stable: equal times keep their order
        histories[pv] = _history(*((T0 + t, v) for t, v in rows))
    if any(np.isnan(h.value).all() for h in histories.values()):
        with pytest.raises(ValueError, match="no numeric values"):
            settings_table(histories, ["B", "A"])
        return
    table = settings_table(histories, ["B", "A"])
    stamps, values = _pandas_reference(histories, ["B", "A"])
    np.testing.assert_array_equal(table.timestamp_ns, stamps)
    np.testing.assert_array_equal(table.values, values)
