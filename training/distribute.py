"""Which tf.distribute strategy a run uses, and who this process is among the workers.

`train.distribute` in the config picks: none | auto | mirrored | multi_worker. The environment
(SLURM variables, TF_CONFIG) is passed in by the caller, never read behind its back.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping

log = logging.getLogger("beamwatch.distribute")


@dataclasses.dataclass(frozen=True)
class WorkerInfo:
    """This process's place in a (possibly multi-process) training job."""

    mode: str = "none"
    index: int = 0
    count: int = 1

    @property
    def is_chief(self) -> bool:
        return self.index == 0

    def describe(self) -> str:
        if self.count == 1:
            return f"strategy {self.mode}, single process"
        return f"strategy {self.mode}, worker {self.index + 1} of {self.count}"

    @classmethod
    def from_env(cls, env: Mapping[str, str], mode: str = "multi_worker") -> WorkerInfo:
        """Worker index and count from TF_CONFIG, else from SLURM's task variables."""
        if env.get("TF_CONFIG"):
            tf_config = json.loads(env["TF_CONFIG"])
            cluster = tf_config.get("cluster", {})
            task = tf_config.get("task", {})
            count = sum(len(v) for k, v in cluster.items() if k in ("chief", "worker"))
            index = int(task.get("index", 0)) + (1 if "chief" in cluster and
                                                  task.get("type") == "worker" else 0)
            return cls(mode, index, max(count, 1))
        if env.get("SLURM_JOB_ID") and env.get("SLURM_NTASKS"):
            return cls(mode, int(env.get("SLURM_PROCID", 0)), int(env["SLURM_NTASKS"]))
        return cls(mode, 0, 1)


def make_strategy(train_config, env: Mapping[str, str]):
    """The strategy named by `train.distribute`, and this process's WorkerInfo."""
    import tensorflow as tf

    mode = train_config.distribute
    if mode == "auto":
        mode = "mirrored" if len(tf.config.list_physical_devices("GPU")) > 1 else "none"
    if train_config.mixed_precision:
        import keras

        keras.mixed_precision.set_global_policy("mixed_float16")
    if mode == "none":
        return tf.distribute.get_strategy(), WorkerInfo("none")
    if mode == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
        return strategy, WorkerInfo("mirrored")
    if mode == "multi_worker":
        from training.multi_worker import make_multi_worker_strategy

        return make_multi_worker_strategy(train_config, env)
    raise ValueError(f"train.distribute={mode!r}: expected none, auto, mirrored or multi_worker")


def fit_custom_loop(model, train_ds, val_ds, *, strategy, worker, config, work_dir, logger):
    """Multi-worker training (Keras `fit` fails under MultiWorkerMirroredStrategy upstream)."""
    from training.multi_worker import fit_multi_worker

    return fit_multi_worker(model, train_ds, val_ds, strategy=strategy, worker=worker,
                            config=config, work_dir=work_dir, logger=logger)
