"""Memory and scale: time and peak memory of the dataset build and of a streamed training epoch.

For archives of 1x, 4x (and 16x) a unit size, two fresh child processes each:

* build: `prepare_samples` with `train.streaming=true` on an empty cache (`data.workers`
  reader processes; their peak is reported apart from the child's own);
* epoch: `prepare_samples` again (warm cache, streamed), scalers on the training part, the
  default model, `model.fit` for two epochs streamed batch by batch from the HDF5 cache; the
  second epoch's time is the epoch time (the first also traces the graph).

Peak memory is the child's `VmHWM` (/proc/self/status), the high-water mark of its resident
set. If streaming works, time grows with the archive and memory stays nearly flat.

The child is `python -m benchmarks.scale --child build|epoch --archive A --workdir W --out J`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import resource
import shutil
import sys
import time
from pathlib import Path

from benchmarks import stats
from benchmarks.children import resident_mb, run_cpu_child
from benchmarks.report import render_table

log = logging.getLogger("beamwatch.benchmarks.scale")


@dataclasses.dataclass(frozen=True)
class ScaleSettings:
    """Archive sizes (see `suite.PROFILES`): multiples of `unit_hours` of the demo preset."""

    unit_hours: float = 6.0
    factors: tuple[int, ...] = (1, 4)
    seed: int = 11
    workers: int = 1
    epochs: int = 2


def _config(archive: Path, workdir: Path, workers: int):
    from benchmarks.detection_models import bench_config

    return bench_config(archive, workdir, [f"data.cache_dir={workdir / 'cache'}",
                                           f"data.workers={workers}", "train.streaming=true"])


def child_build(archive: Path, workdir: Path, workers: int) -> dict:
    from data_preparation.pipeline import prepare_samples

    config = _config(archive, workdir, workers)
    started = time.perf_counter()
    samples = prepare_samples(config, progress=False)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "samples": len(samples), "streaming": samples.streaming,
            "files": len(samples.files), "peak_rss_mb": resident_mb()[1],
            "workers_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def child_epoch(archive: Path, workdir: Path, workers: int, epochs: int) -> dict:
    import keras

    from data_preparation.pipeline import balance_training, fit_scalers, prepare_samples
    from data_preparation.split import split_indices
    from model import build_model, compile_model
    from training.dataset import make_dataset
    from training.fit import class_sample_weight, input_spec
    from training.outputs import input_names

    config = _config(archive, workdir, workers)
    started = time.perf_counter()
    samples = prepare_samples(config, progress=False)
    parts = split_indices(samples.timestamp_ns, samples.label, samples.group, config.split,
                          acquisition=samples.acquisition)
    trace_scaler, settings_scaler = fit_scalers(samples, parts["train"], config.scaling)
    train_samples, idx, weights = balance_training(samples, parts["train"], config.scaling,
                                                   trace_scaler, settings_scaler)
    sample_weight = class_sample_weight(train_samples.label[idx], weights)
    keras.utils.set_random_seed(0)
    # The default model with the inputs it takes (the reference model reads K reference
    # pulses per sample as well, so an epoch reads 1 + K windows per pulse).
    model = build_model(dataclasses.replace(config.model, per_trace=False),
                        input_spec(samples))
    compile_model(model, config.model, config.train)
    dataset = make_dataset(train_samples, idx, trace_scaler, settings_scaler,
                           batch_size=config.train.batch_size, shuffle=True, seed=0,
                           input_names=input_names(model), sample_weight=sample_weight)
    setup = time.perf_counter() - started
    epoch_seconds = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        model.fit(dataset, epochs=1, verbose=0, shuffle=False)  # the dataset shuffles itself
        epoch_seconds.append(time.perf_counter() - t0)
    return {"setup_seconds": setup, "epoch_seconds": epoch_seconds,
            "seconds": epoch_seconds[-1], "train_samples": int(len(idx)),
            "streaming": samples.streaming, "peak_rss_mb": resident_mb()[1]}


def _run_child(kind: str, archive: Path, workdir: Path, settings: ScaleSettings) -> dict:
    out = workdir / f"{kind}.json"
    command = [sys.executable, "-m", "benchmarks.scale", "--child", kind, "--archive",
               str(archive), "--workdir", str(workdir), "--workers", str(settings.workers),
               "--epochs", str(settings.epochs), "--out", str(out)]
    started = time.perf_counter()
    run_cpu_child(command, f"scale child {kind} on {archive}")
    result = json.loads(out.read_text())
    result["child_wall_seconds"] = time.perf_counter() - started
    result["children_max_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return result


def run(settings: ScaleSettings, workdir: Path, skipped: tuple[int, ...] = ()) -> dict:
    """Every factor: simulate (or reuse), cold streamed build, streamed epochs."""
    from benchmarks.detection_truth import ensure_archive
    from enterprise_tools.simulator import SimulatorParams

    rows = []
    for factor in settings.factors:
        params = SimulatorParams.demo(hours=settings.unit_hours * factor, seed=settings.seed)
        archive = ensure_archive(workdir / f"archive-scale-{factor}x", params)
        work = workdir / f"scale-{factor}x"
        if work.exists():
            shutil.rmtree(work)  # a cold build needs an empty cache
        work.mkdir(parents=True)
        log.info("scale %dx: build", factor)
        build = _run_child("build", Path(archive["path"]), work, settings)
        log.info("scale %dx: epoch", factor)
        epoch = _run_child("epoch", Path(archive["path"]), work, settings)
        rows.append({"factor": factor, "hours": settings.unit_hours * factor,
                     "simulate_seconds": archive["simulate_seconds"], "build": build,
                     "epoch": epoch})
    return {"settings": dataclasses.asdict(settings), "skipped_factors": list(skipped),
            "rows": rows, "growth": growth(rows)}


def growth(rows: list[dict]) -> list[dict]:
    """Per factor, relative to the smallest: size, time and memory ratios."""
    if not rows:
        return []
    base = rows[0]
    out = []
    for row in rows[1:]:
        size = stats.ratio(row["build"]["samples"], base["build"]["samples"])
        entry = {"factor": row["factor"], "size_ratio": size}
        for part in ("build", "epoch"):
            time_ratio = stats.ratio(row[part]["seconds"], base[part]["seconds"])
            entry[f"{part}_time_ratio"] = time_ratio
            entry[f"{part}_time_per_size"] = stats.ratio(time_ratio, size)
            entry[f"{part}_memory_ratio"] = stats.ratio(row[part]["peak_rss_mb"],
                                                        base[part]["peak_rss_mb"])
        out.append(entry)
    return out


def render(result: dict) -> str:
    rows = []
    for r in result["rows"]:
        b, e = r["build"], r["epoch"]
        rows.append([f"{r['factor']}x ({r['hours']:g} h)", str(b["samples"]),
                     stats.format_number(b["seconds"], 1), stats.format_number(b["peak_rss_mb"], 0),
                     str(e["train_samples"]), stats.format_number(e["seconds"], 1),
                     stats.format_number(e["peak_rss_mb"], 0)])
    growth_rows = [[f"{g['factor']}x vs 1x", stats.format_ratio(g["size_ratio"]),
                    stats.format_ratio(g["build_time_ratio"]),
                    stats.format_ratio(g["build_memory_ratio"]),
                    stats.format_ratio(g["epoch_time_ratio"]),
                    stats.format_ratio(g["epoch_memory_ratio"])] for g in result["growth"]]
    s = result["settings"]
    lines = [
        "### Memory and scale",
        "",
        f"Unit archive: {s['unit_hours']:g} h of the demo preset (seed {s['seed']}); each figure "
        f"from a fresh child process; build = `prepare_samples` streamed on an empty cache with "
        f"{s['workers']} reader worker(s); epoch = the last of {s['epochs']} streamed epochs of "
        "the default model; memory = the child's VmHWM.",
    ]
    if result.get("skipped_factors"):
        lines.append(f"Not run in this profile (time budget): "
                     f"{', '.join(f'{f}x' for f in result['skipped_factors'])}.")
    lines += ["", render_table(["archive", "samples", "build s", "build peak MiB",
                                "train samples", "epoch s", "epoch peak MiB"], rows), "",
              render_table(["growth", "samples", "build time", "build memory", "epoch time",
                            "epoch memory"], growth_rows)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="child process of the scale benchmark")
    parser.add_argument("--child", choices=("build", "epoch"), required=True)
    parser.add_argument("--archive", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.child == "build":
        result = child_build(args.archive, args.workdir, args.workers)
    else:
        result = child_epoch(args.archive, args.workdir, args.workers, args.epochs)
    args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
