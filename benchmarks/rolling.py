"""Rolling-origin evaluation: can the figures choose a model, and does the threshold transfer?

One test period of a few hundred pulses cannot choose between models (PR AUC intervals of about
+-0.1). Here the archive's samples are cut into `B` contiguous time blocks of about equal sample
counts, never splitting one acquisition (DCM file); for each block `k >= 2` (0-based) every
model trains on the blocks before it - the newest `val_fraction` of that past validates (early
stopping and the threshold) - and is tested on block `k`, the next period it would run on.

Per block and model: PR AUC and ROC AUC with bootstrap intervals, recall and the achieved
false-alarm rate at the validation threshold against the target, and the same with the online
recalibration of `analysis.recalibration` where that module exists. Across blocks: a paired
bootstrap of the default model against every other model on identical test pulses (the
difference of PR AUC averaged over blocks, pulses resampled jointly within each block), and
recall at the target by precursor kind, strength and onset (truth.csv joined by timestamp).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import detection_models, detection_truth, leaky, peers
from benchmarks.rolling_figures import (
    fold_figures,
    fold_record,
    paired_comparisons,
    recalibration_function,
    summarize_model,
)
from benchmarks.rolling_folds import cut_blocks, make_folds

__all__ = ["NEURAL_MODELS", "REFERENCE_MODELS", "RollingSettings", "available_models", "run"]

log = logging.getLogger("beamwatch.benchmarks.rolling")

NEURAL_MODELS = ("sns_cnn_lstm", "sns_cnn_lstm_trace_only", "sns_reference_cnn_lstm",
                 "sns_conditional_siamese")
REFERENCE_MODELS = ("sns_reference_cnn_lstm", "sns_conditional_siamese")


@dataclasses.dataclass(frozen=True)
class RollingSettings:
    """How much work the rolling evaluation does (see `suite.PROFILES`)."""

    n_blocks: int = 5
    last_folds: int | None = None  # evaluate only the newest this many test blocks (None: all)
    blocks: tuple[int, ...] | None = None  # evaluate only these test blocks (None: all)
    val_fraction: float = 0.25     # newest share of each fold's past that validates
    seeds: tuple[int, ...] = (0,)  # neural models; the peers are deterministic (seed 0)
    epochs: int = 15
    neural: tuple[str, ...] = NEURAL_MODELS
    peers: tuple[str, ...] = peers.PEERS
    minirocket_kernels: int = 10_000
    n_boot: int = 200
    recalibration_step: float = 0.05  # online_thresholds step, used only when it has no default
    leaky: bool = True
    max_train: int | None = None  # networks: at most this many training pulses (class ratio kept)


# ----------------------------------------------------------------------------------------------
# One archive (blocks and folds: benchmarks.rolling_folds; statistics: benchmarks.rolling_figures;
# tables: benchmarks.rolling_tables)


def available_models(settings: RollingSettings, data: peers.PeerData) -> tuple[list, dict]:
    """(models to run, {model: why skipped}) for this archive and this code base."""
    from model import list_models

    registered = set(list_models())
    run, skipped = [], {}
    has_refs = data.has_references
    for name in settings.neural:
        if name not in registered:
            skipped[name] = "not a registered model in this code base"
        elif name in REFERENCE_MODELS and not has_refs:
            skipped[name] = "needs reference pulses; SampleSet.references absent or K = 0"
        else:
            run.append(name)
    for name in settings.peers:
        why = peers.unavailable(name, data)
        if why:
            skipped[name] = why
        else:
            run.append(name)
    for name, why in skipped.items():
        log.info("rolling: %s skipped: %s", name, why)
    return run, skipped


def run(archive: Path, workdir: Path, settings: RollingSettings, *, preset: str) -> dict:
    """Every available model on every fold of `archive`; the JSON-able result of one preset."""
    from analysis.thresholds import choose_threshold
    from data_preparation.pipeline import prepare_samples

    config = detection_models.bench_config(archive, workdir)
    started = time.perf_counter()
    samples = prepare_samples(config, progress=False)
    blocks = cut_blocks(samples.timestamp_ns, samples.acquisition, settings.n_blocks)
    folds = make_folds(blocks, samples.timestamp_ns, samples.acquisition,
                       val_fraction=settings.val_fraction, last_folds=settings.last_folds)
    if settings.blocks is not None:  # one slice of the work (benchmarks.device_rolling)
        folds = [f for f in folds if f["block"] in settings.blocks]
    truth = detection_truth.load_truth(archive)
    edges = detection_truth.strength_edges(truth)
    data = peers.PeerData(samples, config.model.input_pool)
    models, skipped = available_models(settings, data)
    recalibrate = recalibration_function()
    target = config.threshold.target_false_alarm_rate
    rate = config.threshold.pulse_rate_hz
    out = {
        "preset": preset, "archive": str(archive), "samples": int(len(samples)),
        "prepare_seconds": time.perf_counter() - started,
        "n_blocks": settings.n_blocks, "val_fraction": settings.val_fraction,
        "blocks": [_part_summary(samples, b) for b in blocks],
        "folds": [{"block": f["block"], **{p: _part_summary(samples, f[p])
                                           for p in ("train", "val", "test")}} for f in folds],
        "target_false_alarm_rate": target, "pulse_rate_hz": rate, "n_boot": settings.n_boot,
        "seeds": list(settings.seeds), "epochs": settings.epochs,
        "strength_edges": edges, "skipped": skipped,
        "recalibration": ("analysis.recalibration.online_thresholds" if recalibrate
                          else "not available (analysis/recalibration.py absent)"),
        "models": {},
    }
    test_scores: dict[str, list[list[np.ndarray]]] = {}
    score_rows = []

    def evaluate(name: str) -> tuple[dict, list]:
        """One model on every fold: its record and its test scores per fold and seed."""
        neural = name in settings.neural
        seeds = settings.seeds if neural else (0,)
        per_fold, runs = [], []
        model_scores = []
        for fold in folds:
            parts = {p: fold[p] for p in ("train", "val", "test")}
            seed_figures, seed_scores = [], []
            for seed in seeds:
                log.info("rolling %s: %s block %d seed %d", preset, name, fold["block"], seed)
                fitted = _fit(name, neural, samples, data, parts, archive, workdir, settings,
                              seed, preset, fold["block"])
                val_idx, test_idx = fitted["indices"]["val"], fitted["indices"]["test"]
                choice = choose_threshold(samples.label[val_idx], fitted["scores"]["val"],
                                          method="target_false_alarm_rate",
                                          target_false_alarm_rate=target)
                y_test = samples.label[test_idx]
                figures = fold_figures(y_test, fitted["scores"]["test"], choice.threshold,
                                       target=target, n_boot=settings.n_boot, seed=seed,
                                       pulse_rate_hz=rate, recalibrate=recalibrate,
                                       step=settings.recalibration_step)
                joined = detection_truth.join_truth(samples.timestamp_ns[test_idx], y_test, truth,
                                              edges)
                figures["breakdown"] = detection_truth.recall_breakdown(
                    joined, fitted["scores"]["test"], choice.threshold)
                figures["validation"] = choice.to_dict()
                figures["seed"] = seed
                seed_figures.append(figures)
                seed_scores.append(np.asarray(fitted["scores"]["test"], dtype=np.float64))
                runs.append({k: v for k, v in fitted.items()
                             if k not in ("scores", "indices")}
                            | {"seed": seed, "block": fold["block"]})
                score_rows.append(pd.DataFrame({
                    "model": name, "block": fold["block"], "seed": seed,
                    "timestamp_ns": samples.timestamp_ns[test_idx], "label": y_test,
                    "score": fitted["scores"]["test"],
                    "alarm": (fitted["scores"]["test"] >= choice.threshold).astype(int)}))
            per_fold.append(fold_record(fold["block"], seed_figures))
            model_scores.append(seed_scores)
        return ({"kind": "neural" if neural else "peer", "folds": per_fold, "runs": runs,
                 "summary": summarize_model(per_fold, target)}, model_scores)

    for name in models:
        try:
            out["models"][name], test_scores[name] = evaluate(name)
        except Exception as error:  # noqa: BLE001  one broken model must not end a long run
            log.exception("rolling %s: %s failed", preset, name)
            skipped[name] = f"failed: {type(error).__name__}: {error}"
    out["paired"] = paired_comparisons(out, test_scores, [samples.label[f["test"]]
                                                          for f in folds], settings.n_boot)
    if settings.leaky:
        out["leaky"] = leaky.compare(data.features("pulse"), data.labels, folds,
                                     smote_ratio=config.scaling.smote_ratio, seed=0)
    out["peer_data_seconds"] = dict(data.seconds)
    score_rows = [rows for rows in score_rows if rows["model"].iloc[0] in out["models"]]
    if score_rows:
        _save_scores(workdir / "scores" / f"rolling-{preset}.csv", pd.concat(score_rows))
    return out


def _fit(name, neural, samples, data, parts, archive, workdir, settings, seed, preset, block):
    if neural:
        cfg = detection_models.bench_config(archive, workdir, [*detection_models.model_overrides(
            name, settings.epochs), f"run.seed={seed}"])
        return detection_models.fit_neural(samples, parts, cfg,
                                    workdir / "runs" / f"rolling-{preset}-{name}-b{block}-s{seed}",
                                    max_train=settings.max_train)
    return peers.fit_score(name, data, parts, seed, n_kernels=settings.minirocket_kernels)


def _part_summary(samples, idx) -> dict:
    idx = np.asarray(idx)
    return {"n": int(idx.size), "n_errant": int(np.sum(samples.label[idx] == 1)),
            "start_ns": int(samples.timestamp_ns[idx].min()) if idx.size else None,
            "end_ns": int(samples.timestamp_ns[idx].max()) if idx.size else None}


def _save_scores(path: Path, frame: pd.DataFrame) -> None:
    from utils.run_folder import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, frame.to_csv(index=False))
