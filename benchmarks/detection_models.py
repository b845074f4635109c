"""Detection benchmark, part 2: the models (the bench config pointed at an archive, the
networks trained through the project's pipeline, the feature baselines)."""

from __future__ import annotations

import gc
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from parser.configs import Config, load_config

# The detection section's logger: fit_neural's lines keep the name they had in detection.py.
log = logging.getLogger("beamwatch.benchmarks.detection")

BASELINES = ("hist_gradient_boosting", "logistic_regression", "isolation_forest")
# The public prototype's recipe (aj-broderick/SNS_Anomaly_Detection, cnn-lstm/).
PROTOTYPE_OVERRIDES = (
    "model.name=sns_prototype", "train.optimizer=sgd", "train.learning_rate=0.01",
    "model.loss=focal", "model.focal_alpha=0.25", "model.focal_gamma=0.25",
    "scaling.imbalance=smote", "scaling.smote_ratio=0.6",
)


def bench_config(archive: Path, workdir: Path, overrides: Sequence[str] = ()) -> Config:
    """The default config pointed at `archive`, with caches and runs under `workdir`."""
    base = [
        f"data.dataset_loc={archive / 'dcm'}",
        f"beam_settings.data_location={archive / 'beam_settings'}",
        f"data.cache_dir={workdir / 'cache'}",
        f"run.output_dir={workdir / 'runs'}",
        f"run.log_dir={workdir / 'logs'}",
        "run.demo_archive=false",
        "train.tensorboard=false",
        "train.streaming=false",
    ]
    return load_config(None, [*base, *overrides])


# ----------------------------------------------------------------------------------------------
# Neural models through the project's pipeline


def model_overrides(name: str, epochs: int) -> list[str]:
    if name == "sns_prototype":
        return [*PROTOTYPE_OVERRIDES, f"train.epochs={epochs}"]
    return [f"model.name={name}", f"train.epochs={epochs}"]


def fit_neural(samples, parts: dict, config: Config, work_dir: Path, *,
               score_parts: Sequence[str] = ("val", "test"),
               max_train: int | None = None, max_score: int | None = None) -> dict:
    """Train `config.model.name` on the training part as the train flow does; score the parts.

    The data steps are the pipeline's (`fit_scalers`, `balance_training` on the training part
    only); build, fit, best weights, scores and the validation threshold are
    `training.fit.fit_and_threshold`, the train flow's own code. Returns `{"scores": {part:
    array}, "indices": {part: array}, "epochs_trained", "train_seconds", "params",
    "train_samples"}` (all JSON-able but the arrays). `max_train` keeps every errant training pulse and a seeded
    random subset of the normal ones (for slow models on a small budget).
    """
    import keras

    from data_preparation.pipeline import balance_training, fit_scalers
    from training.fit import TrainingPart, class_sample_weight, fit_and_threshold, input_spec

    seed = config.run.seed
    keras.utils.set_random_seed(seed)
    train_idx = subsample(parts["train"], samples.label, max_train, seed)
    trace_scaler, settings_scaler = fit_scalers(samples, train_idx, config.scaling, seed=seed)
    train_samples, fit_idx, weights = balance_training(
        samples, train_idx, config.scaling, trace_scaler, settings_scaler, seed=seed)
    sample_weight = class_sample_weight(train_samples.label[fit_idx], weights)
    if work_dir.exists():
        shutil.rmtree(work_dir)  # BackupAndRestore would resume an old run
    work_dir.mkdir(parents=True)
    indices = {part: subsample(parts[part], samples.label, max_score, seed)
               for part in dict.fromkeys(("val", *score_parts))}
    fitted = fit_and_threshold(
        config, input_spec(samples), train=TrainingPart(train_samples, fit_idx, sample_weight),
        samples=samples, score_parts=indices, trace_scaler=trace_scaler,
        settings_scaler=settings_scaler, work_dir=work_dir, logger=log, log_epochs=False)
    out = {"scores": {p: fitted.scores[p] for p in score_parts},
           "indices": {p: indices[p] for p in score_parts},
           "train_seconds": fitted.train_seconds,
           "epochs_trained": fitted.epochs_trained, "params": fitted.params,
           "train_samples": int(len(fit_idx))}
    # A rolling run trains 18+ networks in one process, which grew by 1.5-2 GB per network on
    # the realistic archive (2026-11-27, --standard); drop this one's state before the next.
    del fitted, train_samples
    keras.backend.clear_session()
    gc.collect()
    return out


def input_spec(samples, config: Config):
    """The `InputSpec` of `samples`, as the train flow builds it (`training.fit.input_spec`).

    `config` is not read (the settings columns are the samples' own); kept for old callers.
    """
    from training.fit import input_spec as sample_input_spec

    return sample_input_spec(samples)


def subsample(idx, labels, limit: int | None, seed: int) -> np.ndarray:
    """At most `limit` of `idx`, drawn per class in proportion (at least 2 of each), sorted."""
    idx = np.asarray(idx, dtype=np.int64)
    if limit is None or idx.size <= limit:
        return idx
    rng = np.random.default_rng(seed)
    errant = idx[labels[idx] == 1]
    normal = idx[labels[idx] == 0]
    n_errant = min(errant.size, max(2, int(round(limit * errant.size / idx.size))))
    n_normal = min(normal.size, limit - n_errant)
    return np.sort(np.concatenate([rng.choice(errant, size=n_errant, replace=False),
                                   rng.choice(normal, size=n_normal, replace=False)]))


# ----------------------------------------------------------------------------------------------
# Baselines on hand-made features


def baseline_scores(name: str, x: np.ndarray, labels: np.ndarray, parts: dict, seed: int) -> dict:
    """Fit baseline `name` on the training rows of `x`; scores of the val and test rows."""
    from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train = parts["train"]
    started = time.perf_counter()
    if name == "hist_gradient_boosting":
        est = HistGradientBoostingClassifier(class_weight="balanced", random_state=seed)
        est.fit(x[train], labels[train])
        score = lambda rows: est.predict_proba(x[rows])[:, 1]  # noqa: E731
    elif name == "logistic_regression":
        est = make_pipeline(StandardScaler(),
                            LogisticRegression(class_weight="balanced", max_iter=5000))
        est.fit(x[train], labels[train])
        score = lambda rows: est.predict_proba(x[rows])[:, 1]  # noqa: E731
    elif name == "isolation_forest":
        normal = train[labels[train] == 0]
        est = make_pipeline(StandardScaler(),
                            IsolationForest(n_estimators=200, random_state=seed))
        est.fit(x[normal])
        score = lambda rows: -est.decision_function(x[rows])  # noqa: E731
    else:
        raise ValueError(f"unknown baseline {name!r}; expected one of {BASELINES}")
    seconds = time.perf_counter() - started
    return {"scores": {p: np.asarray(score(parts[p]), dtype=np.float64) for p in ("val", "test")},
            "indices": {p: parts[p] for p in ("val", "test")}, "train_seconds": seconds}

