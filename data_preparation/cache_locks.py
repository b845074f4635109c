"""Who may touch a trace-cache folder: the commit lock, the readers' lock, pending-entry writers.

A build holds the folder's exclusive `.lock` while it packs and rewrites the index, and a shared
`.readers` lock for as long as it may read shards; pending entries carry their writer's host
and process id, so another build can tell whether their writer is gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path


def host_name() -> str:
    """This machine's name, reduced to characters safe in a file name."""
    return "".join(c if c.isalnum() else "_" for c in socket.gethostname())[:32] or "host"


def writer_pid(entry: Path) -> int | None:
    """The process id in a pending entry's name (None for another layout)."""
    try:
        return int(entry.stem.split("-", 1)[1].rsplit(".", 2)[1])
    except (IndexError, ValueError):
        return None


def writer_gone(entry: Path) -> bool:
    """True when the build that wrote pending `entry` is known to have ended (same host only).

    Entry names are `<sha1>-<host>.<pid>.<random>.h5`; another host's processes cannot be
    checked, so their entries count as live (removed only when a week old).
    """
    try:
        host, pid, _ = entry.stem.split("-", 1)[1].rsplit(".", 2)
        pid = int(pid)
    except ValueError:
        return True  # an older layout's entry
    if host != host_name():
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


_READERS: dict[str, object] = {}  # cache folder -> open handle holding a shared flock


def hold_reader_lock(folder: Path) -> None:
    """Mark this process as a user of `folder` until it exits (a shared flock on `.readers`).

    A process that builds from the cache may read its shards for as long as it runs (a
    streamed training), so nobody else may delete or compact shards meanwhile.
    """
    key = str(folder.resolve())
    if key not in _READERS:
        handle = open(folder / ".readers", "a+b")  # noqa: SIM115  held for the process lifetime
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
        _READERS[key] = handle


def sole_user(folder: Path) -> bool:
    """True when no other process holds `folder`'s reader lock (checked, then back to shared)."""
    handle = _READERS.get(str(folder.resolve()))
    if handle is None:
        return False
    # Called only under the folder's commit lock, so no two processes convert at once. A
    # failed conversion drops the shared lock on Linux; take it again before returning.
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        sole = True
    except BlockingIOError:
        sole = False
    fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
    return sole


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive `flock` on `path` for the duration (released when the process dies)."""
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
