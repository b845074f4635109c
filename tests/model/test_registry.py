"""Tests for model.registry: lookup by name, errors that list the names, InputSpec checks."""

import keras
import pytest

from model import InputSpec, build_model, list_models, register_model
from model.registry import _MODELS
from tests.model.helpers import model_config


def test_all_architectures_are_registered_on_import():
    assert list_models() == [
        "cnn_lstm",
        "conv_gap",
        "conv_lstm_features",
        "dense_features",
        "masked_lstm",
        "parallel_cnn_bilstm",
        "sns_cnn_lstm",
        "sns_cnn_lstm_trace_only",
        "sns_conditional_siamese",
        "sns_history_siamese",
        "sns_prototype",
        "sns_reference_cnn_lstm",
        "stacked_conv_lstm",
    ]


def test_list_models_filters_with_fnmatch_pattern():
    assert list_models("sns_*") == [
        "sns_cnn_lstm",
        "sns_cnn_lstm_trace_only",
        "sns_conditional_siamese",
        "sns_history_siamese",
        "sns_prototype",
        "sns_reference_cnn_lstm",
    ]
    assert list_models("*reference*") == ["sns_reference_cnn_lstm"]
    assert list_models("*trace_only") == ["sns_cnn_lstm_trace_only"]
    assert list_models("nothing*") == []


def test_unknown_name_error_lists_registered_names_and_closest():
    with pytest.raises(ValueError) as info:
        build_model(model_config(name="sns_cnn_lstn"), InputSpec(64, 1, 3))
    message = str(info.value)
    assert "'sns_cnn_lstn'" in message
    for name in list_models():
        assert name in message
    assert "Did you mean 'sns_cnn_lstm'?" in message


def test_register_model_adds_builder_under_function_name():
    def tiny_dense_for_test(model_config, input_spec):
        trace = keras.Input((input_spec.trace_length, input_spec.n_channels), name="trace")
        score = keras.layers.Dense(1, activation="sigmoid")(keras.layers.Flatten()(trace))
        return keras.Model({"trace": trace}, score)

    try:
        assert register_model(tiny_dense_for_test) is tiny_dense_for_test
        assert "tiny_dense_for_test" in list_models()
        model = build_model(model_config(name="tiny_dense_for_test"), InputSpec(8))
        assert model.output.shape == (None, 1)
    finally:
        _MODELS.pop("tiny_dense_for_test", None)


def test_register_model_refuses_a_different_builder_with_a_taken_name():
    def sns_cnn_lstm(model_config, input_spec):  # same name as the registered default
        raise AssertionError("never built")

    with pytest.raises(ValueError, match="already taken"):
        register_model(sns_cnn_lstm)
    assert _MODELS["sns_cnn_lstm"].__module__ == "model.architectures"


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"trace_length": 0}, "trace_length"),
        ({"trace_length": 10, "n_channels": 0}, "n_channels"),
        ({"trace_length": 10, "n_settings": -1}, "n_settings"),
        ({"trace_length": 10.5}, "trace_length"),
        ({"trace_length": 10, "n_references": -1}, "n_references"),
        ({"trace_length": 10, "n_references": True}, "n_references"),
    ],
)
def test_input_spec_rejects_bad_sizes_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        InputSpec(**kwargs)


def test_input_spec_is_frozen():
    spec = InputSpec(100, n_settings=3)
    with pytest.raises(AttributeError):
        spec.trace_length = 5
