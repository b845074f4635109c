"""A tiny simulated archive and a hand-built run folder on it, shared by the live tests.

The run is built the way the train flow builds one (prepare_samples, split, scalers fitted on
the training part, the registered model) but not trained: export parity and live scoring do not
depend on the weights, and skipping `fit` keeps the fixture to seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from enterprise_tools.simulator import SimulatorParams, simulate_archive

TINY = ["model.conv_filters=[4,4,4]", "model.lstm_units=4", "model.settings_units=[4]",
        "model.head_units=[4]", "model.bidirectional=false", "data.shift=2000",
        "data.workers=1", "data.cache_dir=null", "train.tensorboard=false",
        "threshold.target_false_alarm_rate=0.05"]


def build_run(tmp: Path, archive: Path, overrides=()) -> Path:
    """A run folder with config.yaml, model.keras, scalers.json and threshold.json."""
    import keras

    from analysis.thresholds import ThresholdChoice
    from data_preparation.pipeline import fit_scalers, prepare_samples
    from data_preparation.scalers import save_scalers
    from data_preparation.split import split_indices
    from model import InputSpec, build_model
    from parser.configs import dump_config, load_config

    config = load_config(None, [*TINY, f"data.dataset_loc={archive / 'dcm'}",
                                f"beam_settings.data_location={archive / 'beam_settings'}",
                                f"run.output_dir={tmp / 'runs'}", f"run.log_dir={tmp / 'logs'}",
                                *overrides])
    run = tmp / "runs" / "20260101-000000-tiny"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(dump_config(config))
    samples = prepare_samples(config, progress=False)
    parts = split_indices(samples.timestamp_ns, samples.label, samples.group, config.split,
                          seed=config.run.seed, acquisition=samples.acquisition)
    trace_scaler, settings_scaler = fit_scalers(samples, parts["train"], config.scaling)
    save_scalers(run / "scalers.json", trace_scaler, settings_scaler)
    keras.utils.set_random_seed(1)
    model = build_model(config.model, InputSpec(config.data.shift, 1, samples.settings.shape[1],
                                                samples.n_references,
                                                n_history=samples.n_history))
    model.save(run / "model.keras")
    # A complete record as the train flow writes it (the test flow reads it through
    # ThresholdChoice); the figures are placeholders, the model is untrained.
    choice = ThresholdChoice(threshold=0.5, method="target_false_alarm_rate",
                             target_false_alarm_rate=0.05, false_alarm_rate=0.0, recall=0.0,
                             precision=0.0, f1=0.0, n_normal=0, n_errant=0,
                             chosen_on="validation part")
    (run / "threshold.json").write_text(json.dumps(choice.to_dict()))
    return run


@pytest.fixture(scope="session")
def tiny_archive(tmp_path_factory) -> Path:
    archive = tmp_path_factory.mktemp("live") / "archive"
    simulate_archive(archive, SimulatorParams.tiny(seed=3, hours=0.6))
    return archive


@pytest.fixture(scope="session")
def tiny_run(tiny_archive, tmp_path_factory) -> Path:
    return build_run(tmp_path_factory.mktemp("liverun"), tiny_archive)


@pytest.fixture(scope="session")
def exported(tiny_run) -> Path:
    from live.export import export_run

    export_run(tiny_run, ("saved_model", "litert", "onnx"), progress=False)
    return tiny_run / "export"


def raw_window(length: int, seed: int = 0) -> np.ndarray:
    """A raw DCM-like window (archive units): small positive current with noise."""
    rng = np.random.default_rng(seed)
    return (0.001 + 0.0002 * rng.standard_normal(length)).astype(np.float32)
