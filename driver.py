#!/usr/bin/env python
"""beamwatch: predict SNS errant-beam trips one pulse ahead from DCM waveforms and beam settings.

The one command line. With no arguments it trains on the built-in simulated SNS archive
(generated into data/demo/ on first use) and then tests the new run on its held-out period.
It parses the command line, loads the config and calls one flow per verb (run folders, logs
and the demo archive are the flows' business); it turns every error into one line and an
exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import traceback
from pathlib import Path

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

EPILOG = """\
examples:
  python driver.py                                  train + test on the built-in demo archive
  python driver.py --train --config configs/default.yaml --set train.epochs=30
  python driver.py --train --set data.dataset_loc=/data/sns/dcm \\
                           --set beam_settings.data_location=/data/sns/beam_settings
  python driver.py --test                           test the newest run under runs/
  python driver.py --test --run runs/20261123-101500-demo --data /data/sns/2026-12
  python driver.py --test --run runs/20261123-101500-demo --part val
  python driver.py --train --config configs/sessions.yaml   (also windows, features, text)
  python driver.py --predict new/s1.csv new/s2.xlsx --run runs/20261127-101500-sessions
  python driver.py --report runs/20261127-101500-sessions   re-render its PDF, no retraining

exit codes: 0 ok, 1 failure, 2 bad usage or configuration.
Logs: logs/app.log (everything), logs/train_flow.log, logs/test_flow.log, and a copy in the run.
"""


def build_parser() -> argparse.ArgumentParser:
    from live.formats import format_help  # the export formats' registry (no TensorFlow import)

    parser = argparse.ArgumentParser(
        prog="driver.py",
        description="Train and test CNN-LSTM models that predict SNS errant-beam trips one pulse "
                    "ahead. Without --train or --test: train on the configured archive (the "
                    "built-in demo by default), then test the new run.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = parser.add_argument_group("what to do (both may be given: train, then test that run)")
    verbs.add_argument("--train", action="store_true",
                       help="train a model and write a new run folder under run.output_dir")
    verbs.add_argument("--test", action="store_true",
                       help="evaluate a trained run (--run, default: the newest) on held-out data")
    live = parser.add_argument_group("live scoring (--run, default: the newest complete SNS run)")
    live.add_argument("--export", action="store_true",
                      help="write RUN/export/: SavedModel and LiteRT models taking raw windows, "
                           "serving.json, parity.json on the test part")
    live.add_argument("--watch", metavar="DIR", type=Path, default=None,
                      help="score DCM files as they land in DIR (Ctrl-C stops), e.g. "
                           "--watch /data/sns/dcm/incoming")
    live.add_argument("--format", default=None, metavar="LIST",
                      help=format_help())
    live.add_argument("--settings", metavar="DIR", type=Path, default=None,
                      help="--watch: the beam-settings HDF5 folder (default: the run's)")
    live.add_argument("--idle-exit", metavar="S", type=float, default=None,
                      help="--watch: stop once no new file arrived for S seconds")
    live.add_argument("--poll", metavar="S", type=float, default=1.0,
                      help="--watch: seconds between scans of DIR (default 1)")
    live.add_argument("--epics", metavar="PREFIX", default=None,
                      help="--watch: publish score, alarm, threshold and unseen flag as EPICS "
                           "Channel Access PVs PREFIX:SCORE ... (needs caproto)")
    live.add_argument("--epics-interfaces", metavar="LIST", default=None,
                      help="--epics: addresses the PV server listens on, comma-separated (sets "
                           "live.epics_interfaces; default 127.0.0.1, this host only), e.g. "
                           "--epics-interfaces 10.1.2.3")
    live.add_argument("--epics-input", action="store_true",
                      help="score every pulse from the DCM waveform and settings PVs (EPICS, "
                           "live.waveform_pv ...; Ctrl-C stops) instead of files, e.g. "
                           "--epics-input --set live.waveform_pv=SIM:DCM:Trace2")
    verbs.add_argument("--predict", metavar="FILE", nargs="+", type=Path, default=None,
                       help="score new files (sessions, npz, table or text rows) with a trained "
                            "run (--run, default: the newest complete run of those jobs); writes a "
                            "CSV of class and "
                            "probability, e.g. --predict new/s1.csv new/s2.csv")
    verbs.add_argument("--report", metavar="RUN", type=Path, default=None,
                       help="re-render a run's PDF report from its saved predictions, without "
                            "retraining, into a new file beside the original, e.g. --report "
                            "runs/20261127-101500-text")
    parser.add_argument("--output", metavar="FILE", type=Path, default=None,
                        help="--predict only: where to write the CSV (default: "
                             "<run>/predictions/<time>.csv)")
    parser.add_argument("--config", metavar="FILE", type=Path, default=None,
                        help="YAML config (default: configs/default.yaml if present, else the "
                             "built-in defaults), e.g. --config configs/default.yaml")
    parser.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides",
                        help="override one config key, repeatable, e.g. --set train.epochs=30 "
                             "--set model.conv_filters=[16,32,64]")
    parser.add_argument("--run", metavar="DIR", type=Path, default=None,
                        help="run folder: with --test the run to evaluate (default: newest under "
                             "runs/); with --train the folder to train into or resume "
                             "(e.g. a SLURM job's folder), e.g. --run runs/20261123-101500-demo")
    parser.add_argument("--data", metavar="DIR", type=Path, default=None,
                        help="--test only: score every pulse of another archive (a folder with "
                             "dcm/ and beam_settings/, or a DCM root), e.g. --data /data/sns/2026-12")
    parser.add_argument("--allow-stale-settings", action="store_true",
                        help="--test --data only: score the pulses the settings history covers "
                             "and ledger the later ones (default: refuse such a test)")
    parser.add_argument("--part", choices=["train", "val", "test", "all"], default=None,
                        help="--test only: which part of the run's own data to score "
                             "(default: test, the held-out period), e.g. --part val")
    parser.add_argument("--name", default=None,
                        help="run name, the run folder's suffix (sets run.name), e.g. --name lebt-study")
    parser.add_argument("--seed", type=int, default=None,
                        help="random seed for Python, NumPy and TensorFlow (sets run.seed), "
                             "e.g. --seed 7")
    parser.add_argument("--quiet", action="store_true",
                        help="only warnings, errors and the result's path on the console (the "
                             "logs keep everything)")
    parser.add_argument("--debug", action="store_true",
                        help="debug logging, full tracebacks and TensorFlow's own start-up "
                             "lines on the console")
    return parser


def main(argv: list[str] | None = None, env: dict[str, str] | None = None) -> int:
    """Runs the command line; returns the exit code."""
    env = dict(os.environ if env is None else env)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or bad usage (2)
        return int(exc.code or 0)
    live = args.export or args.watch is not None or args.epics_input
    if args.predict is not None or args.report is not None:
        if (args.train or args.test or live
                or (args.predict is not None and args.report is not None)):
            return _usage(parser, "--predict and --report go alone (not with --train/--test, "
                                  "--export or --watch)")
        return _run_after(args)
    if args.output is not None:
        return _usage(parser, "--output applies to --predict only")
    if not args.train and not args.test and not live:
        args.train = args.test = True
    if args.data is not None and not args.test:
        return _usage(parser, "--data applies to --test only")

    overrides = list(args.overrides)
    if args.name is not None:
        overrides.append(f"run.name={args.name}")
    if args.seed is not None:
        overrides.append(f"run.seed={args.seed}")
    if args.epics_interfaces is not None:
        overrides.append(f"live.epics_interfaces=[{args.epics_interfaces}]")
    config = _load_config(args, overrides)
    if config is None:
        return EXIT_USAGE

    quiet_tensorflow(args.debug)
    from training.train import check_train_request, worker_prefix
    from utils.errors import USAGE_ERRORS
    from utils.logs import LogDirError

    try:  # checked before anything is written: no log line, no file in the run folder
        if args.train:
            check_train_request(config, args.run)
    except USAGE_ERRORS as exc:
        print(f"driver.py: error: {exc}", file=sys.stderr)
        return exit_code(exc)
    prefix = worker_prefix(env)
    try:
        return _run(args, config, env, prefix)
    except LogDirError as exc:  # the flow could not open its logs: no app.log to point to
        print(f"driver.py: error: {exc}", file=sys.stderr)
        return exit_code(exc)
    except KeyboardInterrupt:
        logging.getLogger("beamwatch").error("interrupted")
        return EXIT_FAILURE
    except Exception as exc:  # the one place errors become a line and an exit code
        code = exit_code(exc)
        logging.getLogger("beamwatch").debug("traceback:\n%s", traceback.format_exc())
        print(f"driver.py: error: {error_line(exc)}", file=sys.stderr)
        if args.debug:
            traceback.print_exc()
        else:
            print(f"(full traceback in {Path(config.run.log_dir) / 'app.log'}; --debug prints "
                  "it here)", file=sys.stderr)
        return code


def quiet_tensorflow(debug: bool) -> None:
    """Keep TensorFlow's start-up lines off the console unless `debug`.

    TensorFlow writes them from C++ straight to the process's stderr while it is imported
    (absl's "All log messages before absl::InitializeLog()", cudart_stub, cpu_feature_guard) and
    on its first device query ("failed call to cuInit" on a machine without a GPU). The level
    variable must be set before TensorFlow is imported, and the import-time lines come before
    any level applies, so TensorFlow is imported here once with the stderr file descriptor
    pointed at /dev/null. Nothing of ours is lost: our own lines go to the logs, and an import
    that fails raises as usual. The driver is the one place that sets process environment for
    TensorFlow; `--debug` leaves all of it alone.
    """
    if debug or "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # C++ INFO, WARNING and ERROR lines
    with _stderr_descriptor_silenced():
        import tensorflow  # noqa: F401
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)  # Keras' "WARNING:absl:..." save notes


@contextlib.contextmanager
def _stderr_descriptor_silenced():
    """File descriptor 2 points at /dev/null inside the block (C++ writes bypass sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _run(args, config, env: dict[str, str], prefix: str) -> int:
    """One flow per verb, in order: train, test (the run just trained), export/watch. The last
    result's path goes to stdout, with --quiet too (scripts read it; logs go to stderr)."""
    flags = dict(quiet=args.quiet, debug=args.debug, prefix=prefix)
    run_dir, scored = args.run, None
    if args.train:
        from training.train import run_train_flow

        trained = run_train_flow(config, run_dir=run_dir, env=env, **flags)
        if trained is None:  # a non-chief worker: the chief tests the run
            return EXIT_OK
        run_dir, scored = trained.run_dir, trained.scored
        _say("run", run_dir)
    if args.test:  # the parts the train flow just scored are not scored again
        from testing.test import run_test_flow

        tested = run_test_flow(config, run_dir=run_dir, data_dir=args.data, part=args.part,
                               allow_stale_settings=args.allow_stale_settings, scored=scored,
                               **flags)
        _say("test", tested.out_dir)
    if args.export or args.watch is not None or args.epics_input:
        from live.cli import run_live

        done = run_live(args, config, Path(config.run.log_dir), prefix)
        _say("export" if args.export else "watched run", done)
    return EXIT_OK


def _say(what: str, path) -> None:
    """One result line on stdout: "<what>: <path>"."""
    print(f"{what}: {path}", flush=True)


def _load_config(args, overrides: list[str]):
    """The config (--config, else configs/default.yaml if present, else built-in defaults) with
    the overrides; None after printing the error line when it is bad (an unknown data.source
    too: the parser does not know the source registry, `data_preparation.sources`)."""
    from data_preparation.sources import get_source
    from parser.configs import ConfigError, load_config

    config_path = args.config
    if config_path is None and Path("configs/default.yaml").exists():
        config_path = Path("configs/default.yaml")
    try:
        config = load_config(config_path, overrides)
        get_source(config.data.source)
        return config
    except ConfigError as exc:
        print(f"driver.py: error: {exc}", file=sys.stderr)
        return None


def _run_after(args) -> int:
    """--predict and --report: work on a finished run (its own saved config), nothing trained."""
    config = _load_config(args, list(args.overrides))  # where runs and logs live
    if config is None:
        return EXIT_USAGE
    quiet_tensorflow(args.debug)
    try:
        if args.report is not None:
            from training.rerender import run_report_flow

            _say("report", run_report_flow(config, args.report, quiet=args.quiet, debug=args.debug))
        else:
            from training.samples_flow import run_predict_flow

            _say("predictions", run_predict_flow(config, run_dir=args.run, files=args.predict,
                                                 output=args.output, quiet=args.quiet,
                                                 debug=args.debug))
    except Exception as exc:  # one line and an exit code, as for the other verbs
        logging.getLogger("beamwatch").debug("traceback:\n%s", traceback.format_exc())
        print(f"driver.py: error: {error_line(exc)}", file=sys.stderr)
        if args.debug:
            traceback.print_exc()
        return exit_code(exc)
    return EXIT_OK


def error_line(exc: BaseException) -> str:
    """What a user reads for `exc`: its message, never Python's rendering of it
    (`str(KeyError("x"))` is "'x'" with quotes; an empty message names the error's kind)."""
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return text if text.strip() else type(exc).__name__


def exit_code(exc: BaseException) -> int:
    """2 for a usage error (`utils.errors.USAGE_ERRORS`: the user's request is at fault), else 1."""
    from utils.errors import USAGE_ERRORS

    return EXIT_USAGE if isinstance(exc, USAGE_ERRORS) else EXIT_FAILURE


def _usage(parser: argparse.ArgumentParser, message: str) -> int:
    parser.print_usage(sys.stderr)
    print(f"driver.py: error: {message}", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
