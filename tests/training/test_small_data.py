"""training.small_data and the samples flow's epoch choice: the rule, the folds, the tie-breaks,
and a cross-validated choice on tiny data that is the same for the same seed and is logged."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from parser.configs import load_config
from training.small_data import (
    choose_epochs,
    cv_choice,
    decide_method,
    fold_indices,
    small_validation,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_auto_uses_validation_only_when_every_class_has_enough_samples():
    assert decide_method("auto", [12, 10], [50, 40], 10, 3)[0] == "validation"
    method, reason = decide_method("auto", [12, 2], [50, 40], 10, 3)
    assert method == "cv"
    assert "2 in its smallest class" in reason and "min_val_per_class=10" in reason


def test_small_validation_names_its_smallest_class_and_ignores_classes_not_trained_on():
    assert small_validation([12, 10], [50, 40], 10) is None
    reason = small_validation([2, 7], [20, 21], 10)
    assert reason == ("the validation part holds 9 samples, 2 in its smallest class "
                      "(< train.min_val_per_class=10)")
    assert small_validation([0, 12], [0, 40], 10) is None  # class 0 is absent from training
    assert small_validation([9, 30], [40, 90], 10) is not None


def test_explicit_settings_and_too_few_training_samples_for_folds():
    assert decide_method("validation", [1, 1], [5, 5], 10, 3)[0] == "validation"
    assert decide_method("fixed", [20, 20], [50, 50], 10, 3)[0] == "fixed"
    method, reason = decide_method("cv", [1, 1], [5, 1], 10, 3)
    assert method == "fixed" and "smallest class has 1" in reason


def test_folds_are_stratified_seeded_and_shrink_to_the_smallest_class():
    labels = np.array([0] * 6 + [1] * 2)
    a, b = fold_indices(labels, 3, seed=7), fold_indices(labels, 3, seed=7)
    assert len(a) == 2  # the smallest class has 2 samples
    for (fit_a, held_a), (fit_b, held_b) in zip(a, b, strict=True):
        assert np.array_equal(fit_a, fit_b) and np.array_equal(held_a, held_b)
        assert set(labels[held_a]) == {0, 1}
    assert not all(np.array_equal(h, g) for (_, h), (_, g)
                   in zip(a, fold_indices(labels, 3, seed=8), strict=True))


def test_choose_epochs_best_mean_f1_then_lower_loss_then_earlier():
    f1 = np.array([[0.5, 0.9, 0.9, 0.7], [0.6, 0.8, 0.8, 0.9]])  # means .55 .85 .85 .80
    loss = np.array([[1.0, 0.6, 0.4, 0.3], [1.0, 0.6, 0.4, 0.3]])
    assert choose_epochs(f1, loss) == 3
    assert choose_epochs(f1, np.ones_like(loss)) == 2
    choice = cv_choice("why", f1, loss)
    assert choice.epochs == 3 and choice.folds == 2
    assert "3 epochs, chosen by 2-fold cross-validation" in choice.summary()


def _tiny_sessions_config(tmp_path, seed: int):
    return load_config(CONFIGS / "sessions.yaml", [
        f"run.seed={seed}", "run.deterministic=true", f"run.output_dir={tmp_path / 'runs'}",
        "model.conv_filters=[4]", "model.conv_kernels=[3]", "model.conv_strides=[1]",
        "model.lstm_units=4", "model.lstm_layers=1", "model.head_units=[4]",
        "train.epochs=3", "train.batch_size=8", "train.cv_folds=2", "augment.enabled=false"])


def test_cv_choice_on_tiny_data_is_deterministic_and_logged(tmp_path, caplog):
    pytest.importorskip("tensorflow")
    from model import InputSpec
    from training.samples_flow import _choose_epochs

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 8)
    trace = rng.normal(size=(16, 20, 2)).astype(np.float32)
    trace[y == 1, :, 0] += 1.5
    sizes = {"train": {"per_class": {"a": 8, "b": 8}}, "val": {"per_class": {"a": 1, "b": 1}}}
    spec = InputSpec(trace_length=20, n_channels=2, n_settings=0, n_classes=2)
    choices = []
    with caplog.at_level(logging.INFO, logger="beamwatch.train"):
        for _ in range(2):
            config = _tiny_sessions_config(tmp_path, seed=3)
            choices.append(_choose_epochs(config, spec, 2, {"trace": trace}, y, sizes))
    first, second = choices
    assert first.method == "cv" and first.folds == 2 and 1 <= first.epochs <= 3
    assert first == second  # same folds, same fold models, same curves, same choice
    assert "1 in its smallest class" in first.reason
    assert sum("epoch choice: fold" in r.getMessage() for r in caplog.records) == 4
