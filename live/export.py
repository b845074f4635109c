"""`driver.py --export`: turn a trained run into artefacts a caller can use without this project.

Writes `RUN/export/`:

    saved_model/          TensorFlow SavedModel, signatures `serving_default` (any batch) and
                          `serve_one` (batch 1, XLA-compiled: the per-pulse path), raw inputs
                          with the run's fitted scaling built in (`live.serving`); a
                          reference model also `encode`/`score` (each pulse encoded once);
                          a history model also takes "history" and "history_count"
    model_float32.tflite  LiteRT, batch 1, built-in ops only (variables frozen: the LSTM's while
                          loop then lowers to TFLite ops; see `_litert_bytes`)
    model_int8.tflite     the same with dynamic-range int8 weights
    serving.json          how to call them: input shapes, threshold, the DCM window rule, the
                          settings PVs, the reference and history rules, the
                          unseen-configuration detector
    parity.json           every format against the Keras model on the run's test part (and
                          the encode-once path: each pulse and reference encoded alone)

ONNX is written when `tf2onnx` is installed and converts the serving function; otherwise
parity.json says why not. Which formats exist, what each writes and how it is scored is the
registry `live.formats.FORMATS`; this module runs them. The directory is built beside the run
and swapped in whole, so a crash never leaves half an export.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from analysis.thresholds import ThresholdChoice
from analysis.unseen import DEFAULT_QUANTILE, fit_unseen
from live.formats import BASE_FORMAT, FORMATS
from live.serving import (
    ENCODE_ONCE_SIGNATURES,
    Scaling,
    build_serving_module,
    input_layout,
)
from utils.run_folder import atomic_write_json
from utils.serving_files import (
    EXPORT_DIR,
    PARITY_JSON,
    SERVING_FORMAT,
    SERVING_JSON,
    artefact_sha256,
)

log = logging.getLogger("beamwatch.export")

HISTORY_RULE = ("the N pulses of the same file just before the pulse, well-formed, Alarm 0, "
                "strictly earlier, oldest first and right-aligned (slot N-1 = the pulse just "
                "before); empty slots zero; history_count = the filled (last) slots, 0..N; "
                "the history starts empty with each file")

FLOAT_PARITY = 1e-4   # max |score difference| a float format may show
INT8_PR_AUC = 0.01    # max PR AUC change the int8 model may show


@dataclasses.dataclass
class ExportResult:
    out_dir: Path
    formats: dict       # format -> {"path", "bytes"} or {"error"}
    parity: dict


def export_run(run_dir: Path, formats: tuple[str, ...] | None = None, *, progress: bool = True,
               max_parity_pulses: int = 5000) -> ExportResult:
    """Export the run in `run_dir` (see the module docstring); returns what was written.

    `formats`: names in `live.formats.FORMATS` (`parse_formats` checks a user's list); None
    exports every registered format. The SavedModel is always written."""
    from model import split_encode_once
    from testing.test import load_run

    run_dir = Path(run_dir)
    config, model, threshold, (trace_scaler, settings_scaler, _) = load_run(run_dir)
    layout = input_layout(model)
    scaling = Scaling.from_scalers(trace_scaler, settings_scaler)
    formats = tuple(FORMATS) if formats is None else tuple(formats)
    data = _run_data(config, model, trace_scaler, settings_scaler, progress, max_parity_pulses)

    # a plain mkdir (the user's umask), not mkdtemp (0700): the account that deploys the
    # artefact - a controls engineer's, an IOC's - must be able to read it
    tmp = run_dir / f".export-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    try:
        module = build_serving_module(model, scaling)
        written = write_artefacts(module, layout, tmp, (BASE_FORMAT, *formats))
        unseen = _unseen(data)
        meta = serving_metadata(config, layout, scaling, threshold, unseen, written,
                                split_encode_once(model))
        atomic_write_json(tmp / SERVING_JSON, meta)
        parity = parity_report(tmp, written, layout, data, float(threshold.threshold),
                               meta["encode_once"] is not None)
        parity["created"] = datetime.now(UTC).isoformat(timespec="seconds")
        atomic_write_json(tmp / PARITY_JSON, parity)
        out = run_dir / EXPORT_DIR
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for name, info in written.items():
        log.info("export %s: %s", name, info.get("path") or info.get("error"))
    log.info("parity on %d %s pulses: %s", parity["n_pulses"], parity["data"],
             {k: v.get("max_abs_diff") for k, v in parity["formats"].items()})
    return ExportResult(out, written, parity)


def online_settings(threshold_config, threshold: ThresholdChoice) -> dict | None:
    """What the live tracker needs: the per-pulse target (from false alarms per hour where the
    operating point is given so) and the step; None when `threshold.online` is off."""
    if not threshold_config.online:
        return None
    target = threshold.target_false_alarm_rate or threshold_config.target_false_alarm_rate
    return {"target_false_alarm_rate": float(target), "step": threshold_config.online_step,
            "false_alarms_per_hour": threshold.false_alarms_per_hour}


def write_artefacts(module, layout, folder: Path, formats) -> dict:
    """The artefacts of `formats` (names in `live.formats.FORMATS`) written into `folder` in
    registry order: {artefact key: {"path", "bytes", "sha256", ...} or {"error"}}."""
    written: dict = {}
    for export_format in FORMATS.values():  # registry order, whatever order was asked
        if export_format.name in formats:
            for artefact in export_format.artefacts:
                written[artefact.key] = artefact.write(module, layout, folder / artefact.file)
    for info in written.values():  # the watcher checks it before loading
        if "path" in info:
            info["sha256"] = artefact_sha256(folder / info["path"])
    return written


class ExportParityError(RuntimeError):
    """An exported artefact scores the test pulses outside its parity tolerance."""


def check_parity(result: ExportResult) -> None:
    """Refuse an export whose parity.json marks an artefact out of tolerance (`--export` exits
    non-zero; the watcher refuses that artefact, `utils.serving_files.check_artefact`)."""
    bad = {name: entry for name, entry in result.parity["formats"].items()
           if entry.get("within_tolerance") is False}
    if bad:
        shown = "; ".join(
            f"{name}: max |dscore| {entry['max_abs_diff']:.2e}, dPR AUC {entry['delta_pr_auc']}"
            for name, entry in bad.items())
        raise ExportParityError(
            f"{result.out_dir / PARITY_JSON}: out of parity tolerance (float {FLOAT_PARITY:g}, "
            f"int8 PR AUC {INT8_PR_AUC:g}): {shown}; do not deploy it (--watch refuses it)")


def serving_metadata(config, layout, scaling: Scaling, threshold: ThresholdChoice, unseen,
                     written, encode_once=None) -> dict:
    """serving.json: everything a caller (and `--watch`) needs besides the artefact
    (`encode_once`: the model's `model.EncodeOnce` split, None when it has none)."""
    data = config.data
    reference = None
    if layout.n_references:
        rule = config.reference  # exists wherever a model with a reference input was trained
        reference = {"count": layout.n_references, "window_s": rule.window_s,
                     "min_count": rule.min_count, "missing": rule.missing,
                     "own_file": rule.own_file, "min_age_s": rule.min_age_s}
    history = None
    if layout.n_history:
        history = {"count": layout.n_history, "rule": HISTORY_RULE}
    bpm = config.beam_settings
    return {
        "format": SERVING_FORMAT,
        "model": config.model.name,
        "layout": layout.to_dict(),
        "output": "score: float32 [batch] in [0, 1], higher = next pulse more likely errant",
        "threshold": float(threshold.threshold),
        "threshold_method": threshold.method,
        # the online recalibration live scoring runs from that threshold (None: fixed)
        "online": online_settings(config.threshold, threshold),
        "window": {"var_id": data.var_id, "begin": data.begin, "shift": data.shift,
                   "alarm": data.alarm, "bwidth_cut": data.bwidth_cut},
        # the PVs in input order; also for a trace-only model (the unseen-configuration flag
        # and the production filter still need them)
        "settings": {"use": bpm.use, "features": list(bpm.features) if bpm.use else [],
                     "production_filter": dict(bpm.production_filter),
                     "group_tolerance": bpm.group_tolerance},
        "pulse_rate_hz": config.threshold.pulse_rate_hz,
        "reference": reference,
        # a history model: what the caller feeds as "history" / "history_count" (live.history)
        "history": history,
        # a reference model's SavedModel also encodes once: live scoring keeps each pulse's
        # features ([steps, channels]) and scores from stored ones (live.serving)
        "encode_once": None if encode_once is None else {
            "features": list(encode_once.feature_shape),
            "signatures": list(ENCODE_ONCE_SIGNATURES)},
        "scaling": scaling.to_dict(),
        "unseen_configuration": None if unseen is None else unseen.to_dict(),
        "artefacts": {k: v for k, v in written.items()},
        "usage": {f.name: f.usage for f in FORMATS.values() if f.usage},
    }


# ----------------------------------------------------------------------------------------------
# Data for parity and the unseen-configuration radius


@dataclasses.dataclass
class RunData:
    """The run's pulses the export checks parity on and fits the unseen-configuration radius
    with (`train_settings`/`val_settings` None: a model without settings)."""

    raw: dict            # name -> raw float32 inputs of the parity pulses
    labels: np.ndarray
    keras_scores: np.ndarray
    source: str
    train_settings: np.ndarray | None   # scaled, for the unseen-configuration anchors
    val_settings: np.ndarray | None


def _run_data(config, model, trace_scaler, settings_scaler, progress, limit) -> RunData:
    """The run's test part (raw inputs and Keras scores, via the test flow's pipeline)."""
    from data_preparation.pipeline import prepare_samples
    from data_preparation.split import split_indices
    from training import outputs
    from training.dataset import make_dataset

    samples = prepare_samples(config, progress=progress)
    parts = split_indices(samples.timestamp_ns, samples.label, samples.group, config.split,
                          seed=config.run.seed, acquisition=samples.acquisition)
    idx = parts["test"][:limit]
    names = outputs.input_names(model)
    dataset = make_dataset(samples, idx, trace_scaler=trace_scaler,
                           settings_scaler=settings_scaler, batch_size=256, shuffle=False,
                           input_names=names, seed=config.run.seed)
    keras_scores = outputs.predict(model, dataset)
    raw = {"trace": np.asarray(samples.traces[idx], dtype=np.float32)}
    if "settings" in names:
        raw["settings"] = np.asarray(samples.settings[idx], dtype=np.float32)
    if "reference" in names:
        raw["reference"] = np.asarray(samples.references[idx], dtype=np.float32)
    if "history" in names:  # the raw windows (empty slots zero) and the filled slots
        raw["history"] = np.asarray(samples.history[idx], dtype=np.float32)
        raw["history_count"] = samples.history_count[idx].astype(np.float32)
    with_settings = samples.settings.shape[1] > 0
    return RunData(
        raw=raw, labels=samples.label[idx].astype(np.int64), keras_scores=keras_scores,
        source=f"test part of {config.data.dataset_loc}",
        train_settings=settings_scaler.transform(samples.settings[parts["train"]])
        if with_settings else None,
        val_settings=settings_scaler.transform(samples.settings[parts["val"]])
        if with_settings else None,
    )


def _unseen(data: RunData):
    if data.train_settings is None or not len(data.val_settings):
        return None
    return fit_unseen(data.train_settings, data.val_settings, DEFAULT_QUANTILE)


# ----------------------------------------------------------------------------------------------
# Parity


def parity_report(out: Path, written: dict, layout, data: RunData, threshold: float,
                  encode_once: bool) -> dict:
    """Each written artefact scores the same raw test pulses, in each of its registered ways
    (`live.formats.ParityRow`); compare with the Keras model."""
    from analysis.evaluation import compute_metrics

    def pr_auc(scores):
        return compute_metrics(data.labels, scores, threshold).get("pr_auc")

    reference = pr_auc(data.keras_scores)
    result = {"data": data.source, "n_pulses": int(data.labels.size),
              "n_errant": int(data.labels.sum()), "keras_pr_auc": reference,
              "float_tolerance": FLOAT_PARITY, "int8_pr_auc_tolerance": INT8_PR_AUC,
              "inputs": list(layout.names), "formats": {}}
    if layout.n_history:  # the parity pulses' history counts: empty, partial and full slots
        counts = np.asarray(data.raw["history_count"]).astype(np.int64)
        result["history_counts"] = {str(c): int((counts == c).sum())
                                    for c in range(layout.n_history + 1)}
    for export_format in FORMATS.values():
        for artefact in export_format.artefacts:
            info = written.get(artefact.key)
            if info is None:
                continue
            rows = [row for row in artefact.parity if encode_once or not row.encode_once_only]
            if "error" in info:
                result["formats"].update({row.name: {"error": info["error"]} for row in rows})
                continue
            backend = export_format.backend(out / artefact.file, layout)  # once per artefact
            for row in rows:
                result["formats"][row.name] = _parity_entry(
                    row, row.score(backend, data.raw), data.keras_scores, pr_auc, reference,
                    info["bytes"])
    return result


def _parity_entry(row, scores: np.ndarray, keras_scores: np.ndarray, pr_auc, reference,
                  size: int) -> dict:
    """One parity.json row: differences from the Keras scores, PR AUC, within tolerance."""
    diff = np.abs(scores - keras_scores)
    auc = pr_auc(scores)
    entry = {"max_abs_diff": float(diff.max()) if diff.size else 0.0,
             "mean_abs_diff": float(diff.mean()) if diff.size else 0.0,
             "pr_auc": auc,
             "delta_pr_auc": None if auc is None or reference is None else auc - reference,
             "bytes": size}
    if row.tolerance == "pr_auc":
        entry["within_tolerance"] = (entry["delta_pr_auc"] is None
                                     or abs(entry["delta_pr_auc"]) <= INT8_PR_AUC)
    else:
        entry["within_tolerance"] = entry["max_abs_diff"] <= FLOAT_PARITY
    return entry


# ----------------------------------------------------------------------------------------------
# Files


def _swap_in(tmp: Path, out: Path) -> None:
    """Replace `out` by the finished `tmp` folder: rename the old one away, rename, remove."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}-old-{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# Names other modules import from here (the file layout and the test flow's deployment figures
# now live in utils.serving_files, testing.deployment and analysis.deployment).
__all__ = ["ExportParityError", "ExportResult", "RunData", "check_parity", "export_run",
    "parity_report", "serving_metadata", "write_artefacts"]
