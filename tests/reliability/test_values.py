"""Non-finite values and stale settings at the data boundaries: errors or ledgered skips."""

from __future__ import annotations

import json

import numpy as np
import pytest

from data_preparation.ledger import DataLedger
from data_preparation.pipeline import prepare_samples
from data_preparation.scalers import SettingsScaler, TraceScaler, load_scalers, save_scalers
from data_preparation.validation import (
    StaleSettingsError,
    check_scores,
    read_threshold,
    refuse_stale_settings,
)
from enterprise_tools.beam_settings_parser_hdf5 import BeamSettingsFileError
from parser.configs import config_from_dict
from tests.data_preparation import builders as b

PV = "LEBT:Chop_N:V_Set"


def _config(tmp_path, root, **beam_settings):
    return config_from_dict({
        "data": {"dataset_loc": str(root), "begin": b.BEGIN, "shift": b.SHIFT, "workers": 1,
                 "cache_dir": None},
        "beam_settings": {"data_location": str(tmp_path / "settings"), "features": [PV],
                          "production_filter": {}, **beam_settings},
        # No reference pulses: the first pulses of the archive have no earlier ones and would
        # be ledgered no_reference, which is not what these settings tests count.
        "reference": {"count": 0},
    })


@pytest.fixture
def archive(tmp_path):
    root = tmp_path / "archive"
    b.small_archive(root)
    return root


def test_infinite_setting_is_an_error_naming_file_pv_and_row(tmp_path, archive):
    b.write_settings(tmp_path / "settings" / "s.hdf5",
                     {PV: [(b.T0 - 10**9, 1.0), (b.T0, np.inf), (b.T0 + 10**8, 2.0)]})
    with pytest.raises(BeamSettingsFileError, match=rf"s.hdf5.*{PV}.*row 1 is inf"):
        prepare_samples(_config(tmp_path, archive), progress=False)


def test_pulses_past_the_settings_history_are_ledgered_stale(tmp_path, archive):
    b.write_settings(tmp_path / "settings" / "s.hdf5", {PV: [(b.T0 - 10**9, 1.0)]})
    # The history ends at T0 - 1 s; + 1.1 s covers T0 + 0.1 s: samples at ts_of(0, 1, 2, 5),
    # not those at ts_of(10, 11, 21) (16.7 ms apart).
    config = _config(tmp_path, archive, max_settings_age_s=1.1)
    samples = prepare_samples(config, progress=False)
    stale = [e for e in samples.ledger.entries if e.reason == "stale_settings"]
    assert sum(e.count for e in stale) == 3
    assert sorted(samples.timestamp_ns.tolist()) == [b.ts_of(k) for k in (0, 1, 2, 5)]
    with pytest.raises(StaleSettingsError, match="--allow-stale-settings"):
        refuse_stale_settings(samples.ledger, "s.hdf5", allow=False)
    assert refuse_stale_settings(samples.ledger, "s.hdf5", allow=True) == 3


def test_no_age_limit_keeps_every_pulse(tmp_path, archive):
    b.write_settings(tmp_path / "settings" / "s.hdf5", {PV: [(b.T0 - 10**9, 1.0)]})
    samples = prepare_samples(_config(tmp_path, archive, max_settings_age_s=None), progress=False)
    assert len(samples) == 7
    assert refuse_stale_settings(samples.ledger, "s.hdf5", allow=False) == 0


@pytest.mark.parametrize(("field", "value", "message"), [
    ("center_", float("nan"), r"center_\[0\] is nan"),
    ("scale_", 0.0, r"scale_\[0\] is 0.0"),
])
def test_broken_scalers_file_is_refused_naming_it(tmp_path, field, value, message):
    path = tmp_path / "scalers.json"
    save_scalers(path, TraceScaler("standard").fit(np.arange(8.0).reshape(2, 4)),
                 SettingsScaler("standard").fit(np.arange(6.0).reshape(3, 2)))
    data = json.loads(path.read_text())
    data["settings_scaler"][field][0] = value
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=rf"scalers.json: SettingsScaler: {message}"):
        load_scalers(path)


def test_non_finite_scores_are_an_error():
    check_scores(np.array([0.1, 0.9]))
    with pytest.raises(ValueError, match=r"1 of 3 scores are NaN or inf \(first at sample 2\)"):
        check_scores(np.array([0.1, 0.2, np.nan]))


@pytest.mark.parametrize("text", ["{", '{"threshold": null}', '{"threshold": "0.5"}', "[1]"])
def test_bad_threshold_file_is_named(tmp_path, text):
    path = tmp_path / "threshold.json"
    path.write_text(text)
    with pytest.raises(ValueError, match="threshold.json"):
        read_threshold(path)


def test_empty_ledger_never_refuses():
    assert refuse_stale_settings(DataLedger(), "x", allow=False) == 0
