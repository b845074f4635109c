"""One training process for the multi-worker tests: tiny data, tiny model, one strategy.

    python -m tests.training.multi_worker_job --out DIR --mode multi_worker   (TF_CONFIG set)
    python -m tests.training.multi_worker_job --out DIR --mode two_replicas   (one process)
    python -m tests.training.multi_worker_job --out DIR --mode fit            (keras fit)
    python -m tests.training.multi_worker_job --out DIR --mode fit_callbacks  (+ the flow's)

`--exit-after-epoch N` ends the process abruptly (os._exit) once epoch N is logged, as a
kill would; running the same command again resumes in the same DIR.

Writes DIR/result.json (history, worker, replicas) and DIR/weights.npz (final weights), and the
loop's own files under DIR/work/. A separate process per run: a strategy must be created before
any other TensorFlow op, and the logical CPU devices of `two_replicas` before TF starts.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

TRACE_LENGTH = 128
N_SETTINGS = 3
N_TRAIN, N_VAL = 65, 33  # 4 full global batches of 16, then 1 sample: one replica gets none
SEED = 7

TINY_MODEL = dict(
    name="sns_cnn_lstm", conv_filters=(4,), conv_kernels=(5,), conv_strides=(4,),  # 4 LSTM steps
    lstm_units=4, bidirectional=False, attention=True, settings_units=(4,), head_units=(4,),
    dropout=0.0, loss="bce",
)


def tiny_data(n: int, seed: int) -> tuple[dict, np.ndarray, np.ndarray]:
    """Traces with a bump for label 1, random settings, labels, class-like weights."""
    rng = np.random.default_rng(seed)
    label = (rng.random(n) < 0.3).astype(np.float32)
    trace = rng.normal(0.0, 1.0, (n, TRACE_LENGTH, 1)).astype(np.float32)
    trace[label == 1, 40:60, 0] += 1.5
    settings = rng.normal(0.0, 1.0, (n, N_SETTINGS)).astype(np.float32)
    weight = np.where(label == 1, 2.0, 1.0).astype(np.float32)
    return {"trace": trace, "settings": settings}, label[:, None], weight


def datasets(global_batch: int, n_train: int = N_TRAIN):
    import tensorflow as tf

    x, y, w = tiny_data(n_train, SEED)
    xv, yv, _ = tiny_data(N_VAL, SEED + 1)
    train = tf.data.Dataset.from_tensor_slices((x, y, w)).batch(global_batch)
    val = tf.data.Dataset.from_tensor_slices((xv, yv)).batch(global_batch)
    return train, val


class EpochClock(logging.Handler):
    """Records when each epoch line is logged (for throughput figures)."""

    def __init__(self):
        super().__init__()
        self.times: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("epoch "):
            self.times.append(time.perf_counter())


class ExitAfterEpoch(logging.Handler):
    """Ends the process without clean-up once the line of epoch `n` is logged (a kill)."""

    def __init__(self, n: int):
        super().__init__()
        self.prefix = f"epoch {n}/"

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith(self.prefix):
            sys.stderr.flush()
            os._exit(17)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--mode", required=True,
                        choices=["multi_worker", "two_replicas", "fit", "fit_callbacks"])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8, help="per replica")
    parser.add_argument("--n-train", type=int, default=N_TRAIN)
    parser.add_argument("--exit-after-epoch", type=int, default=None)
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    from model import InputSpec, build_model, compile_model
    from parser.configs import ModelConfig, TrainConfig
    from training.workers import WorkerInfo

    train_config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size,
                               distribute="multi_worker", early_stopping_patience=5,
                               reduce_lr_patience=5, tensorboard=False)
    if args.mode == "multi_worker":
        from training.multi_worker import make_multi_worker_strategy

        strategy, worker = make_multi_worker_strategy(train_config, os.environ)
    elif args.mode == "two_replicas":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        worker = WorkerInfo("mirrored")
    else:
        strategy, worker = tf.distribute.get_strategy(), WorkerInfo("none")
    # Global batch as in the train flow; the "fit" reference uses the two-replica global batch.
    replicas = 2 if args.mode.startswith("fit") else strategy.num_replicas_in_sync
    global_batch = args.batch_size * replicas

    keras.utils.set_random_seed(SEED)
    with strategy.scope():
        model = build_model(ModelConfig(**TINY_MODEL), InputSpec(TRACE_LENGTH, 1, N_SETTINGS))
        compile_model(model, ModelConfig(**TINY_MODEL), train_config,
                      metrics=[keras.metrics.AUC(curve="PR", name="auc_pr")])
    train_ds, val_ds = datasets(global_batch, args.n_train)
    work_dir = args.out / "work"
    work_dir.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger(f"job.{worker.index}")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    clock = EpochClock()
    logger.addHandler(clock)
    if args.exit_after_epoch is not None:
        logger.addHandler(ExitAfterEpoch(args.exit_after_epoch))

    started = time.perf_counter()
    if args.mode == "fit":
        history = model.fit(train_ds, validation_data=val_ds, epochs=args.epochs, verbose=0,
                            shuffle=False).history
    elif args.mode == "fit_callbacks":
        from training.callbacks import standard_callbacks

        callbacks = standard_callbacks(work_dir, train_config, logger, log_epochs=True)
        history = model.fit(train_ds, validation_data=val_ds, epochs=args.epochs, verbose=0,
                            callbacks=callbacks).history
    else:
        from training.multi_worker_loop import fit_multi_worker

        history = fit_multi_worker(model, train_ds, val_ds, strategy=strategy, worker=worker,
                                   config=train_config, work_dir=work_dir, logger=logger)
    seconds = time.perf_counter() - started

    np.savez(args.out / "weights.npz", *model.get_weights())
    result = {
        "history": {k: [float(v) for v in vals] for k, vals in history.items()},
        "worker": {"index": worker.index, "count": worker.count, "is_chief": worker.is_chief},
        "replicas": strategy.num_replicas_in_sync,
        "train_seconds": seconds,
        "epoch_seconds": list(np.diff([started, *clock.times])),
        "samples": args.n_train * args.epochs,
    }
    (args.out / "result.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
