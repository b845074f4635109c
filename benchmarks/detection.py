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
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks import stats
from benchmarks.features import feature_names, trace_features
from benchmarks.report import render_table
from parser.configs import Config, load_config

log = logging.getLogger("beamwatch.benchmarks.detection")

NEURAL_MODELS = ("sns_cnn_lstm", "sns_cnn_lstm_trace_only", "sns_prototype")
BASELINES = ("hist_gradient_boosting", "logistic_regression", "isolation_forest")
# The public prototype's recipe (aj-broderick/SNS_Anomaly_Detection, cnn-lstm/).
PROTOTYPE_OVERRIDES = (
    "model.name=sns_prototype", "train.optimizer=sgd", "train.learning_rate=0.01",
    "model.loss=focal", "model.focal_alpha=0.25", "model.focal_gamma=0.25",
    "scaling.imbalance=smote", "scaling.smote_ratio=0.6",
)
STRENGTH_BINS = ("weak", "medium", "strong")
ONSET = "precursor_onset"  # truth.csv: pulses before the trip where the precursor began (0 none)
ONSET_BINS = 4             # onsets of this many pulses or more share one bin
# Calibration: what "clearly below" means for the simulator checks (PR AUC points).
CLEAR_MARGIN = 0.05
WEAK_RECALL_MAX = 0.8     # weak precursors caught less often than this: not trivial
STRONG_RECALL_MIN = 0.5   # strong precursors caught at least this often: not hopeless


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
# Config and data


def ensure_archive(path: Path, params) -> dict:
    """Simulate `params` into `path` unless an archive of exactly these parameters is there.

    Returns `{"path", "simulate_seconds" (0 when reused), "summary"}`.
    """
    import json

    from enterprise_tools.sns_simulator import simulate_archive

    path = Path(path)
    recorded = path / "simulation.json"
    if (path / "truth.csv").exists() and recorded.exists():
        saved = json.loads(recorded.read_text())
        wanted = json.loads(json.dumps(dataclasses.asdict(params)))
        if saved.get("params") == wanted:
            return {"path": str(path), "simulate_seconds": 0.0, "reused": True,
                    "summary": saved.get("summary", {})}
    if path.exists():
        shutil.rmtree(path)
    started = time.perf_counter()
    summary = simulate_archive(path, params, workers=os.cpu_count() or 1)
    return {"path": str(path), "simulate_seconds": time.perf_counter() - started,
            "reused": False, "summary": dataclasses.asdict(summary) | {"out_dir": None}}


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


def load_truth(archive: Path) -> pd.DataFrame:
    """The simulator's truth table, one row per sample pulse (label 0 or 1)."""
    path = archive / "truth.csv"
    truth = pd.read_csv(path)
    needed = {"timestamp_ns", "label", "precursor_kind", "precursor_strength"}
    missing = needed - set(truth.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}; expected the "
                         "sns_simulator truth.csv layout (docs/internals.md)")
    truth = truth[truth["label"].isin([0, 1])]
    return truth.drop_duplicates(subset=["timestamp_ns", "label"])


def strength_edges(truth: pd.DataFrame) -> list[float]:
    """Tertile edges of the precursor strength over all errant samples that have a precursor."""
    errant = truth[(truth["label"] == 1) & (truth["precursor_kind"] != "none")]
    strengths = errant["precursor_strength"].astype(float).to_numpy()
    if strengths.size < 3:
        return [float("-inf"), float("inf")]
    return [float(v) for v in np.quantile(strengths, [1 / 3, 2 / 3])]


def join_truth(timestamp_ns, label, truth: pd.DataFrame, edges: Sequence[float]) -> pd.DataFrame:
    """Per pulse: precursor kind, strength bin and (when truth has it) onset bin.

    Bins are "" for normal pulses and trips without a precursor.
    """
    pulses = pd.DataFrame({"timestamp_ns": np.asarray(timestamp_ns, dtype=np.int64),
                           "label": np.asarray(label, dtype=np.int64)})
    columns = ["timestamp_ns", "label", "precursor_kind", "precursor_strength"]
    if ONSET in truth.columns:  # the realistic simulator's truth.csv has it; older ones do not
        columns.append(ONSET)
    joined = pulses.merge(truth[columns], on=["timestamp_ns", "label"], how="left")
    kind = joined["precursor_kind"].fillna("unknown").astype(str)
    strength = joined["precursor_strength"].astype(float).to_numpy()
    bins = np.array(STRENGTH_BINS)[np.searchsorted(np.asarray(edges), strength, side="right")
                                   .clip(0, len(STRENGTH_BINS) - 1)]
    has_precursor = (joined["label"] == 1) & ~kind.isin(["none", "unknown"])
    joined["strength_bin"] = np.where(has_precursor, bins, "")
    joined["precursor_kind"] = kind
    if ONSET in joined.columns:
        onset = joined[ONSET].fillna(0).astype(np.int64).to_numpy()
        joined["onset_bin"] = np.where(has_precursor & (onset > 0), _onset_bin(onset), "")
    return joined


def _onset_bin(onset: np.ndarray) -> np.ndarray:
    """"1", "2", ... pulses before the trip, the longest lead times pooled as ">=N"."""
    last = ONSET_BINS
    return np.where(onset >= last, f">={last}", onset.astype(str))


def recall_breakdown(joined: pd.DataFrame, scores, threshold: float) -> dict:
    """Recall at the operating point by precursor kind, strength bin and onset (when joined),
    and the ceiling."""
    errant = (joined["label"] == 1).to_numpy()
    alarm = np.asarray(scores) >= threshold
    kinds = joined["precursor_kind"].to_numpy()
    bins = joined["strength_bin"].to_numpy()
    out = {"by_kind": {}, "by_strength": {}}
    for kind in sorted(set(kinds[errant])):
        members = errant & (kinds == kind)
        out["by_kind"][kind] = _caught(alarm, members)
    for name in STRENGTH_BINS:
        members = errant & (bins == name)
        if members.any():
            out["by_strength"][name] = _caught(alarm, members)
    if "onset_bin" in joined.columns:
        onsets = joined["onset_bin"].to_numpy()
        out["by_onset"] = {name: _caught(alarm, errant & (onsets == name))
                           for name in sorted(set(onsets[errant]) - {""})}
    with_precursor = errant & ~np.isin(kinds, ["none", "unknown"])
    out["ceiling"] = {"with_precursor": int(with_precursor.sum()), "trips": int(errant.sum()),
                      "share": stats.ratio(int(with_precursor.sum()), int(errant.sum()))}
    out["unmatched"] = int(np.sum(errant & (kinds == "unknown")))
    return out


def _caught(alarm, members) -> dict:
    caught, total = int(np.sum(alarm & members)), int(np.sum(members))
    return {"caught": caught, "total": total, "recall": stats.ratio(caught, total)}


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
    from training.fit import TrainingPart, class_sample_weight, fit_and_threshold

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
        config, input_spec(samples, config), train=TrainingPart(train_samples, fit_idx,
                                                                sample_weight),
        samples=samples, score_parts=indices, trace_scaler=trace_scaler,
        settings_scaler=settings_scaler, work_dir=work_dir, logger=log, log_epochs=False)
    return {"scores": {p: fitted.scores[p] for p in score_parts},
            "indices": {p: indices[p] for p in score_parts},
            "train_seconds": fitted.train_seconds,
            "epochs_trained": fitted.epochs_trained, "params": fitted.params,
            "train_samples": int(len(fit_idx))}


def input_spec(samples, config: Config):
    """The `InputSpec` of `samples`: trace shape, settings when used, reference count if any."""
    from model import InputSpec

    length, channels = samples.trace_shape
    n_settings = int(samples.settings.shape[1]) if config.beam_settings.use else 0
    return InputSpec(trace_length=int(length), n_channels=int(channels), n_settings=n_settings,
                     n_references=samples.n_references)


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


# ----------------------------------------------------------------------------------------------
# The benchmark


def run(archive: Path, workdir: Path, settings: DetectionSettings) -> dict:
    """Every model on `archive`; returns the JSON-able detection section."""
    from analysis.thresholds import choose_threshold
    from data_preparation.data_scaling import split_indices
    from data_preparation.pipeline import prepare_samples

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
                                      method=config.threshold.operating_point,
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


# ----------------------------------------------------------------------------------------------
# Simulator calibration


def _pr(result: dict, name: str) -> dict | None:
    model = result["models"].get(name)
    return None if model is None else model["summary"]["pr_auc"]


def _pooled_bin(model: dict, bin_name: str) -> dict | None:
    caught = total = 0
    for seed in model["seeds"]:
        cell = seed["breakdown"]["by_strength"].get(bin_name)
        if cell:
            caught, total = caught + cell["caught"], total + cell["total"]
    return {"caught": caught, "total": total, "recall": stats.ratio(caught, total)} if total else None


def calibration_checks(result: dict) -> list[dict]:
    """Is the simulated task neither trivial nor hopeless? One dict per check, with the figures."""
    checks = []
    neural = [n for n in ("sns_cnn_lstm", "sns_cnn_lstm_trace_only", "sns_prototype")
              if n in result["models"]]
    if not neural:
        return checks
    best = max(neural, key=lambda n: _pr(result, n)["mean"] or -1.0)
    weak = _pooled_bin(result["models"][best], "weak")
    strong = _pooled_bin(result["models"][best], "strong")
    if weak is not None:
        checks.append({
            "check": f"weak precursors not trivial ({best})",
            "figure": f"weak-bin recall {weak['caught']}/{weak['total']} = "
                      f"{stats.format_number(weak['recall'])}",
            "criterion": f"< {WEAK_RECALL_MAX}", "passed": weak["recall"] < WEAK_RECALL_MAX})
    if strong is not None:
        checks.append({
            "check": f"strong precursors learnable ({best})",
            "figure": f"strong-bin recall {strong['caught']}/{strong['total']} = "
                      f"{stats.format_number(strong['recall'])}",
            "criterion": f">= {STRONG_RECALL_MIN}",
            "passed": strong["recall"] >= STRONG_RECALL_MIN})
    ceiling = result["models"][best]["seeds"][0]["breakdown"]["ceiling"]["share"]
    recall = result["models"][best]["summary"]["recall"]["mean"]
    if ceiling is not None and recall is not None:
        checks.append({
            "check": f"overall recall below the ceiling ({best})",
            "figure": f"recall {stats.format_number(recall)} vs ceiling "
                      f"{stats.format_number(ceiling)}",
            "criterion": "recall < ceiling", "passed": recall < ceiling})
    for other, label in (("hist_gradient_boosting", "feature baseline clearly below best model"),
                         ("sns_cnn_lstm_trace_only", "trace-only clearly below settings-aware")):
        reference = best if other != "sns_cnn_lstm_trace_only" else "sns_cnn_lstm"
        a, b = _pr(result, reference), _pr(result, other)
        if a is None or b is None or a["mean"] is None or b["mean"] is None or other == reference:
            continue
        gap = a["mean"] - b["mean"]
        checks.append({
            "check": label,
            "figure": f"PR AUC {reference} {stats.format_number(a['mean'])} vs {other} "
                      f"{stats.format_number(b['mean'])} (gap {gap:+.3f})",
            "criterion": f"gap >= {CLEAR_MARGIN}", "passed": gap >= CLEAR_MARGIN})
    return checks


# ----------------------------------------------------------------------------------------------
# Tables


def _cell(summary: dict, digits: int = 3) -> str:
    text = stats.format_mean_spread(summary, digits)
    interval = stats.format_interval(summary.get("lo"), summary.get("hi"), digits)
    return f"{text} {interval}".strip()


def render(result: dict) -> str:
    """Markdown tables of the detection section."""
    rows = []
    best_pr = result["models"].get("sns_cnn_lstm", {}).get("summary", {}).get("pr_auc", {})
    for name, model in result["models"].items():
        s = model["summary"]
        caught = s["caught"]
        run = model["runs"][0]
        note = f"{s['seeds']} seed{'s' if s['seeds'] > 1 else ''}"
        if "epochs_trained" in run:
            note += f", {run['epochs_trained']} ep, {run['train_samples']} fitted"
        rows.append([
            name, note, _cell(s["pr_auc"]),
            stats.format_ratio(stats.ratio(s["pr_auc"]["mean"], best_pr.get("mean"))),
            _cell(s["roc_auc"]), _cell(s["recall"]), _cell(s["false_alarms_per_hour"], 0),
            f"{stats.format_number(caught['mean'], 1)} of {s['n_errant']} "
            f"{stats.format_interval(caught['lo'], caught['hi'], 0)}",
            stats.format_number(np.mean([r["train_seconds"] for r in model["runs"]]), 1),
        ])
    split = result["split"]
    lines = [
        "### Detection quality (test part)",
        "",
        f"Archive `{Path(result['archive']).name}`: {result['samples']} samples; split by time "
        + ", ".join(f"{p} {v['n']} ({v['n_errant']} errant)" for p, v in split.items())
        + f". Operating point chosen on validation at false-alarm rate "
        f"{result['target_false_alarm_rate']}; bootstrap intervals over the test pulses "
        f"({result['n_boot']} resamples). Mean ± sample s.d. over seeds, then the 95 % interval.",
        "",
        render_table(["model", "runs", "PR AUC", "vs default", "ROC AUC", "recall",
                      "false alarms / h", "errant caught", "train s"], rows, align="llrrrrrrr"),
    ]
    lines += ["", _render_breakdown(result), "", _render_calibration(result)]
    return "\n".join(lines)


def _render_breakdown(result: dict) -> str:
    kinds = sorted({k for m in result["models"].values() for s in m["seeds"]
                    for k in s["breakdown"]["by_kind"]})
    headers = ["model"] + [f"kind {k}" for k in kinds] + [f"{b}" for b in STRENGTH_BINS]
    rows = []
    for name, model in result["models"].items():
        row = [name]
        for group, keys in (("by_kind", kinds), ("by_strength", STRENGTH_BINS)):
            for key in keys:
                caught = sum(s["breakdown"][group].get(key, {}).get("caught", 0)
                             for s in model["seeds"])
                total = sum(s["breakdown"][group].get(key, {}).get("total", 0)
                            for s in model["seeds"])
                row.append(f"{caught}/{total} ({stats.format_number(stats.ratio(caught, total), 2)})"
                           if total else "")
        rows.append(row)
    first = next(iter(result["models"].values()))["seeds"][0]["breakdown"]
    ceiling = first["ceiling"]
    edges = ", ".join(stats.format_number(e, 3) for e in result["strength_edges"])
    return "\n".join([
        "Recall at the operating point by precursor kind and strength bin (test trips, summed "
        f"over seeds; strength tertile edges {edges}). Ceiling: "
        f"{ceiling['with_precursor']} of {ceiling['trips']} test trips have any precursor "
        f"({stats.format_number(ceiling['share'], 3)}); {first['unmatched']} test trips not "
        "found in truth.csv.",
        "",
        render_table(headers, rows),
    ])


def _render_calibration(result: dict) -> str:
    rows = [[c["check"], c["figure"], c["criterion"], "yes" if c["passed"] else "NO"]
            for c in result["calibration"]]
    return "\n".join(["Simulator calibration checks:", "",
                      render_table(["check", "figure", "criterion", "met"], rows, align="llll")])
