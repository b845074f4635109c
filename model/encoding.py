"""Encode once: a reference model cut into its per-pulse encoder and the head that compares.

A reference model (`sns_reference_cnn_lstm`) runs one shared front end (`SiameseEncoder`) over
the pulse and each of its K references. Live, each reference was itself a pulse scored a few
milliseconds earlier, so its features can be kept and reused: the encoder runs once per pulse and
the head takes the stored features. In inference the encoder's batch normalisation uses its
moving statistics, so a pulse encoded alone gives the features it gets inside the K + 1 batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras

from model.layers import SiameseEncoder


@dataclass(frozen=True)
class EncodeOnce:
    """The two halves of a reference model.

    `encoder`: `[b, L, C]` -> features `[b, *feature_shape]`.
    `head`: `[pulse_features [b, ...], reference_features [b, K, ...]]` followed by the model's
    other inputs (`other_inputs`, e.g. "settings") in that order -> the model's score.
    """

    encoder: keras.Model
    head: keras.Model
    other_inputs: tuple[str, ...]

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.encoder.output.shape[1:])


def split_encode_once(model: keras.Model) -> EncodeOnce | None:
    """`EncodeOnce` of a functional model with one unconditioned `SiameseEncoder` over its
    "trace" and "reference" inputs; None for any other model (it is then scored whole).

    A conditioned encoder (one that also takes the settings, `sns_conditional_siamese`) is not
    split: a reference's features would depend on the settings of the pulse it serves.
    The halves hold a copy of the model's weights; the model itself is left as it is.
    """
    if not _one_plain_siamese(model):
        return None
    # Cut a copy: building a model from the original's inner tensors adds nodes to its graph,
    # after which Keras can no longer save it.
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    model = copy
    layer = next(layer for layer in model.layers if isinstance(layer, SiameseEncoder))
    names = {t.name.split(":")[0]: t for t in model.inputs}
    trace_in, reference_in = layer.input
    if names.get("trace") is not trace_in or names.get("reference") is not reference_in:
        return None
    other = tuple(n for n in names if n not in ("trace", "reference"))
    pulse_features, reference_features = layer.output
    try:
        head = keras.Model([pulse_features, reference_features, *(names[n] for n in other)],
                           model.output, name=f"{model.name}_head")
    except ValueError:  # the trace reaches the score by another path too: no clean cut
        return None
    return EncodeOnce(layer.layer, head, other)


def _one_plain_siamese(model: keras.Model) -> bool:
    siamese = [layer for layer in model.layers if isinstance(layer, SiameseEncoder)]
    return len(siamese) == 1 and len(siamese[0].input) == 2
