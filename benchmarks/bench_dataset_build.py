"""Benchmark: building the pulse data set from a DCM archive, cold (empty cache) and warm.

Target (from the issue): a warm rebuild of the same archive is at least 20x faster than a cold
build, and peak memory grows with the archive only through the traces kept in memory (the
streamed build keeps only per-pulse indices).

    python -m benchmarks.bench_dataset_build [--sizes 1,4] [--hours 3] [--workers N]

For each size s it simulates an archive of s x `--hours` hours (`SimulatorParams.demo` scaled
by hours) in a temporary folder, then times three builds, each in a fresh child process so
that its peak resident memory is its own (`VmHWM` from /proc/self/status: unlike `ru_maxrss`,
it does not carry the parent's peak across fork + exec): cold (in memory), warm (in memory)
and warm streamed (`TraceStore`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_RATIO = 20.0


def _build(dataset: str, cache: str, workers: int, stream: bool) -> dict:
    """One build in this process (the child); returns time, counts and peak memory."""
    from data_preparation.data_loader import load_pulses
    from parser.configs import DCMDataConfig

    config = DCMDataConfig(dataset_loc=dataset, cache_dir=cache, workers=workers)
    start = time.perf_counter()
    pulses = load_pulses(config, progress=False, stream=stream)
    seconds = time.perf_counter() - start
    workers_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "seconds": seconds,
        "pulses": len(pulses),
        "files": len(pulses.files),
        "peak_rss_mb": _own_peak_rss_kib() / 1024,
        "peak_worker_rss_mb": workers_rss / 1024,
    }


def _own_peak_rss_kib() -> int:
    """This process's peak resident set (VmHWM, KiB); ru_maxrss where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def build_in_child(dataset: Path, cache: Path, workers: int, stream: bool) -> dict:
    args = json.dumps([str(dataset), str(cache), workers, stream])
    code = (
        "import json, sys; from benchmarks.bench_dataset_build import _build; "
        "print(json.dumps(_build(*json.loads(sys.argv[1]))))"
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", code, args], cwd=root, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"build failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _archive_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def run(
    sizes: tuple[float, ...] = (1, 4),
    hours: float = 3.0,
    workers: int = 0,
    seed: int = 0,
    work_dir: str | os.PathLike | None = None,
) -> dict:
    """Simulate each archive size and time cold, warm and warm-streamed builds."""
    from enterprise_tools.simulator import SimulatorParams, simulate_archive

    workers = workers or os.cpu_count() or 1
    results = []
    with tempfile.TemporaryDirectory(dir=work_dir) as folder:
        for size in sizes:
            root = Path(folder) / f"size_{size}"
            started = time.perf_counter()
            simulate_archive(root, SimulatorParams.demo(hours=hours * size, seed=seed),
                             workers=workers)
            simulate_s = time.perf_counter() - started
            dataset, cache = root / "dcm", root / "cache"
            cold = build_in_child(dataset, cache, workers, stream=False)
            warm = build_in_child(dataset, cache, workers, stream=False)
            streamed = build_in_child(dataset, cache, workers, stream=True)
            results.append({
                "size": size,
                "hours": hours * size,
                "archive_mb": _archive_mb(dataset),
                "cache_mb": _archive_mb(cache),
                "simulate_s": simulate_s,
                "files": cold["files"],
                "pulses": cold["pulses"],
                "cold_s": cold["seconds"],
                "warm_s": warm["seconds"],
                "warm_stream_s": streamed["seconds"],
                "ratio": cold["seconds"] / warm["seconds"],
                "cold_pulses_per_s": cold["pulses"] / cold["seconds"],
                "warm_pulses_per_s": warm["pulses"] / warm["seconds"],
                "cold_peak_rss_mb": cold["peak_rss_mb"],
                "cold_peak_worker_rss_mb": cold["peak_worker_rss_mb"],
                "warm_peak_rss_mb": warm["peak_rss_mb"],
                "warm_stream_peak_rss_mb": streamed["peak_rss_mb"],
            })
            shutil.rmtree(root)
    return {"workers": workers, "target_ratio": TARGET_RATIO, "sizes": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,4", help="archive sizes, in units of --hours")
    parser.add_argument("--hours", type=float, default=3.0, help="hours of size 1 (default 3)")
    parser.add_argument("--workers", type=int, default=0, help="reader processes (0: all cores)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        sizes = tuple(float(s) for s in args.sizes.split(","))
    except ValueError:
        parser.error(f"--sizes must be numbers separated by commas, got {args.sizes!r}")
    result = run(sizes, args.hours, args.workers, args.seed)
    print(f"workers {result['workers']}; target warm/cold speed-up >= {TARGET_RATIO:g}x")
    header = (f"{'size':>5} {'files':>6} {'pulses':>7} {'MB':>6} {'cold s':>7} {'warm s':>7} "
              f"{'ratio':>6} {'cold p/s':>9} {'warm p/s':>9} {'RSS cold':>9} {'warm':>6} "
              f"{'stream':>7}")
    print(header)
    for r in result["sizes"]:
        print(
            f"{r['size']:>5g} {r['files']:>6d} {r['pulses']:>7d} {r['archive_mb']:>6.1f} "
            f"{r['cold_s']:>7.2f} {r['warm_s']:>7.3f} {r['ratio']:>6.1f} "
            f"{r['cold_pulses_per_s']:>9.0f} {r['warm_pulses_per_s']:>9.0f} "
            f"{r['cold_peak_rss_mb']:>8.0f}M {r['warm_peak_rss_mb']:>5.0f}M "
            f"{r['warm_stream_peak_rss_mb']:>6.0f}M"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
