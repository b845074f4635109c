"""Custom Keras layers of the beamwatch models.

Every layer is registered under the package name "beamwatch" and carries its arguments in
`get_config`, so a saved `.keras` file loads with `safe_mode=True` and no `custom_objects`
(once `model` is imported). No Lambda layers: they cannot be loaded in safe mode.
"""

from __future__ import annotations

import keras
from keras import ops

_PACKAGE = "beamwatch"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AttentionPooling(keras.layers.Layer):
    """Pools a sequence `[batch, steps, features]` into `[batch, features]` by learned attention.

    Each step gets a score from a small tanh layer; a softmax over the steps turns the scores
    into weights, and the output is the weighted sum of the steps. Unlike the last LSTM state,
    this lets a precursor anywhere in the pulse weigh in.

    Args:
        units: width of the tanh scoring layer. Defaults to 32.
        **kwargs: base `Layer` arguments (`name`, `dtype`, ...).

    Example:

    >>> x = keras.ops.ones((2, 5, 3))
    >>> AttentionPooling(units=4)(x).shape
    (2, 3)
    """

    def __init__(self, units: int = 32, **kwargs):
        super().__init__(**kwargs)
        if int(units) < 1:
            raise ValueError(f"AttentionPooling: units must be >= 1, received units={units}.")
        self.units = int(units)
        self.hidden = keras.layers.Dense(self.units, activation="tanh", name="score_hidden")
        self.scorer = keras.layers.Dense(1, use_bias=False, name="score")

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                "AttentionPooling expects inputs of shape [batch, steps, features], "
                f"received shape {tuple(input_shape)}."
            )
        self.hidden.build(input_shape)
        self.scorer.build(tuple(input_shape[:-1]) + (self.units,))

    def attention_weights(self, inputs):
        """Returns the softmax weights over the steps, shape `[batch, steps]` (each row sums to 1)."""
        scores = ops.squeeze(self.scorer(self.hidden(inputs)), axis=-1)
        return ops.softmax(scores, axis=-1)

    def call(self, inputs):
        weights = self.attention_weights(inputs)
        return ops.sum(inputs * ops.expand_dims(weights, axis=-1), axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PerTraceNormalization(keras.layers.Layer):
    """Normalises each trace by its own centre and spread, channel by channel.

    `method="median"` subtracts the trace's median and divides by its interquartile range;
    `method="mean"` uses mean and standard deviation. This removes pulse-to-pulse offsets and
    gain drifts of the DCM that a scaler fitted on the whole training set cannot. It has no
    weights and behaves the same in training and inference.

    Args:
        method: "median" (robust, default) or "mean".
        epsilon: added to the spread so that a flat trace does not divide by zero.
            Defaults to 1e-6.
        **kwargs: base `Layer` arguments. Pass `dtype="float32"` under mixed precision: the
            spread of a quiet trace can underflow in float16.

    Example:

    >>> x = keras.ops.convert_to_tensor([[[1.0], [2.0], [3.0], [100.0]]])
    >>> y = PerTraceNormalization()(x)
    """

    _METHODS = ("median", "mean")

    def __init__(self, method: str = "median", epsilon: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        if method not in self._METHODS:
            raise ValueError(
                f"PerTraceNormalization: unknown method={method!r}; "
                f"expected one of {list(self._METHODS)}."
            )
        if not float(epsilon) > 0:
            raise ValueError(f"PerTraceNormalization: epsilon must be > 0, received {epsilon}.")
        self.method = method
        self.epsilon = float(epsilon)

    def call(self, inputs):
        # Statistics over the time axis (1), separately for each trace and channel.
        if self.method == "median":
            quartiles = ops.quantile(inputs, [0.25, 0.5, 0.75], axis=1, keepdims=True)
            centre = quartiles[1]
            spread = quartiles[2] - quartiles[0]
        else:
            centre = ops.mean(inputs, axis=1, keepdims=True)
            spread = ops.std(inputs, axis=1, keepdims=True)
        return (inputs - centre) / (spread + self.epsilon)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "method": self.method, "epsilon": self.epsilon}
