"""Multi-worker training: the MultiWorkerMirroredStrategy cluster, and a training loop for it.

`make_multi_worker_strategy` finds the cluster from SLURM (`SlurmClusterResolver`) or from a
`TF_CONFIG` in the environment passed in. `fit_multi_worker` replaces `model.fit`, which fails
under MultiWorkerMirroredStrategy with TF 2.21 / Keras 3.15 (keras-team/keras#20585): it is the
custom loop of the TensorFlow distributed-training guide with the effects of the train flow's
callbacks (early stopping with best-weights restore, learning-rate reduction on a plateau, best
checkpoint, history.csv, per-epoch backup and resume). Everything lives behind that one function
so it can go once upstream `fit` works again.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from training.callbacks import MONITOR, EpochLogLine, best_checkpoint_path
from training.workers import WorkerInfo
from utils.run_folder import atomic_path, atomic_write_json, atomic_write_text

log = logging.getLogger("beamwatch.multi_worker")

# The SLURM step variables SlurmClusterResolver reads from os.environ itself.
SLURM_RESOLVER_VARS = (
    "SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_NODELIST", "SLURM_STEP_TASKS_PER_NODE",
)
BACKUPS_KEPT = 2  # workers' backups can differ by one epoch after a kill; keep both
LR_MIN_DELTA = 1e-4  # keras.callbacks.ReduceLROnPlateau's default


# --------------------------------------------------------------------------------------------
# The cluster


def make_multi_worker_strategy(train_config, env: Mapping[str, str]):
    """A MultiWorkerMirroredStrategy for the cluster described by `env`, and this WorkerInfo.

    Under SLURM (`SLURM_JOB_ID` in `env`) the cluster comes from `SlurmClusterResolver`, with
    ports from `train_config.port_base`. That resolver reads the SLURM step variables from
    `os.environ` itself, so `env` must agree with `os.environ` on them (checked); on GPU nodes
    it also sets `CUDA_VISIBLE_DEVICES` in `os.environ` to give each task its GPUs. Otherwise
    the cluster comes from `env["TF_CONFIG"]` (read from `env` only).

    Call it before any other TensorFlow op in the process: the strategy starts this worker's
    collective server and configures the TensorFlow runtime.
    """
    import tensorflow as tf

    if env.get("SLURM_JOB_ID"):
        resolver = slurm_cluster_resolver(train_config, env)
    elif env.get("TF_CONFIG"):
        resolver = tf_config_cluster_resolver(
            env["TF_CONFIG"], n_gpus=len(tf.config.list_physical_devices("GPU"))
        )
    else:
        raise ValueError(
            "train.distribute=multi_worker needs a cluster: run under SLURM (srun, one task per "
            "worker) or set TF_CONFIG for every worker process. For one process use "
            "train.distribute=none or mirrored."
        )
    strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    worker = worker_info(resolver)
    if worker.is_chief != strategy.extended.should_checkpoint:
        raise RuntimeError(f"worker {worker.index}: chief election disagrees with TensorFlow's")
    log.info("multi-worker cluster %s; this is %s:%s (%s), %d replica(s) in sync",
             resolver.cluster_spec().as_dict(), resolver.task_type, resolver.task_id,
             worker.describe(), strategy.num_replicas_in_sync)
    return strategy, worker


def worker_info(resolver) -> WorkerInfo:
    """Index and count of this worker; a `chief` job, if any, is worker 0."""
    cluster = resolver.cluster_spec().as_dict()
    has_chief = "chief" in cluster
    count = len(cluster.get("chief", [])) + len(cluster.get("worker", []))
    if resolver.task_type == "chief":
        index = 0
    elif resolver.task_type == "worker":
        index = int(resolver.task_id) + (1 if has_chief else 0)
    else:
        raise ValueError(
            f"task type {resolver.task_type!r}: multi-worker training runs 'chief' and 'worker' "
            "tasks only (no parameter servers or evaluators)."
        )
    return WorkerInfo("multi_worker", index, count)


def tf_config_cluster_resolver(tf_config: str, *, n_gpus: int = 0):
    """A cluster resolver for a `TF_CONFIG` JSON string, without reading os.environ.

    `n_gpus` is the number of local GPUs this worker trains on (its replicas).
    """
    import tensorflow as tf

    try:
        parsed = json.loads(tf_config)
        cluster, task = parsed["cluster"], parsed["task"]
        task_type, task_id = str(task["type"]), int(task["index"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"TF_CONFIG: expected JSON like {{\"cluster\": {{\"worker\": [\"host:port\", ...]}}, "
            f"\"task\": {{\"type\": \"worker\", \"index\": 0}}}}; received {tf_config!r} ({exc})"
        ) from exc
    if task_id >= len(cluster.get(task_type, [])):
        raise ValueError(f"TF_CONFIG: task {task_type}:{task_id} is not in the cluster {cluster}")
    return tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(cluster), task_type=task_type, task_id=task_id,
        num_accelerators={"GPU": n_gpus}, rpc_layer=parsed.get("rpc_layer", "grpc"),
    )


def slurm_cluster_resolver(train_config, env: Mapping[str, str]):
    """A cluster resolver for this SLURM job step: one worker per task.

    GPUs per node come from `train_config.gpus_per_node`, else SLURM_GPUS_ON_NODE, else
    CUDA_VISIBLE_DEVICES, else 0 (GPUs are not probed with TensorFlow: that would initialise
    CUDA before each task's CUDA_VISIBLE_DEVICES is set). With GPUs, each task gets
    `train_config.gpus_per_task` (default 1) of them through CUDA_VISIBLE_DEVICES.
    """
    import tensorflow as tf

    _check_slurm_env(env)
    port_base = train_config.port_base
    gpus_per_node = train_config.gpus_per_node
    if gpus_per_node is None:
        gpus_per_node = _gpus_on_node(env)
    if gpus_per_node > 0:
        resolver = tf.distribute.cluster_resolver.SlurmClusterResolver(
            port_base=port_base, gpus_per_node=gpus_per_node,
            gpus_per_task=train_config.gpus_per_task or 1, auto_set_gpu=True,
        )
        resolver.cluster_spec()  # sets this task's CUDA_VISIBLE_DEVICES before CUDA starts
        return resolver
    # CPU-only nodes: SlurmClusterResolver.cluster_spec() lays tasks out by stepping through the
    # GPUs (range(0, gpus_per_node, gpus_per_task)), so with 0 GPUs it fails or finds no task.
    # Resolve the layout as if each task had one GPU (auto_set_gpu=False: nothing is set), then
    # hand MultiWorkerMirroredStrategy that layout with no accelerators.
    n_tasks = int(env["SLURM_STEP_NUM_TASKS"])
    layout = tf.distribute.cluster_resolver.SlurmClusterResolver(
        port_base=port_base, gpus_per_node=n_tasks, gpus_per_task=1, auto_set_gpu=False,
    )
    spec = layout.cluster_spec()  # also sets layout.task_type / task_id
    return tf.distribute.cluster_resolver.SimpleClusterResolver(
        spec, task_type=layout.task_type, task_id=layout.task_id,
        num_accelerators={"GPU": 0}, rpc_layer="grpc",
    )


def _check_slurm_env(env: Mapping[str, str]) -> None:
    """SlurmClusterResolver reads os.environ; refuse an `env` that says something else."""
    missing = [name for name in SLURM_RESOLVER_VARS if not env.get(name)]
    if missing:
        raise ValueError(
            f"SLURM job {env.get('SLURM_JOB_ID')}: {', '.join(missing)} not set. Multi-worker "
            "training must run inside a job step: start one task per worker with srun "
            "(submit.sh does), not directly in the batch script."
        )
    differ = [name for name in SLURM_RESOLVER_VARS if os.environ.get(name) != env.get(name)]
    if differ:
        raise ValueError(
            f"the environment passed in differs from os.environ on {', '.join(differ)}; "
            "SlurmClusterResolver reads those from os.environ, so pass os.environ (or a copy)."
        )


def _gpus_on_node(env: Mapping[str, str]) -> int:
    if env.get("SLURM_GPUS_ON_NODE"):
        return int(env["SLURM_GPUS_ON_NODE"])
    visible = env.get("CUDA_VISIBLE_DEVICES", "").strip()
    if visible and visible != "-1":
        return len(visible.split(","))
    return 0


# --------------------------------------------------------------------------------------------
# The training loop


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

    state, best_weights = _restore(model, strategy, backup_dir, logger)
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
        _write_backup(backup_dir, model, best_weights, state)
        if worker.is_chief:
            write_history_csv(work_dir / "history.csv", state.history)
        epoch_line.on_epoch_end(epoch, logs)
        if state.stopped:
            logger.info("early stopping after epoch %d: no better %s for %d epochs (best %s, "
                        "epoch %d)", epoch + 1, MONITOR, config.early_stopping_patience,
                        _fmt(state.best), state.best_epoch + 1)
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


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4g}"


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


# --------------------------------------------------------------------------------------------
# Backup and resume


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


def _write_backup(backup_dir: Path, model, best_weights, state: LoopState) -> None:
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


def _restore(model, strategy, backup_dir: Path, logger) -> tuple[LoopState, list | None]:
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
                _fmt(state.best))
    return state, best_weights
