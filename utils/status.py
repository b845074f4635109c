"""The lifecycle of a run folder: `status.json` says whether it is training, complete or failed.

A folder's other files say little about whether it is finished (a crash between two writes
leaves some of them), so the train flow records its state in `status.json`, written
atomically: `training` (with the stage reached) when it starts and at each step, `failed` (with
the error line) when it stops on an error, and `complete` as the very last write of a
successful run. `--test` without `--run` takes the newest complete run; resume and
`submit.sh` decide on the state alone.

Folders from before this file existed count as complete when they hold `metrics.json`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from utils.run_folder import NoRunFoundError, atomic_write_json

STATUS_FILE = "status.json"
TRAINING, COMPLETE, FAILED = "training", "complete", "failed"
STATES = (TRAINING, COMPLETE, FAILED)
# The train flow's steps, in order; a resumed run skips the fit once "fitted" was reached.
STAGES = ("data", "fit", "fitted", "threshold", "report", "done")
_RUN_NAME_RE = re.compile(r"^\d{8}-\d{6}(?:-|$)")


@dataclass(frozen=True)
class RunStatus:
    """What `status.json` says (state "unknown" for a folder without one)."""

    state: str
    stage: str = ""
    error: str = ""
    updated: str = ""

    def reached(self, stage: str) -> bool:
        """True when the run got at least as far as `stage`."""
        return self.stage in STAGES and STAGES.index(self.stage) >= STAGES.index(stage)


def write_status(run_dir: str | os.PathLike, state: str, stage: str = "", error: str = "") -> None:
    """Record the run's state atomically (a reader sees the old status or the new one)."""
    if state not in STATES:
        raise ValueError(f"write_status: state must be one of {STATES}, got {state!r}")
    if stage and stage not in STAGES:
        raise ValueError(f"write_status: stage must be one of {STAGES}, got {stage!r}")
    atomic_write_json(Path(run_dir) / STATUS_FILE, {
        "state": state, "stage": stage, "error": error.splitlines()[0][:500] if error else "",
        "updated": datetime.now(UTC).isoformat(timespec="seconds"),
    })


def read_status(run_dir: str | os.PathLike) -> RunStatus:
    """The run's status; a legacy folder with metrics.json is complete, else "unknown".

    A damaged status file reads as "unknown" (never as complete).
    """
    run_dir = Path(run_dir)
    path = run_dir / STATUS_FILE
    if not path.exists():
        return RunStatus(COMPLETE if (run_dir / "metrics.json").exists() else "unknown")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        state = str(data["state"])
    except (OSError, ValueError, KeyError, TypeError):
        return RunStatus("unknown")
    if state not in STATES:
        return RunStatus("unknown")
    return RunStatus(state, str(data.get("stage", "")), str(data.get("error", "")),
                     str(data.get("updated", "")))


def mark_failed(run_dir: str | os.PathLike, exc: BaseException) -> None:
    """Record a training that stopped on an error as failed (kept: it can be resumed).

    Leaves alone a folder this run never started training into, or one already complete.
    """
    run_dir = Path(run_dir)
    status = read_status(run_dir)
    if status.state in ("unknown", COMPLETE) or not run_dir.is_dir():
        return  # not a folder this run started training into, or already finished
    reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
    try:
        write_status(run_dir, FAILED, status.stage, reason)
    except OSError:
        pass  # the disk that failed the run may refuse this too; the state stays "training"


def resume_command(run_dir: str | os.PathLike) -> str:
    """The command line that resumes (or finishes) training of `run_dir`."""
    return f"python driver.py --train --run {run_dir}"


SNS_SOURCE = "sns_dcm"  # data.source of an SNS run; the other sources are sample-contract jobs
_SOURCE_WORDS = {SNS_SOURCE: "SNS (DCM archive)", "sessions": "sessions", "npz": "windowed-array",
                 "features": "feature-table", "text": "text"}


def source_words(source: str) -> str:
    """A run kind for a message: "SNS (DCM archive)", "sessions", ..."""
    return _SOURCE_WORDS.get(source, source)


def article(words: str) -> str:
    """`words` with its article: "an SNS (DCM archive)", "a sessions"."""
    return f"{'an' if words[:1] in 'aeiouAEIOU' or words.startswith('SNS') else 'a'} {words}"


def _runs_newest_first(root: Path) -> list[Path]:
    runs = []
    for child in root.iterdir():
        config = child / "config.yaml"
        if _RUN_NAME_RE.match(child.name) and child.is_dir() and config.is_file():
            runs.append((child.name[:15], config.stat().st_mtime_ns, child.name, child))
    return [child for *_, child in sorted(runs, reverse=True)]


def newest_complete_run(root: str | os.PathLike, sources: tuple[str, ...] | None = None,
                        verb: str = "this command", source_of: Callable[[Path], str] | None = None
                        ) -> tuple[Path, list[tuple[Path, RunStatus]]]:
    """The newest complete run under `root` (of one of `sources`, the `data.source` values
    that `source_of(run_dir)` reads, when given), and the incomplete runs of those sources newer
    than it.

    Runs are ordered by the timestamp in their names (then their config.yaml's time). Raises
    `NoRunFoundError` naming every incomplete run, with its resume command, when none is
    complete; with `sources`, when no run of them is complete, the message names `verb`, the
    newest run and its kind (an `--export` after a sessions run says so, and how to pick one).
    """
    if sources is not None and source_of is None:
        raise TypeError("newest_complete_run: sources needs source_of (parser.configs.run_source)")
    root = Path(root)
    if not root.is_dir():
        raise NoRunFoundError(f"No run folder found: {root} does not exist.")
    runs = _runs_newest_first(root)
    incomplete = []
    for child in runs:
        if sources is not None and source_of(child) not in sources:
            continue
        status = read_status(child)
        if status.state == COMPLETE:
            return child, incomplete
        incomplete.append((child, status))
    if sources is not None and runs and not incomplete:
        wanted = " or ".join(source_words(s) for s in sources)
        newest = runs[0]
        raise NoRunFoundError(
            f"{verb} needs {article(wanted)} run and {root} holds none complete; the newest run, {newest}, "
            f"is {article(source_words(source_of(newest)))} run. Train one, or pass --run DIR.")
    if incomplete:
        listed = "; ".join(f"{run} ({describe(status)}; resume: {resume_command(run)})"
                           for run, status in incomplete[:5])
        raise NoRunFoundError(f"No complete run in {root}; incomplete: {listed}.")
    raise NoRunFoundError(
        f"No run folder found in {root}: expected folders named <YYYYmmdd-HHMMSS>-<name> "
        "holding a config.yaml. Train a model first or pass the run folder explicitly.")


def describe(status: RunStatus) -> str:
    """A few words for a message: "training, stage fit", "failed: <error>"."""
    if status.state == FAILED:
        return f"failed{': ' + status.error if status.error else ''}"
    if status.state == TRAINING:
        return f"training stopped or still running, stage {status.stage or '?'}"
    return status.state
