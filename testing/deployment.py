"""The test flow's view of a run's export: read RUN/export/ and compute the deployment figures."""

from __future__ import annotations

from pathlib import Path

from analysis.deployment import deployment_figures
from utils.serving_files import read_export


def deployment_summary(run_dir: Path, settings, labels, scores, threshold: float) -> dict | None:
    """For the test flow: the export's parity and the unseen-configuration flag on these pulses.

    None when the run has no export. `settings` are the raw settings [n, S] of the scored pulses
    (model feature order), `labels` and `scores` theirs.
    """
    export = read_export(run_dir)
    if export is None:
        return None
    serving, parity = export
    return deployment_figures(serving, parity, settings, labels, scores, threshold)
