"""The base class of usage errors, low enough that every layer can raise one.

A usage error is a problem with what the user asked for (the command line, the config, the run
folder or data folder named), found before or while a flow runs; the fix is on the user's side.
`driver.py` prints its message as one line and exits 2 (`USAGE_ERRORS`: these and a missing
file); every other error exits 1. The project's usage errors derive from `UsageError` and keep
their built-in base (`ConfigError` is still a `ValueError`), so existing handlers still catch
them:

* `parser.validation.ConfigError`: a config key, value or file;
* `utils.logs.LogDirError`: `run.log_dir` cannot be written;
* `utils.run_folder.NoRunFoundError`, `utils.run_folder.RunFolderError`: no run folder to work
  on, or one that lacks a file the flow needs;
* `training.run_start.RunStateError`: a run folder that cannot be trained into;
* `data_preparation.validation.StaleSettingsError`: settings that do not cover the data.

Errors in the data or the artefacts (a corrupt DCM file, an export out of parity, a watched
folder already watched) are failures, not usage errors: they exit 1.
"""

from __future__ import annotations


class UsageError(Exception):
    """A problem with what the user asked for; the driver exits 2 with its message."""


USAGE_ERRORS: tuple[type[BaseException], ...] = (UsageError, FileNotFoundError)
"""What the driver turns into exit code 2 (a named file that does not exist is one, too)."""
