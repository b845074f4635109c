"""Loss functions for the beamwatch models and the config switch between them.

Errant-beam precursors are rare; focal loss down-weights the many easy normal pulses so the
few hard ones drive the gradient. The contrastive loss trains a Siamese model on distances to
reference pulses instead of probabilities. Both are registered so saved models load with
`safe_mode=True`.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from model.layers import UNIT_EMBEDDING_MAX_DISTANCE

LOSSES = ("bce", "focal", "contrastive")


@keras.saving.register_keras_serializable(package="beamwatch")
class BinaryFocalLoss(keras.losses.Loss):
    """Binary focal loss on probabilities: `-alpha_t * (1 - p_t)**gamma * log(p_t)`.

    `p_t` is the predicted probability of the true class and `alpha_t` is `alpha` for
    positives and `1 - alpha` for negatives (Lin et al., 2017). With `gamma=0` and
    `alpha=0.5` it is half the binary cross-entropy.

    Args:
        alpha: weight of the positive class, in [0, 1]. Defaults to 0.25.
        gamma: focusing exponent, >= 0. Defaults to 2.0.
        epsilon: predictions are clipped to `[epsilon, 1 - epsilon]` before the log.
            Defaults to 1e-7 (as Keras' binary cross-entropy).
        name, reduction, dtype: as for `keras.losses.Loss`.

    Example:

    >>> loss = BinaryFocalLoss(alpha=0.25, gamma=2.0)
    >>> float(loss([[1.0]], [[0.9]]))  # doctest: +ELLIPSIS
    0.0002634...
    """

    def __init__(
        self,
        alpha: float = 0.25,
        gamma: float = 2.0,
        epsilon: float = 1e-7,
        name: str = "binary_focal_loss",
        reduction: str = "sum_over_batch_size",
        dtype: Any = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"BinaryFocalLoss: alpha must be in [0, 1], received alpha={alpha}.")
        if float(gamma) < 0.0:
            raise ValueError(f"BinaryFocalLoss: gamma must be >= 0, received gamma={gamma}.")
        self.alpha = float(alpha)
        self.gamma = float(gamma)
        self.epsilon = float(epsilon)

    def call(self, y_true, y_pred):
        y_pred = ops.clip(ops.convert_to_tensor(y_pred), self.epsilon, 1.0 - self.epsilon)
        y_true = ops.cast(y_true, y_pred.dtype)
        p_t = y_true * y_pred + (1.0 - y_true) * (1.0 - y_pred)
        alpha_t = y_true * self.alpha + (1.0 - y_true) * (1.0 - self.alpha)
        loss = -alpha_t * ops.power(1.0 - p_t, self.gamma) * ops.log(p_t)
        return ops.mean(loss, axis=-1)

    def get_config(self):
        return {
            **super().get_config(),
            "alpha": self.alpha,
            "gamma": self.gamma,
            "epsilon": self.epsilon,
        }


@keras.saving.register_keras_serializable(package="beamwatch")
class ContrastiveLoss(keras.losses.Loss):
    """Contrastive loss on a distance score: `½ (1 - y) d² + ½ y max(0, margin - d)²`.

    `y` is 1 for an errant pulse and 0 for a normal one; `d` is the pulse's distance to its
    reference pulses, recovered from the model's score in [0, 1] as
    `d = score * max_distance` (the score of `ReferenceDistanceScore` is exactly
    `distance / max_distance`). Normal pulses are pulled onto their references; errant pulses
    are pushed at least `margin` away and cost nothing beyond it (Hadsell, Chopra and LeCun,
    2006).

    Args:
        margin: distance beyond which an errant pulse no longer adds to the loss, in
            (0, max_distance]. Defaults to 1.0.
        max_distance: the distance a score of 1 stands for. Defaults to 2.0 (unit-length
            embeddings).
        name, reduction, dtype: as for `keras.losses.Loss`.

    Example:

    >>> loss = ContrastiveLoss(margin=1.0)
    >>> round(float(loss([[0.0], [1.0]], [[0.1], [0.1]])), 4)  # d=0.2: (.5*.04 + .5*.64) / 2
    0.17
    """

    def __init__(
        self,
        margin: float = 1.0,
        max_distance: float = UNIT_EMBEDDING_MAX_DISTANCE,
        name: str = "contrastive_loss",
        reduction: str = "sum_over_batch_size",
        dtype: Any = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if not float(max_distance) > 0:
            raise ValueError(
                f"ContrastiveLoss: max_distance must be > 0, received max_distance={max_distance}."
            )
        if not 0.0 < float(margin) <= float(max_distance):
            raise ValueError(
                f"ContrastiveLoss: margin must be in (0, max_distance={max_distance}], received "
                f"margin={margin}; a larger margin can never be reached."
            )
        self.margin = float(margin)
        self.max_distance = float(max_distance)

    def distance_threshold_score(self) -> float:
        """The score half-way to the margin: the natural normal/errant decision point."""
        return 0.5 * self.margin / self.max_distance

    def call(self, y_true, y_pred):
        distance = ops.convert_to_tensor(y_pred) * self.max_distance
        y_true = ops.cast(y_true, distance.dtype)
        pull = (1.0 - y_true) * ops.square(distance)
        push = y_true * ops.square(ops.relu(self.margin - distance))
        return ops.mean(0.5 * (pull + push), axis=-1)

    def get_config(self):
        return {
            **super().get_config(),
            "margin": self.margin,
            "max_distance": self.max_distance,
        }


def binary_focal_loss(alpha: float = 0.25, gamma: float = 2.0) -> BinaryFocalLoss:
    """Returns a `BinaryFocalLoss` with the given `alpha` and `gamma`."""
    return BinaryFocalLoss(alpha=alpha, gamma=gamma)


def make_loss(model_config) -> keras.losses.Loss:
    """Returns the loss named by `model_config.loss`: "bce", "focal" (with focal_alpha and
    focal_gamma) or "contrastive" (with contrastive_margin)."""
    name = model_config.loss
    if name == "bce":
        return keras.losses.BinaryCrossentropy(name="bce")
    if name == "focal":
        return BinaryFocalLoss(alpha=model_config.focal_alpha, gamma=model_config.focal_gamma)
    if name == "contrastive":
        return ContrastiveLoss(margin=model_config.contrastive_margin)
    raise ValueError(f"model.loss: unknown loss {name!r}; expected one of {', '.join(LOSSES)}.")
