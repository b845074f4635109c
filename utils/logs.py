"""Logging set-up for the train and test flows, in one place.

Only the "beamwatch" logger is configured (never the root logger), so TensorFlow's own
logging is not duplicated through our handlers. Modules log through children of it:
`logging.getLogger("beamwatch.<module>")`.

Where the lines go:
    console                 INFO (WARNING with quiet, DEBUG with debug), "HH:MM:SS LEVEL message"
    log_dir/app.log         everything (DEBUG), rotating 10 MB x 5
    log_dir/<flow>_flow.log INFO and above, rotating 10 MB x 5
    run_dir/<flow>.log      the run's own copy (INFO, or DEBUG with debug)
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path

from utils.errors import UsageError

LOGGER_NAME = "beamwatch"
FLOWS = ("train", "test", "live")
MAX_BYTES = 10 * 1024 * 1024
BACKUP_COUNT = 5
_CONSOLE_FORMAT = "%(asctime)s %(levelname)s %(message)s"
_FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_MARK = "_beamwatch_handler"  # attribute tagging the handlers this module added
_saved_propagate: bool | None = None


class _PrefixFormatter(logging.Formatter):
    """Formatter that puts `prefix` (e.g. "[worker 1/2] ") in front of every output line."""

    def __init__(self, fmt: str, datefmt: str | None, prefix: str):
        super().__init__(fmt=fmt, datefmt=datefmt)
        self.prefix = prefix

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if not self.prefix:
            return text
        return "\n".join(self.prefix + line for line in text.split("\n"))


def _add(logger: logging.Logger, handler: logging.Handler, level: int, formatter: logging.Formatter) -> None:
    handler.setLevel(level)
    handler.setFormatter(formatter)
    setattr(handler, _MARK, True)
    logger.addHandler(handler)


def _rotating(path: Path) -> logging.Handler:
    return logging.handlers.RotatingFileHandler(
        path, maxBytes=MAX_BYTES, backupCount=BACKUP_COUNT, encoding="utf-8"
    )


def setup_logging(
    log_dir: str | os.PathLike,
    flow: str,
    *,
    run_dir: str | os.PathLike | None = None,
    quiet: bool = False,
    debug: bool = False,
    prefix: str = "",
) -> logging.Logger:
    """Configure the "beamwatch" logger for a flow and return it.

    Args:
        log_dir: folder for `app.log` and `<flow>_flow.log` (created if missing).
        flow: "train", "test" or "live" (export and watch).
        run_dir: if given, the run's own log `run_dir/<flow>.log` is written too.
        quiet: console shows warnings and errors only.
        debug: console and run log show DEBUG lines too.
        prefix: text put in front of every line, e.g. "[worker 1/2] " for multi-worker runs.

    Calling it again replaces the handlers it added before (no duplicated lines).

    Example:
        >>> log = setup_logging("logs", "train", run_dir="runs/20240101-120000-demo")
        >>> logging.getLogger("beamwatch.training").info("epoch 1 done")
    """
    if flow not in FLOWS:
        raise ValueError(f"Unknown logging flow {flow!r}; expected one of {FLOWS}.")
    global _saved_propagate
    teardown_logging()
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)

    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.DEBUG)
    _saved_propagate = logger.propagate
    logger.propagate = False  # our handlers only; keeps third-party root handlers from doubling lines

    console_level = logging.WARNING if quiet else (logging.DEBUG if debug else logging.INFO)
    console_fmt = _PrefixFormatter(_CONSOLE_FORMAT, "%H:%M:%S", prefix)
    file_fmt = _PrefixFormatter(_FILE_FORMAT, None, prefix)
    _add(logger, logging.StreamHandler(sys.stderr), console_level, console_fmt)
    _add(logger, _rotating(log_dir / "app.log"), logging.DEBUG, file_fmt)
    _add(logger, _rotating(log_dir / f"{flow}_flow.log"), logging.INFO, file_fmt)
    if run_dir is not None:
        add_run_log(run_dir, flow, debug=debug, prefix=prefix)
    return logger


class LogDirError(UsageError, OSError):
    """`run.log_dir` cannot be written: a configuration problem, found before the flow runs."""


def start_logging(
    log_dir: str | os.PathLike,
    flow: str,
    *,
    quiet: bool = False,
    debug: bool = False,
    prefix: str = "",
) -> logging.Logger:
    """`setup_logging` at the start of a driver verb; an unwritable log folder is a `LogDirError`
    naming `run.log_dir` (the driver turns it into a usage error)."""
    try:
        return setup_logging(log_dir, flow, quiet=quiet, debug=debug, prefix=prefix)
    except OSError as exc:
        raise LogDirError(f"cannot write logs to run.log_dir={str(log_dir)!r}: "
                          f"{exc.strerror or exc}") from exc


def add_run_log(run_dir: str | os.PathLike, flow: str, *, debug: bool = False,
                prefix: str = "") -> None:
    """Add the run's own copy `run_dir/<flow>.log` once the flow knows its run folder.

    Same handler as `setup_logging(..., run_dir=run_dir)` adds; the console and log_dir files
    that `start_logging` opened stay as they are.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _add(logging.getLogger(LOGGER_NAME), logging.FileHandler(run_dir / f"{flow}.log", encoding="utf-8"),
         logging.DEBUG if debug else logging.INFO, _PrefixFormatter(_FILE_FORMAT, None, prefix))


def teardown_logging() -> None:
    """Remove and close the handlers `setup_logging` added; restore propagation."""
    global _saved_propagate
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        if getattr(handler, _MARK, False):
            logger.removeHandler(handler)
            handler.close()
    if _saved_propagate is not None:
        logger.propagate = _saved_propagate
        _saved_propagate = None
