"""The fit steps of a training, shared by the train flow and the benchmarks.

`fit_and_threshold` builds and compiles the model for an `InputSpec`, fits it with the standard
callbacks (early stopping on validation PR AUC, LR reduction, best checkpoint, backup, CSV),
makes the best weights the model of record (published atomically as `model.keras` when asked,
else the weights EarlyStopping restored), scores the parts asked for, and chooses the alarm
threshold on the validation scores only. The data steps before it (samples, split, scalers,
rebalancing) stay with the caller, so the train flow and a benchmark fold share every line that
decides how a model is trained and where its threshold lies.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from analysis.thresholds import ThresholdChoice, choose_threshold
from parser.configs import Config
from training import outputs
from training.callbacks import best_checkpoint_path, read_history_csv, standard_callbacks
from training.resume import backup_epoch

PREDICT_BATCH = 256  # scoring batch: no gradients, so larger than the training batch is free


@dataclasses.dataclass(frozen=True)
class TrainingPart:
    """What the model is fitted on: samples (possibly SMOTE-resampled), rows, per-row weights."""

    samples: object  # data_preparation.sample_set.SampleSet
    indices: np.ndarray
    sample_weight: np.ndarray | None = None


@dataclasses.dataclass
class FitResult:
    """A fitted model with its history, scores per part and validation-chosen threshold.

    On a non-chief worker of a multi-worker run only `history` is meaningful (`model` is None):
    the chief scores and writes.
    """

    model: object | None
    history: dict
    input_names: tuple[str, ...]
    scores: dict[str, np.ndarray]
    threshold: ThresholdChoice | None
    train_seconds: float
    params: int
    # Batch the scores were made in through tf.data (None: NumPy inputs off TensorFlow, or
    # nothing scored): the test flow reuses scores only when its own batches are the same.
    score_batch: int | None = None

    @property
    def epochs_trained(self) -> int:
        return len(next(iter(self.history.values()), [])) if self.history else 0


def input_spec(samples):
    """The `InputSpec` of a `SampleSet`: trace shape, its settings columns, its references and
    history."""
    from model import InputSpec

    trace_length, n_channels = samples.trace_shape
    return InputSpec(trace_length=int(trace_length), n_channels=int(n_channels),
                     n_settings=int(samples.settings.shape[1]),
                     n_references=samples.n_references, n_history=samples.n_history)


def class_sample_weight(labels, weights: Mapping[int, float] | None) -> np.ndarray | None:
    """Per-row float32 weights from class weights `{0: w0, 1: w1}` (None stays None)."""
    if weights is None:
        return None
    return np.array([weights[0], weights[1]], np.float32)[np.asarray(labels).astype(np.int64)]


def fit_and_threshold(
    config: Config,
    spec,
    *,
    train: TrainingPart,
    samples,
    score_parts: Mapping[str, np.ndarray],
    trace_scaler,
    settings_scaler,
    work_dir: Path,
    logger: logging.Logger,
    strategy=None,
    worker=None,
    model_path: Path | None = None,
    threshold_path: Path | None = None,
    verbose: bool = False,
    log_epochs: bool = True,
    jit_compile: bool | str = False,
    already_fitted: bool = False,
    on_stage: Callable[[str], None] | None = None,
) -> FitResult:
    """Build, compile, fit, keep the best weights, score `score_parts`, threshold on "val".

    Args:
        config: the whole config (model, train, threshold sections are used).
        spec: the `model.InputSpec` to build for.
        train: the training rows (after the caller's rebalancing) and their weights.
        samples: the samples `score_parts` index into; `score_parts["val"]` is the
            validation data for early stopping and the threshold.
        trace_scaler, settings_scaler: fitted on the training part by the caller.
        work_dir: callbacks' folder (best checkpoint, backup, history.csv).
        strategy, worker: a `tf.distribute` strategy and `training.workers.WorkerInfo`
            (None: the default strategy, one process); multi-worker runs use the custom loop.
        model_path: publish the best checkpoint here atomically (the train flow's model.keras);
            None keeps the weights EarlyStopping restored (the best epoch's).
        threshold_path: also write the threshold choice there as JSON.
        verbose: Keras progress bar; log_epochs: one log line per epoch instead.
        jit_compile: passed to `compile_model` (XLA).
        already_fitted: the run was killed after its fit: its best checkpoint and history.csv
            are on disk, so fitting again (the backup is gone) would retrain from scratch and
            double history.csv; the checkpoint is scored instead.
        on_stage: called with "fit", "fitted" and "threshold" as the steps begin (the train
            flow records them in status.json so a resume knows where to go on).

    Under TensorFlow with Keras fit, one pass over epochs first..last is fed, each shuffled by
    (seed, epoch), so a run resumed from its backup at epoch `first` sees the batches an
    uninterrupted run would have.
    """
    stage = on_stage or (lambda _name: None)
    import keras

    from model import build_model, compile_model

    if "val" not in score_parts:
        raise ValueError(f"fit_and_threshold: score_parts needs a 'val' part for early stopping "
                         f"and the threshold, got {sorted(score_parts)}")
    # Under TensorFlow: tf.data (in memory or streamed) and tf.distribute. Under another Keras
    # backend (JAX, PyTorch: the GPU check machines carry no TensorFlow) the in-memory inputs
    # go to fit as NumPy arrays, one process, one device.
    on_tensorflow = keras.backend.backend() == "tensorflow"
    if on_tensorflow:
        import tensorflow as tf

        strategy = strategy or tf.distribute.get_strategy()
    elif strategy is not None or (worker is not None and worker.mode != "none"):
        raise ValueError(f"fit_and_threshold: tf.distribute needs the TensorFlow backend, not "
                         f"{keras.backend.backend()!r}")
    replicas = strategy.num_replicas_in_sync if on_tensorflow else 1
    is_chief = worker is None or worker.is_chief
    with strategy.scope() if on_tensorflow else contextlib.nullcontext():
        model = build_model(config.model, spec)
        compile_model(model, config.model, config.train, jit_compile=jit_compile)
    input_names = outputs.input_names(model)
    logger.info("model %s: %d parameters, inputs %s", config.model.name, model.count_params(),
                ", ".join(input_names))

    global_batch = config.train.batch_size * replicas
    ds_kwargs = dict(trace_scaler=trace_scaler, settings_scaler=settings_scaler,
                     batch_size=global_batch, input_names=input_names, seed=config.run.seed)
    callbacks = standard_callbacks(work_dir, config.train, logger, is_chief=is_chief,
                                   log_epochs=log_epochs)
    started = time.perf_counter()
    stage("fit")
    if already_fitted:
        if not best_checkpoint_path(work_dir).exists():
            raise RuntimeError(f"{work_dir} finished its fit but {best_checkpoint_path(work_dir)} "
                               "is gone; train into a new folder (leave --run out)")
        logger.info("resuming after the fit: %s", work_dir / "history.csv")
        history = read_history_csv(work_dir / "history.csv")
    elif not on_tensorflow:
        history = _fit_arrays(model, train, samples, score_parts["val"], ds_kwargs, callbacks,
                              epochs=config.train.epochs, verbose=verbose)
    else:
        multi_worker = worker is not None and worker.mode == "multi_worker"
        keyed = None if multi_worker else (backup_epoch(work_dir / "backup"), config.train.epochs)
        train_ds = _make_ds(train.samples, train.indices, shuffle=True,
                            sample_weight=train.sample_weight, epochs=keyed, **ds_kwargs)
        val_ds = _make_ds(samples, score_parts["val"], shuffle=False, **ds_kwargs)
        if multi_worker:
            from training.distribute import fit_custom_loop

            history = fit_custom_loop(model, train_ds, val_ds, strategy=strategy, worker=worker,
                                      config=config.train, work_dir=work_dir, logger=logger)
        else:
            history = model.fit(train_ds, validation_data=val_ds, epochs=config.train.epochs,
                                steps_per_epoch=-(-len(train.indices) // global_batch),
                                callbacks=callbacks, verbose=1 if verbose else 0,
                                shuffle=False).history  # the dataset shuffles itself, seeded
            if is_chief:  # after a resume, fit returns only the epochs it ran; the CSV has all
                history = read_history_csv(work_dir / "history.csv") or history
    train_seconds = time.perf_counter() - started
    params = int(model.count_params())
    if not is_chief:
        return FitResult(None, history, input_names, {}, None, train_seconds, params)

    stage("fitted")
    if model_path is not None:
        # The best checkpoint is the model of record; publish it atomically.
        model = outputs.publish_best_model(model, best_checkpoint_path(work_dir), model_path)
    stage("threshold")

    predict_kwargs = dict(ds_kwargs, batch_size=max(global_batch, PREDICT_BATCH))
    scores = {name: _score(model, samples, idx, predict_kwargs, on_tensorflow)
              for name, idx in score_parts.items()}
    val_labels = samples.label[np.asarray(score_parts["val"])]
    if threshold_path is not None:
        threshold = outputs.choose_and_save_threshold(val_labels, scores["val"],
                                                      config.threshold, threshold_path)
    else:
        threshold = choose_threshold(np.asarray(val_labels), scores["val"],
                                     **config.threshold.choice())
    return FitResult(model, history, input_names, scores, threshold, train_seconds, params,
                     score_batch=predict_kwargs["batch_size"] if on_tensorflow else None)


def _fit_arrays(model, train: TrainingPart, samples, val_idx, ds_kwargs, callbacks, *,
                epochs: int, verbose: bool) -> dict:
    """`model.fit` on NumPy inputs (Keras backends other than TensorFlow; in-memory samples)."""
    from training.dataset import model_inputs

    names = dict(trace_scaler=ds_kwargs["trace_scaler"],
                 settings_scaler=ds_kwargs["settings_scaler"],
                 input_names=ds_kwargs["input_names"])
    x = model_inputs(train.samples, train.indices, **names)
    y = train.samples.label[np.asarray(train.indices)].astype(np.float32)[:, None]
    x_val = model_inputs(samples, val_idx, **names)
    y_val = samples.label[np.asarray(val_idx)].astype(np.float32)[:, None]
    return model.fit(x, y, sample_weight=train.sample_weight, batch_size=ds_kwargs["batch_size"],
                     epochs=epochs, validation_data=(x_val, y_val), callbacks=callbacks,
                     shuffle=True, verbose=1 if verbose else 0).history


def _score(model, samples, idx, predict_kwargs: dict, on_tensorflow: bool) -> np.ndarray:
    """Scores of the rows `idx` as a flat float64 array (tf.data, or NumPy off TensorFlow)."""
    if on_tensorflow:
        return outputs.predict(model, _make_ds(samples, idx, shuffle=False, **predict_kwargs))
    from training.dataset import model_inputs

    x = model_inputs(samples, idx, predict_kwargs["trace_scaler"],
                     predict_kwargs["settings_scaler"], predict_kwargs["input_names"])
    from data_preparation.validation import check_scores

    scores = model.predict(x, batch_size=predict_kwargs["batch_size"], verbose=0)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    check_scores(scores)
    return scores


def _make_ds(samples, idx, **kwargs):
    from training.dataset import make_dataset

    return make_dataset(samples, idx, **kwargs)
