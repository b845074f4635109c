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
    >>> tuple(AttentionPooling(units=4)(x).shape)
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


# --------------------------------------------------------------------------------------------
# Reference pulses: one shared encoder, a robust reduction over the K references, a distance.

# Largest Euclidean distance between two unit-length embeddings (antipodal points).
UNIT_EMBEDDING_MAX_DISTANCE = 2.0

_REDUCTIONS = ("median", "mean")


_NETWORK_SORT_MAX = 16  # up to this many references, the median uses a sorting network


def reduce_references(x, method: str, axis: int):
    """Median (for an even count the mean of the two middle values) or mean along `axis`.

    The count along `axis` must be static: the median picks fixed positions of the sorted values.
    """
    if method == "mean":
        return ops.mean(x, axis=axis)
    count = x.shape[axis]
    if count > _NETWORK_SORT_MAX:
        ordered = ops.sort(x, axis=axis)
        lower = ops.take(ordered, (count - 1) // 2, axis=axis)
        upper = ops.take(ordered, count // 2, axis=axis)
        return (lower + upper) * 0.5
    # A few references: sort by compare-exchange (odd-even transposition) on the K slices. It
    # selects the same values as a sort, and on a CPU it is ~100x faster than XLA's general sort
    # over a short non-last axis, which was most of a live pulse's scoring time.
    values = [ops.take(x, i, axis=axis) for i in range(count)]
    for round_ in range(count):
        for i in range(round_ % 2, count - 1, 2):
            values[i], values[i + 1] = (ops.minimum(values[i], values[i + 1]),
                                        ops.maximum(values[i], values[i + 1]))
    return (values[(count - 1) // 2] + values[count // 2]) * 0.5


def _check_reduction(layer: str, method: str) -> None:
    if method not in _REDUCTIONS:
        raise ValueError(
            f"{layer}: unknown method={method!r}; expected one of {list(_REDUCTIONS)}."
        )


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ReferenceReduction(keras.layers.Layer):
    """Reduces the reference axis of `[batch, K, ...]` to `[batch, ...]` by median or mean.

    The median of K values per position and channel (for even K the mean of the two middle
    ones) is the robust choice: one odd reference, say a pulse just before a trip that was not
    recorded, does not move it. It has no weights.

    Args:
        method: "median" (default) or "mean".
        axis: the reference axis. Defaults to 1 (`[batch, K, ...]`).
        **kwargs: base `Layer` arguments.

    Example:

    >>> x = keras.ops.convert_to_tensor([[[1.0], [5.0], [2.0]]])  # batch 1, K=3, 1 feature
    >>> keras.ops.convert_to_numpy(ReferenceReduction()(x)).tolist()
    [[2.0]]
    """

    def __init__(self, method: str = "median", axis: int = 1, **kwargs):
        super().__init__(**kwargs)
        _check_reduction("ReferenceReduction", method)
        self.method = method
        self.axis = int(axis)

    def build(self, input_shape):
        if input_shape[self.axis] is None:
            raise ValueError(
                f"ReferenceReduction: the reference axis {self.axis} of shape "
                f"{tuple(input_shape)} must have a known size (the K of the reference input)."
            )

    def call(self, inputs):
        return reduce_references(inputs, self.method, self.axis)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        del shape[self.axis]
        return tuple(shape)

    def get_config(self):
        return {**super().get_config(), "method": self.method, "axis": self.axis}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SiameseEncoder(keras.layers.Wrapper):
    """Runs one encoder over a pulse and each of its K references, as one batch.

    Inputs: `[trace [b, L, C], reference [b, K, L, C]]`, optionally followed by per-sample
    conditioning inputs (`[b, S]`, e.g. the beam settings) that the encoder also takes. The
    pulse and its references are stacked to `[b * (K + 1), L, C]`, encoded once, and split
    again: outputs `(trace_features [b, ...], reference_features [b, K, ...])`. Conditioning
    inputs are repeated for the K + 1 pulses of their sample.

    One pass rather than one call per input is deliberate: in training, batch normalisation
    then normalises pulses and references with the same batch statistics. Separate calls would
    normalise each by its own batch mean and so subtract much of a systematic pulse-to-reference
    difference, which is the signal. Weight sharing holds by construction: there is one encoder.

    Args:
        layer: the encoder (a layer or functional model); it takes `[b', L, C]` (or a list of
            that and the conditioning inputs) and returns `[b', ...]`.
        **kwargs: base `Layer` arguments. The wrapper only stacks and reshapes, in float32 by
            default, so raw traces reach the encoder un-rounded under mixed precision (the
            encoder's layers keep their own dtype policies).

    Example:

    >>> encoder = keras.layers.Dense(4)
    >>> pulse, refs = SiameseEncoder(encoder)([keras.ops.ones((2, 3)), keras.ops.ones((2, 5, 3))])
    >>> tuple(pulse.shape), tuple(refs.shape)
    ((2, 4), (2, 5, 4))
    """

    def __init__(self, layer, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(layer, **kwargs)

    def build(self, input_shape):
        trace_shape, reference_shape, *condition_shapes = input_shape
        if (
            len(reference_shape) != len(trace_shape) + 1
            or reference_shape[1] is None
            or tuple(reference_shape[2:]) != tuple(trace_shape[1:])
        ):
            raise ValueError(
                "SiameseEncoder expects reference pulses of shape [batch, K, *trace_shape] with a "
                f"known K; received trace {tuple(trace_shape)} and reference "
                f"{tuple(reference_shape)}."
            )
        if not self.layer.built:
            encoder_shape = (None, *trace_shape[1:])
            if condition_shapes:
                encoder_shape = [encoder_shape, *((None, *s[1:]) for s in condition_shapes)]
            self.layer.build(encoder_shape)

    def call(self, inputs, training=None):
        trace, references, *conditions = inputs
        copies = references.shape[1] + 1
        references = ops.cast(references, trace.dtype)
        stacked = ops.concatenate([ops.expand_dims(trace, axis=1), references], axis=1)
        # Row-major folding keeps the K + 1 pulses of one sample next to each other, which is
        # what `ops.repeat(..., axis=0)` gives for the per-sample conditioning inputs.
        folded = ops.reshape(stacked, (-1, *stacked.shape[2:]))
        if conditions:
            repeated = [ops.repeat(c, copies, axis=0) for c in conditions]
            features = self.layer([folded, *repeated], training=training)
        else:
            features = self.layer(folded, training=training)
        features = ops.reshape(features, (-1, copies, *features.shape[1:]))
        return features[:, 0], features[:, 1:]


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FeatureWiseAffine(keras.layers.Layer):
    """FiLM: scales and shifts each channel of a sequence by per-sample factors.

    `call([x, scale, shift])` with `x` `[b, steps, channels]` and `scale`, `shift`
    `[b, channels]` returns `x * (1 + scale) + shift`. The `1 +` makes zero factors (zero-
    initialised generator layers) the identity, so conditioning starts neutral and is learned.
    Used to condition a pulse's features on the beam settings (Perez et al., 2018).

    Example:

    >>> x = keras.ops.ones((1, 2, 3))
    >>> y = FeatureWiseAffine()([x, keras.ops.ones((1, 3)), keras.ops.zeros((1, 3))])
    >>> float(keras.ops.convert_to_numpy(y).max())
    2.0
    """

    def call(self, inputs):
        x, scale, shift = inputs
        return x * (1.0 + ops.expand_dims(scale, axis=1)) + ops.expand_dims(shift, axis=1)

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ReferenceDistanceScore(keras.layers.Layer):
    """Score in [0, 1] from the distance between a pulse's embedding and its references'.

    `call([pulse [b, E], references [b, K, E]])` computes the Euclidean distance from the pulse
    to each reference, reduces the K distances by median (or mean) and divides by
    `max_distance`: `score = distance / max_distance`, clipped to [0, 1]. For unit-length
    embeddings (`max_distance=2`) the map is linear and exact, so the score keeps every
    distance distinction (no saturating squash), a distance loss can recover the distance as
    `score * max_distance`, and AUC-PR of the score is that of the distance.

    The median of the K distances (rather than the distance to a median embedding) keeps the
    distances on the unit sphere's scale and lets one odd reference not move the score.

    Args:
        method: "median" (default) or "mean" over the K distances.
        max_distance: distance that maps to a score of 1. Defaults to 2.0 (unit embeddings).
        **kwargs: base `Layer` arguments; the builders pass `dtype="float32"`.

    Example:

    >>> pulse = keras.ops.convert_to_tensor([[1.0, 0.0]])
    >>> refs = keras.ops.convert_to_tensor([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]])
    >>> round(float(ReferenceDistanceScore()([pulse, refs])[0, 0]), 4)  # median of 0, 1.414, 2
    0.7071
    """

    # Floor under the squared distance: the gradient of sqrt is infinite at 0, and a normal
    # pulse pulled onto its references gets there.
    _EPSILON = 1e-12

    def __init__(
        self, method: str = "median", max_distance: float = UNIT_EMBEDDING_MAX_DISTANCE, **kwargs
    ):
        super().__init__(**kwargs)
        _check_reduction("ReferenceDistanceScore", method)
        if not float(max_distance) > 0:
            raise ValueError(
                f"ReferenceDistanceScore: max_distance must be > 0, received {max_distance}."
            )
        self.method = method
        self.max_distance = float(max_distance)

    def distances(self, inputs):
        """The pulse's distance to each reference, shape `[batch, K]`."""
        pulse, references = inputs
        squared = ops.sum(ops.square(references - ops.expand_dims(pulse, axis=1)), axis=-1)
        return ops.sqrt(ops.maximum(squared, self._EPSILON))

    def call(self, inputs):
        pulse, references = inputs
        pulse = ops.cast(pulse, self.compute_dtype)
        references = ops.cast(references, self.compute_dtype)
        distance = reduce_references(self.distances([pulse, references]), self.method, axis=1)
        score = ops.clip(distance / self.max_distance, 0.0, 1.0)
        return ops.expand_dims(score, axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], 1)

    def get_config(self):
        return {
            **super().get_config(),
            "method": self.method,
            "max_distance": self.max_distance,
        }


# --------------------------------------------------------------------------------------------
# History: the N pulses before the sample in its own file, a sequence with empty slots.


@keras.saving.register_keras_serializable(package=_PACKAGE)
class HistoryMask(keras.layers.Layer):
    """Zeroes the empty history slots and gives the mask over the history and the sample.

    `call([history [b, N, ...], count [b, 1]])` returns `(history with slots before the last
    `count` set to zero, mask bool [b, N + 1])`: the history is right-aligned (slot N - 1 is
    the pulse just before the sample), so slot i is filled when i >= N - count; the mask's
    last entry, the sample itself, is always on. Zeroing means whatever an empty slot held
    (padding, or garbage) cannot reach the score; the mask lets a recurrent layer skip it.

    Args:
        **kwargs: base `Layer` arguments; float32 by default, so raw traces are not rounded
            under mixed precision.

    Example:

    >>> history = keras.ops.ones((1, 3, 2))
    >>> zeroed, mask = HistoryMask()([history, keras.ops.convert_to_tensor([[1]])])
    >>> keras.ops.convert_to_numpy(mask).tolist()
    [[False, False, True, True]]
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def build(self, input_shape):
        history_shape, count_shape = input_shape
        if len(history_shape) < 3 or history_shape[1] is None or tuple(count_shape[1:]) != (1,):
            raise ValueError(
                "HistoryMask expects [history [batch, N, ...] with a known N, count [batch, 1]]; "
                f"received {tuple(history_shape)} and {tuple(count_shape)}."
            )

    def call(self, inputs):
        history, count = inputs
        slots = history.shape[1]
        count = ops.cast(count, "int32")
        filled = ops.arange(slots, dtype="int32")[None, :] >= slots - count  # [b, N]
        zeroed = history * ops.cast(
            ops.reshape(filled, (-1, slots) + (1,) * (len(history.shape) - 2)), history.dtype)
        mask = ops.concatenate([filled, ops.ones_like(filled[:, :1])], axis=1)
        return zeroed, mask

    def compute_output_shape(self, input_shape):
        history_shape, _ = input_shape
        return tuple(history_shape), (history_shape[0], history_shape[1] + 1)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SplitSlots(keras.layers.Layer):
    """Splits the slot axis 1 of `[b, S, ...]` into `([b, first, ...], [b, S - first, ...])`.

    Args:
        first: slots in the first part (e.g. the K references before the N history pulses).
        **kwargs: base `Layer` arguments.

    Example:

    >>> a, b = SplitSlots(2)(keras.ops.ones((1, 5, 3)))
    >>> tuple(a.shape), tuple(b.shape)
    ((1, 2, 3), (1, 3, 3))
    """

    def __init__(self, first: int, **kwargs):
        super().__init__(**kwargs)
        if int(first) < 1:
            raise ValueError(f"SplitSlots: first must be >= 1, received first={first}.")
        self.first = int(first)

    def call(self, inputs):
        return inputs[:, : self.first], inputs[:, self.first :]

    def compute_output_shape(self, input_shape):
        rest = None if input_shape[1] is None else input_shape[1] - self.first
        return ((input_shape[0], self.first, *input_shape[2:]),
                (input_shape[0], rest, *input_shape[2:]))

    def get_config(self):
        return {**super().get_config(), "first": self.first}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PulseTrend(keras.layers.Layer):
    """One small summary per pulse of its departure from the references, history then sample.

    `call([history [b, N, T, F], pulse [b, T, F], typical [b, T, F]])`: each of the N history
    pulses and the sample, minus the reduced references `typical`, pooled over the steps by
    mean and max -> `[b, N + 1, 2F]`, oldest first and the sample last: the sequence in which
    a precursor growing over several pulses is a trend. It has no weights.

    Example:

    >>> trend = PulseTrend()([keras.ops.ones((1, 2, 4, 3)), keras.ops.ones((1, 4, 3)),
    ...                       keras.ops.zeros((1, 4, 3))])
    >>> tuple(trend.shape)
    (1, 3, 6)
    """

    def call(self, inputs):
        history, pulse, typical = inputs
        pulses = ops.concatenate([history, ops.expand_dims(pulse, axis=1)], axis=1)
        difference = pulses - ops.expand_dims(typical, axis=1)
        return ops.concatenate([ops.mean(difference, axis=2), ops.max(difference, axis=2)],
                               axis=-1)

    def compute_output_shape(self, input_shape):
        history_shape, _, _ = input_shape
        steps = None if history_shape[1] is None else history_shape[1] + 1
        return (history_shape[0], steps, 2 * history_shape[-1])
