"""Tests for model.losses: focal loss values, serialisation, the config switch."""

import keras
import numpy as np
import pytest

from model.losses import BinaryFocalLoss, ContrastiveLoss, binary_focal_loss, make_loss
from tests.model.helpers import model_config

Y_TRUE = np.array([[1.0], [0.0], [1.0], [0.0]], "float32")
Y_PRED = np.array([[0.9], [0.2], [0.3], [0.6]], "float32")


def test_focal_loss_matches_hand_computed_value():
    # Per sample -alpha_t * (1 - p_t)**2 * ln(p_t), alpha = 0.25:
    #   y=1 p=0.9: 0.25 * 0.01 * 0.1053605 = 0.000263401
    #   y=0 p=0.2: 0.75 * 0.04 * 0.2231436 = 0.006694307
    #   y=1 p=0.3: 0.25 * 0.49 * 1.2039728 = 0.147486670
    #   y=0 p=0.6: 0.75 * 0.36 * 0.9162907 = 0.247398500
    expected = (0.000263401 + 0.006694307 + 0.147486670 + 0.247398500) / 4
    loss = float(BinaryFocalLoss(alpha=0.25, gamma=2.0)(Y_TRUE, Y_PRED))
    assert loss == pytest.approx(expected, rel=1e-5)


def test_focal_loss_without_focusing_is_half_bce_at_alpha_half():
    focal = float(BinaryFocalLoss(alpha=0.5, gamma=0.0)(Y_TRUE, Y_PRED))
    bce = float(keras.losses.BinaryCrossentropy()(Y_TRUE, Y_PRED))
    assert focal == pytest.approx(0.5 * bce, rel=1e-5)


def test_focal_loss_is_finite_for_saturated_predictions():
    loss = BinaryFocalLoss()(np.array([[1.0], [0.0]]), np.array([[0.0], [1.0]]))
    assert np.isfinite(float(loss)) and float(loss) > 0


def test_focal_loss_config_round_trip_and_serialization():
    loss = binary_focal_loss(alpha=0.4, gamma=1.5)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(restored, BinaryFocalLoss)
    assert (restored.alpha, restored.gamma) == (0.4, 1.5)


@pytest.mark.parametrize("kwargs", [{"alpha": 1.5}, {"alpha": -0.1}, {"gamma": -1.0}])
def test_focal_loss_rejects_out_of_range_parameters(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        BinaryFocalLoss(**kwargs)


def test_make_loss_follows_config():
    assert isinstance(make_loss(model_config(loss="bce")), keras.losses.BinaryCrossentropy)
    focal = make_loss(model_config(loss="focal", focal_alpha=0.3, focal_gamma=1.0))
    assert isinstance(focal, BinaryFocalLoss) and (focal.alpha, focal.gamma) == (0.3, 1.0)
    contrastive = make_loss(model_config(loss="contrastive", contrastive_margin=0.5))
    assert isinstance(contrastive, ContrastiveLoss) and contrastive.margin == 0.5
    with pytest.raises(ValueError, match="bce.*contrastive"):
        make_loss(model_config(loss="hinge"))


def test_contrastive_loss_matches_hand_computed_value():
    # distance = score * 2; per sample 0.5 * d**2 (normal) or 0.5 * max(0, 1 - d)**2 (errant):
    #   y=0 s=0.1 d=0.2: 0.5 * 0.04         = 0.02
    #   y=1 s=0.1 d=0.2: 0.5 * 0.8**2       = 0.32
    #   y=1 s=0.7 d=1.4: beyond the margin  = 0
    #   y=0 s=0.3 d=0.6: 0.5 * 0.36         = 0.18
    y_true = np.array([[0.0], [1.0], [1.0], [0.0]], "float32")
    y_pred = np.array([[0.1], [0.1], [0.7], [0.3]], "float32")
    loss = float(ContrastiveLoss(margin=1.0)(y_true, y_pred))
    assert loss == pytest.approx((0.02 + 0.32 + 0.0 + 0.18) / 4, rel=1e-5)


def test_contrastive_loss_uses_margin_and_max_distance():
    # d = 0.25 * 4 = 1: errant pulse short of margin 1.5 by 0.5 -> 0.5 * 0.25
    loss = ContrastiveLoss(margin=1.5, max_distance=4.0)([[1.0]], [[0.25]])
    assert float(loss) == pytest.approx(0.125, rel=1e-6)


def test_contrastive_loss_serialization_and_bad_margin():
    restored = keras.losses.deserialize(keras.losses.serialize(ContrastiveLoss(margin=0.7)))
    assert isinstance(restored, ContrastiveLoss) and restored.margin == pytest.approx(0.7)
    with pytest.raises(ValueError, match="margin"):
        ContrastiveLoss(margin=2.5)
    with pytest.raises(ValueError, match="margin"):
        ContrastiveLoss(margin=0.0)
