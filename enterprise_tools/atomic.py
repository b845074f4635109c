"""Atomic file creation for the format layer: write beside the target, then rename over it.

Readers see the old file or the new one, never half of one; a failed write leaves no temp file.
(`utils.run_folder.atomic_path` is the same for the layers above, which may not be imported here.)
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temp path in `path`'s folder; on success it replaces `path`, on error it goes.

    The new file keeps an existing file's permission bits (0644 for a new one).
    """
    path = Path(path)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
