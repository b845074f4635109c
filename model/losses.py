"""Loss functions for the beamwatch models and the config switch between them.

Errant-beam precursors are rare; focal loss down-weights the many easy normal pulses so the
few hard ones drive the gradient. `BinaryFocalLoss` is registered so saved models load with
`safe_mode=True`.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

LOSSES = ("bce", "focal")


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


def binary_focal_loss(alpha: float = 0.25, gamma: float = 2.0) -> BinaryFocalLoss:
    """Returns a `BinaryFocalLoss` with the given `alpha` and `gamma`."""
    return BinaryFocalLoss(alpha=alpha, gamma=gamma)


def make_loss(model_config) -> keras.losses.Loss:
    """Returns the loss named by `model_config.loss` ("bce" or "focal", with focal_alpha/gamma)."""
    name = model_config.loss
    if name == "bce":
        return keras.losses.BinaryCrossentropy(name="bce")
    if name == "focal":
        return BinaryFocalLoss(alpha=model_config.focal_alpha, gamma=model_config.focal_gamma)
    raise ValueError(f"model.loss: unknown loss {name!r}; expected one of {list(LOSSES)}.")
