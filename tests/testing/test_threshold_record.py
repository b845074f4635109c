"""threshold.json round-trips: what the train flow writes, the test flow reads back whole."""

import json

import numpy as np
import pytest

from parser.configs import ThresholdConfig
from testing.test import read_threshold_choice
from training.outputs import choose_and_save_threshold
from utils.run_folder import RunFolderError


@pytest.mark.parametrize("operating_point", ["target_false_alarm_rate", "best_f1"])
def test_threshold_json_as_written_reads_back_equal(tmp_path, operating_point):
    rng = np.random.default_rng(3)
    labels = np.r_[np.zeros(40, int), np.ones(8, int)]
    scores = np.r_[rng.uniform(0, 0.7, 40), rng.uniform(0.3, 1, 8)]
    path = tmp_path / "threshold.json"
    written = choose_and_save_threshold(labels, scores, ThresholdConfig(
        operating_point=operating_point, target_false_alarm_rate=0.05), path)
    read = read_threshold_choice(path)
    assert read == written
    assert read.chosen_on == "validation part"
    assert read.to_dict() == json.loads(path.read_text())  # every key, nothing dropped


@pytest.mark.parametrize(("text", "error", "match"), [
    ("{", ValueError, "cannot be read as JSON"),
    ('{"threshold": null}', ValueError, "'threshold' is None; expected a finite number"),
    ("[1]", ValueError, "'threshold' is None; expected a finite number"),
    ('{"threshold": 0.5}', RunFolderError, "cannot be read: Bad threshold record: missing keys"),
])
def test_bad_threshold_json_is_named(tmp_path, text, error, match):
    path = tmp_path / "threshold.json"
    path.write_text(text)
    with pytest.raises(error, match=match) as info:
        read_threshold_choice(path)
    assert "threshold.json" in str(info.value)
    if error is ValueError:
        assert not isinstance(info.value, RunFolderError)  # exit 1, not a usage error
