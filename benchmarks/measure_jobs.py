"""Accuracy of the four example jobs on synthetic data in their layouts (benchmarks.synthetic_jobs).

    python -m benchmarks.measure_jobs OUT_DIR [--small] [--set KEY=VALUE ...]

Generates each dataset into OUT_DIR/data, trains and tests it with `driver.py` and its example
config (configs/<job>.yaml, unchanged but for the paths and any --set given), and writes
OUT_DIR/job_accuracy.json with the held-out test figures and the wall time of each job.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import synthetic_jobs as sj

ROOT = Path(__file__).resolve().parents[1]


def _datasets(data: Path, small: bool) -> dict[str, Path]:
    scale = 0.25 if small else 1.0
    return {
        "sessions": sj.write_sessions(data / "sessions", per_class=max(6, int(80 * scale)),
                                      seed=1, xlsx_every=5),
        "windows": sj.write_windows(data / "windows.npz", n=int(1600 * scale), seed=2),
        "features": sj.write_feature_table(data / "features.csv", n=int(2000 * scale), seed=3),
        "text": sj.write_text(data / "text.csv", per_class=int(300 * scale), seed=4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--small", action="store_true", help="quarter-size data (smoke test)")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--jobs", nargs="+", default=["sessions", "windows", "features", "text"])
    args = parser.parse_args(argv)
    out = args.out.resolve()
    datasets = _datasets(out / "data", args.small)
    results = {}
    for job in args.jobs:
        runs = out / "runs" / job
        start = time.perf_counter()
        cmd = [sys.executable, str(ROOT / "driver.py"), "--config", str(ROOT / "configs" /
               f"{job}.yaml"), "--quiet", "--set", f"data.dataset_loc={datasets[job]}",
               "--set", f"run.output_dir={runs}", "--set", f"run.log_dir={out / 'logs'}",
               *[a for o in args.overrides for a in ("--set", o)]]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            results[job] = {"error": proc.stderr[-1500:], "seconds": seconds}
            continue
        (run,) = sorted(runs.iterdir())
        train = json.loads((run / "metrics.json").read_text())
        (test_dir,) = sorted((run / "tests").iterdir())
        test = json.loads((test_dir / "metrics.json").read_text())["metrics"]
        results[job] = {
            "model": train["model"], "classes": train["class_names"], "splits": train["splits"],
            "epochs_trained": train["epochs_trained"], "seconds": round(seconds, 1),
            "validation": {k: train["validation"][k] for k in
                           ("accuracy", "balanced_accuracy", "macro_f1")},
            "test": {k: test[k] for k in ("n", "accuracy", "balanced_accuracy", "macro_f1",
                                          "weighted_f1")},
        }
        print(job, json.dumps(results[job]["test"]), flush=True)
    (out / "job_accuracy.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
