"""A BackupAndRestore that survives full disks and brings back the callbacks' state too.

Keras' own callback writes `backup/latest.weights.h5` in place: a kill or a full disk in the
middle leaves a truncated file that then blocks every resume with an HDF5 error naming
nothing. This one checks the free space first, writes the weights and the metadata to
temporary files and renames them over the old ones (the previous backup stays whole until the
new one is complete), and names the file in every error.

The weights file holds the model and the optimizer (its step count and learning rate, so a
reduced learning rate survives). The metadata adds what Keras does not keep: the counters of
EarlyStopping and ReduceLROnPlateau (epochs without improvement, best value, cool-down), so a
resumed run stops and lowers its learning rate at the same epochs as an uninterrupted one, and
the state of the layers' random generators (dropout masks). With the training data shuffled
per (seed, epoch) (`make_dataset(epochs=...)`), a deterministic run resumes bit-identically.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import keras
import numpy as np

# The callback attributes that carry state from one epoch to the next.
_STATE = {
    "EarlyStopping": ("wait", "best", "stopped_epoch", "best_epoch"),
    "ReduceLROnPlateau": ("wait", "best", "cooldown_counter"),
}
_MARGIN_BYTES = 1 << 20


class SafeBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` with atomic writes, a free-space check and callback state.

    Args:
        backup_dir: the backup folder (removed when training ends, as Keras does).
        stateful: callbacks whose counters are saved and restored (EarlyStopping,
            ReduceLROnPlateau); others are ignored.
    """

    def __init__(self, backup_dir: str, stateful=()):
        super().__init__(backup_dir)
        self.stateful = [cb for cb in stateful if type(cb).__name__ in _STATE]

    # -- saving ---------------------------------------------------------------------------

    def _save_model(self):
        folder = Path(self.backup_dir)
        folder.mkdir(parents=True, exist_ok=True)
        weights = Path(self._weights_path)
        needed = self._expected_bytes(weights)
        free = shutil.disk_usage(folder).free
        if free < needed:
            raise OSError(errno.ENOSPC, f"not enough free space to back up epoch "
                          f"{self._current_epoch} ({needed} bytes needed, {free} free); the "
                          "previous backup is intact", str(folder))
        tmp = folder / f".tmp-{os.getpid()}.weights.h5"  # Keras wants the .weights.h5 suffix
        try:
            self.model.save_weights(str(tmp), overwrite=True)
            os.replace(tmp, weights)
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError | RuntimeError) and not isinstance(exc, KeyboardInterrupt):
                raise OSError(errno.EIO, f"cannot write the training backup ({exc}); the "
                              "previous backup is intact", str(weights)) from exc
            raise
        metadata = {"epoch": self._current_epoch, "batch": self._last_batch_seen,
                    "callbacks": {type(cb).__name__: _state_of(cb) for cb in self.stateful},
                    "seed_generators": [np.asarray(g.state.numpy()).tolist()
                                        for g in _seed_generators(self.model)]}
        meta = Path(self._training_metadata_path)
        tmp_meta = folder / f".tmp-{os.getpid()}.training_metadata.json"
        try:
            tmp_meta.write_text(json.dumps(metadata))
            os.replace(tmp_meta, meta)
        except OSError as exc:
            tmp_meta.unlink(missing_ok=True)
            raise OSError(exc.errno or errno.EIO, f"cannot write the training backup "
                          f"({exc.strerror or exc})", str(meta)) from exc

    def _expected_bytes(self, weights: Path) -> int:
        """Room for a new backup beside the old one: its size, or 4 bytes per variable."""
        if weights.exists():
            size = weights.stat().st_size
        else:
            variables = list(self.model.weights)
            if self.model.optimizer is not None:
                variables += list(self.model.optimizer.variables)
            size = sum(int(np.prod(v.shape)) * 4 for v in variables)  # 4 bytes per float32
        return size + _MARGIN_BYTES

    # -- restoring ------------------------------------------------------------------------

    def _load_model(self):
        try:
            super()._load_model()
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            raise RuntimeError(
                f"the training backup in {self.backup_dir} cannot be read "
                f"({type(exc).__name__}: {exc}); remove that folder to restart training from "
                "epoch 1".splitlines()[0]) from exc
        meta = Path(self._training_metadata_path)
        if not meta.exists():
            return
        try:
            saved = json.loads(meta.read_text())
            states = saved.get("callbacks", {})
            generators = saved.get("seed_generators", [])
        except (OSError, ValueError, AttributeError) as exc:
            raise RuntimeError(f"{meta} cannot be read ({exc}); remove {self.backup_dir} to "
                               "restart training from epoch 1") from exc
        current = _seed_generators(self.model)
        if len(generators) == len(current):  # dropout's random stream goes on where it was
            for generator, state in zip(current, generators, strict=True):
                generator.state.assign(np.asarray(state, dtype=generator.state.dtype))
        for cb in self.stateful:
            for name, value in states.get(type(cb).__name__, {}).items():
                if name in _STATE[type(cb).__name__] and value is not None:
                    setattr(cb, name, value)


def _seed_generators(model) -> list:
    """The random-number generators of the model's layers (dropout), in layer order.

    Their state is not part of the weights file; without it a resumed run would draw other
    dropout masks than an uninterrupted one.
    """
    return [generator for layer in model._flatten_layers()
            for generator in getattr(layer, "_seed_generators", [])]


def backup_epoch(backup_dir: str | os.PathLike) -> int:
    """The epoch a backup resumes at (0 without a backup or with a damaged one)."""
    try:
        return int(json.loads((Path(backup_dir) / "training_metadata.json").read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _state_of(callback) -> dict:
    """The JSON-ready counters of one callback (missing or non-numeric ones as None)."""
    state = {}
    for name in _STATE[type(callback).__name__]:
        value = getattr(callback, name, None)
        try:
            state[name] = None if value is None else float(value) if name == "best" else int(value)
        except (TypeError, ValueError):
            state[name] = None
    return state


class AtomicModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """`ModelCheckpoint` (whole models, `.keras`) that writes a temporary file and renames it.

    Keras writes the checkpoint in place; a kill or a full disk during the write would leave a
    truncated best model, which the flow publishes as model.keras and a resume relies on.
    """

    def _save_model(self, epoch, batch, logs):
        from utils.run_folder import atomic_path

        filepath = self._get_file_path(epoch, batch, logs)
        if self._should_save_model(epoch, batch, logs, filepath):
            Path(filepath).parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(filepath, suffix=".keras") as tmp:
                self.model.save(tmp, overwrite=True)
