"""Tests for `model.encoding`: the reference model cut into encoder and head gives the whole
model's score, for a trained-like model (moving statistics away from their start), also after a
save and a safe-mode load; models that cannot be cut are refused by returning None."""

import keras
import numpy as np
import pytest

from model import InputSpec, build_model
from model.encoding import split_encode_once
from tests.model.helpers import model_config, random_batch

L, K, S = 200, 3, 3
SPEC = InputSpec(trace_length=L, n_channels=1, n_settings=S, n_references=K)


def _with_moved_statistics(model):
    """Batch-norm moving statistics away from 0/1, as after training, so that a pulse encoded
    alone and inside the K + 1 batch only agree if inference really uses them."""
    rng = np.random.default_rng(5)
    for weight in model.weights:
        if "moving_mean" in weight.path:
            weight.assign(rng.normal(size=weight.shape).astype("float32"))
        elif "moving_variance" in weight.path:
            weight.assign(rng.uniform(0.5, 2.0, size=weight.shape).astype("float32"))
    return model


def _score_by_halves(split, x):
    pulse = split.encoder.predict(x["trace"], verbose=0)
    refs = np.stack([split.encoder.predict(x["reference"][:, k], verbose=0) for k in range(K)],
                    axis=1)
    return split.head.predict([pulse, refs, *(x[n] for n in split.other_inputs)], verbose=0)


@pytest.mark.parametrize("use_settings", [True, False])
def test_encoder_then_head_equals_the_whole_model(use_settings, tmp_path):
    keras.utils.set_random_seed(3)
    model = _with_moved_statistics(build_model(
        model_config(name="sns_reference_cnn_lstm", use_settings=use_settings), SPEC))
    split = split_encode_once(model)
    assert split is not None
    assert split.other_inputs == (("settings",) if use_settings else ())
    assert split.feature_shape == tuple(split.encoder.output.shape[1:])
    x, _ = random_batch(model, 5, seed=4)
    whole = model.predict(x, verbose=0)
    np.testing.assert_allclose(_score_by_halves(split, x), whole, atol=1e-5)
    # the loaded model (the one export and live scoring hold) cuts the same way
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(_score_by_halves(split_encode_once(loaded), x), whole, atol=1e-5)


@pytest.mark.parametrize("name", ["sns_cnn_lstm", "sns_conditional_siamese"])
def test_models_without_an_unconditioned_siamese_encoder_are_not_cut(name):
    spec = SPEC if name != "sns_cnn_lstm" else InputSpec(L, 1, S)
    assert split_encode_once(build_model(model_config(name=name), spec)) is None
