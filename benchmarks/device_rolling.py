"""The rolling evaluation's networks on an accelerator machine, in parallel processes.

The `--standard` rolling evaluation trains every network on every fold with three seeds; on two
CPU cores that takes over an hour. This runner does the network part on one machine with a GPU
(the Keras model code is backend-neutral, so it runs under JAX where TensorFlow is not
installed): it simulates the presets' archives, warms one shared cache, then runs one process
per (preset, model, test block, seed) through `benchmarks.rolling.run` exactly as the CPU
profile does, and merges the slices into the same JSON layout as `rolling.run`. A slice killed
at the deadline costs only its own seed. The peers (MiniRocket, regressions) run where aeon is
installed, on the same archives (same seed, same bytes): `paired_with_peers` joins the
runner's test scores with a CPU run's `scores/rolling-<preset>.csv` on the test pulses'
timestamps and adds the paired bootstrap.

    KERAS_BACKEND=jax python -m benchmarks.device_rolling --out OUT --preset realistic \\
        --models sns_cnn_lstm,sns_reference_cnn_lstm --seeds 0,1,2 --jobs 9
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("beamwatch.benchmarks.device_rolling")

ARCHIVE_SEED = 20201  # the suite's profiles' archive seed
DEMO_HOURS = 42.0  # the suite's demo archive (detection and rolling sections)


def preset_params(preset: str, hours: float | None = None):
    """The simulator parameters of a preset's benchmark archive (the suite's, through
    `benchmarks.presets`); `hours` shortens it (smoke tests)."""
    from benchmarks.presets import preset_params as suite_params

    params = suite_params(preset, ARCHIVE_SEED, demo_hours=DEMO_HOURS, hours=hours)
    if params is None:
        raise ValueError(f"--preset {preset!r}: SimulatorParams has no such preset")
    return params


def archive_dir(workdir: Path, preset: str, hours: float | None = None) -> Path:
    params = preset_params(preset, hours)
    return workdir / f"archive-{preset}-{params.hours:g}h-seed{ARCHIVE_SEED}"


def prepare(workdir: Path, presets: list[str], workers: int, hours: float | None) -> dict:
    """Simulate each preset's archive and fill the shared cache (children then only read it)."""
    from benchmarks import detection_models, detection_truth
    from data_preparation.pipeline import prepare_samples

    info = {}
    for preset in presets:
        started = time.perf_counter()
        archive = detection_truth.ensure_archive(archive_dir(workdir, preset, hours),
                                           preset_params(preset, hours))
        config = detection_models.bench_config(Path(archive["path"]), workdir,
                                        [f"data.workers={workers}"])
        samples = prepare_samples(config, progress=False)
        info[preset] = {"samples": len(samples), "errant": int(samples.label.sum()),
                        "simulate_seconds": archive["simulate_seconds"],
                        "prepare_seconds": time.perf_counter() - started}
        log.info("%s: %s", preset, info[preset])
    return info


def run_slice(workdir: Path, out: Path, preset: str, model: str, block: int,
              seeds: tuple[int, ...], epochs: int, n_boot: int, hours: float | None) -> Path:
    """One (preset, model, test block, seeds) slice: `rolling.run` restricted to it, as JSON."""
    from benchmarks import rolling

    settings = rolling.RollingSettings(n_blocks=5, blocks=(block,), seeds=seeds, epochs=epochs,
                                       neural=(model,), peers=(), n_boot=n_boot, leaky=False)
    name = f"{preset}-{model}-b{block}-s{'_'.join(map(str, seeds))}"
    slice_dir = workdir / f"slice-{name}"
    slice_dir.mkdir(parents=True, exist_ok=True)
    shared = slice_dir / "cache"
    if not shared.exists():
        shared.symlink_to((workdir / "cache").resolve(), target_is_directory=True)
    result = rolling.run(archive_dir(workdir, preset, hours), slice_dir, settings, preset=preset)
    if model not in result["models"]:  # rolling.run logs and carries on; a slice must not
        raise RuntimeError(f"slice {preset}/{model}/b{block}: "
                           f"{result['skipped'].get(model, 'no result')}")
    target = out / f"slice-{name}.json"
    target.write_text(json.dumps(result, default=str))
    scores = slice_dir / "scores" / f"rolling-{preset}.csv"
    if scores.exists():
        scores.rename(out / f"scores-{name}.csv")
    return target


def run_all(workdir: Path, out: Path, presets: list[str], models: list[str], seeds, epochs: int,
            jobs: int, deadline_s: float, n_boot: int, hours: float | None) -> dict:
    """Every (preset, model, block, seed) slice in a child process, at most `jobs` at a time,
    stopped at the deadline (what finished by then is kept)."""
    started = time.monotonic()
    slices = [(p, m, b, s) for p in presets for m in models for b in (2, 3, 4) for s in seeds]
    env = dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false", PYTHONUNBUFFERED="1")
    pending, running, done = list(slices), {}, {}
    while pending or running:
        while pending and len(running) < jobs:
            preset, model, block, seed = pending.pop(0)
            cmd = [sys.executable, "-m", "benchmarks.device_rolling", "--child", "--out", str(out),
                   "--workdir", str(workdir), "--preset", preset, "--models", model,
                   "--block", str(block), "--seeds", str(seed),
                   "--epochs", str(epochs), "--n-boot", str(n_boot)]
            if hours is not None:
                cmd += ["--hours", str(hours)]
            log_file = open(out / f"log-{preset}-{model}-b{block}-s{seed}.txt", "w")  # noqa: SIM115
            running[(preset, model, block, seed)] = (subprocess.Popen(
                cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT), log_file)
        for key, (proc, log_file) in list(running.items()):
            if proc.poll() is not None:
                log_file.close()
                done[key] = proc.returncode
                del running[key]
                log.info("slice %s: exit %s after %.0f s", key, proc.returncode,
                         time.monotonic() - started)
        if time.monotonic() - started > deadline_s:
            for key, (proc, log_file) in running.items():
                proc.kill()
                log_file.close()
                done[key] = "killed at the deadline"
            for key in pending:
                done[key] = "not started before the deadline"
            break
        time.sleep(1.0)
    return {f"{p}/{m}/b{b}/s{s}": code for (p, m, b, s), code in done.items()}


def merge_slices(out: Path, presets: list[str], target: float = 0.01) -> dict:
    """The slices' JSON merged into `{preset: rolling.run-like result}`: per model, one fold
    record per block holding every seed that finished, and the summary over blocks."""
    from benchmarks import rolling_figures
    from benchmarks.rolling_figures import fold_record

    merged = {}
    for preset in presets:
        result, seeds_by_fold = None, {}
        for path in sorted(out.glob(f"slice-{preset}-*.json")):
            part = json.loads(path.read_text())
            if result is None:
                result = {k: v for k, v in part.items() if k not in ("models", "paired")}
                result["models"], result["folds"] = {}, []
            result["folds"] += [f for f in part["folds"]
                                if f["block"] not in {g["block"] for g in result["folds"]}]
            result["skipped"] = {**result.get("skipped", {}), **part.get("skipped", {})}
            for name, record in part["models"].items():
                have = result["models"].setdefault(name, {"kind": record["kind"], "runs": []})
                have["runs"] += record["runs"]
                for fold in record["folds"]:
                    seeds_by_fold.setdefault((name, fold["block"]), []).extend(fold["seeds"])
        if result is None:
            continue
        result["folds"].sort(key=lambda f: f["block"])
        result["seeds"] = sorted({s["seed"] for figures in seeds_by_fold.values()
                                  for s in figures})
        for name, record in result["models"].items():
            record["runs"].sort(key=lambda r: (r["block"], r["seed"]))
            record["folds"] = [fold_record(block, sorted(figures, key=lambda f: f["seed"]))
                               for (model, block), figures in sorted(seeds_by_fold.items())
                               if model == name]
            record["summary"] = rolling_figures.summarize_model(record["folds"], target)
        merged[preset] = result
    return merged


def paired_with_peers(device_scores, cpu_scores, default: str, *, n_boot: int = 1000) -> dict:
    """The runner's `default` network against every model of a CPU run, on shared test pulses.

    Both frames are `rolling-<preset>.csv` score tables (model, block, seed, timestamp_ns,
    label, score). Pulses are matched on (block, timestamp_ns); a block enters only where every
    pulse of the CPU model's test block has a device score. Returns `{model: paired_bootstrap
    result}` for each CPU model other than `default` (`rolling_figures.paired_bootstrap`).
    """
    from benchmarks.rolling_figures import paired_bootstrap

    ours = device_scores[device_scores.model == default]
    out = {}
    for name, theirs in cpu_scores.groupby("model"):
        if name == default:
            continue
        labels, a, b = [], [], []
        for block, peer_block in theirs.groupby("block"):
            mine = ours[ours.block == block]
            if mine.empty:
                continue
            pulses = np.sort(peer_block.timestamp_ns.unique())
            runs_a = [_aligned(run, pulses) for _, run in mine.groupby("seed")]
            runs_b = [_aligned(run, pulses) for _, run in peer_block.groupby("seed")]
            if any(r is None for r in runs_a + runs_b):
                continue
            labels.append(runs_b[0][1])
            a.append([r[0] for r in runs_a])
            b.append([r[0] for r in runs_b])
        if labels:
            out[name] = paired_bootstrap(labels, a, b, n_boot=n_boot, seed=0)
    return out


def _aligned(run, pulses):
    """(scores, labels) of one seed's run at `pulses` (sorted timestamps), or None if any is
    missing."""
    by_time = run.drop_duplicates("timestamp_ns").set_index("timestamp_ns")
    if not np.isin(pulses, by_time.index.to_numpy()).all():
        return None
    rows = by_time.loc[pulses]
    return rows.score.to_numpy(np.float64), rows.label.to_numpy(np.int64)


def _consolidate(out: Path, presets: list[str]) -> None:
    """Few files come back from the machine: one scores CSV per preset, one log."""
    import pandas as pd

    for preset in presets:
        parts = sorted(out.glob(f"scores-{preset}-*.csv"))
        if parts:
            pd.concat([pd.read_csv(p) for p in parts]).to_csv(out / f"scores-{preset}.csv",
                                                               index=False)
        for path in parts:
            path.unlink()
    with open(out / "logs.txt", "w") as logs:
        for path in sorted(out.glob("log-*.txt")):
            lines = path.read_text(errors="replace").splitlines()
            logs.write(f"==== {path.name} ({len(lines)} lines; last 40)\n")
            logs.write("\n".join(lines[-40:]) + "\n")
            path.unlink()
    for path in out.glob("slice-*.json"):
        path.unlink()  # merged into device-rolling.json


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="results folder")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/beamwatch-device"))
    parser.add_argument("--preset", action="append", default=None,
                        help="simulator preset (repeatable; default: realistic and demo)")
    parser.add_argument("--models", default="sns_cnn_lstm,sns_reference_cnn_lstm,"
                                            "sns_conditional_siamese")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=9, help="slices trained at once")
    parser.add_argument("--deadline-s", type=float, default=480.0)
    parser.add_argument("--hours", type=float, default=None,
                        help="shorter archives than the presets' (smoke tests only)")
    parser.add_argument("--pair", nargs=2, type=Path, metavar=("DEVICE_CSV", "CPU_CSV"),
                        help="no training: the paired bootstrap of the default network's scores "
                             "from this runner against every model of a CPU run's "
                             "rolling-<preset>.csv, written to OUT/paired.json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--block", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    presets = args.preset or ["realistic", "demo"]
    seeds = tuple(int(s) for s in args.seeds.split(","))
    models = args.models.split(",")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.pair:
        import pandas as pd

        from benchmarks.rolling_figures import DEFAULT_MODEL

        device_csv, cpu_csv = args.pair
        paired = paired_with_peers(pd.read_csv(device_csv), pd.read_csv(cpu_csv), DEFAULT_MODEL,
                                   n_boot=args.n_boot)
        if not paired:
            log.warning("--pair: no model in %s shares a whole test block with the %s scores "
                        "in %s (same archive and blocks?)", cpu_csv, DEFAULT_MODEL, device_csv)
        (args.out / "paired.json").write_text(json.dumps(
            {"device_scores": str(device_csv), "cpu_scores": str(cpu_csv),
             "default": DEFAULT_MODEL, "against": paired}, indent=1))
        for name, figures in paired.items():
            log.info("%s - %s: %+.3f [%+.3f, %+.3f] over %d block(s)", DEFAULT_MODEL, name,
                     figures["difference"], figures["lo"], figures["hi"], figures["blocks"])
        return 0
    if args.child:
        run_slice(args.workdir, args.out, presets[0], models[0], args.block, seeds, args.epochs,
                  args.n_boot, args.hours)
        return 0
    import keras

    started = time.monotonic()
    info = prepare(args.workdir, presets, os.cpu_count() or 1, args.hours)
    remaining = args.deadline_s - (time.monotonic() - started)
    status = run_all(args.workdir, args.out, presets, models, seeds, args.epochs, args.jobs,
                     remaining, args.n_boot, args.hours)
    merged = merge_slices(args.out, presets)
    summary = {"backend": keras.backend.backend(), "machine": os.uname().nodename,
               "seconds": time.monotonic() - started, "prepare": info, "slices": status,
               "settings": {"seeds": seeds, "epochs": args.epochs, "models": models},
               "results": merged}
    (args.out / "device-rolling.json").write_text(json.dumps(summary, default=str))
    _consolidate(args.out, presets)
    log.info("done in %.0f s: %s", summary["seconds"], status)
    return 0


if __name__ == "__main__":
    sys.exit(main())
