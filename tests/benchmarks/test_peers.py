"""Peers fit and score on tiny arrays; reference peers need references; the leaky recipe leaks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from benchmarks import leaky, peers


@dataclasses.dataclass
class _Samples:
    """The SampleSet fields the peers read (traces, settings, label, optional references)."""

    traces: np.ndarray
    settings: np.ndarray
    label: np.ndarray
    references: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.label.size)


def _tiny(n: int = 60, length: int = 80, with_references: bool = True, seed: int = 0):
    """Errant pulses carry a late step over a noisy baseline; references are clean normals."""
    rng = np.random.default_rng(seed)
    label = (np.arange(n) % 4 == 0).astype(np.int8)
    base = np.sin(np.linspace(0, 6, length))[None, :] * rng.uniform(0.5, 2.0, (n, 1))
    traces = base + rng.normal(0, 0.1, (n, length))
    traces[label == 1, length // 2:] += 1.0
    refs = None
    if with_references:
        refs = base[:, None, :] + rng.normal(0, 0.1, (n, 3, length))
    settings = rng.normal(size=(n, 2))
    parts = {"train": np.arange(0, 36), "val": np.arange(36, 48), "test": np.arange(48, n)}
    samples = _Samples(traces[..., None].astype(np.float32), settings.astype(np.float32), label,
                       None if refs is None else refs.astype(np.float32))
    return samples, parts


def test_average_pool_means_whole_windows_and_drops_the_tail():
    x = np.arange(12, dtype=np.float32).reshape(1, 12)
    assert peers.average_pool(x[:, :11], 5).tolist() == [[2.0, 7.0]]
    with pytest.raises(ValueError, match="shorter than one pooling window"):
        peers.average_pool(x[:, :3], 5)


def test_difference_is_the_pulse_minus_the_median_reference():
    samples, _ = _tiny(n=8)
    data = peers.PeerData(samples, pool=4)
    expected = samples.traces[..., 0] - np.median(samples.references, axis=1)
    assert np.allclose(data.difference(), expected)
    assert data.averaged("difference").shape == (8, 1, 20)


@pytest.mark.parametrize("name", ["logistic_reference", "logistic_regression",
                                  "hist_gradient_boosting", "isolation_forest"])
def test_feature_peers_score_val_and_test_rows(name):
    samples, parts = _tiny()
    out = peers.fit_score(name, peers.PeerData(samples, pool=4), parts, seed=0)
    assert out["scores"]["val"].shape == (12,) and out["scores"]["test"].shape == (12,)
    assert np.all(np.isfinite(out["scores"]["test"]))
    if name.startswith("logistic"):  # the step is obvious: a linear peer must rank it first
        y = samples.label[parts["test"]]
        assert out["scores"]["test"][y == 1].min() > out["scores"]["test"][y == 0].max()


def test_minirocket_peers_fit_on_training_rows_and_rank_the_step():
    pytest.importorskip("aeon")
    samples, parts = _tiny()
    data = peers.PeerData(samples, pool=2)
    for name in ("minirocket", "minirocket_reference"):
        out = peers.fit_score(name, data, parts, seed=0, n_kernels=84)
        y = samples.label[parts["test"]]
        s = out["scores"]["test"]
        assert s.shape == (12,) and s[y == 1].mean() > s[y == 0].mean(), name
    a = peers.fit_score("minirocket", data, parts, seed=3, n_kernels=84)["scores"]["test"]
    b = peers.fit_score("minirocket", data, parts, seed=3, n_kernels=84)["scores"]["test"]
    assert np.array_equal(a, b)  # fixed random_state: reproducible


def test_reference_peers_are_unavailable_without_references():
    samples, _ = _tiny(with_references=False)
    data = peers.PeerData(samples, pool=4)
    assert "no reference pulses" in peers.unavailable("logistic_reference", data)
    assert peers.unavailable("logistic_regression", data) is None
    with pytest.raises(ValueError, match="unknown peer"):
        peers.unavailable("nope", data)


def test_the_leaky_recipe_scores_pure_noise_far_above_chance_and_the_honest_one_does_not():
    rng = np.random.default_rng(0)
    n, d = 600, 40
    x = rng.normal(size=(n, d))
    y = (rng.random(n) < 0.12).astype(np.int64)  # labels independent of x: nothing to learn
    blocks = np.array_split(np.arange(n), 5)
    folds = [{"train": np.concatenate(blocks[:k - 1]), "val": blocks[k - 1], "test": blocks[k]}
             for k in (2, 3, 4)]
    out = leaky.compare(x, y, folds, smote_ratio=0.6, seed=0)
    r = out["recipes"]
    assert r["leaky"]["roc_auc"] > 0.62                  # chance is 0.5
    assert abs(r["honest"]["roc_auc"] - 0.5) < 0.1
    assert abs(r["random_split"]["roc_auc"] - 0.5) < 0.1
    assert r["leaky"]["prevalence"] > 0.3 > r["honest"]["prevalence"]  # resampled test mix
    assert out["overstatement_pr_auc"] > 0.2
    assert "overstates PR AUC by" in "\n".join(leaky.render(out))
