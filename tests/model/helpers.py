"""Tiny configs and data for the model tests (duck-typed like parser.configs dataclasses)."""

from __future__ import annotations

import types

import numpy as np

TINY_MODEL = dict(
    name="sns_cnn_lstm",
    conv_filters=(4, 4),
    conv_kernels=(5, 3),
    conv_strides=(4, 4),
    lstm_units=4,
    bidirectional=True,
    attention=True,
    settings_units=(4,),
    head_units=(4,),
    dropout=0.2,
    loss="bce",
    focal_alpha=0.25,
    focal_gamma=2.0,
    per_trace=False,
)

# The sizes of configs/default.yaml's model section.
DEFAULT_MODEL = dict(
    TINY_MODEL,
    input_pool=10,
    global_pooling=True,
    conv_filters=(16, 32, 32),
    conv_kernels=(7, 5, 5),
    conv_strides=(2, 2, 2),
    lstm_units=32,
    settings_units=(32,),
    head_units=(32,),
)


def model_config(**changes) -> types.SimpleNamespace:
    """A tiny model config; keyword arguments replace fields."""
    return types.SimpleNamespace(**{**TINY_MODEL, **changes})


def train_config(**changes) -> types.SimpleNamespace:
    return types.SimpleNamespace(
        **{"optimizer": "adam", "learning_rate": 1e-3, "momentum": 0.9, **changes}
    )


def random_batch(model, n: int, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Random float32 inputs for exactly the model's inputs, and balanced 0/1 labels."""
    rng = np.random.default_rng(seed)
    x = {
        name: rng.normal(size=(n, *tensor.shape[1:])).astype("float32")
        for name, tensor in model.input.items()
    }
    y = (np.arange(n) % 2).astype("float32").reshape(n, 1)
    return x, y
