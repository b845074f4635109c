"""Suite-wide guard: no test writes into the project's own `logs/`.

A test that runs the driver without `--set run.log_dir=...` would otherwise log into
`logs/app.log` (the default `run.log_dir` is relative to the repository root), where the
README sends users to read their own tracebacks. Every log file the flows open under the
project's `logs/` goes to the test's `tmp_path/logs/` instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from utils import logs

PROJECT_LOGS = (Path(__file__).resolve().parents[1] / "logs").resolve()


@pytest.fixture(autouse=True)
def _logs_under_tmp(tmp_path, monkeypatch):
    opened = logs._rotating

    def redirected(path: Path):
        path = Path(path)
        if path.resolve().parent == PROJECT_LOGS:
            (tmp_path / "logs").mkdir(exist_ok=True)
            path = tmp_path / "logs" / path.name
        return opened(path)

    monkeypatch.setattr(logs, "_rotating", redirected)
