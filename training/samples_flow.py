"""The train, test, predict and report flows of the sample-contract sources.

Sources whose registry entry says `flow="samples"` (npz windows, sensor sessions, feature
tables, text) go through here; SNS DCM archives keep `training.train` / `testing.test`. Reads
top to bottom like architecture.md: load (registry) -> split -> fit preprocessing on the
training part -> rebalance and augment the training part -> model from the registry -> fit with
early stopping on validation macro F1 (best weights restored) -> decide (argmax; two classes:
the threshold chosen on validation) -> metrics per part -> run folder and PDF in the vocabulary
of samples and classes.

A run folder holds what the SNS flows write (config.yaml, model.keras, threshold.json,
metrics.json, predictions.csv, history.csv, data_ledger.json, train_metrics_report.pdf) plus
`preprocessing.json`: the data layout, class names, fitted scalers and the text vocabulary
(the TextVectorization stays outside the model, its vocabulary is JSON).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import keras
import numpy as np

from analysis.class_report import ClassReportContent, write_class_report
from analysis.classification import as_probabilities, classification_metrics
from data_preparation.augment import augment_sequences
from data_preparation.sample_prep import Preprocessor, rebalance
from data_preparation.sources import load_samples
from data_preparation.sources.contract import UNLABELLED
from data_preparation.sources.split import split_samples
from parser.configs import Config, dump_config, load_config
from training import outputs
from training.callbacks import EpochLogLine, read_history_csv
from training.small_data import (
    EpochChoice,
    cv_choice,
    decide_method,
    fold_indices,
    small_validation,
)
from utils.run_folder import (
    RunFolderError,
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    create_test_dir,
)
from utils.text import listing

log = logging.getLogger("beamwatch.train")
SCORE_BATCH = 256  # scoring batch of the test flow (the train flow's too, when its batch is smaller)
test_log = logging.getLogger("beamwatch.test")

PREP_FILE = "preprocessing.json"
MONITOR = "val_macro_f1"
PART_TITLES = {"train": "training", "val": "validation", "test": "test", "all": "all"}


def is_samples_run(run_dir) -> bool:
    """True for a run folder written by this flow (it holds preprocessing.json)."""
    return (Path(run_dir) / PREP_FILE).is_file()


class ArraySequence(keras.utils.PyDataset):
    """Batches of in-memory arrays, reshuffled (seeded) and optionally augmented each epoch."""

    def __init__(self, x: dict, y: np.ndarray, weights=None, *, batch_size: int,
                 shuffle: bool = False, seed: int = 0, augment=None, binary: bool = False):
        super().__init__()
        self.x, self.weights, self.batch_size = x, weights, batch_size
        self.y = y.astype(np.float32)[:, None] if binary else y.astype(np.int64)
        self.shuffle, self.augment = shuffle, augment
        self.rng = np.random.default_rng(seed)
        self.order = np.arange(len(y))
        self.on_epoch_end()

    def __len__(self) -> int:
        return max(1, math.ceil(len(self.order) / self.batch_size))

    def __getitem__(self, i: int):
        pos = self.order[i * self.batch_size:(i + 1) * self.batch_size]
        x = {k: v[pos] for k, v in self.x.items()}
        if self.augment is not None and "trace" in x:
            x["trace"] = augment_sequences(x["trace"], self.rng, **self.augment)
        if self.weights is None:
            return x, self.y[pos]
        return x, self.y[pos], self.weights[pos]

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self.order = self.rng.permutation(len(self.order))


class ValidationMacroF1(keras.callbacks.Callback):
    """Adds `val_macro_f1` (argmax, or 0.5 for one sigmoid unit) to each epoch's logs; list it
    before the callbacks that monitor it."""

    def __init__(self, x: dict, y: np.ndarray, n_classes: int, batch_size: int):
        super().__init__()
        self.x, self.y, self.n_classes, self.batch_size = x, y, n_classes, batch_size

    def on_epoch_end(self, epoch, logs=None):
        probs = as_probabilities(self.model.predict(self.x, batch_size=self.batch_size,
                                                    verbose=0))
        names = [str(i) for i in range(self.n_classes)]
        if logs is not None:
            logs[MONITOR] = classification_metrics(self.y, probs, names)["macro_f1"]


def _input_spec(x: dict, n_classes: int, vocab_size: int):
    from model import InputSpec

    if "trace" in x:
        _, length, channels = x["trace"].shape
        settings = x["settings"].shape[1] if "settings" in x else 0
        return InputSpec(trace_length=int(length), n_channels=int(channels),
                         n_settings=int(settings), n_classes=n_classes)
    main = x["features"] if "features" in x else x["tokens"]
    return InputSpec(trace_length=int(main.shape[1]), n_classes=n_classes,
                     vocab_size=vocab_size if "tokens" in x else 0)


def _check_model(model, x: dict, n_classes: int, name: str) -> tuple[str, ...]:
    names = outputs.input_names(model)
    missing = [n for n in names if n not in x]
    if missing:
        raise ValueError(f"model.name={name!r} expects inputs {listing(names)}, but the data source "
                         f"gives {listing(sorted(x))}; pick a model for this source (configs/<job>.yaml).")
    units = int(model.outputs[0].shape[-1])
    if units != (1 if n_classes == 2 else n_classes):
        raise ValueError(f"model.name={name!r} has {units} output unit(s), the data have "
                         f"{n_classes} classes; use a model of model/zoo.py for several classes.")
    return names


def _per_class(labels, class_names) -> dict:
    counts = np.bincount(labels[labels >= 0], minlength=len(class_names))
    return {name: int(counts[i]) for i, name in enumerate(class_names)}


def _split_sizes(parts: dict, labels, class_names) -> dict:
    return {name: {"n": int(len(idx)), "per_class": _per_class(labels[idx], class_names)}
            for name, idx in parts.items()}


def train_samples(config: Config, *, run_dir: Path | None = None, progress: bool = True):
    """Train on a sample-contract source; returns a `training.outputs.TrainResult`."""
    from training.run_start import prepare_run_dir, set_seeds

    run_dir = prepare_run_dir(config, run_dir, True)
    atomic_write_text(run_dir / "config.yaml", dump_config(config))
    log.info("run folder %s (%s source)", run_dir, config.data.source)
    set_seeds(config.run.seed, config.run.deterministic)
    if config.train.distribute != "none" or config.train.mixed_precision:
        log.warning("train.distribute=%s / mixed_precision=%s are not used by the %s flow: it "
                    "trains on one device in float32 (in-memory samples)",
                    config.train.distribute, config.train.mixed_precision, config.data.source)

    samples = load_samples(config)
    samples.ledger.log_summary(log, unit="samples")
    names, k = samples.class_names, samples.n_classes
    if k < 2:
        raise ValueError(f"{config.data.dataset_loc}: found {k} class(es) ({listing(names)}); "
                         "classification needs at least 2.")
    parts = split_samples(samples, config.split, config.run.seed)
    sizes = _split_sizes(parts, samples.label, names)
    for part, info in sizes.items():
        log.info("%-5s %6d samples %s", part, info["n"], info["per_class"])

    # Fitted on the training part only; then every part is transformed with it.
    train_idx = parts["train"]
    prep = Preprocessor(config.scaling.trace_scaler, config.scaling.settings_scaler, config.text)
    prep.fit({name: x[train_idx] for name, x in samples.inputs.items()})
    x = {part: prep.transform({n: v[idx] for n, v in samples.inputs.items()})
         for part, idx in parts.items()}
    y = {part: samples.label[idx] for part, idx in parts.items()}
    x_train, y_train, weights, balance_note = rebalance(x["train"], y["train"], k,
                                                        config.scaling, config.run.seed)
    log.info("imbalance: %s", balance_note)

    spec = _input_spec(x_train, k, prep.vocab_size)
    model = _new_model(config, spec, k)
    input_names = _check_model(model, x_train, k, config.model.name)
    log.info("model %s: %d parameters, inputs %s, %d classes", config.model.name,
             model.count_params(), ", ".join(input_names), k)
    pick = lambda d: {n: d[n] for n in input_names}  # noqa: E731  only what the model takes
    choice = _choose_epochs(config, spec, k, pick(x["train"]), y["train"], sizes)
    log.info("epochs: %s", choice.summary())
    set_seeds(config.run.seed, config.run.deterministic)  # the final model as if trained alone
    model = _new_model(config, spec, k)
    interactive = progress and sys.stdout.isatty()
    history = _fit(model, config, pick(x_train), y_train, weights, pick(x["val"]), y["val"], k,
                   epochs=choice.epochs or config.train.epochs,
                   early_stopping=choice.method == "validation", run_dir=run_dir,
                   interactive=interactive)
    with atomic_path(run_dir / "model.keras", suffix=".keras") as tmp:
        model.save(tmp)  # validation: the best epoch's weights (EarlyStopping restored them)

    score_batch = max(config.train.batch_size, SCORE_BATCH)
    binary = k == 2
    probs = {part: as_probabilities(model.predict(pick(x[part]), batch_size=score_batch,
                                                  verbose=0))
             for part in ("val", "test")}
    threshold = None
    if binary:
        threshold = _binary_threshold(config, y["val"], probs["val"][:, 1], sizes,
                                      run_dir / "threshold.json")
    else:
        atomic_write_json(run_dir / "threshold.json", {
            "threshold": None, "method": "argmax", "chosen_on": "multiclass: the most probable "
                                                               "class is predicted"})
    metrics = {part: classification_metrics(y[part], probs[part], names, threshold)
               for part in probs}
    peer = _fit_peer(config, samples, parts, metrics) if config.train.peer else None
    atomic_write_json(run_dir / PREP_FILE, {
        "source": config.data.source, "class_names": list(names), "layout": samples.layout,
        "input_names": list(input_names), "preprocessor": prep.to_dict()})
    write_predictions(run_dir / "predictions.csv", samples, {p: parts[p] for p in probs}, probs,
                      names, threshold)
    atomic_write_json(run_dir / "data_ledger.json", samples.ledger.to_dict())
    payload = {
        "run_id": run_dir.name, "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": config.data.source, "model": config.model.name,
        "model_parameters": int(model.count_params()), "class_names": list(names),
        "threshold": threshold, "splits": sizes, "imbalance": balance_note,
        "seeds": outputs.seeds_info(config), "environment": outputs.environment_info(),
        "ledger_summary": samples.ledger.summary(), "validation": metrics["val"],
        "test": metrics["test"], "epochs_trained": len(next(iter(history.values()), [])),
        "epoch_choice": choice.to_dict(), "epoch_choice_summary": choice.summary(),
        **(peer or {"peer": None, "comparison": None}),
    }
    atomic_write_json(run_dir / "metrics.json", payload)
    render_train_report(run_dir)
    for part in ("val", "test"):
        m = metrics[part]
        log.info("%s: accuracy %s, balanced accuracy %s, macro F1 %s", PART_TITLES[part],
                 outputs._f(m["accuracy"]), outputs._f(m["balanced_accuracy"]),
                 outputs._f(m["macro_f1"]))
    if peer is not None:
        log.info("%s", peer["comparison"]["test"]["verdict"])
    log.info("report %s", run_dir / "train_metrics_report.pdf")
    scored = outputs.ScoredParts(run_dir, samples, {p: parts[p] for p in probs}, probs,
                                 score_batch)  # for a test flow that follows in this process
    return outputs.TrainResult(run_dir, metrics["val"], metrics["test"],
                       float("nan") if threshold is None else threshold, 1, scored)


def _binary_threshold(config: Config, y_val, p_val, sizes: dict, path: Path) -> float:
    """Two classes: the threshold of `threshold.operating_point` chosen on the validation part,
    or 0.5 (the more probable class, as for several classes and the peer) when that part is too
    small to place one (`training.small_data.small_validation`, the rule of the epoch choice;
    `train.epoch_choice: validation` always chooses on validation). Saved to `path`.

    On a validation part of 9-12 series, best F1 puts the threshold at the lowest score of a
    positive, far out on the model's confident side (measured: ItalyPowerDemand 0.985, test
    accuracy 0.79 against 0.96 at 0.5; docs/jobs.md)."""
    counts = lambda part: list(sizes[part]["per_class"].values())  # noqa: E731
    too_small = small_validation(counts("val"), counts("train"), config.train.min_val_per_class)
    if too_small is None or config.train.epoch_choice == "validation":
        return outputs.choose_and_save_threshold(y_val, p_val, config.threshold, path).threshold
    atomic_write_json(path, {"threshold": 0.5, "method": "most_probable_class",
                             "chosen_on": f"not chosen: {too_small}, too few to place a "
                                          "threshold; 0.5 predicts the more probable class"})
    log.info("threshold 0.5, the more probable class: %s, too few to place one", too_small)
    return 0.5


def _fit_peer(config: Config, samples, parts: dict, metrics: dict) -> dict:
    """The job's simple peer (training.peers) fitted on the training part's raw inputs; its
    metrics per part and the side-by-side comparison with the network, for metrics.json."""
    from analysis.classification import compare_with_peer
    from training.peers import fit_peer

    fitted = fit_peer(samples.inputs, samples.label, parts, samples.n_classes, config.run.seed)
    names = samples.class_names
    peer_metrics = {part: classification_metrics(samples.label[parts[part]],
                                                 fitted.probabilities[part], names)
                    for part in ("val", "test")}
    return {"peer": {"name": fitted.name, "fit_seconds": round(fitted.fit_seconds, 3),
                     "decision": "argmax (no threshold tuned)",
                     "validation": peer_metrics["val"], "test": peer_metrics["test"]},
            "comparison": {PART_TITLES[part]: compare_with_peer(metrics[part],
                                                                 peer_metrics[part], fitted.name)
                           for part in ("val", "test")}}


def _new_model(config: Config, spec, n_classes: int) -> keras.Model:
    from model import build_model
    from model.zoo import compile_classifier

    model = build_model(config.model, spec)
    return compile_classifier(model, config.model, config.train, n_classes)


def _fit(model, config: Config, x_train: dict, y_train, weights, x_val: dict, y_val,
         n_classes: int, *, epochs: int, early_stopping: bool, run_dir: Path | None,
         interactive: bool = False) -> dict:
    """Fit `model` for `epochs` (early stopping on validation macro F1 with the best weights
    restored, or all of them); the history (val_macro_f1 and val_loss of `x_val` included)."""
    aug = config.augment
    augment = (dict(time_warp=aug.time_warp, noise_std=aug.noise_std,
                    feature_dropout=aug.feature_dropout)
               if aug.enabled and "trace" in x_train else None)
    binary = n_classes == 2
    batch = config.train.batch_size
    train_seq = ArraySequence(x_train, y_train, weights, batch_size=batch, shuffle=True,
                              seed=config.run.seed, augment=augment, binary=binary)
    val_seq = ArraySequence(x_val, y_val, batch_size=batch, binary=binary)
    callbacks = [ValidationMacroF1(x_val, y_val, n_classes, max(batch, 256))]
    if early_stopping:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=MONITOR, mode="max", patience=config.train.early_stopping_patience,
            restore_best_weights=True))
    if config.train.lr_schedule == "cosine":
        callbacks.append(keras.callbacks.LearningRateScheduler(cosine_rate(config.train)))
    else:
        # Without early stopping the validation part decides nothing: the rate follows the
        # training loss, so a cross-validated epoch count means the same schedule when retrained.
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss" if early_stopping else "loss", mode="min",
            patience=config.train.reduce_lr_patience, factor=config.train.reduce_lr_factor,
            min_lr=config.train.min_learning_rate))
    if run_dir is not None:
        callbacks.append(keras.callbacks.CSVLogger(str(run_dir / "history.csv")))
        if config.train.tensorboard:
            callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "tensorboard"),
                                                         write_graph=False))
        if not interactive:
            callbacks.append(EpochLogLine(log, epochs))
    fit = model.fit(train_seq, validation_data=val_seq, epochs=epochs, callbacks=callbacks,
                    verbose=1 if interactive else 0)
    return fit.history


def cosine_rate(train_config):
    """`train.lr_schedule: cosine`: epoch (0-based) -> learning rate, from `learning_rate` at
    epoch 0 down a half cosine to `min_learning_rate` at `epochs`. It depends on the epoch only,
    so a model trained for a cross-validated count e follows the rates its folds had up to e."""
    start, floor, total = (train_config.learning_rate, train_config.min_learning_rate,
                           train_config.epochs)

    def rate(epoch: int, lr: float | None = None) -> float:
        return float(floor + 0.5 * (start - floor) * (1.0 + math.cos(math.pi * epoch / total)))

    return rate


def _choose_epochs(config: Config, spec, n_classes: int, x_train: dict, y_train: np.ndarray,
                   sizes: dict) -> EpochChoice:
    """`train.epoch_choice` applied (training.small_data): validation, cv or fixed.

    The cv folds reuse the training part's fitted scaling (fitted on all of it); each fold is
    rebalanced on its own, and each fold model starts from the run seed.
    """
    from training.run_start import set_seeds

    counts = lambda part: [sizes[part]["per_class"][c] for c in sizes[part]["per_class"]]  # noqa: E731
    method, reason = decide_method(config.train.epoch_choice, counts("val"), counts("train"),
                                   config.train.min_val_per_class, config.train.cv_folds)
    if method == "validation":
        return EpochChoice("validation", reason, None)
    if method == "fixed":
        return EpochChoice("fixed", reason, config.train.epochs)
    f1s, losses = [], []
    folds = fold_indices(y_train, config.train.cv_folds, config.run.seed)
    for i, (fit_idx, held_idx) in enumerate(folds):
        set_seeds(config.run.seed, config.run.deterministic)
        x_fit, y_fit, w_fit, _ = rebalance({n: v[fit_idx] for n, v in x_train.items()},
                                           y_train[fit_idx], n_classes, config.scaling,
                                           config.run.seed)
        history = _fit(_new_model(config, spec, n_classes), config, x_fit, y_fit, w_fit,
                       {n: v[held_idx] for n, v in x_train.items()}, y_train[held_idx],
                       n_classes, epochs=config.train.epochs, early_stopping=False,
                       run_dir=None)
        f1s.append(history[MONITOR])
        losses.append(history["val_loss"])
        log.info("epoch choice: fold %d/%d (%d fit, %d held out): best held-out macro F1 %.3f "
                 "at epoch %d", i + 1, len(folds), fit_idx.size, held_idx.size,
                 max(history[MONITOR]), int(np.argmax(history[MONITOR])) + 1)
    return cv_choice(reason, np.asarray(f1s), np.asarray(losses))


def write_predictions(path: Path, samples, parts: dict, probs: dict, class_names,
                      threshold: float | None) -> None:
    """predictions.csv: part, id, label, predicted class, its probability, every class's."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["part", "id", "label", "label_name", "predicted", "predicted_name",
                     "probability", *[f"p_{c}" for c in class_names]])
    for part, idx in parts.items():
        predicted = _decide(probs[part], threshold)
        for row, i in enumerate(np.asarray(idx)):
            label = int(samples.label[i])
            c = int(predicted[row])
            writer.writerow([part, samples.ids[i], label,
                             class_names[label] if label != UNLABELLED else "", c, class_names[c],
                             repr(float(probs[part][row, c])),  # full precision: --report
                             *[repr(float(v)) for v in probs[part][row]]])
    atomic_write_text(path, buf.getvalue())


def _decide(probs: np.ndarray, threshold: float | None) -> np.ndarray:
    from analysis.classification import predicted_classes

    return predicted_classes(probs, threshold)


def read_predictions(path: Path, class_names) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """predictions.csv -> part -> (labels, probabilities [n, k])."""
    out: dict[str, tuple[list, list]] = {}
    with Path(path).open(newline="") as f:
        for row in csv.DictReader(f):
            labels, probs = out.setdefault(row["part"], ([], []))
            labels.append(int(row["label"]))
            probs.append([float(row[f"p_{c}"]) for c in class_names])
    return {part: (np.asarray(a, np.int64), np.asarray(b, np.float64).reshape(len(a), -1))
            for part, (a, b) in out.items()}


def render_train_report(run_dir: Path, path: Path | None = None) -> Path:
    """Write the training report from the run's saved files only (no retraining) to `path`
    (default: train_metrics_report.pdf; `driver.py --report` passes a new file beside it)."""
    run_dir = Path(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    names = metrics["class_names"]
    preds = read_predictions(run_dir / "predictions.csv", names)
    labels, probs = preds["val"]
    history = read_history_csv(run_dir / "history.csv")
    test = metrics.get("test") or {}
    notes = [f"Imbalance handling on the training part: {metrics.get('imbalance', 'n/a')}.",
             f"Held-out test part ({test.get('n', 0)} samples, never used for training or "
             f"decisions): accuracy {outputs._f(test.get('accuracy'))}, balanced accuracy "
             f"{outputs._f(test.get('balanced_accuracy'))}, macro F1 "
             f"{outputs._f(test.get('macro_f1'))}; `driver.py --test` writes its full report."]
    if metrics.get("epoch_choice_summary"):
        notes.append(f"Epochs: {metrics['epoch_choice_summary']}.")
    comparison = metrics.get("comparison")
    notes.append(comparison["test"]["verdict"] if comparison else
                 "No simple peer was fitted (train.peer: false).")
    path = run_dir / "train_metrics_report.pdf" if path is None else Path(path)
    write_class_report(path, ClassReportContent(
        title=f"beamwatch training report: {metrics['source']} job, {metrics['model']}",
        run_id=run_dir.name, created=metrics["created"], data=_data_text(run_dir),
        class_names=names, split_sizes=metrics["splits"], metrics=metrics["validation"],
        part_name="validation", labels=labels, probabilities=probs, history=history or None,
        ledger_summary=metrics.get("ledger_summary", []), notes=notes,
        config_text=(run_dir / "config.yaml").read_text(), comparison=comparison))
    return path


def _data_text(run_dir: Path) -> str:
    config = load_config(run_dir / "config.yaml")
    return f"{config.data.source}: {config.data.dataset_loc}"


def _load_run(run_dir: Path):
    import model  # noqa: F401  registers the custom layers and losses for safe-mode loading

    for name in ("config.yaml", "model.keras", PREP_FILE):
        if not (run_dir / name).exists():
            raise RunFolderError(f"{run_dir} has no {name}: not a finished training run of a "
                                 "sessions/npz/features/text job")
    config = load_config(run_dir / "config.yaml")
    trained = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    saved = json.loads((run_dir / PREP_FILE).read_text())
    prep = Preprocessor.from_dict(saved["preprocessor"], config.scaling.trace_scaler,
                                  config.scaling.settings_scaler, config.text)
    threshold = json.loads((run_dir / "threshold.json").read_text())["threshold"]
    return config, trained, saved, prep, threshold


def _score(model, prep, saved, samples) -> np.ndarray:
    x = prep.transform(samples.inputs)
    x = {n: x[n] for n in saved["input_names"]}
    return as_probabilities(model.predict(x, batch_size=SCORE_BATCH, verbose=0))


def test_samples(run_dir: Path, *, data_dir: Path | None = None, part: str | None = None,
                 scored: outputs.ScoredParts | None = None) -> outputs.TestResult:
    """Score a run's held-out part (or every sample of `data_dir`); a new tests/<time>/ folder.

    `scored`: the train flow's in-memory probabilities of this run's parts (plain `driver.py`);
    the part asked is then not loaded and scored again when they were made in the same batches.
    """
    run_dir = Path(run_dir)
    config, model, saved, prep, threshold = _load_run(run_dir)
    names = saved["class_names"]
    reused = None
    if data_dir is None:
        part = part or "test"
        reused = None if scored is None else scored.reuse(run_dir, part, SCORE_BATCH)
        if reused is not None:
            samples, idx, _ = reused
        else:
            samples = load_samples(config, layout=saved["layout"])
            parts = split_samples(samples, config.split, config.run.seed)
            parts["all"] = np.arange(len(samples))
            idx = parts[part]
        source = f"{part} part of the run's own data ({config.data.dataset_loc})"
    else:
        if part not in (None, "all"):
            raise ValueError("--part applies to the run's own data; with --data every sample is "
                             "scored (part 'all')")
        samples = load_samples(config, location=str(data_dir), layout=saved["layout"])
        part, idx = "all", np.arange(len(samples))
        source = f"every sample of {data_dir}"
    samples.ledger.log_summary(test_log, unit="samples")
    sub = samples.take(idx)
    if reused is None:
        probs = _score(model, prep, saved, sub)
    else:
        probs = reused[2]
        test_log.info("%d samples: %s, scored by the train flow just before (same model and "
                      "batches); not scored again", len(sub), source)
    metrics = classification_metrics(sub.label, probs, names, threshold)
    comparison, peer_note = _saved_peer(run_dir, part if data_dir is None else None, metrics)
    out_dir = create_test_dir(run_dir)
    sizes = {part: {"n": len(sub), "per_class": _per_class(sub.label, names)}}
    atomic_write_json(out_dir / "metrics.json", {
        "run_id": run_dir.name, "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": source, "part": part, "threshold": threshold, "metrics": metrics,
        "split": sizes[part], "ledger_summary": samples.ledger.summary(),
        "comparison": comparison, "peer_note": peer_note,
        "environment": outputs.environment_info()})
    atomic_write_json(out_dir / "data_ledger.json", samples.ledger.to_dict())
    write_predictions(out_dir / "predictions.csv", sub, {part: np.arange(len(sub))},
                      {part: probs}, names, threshold)
    write_class_report(out_dir / "test_metrics_report.pdf", ClassReportContent(
        title=f"beamwatch test report: {config.data.source} job, {config.model.name}",
        run_id=run_dir.name, created=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        data=source, class_names=names, split_sizes=sizes, metrics=metrics,
        part_name=PART_TITLES.get(part, part), labels=sub.label, probabilities=probs,
        ledger_summary=samples.ledger.summary(), config_text=dump_config(config),
        notes=["Decisions use the run's own rule (argmax, or the binary threshold chosen on "
               "its validation part); nothing is tuned on these samples.", peer_note],
        comparison=comparison))
    if comparison:
        test_log.info("%s", comparison[PART_TITLES[part]]["verdict"])
    test_log.info("%s: accuracy %s, balanced accuracy %s, macro F1 %s", part,
                  outputs._f(metrics["accuracy"]), outputs._f(metrics["balanced_accuracy"]),
                  outputs._f(metrics["macro_f1"]))
    test_log.info("test report %s", out_dir / "test_metrics_report.pdf")
    return outputs.TestResult(out_dir, metrics, part)


def _saved_peer(run_dir: Path, part: str | None, metrics: dict) -> tuple[dict | None, str]:
    """The training run's peer beside these metrics when they are of the run's own validation
    or test part (the peer scored the same samples then; peers are not saved, so new data and
    other parts get none): ({part title: comparison} or None, a note for the report)."""
    from analysis.classification import compare_with_peer

    saved = json.loads((run_dir / "metrics.json").read_text()).get("peer")
    title = PART_TITLES.get(part or "", "")
    if saved is None:
        return None, "No simple peer was fitted with this run (train.peer: false)."
    if title not in ("validation", "test"):
        return None, (f"The simple peer ({saved['name']}) was scored on the run's own validation "
                      "and test parts only (it is not saved with the run); see the training "
                      "run's metrics.json.")
    comparison = compare_with_peer(metrics, saved[title], saved["name"])
    return {title: comparison}, comparison["verdict"]


def run_predict_flow(config: Config, *, run_dir: Path | None, files: list[Path],
                     output: Path | None = None, quiet: bool = False,
                     debug: bool = False) -> Path:
    """`driver.py --predict FILE...`: logs, the run (given, or the newest complete
    sessions/npz/features/text run under run.output_dir), then `predict_files`."""
    from data_preparation.sources import SOURCES
    from parser.configs import run_source
    from utils.logs import setup_logging
    from utils.status import SNS_SOURCE, newest_complete_run

    logger = setup_logging(Path(config.run.log_dir), "test", quiet=quiet, debug=debug)
    if run_dir is None:
        jobs = tuple(s for s in SOURCES if s != SNS_SOURCE)
        run_dir, _ = newest_complete_run(Path(config.run.output_dir), jobs, "--predict",
                                        run_source)
    run_dir = Path(run_dir)
    if not is_samples_run(run_dir):
        raise FileNotFoundError(
            f"{run_dir} is not a finished sessions/npz/features/text run (no "
            "preprocessing.json); score new SNS archives with --test --run DIR --data DIR")
    path = predict_files(run_dir, [str(f) for f in files], output)
    logger.info("predictions: %s", path)
    return path


def predict_files(run_dir: Path, files: list[str], output: Path | None = None) -> Path:
    """Score new files with a trained run: a CSV of id, predicted class and its probability."""
    run_dir = Path(run_dir)
    if output is not None and Path(output).exists():  # nothing a user owns is overwritten
        raise FileExistsError(f"--output {output}: the file exists and is not overwritten; "
                              "give a new name (or leave --output out for "
                              "RUN/predictions/<time>.csv)")
    config, model, saved, prep, threshold = _load_run(run_dir)
    missing = [f for f in files if not Path(f).exists()]
    if missing:
        raise FileNotFoundError(f"--predict: file(s) not found: {listing(missing, 5)}")
    samples = load_samples(config, layout=saved["layout"], files=[str(f) for f in files])
    samples.ledger.log_summary(test_log, unit="samples")
    probs = _score(model, prep, saved, samples)
    names = saved["class_names"]
    predicted = _decide(probs, threshold)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["id", "class", "probability", *[f"p_{c}" for c in names]])
    for i, c in enumerate(predicted):
        writer.writerow([samples.ids[i], names[c], f"{probs[i, c]:.6g}",
                         *[f"{v:.6g}" for v in probs[i]]])
    if output is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        output = run_dir / "predictions" / f"{stamp}.csv"
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    _write_new(output, buf.getvalue())
    test_log.info("%d samples scored by %s: %s", len(samples), run_dir.name, output)
    return output


def _write_new(path: Path, text: str) -> None:
    """Write `path` whole (temp file, then a hard link, which never replaces a file), or
    refuse when it exists: a file that appeared meanwhile is kept."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise FileExistsError(f"--output {path}: the file exists and is not overwritten; "
                                  "give a new name") from None
    finally:
        os.unlink(tmp)


__all__ = ["is_samples_run", "predict_files", "render_train_report", "run_predict_flow",
    "test_samples", "train_samples"]
