"""Which tf.distribute strategy a run uses, and who this process is among the workers.

`train.distribute` in the config picks: none | auto | mirrored | multi_worker. The environment
(SLURM variables, TF_CONFIG) is passed in by the caller, never read behind its back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from training.workers import WorkerInfo

log = logging.getLogger("beamwatch.distribute")


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
    from training.multi_worker_loop import fit_multi_worker  # TensorFlow-heavy: imported on use

    return fit_multi_worker(model, train_ds, val_ds, strategy=strategy, worker=worker,
                            config=config, work_dir=work_dir, logger=logger)
