"""Tests for model.compile: optimizer, loss and metrics from the config."""

import keras
import pytest

from model import InputSpec, build_model, compile_model
from model.losses import BinaryFocalLoss
from tests.model.helpers import model_config, random_batch, train_config


@pytest.fixture(scope="module")
def tiny_model():
    return build_model(model_config(name="sns_cnn_lstm_trace_only"), InputSpec(32))


def test_compile_uses_adam_learning_rate_and_focal_loss(tiny_model):
    model = compile_model(tiny_model, model_config(loss="focal"), train_config(learning_rate=0.01))
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    assert isinstance(model.loss, BinaryFocalLoss)


def test_compile_uses_sgd_with_momentum(tiny_model):
    compile_model(tiny_model, model_config(), train_config(optimizer="sgd", momentum=0.5))
    assert isinstance(tiny_model.optimizer, keras.optimizers.SGD)
    assert tiny_model.optimizer.momentum == pytest.approx(0.5)


def test_compile_reports_the_project_metrics(tiny_model):
    compile_model(tiny_model, model_config(), train_config())
    x, y = random_batch(tiny_model, 4)
    results = tiny_model.evaluate(x, y, verbose=0, return_dict=True)
    assert set(results) == {"loss", "auc_pr", "auc_roc", "precision", "recall"}


def test_compile_rejects_unknown_optimizer(tiny_model):
    with pytest.raises(ValueError, match="train.optimizer.*'rmsprop'"):
        compile_model(tiny_model, model_config(), train_config(optimizer="rmsprop"))
