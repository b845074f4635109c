"""Tiny configs and data for the model tests.

`model_config` is a namespace with every field of `parser.configs.ModelConfig` (its defaults,
then the tiny sizes, then the test's changes) but without the parser's validation, so a test
can hand a builder a value the parser would refuse and see the builder's own error.
"""

from __future__ import annotations

import dataclasses
import types

import numpy as np

from parser.configs import ModelConfig

TINY_MODEL = dict(
    name="sns_cnn_lstm",
    input_pool=1,
    global_pooling=False,
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
    siamese_filters=(4, 8),
    siamese_kernel=3,
    embedding_units=8,
)

# The sizes of configs/default.yaml's model section (the parser checks the file against these).
DEFAULT_MODEL = dataclasses.asdict(ModelConfig())


def model_config(**changes) -> types.SimpleNamespace:
    """A tiny model config; keyword arguments replace fields."""
    return types.SimpleNamespace(**{**dataclasses.asdict(ModelConfig()), **TINY_MODEL, **changes})


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
    if "history_count" in x:  # filled history slots: an integer from 0 to N
        slots = model.input["history"].shape[1]
        x["history_count"] = rng.integers(0, slots + 1, size=(n, 1)).astype("int32")
    y = (np.arange(n) % 2).astype("float32").reshape(n, 1)
    return x, y
