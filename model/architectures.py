"""The registered beamwatch architectures and the branches they share.

Every builder takes `(model_config, input_spec)` and returns an uncompiled functional
`keras.Model` whose inputs are a dict: `"trace"` (`[trace_length, n_channels]`) and, for models
that use them, `"settings"` (`[n_settings]`). Feed data as a dict with exactly the keys of
`model.input`. The output is one float32 sigmoid unit named `"score"`, shape `[batch, 1]`, also
under mixed precision. Builders only create layers, so they can run inside any
`tf.distribute` strategy scope.

Config fields read (by attribute): conv_filters, conv_kernels, conv_strides, lstm_units,
bidirectional, attention, settings_units, head_units, dropout, and optionally `per_trace`
(`getattr(model_config, "per_trace", False)`: the `scaling.per_trace` switch; a builder
cannot take extra arguments through the registry, so the caller must put it on the config
object it passes).
"""

from __future__ import annotations

import keras
from keras import layers

from model.layers import AttentionPooling, PerTraceNormalization
from model.registry import InputSpec, register_model


def trace_branch(trace, model_config):
    """Conv1D blocks that shorten the trace, then an LSTM, then attention pooling (optional).

    Each block is Conv1D(filters, kernel, strides, padding="same") -> BatchNorm -> ReLU, so
    the sequence length is divided by each stride, rounded up (10000 samples averaged over
    `input_pool`=10 -> 1000 -> 500 -> 250 -> 125 for strides 2, 2, 2) and the LSTM runs over far
    fewer steps than the raw samples.
    """
    filters = tuple(model_config.conv_filters)
    kernels = tuple(model_config.conv_kernels)
    strides = tuple(model_config.conv_strides)
    if not len(filters) == len(kernels) == len(strides):
        raise ValueError(
            "model.conv_filters, model.conv_kernels and model.conv_strides must have the same "
            f"length (one entry per Conv1D block); received {len(filters)}, {len(kernels)} "
            f"and {len(strides)}."
        )
    x = trace
    if getattr(model_config, "per_trace", False):
        # float32 even under mixed precision: a quiet trace's spread underflows in float16.
        x = PerTraceNormalization(dtype="float32", name="per_trace_norm")(x)
    pool = getattr(model_config, "input_pool", 1)
    if pool > 1:
        # The chopper cuts the macropulse into ~1 us mini-pulses (10 samples at 10 MS/s) with a
        # random phase per pulse; averaging over one period removes that carrier and keeps the
        # loss envelope where the precursors live (ramps, bursts, sags, RF jitter at kHz).
        x = layers.AveragePooling1D(pool, padding="same", name="minipulse_average")(x)
    for i, (n_filters, kernel, stride) in enumerate(zip(filters, kernels, strides, strict=True)):
        x = layers.Conv1D(n_filters, kernel, strides=stride, padding="same", name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"conv{i}_bn")(x)
        x = layers.ReLU(name=f"conv{i}_relu")(x)
    if model_config.dropout > 0:
        x = layers.SpatialDropout1D(model_config.dropout, name="conv_dropout")(x)
    pooled = _recurrent_pooling(
        x, model_config.lstm_units, model_config.bidirectional, model_config.attention
    )
    if not getattr(model_config, "global_pooling", False):
        return pooled
    # Whole-pulse level and peak of each conv feature beside the LSTM summary: the loss level
    # relative to what the settings predict is much of the signal, and these carry it directly.
    return layers.Concatenate(name="trace_summary")([
        pooled,
        layers.GlobalAveragePooling1D(name="conv_mean")(x),
        layers.GlobalMaxPooling1D(name="conv_max")(x),
    ])


def settings_branch(settings, model_config):
    """Dense ReLU layers over the settings vector (one per entry of `settings_units`)."""
    x = settings
    for i, units in enumerate(model_config.settings_units):
        x = layers.Dense(units, activation="relu", name=f"settings_dense{i}")(x)
    return x


def classification_head(x, units, dropout: float):
    """Dense ReLU (+ Dropout) layers, then one float32 sigmoid unit named "score"."""
    for i, n_units in enumerate(units):
        x = layers.Dense(n_units, activation="relu", name=f"head_dense{i}")(x)
        if dropout > 0:
            x = layers.Dropout(dropout, name=f"head_dropout{i}")(x)
    x = layers.Dense(1, name="logit")(x)
    return layers.Activation("sigmoid", dtype="float32", name="score")(x)


def _recurrent_pooling(x, units: int, bidirectional: bool, attention: bool):
    """LSTM over the steps; attention pooling of all its outputs, or its last state."""
    lstm = layers.LSTM(units, return_sequences=attention, name="lstm")
    if bidirectional:
        lstm = layers.Bidirectional(lstm, name="bilstm")
    x = lstm(x)
    if attention:
        x = AttentionPooling(units=units, name="attention_pool")(x)
    return x


def _trace_input(spec: InputSpec):
    return keras.Input(shape=(spec.trace_length, spec.n_channels), name="trace")


def _settings_input(spec: InputSpec, model_name: str, trace_only: str):
    if spec.n_settings < 1:
        raise ValueError(
            f"Model {model_name!r} needs beam settings but input_spec.n_settings is 0. "
            f"Use model.name={trace_only!r} for trace-only data, or enable beam settings."
        )
    return keras.Input(shape=(spec.n_settings,), name="settings")


def _trace_and_settings_model(model_config, spec, name, settings):
    """Trace branch (+ settings branch when `settings` is an Input) -> head -> score."""
    trace = _trace_input(spec)
    features = trace_branch(trace, model_config)
    inputs = {"trace": trace}
    if settings is not None:
        inputs["settings"] = settings
        features = layers.Concatenate(name="join")(
            [features, settings_branch(settings, model_config)]
        )
    score = classification_head(features, model_config.head_units, model_config.dropout)
    return keras.Model(inputs=inputs, outputs=score, name=name)


@register_model
def sns_cnn_lstm(model_config, input_spec: InputSpec) -> keras.Model:
    """SNS default: strided Conv1D blocks + (Bi)LSTM + attention on the trace, dense settings
    branch, joined before a dense head. Every size comes from `model_config`."""
    settings = _settings_input(input_spec, "sns_cnn_lstm", "sns_cnn_lstm_trace_only")
    return _trace_and_settings_model(model_config, input_spec, "sns_cnn_lstm", settings)


@register_model
def sns_cnn_lstm_trace_only(model_config, input_spec: InputSpec) -> keras.Model:
    """The `sns_cnn_lstm` trace branch and head without settings (input "trace" only)."""
    return _trace_and_settings_model(model_config, input_spec, "sns_cnn_lstm_trace_only", None)


@register_model
def cnn_lstm(model_config, input_spec: InputSpec) -> keras.Model:
    """Generic multichannel CNN-LSTM (sensor sessions, windowed npz arrays): the SNS trace
    branch over `n_channels`, with a settings branch only when `n_settings > 0`."""
    settings = (
        keras.Input(shape=(input_spec.n_settings,), name="settings")
        if input_spec.n_settings > 0
        else None
    )
    return _trace_and_settings_model(model_config, input_spec, "cnn_lstm", settings)


@register_model
def sns_prototype(model_config, input_spec: InputSpec) -> keras.Model:
    """The public SNS prototype CNN-LSTM, kept for comparison.

    Conv1D 64/k5 -> BN -> MaxPool 2 -> Conv1D 128/k3 -> BN -> MaxPool 2 -> BiLSTM 64 ->
    attention -> concat settings -> Dense 64 -> sigmoid. Sizes are fixed: conv_*, lstm_*,
    settings_units, head_units and dropout of `model_config` are ignored; only `per_trace` is
    honoured. The LSTM runs over trace_length / 4 steps (2500 for 10000 samples), hence slow.
    """
    trace = _trace_input(input_spec)
    settings = _settings_input(input_spec, "sns_prototype", "sns_cnn_lstm_trace_only")
    x = trace
    if getattr(model_config, "per_trace", False):
        x = PerTraceNormalization(dtype="float32", name="per_trace_norm")(x)
    for i, (n_filters, kernel) in enumerate(((64, 5), (128, 3))):
        x = layers.Conv1D(n_filters, kernel, padding="same", activation="relu", name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"conv{i}_bn")(x)
        x = layers.MaxPooling1D(2, name=f"conv{i}_pool")(x)
    x = _recurrent_pooling(x, 64, bidirectional=True, attention=True)
    x = layers.Concatenate(name="join")([x, settings])
    score = classification_head(x, (64,), dropout=0.0)
    return keras.Model(
        inputs={"trace": trace, "settings": settings}, outputs=score, name="sns_prototype"
    )
