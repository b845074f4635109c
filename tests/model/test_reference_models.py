"""Tests for the reference models: a pulse compared with its K reference pulses.

Both models run one shared encoder over the pulse and its references; these tests prove the
sharing by behaviour (identical references give no difference / no distance, the order of the
references does not matter), the inputs each variant has, the contrastive training of the
Siamese model, and the float32 score under mixed precision.
"""

import keras
import numpy as np
import pytest

from model import InputSpec, build_model, compile_model
from model.layers import SiameseEncoder
from tests.model.helpers import model_config, random_batch, train_config

L, K, S = 200, 2, 3
SPEC = InputSpec(trace_length=L, n_channels=1, n_settings=S, n_references=K)
REFERENCE_MODELS = ("sns_reference_cnn_lstm", "sns_conditional_siamese")


def _identical_references(x: dict) -> dict:
    """The batch with every reference slot a copy of the sample's own pulse."""
    return {**x, "reference": np.repeat(x["trace"][:, None], K, axis=1)}


@pytest.mark.parametrize("name", REFERENCE_MODELS)
@pytest.mark.parametrize("use_settings", [True, False])
def test_settings_input_only_when_use_settings(name, use_settings):
    model = build_model(model_config(name=name, use_settings=use_settings), SPEC)
    expected = {"trace", "reference"} | ({"settings"} if use_settings else set())
    assert set(model.input) == expected
    assert tuple(model.input["reference"].shape) == (None, K, L, 1)


@pytest.mark.parametrize("name", REFERENCE_MODELS)
def test_reference_models_need_references_and_say_so(name):
    with pytest.raises(ValueError, match="n_references is 0.*reference.count"):
        build_model(model_config(name=name), InputSpec(L, 1, S))


@pytest.mark.parametrize("name", REFERENCE_MODELS)
def test_use_settings_without_settings_points_to_the_switch(name):
    with pytest.raises(ValueError, match="n_settings is 0.*model.use_settings=false"):
        build_model(model_config(name=name), InputSpec(L, 1, 0, n_references=K))


def test_siamese_scores_zero_when_references_equal_the_pulse():
    keras.utils.set_random_seed(1)
    model = build_model(model_config(name="sns_conditional_siamese"), SPEC)
    x, _ = random_batch(model, 4, seed=2)
    same = model.predict(_identical_references(x), verbose=0)
    other = model.predict(x, verbose=0)
    assert np.all(same < 1e-5)  # the floor under the distance is 1e-6, i.e. a score of 5e-7
    assert np.all(other > 1e-3)


def test_reference_model_difference_channel_is_zero_for_identical_references():
    keras.utils.set_random_seed(1)
    model = build_model(model_config(name="sns_reference_cnn_lstm"), SPEC)
    probe = keras.Model(model.input, {
        name: model.get_layer(name).output for name in ("reference_difference", "reference_reduce")
    })
    x, _ = random_batch(model, 3, seed=3)
    same = probe.predict(_identical_references(x), verbose=0)
    other = probe.predict(x, verbose=0)
    np.testing.assert_allclose(same["reference_difference"], 0.0, atol=1e-6)
    assert np.abs(other["reference_difference"]).max() > 1e-3
    assert same["reference_reduce"].shape == (3, 13, 4)  # 200 / 4 / 4 steps, 4 filters


@pytest.mark.parametrize("name", REFERENCE_MODELS)
def test_one_encoder_serves_pulse_and_every_reference(name):
    keras.utils.set_random_seed(1)
    model = build_model(model_config(name=name), SPEC)
    encoder = model.get_layer("siamese_encoder")
    assert isinstance(encoder, SiameseEncoder)
    convs = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.Conv1D)]
    assert convs and all(any(layer is inner for inner in encoder.layer.layers) for layer in convs)
    # The references are interchangeable: swapping the two slots changes no score.
    x, _ = random_batch(model, 4, seed=4)
    swapped = {**x, "reference": x["reference"][:, ::-1]}
    np.testing.assert_allclose(
        model.predict(swapped, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6
    )


def test_siamese_trains_with_contrastive_loss_and_reports_the_usual_metrics(tmp_path):
    keras.utils.set_random_seed(0)
    config = model_config(name="sns_conditional_siamese", loss="contrastive")
    model = compile_model(build_model(config, SPEC), config, train_config())
    x, y = random_batch(model, 8, seed=5)
    history = model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert {"auc_pr", "auc_roc", "precision", "recall"} <= set(history.history)
    precision = next(m for m in model.metrics[1].metrics if m.name == "precision")
    assert precision.thresholds == pytest.approx([0.25])  # half the margin of 1, over distance 2
    scores = model.predict(x, verbose=0)
    assert np.all((scores >= 0) & (scores <= 1))
    model.save(tmp_path / "siamese.keras")
    loaded = keras.saving.load_model(tmp_path / "siamese.keras", safe_mode=True)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), scores)
    assert loaded.loss.get_config() == model.loss.get_config()


def test_contrastive_loss_is_refused_for_a_probability_model():
    config = model_config(name="sns_cnn_lstm", loss="contrastive")
    with pytest.raises(ValueError, match="contrastive.*sns_cnn_lstm.*bce"):
        compile_model(build_model(config, SPEC), config, train_config())


@pytest.mark.parametrize("name", REFERENCE_MODELS)
def test_reference_score_stays_float32_under_mixed_precision(name):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = build_model(model_config(name=name, per_trace=True), SPEC)
    finally:
        keras.config.set_dtype_policy(previous)
    inner = model.get_layer("siamese_encoder").layer
    assert inner.get_layer("per_trace_norm").compute_dtype == "float32"
    assert any(layer.compute_dtype == "float16" for layer in inner.layers
               if isinstance(layer, keras.layers.Conv1D))
    assert model.output.dtype == "float32"


def test_siamese_sizes_come_from_config():
    config = model_config(
        name="sns_conditional_siamese", siamese_filters=(3, 5, 6), siamese_kernel=7,
        embedding_units=9, input_pool=2, reference_reduce="mean",
    )
    model = build_model(config, SPEC)
    encoder = model.get_layer("siamese_encoder").layer
    assert [encoder.get_layer(f"res{i}_conv_a").filters for i in range(3)] == [3, 5, 6]
    assert encoder.get_layer("res0_conv_b").kernel_size == (7,)
    assert encoder.get_layer("res0_film_scale").units == 3
    assert tuple(encoder.output.shape) == (None, 9)
    # 200 samples / 2 (input pool) -> 50 -> 25 -> 13 steps after three stride-2 blocks
    assert tuple(encoder.get_layer("res2_relu").output.shape) == (None, 13, 6)
    assert model.get_layer("score").method == "mean"


def test_default_sizes_give_the_documented_step_counts():
    from tests.model.helpers import DEFAULT_MODEL

    spec = InputSpec(10000, 1, 22, n_references=3)
    siamese = build_model(model_config(**{**DEFAULT_MODEL, "name": "sns_conditional_siamese"}),
                          spec)
    encoder = siamese.get_layer("siamese_encoder").layer
    assert tuple(encoder.get_layer("res3_relu").output.shape) == (None, 63, 128)
    reference = build_model(model_config(**{**DEFAULT_MODEL, "name": "sns_reference_cnn_lstm"}),
                            spec)
    # pulse, reference median and difference (3 x 32 channels) over 125 steps
    assert tuple(reference.get_layer("bilstm").input.shape) == (None, 125, 96)
