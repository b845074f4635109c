"""training/fit.py helpers that need no training (the fit itself is guarded by the train-flow
tests and used by the benchmarks)."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pytest

from training.fit import TrainingPart, class_sample_weight, fit_and_threshold


def test_class_sample_weight_maps_each_row_to_its_class_weight():
    weights = class_sample_weight(np.array([0, 1, 1, 0], np.int8), {0: 0.5, 1: 4.0})
    assert weights.dtype == np.float32 and weights.tolist() == [0.5, 4.0, 4.0, 0.5]
    assert class_sample_weight(np.array([0, 1]), None) is None


def test_fit_needs_a_validation_part_before_building_anything(tmp_path):
    with pytest.raises(ValueError, match="'val' part"):
        fit_and_threshold(SimpleNamespace(), None, train=TrainingPart(None, np.arange(2)),
                          samples=None, score_parts={"test": np.arange(2)},
                          trace_scaler=None, settings_scaler=None, work_dir=tmp_path,
                          logger=logging.getLogger("test"))


def test_the_fit_off_tensorflow_trains_and_scores_from_numpy_arrays(tmp_path, monkeypatch):
    """The branch the GPU check machines take (JAX or PyTorch, no TensorFlow): NumPy arrays
    to `model.fit` and `model.predict`, here taken under TensorFlow by reporting another
    backend name, end to end through the benchmarks' `fit_neural`."""
    import keras

    import training.fit as fit_module
    from benchmarks import detection_models
    from data_preparation.pipeline import prepare_samples
    from enterprise_tools.simulator import SimulatorParams, simulate_archive

    archive = tmp_path / "archive"
    simulate_archive(archive, SimulatorParams.tiny(seed=3, hours=0.6))
    config = detection_models.bench_config(archive, tmp_path / "work",
                                    [*detection_models.model_overrides("sns_reference_cnn_lstm", 1),
                                     "model.conv_filters=[4, 4, 4]", "model.lstm_units=4",
                                     "model.settings_units=[4]", "model.head_units=[4]"])
    samples = prepare_samples(config, progress=False)
    order = np.argsort(samples.timestamp_ns, kind="stable")
    n = len(order)
    parts = {"train": order[: n * 6 // 10], "val": order[n * 6 // 10: n * 8 // 10],
             "test": order[n * 8 // 10:]}
    calls = []
    real = fit_module._fit_arrays
    monkeypatch.setattr(fit_module, "_fit_arrays",
                        lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs))
    monkeypatch.setattr(fit_module, "_make_ds", None)  # the tf.data path must not be used
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    fitted = detection_models.fit_neural(samples, parts, config, tmp_path / "run")
    assert calls == [1]
    assert fitted["epochs_trained"] == 1
    for part in ("val", "test"):
        scores = fitted["scores"][part]
        assert scores.shape == (len(parts[part]),) and np.isfinite(scores).all()
        assert ((scores >= 0) & (scores <= 1)).all()
