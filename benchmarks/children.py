"""Benchmark child processes: one way to start them, CPU only, optionally pinned to one core.

Speed, stream and scale figures are measured in a fresh Python so that one section's imports,
caches and memory do not leak into another's. The child inherits the parent's environment
plus TensorFlow's quiet and CPU-only settings.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_cpu_child(command: Sequence[str], what: str, *, pin: bool = False) -> bool:
    """Run `command` from the repository root on the CPU; raise with its stderr on failure.

    With `pin`, the child runs on core 0 through `taskset` where it exists (the child may also
    pin itself). Returns whether `taskset` pinned it.
    """
    command = list(command)
    pinned = pin and shutil.which("taskset") is not None
    if pinned:
        command = ["taskset", "-c", "0", *command]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="-1")
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}): {done.stderr[-2000:]}")
    return pinned


def resident_mb() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MiB: VmRSS and VmHWM from
    /proc/self/status (Linux), else the peak `ru_maxrss` for both."""
    values = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, amount = line.split(":")
                values[key] = float(amount.split()[0]) / 1024.0
    except OSError:
        pass
    if "VmHWM" not in values:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        return peak, peak
    return values.get("VmRSS", float("nan")), values["VmHWM"]
