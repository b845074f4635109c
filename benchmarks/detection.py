"""Detection quality on a fixed simulated archive: the project's models against simple baselines.

One archive (fixed seed), one time split 70/15/15, one operating point per model chosen on the
validation part (the default config's target false-alarm rate), figures on the test part with
bootstrap 95 % intervals. Models:

* `sns_cnn_lstm` (the default), `sns_cnn_lstm_trace_only`, and `sns_prototype` with the public
  prototype's recipe (SGD, focal loss alpha 0.25 gamma 0.25, SMOTE to 0.6 on the training part);
  trained through the project's own pipeline (`prepare_samples`, `split_indices`, `fit_scalers`,
  `balance_training`, `make_dataset`, `build_model`, `compile_model`, the train flow's callbacks).
* `HistGradientBoostingClassifier` and logistic regression on hand-made trace features plus the
  beam settings; `IsolationForest` fitted on the normal training pulses only.

Recall is also broken down by the simulator's truth (precursor kind, strength bin), joined to the
test pulses by timestamp, with the ceiling: the share of test trips that have any precursor.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import stats
from benchmarks.detection_calibration import calibration_checks
from benchmarks.detection_models import (
    BASELINES,
    baseline_scores,
    bench_config,
    fit_neural,
    model_overrides,
)
from benchmarks.detection_truth import join_truth, load_truth, recall_breakdown, strength_edges
from benchmarks.features import feature_names, trace_features

__all__ = ["DetectionSettings", "NEURAL_MODELS", "run"]

log = logging.getLogger("beamwatch.benchmarks.detection")

NEURAL_MODELS = ("sns_cnn_lstm", "sns_cnn_lstm_trace_only", "sns_prototype")


@dataclasses.dataclass(frozen=True)
class DetectionSettings:
    """How much work the detection benchmark does (see `suite.PROFILES`)."""

    seeds: tuple[int, ...] = (0,)
    epochs: int = 4
    prototype_epochs: int = 1
    prototype_max_train: int | None = 600   # cap on real training pulses for the prototype
    prototype_max_score: int | None = None  # cap on val/test pulses the prototype scores
    n_boot: int = 200
    models: tuple[str, ...] = NEURAL_MODELS + BASELINES


# ----------------------------------------------------------------------------------------------
# The benchmark (archive and truth: benchmarks.detection_truth; models: benchmarks.detection_models;
# calibration checks: benchmarks.detection_calibration; tables: benchmarks.detection_tables)


def run(archive: Path, workdir: Path, settings: DetectionSettings) -> dict:
    """Every model on `archive`; returns the JSON-able detection section."""
    from analysis.thresholds import choose_threshold
    from data_preparation.pipeline import prepare_samples
    from data_preparation.split import split_indices

    config = bench_config(archive, workdir)
    started = time.perf_counter()
    samples = prepare_samples(config, progress=False)
    parts = split_indices(samples.timestamp_ns, samples.label, samples.group, config.split,
                          seed=config.run.seed, acquisition=samples.acquisition)
    parts.pop("dropped", None)
    truth = load_truth(archive)
    edges = strength_edges(truth)
    prep_seconds = time.perf_counter() - started
    far = config.threshold.target_false_alarm_rate
    rate = config.threshold.pulse_rate_hz
    out = {
        "archive": str(archive),
        "samples": int(len(samples)), "prepare_seconds": prep_seconds,
        "split": {p: {"n": int(len(i)), "n_errant": int(samples.label[i].sum())}
                  for p, i in parts.items()},
        "target_false_alarm_rate": far, "pulse_rate_hz": rate, "n_boot": settings.n_boot,
        "strength_edges": edges, "models": {},
    }
    features = None
    for name in settings.models:
        per_seed, runs = [], []
        seeds = (0,) if name == "logistic_regression" else settings.seeds
        for seed in seeds:
            log.info("detection: %s seed %d", name, seed)
            if name in NEURAL_MODELS:
                epochs = settings.prototype_epochs if name == "sns_prototype" else settings.epochs
                cfg = bench_config(archive, workdir,
                                   [*model_overrides(name, epochs), f"run.seed={seed}"])
                proto = name == "sns_prototype"
                fitted = fit_neural(
                    samples, parts, cfg, workdir / "runs" / f"{name}-s{seed}",
                    max_train=settings.prototype_max_train if proto else None,
                    max_score=settings.prototype_max_score if proto else None)
            else:
                if features is None:
                    t0 = time.perf_counter()
                    features = np.concatenate([trace_features(samples.traces),
                                               samples.settings.astype(np.float64)], axis=1)
                    out["feature_seconds"] = time.perf_counter() - t0
                    out["feature_names"] = feature_names() + list(samples.settings_names)
                fitted = baseline_scores(name, features, samples.label.astype(np.int64), parts,
                                         seed)
            val_idx, test_idx = fitted["indices"]["val"], fitted["indices"]["test"]
            choice = choose_threshold(samples.label[val_idx], fitted["scores"]["val"],
                                      method="target_false_alarm_rate",
                                      target_false_alarm_rate=far)
            figures = stats.scored_figures(samples.label[test_idx], fitted["scores"]["test"],
                                           choice.threshold, pulse_rate_hz=rate,
                                           n_boot=settings.n_boot, seed=seed)
            joined = join_truth(samples.timestamp_ns[test_idx], samples.label[test_idx],
                                truth, edges)
            figures["breakdown"] = recall_breakdown(joined, fitted["scores"]["test"],
                                                    choice.threshold)
            figures["validation"] = choice.to_dict()
            figures.pop("metrics")
            _save_scores(workdir / "scores" / f"{name}-s{seed}.csv", samples, fitted,
                         choice.threshold)
            per_seed.append(figures)
            runs.append({k: v for k, v in fitted.items() if k not in ("scores", "indices")}
                        | {"seed": seed, "n_test_scored": int(len(test_idx))})
        out["models"][name] = {"summary": stats.combine_seeds(per_seed), "seeds": per_seed,
                               "runs": runs}
    out["calibration"] = calibration_checks(out)
    return out


def _save_scores(path: Path, samples, fitted: dict, threshold: float) -> None:
    """The validation and test scores of one model, for auditing a table cell."""
    from utils.run_folder import atomic_write_text

    frames = [pd.DataFrame({"part": part, "timestamp_ns": samples.timestamp_ns[idx],
                            "label": samples.label[idx], "score": fitted["scores"][part],
                            "alarm": (fitted["scores"][part] >= threshold).astype(int)})
              for part, idx in fitted["indices"].items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, pd.concat(frames).to_csv(index=False))
