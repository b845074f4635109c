"""Backup and resume of the multi-worker training loop: each worker's per-epoch backup folder.

A backup folder appears complete or not at all; a rerun resumes from the newest epoch all workers hold.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from training.callbacks import MONITOR
from utils.run_folder import atomic_write_json

__all__ = ["BACKUPS_KEPT", "LoopState", "completed_backups"]

BACKUPS_KEPT = 2  # workers' backups can differ by one epoch after a kill; keep both


@dataclass
class LoopState:
    """What a resumed run needs besides the weights: where it was and what it had seen.

    `best`/`stop_wait` follow keras.callbacks.EarlyStopping (min_delta 0), `lr_best`/`lr_wait`
    follow keras.callbacks.ReduceLROnPlateau (min_delta 1e-4, no cooldown).
    """

    epoch: int = 0  # epochs completed
    best: float | None = None
    best_epoch: int = -1
    stop_wait: int = 0
    lr_best: float | None = None
    lr_wait: int = 0
    stopped: bool = False
    history: dict[str, list[float]] = field(default_factory=dict)

def format_value(value) -> str:
    return "n/a" if value is None else f"{value:.4g}"

def _backup_name(epoch: int) -> str:
    return f"epoch-{epoch:05d}"


def completed_backups(backup_dir: Path) -> list[int]:
    """Epoch numbers with a complete backup in `backup_dir` (oldest first)."""
    if not backup_dir.is_dir():
        return []
    epochs = []
    for path in backup_dir.glob("epoch-*"):
        suffix = path.name.removeprefix("epoch-")
        if suffix.isdigit() and (path / "state.json").is_file():
            epochs.append(int(suffix))
    return sorted(epochs)


def write_backup(backup_dir: Path, model, best_weights, state: LoopState) -> None:
    """Weights + optimizer, best weights and loop state after an epoch, as one directory rename.

    The directory appears complete or not at all; the oldest backups beyond BACKUPS_KEPT go.
    """
    backup_dir.mkdir(parents=True, exist_ok=True)
    final = backup_dir / _backup_name(state.epoch)
    tmp = backup_dir / f".{final.name}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    model.save_weights(tmp / "latest.weights.h5")  # model and optimizer variables
    np.savez(tmp / "best_weights.npz", *best_weights)
    atomic_write_json(tmp / "state.json", asdict(state))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for epoch in completed_backups(backup_dir)[:-BACKUPS_KEPT]:
        shutil.rmtree(backup_dir / _backup_name(epoch), ignore_errors=True)


def restore_backup(model, strategy, backup_dir: Path, logger) -> tuple[LoopState, list | None]:
    """The newest epoch every worker has a backup of, restored into `model`; else a fresh start.

    Workers back up one after another, so a kill can leave them one epoch apart; they agree on
    the newest epoch all of them hold (each keeps the last two).
    """
    import tensorflow as tf

    own = completed_backups(backup_dir)

    @tf.function
    def gather_newest():
        newest = strategy.run(lambda: tf.constant([own[-1] if own else 0], tf.int64))
        return strategy.gather(newest, axis=0)

    agreed = int(np.min(gather_newest().numpy()))
    if agreed == 0:
        return LoopState(), None
    if agreed not in own:
        raise RuntimeError(
            f"{backup_dir}: the workers' newest common backup is epoch {agreed}, which this "
            f"worker no longer holds (it has {own}); delete the backup folders to start afresh."
        )
    folder = backup_dir / _backup_name(agreed)
    state = LoopState(**json.loads((folder / "state.json").read_text()))
    with np.load(folder / "best_weights.npz", allow_pickle=False) as stored:
        best_weights = [stored[f"arr_{i}"] for i in range(len(stored.files))]
    model.load_weights(folder / "latest.weights.h5")
    logger.info("resuming from %s: %d epoch(s) done, best %s %s", folder, state.epoch, MONITOR,
                format_value(state.best))
    return state, best_weights
