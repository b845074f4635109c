"""A model with a "reference" input trains and tests through the flows (tiny probe model)."""

from __future__ import annotations

import json

import keras
import pytest

from enterprise_tools.simulator import SimulatorParams, simulate_archive
from model.registry import _MODELS, register_model
from parser.configs import (
    BPMDataConfig,
    Config,
    DCMDataConfig,
    ModelConfig,
    ReferenceConfig,
    RunConfig,
    ThresholdConfig,
    TrainConfig,
)
from testing.test import test as run_test
from training.train import train
from utils.logs import teardown_logging

SEEN: list = []  # the InputSpec each build received


def reference_probe_for_tests(model_config, spec):
    """Mean of the trace and mean of its references -> one score (safe-mode loadable)."""
    SEEN.append(spec)
    trace = keras.Input((spec.trace_length, spec.n_channels), name="trace")
    reference = keras.Input((spec.n_references, spec.trace_length, spec.n_channels),
                            name="reference")
    flat = keras.layers.Reshape((spec.n_references * spec.trace_length, spec.n_channels))(
        reference)
    joined = keras.layers.Concatenate()([keras.layers.GlobalAveragePooling1D()(trace),
                                         keras.layers.GlobalAveragePooling1D()(flat)])
    score = keras.layers.Dense(1, activation="sigmoid", name="score")(joined)
    return keras.Model({"trace": trace, "reference": reference}, score)


@pytest.fixture
def probe_model():
    """Registered for this test only (other tests list the registry)."""
    register_model(reference_probe_for_tests)
    yield
    _MODELS.pop("reference_probe_for_tests", None)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("refflow") / "archive"
    simulate_archive(root, SimulatorParams.tiny(seed=4, hours=0.5))
    return root


def test_reference_model_trains_and_tests_with_reference_counts(archive, tmp_path, probe_model):
    config = Config(
        run=RunConfig(name="ref", output_dir=str(tmp_path / "runs"), log_dir=str(tmp_path / "l"),
                      seed=1),
        data=DCMDataConfig(dataset_loc=str(archive / "dcm"), workers=1,
                           cache_dir=str(tmp_path / "cache"), begin=3000, shift=2000),
        beam_settings=BPMDataConfig(data_location=str(archive / "beam_settings")),
        model=ModelConfig(name="reference_probe_for_tests"),
        train=TrainConfig(epochs=1, batch_size=16, tensorboard=False),
        threshold=ThresholdConfig(target_false_alarm_rate=0.1),
        reference=ReferenceConfig(count=2),
    )
    try:
        result = train(config, progress=False)
        tested = run_test(result.run_dir, part="val", progress=False)
    finally:
        teardown_logging()
    assert SEEN and SEEN[-1].n_references == 2
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    for name in ("train", "val", "test"):
        counts = metrics["splits"][name]["references"]
        assert counts["none"] == 0 and counts["self"] == 0
        assert counts["same_file"] + counts["archive"] == metrics["splits"][name]["n"]
    test_metrics = json.loads((tested.out_dir / "metrics.json").read_text())
    assert test_metrics["split"]["references"] == metrics["splits"]["val"]["references"]
