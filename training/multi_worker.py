"""Multi-worker training: the MultiWorkerMirroredStrategy cluster, and a training loop for it.

`make_multi_worker_strategy` finds the cluster from SLURM (`SlurmClusterResolver`) or from a
`TF_CONFIG` in the environment passed in. `fit_multi_worker` replaces `model.fit`, which fails
under MultiWorkerMirroredStrategy with TF 2.21 / Keras 3.15 (keras-team/keras#20585): it is the
custom loop of the TensorFlow distributed-training guide with the effects of the train flow's
callbacks (early stopping with best-weights restore, learning-rate reduction on a plateau, best
checkpoint, history.csv, per-epoch backup and resume). Everything lives behind that one function
so it can go once upstream `fit` works again.

This module holds the cluster set-up; the loop is `training.multi_worker_loop` and its per-epoch
backups `training.multi_worker_backup` (import their names from there).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping

from training.workers import WorkerInfo

__all__ = ["SLURM_RESOLVER_VARS", "make_multi_worker_strategy", "slurm_cluster_resolver",
    "tf_config_cluster_resolver", "worker_info"]

log = logging.getLogger("beamwatch.multi_worker")

# The SLURM step variables SlurmClusterResolver reads from os.environ itself.
SLURM_RESOLVER_VARS = (
    "SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_NODELIST", "SLURM_STEP_TASKS_PER_NODE",
)


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


