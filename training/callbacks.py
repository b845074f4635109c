"""Callbacks of the train flow: a one-line-per-epoch log for batch jobs, and the standard set."""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

import keras

from training.resume import AtomicModelCheckpoint, SafeBackupAndRestore

MONITOR = "val_auc_pr"


class EpochLogLine(keras.callbacks.Callback):
    """Logs one line per epoch, for logs and SLURM output where a progress bar is noise."""

    def __init__(self, logger: logging.Logger, epochs: int):
        super().__init__()
        self.logger = logger
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        parts = [f"{k}={_fmt(v)}" for k, v in sorted(logs.items())]
        self.logger.info("epoch %d/%d %s", epoch + 1, self.epochs, " ".join(parts))


def _fmt(value) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    return "nan" if math.isnan(value) else f"{value:.4g}"


def best_checkpoint_path(run_dir: Path) -> Path:
    """Where the best-so-far model is checkpointed during training."""
    return run_dir / "checkpoints" / "best.keras"  # not under backup/: BackupAndRestore deletes that


def read_history_csv(path: Path) -> dict[str, list[float]]:
    """history.csv as CSVLogger wrote it, one list per metric ({} when there is none)."""
    if not path.exists():
        return {}
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    keys = [k for k in (rows[0] if rows else {}) if k != "epoch"]
    return {k: [float(row[k]) for row in rows] for k in keys}


def best_so_far(run_dir: Path) -> float | None:
    """The best val_auc_pr of a run being resumed (None for a fresh run).

    A resumed ModelCheckpoint starts from this instead of -inf, so the first epoch after a
    resume cannot overwrite a better best checkpoint.
    """
    if not (run_dir / "backup").exists():
        return None
    values = [v for v in read_history_csv(run_dir / "history.csv").get(MONITOR, [])
              if math.isfinite(v)]
    return max(values) if values else None


def standard_callbacks(
    run_dir: Path,
    train_config,
    logger: logging.Logger,
    *,
    is_chief: bool = True,
    log_epochs: bool = True,
) -> list[keras.callbacks.Callback]:
    """Early stopping on validation AUC-PR, LR reduction, best checkpoint, backup, CSV, TensorBoard.

    Non-chief workers keep their own backups but write nothing else into the run folder.
    """
    callbacks: list[keras.callbacks.Callback] = [
        keras.callbacks.EarlyStopping(
            monitor=MONITOR,
            mode="max",
            patience=train_config.early_stopping_patience,
            restore_best_weights=True,
        ),
        keras.callbacks.ReduceLROnPlateau(
            monitor=MONITOR,
            mode="max",
            patience=train_config.reduce_lr_patience,
            factor=train_config.reduce_lr_factor,
            min_lr=train_config.min_learning_rate,
        ),
    ]
    if is_chief:
        callbacks += [
            # The best checkpoint goes to a working file; the flow publishes model.keras
            # atomically at the end, so a kill mid-save never leaves a broken model.keras.
            AtomicModelCheckpoint(  # written whole or not at all (temporary file, rename)
                str(best_checkpoint_path(run_dir)), monitor=MONITOR, mode="max", save_best_only=True,
                initial_value_threshold=best_so_far(run_dir),
            ),
            # Atomic, free-space-checked backups that also keep the two callbacks' counters.
            SafeBackupAndRestore(str(run_dir / "backup"), stateful=callbacks[:2]),
            keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
        ]
        if train_config.tensorboard:
            callbacks.append(
                keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), write_graph=False)
            )
    if log_epochs:
        callbacks.append(EpochLogLine(logger, train_config.epochs))
    return callbacks
