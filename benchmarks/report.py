"""Where benchmark figures go: the machine they were measured on, a JSON file, markdown tables.

`docs/benchmarks.md` keeps a hand-written part and a machine-written part between
`BEGIN_MARK` and `END_MARK`; a rerun replaces only what lies between the markers.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from utils.run_folder import atomic_write_json, atomic_write_text

BEGIN_MARK = "<!-- BEGIN GENERATED -->"
END_MARK = "<!-- END GENERATED -->"


# ----------------------------------------------------------------------------------------------
# The machine and the code measured


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def total_ram_gib() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def machine_info() -> dict:
    """CPU, cores, RAM, OS, library versions and the load average when asked."""
    versions = {"python": platform.python_version()}
    for module in ("numpy", "tensorflow", "keras", "sklearn", "h5py"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            versions[module] = None
    return {
        "hostname": platform.node(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": total_ram_gib(),
        "os": platform.platform(),
        "versions": versions,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def git_commit(repo_dir: str | os.PathLike) -> str:
    """`git rev-parse HEAD`, plus `+dirty` when the working tree has changes; "unknown" outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_dir, capture_output=True,
                              text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain"], cwd=repo_dir,
                                capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if status.strip() else "")


def machine_slug(info: dict) -> str:
    """A file-name-safe machine name: the host name."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(info.get("hostname") or "machine")).strip("-")
    return name or "machine"


def results_path(results_dir: str | os.PathLike, info: dict, when: datetime) -> Path:
    """`<results_dir>/<YYYY-mm-dd>-<machine>.json`."""
    return Path(results_dir) / f"{when:%Y-%m-%d}-{machine_slug(info)}.json"


def command_line(argv: Sequence[str] | None = None) -> str:
    """The exact command, as it would be typed again."""
    args = list(sys.argv[1:] if argv is None else argv)
    return " ".join(["python -m benchmarks", *args])


def write_results(path: str | os.PathLike, results: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, results)


# ----------------------------------------------------------------------------------------------
# Markdown


def render_table(headers: Sequence[str], rows: Sequence[Sequence[object]],
                 align: str | None = None) -> str:
    """A GitHub markdown table; `align` is one letter per column, "l" or "r" (default: l, then r)."""
    if align is None:
        align = "l" + "r" * (len(headers) - 1)
    if len(align) != len(headers):
        raise ValueError(f"render_table: align {align!r} has {len(align)} letters for "
                         f"{len(headers)} columns")
    rule = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(map(_cell, headers)) + " |",
             "| " + " | ".join(rule[a] for a in align) + " |"]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"render_table: a row has {len(row)} cells for {len(headers)} "
                             f"columns: {list(row)!r}")
        lines.append("| " + " | ".join(map(_cell, row)) + " |")
    return "\n".join(lines)


def _cell(value: object) -> str:
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def replace_generated(document: str, generated: str) -> str:
    """The document with the text between the GENERATED markers replaced by `generated`.

    Without markers, they are appended (with the text) at the end; markers out of order or
    repeated are an error (which part to replace would be a guess).
    """
    begins, ends = document.count(BEGIN_MARK), document.count(END_MARK)
    block = f"{BEGIN_MARK}\n{generated.strip()}\n{END_MARK}"
    if begins == 0 and ends == 0:
        return document.rstrip("\n") + "\n\n" + block + "\n"
    start, stop = document.find(BEGIN_MARK), document.find(END_MARK)
    if begins != 1 or ends != 1 or stop < start:
        raise ValueError(
            f"the document must hold {BEGIN_MARK} once, followed by {END_MARK} once; found "
            f"{begins} and {ends}")
    return document[:start] + block + document[stop + len(END_MARK):]


def update_document(path: str | os.PathLike, generated: str) -> None:
    """Rewrite the generated part of `path` (created with just that part if it is absent)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    atomic_write_text(path, replace_generated(text, generated))
