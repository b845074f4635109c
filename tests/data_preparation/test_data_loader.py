import os

import numpy as np
import pytest

from data_preparation import data_loader
from data_preparation.data_loader import load_pulses
from data_preparation.dcm_files import find_data_files
from data_preparation.npz_source import load_npz_pulses
from data_preparation.trace_cache import FileKey, TraceCache
from data_preparation.trace_store import TraceStore
from enterprise_tools.biet_writer import write_storage
from enterprise_tools.trace_windows import get_traces
from tests.data_preparation import builders as b


@pytest.fixture
def archive(tmp_path):
    root = tmp_path / "archive"
    return root, b.small_archive(root)


@pytest.fixture
def counted_reads(monkeypatch):
    """Paths get_traces is called with (in-process reads, workers=1)."""
    calls = []

    def counting(path, *args, **kwargs):
        calls.append(os.path.basename(getattr(path, "name", path)))  # a path or a named buffer
        return get_traces(path, *args, **kwargs)

    monkeypatch.setattr(data_loader, "get_traces", counting)
    return calls


def _by_pid(pulses):
    """{pid: (timestamp, label, file name)} from the first window sample."""
    pids = np.rint(np.asarray(pulses.traces)[:, 0] - b.BEGIN / 1000).astype(int)
    return {
        int(p): (int(t), int(lab), os.path.basename(pulses.files[f]))
        for p, t, lab, f in zip(pids, pulses.timestamp_ns, pulses.label, pulses.file_index, strict=True)
    }


def test_pulses_match_the_archive_and_are_sorted_by_time(archive):
    root, truth = archive
    pulses = load_pulses(b.data_config(root), progress=False)
    found = _by_pid(pulses)
    assert {pid: v[:2] for pid, v in found.items()} == truth
    assert np.all(np.diff(pulses.timestamp_ns) >= 0)
    assert pulses.traces.dtype == np.float32 and pulses.traces.shape == (7, b.SHIFT)
    np.testing.assert_array_equal(pulses.traces[pulses.label == 1][0], b.window_of(100))
    assert found[100][2] == "a1.bin.gz" and found[4][2] == "n2.bin"
    assert len(pulses.ledger) == 0


def test_anomaly_sample_is_the_pulse_before_the_trip(archive):
    root, _ = archive
    pulses = load_pulses(b.data_config(root), progress=False)
    errant = pulses.timestamp_ns[pulses.label == 1]
    assert errant.tolist() == [b.ts_of(5), b.ts_of(21)]  # precursors, not the trips at 6 and 22


def test_files_are_labelled_by_nearest_normal_or_anomal_folder(tmp_path):
    root = tmp_path / "data"
    for rel in ["normal/anomaly_like/x.bin", "anomalies/normal_run/y.bin", "misc/z.bin",
                "Normal/a.bin.gz", "notes.txt"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")
    labelled, unlabelled = find_data_files(root)
    assert [(p.relative_to(root).as_posix(), lab) for p, lab in labelled] == [
        ("Normal/a.bin.gz", 0), ("anomalies/normal_run/y.bin", 0), ("normal/anomaly_like/x.bin", 1)
    ]
    assert [p.name for p in unlabelled] == ["z.bin"]


def test_max_files_keeps_first_files_of_each_class(archive):
    root, _ = archive
    pulses = load_pulses(b.data_config(root, max_files=1), progress=False)
    assert sorted(os.path.basename(f) for f in pulses.files) == ["a1.bin.gz", "n1.bin.gz"]
    assert len(pulses) == 4


def _out_of_order_records():
    records = b.pulse(b.ts_of(0), 1) + b.pulse(b.ts_of(1), 2) + b.pulse(b.ts_of(2), 3)
    records[4] = dict(records[4], timestamp_ns=b.ts_of(1) + 5)  # Trace2 of pulse 2 disagrees
    return records


def _bad_archive(root):
    """One file per ledger reason (besides the quality cut)."""
    b.normal_file(root / "normal" / "good.bin.gz", 0, [1, 2])
    b.write_file(root / "normal" / "mislabelled.bin.gz", [(b.ts_of(3), 3), (b.ts_of(4), 4, 48)])
    b.write_file(root / "normal" / "low_bwidth.bin.gz", [(b.ts_of(5), 5, 0, 500.0)])
    b.write_file(root / "anomaly" / "first_trip.bin.gz", [(b.ts_of(6), 6, 48), (b.ts_of(7), 7)])
    b.normal_file(root / "anomaly" / "no_trip.bin.gz", 8, [8, 9])
    write_storage(root / "normal" / "out_of_order.bin.gz", _out_of_order_records())
    missing = b.pulse(b.ts_of(20), 20) + [r for r in b.pulse(b.ts_of(21), 21) if "Trace2" not in r["name"]]
    write_storage(root / "normal" / "missing_trace.bin.gz", missing)
    b.write_file(root / "normal" / "short.bin.gz", [(b.ts_of(30), 30, 0, 1000.0, 20)])
    good = (root / "normal" / "good.bin.gz").read_bytes()
    (root / "normal" / "truncated.bin.gz").write_bytes(good[: len(good) // 2])
    (root / "normal" / "garbage.bin").write_bytes(b"SNS-BIET2020" + bytes(range(200)))
    b.write_gzip_text(root / "anomaly" / "readme.gz", b"this is a text file, not DCM data\n")
    (root / "normal" / "empty.bin").write_bytes(b"")
    b.normal_file(root / "unsorted" / "stray.bin.gz", 40, [40])


def test_every_skip_reason_is_ledgered_with_its_file(tmp_path):
    root = tmp_path / "archive"
    _bad_archive(root)
    pulses = load_pulses(b.data_config(root), progress=False)
    reasons = {(e.reason, os.path.basename(e.path)) for e in pulses.ledger.entries}
    assert reasons == {
        ("mislabelled_normal_file", "mislabelled.bin.gz"),
        ("no_production_beam", "low_bwidth.bin.gz"),
        ("trip_on_first_pulse", "first_trip.bin.gz"),
        ("anomaly_file_without_trip", "no_trip.bin.gz"),
        ("pulse_records_out_of_order", "out_of_order.bin.gz"),
        ("trace_missing", "missing_trace.bin.gz"),
        ("trace_shorter_than_window", "short.bin.gz"),
        ("corrupt_file", "truncated.bin.gz"),
        ("corrupt_file", "garbage.bin"),
        ("not_a_dcm_file", "readme.gz"),
        ("not_a_dcm_file", "empty.bin"),
        ("unlabelled_folder", "stray.bin.gz"),
    }
    corrupt = [e for e in pulses.ledger.entries if e.path.endswith("garbage.bin")][0]
    assert "corrupt SNS-BIET2020 file" in corrupt.detail and corrupt.scope == "file"
    # Good pulses survive next to the bad ones: 2 + out-of-order file's 2 + missing's 1.
    assert len(pulses) == 5
    assert sorted(_by_pid(pulses)) == [1, 2, 3, 20]


def test_quality_cut_failures_are_ledgered(archive):
    root, _ = archive  # Trace1 is flat: no peaks, so every pulse fails the cut
    pulses = load_pulses(b.data_config(root, quality_cut=True, quality_min_peaks=1), progress=False)
    assert len(pulses) == 0
    assert pulses.ledger.summary() == [{"reason": "failed_quality_cut", "files": 4, "pulses": 7}]


def test_missing_dataset_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset_loc"):
        load_pulses(b.data_config(tmp_path / "nowhere"), progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="No DCM files"):
        load_pulses(b.data_config(tmp_path / "empty"), progress=False)


def test_two_worker_processes_give_the_same_pulses_and_ledger(tmp_path):
    root = tmp_path / "archive"
    _bad_archive(root)
    one = load_pulses(b.data_config(root), progress=False)
    two = load_pulses(b.data_config(root, workers=2, cache_dir=str(tmp_path / "c")), progress=False)
    np.testing.assert_array_equal(one.traces, two.traces)
    np.testing.assert_array_equal(one.timestamp_ns, two.timestamp_ns)
    np.testing.assert_array_equal(one.file_index, two.file_index)
    assert one.ledger.entries == two.ledger.entries


# ---------------------------------------------------------------------------------------------
# Cache


def _cached(root, tmp_path, **kw):
    return b.data_config(root, cache_dir=str(tmp_path / "cache"), **kw)


def test_warm_run_reads_no_dcm_file_and_gives_the_same_result(tmp_path, counted_reads):
    root = tmp_path / "archive"
    _bad_archive(root)
    cold = load_pulses(_cached(root, tmp_path), progress=False)
    assert len(counted_reads) == 9  # every labelled file that passes the sniff and gunzips whole
    counted_reads.clear()
    warm = load_pulses(_cached(root, tmp_path), progress=False)
    assert counted_reads == []
    np.testing.assert_array_equal(cold.traces, warm.traces)
    np.testing.assert_array_equal(cold.timestamp_ns, warm.timestamp_ns)
    assert cold.ledger.entries == warm.ledger.entries  # skips are cached too


def test_changed_file_invalidates_only_its_own_entry(archive, tmp_path, counted_reads):
    root, _ = archive
    load_pulses(_cached(root, tmp_path), progress=False)
    counted_reads.clear()
    b.normal_file(root / "normal" / "2024" / "n2.bin", 10, [6, 7, 8])  # rewritten: new content
    pulses = load_pulses(_cached(root, tmp_path), progress=False)
    assert counted_reads == ["n2.bin"]
    assert sorted(_by_pid(pulses)) == [1, 2, 3, 6, 7, 8, 100, 200]
    counted_reads.clear()
    stat = os.stat(root / "anomaly" / "a1.bin.gz")
    os.utime(root / "anomaly" / "a1.bin.gz", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    load_pulses(_cached(root, tmp_path), progress=False)
    assert counted_reads == ["a1.bin.gz"]


def test_added_file_is_the_only_one_read(archive, tmp_path, counted_reads):
    root, _ = archive
    load_pulses(_cached(root, tmp_path), progress=False)
    counted_reads.clear()
    b.anomaly_file(root / "anomaly" / "a3.bin.gz", 40, 300)
    pulses = load_pulses(_cached(root, tmp_path), progress=False)
    assert counted_reads == ["a3.bin.gz"]
    assert _by_pid(pulses)[300][:2] == (b.ts_of(41), 1)


def test_other_extraction_parameters_use_another_cache_folder(archive, tmp_path, counted_reads):
    root, _ = archive
    load_pulses(_cached(root, tmp_path), progress=False)
    counted_reads.clear()
    pulses = load_pulses(_cached(root, tmp_path, shift=16), progress=False)
    assert len(counted_reads) == 4
    assert pulses.traces.shape == (7, 16)
    assert len(list((tmp_path / "cache").iterdir())) == 2


def _cache_folder(tmp_path):
    (folder,) = (tmp_path / "cache").iterdir()
    return folder


def test_damaged_cache_index_is_rebuilt(archive, tmp_path, counted_reads):
    root, _ = archive
    expected = load_pulses(_cached(root, tmp_path), progress=False)
    (_cache_folder(tmp_path) / "index.h5").write_bytes(b"not hdf5")
    counted_reads.clear()
    pulses = load_pulses(_cached(root, tmp_path), progress=False)
    assert len(counted_reads) == 4
    np.testing.assert_array_equal(pulses.traces, expected.traces)
    counted_reads.clear()
    load_pulses(_cached(root, tmp_path), progress=False)
    assert counted_reads == []  # the rewritten index serves again


def test_missing_shard_turns_its_files_into_misses(archive, tmp_path, counted_reads):
    root, _ = archive
    load_pulses(_cached(root, tmp_path), progress=False)
    b.anomaly_file(root / "anomaly" / "a3.bin.gz", 40, 300)
    load_pulses(_cached(root, tmp_path), progress=False)  # a second shard, for a3 only
    shards = sorted(_cache_folder(tmp_path).glob("shard-*.h5"), key=lambda p: p.stat().st_size)
    assert len(shards) == 2
    shards[0].unlink()
    counted_reads.clear()
    pulses = load_pulses(_cached(root, tmp_path), progress=False)
    assert counted_reads == ["a3.bin.gz"]
    assert _by_pid(pulses)[300][:2] == (b.ts_of(41), 1)


def test_pending_entry_of_an_interrupted_build_is_reused(archive, tmp_path, counted_reads):
    root, _ = archive
    config = _cached(root, tmp_path)
    path = root / "anomaly" / "a1.bin.gz"
    stat = path.stat()
    key = FileKey(str(path), stat.st_size, stat.st_mtime_ns)
    params = data_loader._Extraction.from_config(config)
    cache = TraceCache(data_loader.cache_folder(config.cache_dir, params))
    data_loader._read_file(key, 48, params, cache.pending_path(key))  # the worker ran, then a crash
    counted_reads.clear()
    pulses = load_pulses(config, progress=False)
    assert sorted(counted_reads) == ["a2.gz", "n1.bin.gz", "n2.bin"]
    assert _by_pid(pulses)[100][:2] == (b.ts_of(5), 1)
    assert not any((cache.folder / "pending").iterdir())  # packed into a shard, then removed


def test_shards_are_compacted_when_dead_rows_dominate(archive, tmp_path, counted_reads):
    root, _ = archive
    load_pulses(_cached(root, tmp_path), progress=False)
    for round_ in range(3):  # rewrite the biggest file: its old rows become dead
        b.normal_file(root / "normal" / "2024" / "n1.bin.gz", 0, [10 + round_, 20, 30, 40, 50])
        pulses = load_pulses(_cached(root, tmp_path), progress=False)
    assert len(list(_cache_folder(tmp_path).glob("shard-*.h5"))) < 4
    counted_reads.clear()
    warm = load_pulses(_cached(root, tmp_path), progress=False)
    assert counted_reads == []
    np.testing.assert_array_equal(warm.traces, pulses.traces)
    assert sorted(_by_pid(warm)) == [4, 5, 12, 20, 30, 40, 50, 100, 200]


def test_cache_disabled_reads_every_time(archive, counted_reads):
    root, _ = archive
    load_pulses(b.data_config(root), progress=False)
    load_pulses(b.data_config(root), progress=False)
    assert len(counted_reads) == 8


# ---------------------------------------------------------------------------------------------
# TraceStore


def test_trace_store_reads_rows_in_any_order(archive, tmp_path):
    root, _ = archive
    memory = load_pulses(_cached(root, tmp_path), progress=False)
    store = load_pulses(_cached(root, tmp_path), progress=False, stream=True).traces
    assert isinstance(store, TraceStore) and store.shape == memory.traces.shape
    index = np.array([6, 0, 3, 3, 5, 1])
    np.testing.assert_array_equal(store[index], memory.traces[index])
    np.testing.assert_array_equal(store[2], memory.traces[2])
    np.testing.assert_array_equal(store[1:4], memory.traces[1:4])
    np.testing.assert_array_equal(store.take(index)[np.arange(6)], memory.traces[index])
    np.testing.assert_array_equal(np.asarray(store), memory.traces)
    store.close()


def test_trace_store_keeps_few_files_open(archive, tmp_path):
    root, _ = archive
    load_pulses(_cached(root, tmp_path), progress=False)
    for k in (1, 2):  # one more shard per build
        b.anomaly_file(root / "anomaly" / f"extra{k}.bin.gz", 40 + 5 * k, 300 + k)
        load_pulses(_cached(root, tmp_path), progress=False)
    store = load_pulses(_cached(root, tmp_path), progress=False, stream=True).traces
    assert len(store.sources) == 3
    store.max_open = 2
    store.read(np.arange(len(store)))
    assert len(store._open) == 2
    with pytest.raises(IndexError):
        store.read(np.array([len(store)]))


def test_streaming_needs_a_cache(archive):
    root, _ = archive
    with pytest.raises(ValueError, match="cache_dir"):
        load_pulses(b.data_config(root), progress=False, stream=True)


# ---------------------------------------------------------------------------------------------
# npz


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_npz_pulses_are_read_and_sorted(tmp_path):
    traces = np.arange(24, dtype=np.float64).reshape(3, 4, 2)
    path = _npz(
        tmp_path / "w.npz", traces=traces, label=np.array([0, 1, 0]),
        timestamp_ns=np.array([30, 10, 20]), settings=np.array([[3.0], [1.0], [2.0]]),
        settings_names=np.array(["pv"]),
    )
    pulses = load_npz_pulses(path)
    assert pulses.timestamp_ns.tolist() == [10, 20, 30]
    assert pulses.label.tolist() == [1, 0, 0]
    assert pulses.traces.dtype == np.float32 and pulses.traces.shape == (3, 4, 2)
    np.testing.assert_array_equal(pulses.traces[0], traces[1])
    assert pulses.settings[:, 0].tolist() == [1.0, 2.0, 3.0]
    assert pulses.settings_names == ("pv",)


@pytest.mark.parametrize(
    ("arrays", "error", "match"),
    [
        ({"traces": np.zeros((2, 4)), "label": np.zeros(2)}, KeyError, "timestamp_ns"),
        ({"traces": np.zeros((2, 4)), "label": np.zeros(3), "timestamp_ns": np.zeros(2, int)},
         ValueError, "label has shape"),
        ({"traces": np.zeros(4), "label": np.zeros(4), "timestamp_ns": np.zeros(4, int)},
         ValueError, "traces must be"),
        ({"traces": np.zeros((2, 4)), "label": np.array([0, 2]), "timestamp_ns": np.zeros(2, int)},
         ValueError, "0 or 1"),
        ({"traces": np.zeros((2, 4)), "label": np.zeros(2), "timestamp_ns": np.zeros(2)},
         ValueError, "integers"),
        ({"traces": np.zeros((2, 4)), "label": np.zeros(2), "timestamp_ns": np.zeros(2, int),
          "settings": np.zeros((2, 3))}, KeyError, "settings_names"),
        ({"traces": np.zeros((2, 4)), "label": np.zeros(2), "timestamp_ns": np.zeros(2, int),
          "settings": np.zeros((3, 3)), "settings_names": np.array(["a", "b", "c"])},
         ValueError, "settings must be"),
        ({"traces": np.array([None, None], dtype=object), "label": np.zeros(2),
          "timestamp_ns": np.zeros(2, int)}, ValueError, "object arrays"),
    ],
)
def test_npz_problems_are_clear_errors(tmp_path, arrays, error, match):
    path = _npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(error, match=match):
        load_npz_pulses(path)
