"""The train flow: config -> pulses + settings -> split -> scale/balance -> fit -> threshold -> report.

One function, `train`, reads top to bottom like architecture.md steps 1-9 and leaves a complete
run folder behind. Everything it needs comes in as arguments (the config, the environment for
distributed training); it touches no global state but the seeds it is asked to set.
`run_train_flow` is the `driver.py --train` verb around it: who is chief, the run folder, the
logs, the demo archive, and a failed run marked as such.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import sys
from collections.abc import Mapping
from pathlib import Path

from parser.configs import Config, ConfigError, dump_config
from training import outputs
from training.distribute import make_strategy
from training.fit import TrainingPart, class_sample_weight, fit_and_threshold, input_spec
from training.run_start import check_resume, prepare_run_dir, set_seeds
from training.workers import WorkerInfo
from utils.logs import add_run_log, start_logging
from utils.run_folder import atomic_write_text, create_run_dir
from utils.status import COMPLETE, TRAINING, mark_failed, read_status, write_status

log = logging.getLogger("beamwatch.train")


def check_train_request(config: Config, run_dir: Path | None) -> None:
    """What `--train` can refuse before anything is written (no log line, no file in the run
    folder): an unknown model.name (ConfigError), a run folder it cannot resume (RunStateError)."""
    _check_model_name(config.model.name)
    if run_dir is not None:
        check_resume(config, run_dir)


def _check_model_name(name: str) -> None:
    """An unknown model.name is a config error, found before any data is read."""
    import difflib

    from model import list_models

    names = list_models()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"model.name: unknown model {name!r} (registered: "
                          f"{', '.join(names)}){hint}")


def run_train_flow(
    config: Config,
    *,
    run_dir: Path | None = None,
    env: Mapping[str, str],
    quiet: bool = False,
    debug: bool = False,
    prefix: str = "",
) -> outputs.TrainResult | None:
    """`driver.py --train`: logs, the chief's run folder and demo archive, then `train`.

    The chief (worker 0, or the only process) creates the run folder when none is given and
    writes its train.log; a run that stops on an error (or Ctrl-C) is marked failed in
    status.json, so it can be found and resumed. Returns None on a non-chief worker (the
    chief writes the run folder), else the chief's `TrainResult`.
    """
    from data_preparation.demo import ensure_demo_archive

    logger = start_logging(Path(config.run.log_dir), "train", quiet=quiet, debug=debug,
                           prefix=prefix)
    chief = WorkerInfo.from_env(env).is_chief
    if run_dir is None and chief:
        run_dir = create_run_dir(Path(config.run.output_dir), config.run.name)
    if chief:
        add_run_log(run_dir, "train", debug=debug, prefix=prefix)
    try:
        if chief:
            ensure_demo_archive(config, logger)
        result = train(config, run_dir=run_dir, env=env, progress=not quiet)
    except BaseException as exc:
        if chief and run_dir is not None:
            mark_failed(Path(run_dir), exc)
        raise
    if not chief:
        return None
    logger.info("training done: %s", result.run_dir)
    return result


def _stage(run_dir: Path, worker, stage: str) -> None:
    """The chief records how far the run got (status.json), so a resume knows where to go on."""
    if worker.is_chief:
        write_status(run_dir, TRAINING, stage)


def train(
    config: Config,
    *,
    run_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    progress: bool = True,
) -> outputs.TrainResult:
    """Trains the configured model and writes a complete run folder; returns where and how well."""
    from data_preparation.pipeline import balance_training, fit_scalers, prepare_samples
    from data_preparation.scalers import save_scalers
    from data_preparation.split import split_indices

    if source_flow(config) == "samples":  # npz, sessions, features, text: the sample contract
        from training.samples_flow import train_samples

        return train_samples(config, run_dir=run_dir, progress=progress)
    env = dict(env or {})
    strategy, worker = make_strategy(config.train, env)
    run_dir = prepare_run_dir(config, run_dir, worker.is_chief)
    work_dir = run_dir if worker.is_chief else run_dir / "workers" / str(worker.index)
    work_dir.mkdir(parents=True, exist_ok=True)
    resumed = read_status(run_dir)
    if worker.is_chief:
        atomic_write_text(run_dir / "config.yaml", dump_config(config))
        _stage(run_dir, worker, "data")
    log.info("run folder %s (%s)", run_dir, worker.describe())
    set_seeds(config.run.seed, config.run.deterministic)

    # Steps 2-3: pulses, settings, backward join, production filter, configuration groups.
    samples = prepare_samples(config, progress=progress and worker.is_chief)
    samples.ledger.log_summary(log)
    loaded_ledger = copy.deepcopy(samples.ledger)  # before the split's gap entries

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
    sample_weight = class_sample_weight(train_samples.label[train_idx], weights)
    balance_note = _balance_note(config.scaling, len(parts["train"]), len(train_idx), weights)
    log.info("imbalance: %s", balance_note)

    # Steps 6-8: the model (inside the strategy's scope), fit, best weights published
    # atomically as model.keras, scores, threshold on validation scores only.
    spec = input_spec(samples)
    interactive = progress and sys.stdout.isatty()
    fitted = fit_and_threshold(
        config, spec, train=TrainingPart(train_samples, train_idx, sample_weight),
        samples=samples, score_parts={"val": val_idx, "test": test_idx},
        trace_scaler=trace_scaler, settings_scaler=settings_scaler, work_dir=work_dir,
        logger=log, strategy=strategy, worker=worker, model_path=run_dir / "model.keras",
        threshold_path=run_dir / "threshold.json", verbose=interactive,
        log_epochs=not interactive, jit_compile=_use_xla(),
        already_fitted=resumed.state != COMPLETE and resumed.reached("fitted"),
        on_stage=lambda name: _stage(run_dir, worker, name))
    if not worker.is_chief:
        log.info("worker done; the chief writes the run folder")
        return outputs.TrainResult(run_dir, {}, {}, float("nan"), strategy.num_replicas_in_sync)

    # Step 9: metrics, predictions, report.
    scores, threshold, history = fitted.scores, fitted.threshold, fitted.history
    _stage(run_dir, worker, "report")
    result = outputs.write_train_outputs(
        run_dir=run_dir, config=config, samples=samples,
        parts={"train": parts["train"], "val": val_idx, "test": test_idx},
        scores=scores, threshold=threshold, history=history,
        replicas=strategy.num_replicas_in_sync, balance_note=balance_note,
        workers=worker.count, model_params=fitted.params,
    )
    write_status(run_dir, COMPLETE, "done")  # the last write: the run is finished
    scored = None
    if fitted.score_batch is not None:
        scored = outputs.ScoredParts(run_dir, dataclasses.replace(samples, ledger=loaded_ledger),
                                     {"val": val_idx, "test": test_idx}, dict(scores),
                                     fitted.score_batch)
    return outputs.TrainResult(run_dir, result["val"], result["test"], threshold.threshold,
                       strategy.num_replicas_in_sync, scored)


def source_flow(config: Config) -> str:
    """The flow of `data.source` from the source registry: "pulses" (SNS) or "samples"."""
    from data_preparation.sources import get_source

    return get_source(config.data.source).flow


def _use_xla() -> bool | str:
    """XLA on GPUs (Keras decides); off on CPU, where it measured slower for these models."""
    import tensorflow as tf

    return "auto" if tf.config.list_physical_devices("GPU") else False


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


def worker_prefix(env: Mapping[str, str]) -> str:
    """`[worker i/n] ` for multi-process runs, so every log line says who wrote it."""
    info = WorkerInfo.from_env(env)
    return f"[worker {info.index + 1}/{info.count}] " if info.count > 1 else ""


