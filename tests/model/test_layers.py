"""Tests for model.layers: attention pooling, per-trace normalisation and the reference layers."""

import keras
import numpy as np
import pytest

from model.layers import (
    AttentionPooling,
    FeatureWiseAffine,
    HistoryMask,
    PerTraceNormalization,
    PulseTrend,
    ReferenceDistanceScore,
    ReferenceReduction,
    SiameseEncoder,
    SplitSlots,
)


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


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_reference_median_matches_numpy_for_odd_and_even_k(k):
    x = _sequences(seed=5, shape=(3, k, 6, 2))
    out = keras.ops.convert_to_numpy(ReferenceReduction("median")(x))
    # numpy's median of an even count is the mean of the two middle values, as ours
    np.testing.assert_allclose(out, np.median(x, axis=1), rtol=1e-6, atol=1e-7)


def test_reference_median_ignores_one_outlying_reference_and_mean_does_not():
    x = np.array([[[1.0], [2.0], [100.0]]], "float32")  # batch 1, K=3, one feature
    assert keras.ops.convert_to_numpy(ReferenceReduction("median")(x)).tolist() == [[2.0]]
    assert keras.ops.convert_to_numpy(ReferenceReduction("mean")(x)).tolist() == [[pytest.approx(
        103.0 / 3)]]


def test_reference_reduction_config_round_trip_and_bad_method():
    clone = ReferenceReduction.from_config(ReferenceReduction("mean", axis=2).get_config())
    assert (clone.method, clone.axis) == ("mean", 2)
    with pytest.raises(ValueError, match="'mode'.*median"):
        ReferenceReduction("mode")


def test_distance_score_is_median_distance_over_two():
    pulse = np.array([[1.0, 0.0]], "float32")
    refs = np.array([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]], "float32")  # distances 0, 1.414, 2
    layer = ReferenceDistanceScore()
    distances = keras.ops.convert_to_numpy(layer.distances([pulse, refs]))
    np.testing.assert_allclose(distances, [[1e-6, np.sqrt(2.0), 2.0]], rtol=1e-6)
    score = keras.ops.convert_to_numpy(layer([pulse, refs]))
    assert score.shape == (1, 1)
    assert float(score[0, 0]) == pytest.approx(np.sqrt(2.0) / 2, rel=1e-6)
    mean = ReferenceDistanceScore("mean", max_distance=4.0)([pulse, refs])
    assert float(mean[0, 0]) == pytest.approx((np.sqrt(2.0) + 2.0) / 3 / 4, rel=1e-5)


def test_distance_score_clips_to_one_and_has_finite_gradient_at_zero_distance():
    if keras.backend.backend() != "tensorflow":  # the gradient is taken with tf.GradientTape
        pytest.skip(f"needs the TensorFlow backend, not {keras.backend.backend()}")
    import tensorflow as tf

    far = ReferenceDistanceScore(max_distance=1.0)(
        [np.zeros((1, 2), "float32"), np.full((1, 1, 2), 3.0, "float32")])
    assert float(far[0, 0]) == 1.0
    pulse = tf.Variable(np.ones((1, 3), "float32"))
    with tf.GradientTape() as tape:
        score = ReferenceDistanceScore()([pulse, tf.ones((1, 2, 3))])
    assert np.isfinite(tape.gradient(score, pulse).numpy()).all()


def test_feature_wise_affine_is_identity_at_zero_and_scales_per_channel():
    x = _sequences(seed=6, shape=(2, 4, 3))
    zeros = np.zeros((2, 3), "float32")
    layer = FeatureWiseAffine()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer([x, zeros, zeros])), x)
    scale = np.array([[1.0, 0.0, -1.0], [0.0, 0.0, 0.0]], "float32")
    shift = np.array([[0.0, 5.0, 0.0], [1.0, 1.0, 1.0]], "float32")
    out = keras.ops.convert_to_numpy(layer([x, scale, shift]))
    np.testing.assert_allclose(out, x * (1 + scale[:, None]) + shift[:, None], rtol=1e-6)


def test_siamese_encoder_encodes_each_pulse_with_its_own_conditioning():
    # Encoder f(x, c) = Dense(concat(x, c)): the fold must keep each sample's K + 1 pulses
    # together with that sample's conditioning row.
    x_in, c_in = keras.Input((3,)), keras.Input((2,))
    dense = keras.layers.Dense(4)
    encoder = keras.Model([x_in, c_in], dense(keras.layers.Concatenate()([x_in, c_in])))
    rng = np.random.default_rng(7)
    trace = rng.normal(size=(5, 3)).astype("float32")
    refs = rng.normal(size=(5, 2, 3)).astype("float32")
    cond = rng.normal(size=(5, 2)).astype("float32")
    pulse_out, refs_out = SiameseEncoder(encoder)([trace, refs, cond])
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in dense.weights)

    def expected(v, c):
        return np.concatenate([v, c], axis=-1) @ kernel + bias

    np.testing.assert_allclose(keras.ops.convert_to_numpy(pulse_out), expected(trace, cond),
                               rtol=1e-5, atol=1e-6)
    for k in range(2):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(refs_out)[:, k],
                                   expected(refs[:, k], cond), rtol=1e-5, atol=1e-6)


def test_siamese_encoder_rejects_references_of_another_shape():
    with pytest.raises(ValueError, match="K, \\*trace_shape"):
        SiameseEncoder(keras.layers.Dense(2))([np.ones((2, 3), "float32"),
                                               np.ones((2, 4, 5), "float32")])


def test_siamese_encoder_config_round_trip():
    layer = SiameseEncoder(keras.layers.Dense(3, name="inner"), name="pair")
    clone = SiameseEncoder.from_config(layer.get_config())
    assert clone.name == "pair" and clone.layer.units == 3 and clone.dtype_policy.name == "float32"


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 16, 17])
def test_reference_median_equals_numpy_median_with_ties(count):
    """The sorting network (K <= 16) and the sort (K > 16) give numpy's median, ties included
    (post-ReLU features hold many exact zeros)."""
    from model.layers import reduce_references

    rng = np.random.default_rng(count)
    x = rng.normal(size=(3, count, 6, 2)).astype("float32")
    x[x < 0] = 0.0  # ReLU-like ties
    got = keras.ops.convert_to_numpy(reduce_references(keras.ops.convert_to_tensor(x), "median", 1))
    np.testing.assert_allclose(got, np.median(x, axis=1), rtol=0, atol=1e-7)


def test_history_mask_zeroes_the_empty_leading_slots_and_keeps_the_sample_on():
    history = np.arange(1, 1 + 2 * 3 * 2, dtype="float32").reshape(2, 3, 2, 1)
    zeroed, mask = HistoryMask()([history, np.array([[0], [2]], dtype="int32")])
    zeroed, mask = keras.ops.convert_to_numpy(zeroed), keras.ops.convert_to_numpy(mask)
    assert mask.tolist() == [[False, False, False, True], [False, True, True, True]]
    assert not zeroed[0].any()
    assert not zeroed[1, 0].any() and np.array_equal(zeroed[1, 1:], history[1, 1:])
    with pytest.raises(ValueError, match="HistoryMask"):
        HistoryMask()([np.ones((1, 3)), np.ones((1, 1))])


def test_split_slots_and_pulse_trend_shapes_values_and_config():
    x = np.arange(2 * 5 * 3, dtype="float32").reshape(2, 5, 3)
    first, rest = (keras.ops.convert_to_numpy(t) for t in SplitSlots(2)(x))
    assert np.array_equal(first, x[:, :2]) and np.array_equal(rest, x[:, 2:])
    assert SplitSlots.from_config(SplitSlots(4).get_config()).first == 4
    with pytest.raises(ValueError, match="first"):
        SplitSlots(0)
    history = np.stack([np.full((4, 2), 1.0), np.full((4, 2), 3.0)])[None].astype("float32")
    pulse = np.array([[[5.0, 0.0], [9.0, 0.0], [5.0, 0.0], [5.0, 0.0]]], dtype="float32")
    trend = keras.ops.convert_to_numpy(PulseTrend()([history, pulse, np.ones((1, 4, 2), "float32")]))
    # per pulse (history oldest first, the sample last): mean then max of (pulse - typical)
    assert trend.tolist() == [[[0, 0, 0, 0], [2, 2, 2, 2], [5, -1, 8, -1]]]
