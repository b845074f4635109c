"""Hostile archive contents: FIFOs, broken links, huge or zero-padded files, NaN samples."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from data_preparation import npz_source
from data_preparation.data_loader import load_pulses
from enterprise_tools.biet_writer import write_storage
from tests.data_preparation import builders as b


def _reasons(pulses) -> dict[str, str]:
    return {os.path.basename(e.path): e.reason for e in pulses.ledger.entries}


@pytest.fixture
def archive(tmp_path):
    root = tmp_path / "archive"
    b.small_archive(root)
    return root


@pytest.mark.parametrize("workers", [1, 2])
def test_fifo_named_like_a_data_file_is_ledgered_not_read(archive, tmp_path, time_limit, workers):
    os.mkfifo(archive / "normal" / "pipe.bin.gz")
    with time_limit(60):
        pulses = load_pulses(b.data_config(archive, workers=workers,
                                           cache_dir=str(tmp_path / "cache")), progress=False)
    assert _reasons(pulses)["pipe.bin.gz"] == "not_a_regular_file"
    assert len(pulses) == 7  # every real pulse still read


def test_dangling_and_looping_links_are_ledgered(archive):
    (archive / "normal" / "gone.bin.gz").symlink_to(archive / "normal" / "missing.bin.gz")
    loop_a, loop_b = archive / "normal" / "la.bin.gz", archive / "normal" / "lb.bin.gz"
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    (archive / "normal" / "ok.bin.gz").symlink_to(archive / "normal" / "2024" / "n1.bin.gz")
    pulses = load_pulses(b.data_config(archive), progress=False)
    reasons = _reasons(pulses)
    assert reasons["gone.bin.gz"] == reasons["la.bin.gz"] == reasons["lb.bin.gz"] == "unreadable_link"
    assert "ok.bin.gz" not in reasons  # a link to a regular file is read
    assert len(pulses) == 10


def test_zero_padded_file_beyond_the_cap_is_ledgered(archive):
    good = (archive / "normal" / "2024" / "n1.bin.gz").read_bytes()
    (archive / "normal" / "padded.bin.gz").write_bytes(good + bytes(2 * 2**20))
    pulses = load_pulses(b.data_config(archive, max_file_mb=1), progress=False)
    entry = next(e for e in pulses.ledger.entries if e.path.endswith("padded.bin.gz"))
    assert entry.reason == "file_too_large" and "max_file_mb" in entry.detail
    assert len(pulses) == 7


def test_gzip_bomb_stops_at_the_cap(archive):
    records = b.pulse(b.ts_of(50), 50, n_samples=200_000)  # ~1.6 MB decompressed, tiny gzipped
    bomb = archive / "normal" / "bomb.bin.gz"
    write_storage(bomb, records)
    assert bomb.stat().st_size < 2**20
    pulses = load_pulses(b.data_config(archive, max_file_mb=1), progress=False)
    assert _reasons(pulses)["bomb.bin.gz"] == "file_too_large"


def test_zero_padding_within_the_cap_is_still_read(archive):
    good = (archive / "normal" / "2024" / "n1.bin.gz").read_bytes()
    (archive / "normal" / "2024" / "n1.bin.gz").write_bytes(good + bytes(1000))
    pulses = load_pulses(b.data_config(archive), progress=False)
    assert len(pulses) == 7


def test_nan_samples_in_a_window_are_ledgered_per_pulse(archive):
    records = b.pulse(b.ts_of(60), 60) + b.pulse(b.ts_of(61), 61)
    records[1]["value"] = records[1]["value"].copy()
    records[1]["value"][b.BEGIN + 3] = np.nan
    write_storage(archive / "normal" / "nan.bin.gz", records)
    pulses = load_pulses(b.data_config(archive), progress=False)
    entries = [e for e in pulses.ledger.entries if e.path.endswith("nan.bin.gz")]
    assert [(e.reason, e.count) for e in entries] == [("non_finite_trace", 1)]
    assert np.isfinite(np.asarray(pulses.traces)).all()
    assert len(pulses) == 8  # pulse 61 kept


def test_window_past_the_trace_end_names_both(archive):
    with pytest.raises(ValueError, match=r"data.begin=40 \+ data.shift=32 = 72.*hold 64 samples"):
        load_pulses(b.data_config(archive, begin=40), progress=False)


def test_npz_with_nan_names_the_record(tmp_path):
    traces = np.zeros((4, 8), np.float32)
    traces[2, 5] = np.inf
    path = tmp_path / "w.npz"
    np.savez(path, traces=traces, label=np.zeros(4, np.int8), timestamp_ns=np.arange(4))
    with pytest.raises(ValueError, match=r"w.npz: traces of record 2 hold NaN or inf"):
        npz_source.load_npz_pulses(path)


def test_reader_processes_die_with_the_build(tmp_path):
    """A kill -9 of the building process ends its reader processes (no orphans)."""
    script = textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {str(os.getcwd())!r})
        from concurrent.futures import ProcessPoolExecutor
        from data_preparation.data_loader import _die_with_parent, _pool_context
        pool = ProcessPoolExecutor(2, mp_context=_pool_context(), initializer=_die_with_parent,
                                   initargs=(os.getpid(),))
        pids = [pool.submit(os.getpid).result() for _ in range(2)]
        pool.submit(time.sleep, 120)
        print(" ".join(map(str, pids)), flush=True)
        time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        workers = [int(p) for p in proc.stdout.readline().split()]
        assert workers
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 15
        alive = workers
        while alive and time.monotonic() < deadline:
            alive = [p for p in workers if _alive(p)]
            time.sleep(0.2)
        assert not alive, f"reader processes {alive} outlived their build"
    finally:
        if proc.poll() is None:
            proc.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_gzip_helper_caps_multi_member_streams():
    from enterprise_tools.biet_format import FileTooLargeError
    from enterprise_tools.biet_reader import decompress

    member = gzip.compress(bytes(600_000))
    assert len(decompress(member + member, "x", 1_200_000)) == 1_200_000
    with pytest.raises(FileTooLargeError, match="exceeds the cap of 1000000 bytes"):
        decompress(member + member, "x", 1_000_000)
