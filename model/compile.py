"""Compiles a beamwatch model: optimizer and loss from the config, the project's metrics.

AUC-PR is the metric to watch (early stopping monitors `val_auc_pr`): with rare errant
pulses, ROC AUC and accuracy look good even for a useless model. A distance-scored Siamese
model keeps the same metrics: its score is monotone in the distance, so the AUCs are those of
the distance; only the precision/recall threshold moves to half the contrastive margin.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from model.layers import ReferenceDistanceScore
from model.losses import ContrastiveLoss, make_loss

OPTIMIZERS = ("adam", "sgd")


def default_metrics(threshold: float = 0.5) -> list[keras.metrics.Metric]:
    """Fresh metric objects: auc_pr, auc_roc, and precision, recall at `threshold`."""
    return [
        keras.metrics.AUC(curve="PR", name="auc_pr"),
        keras.metrics.AUC(curve="ROC", name="auc_roc"),
        keras.metrics.Precision(thresholds=threshold, name="precision"),
        keras.metrics.Recall(thresholds=threshold, name="recall"),
    ]


def make_optimizer(train_config) -> keras.optimizers.Optimizer:
    """Adam or SGD (with `momentum`) at `train_config.learning_rate`."""
    name = train_config.optimizer
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=train_config.learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(
            learning_rate=train_config.learning_rate, momentum=train_config.momentum
        )
    raise ValueError(
        f"train.optimizer: unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}."
    )


def compile_model(
    model: keras.Model,
    model_config,
    train_config,
    *,
    metrics: Sequence[keras.metrics.Metric] | None = None,
    jit_compile: bool | str = "auto",
) -> keras.Model:
    """Compiles `model` in place and returns it.

    Args:
        model: a model from `build_model`.
        model_config: supplies the loss (`loss`, `focal_alpha`, `focal_gamma`).
        train_config: supplies the optimizer (`optimizer`, `learning_rate`, `momentum`).
        metrics: metrics to use instead of `default_metrics()`.
        jit_compile: passed to `keras.Model.compile` ("auto" lets Keras use XLA).

    With `model_config.loss == "contrastive"` the model must score by distance (its "score"
    layer a `ReferenceDistanceScore`, as `sns_conditional_siamese`), and the default precision
    and recall count a pulse as errant beyond half the margin.

    Call it inside the same `tf.distribute` strategy scope that built the model.
    """
    loss = make_loss(model_config)
    threshold = 0.5
    if isinstance(loss, ContrastiveLoss):
        score = next((layer for layer in model.layers if layer.name == "score"), None)
        if not isinstance(score, ReferenceDistanceScore):
            raise ValueError(
                f"model.loss: 'contrastive' needs a model that scores by distance to reference "
                f"pulses (sns_conditional_siamese); model {model.name!r} outputs a probability. "
                "Use loss 'bce' or 'focal' with it."
            )
        threshold = loss.distance_threshold_score()
    model.compile(
        optimizer=make_optimizer(train_config),
        loss=loss,
        metrics=list(metrics) if metrics is not None else default_metrics(threshold),
        jit_compile=jit_compile,
    )
    return model
