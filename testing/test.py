"""The test flow: score a trained run on data it has never seen and write its own report.

Loads a run folder (model, scalers, threshold, config), rebuilds the data with the run's saved
config, scores the run's held-out test period (or the part named, or another archive given with
`data_dir`), and writes metrics.json, predictions.csv and test_metrics_report.pdf into a new
`<run>/tests/<time>/` folder. Nothing in the run folder itself is changed.

Reference pulses follow the run's `reference` section through the same `prepare_samples`
rule as training: in-file references first, then earlier normal samples of the same
configuration group in the data loaded here. On the run's own data that is the whole archive's
past (train and validation pulses may serve a test pulse, never a later one); with `data_dir`
it is only the new archive's own past, so its first pulses of each configuration may be
ledgered `no_reference`. metrics.json's split summary counts the samples by reference source.
A run trained with a history (`history.count`) gets each sample's history the same way: the
pulses before it in its own file, whatever data is scored.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from analysis.deployment import deployment_notes
from analysis.evaluation import compute_metrics
from analysis.report import ReportContent, write_report
from analysis.thresholds import ThresholdChoice
from parser.configs import Config, ConfigError, dump_config, load_config
from testing.deployment import deployment_summary
from testing.online import online_figures
from training import outputs
from utils.logs import add_run_log, start_logging
from utils.run_folder import (
    RunFolderError,
    atomic_write_json,
    atomic_write_text,
    create_test_dir,
)
from utils.status import COMPLETE, describe, newest_complete_run, read_status, resume_command

log = logging.getLogger("beamwatch.test")

PARTS = ("train", "val", "test", "all")
SCORE_BATCH = 256  # scoring batch (the train flow's too, so its scores can be reused)


def load_run(run_dir: Path) -> tuple[Config, object, ThresholdChoice, tuple]:
    """The run's config, model (safe mode), threshold and scalers, with clear errors."""

    import model  # noqa: F401  registers the custom layers that safe-mode loading looks up
    from data_preparation.scalers import load_scalers

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(f"run folder {run_dir} does not exist")
    for name in ("config.yaml", "model.keras", "threshold.json", "scalers.json"):
        if not (run_dir / name).exists():
            raise RunFolderError(
                f"{run_dir} has no {name}: not a finished training run "
                "(train it with `python driver.py --train`)")
    try:
        config = load_config(run_dir / "config.yaml")
    except ConfigError as exc:
        raise RunFolderError(f"{run_dir}/config.yaml cannot be read: {exc}") from exc
    threshold = read_threshold_choice(run_dir / "threshold.json")  # before the model
    scalers = load_scalers(run_dir / "scalers.json")
    trained = _load_model(run_dir / "model.keras")
    return config, trained, threshold, scalers


def read_threshold_choice(path: Path) -> ThresholdChoice:
    """threshold.json as the train flow wrote it, checked once, by `ThresholdChoice.from_dict`.

    A threshold that is not a finite number is a ValueError naming the file (as
    `data_preparation.validation.read_threshold` words it); any other bad record a
    RunFolderError.
    """
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot be read as JSON ({exc})") from exc
    try:
        return ThresholdChoice.from_dict(record)
    except ValueError as exc:
        value = record.get("threshold") if isinstance(record, dict) else None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"{path}: 'threshold' is {value!r}; expected a finite number") from exc
        raise RunFolderError(f"{path} cannot be read: {exc}") from exc


def _load_model(path: Path):
    """The model (safe mode); a damaged file is named as such, not as "file not found"."""
    import zipfile

    import keras

    try:  # Keras reports a damaged zip as "file not found"; check the archive first
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"{path} is damaged or truncated: not a readable .keras zip archive "
                         f"({exc})") from exc
    if bad is not None:
        raise ValueError(f"{path} is damaged: member {bad} fails its CRC check")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as exc:  # zip, h5py and Keras each raise their own kind for a bad file
        raise ValueError(f"{path} cannot be loaded as a Keras model (damaged or truncated?): "
                         f"{type(exc).__name__}: {exc}".splitlines()[0]) from exc


def run_test_flow(
    config: Config,
    *,
    run_dir: Path | None = None,
    data_dir: Path | None = None,
    part: str | None = None,
    allow_stale_settings: bool = False,
    quiet: bool = False,
    debug: bool = False,
    prefix: str = "",
    scored: outputs.ScoredParts | None = None,
) -> outputs.TestResult:
    """`driver.py --test`: logs, the run (given, or the newest complete one under
    run.output_dir), a warning when it did not finish training, then `test`.

    `scored`: the train flow's in-memory scores of this run's validation and test parts (plain
    `driver.py` trains, then tests): the part asked is then not scored a second time.
    """
    logger = start_logging(Path(config.run.log_dir), "test", quiet=quiet, debug=debug,
                           prefix=prefix)
    if run_dir is None:
        run_dir = _newest_complete_run(Path(config.run.output_dir))
    run_dir = Path(run_dir)
    if run_dir.is_dir():
        add_run_log(run_dir, "test", debug=debug, prefix=prefix)
    _warn_if_incomplete(run_dir, logger)
    result = _test(run_dir, data_dir=data_dir, part=part, progress=not quiet,
                   allow_stale_settings=allow_stale_settings, scored=scored)
    logger.info("test done: %s", result.out_dir)
    return result


def _newest_complete_run(root: Path) -> Path:
    """The newest complete run; incomplete newer ones are named with their resume command."""
    run_dir, incomplete = newest_complete_run(root)
    for run, status in incomplete:
        logging.getLogger("beamwatch").warning(
            "skipping incomplete run %s (%s); resume it with: %s", run, describe(status),
            resume_command(run))
    return run_dir


def _warn_if_incomplete(run_dir: Path, logger: logging.Logger) -> None:
    """Testing a run that did not finish training is allowed, but said plainly."""
    status = read_status(run_dir)
    if run_dir.is_dir() and status.state not in (COMPLETE, "unknown"):
        logger.warning("%s did not finish training (%s); its figures may not be final. "
                       "Finish it with: %s", run_dir, describe(status), resume_command(run_dir))


def resolve_data_dir(data_dir: Path) -> tuple[Path, Path | None]:
    """An archive root (dcm/ + beam_settings/) or a DCM dataset root -> (dcm root, settings)."""
    data_dir = Path(data_dir)
    if not data_dir.exists():
        raise RunFolderError(f"--data {data_dir} does not exist")
    if (data_dir / "dcm").is_dir():
        settings = data_dir / "beam_settings"
        return data_dir / "dcm", settings if settings.exists() else None
    return data_dir, None


def test(run_dir: Path, *, data_dir: Path | None = None, part: str | None = None,
         progress: bool = True, allow_stale_settings: bool = False) -> outputs.TestResult:
    """Evaluates the run in `run_dir`; returns the new test folder and its metrics.

    With `data_dir`, pulses later than the settings history used (plus
    beam_settings.max_settings_age_s) refuse the test unless `allow_stale_settings`.
    """
    return _test(run_dir, data_dir=data_dir, part=part, progress=progress,
                 allow_stale_settings=allow_stale_settings)


def _test(run_dir: Path, *, data_dir: Path | None, part: str | None, progress: bool,
          allow_stale_settings: bool, scored: outputs.ScoredParts | None = None) -> outputs.TestResult:
    """`test`, reusing `scored` (the train flow's in-memory scores of this run's own parts)
    for the part asked when they were made in this flow's batches."""
    from data_preparation.pipeline import prepare_samples
    from data_preparation.split import split_indices
    from training.dataset import make_dataset
    from training.samples_flow import is_samples_run, test_samples

    run_dir = Path(run_dir)
    if is_samples_run(run_dir):  # a sessions/npz/features/text run: samples and classes
        return test_samples(run_dir, data_dir=data_dir, part=part, scored=scored)
    config, model, threshold, (trace_scaler, settings_scaler, _) = load_run(run_dir)
    if part is not None and part not in PARTS:
        raise ValueError(f"part={part!r}: expected one of {', '.join(PARTS)}")

    scores = None
    if data_dir is None:
        part = part or "test"
        reused = None if scored is None else scored.reuse(run_dir, part, SCORE_BATCH)
        if reused is not None:  # the same pulses, model and batches: the same scores
            samples, idx, scores = reused
        else:
            samples = prepare_samples(config, progress=progress)
            parts = split_indices(samples.timestamp_ns, samples.label, samples.group,
                                  config.split, seed=config.run.seed,
                                  acquisition=samples.acquisition)
            parts.pop("dropped", None)
            parts["all"] = np.arange(len(samples.label))
            idx = parts[part]
        source = f"{part} part of the run's own data ({config.data.dataset_loc})"
        where = f"the {source}"
    else:
        dcm_root, settings_root = resolve_data_dir(data_dir)
        samples = prepare_samples(config, dataset_loc=str(dcm_root),
                                  settings_location=str(settings_root) if settings_root else None,
                                  progress=progress)
        part = part or "all"
        if part != "all":
            raise ValueError("--part applies to the run's own data; with --data every pulse "
                             "of the new archive is scored (part 'all')")
        idx = np.arange(len(samples.label))
        source = f"every pulse of {data_dir}"
        where = str(data_dir)
        from data_preparation.validation import refuse_stale_settings

        refuse_stale_settings(samples.ledger, str(settings_root or config.beam_settings.data_location),
                              allow=allow_stale_settings)
    if len(idx) == 0:
        raise ValueError(f"no pulses to score in {where}; the log lists what was skipped and why")
    samples.ledger.log_summary(log)
    if scores is None:
        log.info("scoring %d pulses: %s", len(idx), source)
        dataset = make_dataset(samples, idx, trace_scaler=trace_scaler,
                               settings_scaler=settings_scaler, batch_size=SCORE_BATCH,
                               shuffle=False, input_names=outputs.input_names(model),
                               seed=config.run.seed)
        scores = outputs.predict(model, dataset)
    else:
        log.info("%d pulses: %s, scored by the train flow just before (same model and "
                 "batches); not scored again", len(idx), source)
    labels = samples.label[idx].astype(np.int64)
    metrics = compute_metrics(labels, scores, threshold.threshold,
                              pulse_rate_hz=config.threshold.pulse_rate_hz)
    online = online_figures(samples.timestamp_ns[idx], labels, scores, threshold, config.threshold)

    deployment = deployment_summary(run_dir, samples.settings[idx], labels, scores,
                                    threshold.threshold)
    out_dir = create_test_dir(run_dir)
    splits = outputs.split_summary({part: idx}, samples)
    atomic_write_json(out_dir / "metrics.json", {
        "run_id": run_dir.name, "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": source, "part": part, "threshold": threshold.to_dict(), "metrics": metrics,
        "online_threshold": online.summary,
        "split": splits[part], "ledger_summary": samples.ledger.summary(),
        "environment": outputs.environment_info(),
        "deployment": None if deployment is None else {
            k: ({**v, "flags": int(v["flags"].sum())} if k == "unseen_configuration" else v)
            for k, v in deployment.items()},
    })
    atomic_write_json(out_dir / "data_ledger.json", samples.ledger.to_dict())
    outputs.write_predictions(out_dir / "predictions.csv", samples, {part: idx}, {part: scores},
                              threshold.threshold,
                              online={part: (online.thresholds, online.alarms)} if online.summary else None)
    if deployment is not None and "unseen_configuration" in deployment:
        flags = deployment["unseen_configuration"]["flags"].astype(int)
        atomic_write_text(out_dir / "unseen_configuration.csv", "timestamp_ns,unseen_configuration\n"
                          + "".join(f"{t},{f}\n" for t, f in zip(samples.timestamp_ns[idx], flags,
                                                                  strict=True)))
    facts = [f"Data: {source}.",
             f"Threshold {threshold.threshold:.6g} chosen on the run's validation part "
             f"({threshold.method}); never tuned on these pulses."]
    notes = []
    if data_dir is None:
        facts += outputs.split_notes(config)
        notes += outputs.split_warnings(config)
    facts += deployment_notes(deployment)
    write_report(out_dir / "test_metrics_report.pdf", ReportContent(
        title="beamwatch test report",
        run_id=run_dir.name,
        created=datetime.now(UTC),
        data_period=outputs.data_period(samples, idx),
        split_sizes=splits,
        seeds=outputs.seeds_info(config),
        metrics=metrics,
        threshold=threshold.to_dict(),
        ledger_summary=samples.ledger.summary(),
        skipped_files=outputs.skipped_files(samples.ledger),
        history=None,
        labels=labels,
        scores=scores,
        example_traces=outputs.example_traces(samples, idx, labels, scores, threshold.threshold),
        config_text=dump_config(config),
        facts=facts,
        notes=notes,
        part_name=part,
        timestamps_ns=samples.timestamp_ns[idx],
        groups=samples.group[idx],
        group_descriptions=outputs.group_descriptions(samples, idx),
        trace_quantity=outputs.trace_quantity(config),
        online=online.summary,
        online_alarms=online.alarms,
        online_thresholds=online.thresholds,
    ))
    interval = metrics.get("false_alarms_per_hour_interval") or [None, None]
    log.info("%s: PR AUC %s, recall %s, false alarms per hour %s [95 %% %s-%s] (%d false "
             "alarms on %d normal pulses, %.3g s of beam at %g Hz)", part,
             outputs._f(metrics.get("pr_auc")), outputs._f(metrics.get("recall")),
             outputs._f(metrics.get("false_alarms_per_hour")), outputs._f(interval[0]),
             outputs._f(interval[1]), metrics["confusion_matrix"]["fp"], metrics["n_normal"],
             metrics["normal_beam_hours"] * 3600.0, metrics["pulse_rate_hz"])
    if online.summary:
        log.info("online threshold: false-alarm rate %s (target %s), recall %s",
                 outputs._f(online.summary["false_alarm_rate"]),
                 outputs._f(online.summary["target_false_alarm_rate"]), outputs._f(online.summary["recall"]))
    log.info("test report %s", out_dir / "test_metrics_report.pdf")
    return outputs.TestResult(out_dir, metrics, part)


test.__test__ = False  # a flow, not a pytest test, even when imported into a test module
