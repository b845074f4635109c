"""Benchmark: training samples per second with 1 and 2 local multi-worker processes.

    python -m benchmarks.bench_multi_worker [--n-train 4096] [--epochs 4] [--batch-size 32]

Each worker is a separate process running the multi-worker training loop
(`tests/training/multi_worker_job.py`, mode `multi_worker`) on the same tiny data, wired by
`TF_CONFIG` on localhost ports. Throughput = samples of the epochs after the first (which traces
the graph) / their wall time, as the chief measured it. On a 2-core machine two workers share
the cores, so this measures the cost of the collectives and gRPC, not a speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _run_workers(count: int, out: Path, n_train: int, epochs: int, batch_size: int) -> dict:
    hosts = [f"127.0.0.1:{p}" for p in _free_ports(count)]
    procs = []
    for index in range(count):
        env = dict(os.environ, TF_CONFIG=json.dumps(
            {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "tests.training.multi_worker_job", "--out",
             str(out / f"w{index}"), "--mode", "multi_worker", "--n-train", str(n_train),
             "--epochs", str(epochs), "--batch-size", str(batch_size)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    for proc in procs:
        _, err = proc.communicate(timeout=1200)
        if proc.returncode != 0:
            raise RuntimeError(f"worker failed:\n{err[-3000:]}")
    result = json.loads((out / "w0" / "result.json").read_text())
    steady = result["epoch_seconds"][1:]
    return {
        "workers": count,
        "replicas": result["replicas"],
        "global_batch": batch_size * result["replicas"],
        "epoch_seconds": result["epoch_seconds"],
        "samples_per_second": n_train * len(steady) / sum(steady),
    }


def run(n_train: int = 4096, epochs: int = 4, batch_size: int = 32) -> dict:
    """Samples/s with 1 and 2 workers, and their ratio."""
    with tempfile.TemporaryDirectory(prefix="bw-mw-") as tmp:
        rows = [_run_workers(n, Path(tmp) / f"n{n}", n_train, epochs, batch_size) for n in (1, 2)]
    return {"rows": rows, "ratio_2_vs_1": rows[1]["samples_per_second"]
            / rows[0]["samples_per_second"], "cores": os.cpu_count()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=32, help="per replica")
    args = parser.parse_args(argv)
    figures = run(args.n_train, args.epochs, args.batch_size)
    for row in figures["rows"]:
        print(f"{row['workers']} worker(s), {row['replicas']} replica(s), global batch "
              f"{row['global_batch']}: {row['samples_per_second']:.0f} samples/s")
    print(f"2 vs 1 workers: {figures['ratio_2_vs_1']:.2f}x on {figures['cores']} cores")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
