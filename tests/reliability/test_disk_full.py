"""A full disk or a failing write: one line naming the path, earlier artefacts intact."""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections import namedtuple

import keras
import numpy as np
import pytest

from training import resume
from training.resume import SafeBackupAndRestore
from utils import run_folder
from utils.run_folder import atomic_write_json


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_during_an_atomic_write_names_the_file_and_keeps_the_old_one(
        tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    atomic_write_json(path, {"old": 1})
    monkeypatch.setattr(run_folder.os, "fsync", _enospc)
    with pytest.raises(OSError, match=rf"cannot write {path}: No space left on device; "
                                      "the previous file is intact") as info:
        atomic_write_json(path, {"new": 2})
    assert info.value.errno == errno.ENOSPC
    assert json.loads(path.read_text()) == {"old": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left


def _model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(0.01), "mse")
    model.optimizer.build(model.trainable_variables)
    return model


def test_backup_refuses_when_the_disk_is_full_and_keeps_the_last_one(tmp_path, monkeypatch):
    model = _model()
    backup = SafeBackupAndRestore(str(tmp_path / "backup"))
    backup.set_model(model)
    backup.on_epoch_end(0)
    weights = tmp_path / "backup" / "latest.weights.h5"
    saved = weights.read_bytes()
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(resume.shutil, "disk_usage", lambda p: usage(10**9, 10**9, 1000))
    model.layers[0].kernel.assign(np.ones((3, 1), np.float32))
    with pytest.raises(OSError, match=r"not enough free space to back up epoch 2.*intact") as info:
        backup.on_epoch_end(1)
    assert str(tmp_path / "backup") in str(info.value)
    assert weights.read_bytes() == saved
    assert sorted(p.name for p in weights.parent.iterdir()) == [
        "latest.weights.h5", "training_metadata.json"]


def test_failing_weight_write_is_named_and_leaves_no_partial_file(tmp_path, monkeypatch):
    model = _model()
    backup = SafeBackupAndRestore(str(tmp_path / "backup"))
    backup.set_model(model)
    backup.on_epoch_end(0)
    saved = (tmp_path / "backup" / "latest.weights.h5").read_bytes()

    def half_written(filepath, overwrite=True):
        with open(filepath, "wb") as handle:
            handle.write(b"\x89HDF\r\n")
        _enospc()

    monkeypatch.setattr(model, "save_weights", half_written)
    with pytest.raises(OSError, match="cannot write the training backup.*previous backup is intact"):
        backup.on_epoch_end(1)
    assert (tmp_path / "backup" / "latest.weights.h5").read_bytes() == saved
    assert not list((tmp_path / "backup").glob(".tmp-*"))


def test_damaged_backup_is_named_on_resume(tmp_path):
    (tmp_path / "backup").mkdir()
    (tmp_path / "backup" / "latest.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\ntruncated")
    backup = SafeBackupAndRestore(str(tmp_path / "backup"))
    backup.set_model(_model())
    with pytest.raises(RuntimeError, match=r"training backup in .*backup cannot be read.*remove"):
        backup.on_train_begin()


def test_callback_counters_and_learning_rate_survive_a_resume(tmp_path):
    model = _model()
    stop = keras.callbacks.EarlyStopping(monitor="loss", patience=5)
    plateau = keras.callbacks.ReduceLROnPlateau(monitor="loss", patience=2)
    backup = SafeBackupAndRestore(str(tmp_path / "backup"), stateful=[stop, plateau])
    for cb in (stop, plateau, backup):
        cb.set_model(model)
    stop.wait, stop.best, plateau.wait, plateau.cooldown_counter = 3, 0.25, 1, 2
    model.optimizer.learning_rate.assign(0.00125)
    backup.on_epoch_end(3)

    fresh = _model()
    stop2 = keras.callbacks.EarlyStopping(monitor="loss", patience=5)
    plateau2 = keras.callbacks.ReduceLROnPlateau(monitor="loss", patience=2)
    backup2 = SafeBackupAndRestore(str(tmp_path / "backup"), stateful=[stop2, plateau2])
    for cb in (stop2, plateau2, backup2):
        cb.set_model(fresh)
        cb.on_train_begin()  # the reset Keras does at the start of fit, then the restore
    assert (stop2.wait, stop2.best) == (3, 0.25)
    assert (plateau2.wait, plateau2.cooldown_counter) == (1, 2)
    assert float(fresh.optimizer.learning_rate) == pytest.approx(0.00125)
    assert fresh._initial_epoch == 4
    shutil.rmtree(tmp_path / "backup")


def test_checkpoint_write_failure_keeps_the_previous_best(tmp_path, monkeypatch):
    from training.resume import AtomicModelCheckpoint

    path = tmp_path / "checkpoints" / "best.keras"
    checkpoint = AtomicModelCheckpoint(str(path), monitor="loss", mode="min", save_best_only=True)
    model = _model()
    checkpoint.set_model(model)
    checkpoint.on_epoch_end(0, {"loss": 1.0})
    saved = path.read_bytes()

    def half_written(filepath, overwrite=True):
        with open(filepath, "wb") as handle:
            handle.write(b"PK\x03\x04")
        _enospc()

    monkeypatch.setattr(model, "save", half_written)
    with pytest.raises(OSError, match=rf"cannot write {path}: No space left on device"):
        checkpoint.on_epoch_end(1, {"loss": 0.5})
    assert path.read_bytes() == saved
    assert [p.name for p in path.parent.iterdir()] == ["best.keras"]


def test_cache_shard_is_refused_when_the_disk_cannot_hold_it(tmp_path, monkeypatch):
    from data_preparation import trace_cache
    from data_preparation.data_loader import load_pulses
    from tests.data_preparation import builders as b

    root = tmp_path / "archive"
    b.small_archive(root)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(trace_cache.shutil, "disk_usage", lambda p: usage(10**9, 10**9, 1000))
    with pytest.raises(OSError, match=r"not enough free space for a new cache shard.*unchanged"):
        load_pulses(b.data_config(root, cache_dir=str(tmp_path / "cache")), progress=False)
    (folder,) = (tmp_path / "cache").iterdir()
    assert not list(folder.glob("shard-*")) and not (folder / "index.h5").exists()
