"""What the flows leave in a run folder: model, threshold, predictions, metrics, ledger, PDF.

Shared by the train and test flows so both write the same files the same way (atomically).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import platform
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from analysis.evaluation import compute_metrics
from analysis.groups import describe_groups
from analysis.plots import pick_examples
from analysis.report import ReportContent, write_report
from analysis.thresholds import ThresholdChoice, choose_threshold
from data_preparation.references import source_counts
from parser.configs import Config, dump_config
from utils.run_folder import atomic_path, atomic_write_json, atomic_write_text

log = logging.getLogger("beamwatch.outputs")

N_EXAMPLES = 3  # traces per category on the examples page


@dataclasses.dataclass
class TrainResult:
    """What a train flow (SNS or samples) returns: its run folder, figures and threshold."""

    run_dir: Path
    val_metrics: dict
    test_metrics: dict
    threshold: float
    replicas: int
    # The chief's in-memory scores of the validation and test parts, for a test flow that
    # follows in this process (None: not kept, e.g. scored off TensorFlow).
    scored: ScoredParts | None = None


@dataclasses.dataclass
class TestResult:
    """What a test flow (SNS or samples) returns: its new tests/<time>/ folder and metrics."""

    __test__ = False  # not a pytest test class

    out_dir: Path
    metrics: dict
    part: str


@dataclasses.dataclass(frozen=True)
class ScoredParts:
    """The train flow's scores of its own validation and test parts, kept in memory for the
    test flow that follows it in the same process (plain `driver.py`), so that no part is
    scored twice and the data is not prepared twice.

    `samples` are as `prepare_samples` left them (the ledger without the train flow's
    gap_dropped entries, as the test flow's own loading would give); `parts` and `scores` map
    a part name to its row indices and scores; `batch_size` is the scoring batch.
    """

    run_dir: Path
    samples: object
    parts: dict
    scores: dict
    batch_size: int

    def reuse(self, run_dir: Path, part: str, batch_size: int):
        """(samples, indices, scores) of `part` when they are the scores a test flow scoring
        `run_dir` in batches of `batch_size` would make (same run, same batches); else None."""
        if (part not in self.parts or batch_size != self.batch_size
                or Path(self.run_dir).resolve() != Path(run_dir).resolve()):
            return None
        return self.samples, self.parts[part], self.scores[part]


def publish_best_model(model, checkpoint: Path, target: Path):
    """Loads the best checkpoint (safe mode) and saves it as `target` atomically."""
    import keras

    import model as _registry  # noqa: F401  registers the custom layers for safe-mode loading

    if checkpoint.exists():
        model = keras.saving.load_model(checkpoint, safe_mode=True)
    else:
        log.warning("no best checkpoint at %s; saving the final weights", checkpoint)
    with atomic_path(target, suffix=".keras") as tmp:
        model.save(tmp)
    return model


def input_names(model) -> tuple[str, ...]:
    """The model's input names ("trace", and "settings" / "reference" if it uses them)."""
    return tuple(t.name.split(":")[0] for t in model.inputs)


def predict(model, dataset) -> np.ndarray:
    """Scores of a model on a dataset, as a flat float64 array (all finite, or an error)."""
    scores = np.asarray(model.predict(dataset, verbose=0), dtype=np.float64).reshape(-1)
    from data_preparation.validation import check_scores

    check_scores(scores)
    return scores


def choose_and_save_threshold(labels, scores, threshold_config, path: Path) -> ThresholdChoice:
    """Threshold chosen on validation scores for the configured operating point; saved as JSON."""
    choice = choose_threshold(np.asarray(labels), np.asarray(scores), **threshold_config.choice())
    choice = dataclasses.replace(choice, chosen_on="validation part")
    atomic_write_json(path, choice.to_dict())
    log.info("threshold %.6g (%s) chosen on validation", choice.threshold, choice.method)
    if choice.resolved is False:
        log.info("the validation part's %d normal pulses stand for %.3g s of beam, too short to "
                 "place %.3g false alarms per hour: the threshold sits just above every "
                 "validation normal pulse; the online recalibration tracks the rate on every "
                 "pulse (live, or in the test flow)", choice.n_normal,
                 choice.normal_beam_hours * 3600.0, choice.false_alarms_per_hour)
    return choice


def log_split(parts: dict, samples, logger: logging.Logger) -> None:
    for name, summary in split_summary(parts, samples).items():
        logger.info("%-5s %6d pulses, %4d errant, %s .. %s", name, summary["n"],
                    summary["n_errant"], summary["start"], summary["end"])


def split_summary(parts: dict, samples) -> dict:
    """Counts and time span of each part: what a reader needs to trust the split."""
    out = {}
    for name, idx in parts.items():
        idx = np.asarray(idx, dtype=np.int64)
        ts = samples.timestamp_ns[idx]
        out[name] = {
            "n": int(len(idx)),
            "n_errant": int(np.sum(samples.label[idx] == 1)),
            "start": _iso(ts.min()) if len(idx) else "",
            "end": _iso(ts.max()) if len(idx) else "",
        }
        if samples.reference_source is not None:
            # samples by where their references came from (same file / archive / self)
            out[name]["references"] = source_counts(samples.reference_source[idx])
        if samples.history_timestamp_ns is not None:
            out[name]["history"] = history_summary(samples.history_count[idx],
                                                   samples.label[idx], samples.n_history)
    return out


def history_summary(count, label, slots: int) -> dict:
    """Filled history slots of a part, per class: where files differ in length by class, the
    history itself tells the classes apart (docs/live.md, "History and references")."""
    count, label = np.asarray(count), np.asarray(label)

    def mean(mask):
        return round(float(count[mask].mean()), 3) if mask.any() else None

    return {"slots": int(slots), "none": int((count == 0).sum()),
            "mean_filled_normal": mean(label == 0), "mean_filled_errant": mean(label == 1)}


def _iso(ts_ns) -> str:
    return datetime.fromtimestamp(int(ts_ns) / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def write_predictions(path: Path, samples, parts: dict, scores: dict, threshold: float,
                      online: dict | None = None) -> None:
    """predictions.csv: one row per scored pulse with its part, time, file, label, score and
    alarm at the fixed threshold and its configuration group;
    with `online` (part -> (thresholds, alarms), in the part's order, from
    `analysis.recalibration`) also the online threshold in force and its alarm.

    Scores and thresholds are written at full precision (the shortest text that reads back as
    the same float64), so a report re-rendered from this file (`driver.py --report`) counts
    the same alarms as the run did."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    header = ["part", "timestamp_ns", "time_utc", "file", "label", "score", "alarm", "group"]
    writer.writerow(header + (["online_threshold", "online_alarm"] if online else []))
    for name, idx in parts.items():
        if name not in scores:
            continue
        idx = np.asarray(idx)
        extra = online.get(name) if online else None
        for row, (i, score) in enumerate(zip(idx, scores[name], strict=True)):
            cells = [name, int(samples.timestamp_ns[i]), _iso(samples.timestamp_ns[i]),
                     samples.files[samples.file_index[i]], int(samples.label[i]),
                     full_precision(score), int(score >= threshold), int(samples.group[i])]
            if online:
                cells += ([full_precision(extra[0][row]), int(extra[1][row])] if extra is not None
                          else ["", ""])
            writer.writerow(cells)
    atomic_write_text(path, buf.getvalue())


def full_precision(value) -> str:
    """A float as the shortest text that reads back as the same float64 (`repr`)."""
    return repr(float(value))


class _PartTraces:
    """One array per pulse of one part, read one at a time (in-memory arrays and cached
    stores alike): a trace [L] or, for references, a stack [K, L]; the first channel."""

    def __init__(self, traces, idx, per_pulse_ndim: int = 1):
        self.traces, self.idx, self.ndim = traces, np.asarray(idx), per_pulse_ndim

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, i: int) -> np.ndarray:
        array = np.asarray(self.traces[np.array([self.idx[i]])][0], dtype=np.float32)
        return array[..., 0] if array.ndim > self.ndim else array


class _PulseNames:
    """"<file name>" and "<time> UTC" (two lines) of each pulse of one part, made when asked for."""

    def __init__(self, samples, idx):
        self.samples, self.idx = samples, np.asarray(idx)

    def __getitem__(self, i: int) -> str:
        row = self.idx[i]
        name = Path(self.samples.files[self.samples.file_index[row]]).name
        return f"{name}\n{_iso(self.samples.timestamp_ns[row])} UTC"


def example_traces(samples, idx, labels, scores, threshold) -> dict:
    """Up to N_EXAMPLES raw traces each of caught, missed and false-alarm pulses, with their
    reference pulses [K, L] when the samples carry them, captioned with file and time."""
    # Samples without references (reference.count 0, npz without them) are drawn alone.
    references = samples.references
    return pick_examples(_PartTraces(samples.traces, idx), labels, scores, threshold,
                         per_category=N_EXAMPLES,
                         references=None if references is None else _PartTraces(references, idx, 2),
                         names=_PulseNames(samples, idx))


def group_descriptions(samples, idx) -> dict[str, str]:
    """Each configuration group of the rows `idx`, described by the settings that set it apart
    from the largest group (`analysis.groups.describe_groups`)."""
    idx = np.asarray(idx, dtype=np.int64)
    return describe_groups(samples.group[idx], samples.settings[idx], samples.settings_names)


def trace_quantity(config: Config) -> str:
    """What the example traces' y axis shows: the configured waveform and its unit."""
    what = "differential current, " if config.data.var_id.endswith("Trace2") else ""
    return f"{config.data.var_id} ({what}archive units)"


def seeds_info(config: Config) -> dict:
    return {"seed": config.run.seed, "deterministic": config.run.deterministic}


def environment_info() -> dict:
    import keras
    import tensorflow as tf

    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "machine": platform.node()}


def write_train_outputs(*, run_dir: Path, config: Config, samples, parts: dict, scores: dict,
                        threshold: ThresholdChoice, history: dict, replicas: int,
                        balance_note: str, workers: int, model_params: int) -> dict:
    """metrics.json, predictions.csv, data_ledger.json, history and train_metrics_report.pdf."""
    labels = {name: samples.label[np.asarray(parts[name])].astype(np.int64) for name in scores}
    metrics = {name: compute_metrics(labels[name], scores[name], threshold.threshold,
                                     pulse_rate_hz=config.threshold.pulse_rate_hz)
               for name in scores}
    splits = split_summary(parts, samples)
    facts = train_facts(config, balance_note, replicas, workers, metrics.get("test"))
    descriptions = group_descriptions(samples, parts["val"])
    payload = {
        "run_id": run_dir.name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": config.model.name,
        "model_parameters": int(model_params),
        "replicas": int(replicas),
        "workers": int(workers),
        "imbalance": balance_note,
        "threshold": threshold.to_dict(),
        "splits": splits,
        "seeds": seeds_info(config),
        "environment": environment_info(),
        "ledger_summary": samples.ledger.summary(),
        "validation": metrics["val"],
        "test": metrics.get("test"),
        "epochs_trained": len(next(iter(history.values()), [])) if history else 0,
        "validation_groups": descriptions,
    }
    atomic_write_json(run_dir / "data_ledger.json", samples.ledger.to_dict())
    write_predictions(run_dir / "predictions.csv", samples, parts, scores, threshold.threshold)
    atomic_write_json(run_dir / "metrics.json", payload)
    content = ReportContent(
        title="beamwatch training report",
        run_id=run_dir.name,
        created=datetime.now(UTC),
        data_period=data_period(samples),
        split_sizes=splits,
        seeds=seeds_info(config),
        metrics=metrics["val"],
        threshold=threshold.to_dict(),
        ledger_summary=samples.ledger.summary(),
        skipped_files=skipped_files(samples.ledger),
        history={k: list(map(float, v)) for k, v in (history or {}).items()},
        labels=labels["val"],
        scores=scores["val"],
        example_traces=example_traces(samples, parts["val"], labels["val"], scores["val"],
                                      threshold.threshold),
        config_text=dump_config(config),
        facts=facts,
        notes=split_warnings(config),
        part_name="validation",
        timestamps_ns=samples.timestamp_ns[np.asarray(parts["val"])],
        groups=samples.group[np.asarray(parts["val"])],
        group_descriptions=descriptions,
        trace_quantity=trace_quantity(config),
    )
    write_report(run_dir / "train_metrics_report.pdf", content)
    log.info("validation: PR AUC %s, recall %s at false-alarm rate %s",
             _f(metrics["val"].get("pr_auc")), _f(metrics["val"].get("recall")),
             _f(metrics["val"].get("false_alarm_rate")))
    log.info("report %s", run_dir / "train_metrics_report.pdf")
    return metrics


def train_facts(config: Config, balance_note: str, replicas: int, workers: int,
                test_metrics: dict | None) -> list[str]:
    """The training report's facts about the run (title page, plain text, not warnings)."""
    facts = split_notes(config)
    facts.append(f"Imbalance handling: {balance_note}.")
    facts.append(f"Trained with {replicas} replica(s) on {workers} worker process(es).")
    if test_metrics is not None:
        facts.append("Held-out test part (never used for training or the threshold): PR AUC "
                     f"{_f(test_metrics.get('pr_auc'))}, recall {_f(test_metrics.get('recall'))}"
                     "; its full report comes from `driver.py --test`.")
    return facts


def split_notes(config: Config) -> list[str]:
    """How the run split its data: a fact for the report's title page, not a warning."""
    return [f"Split: {config.split.method}, fractions train {config.split.train_fraction}, "
            f"validation {config.split.val_fraction}, gap {config.split.gap_seconds} s."]


def split_warnings(config: Config) -> list[str]:
    """What about the split should make a reader wary of the figures (shown as warnings)."""
    if config.split.method == "stratified_random":
        return ["Stratified-random split: pulses of one period land in every part, so these "
                "figures overstate what to expect on a later period."]
    return []


def data_period(samples, idx=None) -> tuple[str, str]:
    """(first, last) pulse time of `samples`, or of the rows `idx` of them, as UTC text."""
    stamps = samples.timestamp_ns if idx is None else samples.timestamp_ns[np.asarray(idx, np.int64)]
    if len(stamps) == 0:
        return ("", "")
    return (_iso(stamps.min()), _iso(stamps.max()))


def skipped_files(ledger) -> list[tuple[str, str]]:
    """(path, reasons) of every file the ledger names, sorted by path; a file skipped for
    several reasons (or pulses of it skipped for them) lists them all, comma-separated."""
    reasons: dict[str, list[str]] = {}
    for entry in ledger.entries:
        found = reasons.setdefault(entry.path, [])
        if entry.reason not in found:
            found.append(entry.reason)
    return [(path, ", ".join(reasons[path])) for path in sorted(reasons)]


def _f(value) -> str:
    return "n/a" if value is None else f"{value:.4g}"
