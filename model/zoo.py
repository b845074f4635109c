"""Architectures for the non-SNS jobs (sensor sessions, windowed arrays, feature tables, text).

Each builder takes `(model_config, input_spec)` like every registered model; what comes from
the data rather than the config, the class count and (text) the vocabulary size of the
vectorizer fitted on the training part, is in `input_spec` (`n_classes`, `vocab_size`). Two classes give one sigmoid unit named
`"score"` (the binary threshold logic applies); more give a softmax named `"probabilities"`.
Every size comes from the model section: conv_filters, conv_kernels, pool_size, lstm_units,
lstm_layers, head_units, dropout, embedding_dim.

Inputs: `"trace"` [steps, channels] (sessions, npz windows; zero rows are padding),
`"features"` [n_features] (feature tables), `"tokens"` int [max_length] (text ids, 0 = padding).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers, ops

from model.compile import make_optimizer
from model.losses import make_loss
from model.registry import InputSpec, register_model


def output_head(x, n_classes: int):
    """One sigmoid unit "score" for two classes, else a softmax "probabilities" (float32)."""
    if n_classes <= 2:
        return layers.Dense(1, activation="sigmoid", dtype="float32", name="score")(x)
    return layers.Dense(n_classes, activation="softmax", dtype="float32",
                        name="probabilities")(x)


def _dense_stack(x, units, dropout: float, prefix: str):
    for i, n in enumerate(units):
        x = layers.Dense(n, activation="relu", name=f"{prefix}{i}")(x)
        if dropout > 0:
            x = layers.Dropout(dropout, name=f"{prefix}{i}_dropout")(x)
    return x


def _pool(x, size: int, name: str):
    # padding="same" keeps at least one step, so short sequences never pool to length 0.
    return layers.MaxPooling1D(size, padding="same", name=name)(x) if size > 1 else x


@register_model
def stacked_conv_lstm(model_config, input_spec: InputSpec) -> keras.Model:
    """Conv1D -> BatchNorm -> MaxPool per `conv_filters`/`conv_kernels` block, `lstm_layers`
    stacked LSTMs of `lstm_units` with dropout between, dense `head_units`, output head."""
    trace = keras.Input(shape=(input_spec.trace_length, input_spec.n_channels), name="trace")
    x = trace
    for i, (n, k) in enumerate(zip(model_config.conv_filters, model_config.conv_kernels,
                                   strict=True)):
        x = layers.Conv1D(n, k, padding="same", activation="relu", name=f"conv{i}")(x)
        # momentum 0.9, not Keras' 0.99: a small set gives a few steps an epoch, and the slower
        # running statistics left inference off the training distribution (GunPoint, 50
        # series: test accuracy 0.51 at 0.99 against 0.99 at 0.9, 60 epochs)
        x = layers.BatchNormalization(momentum=0.9, name=f"conv{i}_bn")(x)
        x = _pool(x, model_config.pool_size, f"conv{i}_pool")
    for i in range(model_config.lstm_layers):
        last = i == model_config.lstm_layers - 1
        x = layers.LSTM(model_config.lstm_units, return_sequences=not last, name=f"lstm{i}")(x)
        if model_config.dropout > 0:
            x = layers.Dropout(model_config.dropout, name=f"lstm{i}_dropout")(x)
    x = _dense_stack(x, model_config.head_units, 0.0, "head")
    return keras.Model(inputs={"trace": trace}, outputs=output_head(x, input_spec.n_classes),
                       name="stacked_conv_lstm")


@register_model
def conv_gap(model_config, input_spec: InputSpec) -> keras.Model:
    """A fully convolutional network (Wang et al. 2017's FCN): per `conv_filters`/`conv_kernels`
    block Conv1D (same length) -> BatchNorm -> ReLU, no pooling; global average over the real
    (non-padding) steps; dropout; dense `head_units`; output head. Few weights per sample and
    no recurrence: the strong neural default of the time-series archives on small sets."""
    trace = keras.Input(shape=(input_spec.trace_length, input_spec.n_channels), name="trace")
    mask = layers.Masking(mask_value=0.0, name="mask_padding").compute_mask(trace)
    x = trace
    for i, (n, k) in enumerate(zip(model_config.conv_filters, model_config.conv_kernels,
                                   strict=True)):
        x = layers.Conv1D(n, k, padding="same", name=f"conv{i}")(x)
        # momentum 0.9, not Keras' 0.99: a small set gives a few steps an epoch, and the slower
        # running statistics left inference off the training distribution (GunPoint, 50
        # series: test accuracy 0.51 at 0.99 against 0.99 at 0.9, 60 epochs)
        x = layers.BatchNormalization(momentum=0.9, name=f"conv{i}_bn")(x)
        x = layers.Activation("relu", name=f"conv{i}_relu")(x)
    x = layers.GlobalAveragePooling1D(name="average_real_steps")(x, mask=mask)
    if model_config.dropout > 0:
        x = layers.Dropout(model_config.dropout, name="gap_dropout")(x)
    x = _dense_stack(x, model_config.head_units, 0.0, "head")
    return keras.Model(inputs={"trace": trace}, outputs=output_head(x, input_spec.n_classes),
                       name="conv_gap")


@register_model
def masked_lstm(model_config, input_spec: InputSpec) -> keras.Model:
    """Masking(0.0) -> LSTM `lstm_units` -> Dropout -> Dense `head_units` relu -> output head.

    All-zero steps are padding and skipped by the LSTM (scale data so that real steps are not
    exactly zero: the samples flow keeps padding at zero and scales only real steps)."""
    trace = keras.Input(shape=(input_spec.trace_length, input_spec.n_channels), name="trace")
    x = layers.Masking(mask_value=0.0, name="mask_padding")(trace)
    x = layers.LSTM(model_config.lstm_units, name="lstm")(x)
    if model_config.dropout > 0:
        x = layers.Dropout(model_config.dropout, name="lstm_dropout")(x)
    x = _dense_stack(x, model_config.head_units, 0.0, "head")
    return keras.Model(inputs={"trace": trace}, outputs=output_head(x, input_spec.n_classes),
                       name="masked_lstm")


@register_model
def conv_lstm_features(model_config, input_spec: InputSpec) -> keras.Model:
    """A feature vector read as a sequence (features, 1): Conv1D -> MaxPool -> Dropout per
    block, LSTM `lstm_units` -> Dropout -> Dense `head_units` relu -> output head."""
    features = keras.Input(shape=(input_spec.trace_length,), name="features")
    x = layers.Reshape((input_spec.trace_length, 1), name="as_sequence")(features)
    for i, (n, k) in enumerate(zip(model_config.conv_filters, model_config.conv_kernels,
                                   strict=True)):
        x = layers.Conv1D(n, k, padding="same", activation="relu", name=f"conv{i}")(x)
        x = _pool(x, model_config.pool_size, f"conv{i}_pool")
        if model_config.dropout > 0:
            x = layers.Dropout(model_config.dropout, name=f"conv{i}_dropout")(x)
    x = layers.LSTM(model_config.lstm_units, name="lstm")(x)
    if model_config.dropout > 0:
        x = layers.Dropout(model_config.dropout, name="lstm_dropout")(x)
    x = _dense_stack(x, model_config.head_units, 0.0, "head")
    return keras.Model(inputs={"features": features},
                       outputs=output_head(x, input_spec.n_classes), name="conv_lstm_features")


@register_model
def dense_features(model_config, input_spec: InputSpec) -> keras.Model:
    """A feature vector with no order between its features: dense `head_units` relu layers with
    dropout -> output head (a plain MLP; `conv_lstm_features` reads the features as a sequence,
    which only helps when neighbouring features are related)."""
    features = keras.Input(shape=(input_spec.trace_length,), name="features")
    x = _dense_stack(features, model_config.head_units, model_config.dropout, "dense")
    return keras.Model(inputs={"features": features},
                       outputs=output_head(x, input_spec.n_classes), name="dense_features")


@register_model
def parallel_cnn_bilstm(model_config, input_spec: InputSpec) -> keras.Model:
    """Token ids -> trainable embedding; a BiLSTM branch (global max and mean over steps) beside
    a Conv1D branch (one Conv1D per `conv_kernels` size, max over time), concatenated ->
    dropout -> dense `head_units` -> output head. Ids come from a TextVectorization fitted on
    the training part outside the model (0 = padding, 1 = out of vocabulary)."""
    tokens = keras.Input(shape=(input_spec.trace_length,), dtype="int32", name="tokens")
    x = layers.Embedding(input_spec.vocab_size, model_config.embedding_dim,
                         name="embedding")(tokens)
    rnn = layers.Bidirectional(layers.LSTM(model_config.lstm_units, return_sequences=True),
                               name="bilstm")(x)
    branches = [layers.GlobalMaxPooling1D(name="bilstm_max")(rnn),
                layers.GlobalAveragePooling1D(name="bilstm_mean")(rnn)]
    for i, (n, k) in enumerate(zip(model_config.conv_filters, model_config.conv_kernels,
                                   strict=True)):
        c = layers.Conv1D(n, k, padding="same", activation="relu", name=f"conv{i}_k{k}")(x)
        branches.append(layers.GlobalMaxPooling1D(name=f"conv{i}_k{k}_max")(c))
    x = layers.Concatenate(name="join")(branches)
    if model_config.dropout > 0:
        x = layers.Dropout(model_config.dropout, name="join_dropout")(x)
    x = _dense_stack(x, model_config.head_units, model_config.dropout, "head")
    return keras.Model(inputs={"tokens": tokens}, outputs=output_head(x, input_spec.n_classes),
                       name="parallel_cnn_bilstm")


@keras.saving.register_keras_serializable(package="beamwatch")
class SparseCategoricalFocalLoss(keras.losses.Loss):
    """Multiclass focal loss on softmax outputs and integer labels: `-(1 - p_t)**gamma log p_t`.

    Class balance comes from sample weights (class weights), not an alpha. With `gamma=0` it is
    the sparse categorical cross-entropy.
    """

    def __init__(self, gamma: float = 2.0, epsilon: float = 1e-7,
                 name: str = "sparse_categorical_focal_loss",
                 reduction: str = "sum_over_batch_size", dtype: Any = None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if float(gamma) < 0:
            raise ValueError(f"SparseCategoricalFocalLoss: gamma must be >= 0, got {gamma}.")
        self.gamma, self.epsilon = float(gamma), float(epsilon)

    def call(self, y_true, y_pred):
        y_pred = ops.clip(ops.convert_to_tensor(y_pred), self.epsilon, 1.0 - self.epsilon)
        y_true = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        p_t = ops.sum(y_pred * ops.one_hot(y_true, ops.shape(y_pred)[-1], dtype=y_pred.dtype),
                      axis=-1)
        return -ops.power(1.0 - p_t, self.gamma) * ops.log(p_t)

    def get_config(self):
        return {**super().get_config(), "gamma": self.gamma, "epsilon": self.epsilon}


def compile_classifier(model: keras.Model, model_config, train_config, n_classes: int,
                       jit_compile: bool | str = False) -> keras.Model:
    """Compile for two classes (the project's binary loss, AUC metrics) or several (sparse
    cross-entropy or focal, accuracy); `model.loss` bce means cross-entropy in both cases."""
    if n_classes <= 2:
        loss = make_loss(model_config)
        metrics = [keras.metrics.BinaryAccuracy(name="accuracy"),
                   keras.metrics.AUC(curve="PR", name="auc_pr")]
    else:
        loss = (SparseCategoricalFocalLoss(gamma=model_config.focal_gamma)
                if model_config.loss == "focal" else keras.losses.SparseCategoricalCrossentropy())
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    model.compile(optimizer=make_optimizer(train_config), loss=loss, metrics=metrics,
                  jit_compile=jit_compile)
    return model
