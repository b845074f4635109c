"""Tests for the registered architectures: inputs, output, one training step, safe save/load."""

import keras
import numpy as np
import pytest

from model import InputSpec, architectures, build_model, compile_model, list_models
from parser.configs import HISTORY_MODELS
from tests.model.helpers import DEFAULT_MODEL, model_config, random_batch, train_config

SPEC = InputSpec(trace_length=256, n_channels=1, n_settings=3, n_references=2, n_history=2)
TRACE_ONLY = {"sns_cnn_lstm_trace_only"}
WITH_HISTORY = set(HISTORY_MODELS)  # the parser's list of the models that read a history
WITH_REFERENCES = {"sns_reference_cnn_lstm", "sns_conditional_siamese", *WITH_HISTORY}
# The SNS architectures (trace + settings in, one "score" out). The zoo's models for the other
# jobs (model/zoo.py) take other inputs and need n_classes; tests/model/test_zoo.py covers them.
SNS_MODELS = [name for name in list_models() if hasattr(architectures, name)]


@pytest.fixture(scope="module", params=SNS_MODELS)
def trained(request):
    """Each registered model, built tiny, compiled with focal loss, fitted one epoch of 8."""
    keras.utils.set_random_seed(0)
    config = model_config(name=request.param, loss="focal", per_trace=True)
    model = compile_model(build_model(config, SPEC), config, train_config())
    x, y = random_batch(model, 8)
    history = model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    return request.param, model, history, x


def test_model_has_named_inputs_and_one_float32_score(trained):
    name, model, _, _ = trained
    expected = {"trace"} if name in TRACE_ONLY else {"trace", "settings"}
    if name in WITH_REFERENCES:
        expected.add("reference")
    if name in WITH_HISTORY:
        expected |= {"history", "history_count"}
    assert set(model.input) == expected
    assert tuple(model.input["trace"].shape) == (None, 256, 1)
    if "settings" in expected:
        assert tuple(model.input["settings"].shape) == (None, 3)
    if "reference" in expected:
        assert tuple(model.input["reference"].shape) == (None, 2, 256, 1)
    assert tuple(model.output.shape) == (None, 1)
    assert model.output.dtype == "float32"
    assert model.layers[-1].name == "score"


def test_one_training_step_gives_finite_loss_and_probabilities(trained):
    _, model, history, x = trained
    assert np.isfinite(history.history["loss"]).all()
    scores = model.predict(x, verbose=0)
    assert scores.shape == (8, 1)
    assert np.all((scores >= 0) & (scores <= 1))


def test_saved_model_loads_in_safe_mode_without_custom_objects(trained, tmp_path):
    _, model, _, x = trained
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.loss.get_config() == model.loss.get_config()


def test_no_lambda_layers_in_any_model(trained):
    _, model, _, _ = trained
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in model._flatten_layers())


def test_minipulse_average_and_strided_convs_shorten_10000_samples_to_125_lstm_steps():
    sizes = {**DEFAULT_MODEL, "name": "sns_cnn_lstm"}  # the default sizes, the pulse-alone model
    model = build_model(model_config(**sizes), InputSpec(10000, 1, 22))
    assert tuple(model.get_layer("minipulse_average").output.shape) == (None, 1000, 1)
    assert tuple(model.get_layer("bilstm").input.shape) == (None, 125, 32)
    # BiLSTM attention summary (2 x 32) beside the mean and max of the 32 conv features
    assert tuple(model.get_layer("trace_summary").output.shape) == (None, 64 + 32 + 32)
    assert model.get_layer("conv2").filters == 32


def test_sizes_come_from_config():
    config = model_config(
        conv_filters=(3, 5, 6),
        conv_kernels=(3, 3, 3),
        conv_strides=(2, 2, 2),
        lstm_units=7,
        bidirectional=False,
        attention=False,
        settings_units=(9, 2),
        head_units=(11,),
        dropout=0.0,
    )
    model = build_model(config, SPEC)
    assert [model.get_layer(f"conv{i}").filters for i in range(3)] == [3, 5, 6]
    assert tuple(model.get_layer("lstm").output.shape) == (None, 7)
    assert model.get_layer("settings_dense1").units == 2
    assert model.get_layer("head_dense0").units == 11
    names = {layer.name for layer in model.layers}
    assert not names & {"attention_pool", "conv_dropout", "head_dropout0", "per_trace_norm"}


def test_prototype_keeps_its_fixed_sizes():
    model = build_model(model_config(name="sns_prototype"), InputSpec(10000, 1, 22))
    assert [model.get_layer(f"conv{i}").filters for i in range(2)] == [64, 128]
    assert tuple(model.get_layer("bilstm").input.shape) == (None, 2500, 128)


@pytest.mark.parametrize("name", ["sns_cnn_lstm", "sns_prototype"])
def test_settings_model_without_settings_points_to_trace_only_model(name):
    with pytest.raises(ValueError, match="n_settings is 0.*sns_cnn_lstm_trace_only"):
        build_model(model_config(name=name), InputSpec(256, 1, 0))


def test_cnn_lstm_uses_settings_only_when_there_are_some():
    config = model_config(name="cnn_lstm")
    assert set(build_model(config, InputSpec(64, 3, 0)).input) == {"trace"}
    multichannel = build_model(config, InputSpec(64, 3, 2))
    assert set(multichannel.input) == {"trace", "settings"}
    assert tuple(multichannel.input["trace"].shape) == (None, 64, 3)


def test_mismatched_conv_lists_raise_naming_the_keys():
    with pytest.raises(ValueError, match="conv_filters.*conv_strides"):
        build_model(model_config(conv_strides=(4,)), SPEC)


def test_score_stays_float32_under_mixed_precision():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = build_model(model_config(per_trace=True), SPEC)
    finally:
        keras.config.set_dtype_policy(previous)
    assert model.get_layer("conv0").compute_dtype == "float16"
    assert model.get_layer("per_trace_norm").compute_dtype == "float32"
    assert model.output.dtype == "float32"


@pytest.mark.parametrize(
    "name, loss", [("sns_cnn_lstm", "bce"), ("sns_conditional_siamese", "contrastive")]
)
def test_builds_compiles_and_trains_inside_a_distribution_strategy(name, loss):
    if keras.backend.backend() != "tensorflow":  # the GPU check machines run JAX or PyTorch
        pytest.skip(f"tf.distribute needs the TensorFlow backend, not {keras.backend.backend()}")
    import tensorflow as tf

    strategy = tf.distribute.MirroredStrategy(devices=["/cpu:0"])
    config = model_config(name=name, loss=loss)
    with strategy.scope():
        model = compile_model(build_model(config, SPEC), config, train_config())
    x, y = random_batch(model, 8, seed=1)
    history = model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_default_config_from_parser_builds_the_default_model():
    configs = pytest.importorskip("parser.configs")
    config = configs.load_config(None)
    model = compile_model(
        build_model(config.model, InputSpec(10000, 1, len(config.beam_settings.features),
                                            config.reference.count)),
        config.model,
        config.train,
    )
    assert model.name == config.model.name == "sns_reference_cnn_lstm"
    # pulse, reference median and their difference: 3 x 32 conv features over 125 steps
    assert tuple(model.get_layer("bilstm").input.shape) == (None, 125, 96)
    assert tuple(model.input["settings"].shape) == (None, 22)
    assert tuple(model.input["reference"].shape) == (None, 3, 10000, 1)
