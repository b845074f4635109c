"""Where a run's export lives (RUN/export/) and how its serving.json is read, for every reader.

Shared by live scoring, the test flow's deployment figures and the stream benchmark, so the
export's file names and format check are written once.
"""

from __future__ import annotations

import json
from pathlib import Path

EXPORT_DIR = "export"
SERVING_JSON = "serving.json"
SERVING_FORMAT = "beamwatch-serving-1"
PARITY_JSON = "parity.json"


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
