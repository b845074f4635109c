"""Speed: file reading, dataset build, training throughput and single-pulse scoring latency.

(a) `ReadStorage` full read against `gzip -dc` (`benchmarks.bench_read_storage.run`).
(b) dataset build, cold against warm cache, 1 against 2 worker processes
    (`benchmarks.bench_dataset_build.run`).
(c) training samples per second and seconds per epoch of `sns_cnn_lstm` against `sns_prototype`
    on one fixed in-memory dataset (the first epoch, which traces the graph, is left out), and
    the PR AUC each reaches on the same test pulses.
(d) scoring latency of the default model on ONE CPU core (a child process under
    `taskset -c 0`, TensorFlow intra/inter-op threads 1): p50/p99 of one pulse through a
    compiled `tf.function` with a fixed input signature and through the exported SavedModel,
    and pulses per second at batch 256, against the 16.7 ms between SNS pulses.

The latency child is `python -m benchmarks.speed --latency-child OUT.json [...]`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import stats
from benchmarks.children import run_cpu_child
from benchmarks.report import render_table

log = logging.getLogger("beamwatch.benchmarks.speed")

PULSE_BUDGET_MS = 1000.0 / 60.0   # time between SNS pulses at 60 Hz
LATENCY_TARGET_P99_MS = 5.0       # single pulse, one core
THROUGHPUT_TARGET_RATIO = 5.0     # sns_cnn_lstm training samples/s vs sns_prototype
LATENCY_BATCH = 256


@dataclasses.dataclass(frozen=True)
class SpeedSettings:
    """How much work the speed benchmark does (see `suite.PROFILES`)."""

    read_repeat: int = 5
    build_workers: tuple[int, ...] = (1, 2)
    train_samples: int = 128      # same in-memory training pulses for both models
    train_epochs: int = 3         # the first is left out of the throughput
    eval_samples: int = 256       # test pulses scored for the PR AUC
    latency_iterations: int = 300
    batch_repeats: int = 5


# ----------------------------------------------------------------------------------------------
# (a) and (b): the other helpers' benchmarks


def read_storage(settings: SpeedSettings, archive: Path | None) -> dict:
    """Generated file, plus the largest DCM file of `archive` when there is one."""
    from benchmarks import bench_read_storage

    out = {"generated": bench_read_storage.run(None, repeat=settings.read_repeat)}
    if archive is not None:
        files = sorted((archive / "dcm").rglob("*.gz"), key=lambda p: p.stat().st_size)
        if files:
            out["archive_file"] = bench_read_storage.run(files[-1], repeat=settings.read_repeat)
    return out


def dataset_build(settings: SpeedSettings, archive: Path, workdir: Path) -> dict:
    """Cold then warm in-memory build of `archive` per worker count, each in a fresh child.

    Uses `bench_dataset_build`'s child-process build, with an empty cache per worker count.
    """
    from benchmarks.bench_dataset_build import build_in_child

    runs = []
    for workers in settings.build_workers:
        cache = workdir / f"build-cache-{workers}w"
        if cache.exists():
            shutil.rmtree(cache)
        for kind in ("cold", "warm"):
            r = build_in_child(archive / "dcm", cache, workers, stream=False)
            runs.append({"workers": workers, "cache": kind, "seconds": r["seconds"],
                         "pulses": r["pulses"], "files": r["files"],
                         "pulses_per_second": r["pulses"] / r["seconds"],
                         "peak_rss_mb": r["peak_rss_mb"],
                         "peak_worker_rss_mb": r["peak_worker_rss_mb"]})
        shutil.rmtree(cache, ignore_errors=True)
    by = {(r["workers"], r["cache"]): r["seconds"] for r in runs}
    low, high = min(settings.build_workers), max(settings.build_workers)
    return {"archive": str(archive), "runs": runs,
            "warm_speedup": stats.ratio(by[(low, "cold")], by[(low, "warm")]),
            "worker_speedup": stats.ratio(by[(low, "cold")], by[(high, "cold")])
            if high != low else None,
            "workers_compared": [low, high]}


# ----------------------------------------------------------------------------------------------
# (c) training throughput


class _EpochTimer:
    """Keras callback factory: wall time of every epoch."""

    def __new__(cls):
        import keras

        class Timer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.seconds = []

            def on_epoch_begin(self, epoch, logs=None):
                self._start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.seconds.append(time.perf_counter() - self._start)

        return Timer()


def training_throughput(settings: SpeedSettings, archive: Path, workdir: Path,
                        detection: dict | None = None) -> dict:
    """Both models fitted on the same in-memory pulses with the same batch size and epochs."""
    import keras
    from sklearn.metrics import average_precision_score

    from benchmarks.detection_models import bench_config, subsample
    from data_preparation.imbalance import class_weights
    from data_preparation.pipeline import fit_scalers, prepare_samples
    from data_preparation.split import split_indices
    from model import InputSpec, build_model, compile_model

    config = bench_config(archive, workdir)
    samples = prepare_samples(config, progress=False)
    parts = split_indices(samples.timestamp_ns, samples.label, samples.group, config.split,
                          seed=config.run.seed, acquisition=samples.acquisition)
    train_idx = subsample(parts["train"], samples.label, settings.train_samples, seed=0)
    test_idx = subsample(parts["test"], samples.label, settings.eval_samples, seed=0)
    trace_scaler, settings_scaler = fit_scalers(samples, train_idx, config.scaling)

    def inputs(idx):
        return {"trace": trace_scaler.transform(samples.traces[idx])[..., None],
                "settings": settings_scaler.transform(samples.settings[idx])}

    x_train, y_train = inputs(train_idx), samples.label[train_idx].astype(np.float32)
    x_test, y_test = inputs(test_idx), samples.label[test_idx].astype(np.int64)
    weights = class_weights(y_train.astype(np.int64))
    length = samples.trace_shape[0]
    out = {"train_samples": int(train_idx.size), "epochs": settings.train_epochs,
           "batch_size": config.train.batch_size, "test_samples": int(test_idx.size),
           "models": {}}
    for name in ("sns_cnn_lstm", "sns_prototype"):
        keras.utils.set_random_seed(0)
        model_config = dataclasses.replace(config.model, name=name)
        model = build_model(model_config, InputSpec(
            trace_length=int(length), n_channels=1, n_settings=int(samples.settings.shape[1])))
        compile_model(model, model_config, config.train)
        timer = _EpochTimer()
        model.fit(x_train, y_train, batch_size=config.train.batch_size,
                  epochs=settings.train_epochs, class_weight=weights, shuffle=True, verbose=0,
                  callbacks=[timer])
        steady = timer.seconds[1:] or timer.seconds
        started = time.perf_counter()
        scores = model.predict(x_test, batch_size=LATENCY_BATCH, verbose=0).reshape(-1)
        predict_s = time.perf_counter() - started
        out["models"][name] = {
            "params": int(model.count_params()),
            "epoch_seconds": timer.seconds,
            "seconds_per_epoch": float(np.mean(steady)),
            "samples_per_second": float(train_idx.size / np.mean(steady)),
            "first_epoch_seconds": timer.seconds[0],
            "predict_samples_per_second": float(test_idx.size / predict_s),
            "pr_auc": float(average_precision_score(y_test, scores)),
        }
        if detection is not None and name in detection.get("models", {}):
            out["models"][name]["detection_pr_auc"] = detection["models"][name]["summary"]["pr_auc"]
    cnn, proto = out["models"]["sns_cnn_lstm"], out["models"]["sns_prototype"]
    out["throughput_ratio"] = stats.ratio(cnn["samples_per_second"], proto["samples_per_second"])
    out["target_ratio"] = THROUGHPUT_TARGET_RATIO
    return out


# ----------------------------------------------------------------------------------------------
# (d) single-pulse latency on one core, in a child process


def latency(settings: SpeedSettings, workdir: Path, model_path: Path | None = None) -> dict:
    """Runs the latency child pinned to CPU 0; returns its figures."""
    out_json = workdir / "latency.json"
    command = [sys.executable, "-m", "benchmarks.speed", "--latency-child", str(out_json),
               "--iterations", str(settings.latency_iterations),
               "--batch-repeats", str(settings.batch_repeats), "--workdir", str(workdir)]
    if model_path is not None and model_path.exists():
        command += ["--model", str(model_path)]
    pinned = run_cpu_child(command, "latency child", pin=True)
    result = json.loads(out_json.read_text())
    result["pinned_with"] = "taskset -c 0" if pinned else "os.sched_setaffinity({0})"
    result["budget_ms"] = PULSE_BUDGET_MS
    result["target_p99_ms"] = LATENCY_TARGET_P99_MS
    return result


def _percentiles(ns: list[int]) -> dict:
    ms = np.asarray(ns, dtype=np.float64) / 1e6
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()), "max_ms": float(ms.max()), "n": int(ms.size)}


def _time_calls(fn, args, iterations: int, warmup: int = 20) -> list[int]:
    for _ in range(warmup):
        fn(*args)
    times = []
    for _ in range(iterations):
        start = time.perf_counter_ns()
        out = fn(*args)
        _ = out.numpy() if hasattr(out, "numpy") else out  # wait for the result
        times.append(time.perf_counter_ns() - start)
    return times


def latency_child(out_json: Path, iterations: int, batch_repeats: int, workdir: Path,
                  model_path: Path | None) -> None:
    """Body of the child process: one core, one thread, the default model."""
    if not shutil.which("taskset") and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    from model import InputSpec, build_model
    from parser.configs import load_config

    config = load_config(None, [])
    if model_path is not None:
        model = keras.saving.load_model(model_path, safe_mode=True)
        source = str(model_path)
    else:
        keras.utils.set_random_seed(0)
        # The pulse-alone network: this child feeds "trace" and "settings" only.
        model = build_model(dataclasses.replace(config.model, name="sns_cnn_lstm"), InputSpec(
            trace_length=config.data.shift, n_channels=1,
            n_settings=len(config.beam_settings.features)))
        source = "untrained sns_cnn_lstm (weights do not change the cost)"
    length = int(model.input["trace"].shape[1])
    n_settings = int(model.input["settings"].shape[1])
    rng = np.random.default_rng(0)

    def batch(n):
        return (tf.constant(rng.normal(size=(n, length, 1)).astype(np.float32)),
                tf.constant(rng.normal(size=(n, n_settings)).astype(np.float32)))

    def signature(n):
        return [tf.TensorSpec([n, length, 1], tf.float32, name="trace"),
                tf.TensorSpec([n, n_settings], tf.float32, name="settings")]

    results = {"model": source, "trace_length": length, "n_settings": n_settings,
               "threads": {"intra_op": 1, "inter_op": 1}, "iterations": iterations,
               "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else None}
    one, many = batch(1), batch(LATENCY_BATCH)
    variants = {}
    for name, jit in (("tf_function", False), ("tf_function_xla", True)):
        def call(trace, settings):
            return model({"trace": trace, "settings": settings}, training=False)

        single = tf.function(call, input_signature=signature(1), jit_compile=jit)
        batched = tf.function(call, input_signature=signature(LATENCY_BATCH), jit_compile=jit)
        try:
            variants[name] = (single, batched)
            _time_calls(single, one, 1, warmup=1)
        except Exception as exc:  # XLA may be unavailable on a CPU build: say so, go on
            results[name] = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
            variants.pop(name)
    export_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="export-"))
    started = time.perf_counter()
    model.export(str(export_dir / "model"), verbose=False)
    loaded = tf.saved_model.load(str(export_dir / "model"))
    results["export_seconds"] = time.perf_counter() - started
    serve = loaded.signatures["serve"]
    variants["saved_model"] = (lambda t, s: serve(trace=t, settings=s)["output_0"],) * 2
    # Round-robin in rounds, so a burst of load from other processes hits every path alike.
    rounds = max(1, min(10, iterations // 20))
    single_ns = {name: [] for name in variants}
    batch_ns = {name: [] for name in variants}
    for single, batched in variants.values():
        _time_calls(single, one, 1, warmup=20)
        _time_calls(batched, many, 1, warmup=1)
    for r in range(rounds):
        for name, (single, _) in variants.items():
            share = iterations // rounds + (1 if r < iterations % rounds else 0)
            single_ns[name] += _time_calls(single, one, share, warmup=2)
    for _ in range(batch_repeats):
        for name, (_, batched) in variants.items():
            batch_ns[name] += _time_calls(batched, many, 1, warmup=0)
    for name in variants:
        figures = _percentiles(single_ns[name])
        figures["batch"] = LATENCY_BATCH
        figures["batch_pulses_per_second"] = LATENCY_BATCH / (min(batch_ns[name]) / 1e9)
        results[name] = figures
    shutil.rmtree(export_dir, ignore_errors=True)
    out_json.write_text(json.dumps(results, indent=2))


# ----------------------------------------------------------------------------------------------
# The benchmark and its tables


def run(settings: SpeedSettings, archive: Path, workdir: Path, detection: dict | None = None,
        errors: dict | None = None) -> dict:
    """(a)-(d); a part that fails is recorded with its error, the others still run."""
    out: dict = {}
    from training.callbacks import best_checkpoint_path

    # The default model the detection section trained, if it ran in this work folder.
    model_path = best_checkpoint_path(workdir / "runs" / "sns_cnn_lstm-s0")
    parts = {
        "read_storage": lambda: read_storage(settings, archive),
        "dataset_build": lambda: dataset_build(settings, archive, workdir),
        "training": lambda: training_throughput(settings, archive, workdir, detection),
        "latency": lambda: latency(settings, workdir, model_path),
    }
    for name, action in parts.items():
        started = time.perf_counter()
        try:
            out[name] = action()
        except Exception as exc:  # a missing piece must not sink the other figures
            log.exception("speed part %s failed", name)
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
        out[name]["wall_seconds"] = time.perf_counter() - started
    return out


def _ms(value) -> str:
    return stats.format_number(value, 2)


def render(result: dict) -> str:
    lines = ["### Speed", ""]
    lines += _render_read(result.get("read_storage", {}))
    lines += _render_build(result.get("dataset_build", {}))
    lines += _render_training(result.get("training", {}))
    lines += _render_latency(result.get("latency", {}))
    return "\n".join(lines)


def _error(title: str, part: dict) -> list[str]:
    return [f"**{title}**: not measured ({part['error']}).", ""]


def _render_read(part: dict) -> list[str]:
    title = "(a) Full file read, ReadStorage vs `gzip -dc`"
    if "error" in part or not part:
        return _error(title, part or {"error": "not run"})
    rows = []
    for name, r in part.items():
        if not isinstance(r, dict) or "ratio" not in r:
            continue
        rows.append([name, f"{r['records']}", f"{r['compressed_bytes']:,}",
                     _ms(r["gzip_dc_s"] * 1e3), _ms(r["read_storage_s"] * 1e3),
                     stats.format_ratio(r["ratio"]), f"<= {r['target_ratio']}x",
                     "yes" if r["ratio"] <= r["target_ratio"] else "NO"])
    return [f"**{title}** (best of N):", "",
            render_table(["file", "records", "bytes", "gzip -dc ms", "ReadStorage ms", "ratio",
                          "target", "met"], rows), ""]


def _render_build(part: dict) -> list[str]:
    title = "(b) Dataset build, cold vs warm cache"
    if "error" in part or not part:
        return _error(title, part or {"error": "not run"})
    rows = []
    for r in part.get("runs", []):
        rows.append([str(r["workers"]), r["cache"], stats.format_number(r["seconds"], 2),
                     stats.format_number(r["pulses_per_second"], 0), str(r["pulses"])])
    # No memory column: the child's ru_maxrss includes the parent's RSS at fork (Linux keeps
    # the high-water mark across exec); memory is measured with VmHWM in the scale section.
    lines = [f"**{title}** (in-memory build of the detection archive, "
             f"`{Path(part['archive']).name}`, each in a fresh child process):", "",
             render_table(["workers", "cache", "seconds", "pulses / s", "pulses"], rows), ""]
    low, high = part.get("workers_compared", [1, 2])
    for key, text in (("warm_speedup", f"warm vs cold ({low} worker(s))"),
                      ("worker_speedup", f"cold build, {high} vs {low} workers")):
        if part.get(key) is not None:
            lines.append(f"- {text}: {stats.format_ratio(part[key])}")
    return [*lines, ""]


def _render_training(part: dict) -> list[str]:
    title = "(c) Training throughput"
    if "error" in part or not part:
        return _error(title, part or {"error": "not run"})
    rows = []
    for name, m in part["models"].items():
        det = m.get("detection_pr_auc")
        rows.append([name, f"{m['params']:,}", stats.format_number(m["samples_per_second"], 1),
                     stats.format_number(m["seconds_per_epoch"], 2),
                     stats.format_number(m["first_epoch_seconds"], 1),
                     stats.format_number(m["predict_samples_per_second"], 0),
                     stats.format_number(m["pr_auc"]),
                     stats.format_mean_spread(det) if det else "n/a"])
    ratio = part["throughput_ratio"]
    met = ratio is not None and ratio >= part["target_ratio"]
    return [f"**{title}**: {part['train_samples']} in-memory training pulses, batch "
            f"{part['batch_size']}, {part['epochs']} epochs (the first, which traces the graph, "
            f"left out of samples/s); PR AUC on {part['test_samples']} test pulses after these "
            "epochs, and from the detection table (each model's own recipe):", "",
            render_table(["model", "parameters", "train samples / s", "s / epoch",
                          "first epoch s", "predict samples / s", "PR AUC here",
                          "PR AUC (detection)"], rows), "",
            f"- throughput ratio sns_cnn_lstm / sns_prototype: {stats.format_ratio(ratio)} "
            f"(target >= {part['target_ratio']:.0f}x: {'met' if met else 'NOT met'})", ""]


def _render_latency(part: dict) -> list[str]:
    title = "(d) Scoring latency of the default model on one CPU core"
    if "error" in part or not part:
        return _error(title, part or {"error": "not run"})
    rows = []
    for name in ("tf_function", "tf_function_xla", "saved_model"):
        r = part.get(name)
        if r is None:
            continue
        if "error" in r:
            rows.append([name, "", "", "", r["error"], ""])
            continue
        rows.append([name, _ms(r["p50_ms"]), _ms(r["p99_ms"]),
                     stats.format_ratio(stats.ratio(r["p99_ms"], part["target_p99_ms"])),
                     stats.format_number(r["batch_pulses_per_second"], 0),
                     stats.format_ratio(stats.ratio(part["budget_ms"], r["p99_ms"]), 1)])
    return [f"**{title}** ({part['pinned_with']}, TF intra/inter-op threads 1; "
            f"{part.get('iterations')} single-pulse calls per row; model: "
            f"{part['model']}):", "",
            render_table(["path", "p50 ms", "p99 ms", "p99 / 5 ms target",
                          f"pulses / s at batch {LATENCY_BATCH}", "16.7 ms budget / p99"], rows),
            ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="latency child of the speed benchmark")
    parser.add_argument("--latency-child", type=Path, required=True, metavar="OUT_JSON")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--batch-repeats", type=int, default=5)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args(argv)
    latency_child(args.latency_child, args.iterations, args.batch_repeats, args.workdir,
                  args.model)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
