"""Tests for the beam-settings preparation: join, forward fill, rescale, errors."""

import h5py
import numpy as np
import pandas as pd
import pytest

from enterprise_tools.beam_settings_parser_hdf5 import BeamConfigParserHDF5, BeamSettingsConfigError
from enterprise_tools.beam_settings_prep import BeamConfigPreProcessor

T0 = 1_767_571_200 * 10**9
SEC = 10**9


def _rows(*pairs):
    return np.array([[T0 + s * SEC, v] for s, v in pairs], dtype=np.float64)


def _seconds(table):
    return ((table["timestamps"].astype("int64") - T0) // SEC).tolist()


def test_outer_join_forward_fills_and_drops_rows_before_every_pv_is_set():
    data = {"A": _rows((0, 1.0), (3, 2.0)), "B": _rows((1, 10.0), (2, 20.0))}
    table, used = BeamConfigPreProcessor({"features": ["B", "A"]}).run(data)
    assert list(table.columns) == ["timestamps", "B", "A"]
    assert str(table["timestamps"].dtype) == "datetime64[ns, UTC]"
    assert _seconds(table) == [1, 2, 3]
    assert table["A"].tolist() == [1.0, 1.0, 2.0]
    assert table["B"].tolist() == [10.0, 20.0, 20.0]
    assert used["rows_before_all_pvs_set"] == 1 and used["rows"] == 3


def test_unsorted_rows_and_duplicate_timestamps_last_value_wins():
    data = {"A": _rows((2, 5.0), (0, 1.0), (2, 6.0), (1, 3.0))}
    table, _ = BeamConfigPreProcessor({"features": None}).run(data)
    assert _seconds(table) == [0, 1, 2]
    assert table["A"].tolist() == [1.0, 3.0, 6.0]


def test_nan_values_are_absent_readings_so_previous_value_stays():
    data = {"A": _rows((0, 1.0), (1, np.nan), (2, 3.0)), "B": _rows((0, 0.0), (1, 7.0))}
    table, _ = BeamConfigPreProcessor({}).run(data)
    assert table["A"].tolist() == [1.0, 1.0, 3.0]
    assert table[["A", "B"]].notna().all().all()


def test_rescale_with_data_range_returns_the_ranges_used():
    data = {"A": _rows((0, 2.0), (1, 4.0), (2, 6.0)), "B": _rows((0, 5.0))}
    table, used = BeamConfigPreProcessor({"rescale": True}).run(data)
    assert table["A"].tolist() == [0.0, 0.5, 1.0]
    assert table["B"].tolist() == [0.0, 0.0, 0.0]  # constant column: no division by zero
    assert used["scaling_min_max"] == {"A": [2.0, 6.0], "B": [5.0, 5.0]}


def test_rescale_uses_given_ranges():
    data = {"A": _rows((0, 2.0), (1, 4.0))}
    config = {"rescale": True, "scaling_min_max": {"A": [0.0, 8.0]}}
    table, used = BeamConfigPreProcessor(config).run(data)
    assert table["A"].tolist() == [0.25, 0.5]
    assert used["scaling_min_max"] == {"A": [0.0, 8.0]}


def test_bad_scaling_range_is_a_config_error():
    config = {"rescale": True, "scaling_min_max": {"A": [3.0, 1.0]}}
    with pytest.raises(BeamSettingsConfigError, match="hi < lo"):
        BeamConfigPreProcessor(config).run({"A": _rows((0, 1.0))})


def test_missing_pv_error_lists_missing_and_nearest_names():
    data = {"ICS_Tim:Gate_BeamOn:RR": _rows((0, 60.0)), "Src:H2:Flw_Set": _rows((0, 30.0))}
    config = {"features": ["ICS_Tim:Gate_BeamOn:R", "Src:H2:Flw_Set", "Totally:Else"]}
    with pytest.raises(BeamSettingsConfigError) as info:
        BeamConfigPreProcessor(config).run(data)
    message = str(info.value)
    assert "'ICS_Tim:Gate_BeamOn:R'" in message and "'Totally:Else'" in message
    assert "did you mean 'ICS_Tim:Gate_BeamOn:RR'" in message
    assert "'Src:H2:Flw_Set' (" not in message  # present PVs are not reported


def test_compound_and_n_by_2_files_prepare_to_one_table(tmp_path):
    compound = np.dtype([("timestamp", "<i8"), ("value", h5py.string_dtype())])
    with h5py.File(tmp_path / "a.h5", "w") as h5:
        h5["RR"] = _rows((5, 30.0), (0, 60.0))
        h5.create_group("LEBT").create_dataset(
            "Focus", data=np.array([(T0 + 2 * SEC, "41.5"), (T0, "bad"), (T0 + SEC, "40")], compound)
        )
    data, _ = BeamConfigParserHDF5({"data_location": str(tmp_path)}).run()
    table, _ = BeamConfigPreProcessor({"features": ["RR", "LEBT/Focus"]}).run(data)
    assert _seconds(table) == [1, 2, 5]
    assert table["LEBT/Focus"].tolist() == [40.0, 41.5, 41.5]
    assert table["RR"].tolist() == [60.0, 60.0, 30.0]


def test_timestamps_round_trip_through_float64_to_within_256_ns():
    stamp = T0 + 123_456_789  # not a multiple of 256 ns
    data = {"A": np.array([[float(stamp), 1.0]])}
    table, _ = BeamConfigPreProcessor({}).run(data)
    got = int(table["timestamps"].astype("int64").iloc[0])
    assert abs(got - stamp) <= 128
    assert isinstance(table, pd.DataFrame)
