"""python -m benchmarks [--quick | --standard | --full] [--only NAME] [--workdir DIR]

Measures detection quality against baselines, speed, and memory/scale side by side on this
machine, writes benchmarks/results/<YYYY-mm-dd>-<machine>.json and regenerates the tables of
docs/benchmarks.md (between its GENERATED markers).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def build_parser() -> argparse.ArgumentParser:
    from benchmarks.suite import ON_REQUEST, PROFILES, SECTIONS

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmarks: detection quality against baselines, speed, memory and scale.",
        epilog="examples:\n  python -m benchmarks --quick\n"
               "  python -m benchmarks --standard --only rolling\n"
               "  python -m benchmarks --full --only detection\n",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="profile", action="store_const", const="quick",
                      help=f"under 10 minutes on 2 cores (default): {PROFILES['quick'].note}")
    size.add_argument("--standard", dest="profile", action="store_const", const="standard",
                      help=f"about 90 minutes on 2 cores: {PROFILES['standard'].note}")
    size.add_argument("--evidence", dest="profile", action="store_const", const="evidence",
                      help="the rolling evaluation on the realistic preset sized for two CPU "
                           "cores (about half an hour): 2 test blocks, 3 seeds, subsampled training")
    size.add_argument("--full", dest="profile", action="store_const", const="full",
                      help="a workstation / GPU: more days, more epochs, 3 seeds")
    parser.set_defaults(profile="quick")
    parser.add_argument("--only", choices=SECTIONS + ON_REQUEST, action="append", default=None,
                        help="run only this section (repeatable), e.g. --only detection; "
                             f"{', '.join(ON_REQUEST)} run only when named here")
    parser.add_argument("--workdir", type=Path, default=REPO / "benchmarks" / "work",
                        help="archives, caches and model runs (default benchmarks/work; "
                             "archives are reused when their parameters match)")
    parser.add_argument("--results-dir", type=Path, default=REPO / "benchmarks" / "results",
                        help="where the JSON results go (default benchmarks/results)")
    parser.add_argument("--doc", type=Path, default=REPO / "docs" / "benchmarks.md",
                        help="the document whose generated tables are rewritten")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for noisy in ("data_preparation", "absl", "tensorflow"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    # Keras warns that fit(shuffle=True) is ignored for a tf.data pipeline (ours shuffles itself).
    warnings.filterwarnings("ignore", message=".*shuffle=True.*", category=UserWarning)

    from benchmarks import report, suite

    profile = suite.PROFILES[args.profile]
    sections = tuple(args.only) if args.only else suite.SECTIONS
    machine = report.machine_info()
    commit = report.git_commit(REPO)
    command = report.command_line(argv)
    started = time.perf_counter()
    now = suite.now_utc()
    path = report.results_path(args.results_dir, machine, now)
    previous = json.loads(path.read_text()) if path.exists() else None
    measured = suite.run_sections(profile, sections, args.workdir.resolve(),
                                  previous=(previous or {}).get("sections"))
    total = time.perf_counter() - started
    results = suite.record(measured, command=command, commit=commit, machine=machine,
                           results_dir=args.results_dir, previous=previous, now=suite.now_utc(),
                           total_seconds=total)
    report.write_results(path, results)
    try:
        shown = path.resolve().relative_to(REPO)
    except ValueError:
        shown = path
    report.update_document(args.doc, suite.render_document(results, str(shown)))
    print(f"benchmarks ({profile.name}: {', '.join(sections)}) done in {total:.0f} s; "
          f"results {path}; tables in {args.doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
