"""Tests for the SNS-BIET2020 reader and writer (enterprise_tools.biet_reader, biet_writer).

Byte strings are built here by hand from the spec (struct.pack), independently of
``write_storage``, so reader and writer cannot share a mistake.
"""

import datetime as dt
import gzip
import io
import math
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enterprise_tools.biet_format import CorruptFileError
from enterprise_tools.biet_reader import ReadStorage
from enterprise_tools.biet_writer import write_storage

UTC = dt.UTC
EPICS_EPOCH = dt.datetime(1990, 1, 1, tzinfo=UTC)


# -- hand-built files -------------------------------------------------------------------


def short(text: str) -> bytes:
    raw = text.encode()
    return bytes([len(raw)]) + raw


def f_name(text):
    return b"\x01" + short(text)


def f_tst(code, seconds, nanos):
    return bytes([code]) + struct.pack(">II", seconds, nanos)


def f_tag(text):
    return b"\x04" + short(text)


def f_descr(text):
    raw = text.encode()
    return b"\x05" + struct.pack(">I", len(raw)) + raw


def f_wave(code, fmt, values, key=None):
    samples = struct.pack(f">{len(values)}{fmt}", *values)
    head = bytes([code]) + (short(key) if key is not None else b"")
    return head + struct.pack(">I", len(samples)) + samples


def build(bodies, *, sizes=None, last_entry=None) -> bytes:
    """Header, one record per body (size field + body + 0xFE), EOF record, epilog."""
    out = bytearray(b"SNS-BIET2020")
    offsets = []
    for i, body in enumerate(bodies):
        offsets.append(len(out))
        size = len(body) + 1 if sizes is None else sizes[i]
        out += struct.pack(">I", size) + body + b"\xfe"
    eof = len(out)
    out += struct.pack(">I", 1) + b"\xff"
    table = [*offsets, eof, len(out) if last_entry is None else last_entry]
    out += struct.pack(f">{len(table)}Q", *table) + struct.pack(">I", len(table))
    return bytes(out)


def read_one(data: bytes, strict=False) -> dict:
    with ReadStorage(io.BytesIO(data), strict=strict) as storage:
        assert len(storage) == 1
        return storage[0]


# -- every field code, hand-built ---------------------------------------------------------

FIELD_CASES = [
    ("name", f_name("DCM:Trace2"), lambda r: r["name"] == "DCM:Trace2"),
    (
        "unixtst",
        f_tst(2, 1_600_000_000, 999_999_999),
        lambda r: (
            r["timestamp_ns"] == 1_600_000_000_999_999_999
            and r["timestamp"] == dt.datetime(2020, 9, 13, 12, 26, 40, 999_999, tzinfo=UTC)
        ),
    ),
    (
        "epicstst",
        f_tst(3, 86_400, 5),
        lambda r: (
            r["timestamp_ns"] == (631_152_000 + 86_400) * 10**9 + 5
            and r["timestamp"] == EPICS_EPOCH + dt.timedelta(days=1)
        ),
    ),
    ("tag", f_tag("Before") + f_tag("During"), lambda r: r["tags"] == ["Before", "During"]),
    ("descr", f_descr("errant beam é"), lambda r: r["description"] == "errant beam é"),
    (
        "u32 param",
        b"\x06" + short("Alarm") + struct.pack(">I", 0xFFFFFFF0),
        lambda r: (
            r["parameters"] == {"Alarm": 0xFFFFFFF0} and type(r["parameters"]["Alarm"]) is int
        ),
    ),
    (
        "f64 param",
        b"\x07" + short("bWidth") + struct.pack(">d", 1000.25),
        lambda r: r["parameters"] == {"bWidth": 1000.25},
    ),
    ("u8 param", b"\x08" + short("mode") + b"\xff", lambda r: r["parameters"] == {"mode": 255}),
    (
        "f32 param",
        b"\x09" + short("gain") + struct.pack(">f", 1.5),
        lambda r: r["parameters"] == {"gain": 1.5} and type(r["parameters"]["gain"]) is float,
    ),
    (
        "u32 value",
        b"\x10" + struct.pack(">I", 4_000_000_000),
        lambda r: r["value"] == 4_000_000_000,
    ),
    ("f64 value", b"\x11" + struct.pack(">d", -2.5e-300), lambda r: r["value"] == -2.5e-300),
    ("u8 value", b"\x12\x07", lambda r: r["value"] == 7),
    ("f32 value", b"\x13" + struct.pack(">f", 0.25), lambda r: r["value"] == 0.25),
]

WAVE_CASES = [
    (26, "I", np.uint32, [1, 0xFFFFFFFF, 7]),
    (27, "d", np.float64, [0.5, -1e300, 3.0]),
    (28, "B", np.uint8, [0, 255, 9]),
    (29, "f", np.float32, [0.25, -8.0, 1e-3]),
    (36, "I", np.uint32, [2, 3]),
    (37, "d", np.float64, [math.pi]),
    (38, "B", np.uint8, [1, 2, 3, 4, 5]),
    (39, "f", np.float32, [0.0, 0.01, 0.04]),
]


@pytest.mark.parametrize("label,body,check", FIELD_CASES, ids=[c[0] for c in FIELD_CASES])
def test_hand_built_scalar_field_decodes(label, body, check):
    record = read_one(build([body]), strict=True)
    assert check(record), record


@pytest.mark.parametrize("code,fmt,dtype,values", WAVE_CASES, ids=[str(c[0]) for c in WAVE_CASES])
def test_hand_built_waveform_field_decodes_in_native_byte_order(code, fmt, dtype, values):
    key = "wf" if code < 30 else None
    record = read_one(build([f_wave(code, fmt, values, key=key)]), strict=True)
    array = record["parameters"]["wf"] if key else record["value"]
    assert array.dtype == np.dtype(dtype) and array.dtype.isnative
    np.testing.assert_array_equal(array, np.asarray(values, dtype=dtype))


def test_record_without_fields_has_all_keys_with_defaults():
    record = read_one(build([b""]))
    assert record == {
        "name": "",
        "timestamp": None,
        "timestamp_ns": None,
        "tags": [],
        "description": "",
        "parameters": {},
        "value": None,
    }


def test_full_record_decodes_every_part_together():
    body = (
        f_name("X:Trace1")
        + f_tst(2, 10, 20)
        + f_tag("Before")
        + f_descr("d")
        + b"\x06"
        + short("Alarm")
        + struct.pack(">I", 48)
        + f_wave(39, "f", [1.0, 2.0])
    )
    record = read_one(build([body]), strict=True)
    assert record["name"] == "X:Trace1" and record["timestamp_ns"] == 10 * 10**9 + 20
    assert record["tags"] == ["Before"] and record["parameters"] == {"Alarm": 48}
    np.testing.assert_array_equal(record["value"], [1.0, 2.0])


# -- access: len, indices, slices, iteration, sources -------------------------------------


@pytest.fixture()
def five_records():
    return build([f_name(f"r{i}") + b"\x10" + struct.pack(">I", i) for i in range(5)])


def test_len_index_negative_index_slice_and_iteration(five_records):
    with ReadStorage(io.BytesIO(five_records)) as storage:
        assert len(storage) == 5
        assert storage[0]["value"] == 0 and storage[-1]["value"] == 4 and storage[-5]["value"] == 0
        assert [r["value"] for r in storage[1:4]] == [1, 2, 3]
        assert [r["value"] for r in storage[::-2]] == [4, 2, 0]
        assert storage[7:] == []
        assert [r["name"] for r in storage] == [f"r{i}" for i in range(5)]
        assert storage[np.int64(2)]["value"] == 2


def test_index_out_of_range_and_wrong_type(five_records):
    with ReadStorage(io.BytesIO(five_records)) as storage:
        with pytest.raises(IndexError, match="out of range for 5 records"):
            storage[5]
        with pytest.raises(IndexError):
            storage[-6]
        with pytest.raises(TypeError, match="int or a slice"):
            storage["a"]


def test_closed_storage_refuses_access(five_records):
    storage = ReadStorage(io.BytesIO(five_records))
    storage.close()
    with pytest.raises(ValueError, match="closed"):
        storage[0]


def test_reads_path_str_and_pathlike(tmp_path, five_records):
    path = tmp_path / "f.bin"
    path.write_bytes(five_records)
    for source in (path, str(path)):
        with ReadStorage(source) as storage:
            assert storage[3]["value"] == 3


def test_gzip_detected_by_magic_bytes_not_name(tmp_path, five_records):
    misleading = tmp_path / "looks_plain.bin"
    misleading.write_bytes(gzip.compress(five_records))
    plain_named_gz = tmp_path / "looks_gzipped.bin.gz"
    plain_named_gz.write_bytes(five_records)
    for path in (misleading, plain_named_gz):
        with ReadStorage(path) as storage:
            assert [r["value"] for r in storage] == [0, 1, 2, 3, 4]


def test_multi_member_gzip_is_read_whole(five_records):
    half = len(five_records) // 2
    data = gzip.compress(five_records[:half]) + gzip.compress(five_records[half:])
    with ReadStorage(io.BytesIO(data)) as storage:
        assert storage[4]["value"] == 4


def test_text_file_object_is_rejected_clearly():
    with pytest.raises(TypeError, match="binary file object"):
        ReadStorage(io.StringIO("SNS-BIET2020"))


def test_size_field_mismatch_tolerated_unless_strict():
    data = build([f_name("a")], sizes=[999])
    assert read_one(data)["name"] == "a"
    with pytest.raises(CorruptFileError, match="size field says 999"):
        read_one(data, strict=True)


def test_non_utf8_string_replaced_unless_strict():
    data = build([b"\x01\x02\xff\xfe"])
    assert read_one(data)["name"] == "\ufffd\ufffd"
    with pytest.raises(CorruptFileError, match="name is not valid UTF-8"):
        read_one(data, strict=True)


# -- write_storage ------------------------------------------------------------------------


def test_writer_output_matches_hand_built_bytes(tmp_path):
    path = tmp_path / "w.bin"
    write_storage(
        path,
        [
            {
                "name": "a",
                "timestamp_ns": 5 * 10**9 + 7,
                "tags": ["Before"],
                "description": "d",
                "parameters": {
                    "Alarm": 48,
                    "bWidth": 1000.0,
                    "m": np.uint8(1),
                    "g": np.float32(0.5),
                },
                "value": np.array([1.0, 2.0], dtype=np.float32),
            },
            {"name": "b", "value": 3},
        ],
    )
    expected = build(
        [
            f_name("a")
            + f_tst(2, 5, 7)
            + f_tag("Before")
            + f_descr("d")
            + b"\x06"
            + short("Alarm")
            + struct.pack(">I", 48)
            + b"\x07"
            + short("bWidth")
            + struct.pack(">d", 1000.0)
            + b"\x08"
            + short("m")
            + b"\x01"
            + b"\x09"
            + short("g")
            + struct.pack(">f", 0.5)
            + f_wave(39, "f", [1.0, 2.0]),
            f_name("b") + b"\x10" + struct.pack(">I", 3),
        ]
    )
    assert path.read_bytes() == expected


def test_empty_file_has_epilog_count_two(tmp_path):
    path = tmp_path / "empty.bin"
    write_storage(path, [])
    assert path.read_bytes() == build([])
    with ReadStorage(path, strict=True) as storage:
        assert len(storage) == 0 and list(storage) == []


def test_gzip_output_is_deterministic_and_nameless(tmp_path):
    records = [{"name": "x", "timestamp_ns": 1, "value": np.arange(50, dtype=np.float32)}]
    first, second = tmp_path / "a.bin.gz", tmp_path / "sub_b.bin.gz"
    write_storage(first, records)
    write_storage(second, records, compresslevel=6)
    raw = first.read_bytes()
    assert raw == second.read_bytes()
    assert raw[:2] == b"\x1f\x8b" and raw[3] & 0x08 == 0  # FNAME flag clear
    assert raw[4:8] == b"\x00\x00\x00\x00"  # mtime 0
    assert gzip.decompress(raw) == build(
        [f_name("x") + f_tst(2, 0, 1) + f_wave(39, "f", range(50))]
    )


def test_compresslevel_changes_compression_only(tmp_path):
    records = [{"name": "x", "value": np.linspace(0, 1, 4000, dtype=np.float32)}]
    write_storage(tmp_path / "fast.gz", records, compresslevel=1)
    write_storage(tmp_path / "best.gz", records, compresslevel=9)
    fast, best = (tmp_path / "fast.gz").read_bytes(), (tmp_path / "best.gz").read_bytes()
    assert fast != best and gzip.decompress(fast) == gzip.decompress(best)


def test_write_is_atomic_and_leaves_no_temp_file_on_error(tmp_path):
    path = tmp_path / "keep.bin"
    write_storage(path, [{"name": "old"}])
    before = path.read_bytes()
    with pytest.raises(ValueError):
        write_storage(path, [{"name": "new", "value": object()}])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.bin"]


def test_timestamp_datetime_and_ns_agree(tmp_path):
    moment = dt.datetime(2021, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
    path = tmp_path / "t.bin"
    write_storage(path, [{"timestamp": moment}, {"timestamp_ns": 1_614_834_367_891_011_000}])
    with ReadStorage(path) as storage:
        assert storage[0]["timestamp_ns"] == storage[1]["timestamp_ns"] == 1_614_834_367_891_011_000
        assert storage[0]["timestamp"] == moment


@pytest.mark.parametrize(
    "record,message",
    [
        ({"value": object()}, r"record 1: value has unsupported type object"),
        ({"value": np.arange(3)}, r"record 1: value has unsupported type array of dtype int64"),
        ({"value": np.zeros((2, 2), np.float32)}, r"record 1: value has unsupported type array"),
        ({"parameters": {"flag": True}}, r"record 1: parameter 'flag' has unsupported type bool"),
        ({"parameters": {"Alarm": -1}}, r"record 1: parameter 'Alarm'=-1 does not fit"),
        ({"parameters": {"Alarm": 2**32}}, r"does not fit an unsigned 32-bit integer"),
        ({"parameters": {"k" * 256: 1}}, r"record 1: parameter key .* 256 bytes; at most 255"),
        ({"name": "n" * 256}, r"record 1: name .* 256 bytes; at most 255"),
        ({"name": "é" * 128}, r"record 1: name .* 256 bytes"),
        ({"tags": "Before"}, r"record 1: tags must be a list"),
        ({"timestamp_ns": -1}, r"record 1: timestamp -1 ns is before 1970"),
        ({"timestamp": dt.datetime(1969, 12, 31, tzinfo=UTC)}, r"record 1: timestamp -\d+ ns"),
        ({"timestamp": dt.datetime(2020, 1, 1)}, r"record 1: timestamp must be a timezone-aware"),
        ({"timestamp_ns": 2**32 * 10**9}, r"record 1: timestamp .* after 2106"),
        ({"paramters": {}}, r"record 1: unknown key\(s\) \['paramters'\]"),
    ],
)
def test_writer_rejects_bad_input_naming_record_and_key(tmp_path, record, message):
    with pytest.raises(ValueError, match=message):
        write_storage(tmp_path / "bad.bin", [{"name": "ok"}, record])
    assert not (tmp_path / "bad.bin").exists()


def test_writer_accepts_name_of_exactly_255_bytes(tmp_path):
    write_storage(tmp_path / "ok.bin", [{"name": "n" * 255}])
    with ReadStorage(tmp_path / "ok.bin") as storage:
        assert storage[0]["name"] == "n" * 255


def test_writer_consumes_a_generator(tmp_path):
    write_storage(tmp_path / "g.bin", ({"value": i} for i in range(3)))
    with ReadStorage(tmp_path / "g.bin") as storage:
        assert [r["value"] for r in storage] == [0, 1, 2]


# -- round trips with hypothesis ----------------------------------------------------------

short_text = st.text(max_size=60)  # at most 240 UTF-8 bytes, under the 255 limit
scalars = st.one_of(
    st.integers(0, 2**32 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(0, 255).map(np.uint8),
    st.floats(width=32, allow_nan=False).map(np.float32),
    st.integers(0, 2**32 - 1).map(np.uint32),
    st.floats(allow_nan=False).map(np.float64),
)
arrays = st.sampled_from([np.uint32, np.float64, np.uint8, np.float32]).flatmap(
    lambda dtype: st.lists(
        st.integers(0, np.iinfo(dtype).max)
        if np.issubdtype(dtype, np.integer)
        else st.floats(width=np.dtype(dtype).itemsize * 8, allow_nan=True),
        max_size=20,
    ).map(lambda values, dtype=dtype: np.asarray(values, dtype=dtype))
)
records = st.fixed_dictionaries(
    {},
    optional={
        "name": short_text,
        "timestamp_ns": st.integers(0, (2**32 - 1) * 10**9 + 999_999_999),
        "tags": st.lists(short_text, max_size=3),
        "description": st.text(max_size=200),
        "parameters": st.dictionaries(short_text, st.one_of(scalars, arrays), max_size=4),
        "value": st.one_of(st.none(), scalars, arrays),
    },
)


def assert_same_number(written, read):
    if isinstance(written, np.ndarray):
        assert isinstance(read, np.ndarray) and read.dtype == written.dtype and read.dtype.isnative
        np.testing.assert_array_equal(read, written)
    else:
        assert not isinstance(read, np.ndarray | np.generic)
        if isinstance(written, float) and math.isnan(written):
            assert math.isnan(read)
        else:
            assert read == written


def assert_round_trip(written: dict, read: dict):
    assert read["name"] == written.get("name", "")
    assert read["timestamp_ns"] == written.get("timestamp_ns")
    if "timestamp_ns" in written:
        ns = written["timestamp_ns"]
        assert read["timestamp"] == dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(
            microseconds=ns // 1000
        )
    assert read["tags"] == written.get("tags", [])
    assert read["description"] == written.get("description", "")
    params = written.get("parameters", {})
    assert list(read["parameters"]) == list(params)
    for key, value in params.items():
        assert_same_number(value, read["parameters"][key])
    if written.get("value") is None:
        assert read["value"] is None
    else:
        assert_same_number(written["value"], read["value"])


@pytest.mark.parametrize("suffix", [".bin", ".bin.gz"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(written=st.lists(records, max_size=6))
def test_round_trip_random_records(tmp_path_factory, suffix, written):
    path = tmp_path_factory.mktemp("rt") / f"f{suffix}"
    write_storage(path, written)
    with ReadStorage(path, strict=True) as storage:
        assert len(storage) == len(written)
        for record, read in zip(written, storage, strict=True):
            assert_round_trip(record, read)
        if written:
            assert_round_trip(written[-1], storage[-1])
            assert len(storage[1:]) == len(written) - 1
            for record, read in zip(written[::-1], storage[::-1], strict=True):
                assert_round_trip(record, read)


# -- every CorruptFileError reason --------------------------------------------------------


def with_count(data: bytes, count: int) -> bytes:
    return data[:-4] + struct.pack(">I", count)


def patch(data: bytes, at: int, new: bytes) -> bytes:
    return data[:at] + new + data[at + len(new) :]


GOOD = build([f_name("a") + b"\x10" + struct.pack(">I", 1), f_name("b")])
EPILOG = len(GOOD) - 4 - 8 * 4  # two records + EOF + unused entry
EOF_AT = EPILOG - 5
SECOND = 12 + 4 + 3 + 5 + 1  # header + size + name(a) + u32 value + 0xFE


def one_record(body: bytes) -> bytes:
    """A file whose only record holds ``body`` and ends at the EOF record as the epilog says."""
    return build([body[:-1]]) if body.endswith(b"\xfe") else build([body])


CORRUPTIONS = [
    # (case id, bytes, strict, reason fragment, record index, offset)
    ("bad header", b"SNS-BIET2019" + GOOD[12:], False, "bad header", None, 0),
    ("empty file", b"", False, "bad header", None, 0),
    ("too short", GOOD[:12] + b"\x00" * 4, False, "too short for an epilog", None, 16),
    (
        "count below two",
        with_count(GOOD, 1),
        False,
        "epilog count 1 is below 2",
        None,
        len(GOOD) - 4,
    ),
    (
        "count too large",
        with_count(GOOD, 10**6),
        False,
        "too large for a file",
        None,
        len(GOOD) - 4,
    ),
    ("count off by one", with_count(GOOD, 3), False, "EOF record", None, EPILOG + 8),
    (
        "eof offset wrong",
        patch(GOOD, EPILOG + 16, struct.pack(">Q", 12)),
        False,
        "puts the EOF record at 12",
        None,
        EPILOG,
    ),
    (
        "no eof marker",
        patch(GOOD, EOF_AT + 4, b"\xfe"),
        False,
        "no end-of-file marker",
        None,
        EOF_AT + 4,
    ),
    (
        "eof size strict",
        patch(GOOD, EOF_AT, struct.pack(">I", 9)),
        True,
        "EOF record size",
        None,
        EOF_AT,
    ),
    (
        "unused entry strict",
        patch(GOOD, EPILOG + 24, struct.pack(">Q", 0)),
        True,
        "last epilog entry 0",
        None,
        len(GOOD) - 12,
    ),
    (
        "first offset not 12",
        patch(GOOD, EPILOG, struct.pack(">Q", 13)),
        False,
        "out of range or not increasing",
        0,
        13,
    ),
    (
        "offsets decreasing",
        patch(GOOD, EPILOG + 8, struct.pack(">Q", 12)),
        False,
        "out of range or not increasing",
        1,
        12,
    ),
    (
        "offset past eof",
        patch(GOOD, EPILOG + 8, struct.pack(">Q", 2**63)),
        False,
        "out of range",
        1,
        2**63,
    ),
    (
        "no records but data",
        build([]).replace(b"SNS-BIET2020", b"SNS-BIET2020\xfe", 1),
        False,
        "EOF record",
        None,
        None,
    ),
    ("unknown field code", one_record(b"\x0a\x00"), False, "unknown field code 10", 0, 16),
    (
        "eof marker inside record",
        one_record(b"\xff"),
        False,
        "end-of-file marker (0xFF) inside",
        0,
        16,
    ),
    ("name length past end", one_record(b"\x01\x09ab"), False, "name of 9 bytes runs past", 0, 18),
    ("tag length past end", one_record(b"\x04\x05a"), False, "tag of 5 bytes runs past", 0, 18),
    (
        "timestamp past end",
        one_record(b"\x02\x00\x00"),
        False,
        "timestamp of 8 bytes runs past",
        0,
        17,
    ),
    (
        "huge description",
        one_record(b"\x05\xff\xff\xff\xff"),
        False,
        "description of 4294967295 bytes runs past",
        0,
        21,
    ),
    ("key past end", one_record(b"\x06\x30k"), False, "parameter key of 48 bytes runs past", 0, 18),
    (
        "scalar past end",
        one_record(b"\x11\x00\x00"),
        False,
        "value scalar of 8 bytes runs past",
        0,
        17,
    ),
    (
        "huge waveform",
        one_record(bytes([27]) + short("w") + b"\xff\xff\xff\xf8"),
        False,
        "waveform w of 4294967288 bytes runs past",
        0,
        23,
    ),
    (
        "waveform length past end",
        one_record(bytes([37, 1])),
        False,
        "waveform value length of 4",
        0,
        17,
    ),
    (
        "waveform not whole samples",
        one_record(bytes([37]) + struct.pack(">I", 6) + b"\x00" * 6),
        False,
        "byte length 6 is not a multiple of the sample size 8",
        0,
        17,
    ),
    (
        "record longer than its slot",
        patch(GOOD, EPILOG + 8, struct.pack(">Q", SECOND - 1)),
        False,
        "no end-of-record marker",
        0,
        SECOND - 1,
    ),
    (
        "record shorter than its slot",
        patch(GOOD, EPILOG + 8, struct.pack(">Q", SECOND + 1)),
        False,
        "record ends at offset",
        0,
        SECOND,
    ),
    ("size mismatch strict", build([f_name("a")], sizes=[3]), True, "size field says 3", 0, 12),
    (
        "bad utf-8 strict",
        one_record(b"\x05" + struct.pack(">I", 1) + b"\xff"),
        True,
        "description is not valid UTF-8",
        0,
        21,
    ),
    ("bad gzip", b"\x1f\x8b\x08\x00" + b"\x00" * 20, False, "bad gzip stream", None, None),
    ("truncated gzip", gzip.compress(GOOD)[:-10], False, "gzip stream is truncated", None, None),
    ("gzip trailing garbage", gzip.compress(GOOD) + b"junk", False, "trailing garbage", None, None),
    (
        "gzip crc",
        patch(gzip.compress(GOOD), len(gzip.compress(GOOD)) - 8, b"\x00\x00\x00\x00"),
        False,
        "bad gzip stream",
        None,
        None,
    ),
]


def raw_file(records: list[bytes], junk: bytes = b"") -> bytes:
    """Header, ``junk``, records taken verbatim (size field and markers included), EOF, epilog."""
    out = b"SNS-BIET2020" + junk
    offsets = []
    for record in records:
        offsets.append(len(out))
        out += record
    eof = len(out)
    out += struct.pack(">I", 1) + b"\xff"
    table = [*offsets, eof, len(out)]
    return out + struct.pack(f">{len(table)}Q", *table) + struct.pack(">I", len(table))


CORRUPTIONS += [
    (
        "no records but data",
        raw_file([], junk=b"junk"),
        False,
        "lists no records but data",
        None,
        16,
    ),
    (
        "no end marker",
        raw_file([struct.pack(">I", 3) + b"\x12\x01"]),
        False,
        "no end-of-record marker (0xFE) before the next record",
        0,
        18,
    ),
    (
        "record missing end marker before next",
        raw_file([struct.pack(">I", 3) + b"\x12\x01", struct.pack(">I", 1) + b"\xfe"]),
        False,
        "no end-of-record marker (0xFE) before the next record at offset 18",
        0,
        18,
    ),
]


@pytest.mark.parametrize(
    "data,strict,reason,index,offset",
    [c[1:] for c in CORRUPTIONS],
    ids=[c[0] for c in CORRUPTIONS],
)
def test_corrupt_input_raises_corrupt_file_error(data, strict, reason, index, offset):
    with pytest.raises(CorruptFileError) as info:
        with ReadStorage(io.BytesIO(data), strict=strict) as storage:
            list(storage)
    error = info.value
    assert reason in error.reason
    assert error.record_index == index
    if offset is not None:
        assert error.offset == offset
    assert isinstance(error, ValueError)
    assert error.path in str(error) and reason in str(error)


def test_corrupt_file_error_message_names_path_record_offset_and_reason(tmp_path):
    path = tmp_path / "bad.bin"
    path.write_bytes(one_record(b"\x0a"))
    with pytest.raises(CorruptFileError) as info:
        ReadStorage(path)[0]
    message = str(info.value)
    assert str(path) in message and "record 0" in message and "offset 16" in message
    assert "unknown field code 10" in message


def test_corrupt_file_error_survives_pickling_for_worker_processes():
    import pickle  # noqa: S403 - round trip of our own exception, as multiprocessing does

    error = CorruptFileError("f.bin", 3, 99, "why")
    clone = pickle.loads(pickle.dumps(error))  # noqa: S301
    assert (clone.path, clone.record_index, clone.offset, clone.reason) == ("f.bin", 3, 99, "why")


def test_corrupt_record_does_not_spoil_the_others():
    data = build([f_name("good"), b"\x0a"])
    with ReadStorage(io.BytesIO(data)) as storage:
        assert storage[0]["name"] == "good"
        with pytest.raises(CorruptFileError, match="unknown field code"):
            storage[1]
