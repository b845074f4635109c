"""training.peers: each job's simple peer fits on tiny data and scores the other parts."""

from __future__ import annotations

import numpy as np
import pytest

from training.peers import fit_peer, peer_name

PARTS = {"train": np.arange(0, 24, 2), "val": np.arange(1, 24, 4), "test": np.arange(3, 24, 4)}


def _labels() -> np.ndarray:
    return np.tile([0, 1, 2], 8)


def test_peer_is_chosen_by_the_inputs():
    assert peer_name({"trace": 0, "settings": 0}) == "minirocket_ridge"
    assert peer_name({"features": 0}) == "logistic_regression"
    assert peer_name({"text": 0}) == "tfidf_logistic_regression"
    with pytest.raises(ValueError, match="no peer for inputs"):
        peer_name({"tokens": 0})


def test_minirocket_peer_on_tiny_unequal_sequences():
    pytest.importorskip("aeon")
    y = _labels()
    steps = np.arange(30)
    trace = np.zeros((24, 30, 2), np.float32)
    for i, c in enumerate(y):  # class = frequency; every other sample is shorter (padded)
        length = 30 if i % 2 else 20
        trace[i, :length, 0] = np.sin(steps[:length] * (0.3 + 0.6 * c))
        trace[i, :length, 1] = np.cos(steps[:length] * 0.2)
    result = fit_peer({"trace": trace}, y, PARTS, 3, seed=0)
    assert result.name == "minirocket_ridge" and set(result.probabilities) == {"val", "test"}
    for part, probs in result.probabilities.items():
        assert probs.shape == (PARTS[part].size, 3)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0)
        assert (probs.argmax(axis=1) == y[PARTS[part]]).mean() >= 0.8


def test_minirocket_peer_pads_series_shorter_than_its_kernels():
    pytest.importorskip("aeon")
    y = (np.arange(24) // 2) % 2  # both classes in every part
    trace = (y[:, None, None] * 2.0 + np.linspace(0, 1, 5)[None, :, None]).astype(np.float32)
    result = fit_peer({"trace": trace}, y, PARTS, 2, seed=0)
    assert result.probabilities["test"].shape == (PARTS["test"].size, 2)


def test_logistic_peer_on_a_tiny_table_fills_classes_absent_from_training():
    y = _labels()
    features = np.eye(3)[y] * 3 + np.random.default_rng(0).normal(0, 0.1, (24, 3))
    y = y.copy()
    y[PARTS["test"][:1]] = 3  # a fourth class only in the test part
    result = fit_peer({"features": features}, y, PARTS, 4, seed=0)
    probs = result.probabilities["test"]
    assert probs.shape == (PARTS["test"].size, 4) and np.all(probs[:, 3] == 0)
    assert (probs.argmax(axis=1)[1:] == y[PARTS["test"]][1:]).all()


def test_tfidf_peer_on_tiny_texts():
    y = _labels()
    words = ["proton beam current", "vacuum pump pressure", "magnet coil field"]
    text = np.asarray([f"{words[c]} reading {i}" for i, c in enumerate(y)], dtype=object)
    result = fit_peer({"text": text}, y, PARTS, 3, seed=0)
    assert result.name == "tfidf_logistic_regression"
    assert (result.probabilities["test"].argmax(axis=1) == y[PARTS["test"]]).all()
