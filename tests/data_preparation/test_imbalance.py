"""data_preparation.imbalance: class weights, SMOTE and undersampling of the training part."""

import numpy as np
import pytest

from data_preparation.imbalance import class_weights, smote, undersample


def test_class_weights_are_balanced():
    weights = class_weights(np.array([0] * 8 + [1] * 2))
    assert weights == {0: 10 / 16, 1: 10 / 4}
    with pytest.raises(ValueError, match="both classes"):
        class_weights(np.zeros(4))


def test_smote_adds_minority_rows_between_training_rows_only():
    rng = np.random.default_rng(0)
    majority = rng.uniform(0, 1, size=(40, 3))
    minority = rng.uniform(2, 3, size=(6, 3))
    x = np.vstack([majority, minority])
    y = np.r_[np.zeros(40), np.ones(6)].astype(np.int8)
    x_res, y_res = smote(x, y, ratio=0.5, seed=0)
    assert int((y_res == 1).sum()) == 20 and int((y_res == 0).sum()) == 40
    np.testing.assert_array_equal(x_res[:46], x)
    synthetic = x_res[46:]
    assert np.all(synthetic >= minority.min(axis=0)) and np.all(synthetic <= minority.max(axis=0))
    x_again, _ = smote(x, y, ratio=0.5, seed=0)
    np.testing.assert_array_equal(x_res, x_again)


def test_smote_refuses_streamed_data_and_keeps_balanced_data():
    with pytest.raises(TypeError, match="in memory"):
        smote([[0.0]], [0], 0.5, 0)
    x, y = np.zeros((4, 2)), np.array([0, 0, 1, 1])
    x_res, y_res = smote(x, y, 0.5, 0)
    assert x_res is x and y_res is y


def test_undersample_keeps_every_minority_and_reaches_the_ratio():
    indices = np.arange(100, 200)
    labels = np.r_[np.zeros(90), np.ones(10)].astype(np.int8)
    kept = undersample(indices, labels, ratio=0.5, seed=0)
    assert kept.size == 30 and np.all(np.diff(kept) > 0)
    assert set(range(190, 200)) <= set(kept.tolist())
    np.testing.assert_array_equal(kept, undersample(indices, labels, 0.5, 0))
    with pytest.raises(ValueError, match="one to one"):
        undersample(indices, labels[:5], 0.5, 0)
