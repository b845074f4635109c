"""Tests for the beam-settings HDF5 parser: layouts, groups, merging, errors, saving."""

import json
import logging

import h5py
import numpy as np
import pytest

from enterprise_tools.beam_settings_parser_hdf5 import (
    BeamConfigParserHDF5,
    BeamSettingsConfigError,
    BeamSettingsFileError,
)

T0 = 1_767_571_200 * 10**9  # 2026-01-05T00:00:00Z, whole seconds are exact in float64
SEC = 10**9
COMPOUND = np.dtype([("timestamp", "<i8"), ("value", "<f8")])
COMPOUND_STR = np.dtype([("timestamp", "<i8"), ("value", h5py.string_dtype())])


def _parse(location, **config):
    return BeamConfigParserHDF5({"data_location": str(location), **config}).run()


def test_n_by_2_dataset_is_read_and_sorted_by_time(tmp_path):
    rows = np.array([[T0 + 2 * SEC, 3.0], [T0, 1.0], [T0 + SEC, 2.0]])
    with h5py.File(tmp_path / "a.hdf5", "w") as h5:
        h5["LEBT:Chop_N:V_Set"] = rows
    data, used = _parse(tmp_path / "a.hdf5")
    arr = data["LEBT:Chop_N:V_Set"]
    assert arr.dtype == np.float64 and arr.shape == (3, 2)
    np.testing.assert_array_equal(arr[:, 1], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(arr[:, 0].astype(np.int64), [T0, T0 + SEC, T0 + 2 * SEC])
    assert used["n_pvs"] == 1 and used["rows"] == {"LEBT:Chop_N:V_Set": 3}


def test_compound_dataset_in_nested_group_is_named_by_relative_path(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as h5:
        group = h5.create_group("Src").create_group("RF")
        group.create_dataset(
            "Gnd:Pwr_Set", data=np.array([(T0 + SEC, 55.0), (T0, 50.0)], dtype=COMPOUND)
        )
    data, _ = _parse(tmp_path)
    assert list(data) == ["Src/RF/Gnd:Pwr_Set"]
    np.testing.assert_array_equal(data["Src/RF/Gnd:Pwr_Set"][:, 1], [50.0, 55.0])


def test_string_values_parse_and_unparsable_become_nan_and_are_counted(tmp_path, caplog):
    rows = np.array([(T0, "2.5"), (T0 + SEC, "n/a"), (T0 + 2 * SEC, b"-1e3")], dtype=COMPOUND_STR)
    with h5py.File(tmp_path / "a.h5", "w") as h5:
        h5.create_dataset("PV:A", data=rows)
        h5["PV:B"] = np.array([[str(T0), "7"], [str(T0 + SEC), "oops"]], dtype="S32")
    with caplog.at_level(logging.WARNING, logger="beamwatch.beam_settings"):
        data, used = _parse(tmp_path)
    np.testing.assert_array_equal(data["PV:A"][:, 1], [2.5, np.nan, -1000.0])
    np.testing.assert_array_equal(data["PV:B"][:, 1], [7.0, np.nan])
    assert used["nan_values"] == {"PV:A": 1, "PV:B": 1}
    assert "did not parse" in caplog.text


def test_unparsable_timestamp_is_an_error_naming_file_and_dataset(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as h5:
        h5["PV:A"] = np.array([["late", "1"]], dtype="S8")
    with pytest.raises(BeamSettingsFileError, match=r"a\.h5.*PV:A.*row 0"):
        _parse(tmp_path)


def test_wrong_layout_is_an_error_naming_the_dataset(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as h5:
        h5["PV:A"] = np.zeros((4, 3))
    with pytest.raises(BeamSettingsFileError, match=r"PV:A.*\(N, 2\)"):
        _parse(tmp_path)


def test_files_merge_by_name_and_first_file_wins_on_duplicate_rows(tmp_path, caplog):
    with h5py.File(tmp_path / "2026-01-06.hdf5", "w") as h5:
        h5["PV:A"] = np.array([[T0 + SEC, 99.0], [T0 + 2 * SEC, 3.0]])
    with h5py.File(tmp_path / "2026-01-05.hdf5", "w") as h5:
        h5["PV:A"] = np.array([[T0, 1.0], [T0 + SEC, 2.0]])
    with caplog.at_level(logging.WARNING, logger="beamwatch.beam_settings"):
        data, used = _parse(tmp_path)
    np.testing.assert_array_equal(data["PV:A"][:, 1], [1.0, 2.0, 3.0])
    assert used["duplicate_rows"] == {"PV:A": 1}
    assert [p.rsplit("/", 1)[-1] for p in used["files"]] == ["2026-01-05.hdf5", "2026-01-06.hdf5"]
    assert "first file by name wins" in caplog.text


def test_features_keep_only_the_listed_pvs(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as h5:
        h5["PV:A"] = np.array([[T0, 1.0]])
        h5["PV:B"] = np.array([[T0, 2.0]])
        h5["junk"] = np.zeros(3)  # not selected, so its layout does not matter
    data, _ = _parse(tmp_path, features=["PV:B"])
    assert list(data) == ["PV:B"]


def test_missing_feature_lists_missing_pv_and_nearest_names(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as h5:
        h5["LEBT:Focus_1:V_Set"] = np.array([[T0, 1.0]])
    with pytest.raises(BeamSettingsConfigError, match=r"LEBT:Focus1:V_Set.*LEBT:Focus_1:V_Set"):
        _parse(tmp_path, features=["LEBT:Focus1:V_Set"])


def test_missing_data_location_raises_config_error():
    with pytest.raises(BeamSettingsConfigError, match="data_location"):
        BeamConfigParserHDF5({"features": None}).run()


def test_nonexistent_or_empty_location_raises_config_error(tmp_path):
    with pytest.raises(BeamSettingsConfigError, match="does not exist"):
        _parse(tmp_path / "nope")
    with pytest.raises(BeamSettingsConfigError, match="holds no"):
        _parse(tmp_path)


def test_unreadable_file_error_names_the_file(tmp_path):
    (tmp_path / "broken.h5").write_bytes(b"not an hdf5 file at all")
    with pytest.raises(BeamSettingsFileError, match="broken.h5"):
        _parse(tmp_path)


def test_save_writes_readable_h5_and_json(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    with h5py.File(src / "a.h5", "w") as h5:
        h5["PV:A"] = np.array([[T0 + SEC, 2.0], [T0, 1.0]])
        h5.create_group("G")["PV:B"] = np.array([[T0, 5.0]])
    out = tmp_path / "out"
    data, used = BeamConfigParserHDF5({"data_location": str(src), "save_dir": str(out)}).run(
        save=True
    )
    again, _ = _parse(out / "beam_settings.h5")
    assert sorted(again) == sorted(data)
    for pv in data:
        np.testing.assert_array_equal(again[pv], data[pv])
    saved = json.loads((out / "beam_settings.json").read_text())
    assert saved["features"] == ["G/PV:B", "PV:A"] and saved["n_pvs"] == 2
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_save_without_save_dir_is_a_config_error(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as h5:
        h5["PV:A"] = np.array([[T0, 1.0]])
    with pytest.raises(BeamSettingsConfigError, match="save_dir"):
        BeamConfigParserHDF5({"data_location": str(tmp_path)}).run(save=True)
