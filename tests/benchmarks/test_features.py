"""Tests of the hand-made trace features of the non-neural baselines."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.features import feature_names, trace_features


def test_features_have_one_row_per_trace_and_one_column_per_name():
    traces = np.random.default_rng(0).normal(size=(7, 300)).astype(np.float32)
    features = trace_features(traces, chunk_size=3)
    assert features.shape == (7, len(feature_names()))
    assert np.isfinite(features).all()


def test_features_accept_a_channel_axis_and_chunking_changes_nothing():
    traces = np.random.default_rng(1).normal(size=(5, 120))
    flat = trace_features(traces, chunk_size=2)
    assert np.allclose(trace_features(traces[:, :, None], chunk_size=5), flat)


def test_hand_checked_step_trace():
    # Thirds 0, 3, 6: mean 3, energies 0 / 9 / 36, flat last third (slope 0).
    trace = np.repeat([0.0, 3.0, 6.0], 100)[None, :]
    values = dict(zip(feature_names(), trace_features(trace)[0], strict=True))
    assert values["mean"] == pytest.approx(3.0)
    assert values["max"] == 6.0 and values["min"] == 0.0
    assert [values[f"energy_{s}"] for s in ("early", "middle", "late")] == pytest.approx([0, 9, 36])
    assert values["mean_late"] == pytest.approx(6.0)
    assert values["slope_late"] == pytest.approx(0.0, abs=1e-12)
    assert values["smoothed_max"] == pytest.approx(6.0)


def test_slope_of_a_ramp_and_outliers_far_outside_the_noise():
    ramp = np.arange(300, dtype=float)[None, :] * 0.5
    assert trace_features(ramp)[0][feature_names().index("slope_late")] == pytest.approx(0.5)
    noisy = np.random.default_rng(2).normal(0, 1, (1, 3000))
    noisy[0, [10, 2000]] = 50.0
    count = trace_features(noisy)[0][feature_names().index("outlier_count")]
    assert count == 2


def test_band_energy_follows_the_frequency_of_a_sine():
    t = np.arange(4096)
    slow = np.sin(2 * np.pi * 4 * t / 4096)[None, :]   # near DC: band 0
    fast = np.sin(2 * np.pi * 1500 * t / 4096)[None, :]  # above a quarter of Nyquist: last band
    names = feature_names()
    bands = [names.index(f"band{i}_energy") for i in range(5)]
    assert np.argmax(trace_features(slow)[0][bands]) == 0
    assert np.argmax(trace_features(fast)[0][bands]) == 4


def test_too_short_or_multichannel_traces_are_rejected_with_the_shape():
    with pytest.raises(ValueError, match="shape"):
        trace_features(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="one channel"):
        trace_features(np.zeros((2, 50, 2)))
