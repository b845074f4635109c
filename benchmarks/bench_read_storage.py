"""Benchmark: reading a whole DCM .bin.gz with ReadStorage against `gzip -dc` on the same file.

Target (from the issue): a full read takes at most 1.3x the time of `gzip -dc F > /dev/null`.

    python -m benchmarks.bench_read_storage [--file F] [--repeat N]

Without ``--file`` it writes a realistic file in a temporary folder: 30 pulses of three records
(two float32 DCM traces of 16000 samples with 14-bit quantised noise, and a status record).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable

import numpy as np

from enterprise_tools.biet_reader import ReadStorage
from enterprise_tools.biet_writer import write_storage

TARGET_RATIO = 1.3


def make_dcm_file(
    path: str | os.PathLike, pulses: int = 30, samples: int = 16_000, seed: int = 0
) -> None:
    """Write a .bin.gz shaped like an SNS acquisition: Trace1, Trace2 and status per pulse."""
    rng = np.random.default_rng(seed)
    t0 = 1_700_000_000 * 10**9
    step = 0.04 / 2**14  # 14-bit digitiser over the archive's 0..0.04 range
    beam = np.zeros(samples)
    beam[3000:13000] = 0.03
    records = []
    for k in range(pulses):
        stamp = t0 + k * 16_666_667
        for name, scale in (("Trace1", 1.0), ("Trace2", 0.05)):
            noisy = beam * scale + rng.normal(0.0, 0.002, samples)
            quantised = (np.round(noisy / step) * step).astype(np.float32)
            records.append({"name": f"DCM:BLM01:{name}", "timestamp_ns": stamp, "value": quantised})
        records.append(
            {
                "name": "DCM:MPS",
                "timestamp_ns": stamp,
                "parameters": {"Alarm": 0, "bWidth": 1000.0},
            }
        )
    write_storage(path, records)


def _best_of(repeat: int, action: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


def _gzip_dc(path: str) -> None:
    with open(os.devnull, "wb") as sink:
        subprocess.run(["gzip", "-dc", path], stdout=sink, check=True)


def _read_all(path: str) -> int:
    with ReadStorage(path) as storage:
        return sum(1 for _ in storage)


def run(path: str | os.PathLike | None = None, repeat: int = 5) -> dict:
    """Time `gzip -dc` and a full ReadStorage read (best of ``repeat``); return the figures."""
    if shutil.which("gzip") is None:
        raise RuntimeError("the benchmark needs the `gzip` command on PATH")
    with tempfile.TemporaryDirectory() as folder:
        label = "generated (30 pulses x 3 records)" if path is None else os.fspath(path)
        if path is None:
            path = os.path.join(folder, "bench.bin.gz")
            make_dcm_file(path)
        path = os.fspath(path)
        records = _read_all(path)  # warm the page cache and check the file once
        gzip_s = _best_of(repeat, lambda: _gzip_dc(path))
        read_s = _best_of(repeat, lambda: _read_all(path))
        return {
            "file": label,
            "records": records,
            "compressed_bytes": os.path.getsize(path),
            "gzip_dc_s": gzip_s,
            "read_storage_s": read_s,
            "ratio": read_s / gzip_s,
            "target_ratio": TARGET_RATIO,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", help="a .bin.gz to read (default: a generated one)")
    parser.add_argument("--repeat", type=int, default=5, help="best of N runs (default 5)")
    args = parser.parse_args(argv)
    result = run(args.file, args.repeat)
    print(
        f"file            {result['file']} ({result['records']} records, "
        f"{result['compressed_bytes']} bytes)"
    )
    print(f"gzip -dc        {result['gzip_dc_s'] * 1e3:8.2f} ms")
    print(f"ReadStorage     {result['read_storage_s'] * 1e3:8.2f} ms")
    print(f"ratio           {result['ratio']:8.2f}  (target <= {TARGET_RATIO})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
