"""How a training run starts, in every train flow (SNS and samples): seeds and the run folder.

`prepare_run_dir` gives a fresh run folder, or the one given after `check_resume` has refused
what cannot be resumed (a finished run, a run started with another config) with a
`RunStateError`, a usage error. Used by `training.train` and `training.samples_flow` alike, so
neither imports the other for it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from parser.configs import Config, ConfigError, config_to_dict, load_config
from utils.errors import UsageError
from utils.run_folder import create_run_dir
from utils.status import COMPLETE, read_status

log = logging.getLogger("beamwatch.train")  # the train flow's lines, as before the move


class RunStateError(UsageError, RuntimeError):
    """The run folder given cannot be trained into (complete already, or not a run folder)."""


def set_seeds(seed: int, deterministic: bool) -> None:
    """Seeds Python, NumPy and TensorFlow; optionally turns on TF op determinism."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def prepare_run_dir(config: Config, run_dir: Path | None, is_chief: bool) -> Path:
    """A fresh run folder, or the one given (created, or resumed from its backup)."""
    if run_dir is None:
        if not is_chief:
            raise RunStateError("non-chief workers need --run DIR so all workers share one folder")
        return create_run_dir(Path(config.run.output_dir), config.run.name)
    run_dir = Path(run_dir)
    check_resume(config, run_dir)
    if is_chief:
        run_dir.mkdir(parents=True, exist_ok=True)
    if (run_dir / "backup").exists():
        log.info("resuming %s from its BackupAndRestore state", run_dir)
    return run_dir


# Keys that may differ when a run is resumed: they change where logs, caches and new runs go,
# how many reader processes run, whether TensorBoard logs or which port the workers meet on,
# never what is trained.
_RESUME_FREE_KEYS = frozenset({"run.name", "run.log_dir", "run.output_dir", "data.workers",
                               "data.cache_dir", "train.tensorboard", "train.port_base"})


def check_resume(config: Config, run_dir: Path) -> None:
    """Refuse to train into `run_dir` when it is complete or was started with another config.

    Called before anything is written, so a refused resume leaves the folder as it was.
    """
    run_dir = Path(run_dir)
    status = read_status(run_dir)
    if status.state == COMPLETE:
        raise RunStateError(
            f"{run_dir} holds a finished run (status complete); nothing is overwritten. "
            "Pass another --run folder, or leave --run out for a new one.")
    saved = run_dir / "config.yaml"
    if not saved.exists():
        return
    try:
        before = config_to_dict(load_config(saved))
    except ConfigError as exc:
        raise RunStateError(f"{saved} cannot be read to resume the run: {exc}") from exc
    now = config_to_dict(config)
    changed = [f"{section}.{key}: {before[section].get(key)!r} in {saved}, {value!r} now"
               for section, body in now.items() for key, value in body.items()
               if f"{section}.{key}" not in _RESUME_FREE_KEYS
               and before.get(section, {}).get(key) != value]
    if changed:
        raise RunStateError(
            f"{run_dir} was started with another config; resuming would mix two trainings. "
            f"Differing keys: {'; '.join(changed[:8])}. Resume with --config {saved}, or leave "
            "--run out for a new run.")
