"""training/multi_worker.py after its split (issue 13): the old names are the new modules' objects."""

from __future__ import annotations

from pathlib import Path

import training.multi_worker as multi_worker
from training import multi_worker_backup, multi_worker_loop

TRAINING_DIR = Path(__file__).resolve().parents[2] / "training"


def test_old_names_are_the_loop_and_backup_modules_objects():
    moved = {**{n: multi_worker_loop for n in multi_worker_loop.__all__},
             **{n: multi_worker_backup for n in multi_worker_backup.__all__}}
    assert {"fit_multi_worker", "per_example_loss", "completed_backups", "LoopState"} <= set(moved)
    for name, module in moved.items():
        assert name in multi_worker.__all__, f"{name} missing from training.multi_worker.__all__"
        assert getattr(multi_worker, name) is getattr(module, name), name
    for name in multi_worker.__all__:
        assert hasattr(multi_worker, name), f"training.multi_worker lost {name}"


def test_multi_worker_modules_stay_under_500_lines():
    for stem in ("multi_worker", "multi_worker_loop", "multi_worker_backup"):
        lines = len((TRAINING_DIR / f"{stem}.py").read_text(encoding="utf-8").splitlines())
        assert lines <= 500, f"training/{stem}.py has {lines} lines"
