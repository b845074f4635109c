"""The non-SNS architectures: shapes, one training step, safe-mode round trip, focal loss."""

from __future__ import annotations

import dataclasses
import types

import keras
import numpy as np
import pytest

from model import InputSpec, build_model
from model.zoo import SparseCategoricalFocalLoss, compile_classifier

TINY = dict(conv_filters=(4, 4, 4), conv_kernels=(3, 3, 3), conv_strides=(1, 1, 1),
            pool_size=2, lstm_units=4, lstm_layers=2, head_units=(4,), dropout=0.1,
            embedding_dim=4, loss="bce", focal_alpha=0.25, focal_gamma=2.0)
TRAIN = types.SimpleNamespace(optimizer="adam", learning_rate=0.01, momentum=0.9)

# each architecture once, with a two-class (sigmoid) or a multiclass (softmax) head, so both
# heads are trained and round-tripped on every kind of input
CASES = [
    ("stacked_conv_lstm", InputSpec(trace_length=24, n_channels=3), "trace", 2),
    ("masked_lstm", InputSpec(trace_length=12, n_channels=2), "trace", 3),
    ("conv_lstm_features", InputSpec(trace_length=10), "features", 3),
    ("parallel_cnn_bilstm", InputSpec(trace_length=9, vocab_size=30), "tokens", 2),
]


def _data(kind, spec, n, rng):
    if kind == "trace":
        x = rng.normal(size=(n, spec.trace_length, spec.n_channels)).astype(np.float32)
        x[:, -3:] = 0.0  # padding
        return x
    if kind == "features":
        return rng.normal(size=(n, spec.trace_length)).astype(np.float32)
    return rng.integers(0, 30, (n, spec.trace_length)).astype(np.int32)


@pytest.mark.parametrize(("name", "spec", "kind", "n_classes"), CASES)
def test_model_trains_and_round_trips_in_safe_mode(tmp_path, name, spec, kind, n_classes):
    config = types.SimpleNamespace(name=name, **TINY)
    spec = dataclasses.replace(spec, n_classes=n_classes)
    model = build_model(config, spec)
    compile_classifier(model, config, TRAIN, n_classes)
    rng = np.random.default_rng(0)
    x = {kind: _data(kind, spec, 16, rng)}
    y = rng.integers(0, n_classes, 16)
    model.fit(x, y.astype(np.float32)[:, None] if n_classes == 2 else y, epochs=1, verbose=0)
    out = model.predict(x, verbose=0)
    assert out.shape == (16, 1 if n_classes == 2 else n_classes)
    if n_classes > 2:
        assert np.allclose(out.sum(axis=1), 1.0, atol=1e-5)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert np.allclose(loaded.predict(x, verbose=0), out, atol=1e-6)


def test_masked_lstm_ignores_padding_steps():
    config = types.SimpleNamespace(name="masked_lstm", **TINY)
    padded = build_model(config, InputSpec(trace_length=8, n_channels=2, n_classes=3))
    short = build_model(config, InputSpec(trace_length=5, n_channels=2, n_classes=3))
    short.set_weights(padded.get_weights())
    x = np.random.default_rng(1).normal(size=(1, 8, 2)).astype(np.float32)
    x[:, 5:] = 0.0  # 5 real steps, 3 of padding
    assert np.allclose(padded.predict({"trace": x}, verbose=0),
                       short.predict({"trace": x[:, :5]}, verbose=0), atol=1e-6)


def test_sizes_come_from_the_config():
    config = types.SimpleNamespace(name="parallel_cnn_bilstm",
                                   **{**TINY, "conv_kernels": (2, 5), "conv_filters": (3, 7),
                                      "conv_strides": (1, 1), "embedding_dim": 6})
    model = build_model(config, InputSpec(trace_length=9, n_classes=4, vocab_size=30))
    assert model.get_layer("embedding").output.shape[-1] == 6
    assert model.get_layer("conv1_k5").output.shape[-1] == 7


def test_focal_loss_by_hand_and_zero_gamma_is_cross_entropy():
    y = np.array([0, 2])
    p = np.array([[0.8, 0.1, 0.1], [0.2, 0.3, 0.5]], np.float32)
    by_hand = np.mean([-(0.2 ** 2) * np.log(0.8), -(0.5 ** 2) * np.log(0.5)])
    assert float(SparseCategoricalFocalLoss(gamma=2.0)(y, p)) == pytest.approx(by_hand, rel=1e-5)
    ce = keras.losses.SparseCategoricalCrossentropy()(y, p)
    assert float(SparseCategoricalFocalLoss(gamma=0.0)(y, p)) == pytest.approx(float(ce), rel=1e-5)
