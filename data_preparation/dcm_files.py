"""Find the DCM files of an archive and label them by folder ("normal" / "anomal*").

Files that cannot be read as regular files (dangling links, FIFOs, devices) are ledgered here,
before any worker opens them.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from data_preparation.ledger import (
    CORRUPT_FILE,
    NOT_A_REGULAR_FILE,
    UNREADABLE_LINK,
    DataLedger,
)

DATA_SUFFIXES = (".gz", ".bin")  # ".bin.gz" ends with ".gz"
NORMAL, ANOMALY = 0, 1


def folder_label(path: Path, root: Path) -> int | None:
    """Label from the nearest folder whose name holds "anomal" (1) or "normal" (0), else None.

    Folders between `root` and the file count nearest first, then `root`'s own name.
    """
    parts = list(path.relative_to(root).parent.parts)[::-1] + [root.name]
    for part in parts:
        name = part.lower()
        if "anomal" in name:
            return ANOMALY
        if "normal" in name:
            return NORMAL
    return None


def find_data_files(
    root, max_files: int | None = None
) -> tuple[list[tuple[Path, int]], list[Path]]:
    """Data files under `root` (sorted by relative path) with their labels, and unlabelled ones.

    `max_files` keeps the first N files of each class.
    """
    root = Path(root)
    found: list[Path] = []
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        found.extend(Path(folder) / n for n in names if n.lower().endswith(DATA_SUFFIXES))
    found.sort(key=lambda p: p.relative_to(root).as_posix())
    labelled, unlabelled = [], []
    per_class = {NORMAL: 0, ANOMALY: 0}
    for path in found:
        label = folder_label(path, root)
        if label is None:
            unlabelled.append(path)
        elif max_files is None or per_class[label] < max_files:
            per_class[label] += 1
            labelled.append((path, label))
    return labelled, unlabelled


def usable_files(files, ledger: DataLedger) -> list[tuple[Path, int]]:
    """The files that are (links to) regular files; the rest are ledgered, not read.

    A dangling link or a link loop is `unreadable_link`; a FIFO, socket or device that carries
    a data-file name is `not_a_regular_file` (opening a FIFO would block the reader forever).
    """
    usable = []
    for path, label in files:
        try:
            info = os.stat(path)  # follows links: ELOOP / ENOENT for loops and dangling links
        except OSError as exc:
            reason = UNREADABLE_LINK if os.path.islink(path) else CORRUPT_FILE
            ledger.add(path, reason, 0, f"{exc.strerror or exc}", scope="file")
            continue
        if not stat.S_ISREG(info.st_mode):
            ledger.add(path, NOT_A_REGULAR_FILE, 0, file_kind(info.st_mode), scope="file")
            continue
        usable.append((path, label))
    return usable


def file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a regular file"
