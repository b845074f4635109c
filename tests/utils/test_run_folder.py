"""Tests for utils.run_folder: atomic writes and never-reused run folders."""

import json
import math
import os
from datetime import datetime

import numpy as np
import pytest

from utils import run_folder
from utils.run_folder import (
    NoRunFoundError,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    create_run_dir,
    create_test_dir,
    newest_run,
)

NOW = datetime(2024, 3, 4, 5, 6, 7)


def test_atomic_write_replaces_content_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "metrics.json"
    atomic_write_text(path, "old")
    atomic_write_bytes(path, b"new bytes")
    assert path.read_bytes() == b"new bytes"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_failed_write_keeps_old_file_and_removes_temp(tmp_path, monkeypatch):
    path = tmp_path / "threshold.json"
    atomic_write_text(path, "old")

    def broken_replace(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(run_folder.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk gone"):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["threshold.json"]


def test_atomic_write_into_missing_directory_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        atomic_write_text(tmp_path / "nope" / "a.txt", "x")


def test_atomic_write_json_converts_nan_and_numpy(tmp_path):
    path = tmp_path / "m.json"
    atomic_write_json(path, {"auc": float("nan"), "n": np.int64(3), "x": np.array([1.5, np.inf]),
                             "pair": (1, 2), "z": 0.25})
    assert json.loads(path.read_text()) == {"auc": None, "n": 3, "x": [1.5, None], "pair": [1, 2],
                                            "z": 0.25}
    assert list(json.loads(path.read_text())) == ["auc", "n", "x", "pair", "z"]  # order kept


def test_atomic_write_json_rejects_unknown_types_with_location(tmp_path):
    with pytest.raises(TypeError, match=r"\$\.model"):
        atomic_write_json(tmp_path / "m.json", {"model": object()})
    assert not list(tmp_path.iterdir())


def test_create_run_dir_never_reuses_a_name(tmp_path):
    first = create_run_dir(tmp_path / "runs", "demo", now=NOW)
    (first / "config.yaml").write_text("x")
    second = create_run_dir(tmp_path / "runs", "demo", now=NOW)
    third = create_run_dir(tmp_path / "runs", "demo", now=NOW)
    assert first.name == "20240304-050607-demo"
    assert second.name == "20240304-050607-demo-2"
    assert third.name == "20240304-050607-demo-3"
    assert (first / "config.yaml").read_text() == "x"


@pytest.mark.parametrize("name,clean", [("my run/../x", "my_run_.._x"), ("../..", "run"), ("a:b", "a_b")])
def test_create_run_dir_sanitises_name(tmp_path, name, clean):
    path = create_run_dir(tmp_path, name, now=NOW)
    assert path.name == f"20240304-050607-{clean}"
    assert path.parent == tmp_path


def _run(root, stamp, name="demo", config=True):
    path = root / f"{stamp}-{name}"
    path.mkdir(parents=True)
    if config:
        (path / "config.yaml").write_text("run: {}\n")
    return path


def test_newest_run_picks_latest_timestamp_with_config(tmp_path):
    _run(tmp_path, "20240101-000000")
    latest = _run(tmp_path, "20240301-120000", name="a")
    _run(tmp_path, "20240201-000000", name="zzz")
    _run(tmp_path, "20240401-000000", config=False)  # crashed before saving config: not a run
    (tmp_path / "notes").mkdir()
    assert newest_run(tmp_path) == latest


def test_newest_run_breaks_same_second_ties_by_config_time(tmp_path):
    older = _run(tmp_path, "20240101-000000", name="b")
    newer = _run(tmp_path, "20240101-000000", name="a")
    os.utime(older / "config.yaml", ns=(1_000_000_000, 1_000_000_000))
    assert newest_run(tmp_path) == newer


def test_newest_run_errors_clearly_when_empty(tmp_path):
    with pytest.raises(NoRunFoundError, match=str(tmp_path)) as info:
        newest_run(tmp_path)
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(NoRunFoundError, match="does not exist"):
        newest_run(tmp_path / "missing")


def test_create_test_dir_is_unique_under_run(tmp_path):
    run = create_run_dir(tmp_path, "demo", now=NOW)
    first = create_test_dir(run, now=NOW)
    second = create_test_dir(run, now=NOW)
    assert first == run / "tests" / "20240304-050607"
    assert second == run / "tests" / "20240304-050607-2"
    with pytest.raises(FileNotFoundError):
        create_test_dir(tmp_path / "missing", now=NOW)


def test_json_written_is_strict(tmp_path):
    path = tmp_path / "m.json"
    atomic_write_json(path, [math.inf, -math.inf])
    assert path.read_text().strip().replace(" ", "").replace("\n", "") == "[null,null]"
