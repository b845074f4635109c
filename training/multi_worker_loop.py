"""The multi-worker training loop: `fit_multi_worker`, the custom loop that stands in for
`model.fit` under MultiWorkerMirroredStrategy, with the effects of the train flow's callbacks.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from training.callbacks import MONITOR, EpochLogLine, best_checkpoint_path
from training.multi_worker_backup import LoopState, format_value, restore_backup, write_backup
from training.workers import WorkerInfo
from utils.run_folder import atomic_path, atomic_write_text

__all__ = ["LR_MIN_DELTA", "fit_multi_worker", "per_example_loss", "write_history_csv"]

LR_MIN_DELTA = 1e-4  # keras.callbacks.ReduceLROnPlateau's default


def fit_multi_worker(model, train_ds, val_ds, *, strategy, worker: WorkerInfo, config,
                     work_dir: Path, logger: logging.Logger) -> dict[str, list[float]]:
    """Trains `model` (built and compiled in `strategy.scope()`) on every worker; returns history.

    `train_ds`/`val_ds` yield `(inputs, label[, sample_weight])` batched with the global batch;
    each worker takes its slice of every batch (auto-shard policy DATA), so the datasets must
    give every worker the same order (`shuffle` seeded alike). The loss is the compiled loss
    averaged over the global batch. After each epoch: validation loss and AUC-PR over all
    workers, early stopping and learning-rate reduction on `val_auc_pr`, the best model saved to
    `best_checkpoint_path(work_dir)`, `history.csv` (chief), and a backup in
    `work_dir/backup/` that a rerun with the same folders resumes from. Every worker saves, into
    its own `work_dir` (so saving never waits on a collective only some workers reach). At the
    end the model holds the best epoch's weights, as with `restore_best_weights=True`.

    Returns the per-epoch lists `loss`, `auc_pr`, `val_loss`, `val_auc_pr`, `learning_rate`.
    """
    work_dir = Path(work_dir)
    backup_dir = work_dir / "backup"
    train_dist = strategy.experimental_distribute_dataset(_shard_by_data(train_ds))
    val_dist = strategy.experimental_distribute_dataset(_shard_by_data(val_ds))
    steps = _Steps(model, strategy, train_dist.element_spec, val_dist.element_spec)
    epoch_line = EpochLogLine(logger, config.epochs)

    state, best_weights = restore_backup(model, strategy, backup_dir, logger)
    while state.epoch < config.epochs and not state.stopped:
        epoch = state.epoch
        learning_rate = _learning_rate(model)
        loss, auc_pr = steps.train_epoch(train_dist)
        steps.sync_non_trainable()
        val_loss, val_auc_pr = steps.evaluate(val_dist)
        logs = {"loss": loss, "auc_pr": auc_pr, "val_loss": val_loss,
                "val_auc_pr": val_auc_pr, "learning_rate": learning_rate}
        for key, value in logs.items():
            state.history.setdefault(key, []).append(value)
        improved = _early_stopping(state, epoch, logs[MONITOR], config.early_stopping_patience)
        if improved or best_weights is None:
            best_weights = model.get_weights()
        if improved:
            _save_model(model, best_checkpoint_path(work_dir))
        _reduce_lr_on_plateau(state, model, logs[MONITOR], config, logger)
        state.epoch = epoch + 1
        # The backup first: history.csv must never list an epoch a resume cannot start after
        # (a kill between the two used to leave history one epoch ahead of the backup).
        write_backup(backup_dir, model, best_weights, state)
        if worker.is_chief:
            write_history_csv(work_dir / "history.csv", state.history)
        epoch_line.on_epoch_end(epoch, logs)
        if state.stopped:
            logger.info("early stopping after epoch %d: no better %s for %d epochs (best %s, "
                        "epoch %d)", epoch + 1, MONITOR, config.early_stopping_patience,
                        format_value(state.best), state.best_epoch + 1)
    if best_weights is not None:
        model.set_weights(best_weights)
        _save_model(model, best_checkpoint_path(work_dir))
    return state.history


def _shard_by_data(dataset):
    """Each worker takes its slice of every global batch (arrays or a generator: no files to split)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


class _Steps:
    """The compiled per-replica steps: train, evaluate, and the end-of-epoch variable sync."""

    def __init__(self, model, strategy, train_spec, val_spec):
        import keras
        import tensorflow as tf

        self.model = model
        self.strategy = strategy
        self.loss_fn = per_example_loss(model.loss)
        with strategy.scope():
            self.train_auc = keras.metrics.AUC(curve="PR", name="auc_pr")
            self.val_auc = keras.metrics.AUC(curve="PR", name="val_auc_pr")
            if not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)
        # Float state that each replica updates alone (BatchNormalization's moving statistics).
        self.replica_local = [v for v in model.non_trainable_variables
                              if v.dtype in ("float16", "bfloat16", "float32", "float64")]
        # The distributed datasets' element specs have an unknown batch size, so one trace serves
        # full, partial and empty per-replica batches alike.
        self._train_step = tf.function(self._distributed_train_step, input_signature=[train_spec])
        self._eval_step = tf.function(self._distributed_eval_step, input_signature=[val_spec])
        self._sync = tf.function(self._distributed_sync)

    def train_epoch(self, dataset) -> tuple[float, float]:
        """One pass over `dataset`; the mean training loss and AUC-PR over all workers."""
        self.train_auc.reset_state()
        loss_sum, count = 0.0, 0.0
        for batch in dataset:
            loss, n = self._train_step(batch)
            loss_sum, count = loss_sum + loss * n, count + n
        return _ratio(loss_sum, count), float(self.train_auc.result())

    def evaluate(self, dataset) -> tuple[float, float]:
        """Validation loss and AUC-PR over every worker's part of `dataset`."""
        self.val_auc.reset_state()
        loss_sum, count = 0.0, 0.0
        for batch in dataset:
            batch_loss_sum, n = self._eval_step(batch)
            loss_sum, count = loss_sum + batch_loss_sum, count + n
        return _ratio(loss_sum, count), float(self.val_auc.result())

    def sync_non_trainable(self) -> None:
        """Averages replica-local statistics across replicas, so every worker saves one model."""
        if self.replica_local:
            self._sync()

    # -- inside tf.function ------------------------------------------------------------------

    def _distributed_train_step(self, batch):
        import tensorflow as tf

        loss, n_global = self.strategy.run(self._replica_train_step, args=(batch,))
        return (self.strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None),
                self.strategy.experimental_local_results(n_global)[0])

    def _replica_train_step(self, batch):
        import tensorflow as tf

        model = self.model
        x, y, weight = _unpack(batch)
        context = tf.distribute.get_replica_context()
        n_local = tf.shape(y)[0]
        n_global = context.all_reduce(tf.distribute.ReduceOp.SUM, tf.cast(n_local, tf.float32))
        variables = model.trainable_variables

        def forward_backward():
            with tf.GradientTape() as tape:
                scores = model(x, training=True)
                loss = tf.reduce_sum(self.loss_fn(y, scores, weight)) / n_global
                if model.losses:  # regularisation: once per global step, split over replicas
                    loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
                scaled = model.optimizer.scale_loss(loss)
            grads = tape.gradient(scaled, variables)
            grads = [tf.zeros_like(v) if g is None else g for v, g in zip(grads, variables,
                                                                         strict=True)]
            return loss, tf.cast(scores, tf.float32), grads

        def empty_slice():
            # A worker left without samples by the epoch's last, partial batch still joins the
            # gradient all-reduce, but must not run BatchNormalization on 0 samples (NaN stats).
            return (tf.constant(0.0), tf.zeros([0, 1], tf.float32),
                    [tf.zeros_like(v) for v in variables])

        loss, scores, grads = tf.cond(n_local > 0, forward_backward, empty_slice)
        model.optimizer.apply_gradients(zip(grads, variables, strict=True))
        self.train_auc.update_state(y, scores)
        return loss, n_global

    def _distributed_eval_step(self, batch):
        import tensorflow as tf

        loss_sum, n = self.strategy.run(self._replica_eval_step, args=(batch,))
        return (self.strategy.reduce(tf.distribute.ReduceOp.SUM, loss_sum, axis=None),
                self.strategy.reduce(tf.distribute.ReduceOp.SUM, n, axis=None))

    def _replica_eval_step(self, batch):
        import tensorflow as tf

        x, y, weight = _unpack(batch)
        n_local = tf.shape(y)[0]
        scores = tf.cond(
            n_local > 0,
            lambda: tf.cast(self.model(x, training=False), tf.float32),
            lambda: tf.zeros([0, 1], tf.float32),
        )
        self.val_auc.update_state(y, scores)
        return tf.reduce_sum(self.loss_fn(y, scores, weight)), tf.cast(n_local, tf.float32)

    def _distributed_sync(self):
        self.strategy.run(self._replica_sync)

    def _replica_sync(self):
        import tensorflow as tf

        context = tf.distribute.get_replica_context()
        means = context.all_reduce(tf.distribute.ReduceOp.MEAN,
                                   [tf.identity(v) for v in self.replica_local])
        for variable, mean in zip(self.replica_local, means, strict=True):
            variable.assign(mean)


def per_example_loss(loss):
    """`fn(y, scores, sample_weight) -> [batch]` from a compiled loss (object, function or name).

    Keras's own reduction is switched off so the caller can average over the global batch.
    """
    import keras

    if isinstance(loss, str):
        loss = keras.losses.get(loss)
    if isinstance(loss, keras.losses.Loss):
        unreduced = loss.__class__.from_config({**loss.get_config(), "reduction": None})
        return lambda y, scores, weight: unreduced(y, scores, sample_weight=weight)
    if callable(loss):
        def weighted(y, scores, weight):
            values = loss(y, scores)
            return values if weight is None else values * keras.ops.cast(weight, values.dtype)
        return weighted
    raise ValueError(f"model.loss: expected a keras loss, a loss function or a name; received "
                     f"{loss!r}. Compile the model (model.compile_model) before training.")


def _unpack(batch):
    if len(batch) == 3:
        return batch
    x, y = batch
    return x, y, None


def _ratio(total, count) -> float:
    count = float(count)
    return float(total) / count if count else float("nan")


def _learning_rate(model) -> float:
    import keras

    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def _early_stopping(state: LoopState, epoch: int, current: float, patience: int) -> bool:
    """EarlyStopping(mode="max") bookkeeping; True when `current` is a new best (NaN never is)."""
    state.stop_wait += 1
    if math.isfinite(current) and (state.best is None or current > state.best):
        state.best, state.best_epoch, state.stop_wait = current, epoch, 0
        return True
    if state.stop_wait >= patience and epoch > 0:
        state.stopped = True
    return False


def _reduce_lr_on_plateau(state: LoopState, model, current: float, config, logger) -> None:
    """ReduceLROnPlateau(mode="max") bookkeeping; lowers the optimizer's learning rate."""
    if math.isfinite(current) and (state.lr_best is None or
                                   current - LR_MIN_DELTA > state.lr_best):
        state.lr_best, state.lr_wait = current, 0
        return
    state.lr_wait += 1
    if state.lr_wait < config.reduce_lr_patience:
        return
    old = _learning_rate(model)
    if old > np.float32(config.min_learning_rate):
        new = max(old * config.reduce_lr_factor, config.min_learning_rate)
        model.optimizer.learning_rate = new
        logger.info("%s has not improved for %d epochs: learning rate %.3g -> %.3g", MONITOR,
                    state.lr_wait, old, new)
        state.lr_wait = 0



def write_history_csv(path: Path, history: Mapping[str, list[float]]) -> None:
    """history.csv as keras.callbacks.CSVLogger writes it: `epoch` then the metrics, sorted."""
    keys = sorted(history)
    n_epochs = len(history[keys[0]]) if keys else 0
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["epoch", *keys])
    for epoch in range(n_epochs):
        writer.writerow([epoch, *(history[k][epoch] for k in keys)])
    atomic_write_text(path, buf.getvalue())


def _save_model(model, path: Path) -> None:
    """`model.save` to a temporary file beside `path`, then renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)


