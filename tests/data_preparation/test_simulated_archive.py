"""The loader and the pipeline against the simulator's truth.csv (exact agreement)."""

import os

import pandas as pd
import pytest

from data_preparation.data_loader import load_pulses
from data_preparation.pipeline import prepare_samples
from parser.configs import BPMDataConfig, Config, DCMDataConfig, ReferenceConfig, TrainConfig

SETTINGS_SKIP = "no_production_settings"


@pytest.fixture(scope="module")
def truth(simulated_archive):
    return pd.read_csv(simulated_archive / "truth.csv", keep_default_na=False)


def _found(root, files, file_index, timestamp_ns, label):
    return {
        (os.path.relpath(files[f], root), int(t), int(lab))
        for f, t, lab in zip(file_index, timestamp_ns, label, strict=True)
    }


def _expected(truth, skips):
    rows = truth[(truth.label >= 0) & truth.expected_skip.isin(skips)]
    return set(zip(rows.file, rows.timestamp_ns.astype(int), rows.label.astype(int), strict=True))


def test_loader_delivers_exactly_the_truth_samples(simulated_archive, truth):
    config = DCMDataConfig(dataset_loc=str(simulated_archive / "dcm"), workers=2, cache_dir=None)
    pulses = load_pulses(config, progress=False)
    found = _found(simulated_archive, pulses.files, pulses.file_index, pulses.timestamp_ns,
                   pulses.label)
    expected = _expected(truth, ["", SETTINGS_SKIP])  # settings are not the loader's business
    assert len(found) == len(pulses) == len(expected)
    assert found == expected
    ledgered = {(os.path.relpath(e.path, simulated_archive), e.reason) for e in pulses.ledger.entries}
    skipped = truth[~truth.expected_skip.isin(["", SETTINGS_SKIP])]
    assert ledgered == set(zip(skipped.file, skipped.expected_skip, strict=True))
    assert "corrupt_file" in {reason for _, reason in ledgered}


def test_pipeline_drops_non_production_pulses_like_the_truth(simulated_archive, truth, tmp_path):
    config = Config(
        data=DCMDataConfig(dataset_loc=str(simulated_archive / "dcm"), workers=1,
                           cache_dir=str(tmp_path / "cache")),
        beam_settings=BPMDataConfig(data_location=str(simulated_archive / "beam_settings")),
        train=TrainConfig(streaming="true"),
        reference=ReferenceConfig(count=0),  # compared with truth.csv, which has no references
    )
    samples = prepare_samples(config, progress=False)
    assert samples.streaming and samples.settings.shape == (len(samples), 22)
    found = _found(simulated_archive, samples.files, samples.file_index, samples.timestamp_ns,
                   samples.label)
    assert found == _expected(truth, [""])
    dropped = truth[(truth.label >= 0) & (truth.expected_skip == SETTINGS_SKIP)]
    summary = {row["reason"]: row["pulses"] for row in samples.ledger.summary()}
    assert summary.get("non_production", 0) + summary.get("no_settings", 0) == len(dropped)
