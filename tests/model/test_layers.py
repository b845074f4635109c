"""Tests for model.layers: attention pooling and per-trace normalisation."""

import keras
import numpy as np
import pytest

from model.layers import AttentionPooling, PerTraceNormalization


def _sequences(seed=0, shape=(3, 7, 5)):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def test_attention_weights_sum_to_one_over_steps():
    x = _sequences()
    layer = AttentionPooling(units=4)
    out = layer(x)
    weights = keras.ops.convert_to_numpy(layer.attention_weights(x))
    assert out.shape == (3, 5)
    assert weights.shape == (3, 7)
    assert np.all(weights > 0)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-6)


def test_attention_output_is_weighted_sum_of_steps():
    x = _sequences(seed=1)
    layer = AttentionPooling(units=3)
    out = keras.ops.convert_to_numpy(layer(x))
    weights = keras.ops.convert_to_numpy(layer.attention_weights(x))
    np.testing.assert_allclose(out, np.einsum("bt,btf->bf", weights, x), rtol=1e-5, atol=1e-6)


def test_attention_pooling_config_round_trip():
    layer = AttentionPooling(units=6, name="pool")
    clone = AttentionPooling.from_config(layer.get_config())
    assert clone.units == 6 and clone.name == "pool"


def test_attention_pooling_rejects_non_sequence_input():
    with pytest.raises(ValueError, match="batch, steps, features"):
        AttentionPooling()(np.zeros((2, 3), "float32"))


def test_per_trace_normalization_centres_each_trace_on_its_median():
    rng = np.random.default_rng(2)
    # Traces with very different offsets and gains, two channels.
    x = (rng.normal(size=(4, 101, 2)) * [[[3.0, 0.1]]] + [[[50.0, -7.0]]]).astype("float32")
    y = keras.ops.convert_to_numpy(PerTraceNormalization()(x))
    np.testing.assert_allclose(np.median(y, axis=1), 0.0, atol=1e-5)
    q75, q25 = np.percentile(y, [75, 25], axis=1)
    np.testing.assert_allclose(q75 - q25, 1.0, rtol=1e-4)


def test_per_trace_normalization_mean_method_gives_zero_mean_unit_std():
    x = _sequences(seed=3, shape=(2, 50, 1)) * 4.0 + 10.0
    y = keras.ops.convert_to_numpy(PerTraceNormalization(method="mean")(x))
    np.testing.assert_allclose(y.mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=1), 1.0, rtol=1e-4)


def test_per_trace_normalization_keeps_flat_trace_finite():
    y = keras.ops.convert_to_numpy(PerTraceNormalization()(np.full((1, 20, 1), 5.0, "float32")))
    np.testing.assert_array_equal(y, 0.0)


def test_per_trace_normalization_is_deterministic_and_weightless():
    x = _sequences(seed=4, shape=(2, 64, 1))
    layer = PerTraceNormalization()
    first = keras.ops.convert_to_numpy(layer(x, training=True))
    second = keras.ops.convert_to_numpy(layer(x, training=False))
    np.testing.assert_array_equal(first, second)
    assert layer.weights == []


def test_per_trace_normalization_config_round_trip_and_bad_method():
    clone = PerTraceNormalization.from_config(PerTraceNormalization("mean", 1e-3).get_config())
    assert (clone.method, clone.epsilon) == ("mean", 1e-3)
    with pytest.raises(ValueError, match="median"):
        PerTraceNormalization(method="iqr")
