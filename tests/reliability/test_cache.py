"""The trace cache under damage and under concurrent builders."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from data_preparation.cache_checksums import CacheChecksumError
from data_preparation.data_loader import load_pulses
from tests.data_preparation import builders as b


@pytest.fixture
def archive(tmp_path):
    root = tmp_path / "archive"
    b.small_archive(root)
    return root


def _config(root, tmp_path, **kw):
    return b.data_config(root, cache_dir=str(tmp_path / "cache"), **kw)


def _corrupt_one_row(tmp_path) -> Path:
    """Overwrite one row of a shard's trace data with other numbers (valid HDF5, wrong data)."""
    (folder,) = (tmp_path / "cache").iterdir()
    (shard,) = folder.glob("shard-*.h5")
    with h5py.File(shard, "r+") as h5:
        h5["traces"][2] = np.random.default_rng(0).normal(size=h5["traces"].shape[1])
    return shard


def test_damaged_shard_rows_are_rebuilt_and_logged(archive, tmp_path, caplog):
    cold = load_pulses(_config(archive, tmp_path), progress=False)
    shard = _corrupt_one_row(tmp_path)
    with caplog.at_level(logging.WARNING):
        warm = load_pulses(_config(archive, tmp_path), progress=False)
    np.testing.assert_array_equal(np.asarray(warm.traces), np.asarray(cold.traces))
    assert any("CRC32" in r.getMessage() and shard.name in r.getMessage() for r in caplog.records)
    caplog.clear()
    again = load_pulses(_config(archive, tmp_path), progress=False)  # the index now points past it
    np.testing.assert_array_equal(np.asarray(again.traces), np.asarray(cold.traces))
    assert not any("CRC32" in r.getMessage() for r in caplog.records)


def test_streamed_read_of_a_damaged_row_is_an_error_naming_the_shard(archive, tmp_path):
    store = load_pulses(_config(archive, tmp_path), progress=False, stream=True).traces
    shard = _corrupt_one_row(tmp_path)
    store.close()
    with pytest.raises(CacheChecksumError, match=shard.name):
        store.to_array()
    store.close()
    rebuilt = load_pulses(_config(archive, tmp_path), progress=False)  # the next build re-reads
    assert np.isfinite(np.asarray(rebuilt.traces)).all()
    assert not shard.exists() and not Path(f"{shard}.damaged").exists()
    cold = load_pulses(b.data_config(archive), progress=False)
    np.testing.assert_array_equal(np.asarray(rebuilt.traces), np.asarray(cold.traces))


_BUILDER = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {root!r})
    import numpy as np
    from tests.data_preparation import builders as b
    from data_preparation.data_loader import load_pulses
    config = b.data_config({archive!r}, cache_dir={cache!r}, workers=2)
    pulses = load_pulses(config, progress=False)
    print(json.dumps({{"n": len(pulses), "sum": float(np.asarray(pulses.traces).sum())}}))
""")


def test_two_cold_builders_sharing_a_cache_both_succeed(tmp_path):
    root = tmp_path / "archive"
    for i in range(12):  # enough files that the two builds overlap
        b.normal_file(root / "normal" / f"n{i:02d}.bin.gz", 10 * i, [10 * i + 1, 10 * i + 2])
    b.anomaly_file(root / "anomaly" / "a.bin.gz", 200, 900)
    for trial in range(2):
        cache = tmp_path / f"cache{trial}"
        script = _BUILDER.format(root=os.getcwd(), archive=str(root), cache=str(cache))
        procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outs = [p.communicate(timeout=300) for p in procs]
        for proc, (_out, err) in zip(procs, outs, strict=True):
            assert proc.returncode == 0, err[-2000:]
        results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
        assert results[0] == results[1] and results[0]["n"] == 25
        (folder,) = cache.iterdir()
        assert not list((folder / "pending").glob("*.h5"))  # no orphan pending entries
        warm = load_pulses(b.data_config(root, cache_dir=str(cache)), progress=False)
        assert float(np.asarray(warm.traces).sum()) == results[0]["sum"]
