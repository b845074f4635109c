"""The registered beamwatch architectures and the branches they share.

Every builder takes `(model_config, input_spec)` and returns an uncompiled functional
`keras.Model` whose inputs are a dict: `"trace"` (`[trace_length, n_channels]`), for models
that use them `"settings"` (`[n_settings]`), and for the reference models `"reference"`
(`[n_references, trace_length, n_channels]`: earlier normal pulses of the same configuration);
the history model also `"history"` (`[n_history, trace_length, n_channels]`: the pulses just
before the sample in its own file) and `"history_count"` (int32 `[1]`: its filled last slots).
Feed data as a dict with exactly the keys of `model.input`. The output is one float32 unit
named `"score"` in [0, 1], shape `[batch, 1]`, also under mixed precision (higher = more likely
errant). Builders only create layers, so they can run inside any `tf.distribute` strategy scope.

Config fields read (by attribute, a `parser.configs.ModelConfig`): per_trace, input_pool,
conv_filters, conv_kernels, conv_strides, lstm_units, bidirectional, attention, global_pooling,
settings_units, head_units, dropout; the reference models also use_settings, reference_reduce,
and sns_conditional_siamese siamese_filters, siamese_kernel, embedding_units.
"""

from __future__ import annotations

import keras
from keras import layers

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
from model.registry import InputSpec, register_model


def trace_branch(trace, model_config):
    """Conv1D blocks that shorten the trace, then an LSTM, then attention pooling (optional).

    Each block is Conv1D(filters, kernel, strides, padding="same") -> BatchNorm -> ReLU, so
    the sequence length is divided by each stride, rounded up (10000 samples averaged over
    `input_pool`=10 -> 1000 -> 500 -> 250 -> 125 for strides 2, 2, 2) and the LSTM runs over far
    fewer steps than the raw samples.
    """
    return sequence_summary(conv_front_end(trace, model_config), model_config, "trace_summary")


def conv_front_end(x, model_config):
    """Per-trace normalisation (optional), the 1 us input average and the Conv1D blocks.

    Returns the feature sequence `[batch, steps, conv_filters[-1]]`.
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
    x = _input_stage(x, model_config)
    for i, (n_filters, kernel, stride) in enumerate(zip(filters, kernels, strides, strict=True)):
        x = layers.Conv1D(n_filters, kernel, strides=stride, padding="same", name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"conv{i}_bn")(x)
        x = layers.ReLU(name=f"conv{i}_relu")(x)
    return x


def sequence_summary(x, model_config, name: str):
    """Spatial dropout, the (Bi)LSTM/attention summary and, with `global_pooling`, the mean
    and max of each feature over the pulse, concatenated (layer `name`)."""
    if model_config.dropout > 0:
        x = layers.SpatialDropout1D(model_config.dropout, name="conv_dropout")(x)
    pooled = _recurrent_pooling(
        x, model_config.lstm_units, model_config.bidirectional, model_config.attention
    )
    if not model_config.global_pooling:
        return pooled
    # Whole-pulse level and peak of each conv feature beside the LSTM summary: the loss level
    # relative to what the settings predict is much of the signal, and these carry it directly.
    return layers.Concatenate(name=name)([
        pooled,
        layers.GlobalAveragePooling1D(name="conv_mean")(x),
        layers.GlobalMaxPooling1D(name="conv_max")(x),
    ])


def _input_stage(x, model_config):
    """Per-trace normalisation (optional) and the average over one chopper mini-pulse."""
    if model_config.per_trace:
        # float32 even under mixed precision: a quiet trace's spread underflows in float16.
        x = PerTraceNormalization(dtype="float32", name="per_trace_norm")(x)
    if model_config.input_pool > 1:
        # The chopper cuts the macropulse into ~1 us mini-pulses (10 samples at 10 MS/s) with a
        # random phase per pulse; averaging over one period removes that carrier and keeps the
        # loss envelope where the precursors live (ramps, bursts, sags, RF jitter at kHz).
        x = layers.AveragePooling1D(
            model_config.input_pool, padding="same", name="minipulse_average"
        )(x)
    return x


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


def _reference_input(spec: InputSpec, model_name: str):
    if spec.n_references < 1:
        raise ValueError(
            f"Model {model_name!r} compares each pulse with its reference pulses but "
            "input_spec.n_references is 0. Set reference.count >= 1, or use "
            "model.name='sns_cnn_lstm' to judge pulses alone."
        )
    return keras.Input(
        shape=(spec.n_references, spec.trace_length, spec.n_channels), name="reference"
    )


def _optional_settings_input(model_config, spec: InputSpec, model_name: str):
    """The "settings" input when `model_config.use_settings`, else None."""
    if not model_config.use_settings:
        return None
    if spec.n_settings < 1:
        raise ValueError(
            f"Model {model_name!r} uses beam settings (model.use_settings is true) but "
            "input_spec.n_settings is 0. Set model.use_settings=false for trace-only data, "
            "or enable beam settings."
        )
    return keras.Input(shape=(spec.n_settings,), name="settings")


def _trace_and_settings_model(model_config, spec, name, settings):
    """Trace branch (+ settings branch when `settings` is an Input) -> head -> score."""
    trace = _trace_input(spec)
    features = trace_branch(trace, model_config)
    return _settings_and_head({"trace": trace}, features, settings, model_config, name)


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
    if model_config.per_trace:
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


@register_model
def sns_reference_cnn_lstm(model_config, input_spec: InputSpec) -> keras.Model:
    """The pulse judged against its K reference pulses of the same configuration.

    One shared (Siamese) front end, `conv_front_end` (1 us input average, Conv1D blocks),
    encodes the pulse and each reference in one batch (`SiameseEncoder`). The references'
    feature sequences are reduced per step and channel by `reference_reduce` (median by
    default); the pulse's features, the reference features and their difference, joined on
    channels, go through the (Bi)LSTM/attention summary with global mean/max pooling, joined
    with the settings branch when `use_settings`, to the head. The difference channel is what
    a new beam configuration cannot move: it is the pulse's departure from its own normal.

    Inputs: "trace", "reference", and "settings" when `use_settings`.
    """
    name = "sns_reference_cnn_lstm"
    trace = _trace_input(input_spec)
    reference = _reference_input(input_spec, name)
    settings = _optional_settings_input(model_config, input_spec, name)
    encoder_input = keras.Input((input_spec.trace_length, input_spec.n_channels), name="pulse")
    encoder = keras.Model(
        encoder_input, conv_front_end(encoder_input, model_config), name="trace_encoder"
    )
    pulse, references = SiameseEncoder(encoder, name="siamese_encoder")([trace, reference])
    typical = ReferenceReduction(model_config.reference_reduce, name="reference_reduce")(
        references
    )
    difference = layers.Subtract(name="reference_difference")([pulse, typical])
    joined = layers.Concatenate(name="pulse_reference_join")([pulse, typical, difference])
    features = sequence_summary(joined, model_config, "trace_summary")
    return _settings_and_head({"trace": trace, "reference": reference}, features, settings,
                              model_config, name)


def _history_inputs(spec: InputSpec, model_name: str):
    if spec.n_history < 1:
        raise ValueError(
            f"Model {model_name!r} reads the pulses before each sample in its file but "
            "input_spec.n_history is 0. Set history.count >= 1 (and reference.own_file: false)."
        )
    history = keras.Input((spec.n_history, spec.trace_length, spec.n_channels), name="history")
    return history, keras.Input((1,), dtype="int32", name="history_count")


@register_model
def sns_history_siamese(model_config, input_spec: InputSpec) -> keras.Model:
    """The pulse judged against references from outside any run-up, and its run-up as a trend.

    One shared front end (`conv_front_end`, as `sns_reference_cnn_lstm`) encodes the pulse,
    its K references and its N history pulses (the pulses just before it in its own file;
    empty slots zeroed by `HistoryMask`) in one batch (`SiameseEncoder`). The references are
    reduced (`reference_reduce`); the sample's full comparison (pulse, reduced references,
    difference) goes through the (Bi)LSTM/attention summary as in `sns_reference_cnn_lstm`.
    Beside it, each history pulse and the sample, minus the reduced references, is pooled to
    one small vector (`PulseTrend`: mean and max over the steps), and a GRU (`lstm_units`) runs
    over those N + 1 vectors, oldest first, skipping empty slots (the mask): a precursor that
    grows over several pulses is a trend it sees, where a comparison with the run-up itself
    would cancel it. Joined with the settings branch when `use_settings`, to the head.

    Inputs: "trace", "reference", "history", "history_count", and "settings" when
    `use_settings`. Train it with `history.count` N >= 1 and `reference.own_file: false`.
    """
    name = "sns_history_siamese"
    trace = _trace_input(input_spec)
    reference = _reference_input(input_spec, name)
    history, count = _history_inputs(input_spec, name)
    settings = _optional_settings_input(model_config, input_spec, name)
    encoder_input = keras.Input((input_spec.trace_length, input_spec.n_channels), name="pulse")
    encoder = keras.Model(
        encoder_input, conv_front_end(encoder_input, model_config), name="trace_encoder"
    )
    history_zeroed, mask = HistoryMask(name="history_mask")([history, count])
    # float32: raw traces reach the encoder un-rounded under mixed precision
    others = layers.Concatenate(axis=1, dtype="float32", name="reference_history_join")(
        [reference, history_zeroed])
    pulse, encoded = SiameseEncoder(encoder, name="siamese_encoder")([trace, others])
    references, past = SplitSlots(input_spec.n_references, name="reference_history_split")(
        encoded)
    typical = ReferenceReduction(model_config.reference_reduce, name="reference_reduce")(
        references
    )
    difference = layers.Subtract(name="reference_difference")([pulse, typical])
    joined = layers.Concatenate(name="pulse_reference_join")([pulse, typical, difference])
    features = sequence_summary(joined, model_config, "trace_summary")
    trend = PulseTrend(name="pulse_trend")([past, pulse, typical])
    trend = layers.GRU(model_config.lstm_units, name="history_gru")(trend, mask=mask)
    features = layers.Concatenate(name="pulse_history_join")([features, trend])
    inputs = {"trace": trace, "reference": reference, "history": history, "history_count": count}
    return _settings_and_head(inputs, features, settings, model_config, name)


def _settings_and_head(inputs: dict, features, settings, model_config, name: str) -> keras.Model:
    """Join the settings branch (when `settings` is an Input), then the head -> "score"."""
    if settings is not None:
        inputs = {**inputs, "settings": settings}
        features = layers.Concatenate(name="join")(
            [features, settings_branch(settings, model_config)]
        )
    score = classification_head(features, model_config.head_units, model_config.dropout)
    return keras.Model(inputs=inputs, outputs=score, name=name)


def residual_block(x, filters: int, kernel: int, index: int, condition=None):
    """1-D residual block that halves the length: two convolutions beside a strided 1x1
    projection, with the second one's features scaled and shifted by `condition` (FiLM) when
    given. Zero-initialised FiLM generators make the conditioning start as the identity."""
    prefix = f"res{index}"
    shortcut = layers.Conv1D(filters, 1, strides=2, padding="same", name=f"{prefix}_shortcut")(x)
    shortcut = layers.BatchNormalization(name=f"{prefix}_shortcut_bn")(shortcut)
    y = layers.Conv1D(filters, kernel, strides=2, padding="same", name=f"{prefix}_conv_a")(x)
    y = layers.BatchNormalization(name=f"{prefix}_bn_a")(y)
    y = layers.ReLU(name=f"{prefix}_relu_a")(y)
    y = layers.Conv1D(filters, kernel, padding="same", name=f"{prefix}_conv_b")(y)
    y = layers.BatchNormalization(name=f"{prefix}_bn_b")(y)
    if condition is not None:
        scale = layers.Dense(filters, kernel_initializer="zeros", name=f"{prefix}_film_scale")(
            condition
        )
        shift = layers.Dense(filters, kernel_initializer="zeros", name=f"{prefix}_film_shift")(
            condition
        )
        y = FeatureWiseAffine(name=f"{prefix}_film")([y, scale, shift])
    y = layers.Add(name=f"{prefix}_add")([y, shortcut])
    return layers.ReLU(name=f"{prefix}_relu")(y)


@register_model
def sns_conditional_siamese(model_config, input_spec: InputSpec) -> keras.Model:
    """Conditional Siamese network: the score is the distance between the pulse's embedding
    and its references' embeddings, in the embedding the beam settings condition.

    The shared encoder averages over 1 us (`input_pool`), runs one residual block per entry of
    `siamese_filters` (stride 2 each, kernel `siamese_kernel`), pools the mean and max of each
    feature over the pulse and projects to `embedding_units`, normalised to unit length. With
    `use_settings`, the settings branch (`settings_units`) scales and shifts every block's
    features (FiLM), so what counts as normal variation can depend on the configuration.
    Score: the median (`reference_reduce`) of the K pulse-to-reference distances, divided by 2
    (the largest distance between unit vectors): linear in the distance, in [0, 1].

    Why unit length: the distance is bounded, so the contrastive margin means the same for
    every network and configuration, the score needs no saturating squash, and the encoder
    cannot meet the margin just by inflating errant embeddings. No dropout in the encoder:
    different masks on a pulse and its references would add distance that is only noise.

    Train with `loss: contrastive` (or bce/focal on the score). Inputs: "trace", "reference",
    and "settings" when `use_settings`.
    """
    name = "sns_conditional_siamese"
    trace = _trace_input(input_spec)
    reference = _reference_input(input_spec, name)
    settings = _optional_settings_input(model_config, input_spec, name)

    pulse = keras.Input((input_spec.trace_length, input_spec.n_channels), name="pulse")
    encoder_inputs = [pulse]
    condition = None
    if settings is not None:
        pulse_settings = keras.Input((input_spec.n_settings,), name="pulse_settings")
        encoder_inputs.append(pulse_settings)
        condition = settings_branch(pulse_settings, model_config)
    x = _input_stage(pulse, model_config)
    for i, filters in enumerate(model_config.siamese_filters):
        x = residual_block(x, filters, model_config.siamese_kernel, i, condition)
    x = layers.Concatenate(name="embedding_pool")([
        layers.GlobalAveragePooling1D(name="embedding_mean")(x),
        layers.GlobalMaxPooling1D(name="embedding_max")(x),
    ])
    x = layers.Dense(model_config.embedding_units, name="embedding_dense")(x)
    # float32: the norm of a float16 vector can underflow or overflow.
    embedding = layers.UnitNormalization(dtype="float32", name="embedding")(x)
    encoder = keras.Model(encoder_inputs, embedding, name="pulse_encoder")

    inputs = {"trace": trace, "reference": reference}
    encoder_args = [trace, reference]
    if settings is not None:
        inputs["settings"] = settings
        encoder_args.append(settings)
    pulse_embedding, reference_embeddings = SiameseEncoder(encoder, name="siamese_encoder")(
        encoder_args
    )
    score = ReferenceDistanceScore(model_config.reference_reduce, dtype="float32", name="score")(
        [pulse_embedding, reference_embeddings]
    )
    return keras.Model(inputs=inputs, outputs=score, name=name)
