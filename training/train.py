"""The train flow: config -> pulses + settings -> split -> scale/balance -> fit -> threshold -> report.

One function, `train`, reads top to bottom like architecture.md steps 1-9 and leaves a complete
run folder behind. Everything it needs comes in as arguments (the config, the environment for
distributed training); it touches no global state but the seeds it is asked to set.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from parser.configs import Config, dump_config
from training import outputs
from training.callbacks import best_checkpoint_path, read_history_csv, standard_callbacks
from training.distribute import WorkerInfo, fit_custom_loop, make_strategy
from utils.run_folder import atomic_write_text, create_run_dir

log = logging.getLogger("beamwatch.train")


class RunStateError(RuntimeError):
    """The run folder given cannot be trained into (complete already, or not a run folder)."""


@dataclasses.dataclass
class TrainResult:
    run_dir: Path
    val_metrics: dict
    test_metrics: dict
    threshold: float
    replicas: int


def set_seeds(seed: int, deterministic: bool) -> None:
    """Seeds Python, NumPy and TensorFlow; optionally turns on TF op determinism."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def prepare_run_dir(config: Config, run_dir: Path | None, is_chief: bool) -> Path:
    """A fresh run folder, or the one given (created, or resumed from its backup)."""
    if run_dir is None:
        if not is_chief:
            raise RunStateError("non-chief workers need --run DIR so all workers share one folder")
        return create_run_dir(Path(config.run.output_dir), config.run.name)
    run_dir = Path(run_dir)
    if (run_dir / "metrics.json").exists():
        raise RunStateError(
            f"{run_dir} holds a finished run (metrics.json exists); nothing is overwritten. "
            "Pass another --run folder, or leave --run out for a new one."
        )
    if is_chief:
        run_dir.mkdir(parents=True, exist_ok=True)
    if (run_dir / "backup").exists():
        log.info("resuming %s from its BackupAndRestore state", run_dir)
    return run_dir


def train(
    config: Config,
    *,
    run_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Trains the configured model and writes a complete run folder; returns where and how well."""
    from data_preparation.data_scaling import save_scalers, split_indices
    from data_preparation.pipeline import balance_training, fit_scalers, prepare_samples
    from model import InputSpec, build_model, compile_model

    if source_flow(config) == "samples":  # npz, sessions, features, text: the sample contract
        from training.samples_flow import train_samples

        return train_samples(config, run_dir=run_dir, progress=progress)
    env = dict(env or {})
    strategy, worker = make_strategy(config.train, env)
    run_dir = prepare_run_dir(config, run_dir, worker.is_chief)
    work_dir = run_dir if worker.is_chief else run_dir / "workers" / str(worker.index)
    work_dir.mkdir(parents=True, exist_ok=True)
    if worker.is_chief:
        atomic_write_text(run_dir / "config.yaml", dump_config(config))
    log.info("run folder %s (%s)", run_dir, worker.describe())
    set_seeds(config.run.seed, config.run.deterministic)

    # Steps 2-3: pulses, settings, backward join, production filter, configuration groups.
    samples = prepare_samples(config, progress=progress and worker.is_chief)
    samples.ledger.log_summary(log)

    # Step 4: split before anything is fitted.
    parts = split_indices(samples.timestamp_ns, samples.label, samples.group, config.split,
                          seed=config.run.seed, acquisition=samples.acquisition)
    _ledger_gap(samples, parts)
    outputs.log_split(parts, samples, log)
    if config.split.method == "stratified_random":
        log.warning("stratified_random split: pulses of one period land in every part; "
                    "figures overstate what to expect on a later period")

    # Step 5: scalers on the training part only; imbalance on the training part only.
    train_idx, val_idx, test_idx = parts["train"], parts["val"], parts["test"]
    trace_scaler, settings_scaler = fit_scalers(samples, train_idx, config.scaling,
                                                seed=config.run.seed)
    if worker.is_chief:
        save_scalers(run_dir / "scalers.json", trace_scaler, settings_scaler,
                     {"settings_names": list(samples.settings_names)})
    train_samples, train_idx, weights = balance_training(
        samples, train_idx, config.scaling, trace_scaler, settings_scaler, seed=config.run.seed)
    sample_weight = None
    if weights is not None:
        sample_weight = np.array([weights[0], weights[1]], np.float32)[
            train_samples.label[train_idx].astype(np.int64)]
    balance_note = _balance_note(config.scaling, len(parts["train"]), len(train_idx), weights)
    log.info("imbalance: %s", balance_note)

    # Step 6: the model, inside the strategy's scope.
    trace_length, n_channels = samples.trace_shape
    spec = InputSpec(trace_length=trace_length, n_channels=n_channels,
                     n_settings=samples.settings.shape[1])
    with strategy.scope():
        model = build_model(_model_config(config), spec)
        compile_model(model, config.model, config.train, jit_compile=_use_xla())
    input_names = outputs.input_names(model)
    log.info("model %s: %d parameters, inputs %s", config.model.name, model.count_params(),
             ", ".join(input_names))

    # Step 7: fit.
    global_batch = config.train.batch_size * strategy.num_replicas_in_sync
    ds_kwargs = dict(trace_scaler=trace_scaler, settings_scaler=settings_scaler,
                     batch_size=global_batch, input_names=input_names, seed=config.run.seed)
    train_ds = _make_ds(train_samples, train_idx, shuffle=True, sample_weight=sample_weight,
                        **ds_kwargs)
    val_ds = _make_ds(samples, val_idx, shuffle=False, **ds_kwargs)
    interactive = progress and sys.stdout.isatty()
    callbacks = standard_callbacks(work_dir, config.train, log, is_chief=worker.is_chief,
                                   log_epochs=not interactive)
    if worker.mode == "multi_worker":
        history = fit_custom_loop(model, train_ds, val_ds, strategy=strategy, worker=worker,
                                  config=config.train, work_dir=work_dir, logger=log)
    else:
        history = model.fit(train_ds, validation_data=val_ds, epochs=config.train.epochs,
                            callbacks=callbacks, verbose=1 if interactive else 0,
                            shuffle=False).history  # the dataset shuffles itself, seeded
        if worker.is_chief:  # after a resume, fit returns only the epochs it ran; the CSV has all
            history = read_history_csv(run_dir / "history.csv") or history
    if not worker.is_chief:
        log.info("worker done; the chief writes the run folder")
        return TrainResult(run_dir, {}, {}, float("nan"), strategy.num_replicas_in_sync)

    # The best checkpoint is the model of record; publish it atomically as model.keras.
    model = outputs.publish_best_model(model, best_checkpoint_path(run_dir), run_dir / "model.keras")

    # Steps 8-9: threshold on validation scores only; metrics, predictions, report.
    predict_kwargs = dict(ds_kwargs, batch_size=max(global_batch, 256))
    scores = {name: outputs.predict(model, _make_ds(samples, idx, shuffle=False, **predict_kwargs))
              for name, idx in (("val", val_idx), ("test", test_idx))}
    threshold = outputs.choose_and_save_threshold(
        samples.label[val_idx], scores["val"], config.threshold, run_dir / "threshold.json")
    result = outputs.write_train_outputs(
        run_dir=run_dir, config=config, samples=samples,
        parts={"train": parts["train"], "val": val_idx, "test": test_idx},
        scores=scores, threshold=threshold, history=history,
        replicas=strategy.num_replicas_in_sync, balance_note=balance_note,
        workers=worker.count, model_params=model.count_params(),
    )
    return TrainResult(run_dir, result["val"], result["test"], threshold.threshold,
                       strategy.num_replicas_in_sync)


def source_flow(config: Config) -> str:
    """The flow of `data.source` from the source registry: "pulses" (SNS) or "samples"."""
    from data_preparation.sources import get_source

    return get_source(config.data.source).flow


def _use_xla() -> bool | str:
    """XLA on GPUs (Keras decides); off on CPU, where it measured slower for these models."""
    import tensorflow as tf

    return "auto" if tf.config.list_physical_devices("GPU") else False


def _model_config(config: Config) -> SimpleNamespace:
    """The model section plus the one scaling option the model implements (per-trace norm)."""
    return SimpleNamespace(**dataclasses.asdict(config.model), per_trace=config.scaling.per_trace)


def _ledger_gap(samples, parts) -> None:
    dropped = parts.pop("dropped", None)
    if dropped is not None and len(dropped):
        samples.ledger_pulses(dropped, "gap_dropped", "within split.gap_seconds of a part boundary")


def _balance_note(scaling, n_before: int, n_after: int, weights) -> str:
    """One line for the log and the report on how the training part was rebalanced."""
    if weights is not None:
        return f"class weights normal={weights[0]:.3g} errant={weights[1]:.3g}"
    if scaling.imbalance == "smote":
        return (f"SMOTE on the training part to minority/majority ratio {scaling.smote_ratio}: "
                f"{n_before} -> {n_after} samples")
    if scaling.imbalance == "undersample":
        return f"random undersampling of the training part: {n_before} -> {n_after} pulses"
    return "none"


def _make_ds(samples, idx, **kwargs):
    from data_preparation.pipeline import make_dataset

    return make_dataset(samples, idx, **kwargs)


def worker_prefix(env: Mapping[str, str]) -> str:
    """`[worker i/n] ` for multi-process runs, so every log line says who wrote it."""
    info = WorkerInfo.from_env(env)
    return f"[worker {info.index + 1}/{info.count}] " if info.count > 1 else ""


