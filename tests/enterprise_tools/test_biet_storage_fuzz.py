"""Fuzz tests: damaged SNS-BIET2020 files give CorruptFileError or a clean read, nothing else.

Valid files are mutated with a fixed seed (truncations, flipped bytes, huge length fields,
random epilogs). Each case is read completely, by ReadStorage and by get_traces; the only
exception allowed is CorruptFileError. A generous per-case time bound guards against hangs
(it is not a speed target) and tracemalloc guards against allocations a length field asks for.
"""

import gzip
import io
import random
import struct
import time
import tracemalloc

import numpy as np
import pytest

from enterprise_tools.biet_format import CorruptFileError
from enterprise_tools.biet_reader import ReadStorage
from enterprise_tools.biet_writer import write_storage
from enterprise_tools.trace_windows import TraceSet, get_traces

SEED = 20240611
HANG_GUARD_S = 2.0
EXPECTED_KEYS = {"name", "timestamp", "timestamp_ns", "tags", "description", "parameters", "value"}


def valid_file(tmp_path_factory, compressed: bool) -> bytes:
    """A small but varied file: DCM pulses plus records using every field family."""
    rng = np.random.default_rng(0)
    records = []
    for k in range(3):
        stamp = 1_650_000_000 * 10**9 + k * 16_666_667
        records += [
            {
                "name": "DCM:Trace1",
                "timestamp_ns": stamp,
                "value": rng.random(40, dtype=np.float32),
            },
            {
                "name": "DCM:Trace2",
                "timestamp_ns": stamp,
                "tags": ["Before"],
                "value": rng.random(40, dtype=np.float32),
            },
            {
                "name": "DCM:MPS",
                "timestamp_ns": stamp,
                "description": "status",
                "parameters": {
                    "Alarm": 48 if k == 2 else 0,
                    "bWidth": 1000.0,
                    "m": np.uint8(3),
                    "g": np.float32(0.5),
                    "wf": np.arange(3, dtype=np.uint32),
                },
            },
        ]
    records.append({"name": "misc", "value": np.arange(5, dtype=np.float64)})
    records.append({"name": "u8s", "value": np.arange(6, dtype=np.uint8)})
    path = tmp_path_factory.mktemp("fuzz") / ("f.bin.gz" if compressed else "f.bin")
    write_storage(path, records)
    return path.read_bytes()


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    return valid_file(tmp_path_factory, compressed=False)


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    return valid_file(tmp_path_factory, compressed=True)


def read_everything(data: bytes, strict: bool) -> None:
    """Read every record every way; raise only what the reader raises."""
    with ReadStorage(io.BytesIO(data), strict=strict) as storage:
        n = len(storage)
        assert n >= 0
        records = list(storage)
        assert len(records) == n
        for record in records:
            assert set(record) == EXPECTED_KEYS
            value = record["value"]
            if isinstance(value, np.ndarray):
                assert value.dtype.isnative and value.ndim == 1
        if n:
            assert storage[-1].keys() == records[-1].keys()
            assert len(storage[::2]) == (n + 1) // 2


def check_case(data: bytes, label: str) -> str:
    """Return "ok" or "corrupt"; fail the test on any other outcome or a hang."""
    start = time.perf_counter()
    outcome = "ok"
    for strict in (False, True):
        try:
            read_everything(data, strict)
        except CorruptFileError as error:
            assert error.reason and error.path in str(error)
            outcome = "corrupt"
    try:
        result = get_traces(io.BytesIO(data), begin=5, shift=20, alarm=48)
        assert isinstance(result, TraceSet) and result.traces.shape[1:] == (20,)
    except CorruptFileError:
        outcome = "corrupt"
    elapsed = time.perf_counter() - start
    assert elapsed < HANG_GUARD_S, f"{label} took {elapsed:.2f} s"
    return outcome


def test_valid_files_read_cleanly(plain, packed):
    assert check_case(plain, "plain") == "ok"
    assert check_case(packed, "gzip") == "ok"


def test_truncation_at_every_point_of_a_plain_file(plain):
    outcomes = {check_case(plain[:cut], f"cut at {cut}") for cut in range(len(plain))}
    assert outcomes == {"corrupt"}


def test_truncation_of_a_gzip_file(packed):
    rng = random.Random(SEED)
    cuts = sorted(set(rng.sample(range(len(packed)), 150)) | {0, 1, 2, 10, len(packed) - 1})
    outcomes = {check_case(packed[:cut], f"gzip cut at {cut}") for cut in cuts}
    assert outcomes == {"corrupt"}


@pytest.mark.parametrize("which", ["plain", "packed"])
def test_flipped_bytes(plain, packed, which):
    rng = random.Random(SEED)
    original = plain if which == "plain" else packed
    seen = set()
    for case in range(400):
        data = bytearray(original)
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        seen.add(check_case(bytes(data), f"{which} flip case {case}"))
    # A flip in sample bytes (or a .gz header's mtime) still reads; most flips are caught.
    assert "corrupt" in seen and (which == "packed" or "ok" in seen)


def test_huge_length_fields_neither_crash_nor_allocate(plain):
    rng = random.Random(SEED)
    tracemalloc.start()
    try:
        for case in range(300):
            at = rng.randrange(12, len(plain) - 4)
            huge = rng.choice([b"\xff\xff\xff\xff", b"\x7f\xff\xff\xf8", b"\x10\x00\x00\x00"])
            data = plain[:at] + huge + plain[at + 4 :]
            tracemalloc.reset_peak()
            check_case(data, f"huge length at {at}")
            _, peak = tracemalloc.get_traced_memory()
            assert peak < 20 * len(plain) + 1_000_000, f"case {case} at {at} allocated {peak} bytes"
    finally:
        tracemalloc.stop()


def test_random_epilogs(plain):
    rng = random.Random(SEED)
    (count,) = struct.unpack(">I", plain[-4:])
    body = plain[: len(plain) - 4 - 8 * count]
    seen = set()
    for case in range(400):
        new_count = rng.choice([0, 1, 2, count - 1, count, count + 1, rng.randrange(2**32)])
        n = min(new_count, 64)
        style = rng.randrange(3)
        if style == 0:  # random offsets anywhere
            table = [rng.randrange(len(body) + 64) for _ in range(n)]
        elif style == 1:  # increasing offsets inside the body (may point mid-record)
            table = sorted(rng.randrange(12, len(body)) for _ in range(n))
        else:  # huge values
            table = [rng.randrange(2**64) for _ in range(n)]
        data = body + struct.pack(f">{n}Q", *table) + struct.pack(">I", new_count)
        seen.add(check_case(data, f"epilog case {case}"))
    assert "corrupt" in seen


def test_random_bytes_after_a_valid_header():
    rng = random.Random(SEED)
    for case in range(200):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 200)))
        assert check_case(b"SNS-BIET2020" + junk, f"junk case {case}") == "corrupt"


def test_gzip_of_a_mutated_plain_file_behaves_like_the_plain_one(plain):
    rng = random.Random(SEED)
    for case in range(100):
        data = bytearray(plain)
        data[rng.randrange(12, len(data))] = rng.randrange(256)
        assert check_case(gzip.compress(bytes(data)), f"gz {case}") == check_case(
            bytes(data), f"plain {case}"
        )
