"""The train flow's callbacks: a resumed run keeps its best checkpoint."""

from __future__ import annotations

import types

import keras
import numpy as np

from training.callbacks import (
    MONITOR,
    best_checkpoint_path,
    best_so_far,
    read_history_csv,
    standard_callbacks,
)

TRAIN = types.SimpleNamespace(early_stopping_patience=3, reduce_lr_patience=2,
                              reduce_lr_factor=0.5, min_learning_rate=1e-5, epochs=4,
                              tensorboard=False)


def write_history(run_dir, values):
    lines = ["epoch,loss,val_auc_pr"] + [f"{i},0.5,{v}" for i, v in enumerate(values)]
    (run_dir / "history.csv").write_text("\n".join(lines) + "\n")


def test_history_csv_reads_back_as_lists(tmp_path):
    write_history(tmp_path, [0.25, 0.75])
    assert read_history_csv(tmp_path / "history.csv") == {"loss": [0.5, 0.5],
                                                         "val_auc_pr": [0.25, 0.75]}
    assert read_history_csv(tmp_path / "missing.csv") == {}


def test_best_so_far_only_for_a_run_being_resumed(tmp_path):
    write_history(tmp_path, [0.4, 0.9, 0.6])
    assert best_so_far(tmp_path) is None  # no backup/: a fresh run
    (tmp_path / "backup").mkdir()
    assert best_so_far(tmp_path) == 0.9


def test_resumed_checkpoint_does_not_overwrite_a_better_best(tmp_path):
    write_history(tmp_path, [0.4, 0.9])
    (tmp_path / "backup").mkdir()
    callbacks = standard_callbacks(tmp_path, TRAIN, logger=None, log_epochs=False)
    (checkpoint,) = [cb for cb in callbacks if isinstance(cb, keras.callbacks.ModelCheckpoint)]
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(loss="mse")
    checkpoint.set_model(model)
    checkpoint.on_epoch_end(2, {MONITOR: 0.7, "loss": 0.1})  # worse than 0.9 before the kill
    assert not best_checkpoint_path(tmp_path).exists()
    checkpoint.on_epoch_end(3, {MONITOR: 0.95, "loss": 0.1})
    assert best_checkpoint_path(tmp_path).exists()
    assert np.isclose(checkpoint.best, 0.95)
