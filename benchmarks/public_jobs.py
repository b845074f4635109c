"""The samples jobs on real public data that ships inside installed wheels, network beside peer.

    python -m benchmarks --only public_jobs            (one seed; the table of docs/jobs.md)
    python -m benchmarks.public_jobs OUT [--seeds 0 1 2] [--sets GunPoint ...] [--doc FILE]

Each set is written in its job's own layout (`benchmarks.public_data`) and trained and tested
through `driver.py` with the job's example config, unchanged but for the paths, the seed and,
for the UCR/UEA sets, `split.method=predefined` (the archive's own train/test split). The run's
metrics.json gives the network's and the built-in peer's test accuracy on the same split
(`train.peer`); the table of `docs/jobs.md` between its PUBLIC-JOBS markers is rewritten from
the result. No published figures are quoted: none could be checked here.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks import public_data
from benchmarks.report import render_table

log = logging.getLogger("beamwatch.benchmarks.public_jobs")
ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "jobs.md"
BEGIN, END = "<!-- PUBLIC-JOBS:BEGIN -->", "<!-- PUBLIC-JOBS:END -->"


@dataclass(frozen=True)
class PublicJobsSettings:
    """Which sets, which seeds, and any extra `--set KEY=VALUE` for every run."""

    sets: tuple[str, ...] = (*public_data.UCR_SETS, *public_data.TABLES)
    seeds: tuple[int, ...] = (0,)
    overrides: tuple[str, ...] = ()


def write_set(name: str, data_dir: Path) -> tuple[str, Path, tuple[str, ...]]:
    """(job, dataset_loc, extra overrides) of set `name`, written under `data_dir` once."""
    if name in public_data.TABLES:
        path = data_dir / f"{name}.csv"
        if not path.exists():
            public_data.write_table(name, path)
        return "features", path, ()
    root = data_dir / name
    if not root.exists():
        public_data.write_sessions(name, root)
    return "sessions", root, ("split.method=predefined",)


def run_one(job: str, data: Path, overrides: tuple[str, ...], seed: int, out: Path) -> dict:
    """Train and test one set with one seed through the driver; the figures of its run."""
    import driver
    from utils.logs import teardown_logging

    runs = out / "runs" / f"{data.stem}-seed{seed}"
    args = ["--config", str(ROOT / "configs" / f"{job}.yaml"), "--quiet",
            "--set", f"data.dataset_loc={data}", "--set", f"run.output_dir={runs}",
            "--set", f"run.log_dir={out / 'logs'}", "--set", f"run.seed={seed}",
            *[a for o in overrides for a in ("--set", o)]]
    started = time.perf_counter()
    try:
        code = driver.main(args, env={})
    finally:
        teardown_logging()
    seconds = time.perf_counter() - started
    if code != 0:
        return {"error": f"driver exited {code}", "seconds": seconds, "seed": seed}
    return run_figures(sorted(runs.iterdir())[-1], seed, seconds)


def run_figures(run: Path, seed: int, seconds: float | None) -> dict:
    """The figures of one finished run folder (its metrics.json)."""
    m = json.loads((run / "metrics.json").read_text())
    return {"seed": seed, "seconds": None if seconds is None else round(seconds, 1),
            "model": m["model"],
            "test_n": m["test"]["n"], "network": m["test"]["accuracy"],
            "peer": (m.get("peer") or {}).get("test", {}).get("accuracy"),
            "peer_name": (m.get("peer") or {}).get("name"),
            "epochs": m["epochs_trained"], "epoch_choice": m["epoch_choice"]["method"],
            "splits": {p: v["n"] for p, v in m["splits"].items()}}


def run(settings: PublicJobsSettings, workdir: Path) -> dict:
    """Every set x seed of `settings`; `{"sets": {name: {...}}, "seeds", "overrides"}`."""
    out = Path(workdir) / "public_jobs"
    results = {}
    for name in settings.sets:
        job, data, extra = write_set(name, out / "data")
        rows = [run_one(job, data, (*extra, *settings.overrides), seed, out)
                for seed in settings.seeds]
        results[name] = summarise(name, job, rows, (*extra, *settings.overrides))
    return {"sets": results, "seeds": list(settings.seeds),
            "overrides": list(settings.overrides)}


def collect(workdir: Path, sets: tuple[str, ...], seeds: tuple[int, ...]) -> dict:
    """A `run` result from the finished run folders already under `workdir` (no training):
    the sets and seeds that have one; wall times are not known then."""
    runs = Path(workdir) / "public_jobs" / "runs"
    results = {}
    for name in sets:
        job = "features" if name in public_data.TABLES else "sessions"
        rows = []
        for seed in seeds:
            done = sorted(p.parent for p in (runs / f"{name}-seed{seed}").glob("*/metrics.json"))
            if done:
                rows.append(run_figures(done[-1], seed, None))
        if rows:
            results[name] = summarise(name, job, rows, ())
    return {"sets": results, "seeds": list(seeds), "overrides": []}


def summarise(name: str, job: str, rows: list[dict], overrides) -> dict:
    """One set's runs and their means."""
    ok = [r for r in rows if "error" not in r]
    summary = {"job": job, "runs": rows, "config": f"configs/{job}.yaml",
               "overrides": list(overrides)}
    if ok:
        summary |= {"network_mean": float(np.mean([r["network"] for r in ok])),
                    "peer_mean": (float(np.mean([r["peer"] for r in ok]))
                                  if all(r["peer"] is not None for r in ok) else None),
                    "peer_name": ok[0]["peer_name"], "model": ok[0]["model"],
                    "test_n": ok[0]["test_n"], "splits": ok[0]["splits"]}
    log.info("public_jobs %s: network %s, peer %s", name, summary.get("network_mean"),
             summary.get("peer_mean"))
    return summary


def render(result: dict) -> str:
    """The markdown table of a `run` result."""
    rows = []
    for name, s in result["sets"].items():
        if "network_mean" not in s:
            rows.append([name, s["job"], "", "", "failed", "", "", "", ""])
            continue
        gap = None if s["peer_mean"] is None else s["peer_mean"] - s["network_mean"]
        choices = sorted({f"{r['epoch_choice']} ({r['epochs']})" for r in s["runs"]
                          if "error" not in r})
        rows.append([name, s["job"], f"{s['splits']['train']}/{s['splits']['val']}/"
                                     f"{s['splits']['test']}", s["model"],
                     f"{s['network_mean']:.3f}",
                     "" if s["peer_mean"] is None else f"{s['peer_mean']:.3f} ({s['peer_name']})",
                     "" if gap is None else f"{gap:+.3f}", ", ".join(choices),
                     "; ".join(_per_seed(r) for r in s["runs"])])
    seeds = ", ".join(map(str, result["seeds"]))
    return "\n".join([
        f"Test accuracy, mean over the seeds run of {seeds} (per seed in the last column: "
        "network / peer); train/val/test samples; epochs: how the count was chosen (epochs "
        "trained) per seed.",
        "",
        render_table(["set", "job", "train/val/test", "network", "network acc.",
                      "peer acc. (same split)", "peer - network", "epochs",
                      "per seed: network / peer"], rows, align="lllllrrll")])


def _per_seed(run: dict) -> str:
    if "error" in run:
        return f"{run['seed']}: failed"
    peer = "n/a" if run["peer"] is None else f"{run['peer']:.3f}"
    return f"{run['seed']}: {run['network']:.3f} / {peer}"


def update_doc(doc: Path, result: dict) -> None:
    """Rewrite the part of `doc` between the PUBLIC-JOBS markers with `render(result)`."""
    text = doc.read_text()
    if BEGIN not in text or END not in text:
        raise ValueError(f"{doc}: no {BEGIN} ... {END} markers to write the table between")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    doc.write_text(f"{head}{BEGIN}\n{render(result)}\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="data, runs and public_jobs.json go here")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--sets", nargs="+", default=list(PublicJobsSettings().sets))
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--collect", action="store_true",
                        help="train nothing: tabulate the finished runs already under OUT")
    parser.add_argument("--doc", type=Path, default=None,
                        help="rewrite this document's PUBLIC-JOBS table (e.g. docs/jobs.md)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = PublicJobsSettings(tuple(args.sets), tuple(args.seeds), tuple(args.overrides))
    result = (collect(args.out.resolve(), settings.sets, settings.seeds) if args.collect
              else run(settings, args.out.resolve()))
    (args.out / "public_jobs.json").write_text(json.dumps(result, indent=2))
    print(render(result))
    if args.doc is not None:
        update_doc(args.doc, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
