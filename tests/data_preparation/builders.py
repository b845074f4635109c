"""Tiny DCM archives and beam-settings files for the data_preparation tests.

Every pulse carries its identity in its Trace2 samples (`pid + sample / 1000`), so a test can
tell which pulse a window came from. Windows are short: traces of 64 samples, `begin=8`,
`shift=32`.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import h5py
import numpy as np

from enterprise_tools.biet_writer import write_storage
from parser.configs import DCMDataConfig

N_SAMPLES = 64
BEGIN = 8
SHIFT = 32
T0 = 1_700_000_000 * 10**9  # a whole second, exact in float64 settings timestamps
PERIOD = 16_666_667  # ns between pulses (60 Hz)


def trace2(pid: float, n_samples: int = N_SAMPLES) -> np.ndarray:
    return (pid + np.arange(n_samples) / 1000.0).astype(np.float32)


def window_of(pid: float) -> np.ndarray:
    """The expected [BEGIN, BEGIN + SHIFT) window of pulse `pid`."""
    return trace2(pid)[BEGIN : BEGIN + SHIFT]


def pulse(ts: int, pid: float, alarm: int = 0, bwidth: float = 1000.0, n_samples=N_SAMPLES):
    """The three records of one pulse: Trace1, Trace2, status."""
    trace1 = np.full(n_samples, 0.03, dtype=np.float32)
    return [
        {"name": "DCM:Trace1", "timestamp_ns": ts, "value": trace1},
        {"name": "DCM:Trace2", "timestamp_ns": ts, "value": trace2(pid, n_samples)},
        {"name": "DCM:Status", "timestamp_ns": ts, "parameters": {"Alarm": alarm, "bWidth": bwidth}},
    ]


def write_file(path: Path, pulses) -> Path:
    """Write a file of pulses given as (ts, pid[, alarm[, bwidth]]) tuples."""
    path.parent.mkdir(parents=True, exist_ok=True)
    records = [r for p in pulses for r in pulse(*p)]
    write_storage(path, records)
    return path


def normal_file(path: Path, start: int, pids) -> Path:
    """Normal pulses `pids`, one every PERIOD from `start` (index into the time line)."""
    return write_file(path, [(ts_of(start + i), pid) for i, pid in enumerate(pids)])


def anomaly_file(path: Path, start: int, pid: float) -> Path:
    """Context pulse, precursor `pid`, trip: the sample is `pid` at ts_of(start + 1)."""
    return write_file(
        path, [(ts_of(start), pid + 0.5), (ts_of(start + 1), pid), (ts_of(start + 2), pid + 0.7, 48)]
    )


def ts_of(k: int) -> int:
    return T0 + k * PERIOD


def small_archive(root: Path) -> dict:
    """Two normal files and two anomaly files; returns {pid: (ts, label)} of the samples."""
    normal_file(root / "normal" / "2024" / "n1.bin.gz", 0, [1, 2, 3])
    normal_file(root / "normal" / "2024" / "n2.bin", 10, [4, 5])
    anomaly_file(root / "anomaly" / "a1.bin.gz", 4, 100)
    anomaly_file(root / "anomaly" / "deep" / "a2.gz", 20, 200)
    truth = {1: (ts_of(0), 0), 2: (ts_of(1), 0), 3: (ts_of(2), 0), 4: (ts_of(10), 0),
             5: (ts_of(11), 0), 100: (ts_of(5), 1), 200: (ts_of(21), 1)}
    return truth


def data_config(root: Path, **overrides) -> DCMDataConfig:
    values = dict(
        dataset_loc=str(root), begin=BEGIN, shift=SHIFT, workers=1, cache_dir=None,
    )
    values.update(overrides)
    return DCMDataConfig(**values)


def write_gzip_text(path: Path, text: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text))
    return path


def write_settings(path: Path, pvs: dict) -> Path:
    """One beam-settings HDF5 file: {pv: [(ts_ns, value), ...]} as (N, 2) datasets."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as h5:
        for pv, rows in pvs.items():
            h5.create_dataset(pv, data=np.asarray(rows, dtype=np.float64))
    return path
