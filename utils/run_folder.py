"""Run folders and atomic writes.

Every file a run leaves behind is written whole or not at all (temp file in the same
directory, then `os.replace`), and run folders are never reused, so a crash or a second run
started in the same second cannot leave a half-written or mixed-up run behind.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from utils.errors import UsageError

TIMESTAMP_FORMAT = "%Y%m%d-%H%M%S"
_RUN_NAME_RE = re.compile(r"^(\d{8}-\d{6})(?:-|$)")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")


class NoRunFoundError(UsageError, FileNotFoundError):
    """Raised by `newest_run` when a folder holds no run folder."""


class RunFolderError(UsageError, FileNotFoundError):
    """A run folder is missing or lacks a file the flow needs (raised by training and testing)."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temp path beside `path` to write to; on success it replaces `path`.

    Same directory, so the rename is atomic: readers see the old file or the new one, never
    half. The temp file is removed if anything fails; an existing file keeps its permission
    bits (0644 for a new one). `suffix` matters to writers that check it (Keras: ".keras").

    Example:
        >>> with atomic_path(run_dir / "model.keras", suffix=".keras") as tmp:
        ...     model.save(tmp)
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"Cannot write {path}: directory {path.parent} does not exist.")
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp_name)
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except OSError as exc:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        if getattr(exc, "_beamwatch_named", False):
            raise
        # One line naming the file, whatever layer failed (a full disk, a read-only folder).
        named = OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}; "
                        f"{'the previous file is intact' if path.exists() else 'nothing written'}")
        named._beamwatch_named = True
        raise named from exc
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically (see `atomic_path`), flushed to disk first."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write `text` to `path` atomically (see `atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write `obj` as JSON (indent=2, key order kept) atomically.

    NaN and infinite floats become `null` (strict JSON has no NaN; `None` reads back as
    "not defined"), NumPy scalars and arrays become plain numbers and lists, tuples become
    lists. Anything else JSON cannot hold raises `TypeError` naming its key path.
    """
    text = json.dumps(_to_json_safe(obj, "$"), indent=2, sort_keys=False, allow_nan=False)
    atomic_write_text(path, text + "\n")


def _to_json_safe(obj: Any, where: str) -> Any:
    """Return a copy of `obj` made only of JSON types, NaN/inf replaced by None."""
    if isinstance(obj, np.ndarray):
        obj = obj.tolist()
    elif isinstance(obj, np.generic):
        obj = obj.item()
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        out = {}
        for key, value in obj.items():
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise TypeError(f"JSON keys must be str/int/float/bool; got {type(key).__name__} at {where}.")
            out[key] = _to_json_safe(value, f"{where}.{key}")
        return out
    if isinstance(obj, list | tuple):
        return [_to_json_safe(value, f"{where}[{i}]") for i, value in enumerate(obj)]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"Cannot write {type(obj).__name__} as JSON (at {where}).")


def sanitize_name(name: str) -> str:
    """Return `name` reduced to the characters [A-Za-z0-9_.-] ("run" when nothing is left)."""
    cleaned = _UNSAFE_CHARS.sub("_", str(name)).strip("._-")
    return cleaned or "run"


def _make_unique_dir(parent: Path, base: str) -> Path:
    """Create and return `parent/base`, or `base-2`, `base-3`, ... if taken (never reuse)."""
    parent.mkdir(parents=True, exist_ok=True)
    candidate, counter = parent / base, 1
    while True:
        try:
            candidate.mkdir()  # mkdir is atomic: two processes cannot both succeed
            return candidate
        except FileExistsError:
            counter += 1
            candidate = parent / f"{base}-{counter}"


def create_run_dir(root: str | os.PathLike, name: str, now: datetime | None = None) -> Path:
    """Create a new run folder `root/<YYYYmmdd-HHMMSS>-<name>` and return its path.

    `name` is sanitised to [A-Za-z0-9_.-]. If the folder exists, `-2`, `-3`, ... is appended;
    an existing folder is never reused. `now` defaults to the local time.
    """
    stamp = (now or datetime.now()).strftime(TIMESTAMP_FORMAT)
    return _make_unique_dir(Path(root), f"{stamp}-{sanitize_name(name)}")


def create_test_dir(run_dir: str | os.PathLike, now: datetime | None = None) -> Path:
    """Create a new test-result folder `run_dir/tests/<YYYYmmdd-HHMMSS>` (unique) and return it."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"Run folder {run_dir} does not exist.")
    stamp = (now or datetime.now()).strftime(TIMESTAMP_FORMAT)
    return _make_unique_dir(run_dir / "tests", stamp)


def newest_run(root: str | os.PathLike) -> Path:
    """Return the newest run folder under `root` (by the timestamp in its name).

    Only folders named `<YYYYmmdd-HHMMSS>-...` that hold a `config.yaml` count (a run that
    crashed before saving its config is not a run). Runs started in the same second are
    ordered by the modification time of their `config.yaml`.
    """
    root = Path(root)
    if not root.is_dir():
        raise NoRunFoundError(f"No run folder found: {root} does not exist.")
    runs = []
    for child in root.iterdir():
        match = _RUN_NAME_RE.match(child.name)
        config = child / "config.yaml"
        if match and child.is_dir() and config.is_file():
            runs.append((match.group(1), config.stat().st_mtime_ns, child.name, child))
    if not runs:
        raise NoRunFoundError(
            f"No run folder found in {root}: expected folders named <YYYYmmdd-HHMMSS>-<name> "
            "holding a config.yaml. Train a model first or pass the run folder explicitly."
        )
    return max(runs)[3]
