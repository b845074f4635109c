"""Where a run's export lives (RUN/export/) and how its serving.json is read, for every reader.

Shared by live scoring, the test flow's deployment figures and the stream benchmark, so the
export's file names and format check are written once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

EXPORT_DIR = "export"
SERVING_JSON = "serving.json"
SERVING_FORMAT = "beamwatch-serving-1"
PARITY_JSON = "parity.json"


class ArtefactCheckError(ValueError):
    """An exported artefact that is not the one the export wrote, or failed its parity check."""


def artefact_sha256(path: Path) -> str:
    """sha256 of a file, or of a folder (every file's relative path and bytes, in path order)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if file != path:
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def check_artefact(export_dir: Path, meta: dict, key: str, parity_rows: Sequence[str],
                   export_format: str) -> Path:
    """The path of the artefact `key` (serving.json "artefacts") in the export, once it is
    shown to be what the export wrote (the caller names it from `live.formats`: its
    `parity_rows` in parity.json, the `--export --format` value that writes it).

    Refuses (`ArtefactCheckError`, one line naming the file) an artefact that serving.json
    does not list, whose sha256 differs from the one recorded, or that parity.json marks out
    of tolerance.
    """
    export_dir = Path(export_dir)
    info = meta["artefacts"].get(key)
    if info is None or "path" not in info:
        why = info.get("error") if info else "not exported"
        raise ArtefactCheckError(f"{export_dir / SERVING_JSON}: no {key} artefact ({why}); "
                                 f"export it with --export --format {export_format}")
    path = export_dir / info["path"]
    if "sha256" not in info:
        raise ArtefactCheckError(f"{export_dir / SERVING_JSON}: records no sha256 for {key}; "
                                 "export the run again (--export) so it can be checked")
    if not path.exists() or artefact_sha256(path) != info["sha256"]:
        raise ArtefactCheckError(f"{path}: does not match the sha256 serving.json recorded "
                                 "(changed or replaced after the export); export the run again")
    parity_path = export_dir / PARITY_JSON
    if parity_path.exists():
        formats = json.loads(parity_path.read_text())["formats"]
        bad = [row for row in parity_rows if formats.get(row, {}).get("within_tolerance") is False]
        if bad:
            raise ArtefactCheckError(f"{parity_path}: {', '.join(bad)} out of parity tolerance "
                                     "with the Keras model; use another --format")
    return path


def read_serving(export_dir: Path) -> dict:
    """serving.json of an export, with a clear error when it is not one."""
    path = Path(export_dir) / SERVING_JSON
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise FileNotFoundError(f"{path}: not a beamwatch export ({exc}); run "
                                "`python driver.py --export --run RUN` first") from exc
    if meta.get("format") != SERVING_FORMAT:
        raise ValueError(f"{path}: unknown format {meta.get('format')!r}, expected "
                         f"{SERVING_FORMAT}")
    return meta


def read_export(run_dir: Path) -> tuple[dict, dict | None] | None:
    """(serving.json, parity.json's "formats" or None) of the run's export; None without one."""
    export = Path(run_dir) / EXPORT_DIR
    if not (export / SERVING_JSON).exists():
        return None
    meta = read_serving(export)
    parity_path = export / PARITY_JSON
    parity = json.loads(parity_path.read_text())["formats"] if parity_path.exists() else None
    return meta, parity
