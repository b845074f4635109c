"""benchmarks.public_data: each layout writer round-trips through its job's own source."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks import public_data
from parser.configs import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _parts() -> dict:
    """Two parts of unequal-length two-channel series with string labels."""
    rng = np.random.default_rng(0)
    lengths = {"train": [12, 9, 12, 10], "test": [12, 11]}
    labels = {"train": np.array(["up", "down", "up", "down"]), "test": np.array(["down", "up"])}
    return {part: ([rng.normal(1.0, 0.5, (2, n)) for n in lengths[part]], labels[part])
            for part in lengths}


def test_sessions_writer_round_trips_through_the_sessions_source(tmp_path):
    from data_preparation.sources.sessions import load

    parts = _parts()
    root = public_data.write_series_sessions(parts, tmp_path / "set", "toy")
    config = load_config(CONFIGS / "sessions.yaml", [f"data.dataset_loc={root}",
                                                     "sessions.length=12"])
    samples = load(config)
    assert samples.layout["channels"] == ["c0", "c1"]
    assert list(samples.class_names) == ["down", "up"]
    by_id = {Path(i).name: k for k, i in enumerate(samples.ids)}
    for part, (series, labels) in parts.items():
        for i, (x, label) in enumerate(zip(series, labels, strict=True)):
            k = by_id[f"toy_{part}_{i:05d}.csv"]
            assert samples.split[k] == part
            assert samples.class_names[samples.label[k]] == label
            n = x.shape[1]
            np.testing.assert_allclose(samples.inputs["trace"][k, :n], x.T, rtol=1e-6)
            assert not samples.inputs["trace"][k, n:].any()  # padding after a short series


def test_windows_writer_round_trips_through_the_npz_source(tmp_path):
    from data_preparation.sources.windows import load

    parts = _parts()
    path = public_data.write_series_windows(parts, tmp_path / "set.npz")
    config = load_config(CONFIGS / "windows.yaml", [f"data.dataset_loc={path}"])
    samples = load(config)
    assert samples.inputs["trace"].shape == (6, 12, 2)
    assert list(samples.split) == ["train"] * 4 + ["test"] * 2
    names = np.concatenate([parts["train"][1], parts["test"][1]])
    assert [samples.class_names[c] for c in samples.label] == list(names)
    np.testing.assert_allclose(samples.inputs["trace"][1, :9], parts["train"][0][1].T, rtol=1e-6)


def test_table_writer_round_trips_through_the_features_source(tmp_path):
    from sklearn.datasets import load_wine

    from data_preparation.sources.tables import load_features

    path = public_data.write_table("wine", tmp_path / "wine.csv")
    config = load_config(CONFIGS / "features.yaml", [f"data.dataset_loc={path}"])
    samples = load_features(config)
    wine = load_wine()
    np.testing.assert_allclose(samples.inputs["features"], wine.data, rtol=1e-6)
    assert [samples.class_names[c] for c in samples.label] == list(
        np.asarray(wine.target_names)[wine.target])
    with pytest.raises(ValueError, match="unknown table"):
        public_data.write_table("iris", tmp_path / "iris.csv")


def test_bundled_ucr_sets_load_without_download():
    pytest.importorskip("aeon")
    parts = public_data.load_ucr("PickupGestureWiimoteZ")
    assert len(parts["train"][0]) == 50 and len(parts["test"][0]) == 50
    lengths = {x.shape[-1] for x in parts["train"][0]}
    assert len(lengths) > 1  # unequal lengths, as bundled
    with pytest.raises(FileNotFoundError, match="not bundled"):
        public_data.load_ucr("NoSuchSet")
