"""``python -m enterprise_tools.sns_simulator``: the command line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from enterprise_tools.simulator.archive import simulate_archive
from enterprise_tools.simulator.params import PRESETS

# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one clear line, exit status 2
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m enterprise_tools.sns_simulator",
        description="Write a simulated SNS errant-beam archive: DCM waveform files "
        "(SNS-BIET2020, gzip), beam-settings HDF5 files, truth.csv and simulation.json. "
        "With no arguments, writes the demo archive into data/demo.",
    )
    parser.add_argument("--out", default="data/demo", metavar="DIR", help="output folder (default: data/demo)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo",
                        help="starting parameters: demo (42 h, ~2600 samples, <1 min), "
                        "realistic (a week for the rolling-origin benchmark: developing precursors, "
                        "drift, blips, older-style files, no position leak), "
                        "standard (SNS-like rates, 24 h), tiny (1.3 h, for tests). Default: demo")
    parser.add_argument("--hours", type=float, metavar="H", help="simulated hours (overrides the preset)")
    parser.add_argument("--seed", type=int, metavar="S", help="random seed (default 0)")
    parser.add_argument("--start", metavar="ISO", help="ISO start time, UTC (default 2026-01-05T00:00Z)")
    parser.add_argument("--trip-rate", type=float, dest="errant_trips_per_hour", metavar="PER_HOUR",
                        help="errant-beam trips per hour of beam")
    parser.add_argument("--normal-interval", type=float, dest="normal_interval_s", metavar="SECONDS",
                        help="mean seconds between normal acquisitions")
    parser.add_argument("--pulses-per-file", type=int, dest="pulses_per_normal_file", metavar="N",
                        help="pulses in a normal file")
    parser.add_argument("--context-pulses", type=int, metavar="N",
                        help="pulses before the precursor in an anomaly file "
                        "(errant files of the realistic preset draw it instead)")
    parser.add_argument("--no-precursor-fraction", type=float, metavar="F",
                        help="share of errant trips with no visible precursor")
    parser.add_argument("--old-style-fraction", type=float, metavar="F",
                        help="share of samples from older-style Before/During files")
    parser.add_argument("--pulse-jitter", type=float, metavar="F",
                        help="pulse-to-pulse relative jitter of current and loss")
    parser.add_argument("--corrupt-files", type=int, metavar="N", help="number of files to damage")
    parser.add_argument("--compresslevel", type=int, metavar="L", help="gzip level 0-9 (default 1)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="generator processes (output identical for any number; default 1)")
    parser.add_argument("--force", action="store_true",
                        help="write into a non-empty folder (replaces an earlier archive there)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 for bad usage)."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    knobs = ("hours", "seed", "start", "errant_trips_per_hour", "normal_interval_s",
             "pulses_per_normal_file", "context_pulses", "no_precursor_fraction",
             "old_style_fraction", "pulse_jitter", "corrupt_files", "compresslevel")
    overrides = {k: getattr(args, k) for k in knobs if getattr(args, k) is not None}
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    try:
        if args.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {args.workers}")
        params = PRESETS[args.preset](**overrides)
        summary = simulate_archive(args.out, params, workers=args.workers,
                                   progress=not args.quiet, force=args.force)
    except (ValueError, FileExistsError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {summary.files} files ({summary.pulses} pulses; samples: "
          f"{summary.samples['normal']} normal, {summary.samples['errant']} errant) to {args.out}")
    return 0
