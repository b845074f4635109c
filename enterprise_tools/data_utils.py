"""Read and write SNS-BIET2020 DCM waveform files, and pick training samples from them.

The format (spec §1 of ``sns-data-formats.md``): a 12-byte header, records made of one-byte
typed fields, an EOF record and an epilog of record offsets, all big-endian, optionally gzipped.
``ReadStorage`` gives random access through the epilog, ``write_storage`` writes files the
public JLab reader can read, and ``get_traces`` applies the dataset's sample rules.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import operator
import os
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from enterprise_tools.atomic import atomic_path

__all__ = [
    "CorruptFileError",
    "FileTooLargeError",
    "FilePulses",
    "QualityCut",
    "ReadStorage",
    "SKIP_FIRST_PULSE_TRIP",
    "SKIP_LOW_BWIDTH",
    "SKIP_MISLABELLED",
    "SKIP_MISSING_TRACE",
    "SKIP_NO_TRIP",
    "SKIP_QUALITY",
    "SKIP_SHORT_TRACE",
    "SKIP_TIMESTAMP_MISMATCH",
    "Skip",
    "TraceSet",
    "decompress",
    "get_traces",
    "pulse_windows",
    "encode_storage",
    "write_storage",
]

HEADER = b"SNS-BIET2020"
HEADER_SIZE = len(HEADER)

# Field codes (one byte each).
NAME = 1
UNIXTST = 2
EPICSTST = 3
TAG = 4
DESCR = 5
END_RECORD = 254
END_FILE = 255
# Numeric fields: scalar parameter 6-9, scalar value 16-19, waveform parameter 26-29,
# waveform value 36-39; the last digit picks the sample type in _KINDS (6 -> u32, ... 9 -> f32).
_SCALAR_PARAM, _SCALAR_VALUE, _WAVE_PARAM, _WAVE_VALUE = 6, 16, 26, 36
_NUMERIC_CODES = frozenset(
    base + i for base in (_SCALAR_PARAM, _SCALAR_VALUE, _WAVE_PARAM, _WAVE_VALUE) for i in range(4)
)

# Seconds from the Unix epoch to the EPICS epoch (1990-01-01 UTC).
EPICS_EPOCH_OFFSET_S = 631_152_000
_UNIX_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
_GZIP_MAGIC = b"\x1f\x8b"
_NS_PER_S = 1_000_000_000
_U32_MAX = 0xFFFF_FFFF

_U8 = struct.Struct(">B")
_U32 = struct.Struct(">I")
_TST = struct.Struct(">II")
_EOF_RECORD = _U32.pack(1) + bytes([END_FILE])
_EOF_RECORD_SIZE = len(_EOF_RECORD)


class _Kind(NamedTuple):
    dtype: np.dtype  # big-endian on-disk dtype
    scalar: struct.Struct


# Index = field code minus its family base (6, 16, 26 or 36). 32-bit ints are unsigned,
# as the public reader decodes them.
_KINDS = (
    _Kind(np.dtype(">u4"), struct.Struct(">I")),
    _Kind(np.dtype(">f8"), struct.Struct(">d")),
    _Kind(np.dtype("u1"), struct.Struct(">B")),
    _Kind(np.dtype(">f4"), struct.Struct(">f")),
)

SKIP_MISLABELLED = "mislabelled_normal_file"
SKIP_LOW_BWIDTH = "no_production_beam"
SKIP_FIRST_PULSE_TRIP = "trip_on_first_pulse"
SKIP_TIMESTAMP_MISMATCH = "pulse_records_out_of_order"
SKIP_MISSING_TRACE = "trace_missing"
SKIP_SHORT_TRACE = "trace_shorter_than_window"
SKIP_QUALITY = "failed_quality_cut"
SKIP_NO_TRIP = "anomaly_file_without_trip"


class CorruptFileError(ValueError):
    """A DCM file whose bytes do not follow the SNS-BIET2020 format.

    ``record_index`` is the data record being read (``None`` for the header, EOF record,
    epilog or gzip stream) and ``offset`` the byte offset in the uncompressed stream.
    """

    def __init__(self, path: str, record_index: int | None, offset: int | None, reason: str):
        self.path = path
        self.record_index = record_index
        self.offset = offset
        self.reason = reason
        where = "record " + ("-" if record_index is None else str(record_index))
        where += ", offset " + ("-" if offset is None else str(offset))
        super().__init__(f"corrupt SNS-BIET2020 file {path!r} ({where}): {reason}")

    def __reduce__(self):
        # Keeps the error picklable across worker processes (multiprocessing re-raises it).
        return (type(self), (self.path, self.record_index, self.offset, self.reason))


class FileTooLargeError(CorruptFileError):
    """A DCM file whose (decompressed) content is larger than the reader's cap."""

    def __init__(self, path: str, max_bytes: int):
        self.max_bytes = max_bytes
        super().__init__(path, None, None, f"content exceeds the cap of {max_bytes} bytes")

    def __reduce__(self):
        return (type(self), (self.path, self.max_bytes))


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------


class _Waveform(NamedTuple):
    """An undecoded waveform: where its samples lie in the uncompressed stream."""

    offset: int
    nbytes: int
    dtype: np.dtype

    @property
    def size(self) -> int:
        return self.nbytes // self.dtype.itemsize


def _ns_to_datetime(timestamp_ns: int) -> _dt.datetime:
    return _UNIX_EPOCH + _dt.timedelta(microseconds=timestamp_ns // 1000)


def _load_bytes(path_or_file: Any) -> tuple[bytes, str]:
    """Return the whole raw file content and a name for error messages."""
    if isinstance(path_or_file, str | os.PathLike):
        path = os.fspath(path_or_file)
        with open(path, "rb") as handle:
            return handle.read(), path
    if hasattr(path_or_file, "read"):
        raw = path_or_file.read()
        if not isinstance(raw, bytes | bytearray):
            raise TypeError(
                f"ReadStorage needs a binary file object; {path_or_file!r}.read() returned "
                f"{type(raw).__name__}. Open the file with mode 'rb'."
            )
        return bytes(raw), str(getattr(path_or_file, "name", "<file object>"))
    raise TypeError(
        "ReadStorage takes a path (str or os.PathLike) or a binary file object, "
        f"received {type(path_or_file).__name__}."
    )


def _gunzip(raw: bytes, path: str, max_bytes: int | None = None) -> bytes:
    """Decompress a (possibly multi-member) gzip stream in one go, as corruption-safe.

    With ``max_bytes``, a stream that inflates past it raises ``FileTooLargeError`` after
    inflating at most ``max_bytes + 1`` bytes (a small file cannot fill the memory).
    """
    members = []
    view = memoryview(raw)
    start = 0
    total = 0
    while True:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        limit = 0 if max_bytes is None else max_bytes - total + 1
        try:
            out = inflater.decompress(view[start:], limit)
        except zlib.error as exc:
            raise CorruptFileError(path, None, None, f"bad gzip stream: {exc}") from None
        total += len(out)
        if max_bytes is not None and total > max_bytes:
            raise FileTooLargeError(path, max_bytes)
        members.append(out)
        if not inflater.eof:
            raise CorruptFileError(path, None, None, "gzip stream is truncated")
        rest = inflater.unused_data
        if not rest.strip(b"\x00"):  # gzip itself ignores zero padding after the last member
            return b"".join(members)
        if rest[:2] != _GZIP_MAGIC:
            raise CorruptFileError(path, None, None, "trailing garbage after the gzip stream")
        start = len(raw) - len(rest)


def decompress(raw: bytes, path: str, max_bytes: int | None = None) -> bytes:
    """The SNS-BIET2020 bytes of a file's content: gunzipped when gzip, else as is.

    ``max_bytes`` caps the decompressed size (``FileTooLargeError``); ``path`` names the file
    in errors. Lets a caller that opened the file itself (to refuse FIFOs, say) keep the cap.
    """
    if raw[:2] == _GZIP_MAGIC:
        return _gunzip(raw, path, max_bytes)
    if max_bytes is not None and len(raw) > max_bytes:
        raise FileTooLargeError(path, max_bytes)
    return raw


class ReadStorage:
    """Random-access reader for one SNS-BIET2020 file (plain or gzip, detected by content).

    Args:
        path_or_file: a path (``str`` / ``os.PathLike``) or a binary file object, read from
            its current position.
        strict: when True, also report a record ``size`` field that disagrees with the
            record's length, a non-UTF-8 string and an epilog whose last entry is not the
            epilog's own offset as corruption (default False: tolerated, as the public reader).

    The whole (decompressed) file is held in memory; records are decoded on access.
    Damaged input raises ``CorruptFileError`` and nothing else.

    Example:
        >>> with ReadStorage("pulse.bin.gz") as storage:  # doctest: +SKIP
        ...     last = storage[-1]
        ...     print(len(storage), last["name"], last["value"].shape)
    """

    def __init__(self, path_or_file: Any, strict: bool = False):
        raw, self.path = _load_bytes(path_or_file)
        self.strict = strict
        if raw[:2] == _GZIP_MAGIC:
            raw = _gunzip(raw, self.path)
        self._data: bytes | None = raw
        self._offsets, self._eof_offset = self._read_epilog(raw)

    # -- epilog -----------------------------------------------------------------------

    def _corrupt(self, index: int | None, offset: int | None, reason: str) -> CorruptFileError:
        return CorruptFileError(self.path, index, offset, reason)

    def _read_epilog(self, data: bytes) -> tuple[list[int], int]:
        """Check header and epilog; return the data record offsets and the EOF record offset."""
        if data[:HEADER_SIZE] != HEADER:
            raise self._corrupt(
                None, 0, f"bad header {bytes(data[:HEADER_SIZE])!r}, expected {HEADER!r}"
            )
        total = len(data)
        smallest = HEADER_SIZE + _EOF_RECORD_SIZE + 4
        if total < smallest:
            raise self._corrupt(None, total, f"file of {total} bytes is too short for an epilog")
        (count,) = _U32.unpack_from(data, total - 4)
        if count < 2:
            raise self._corrupt(None, total - 4, f"epilog count {count} is below 2")
        epilog_start = total - 4 - 8 * count
        if epilog_start < HEADER_SIZE + _EOF_RECORD_SIZE:
            raise self._corrupt(
                None, total - 4, f"epilog count {count} is too large for a file of {total} bytes"
            )
        table = np.frombuffer(data, dtype=">u8", count=count, offset=epilog_start).tolist()
        offsets, eof_offset, last = table[:-2], table[-2], table[-1]
        if eof_offset + _EOF_RECORD_SIZE != epilog_start:
            raise self._corrupt(
                None,
                epilog_start,
                f"epilog puts the EOF record at {eof_offset}; it must end where the epilog "
                f"starts ({epilog_start})",
            )
        if data[eof_offset + 4] != END_FILE:
            raise self._corrupt(
                None, eof_offset + 4, "no end-of-file marker (0xFF) where the epilog says"
            )
        if self.strict and _U32.unpack_from(data, eof_offset)[0] != 1:
            raise self._corrupt(None, eof_offset, "EOF record size field is not 1")
        if self.strict and last != epilog_start:
            raise self._corrupt(
                None,
                total - 12,
                f"last epilog entry {last} is not the epilog offset {epilog_start}",
            )
        expected = HEADER_SIZE
        for index, offset in enumerate(offsets):
            # Each record needs at least its size field and end marker before the next one.
            if (
                offset < expected
                or offset + 5 > eof_offset
                or (index == 0 and offset != HEADER_SIZE)
            ):
                raise self._corrupt(
                    index,
                    offset,
                    f"epilog offset {offset} is out of range or not increasing "
                    f"(allowed {expected}..{eof_offset - 5})",
                )
            expected = offset + 5
        if not offsets and eof_offset != HEADER_SIZE:
            raise self._corrupt(
                None, eof_offset, "epilog lists no records but data precede the EOF record"
            )
        return offsets, eof_offset

    # -- container protocol -----------------------------------------------------------

    def __len__(self) -> int:
        return len(self._offsets)

    def __getitem__(self, index: int | slice) -> dict | list[dict]:
        if isinstance(index, slice):
            return [self._record(i, lazy=False) for i in range(*index.indices(len(self)))]
        return self._record(self._normalise_index(index), lazy=False)

    def __iter__(self) -> Iterator[dict]:
        for i in range(len(self)):
            yield self._record(i, lazy=False)

    def __enter__(self) -> ReadStorage:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Release the file content; later access raises ValueError."""
        self._data = None

    def _normalise_index(self, index: int) -> int:
        try:
            i = operator.index(index)
        except TypeError:
            raise TypeError(
                f"record index must be an int or a slice, not {type(index).__name__}"
            ) from None
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"record index {index} out of range for {n} records in {self.path!r}")
        return i

    # -- record decoding --------------------------------------------------------------

    def _buffer(self) -> bytes:
        if self._data is None:
            raise ValueError(f"ReadStorage for {self.path!r} is closed")
        return self._data

    def _record(self, index: int, lazy: bool) -> dict:
        """Decode record ``index``; with ``lazy`` waveforms stay ``_Waveform`` descriptors."""
        data = self._buffer()
        start = self._offsets[index]
        end = self._offsets[index + 1] if index + 1 < len(self._offsets) else self._eof_offset
        return _parse_record(self, data, index, start, end, lazy)

    def _decode_waveform(self, waveform: _Waveform) -> np.ndarray:
        """Decode a waveform descriptor to a native-byte-order array (a copy)."""
        array = np.frombuffer(
            self._buffer(), dtype=waveform.dtype, count=waveform.size, offset=waveform.offset
        )
        return array.astype(waveform.dtype.newbyteorder("="))

    def _decode_window(self, waveform: _Waveform, begin: int, length: int) -> np.ndarray:
        """Decode samples ``[begin, begin + length)`` of a waveform as float32."""
        return np.frombuffer(
            self._buffer(),
            dtype=waveform.dtype,
            count=length,
            offset=waveform.offset + begin * waveform.dtype.itemsize,
        ).astype(np.float32)


def _parse_record(
    storage: ReadStorage, data: bytes, index: int, start: int, end: int, lazy: bool
) -> dict:
    """Decode the record lying in ``data[start:end]`` (see ``_RecordDecoder``)."""
    return _RecordDecoder(storage, data, index, end, lazy).decode(start)


class _RecordDecoder:
    """Decodes the fields of one record, never reading past its end.

    Every length is checked against ``end`` (the next record's offset) before it is used, so a
    damaged length field can neither read past the record nor trigger a large allocation.
    """

    def __init__(self, storage: ReadStorage, data: bytes, index: int, end: int, lazy: bool):
        self.storage = storage
        self.data = data
        self.index = index
        self.end = end
        self.lazy = lazy

    def corrupt(self, offset: int, reason: str) -> CorruptFileError:
        return CorruptFileError(self.storage.path, self.index, offset, reason)

    def need(self, pos: int, n: int, what: str) -> None:
        if pos + n > self.end:
            left = self.end - pos
            raise self.corrupt(
                pos, f"{what} of {n} bytes runs past the end of the record ({left} left)"
            )

    def text(self, pos: int, n: int, what: str) -> str:
        self.need(pos, n, what)
        raw = self.data[pos : pos + n]
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            if self.storage.strict:
                raise self.corrupt(pos, f"{what} is not valid UTF-8") from None
            return raw.decode("utf-8", errors="replace")

    def short_text(self, pos: int, what: str) -> tuple[str, int]:
        """A u8-length-prefixed string; returns it and the position after it."""
        self.need(pos, 1, f"{what} length")
        n = self.data[pos]
        return self.text(pos + 1, n, what), pos + 1 + n

    def waveform(self, pos: int, kind: _Kind, what: str) -> tuple[Any, int]:
        self.need(pos, 4, f"{what} length")
        (nbytes,) = _U32.unpack_from(self.data, pos)
        self.need(pos + 4, nbytes, what)
        if nbytes % kind.dtype.itemsize:
            raise self.corrupt(
                pos,
                f"{what} byte length {nbytes} is not a multiple of the sample size "
                f"{kind.dtype.itemsize}",
            )
        wave = _Waveform(pos + 4, nbytes, kind.dtype)
        value = wave if self.lazy else self.storage._decode_waveform(wave)
        return value, pos + 4 + nbytes

    def number(self, code: int, pos: int, record: dict) -> int:
        """A numeric field (codes 6-9, 16-19, 26-29, 36-39); returns the position after it."""
        family = code - (code - 6) % 10
        kind = _KINDS[code - family]
        key = None
        if family in (_SCALAR_PARAM, _WAVE_PARAM):
            key, pos = self.short_text(pos, "parameter key")
        if family in (_WAVE_PARAM, _WAVE_VALUE):
            value, pos = self.waveform(pos, kind, f"waveform {key or 'value'}")
        else:
            self.need(pos, kind.scalar.size, f"{key or 'value'} scalar")
            (value,) = kind.scalar.unpack_from(self.data, pos)
            pos += kind.scalar.size
        if key is None:
            record["value"] = value
        else:
            record["parameters"][key] = value
        return pos

    def field(self, code: int, pos: int, record: dict) -> int:
        """Decode the payload of field ``code`` starting at ``pos``; return the next position."""
        if code == NAME:
            record["name"], pos = self.short_text(pos, "name")
        elif code == TAG:
            tag, pos = self.short_text(pos, "tag")
            record["tags"].append(tag)
        elif code == UNIXTST or code == EPICSTST:
            self.need(pos, 8, "timestamp")
            seconds, nanos = _TST.unpack_from(self.data, pos)
            if code == EPICSTST:
                seconds += EPICS_EPOCH_OFFSET_S
            record["timestamp_ns"] = seconds * _NS_PER_S + nanos
            pos += 8
        elif code == DESCR:
            self.need(pos, 4, "description length")
            (n,) = _U32.unpack_from(self.data, pos)
            record["description"] = self.text(pos + 4, n, "description")
            pos += 4 + n
        elif code in _NUMERIC_CODES:
            pos = self.number(code, pos, record)
        elif code == END_FILE:
            raise self.corrupt(pos - 1, "end-of-file marker (0xFF) inside a data record")
        else:
            raise self.corrupt(pos - 1, f"unknown field code {code}")
        return pos

    def decode(self, start: int) -> dict:
        record: dict[str, Any] = {
            "name": "",
            "timestamp": None,
            "timestamp_ns": None,
            "tags": [],
            "description": "",
            "parameters": {},
            "value": None,
        }
        (size,) = _U32.unpack_from(self.data, start)  # the epilog check left room for it
        pos = start + 4
        while True:
            if pos >= self.end:
                raise self.corrupt(
                    pos,
                    f"no end-of-record marker (0xFE) before the next record at offset {self.end}",
                )
            code = self.data[pos]
            if code == END_RECORD:
                pos += 1
                break
            pos = self.field(code, pos + 1, record)
        if pos != self.end:
            raise self.corrupt(
                pos, f"record ends at offset {pos} but the next record starts at {self.end}"
            )
        if self.storage.strict and size != pos - start - 4:
            raise self.corrupt(
                start, f"size field says {size} bytes but the record holds {pos - start - 4}"
            )
        if record["timestamp_ns"] is not None:
            record["timestamp"] = _ns_to_datetime(record["timestamp_ns"])
        return record


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------

_RECORD_KEYS = ("name", "timestamp", "timestamp_ns", "tags", "description", "parameters", "value")
_DTYPE_KIND = {"u4": 0, "f8": 1, "u1": 2, "f4": 3}  # dtype kind + itemsize -> _KINDS index


def _short_bytes(text: Any, index: int, what: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"record {index}: {what} must be a str, got {type(text).__name__}")
    raw = text.encode("utf-8")
    if len(raw) > 255:
        raise ValueError(
            f"record {index}: {what} {text[:40]!r}... is {len(raw)} bytes; at most 255 fit"
        )
    return _U8.pack(len(raw)) + raw


def _unsupported(index: int, key: str, value: Any) -> ValueError:
    described = type(value).__name__
    if isinstance(value, np.ndarray):
        described = f"array of dtype {value.dtype} and shape {value.shape}"
    return ValueError(
        f"record {index}: {key} has unsupported type {described}; expected int, float, "
        "numpy uint8/uint32/float32/float64 scalar, or a 1-D array of one of those dtypes "
        "(convert with .astype(...))"
    )


def _encode_number(index: int, key: str, value: Any) -> tuple[bool, int, bytes]:
    """Return (is_waveform, kind index, payload) for one parameter or value."""
    if isinstance(value, np.ndarray):
        kind = _DTYPE_KIND.get(value.dtype.kind + str(value.dtype.itemsize))
        if kind is None or value.ndim != 1:
            raise _unsupported(index, key, value)
        samples = value.astype(_KINDS[kind].dtype, copy=False).tobytes()
        return True, kind, _U32.pack(len(samples)) + samples
    if isinstance(value, bool | np.bool_):
        raise _unsupported(index, key, value)
    if isinstance(value, np.uint8):
        kind = 2
    elif isinstance(value, np.float32):
        kind = 3
    elif isinstance(value, float):  # includes np.float64
        kind = 1
    elif isinstance(value, int | np.integer):
        if not 0 <= int(value) <= _U32_MAX:
            raise ValueError(
                f"record {index}: {key}={value} does not fit an unsigned 32-bit integer"
            )
        kind = 0
        value = int(value)
    else:
        raise _unsupported(index, key, value)
    return False, kind, _KINDS[kind].scalar.pack(value)


def _timestamp_ns(index: int, record: Mapping) -> int | None:
    if record.get("timestamp_ns") is not None:
        stamp = record["timestamp_ns"]
        if isinstance(stamp, bool) or not isinstance(stamp, int | np.integer):
            raise ValueError(
                f"record {index}: timestamp_ns must be an int, got {type(stamp).__name__}"
            )
        stamp = int(stamp)
    elif record.get("timestamp") is not None:
        moment = record["timestamp"]
        if not isinstance(moment, _dt.datetime) or moment.utcoffset() is None:
            raise ValueError(
                f"record {index}: timestamp must be a timezone-aware datetime, got {moment!r}"
            )
        delta = moment - _UNIX_EPOCH
        stamp = (delta.days * 86_400 + delta.seconds) * _NS_PER_S + delta.microseconds * 1000
    else:
        return None
    if stamp < 0:
        raise ValueError(
            f"record {index}: timestamp {stamp} ns is before 1970; it cannot be written"
        )
    if stamp // _NS_PER_S > _U32_MAX:
        raise ValueError(
            f"record {index}: timestamp {stamp} ns is after 2106; it cannot be written"
        )
    return stamp


def _encode_record(index: int, record: Mapping) -> list[bytes]:
    """Return the fields of one record, end marker included (size field excluded)."""
    if not isinstance(record, Mapping):
        raise ValueError(f"record {index}: expected a mapping, got {type(record).__name__}")
    unknown = sorted(set(record) - set(_RECORD_KEYS))
    if unknown:
        raise ValueError(
            f"record {index}: unknown key(s) {unknown}; allowed keys are {list(_RECORD_KEYS)}"
        )
    parts = []
    if record.get("name") is not None:
        parts.append(bytes([NAME]) + _short_bytes(record["name"], index, "name"))
    stamp = _timestamp_ns(index, record)
    if stamp is not None:
        parts.append(bytes([UNIXTST]) + _TST.pack(*divmod(stamp, _NS_PER_S)))
    tags = record.get("tags") or []
    if isinstance(tags, str):
        raise ValueError(f"record {index}: tags must be a list of str, got the str {tags!r}")
    for tag in tags:
        parts.append(bytes([TAG]) + _short_bytes(tag, index, "tag"))
    description = record.get("description")
    if description:
        if not isinstance(description, str):
            raise ValueError(
                f"record {index}: description must be a str, got {type(description).__name__}"
            )
        raw = description.encode("utf-8")
        parts.append(bytes([DESCR]) + _U32.pack(len(raw)) + raw)
    parameters = record.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        raise ValueError(
            f"record {index}: parameters must be a mapping, got {type(parameters).__name__}"
        )
    for key, value in parameters.items():
        key_field = _short_bytes(key, index, f"parameter key {key!r}")
        is_wave, kind, payload = _encode_number(index, f"parameter {key!r}", value)
        code = (_WAVE_PARAM if is_wave else _SCALAR_PARAM) + kind
        parts.append(bytes([code]) + key_field)
        parts.append(payload)
    if record.get("value") is not None:
        is_wave, kind, payload = _encode_number(index, "value", record["value"])
        parts.append(bytes([(_WAVE_VALUE if is_wave else _SCALAR_VALUE) + kind]))
        parts.append(payload)
    parts.append(bytes([END_RECORD]))
    return parts


def encode_storage(records: Iterable[Mapping]) -> bytes:
    """Return the uncompressed SNS-BIET2020 bytes for ``records`` (see ``write_storage``)."""
    chunks = [HEADER]
    offsets = []
    position = HEADER_SIZE
    for index, record in enumerate(records):
        parts = _encode_record(index, record)
        size = sum(len(part) for part in parts)
        offsets.append(position)
        chunks.append(_U32.pack(size))
        chunks.extend(parts)
        position += 4 + size
    offsets.append(position)  # the EOF record
    chunks.append(_EOF_RECORD)
    position += _EOF_RECORD_SIZE
    offsets.append(position)  # unused entry: the epilog's own offset
    chunks.append(np.asarray(offsets, dtype=">u8").tobytes())
    chunks.append(_U32.pack(len(offsets)))
    return b"".join(chunks)


def write_storage(
    path: str | os.PathLike, records: Iterable[Mapping], *, compresslevel: int = 6
) -> None:
    """Write ``records`` as one SNS-BIET2020 file, gzip-compressed when ``path`` ends in ".gz".

    Args:
        path: destination; written atomically (temporary file in the same folder, then rename).
        records: mappings with the keys ``ReadStorage`` returns. ``timestamp_ns`` (int) or
            ``timestamp`` (tz-aware datetime) gives the time, written as UNIXTST. Python int
            -> u32, float -> f64, ``np.uint8`` -> u8, ``np.float32`` -> f32; 1-D arrays of
            dtype uint32 / float64 / uint8 / float32 become waveforms.
        compresslevel: gzip level 0-9 (default 6). The gzip header carries no file name and
            mtime 0, so the same records always give the same bytes.

    Raises:
        ValueError: naming the record index and key of an unsupported or out-of-range value.
    """
    path = os.fspath(path)
    data = encode_storage(records)
    if str(path).endswith(".gz"):
        data = gzip.compress(data, compresslevel=compresslevel, mtime=0)
    _atomic_write_bytes(path, data)


def _atomic_write_bytes(path: str, data: bytes) -> None:
    with atomic_path(os.path.abspath(path)) as tmp:
        tmp.write_bytes(data)


# --------------------------------------------------------------------------------------
# Training samples (spec §1 "What counts as a training sample")
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Skip:
    """One skipped file or pulse, for the data ledger."""

    reason: str  # one of the SKIP_* codes
    detail: str  # names the record / timestamp
    scope: str  # "file" or "pulse"


@dataclass
class TraceSet:
    """The samples of one file: windows, their pulse timestamps and what was skipped.

    With ``get_traces(..., references=K)`` each sample also carries the windows of the K
    well-formed, non-tripping pulses just before it in the same file (oldest first,
    right-aligned: slot K-1 is the pulse immediately before; empty slots are zeros, with
    timestamp -1). Left as None they are filled with K = 0 arrays.
    """

    traces: np.ndarray  # float32 [n, shift]
    timestamps_ns: np.ndarray  # int64 [n]
    skipped: list[Skip] = field(default_factory=list)
    references: np.ndarray | None = None  # float32 [n, K, shift]
    reference_count: np.ndarray | None = None  # int16 [n]: filled slots (the last ones)
    reference_timestamp_ns: np.ndarray | None = None  # int64 [n, K], -1 for empty slots

    def __post_init__(self):
        n, shift = len(self.timestamps_ns), int(np.shape(self.traces)[-1])
        if self.references is None:
            self.references = np.zeros((n, 0, shift), dtype=np.float32)
        if self.reference_timestamp_ns is None:
            self.reference_timestamp_ns = np.full((n, self.references.shape[1]), -1, np.int64)
        if self.reference_count is None:
            self.reference_count = (self.reference_timestamp_ns >= 0).sum(axis=1).astype(np.int16)


@dataclass(frozen=True)
class QualityCut:
    """JLab's beam-quality cut on the ``trace`` window: peaks, median and first quartile."""

    min_peaks: int = 100
    min_median: float = 0.02
    max_q1: float = 0.0075
    trace: str = "Trace1"

    def __post_init__(self):
        if self.min_peaks < 0 or not self.trace:
            raise ValueError(
                f"QualityCut needs min_peaks >= 0 and a trace name, got min_peaks={self.min_peaks}, "
                f"trace={self.trace!r}"
            )

    def check(self, window: np.ndarray) -> str | None:
        """Return why ``window`` fails the cut, or None when it passes."""
        from scipy.signal import find_peaks  # only needed when a cut is asked for

        peaks, _ = find_peaks(window, distance=75, height=0.002)
        median = float(np.median(window))
        q1 = float(np.percentile(window, 25))
        if len(peaks) >= self.min_peaks and median >= self.min_median and q1 <= self.max_q1:
            return None
        return (
            f"{self.trace} window has {len(peaks)} peaks (need >= {self.min_peaks}), median "
            f"{median:.4g} (need >= {self.min_median}), first quartile {q1:.4g} "
            f"(need <= {self.max_q1})"
        )


class _Pick(NamedTuple):
    """A sample to extract: the var_id record, the time it is filed under, its pulse's records.

    ``position`` is the pulse's index in the file's pulse list (triple rules; None under the
    tag rules, whose files have no in-file references).
    """

    index: int
    timestamp_ns: int
    pulse: tuple[int, ...]
    position: int | None = None


@dataclass
class _Pulse:
    records: tuple[int, ...]
    timestamp_ns: int | None
    trace_index: int | None  # the var_id record when the pulse is well formed
    alarm: float | None
    problem: Skip | None = None  # why the pulse cannot give a sample


def _describe(heads: list[dict], index: int) -> str:
    stamp = heads[index]["timestamp_ns"]
    when = "no timestamp" if stamp is None else f"{_ns_to_datetime(stamp).isoformat()} ({stamp} ns)"
    return f"record {index} {heads[index]['name']!r} at {when}"


def _number(storage: ReadStorage, value: Any, reduce: Callable) -> float | None:
    """A scalar parameter as a number; waveform parameters are reduced (min / max)."""
    if isinstance(value, _Waveform):
        array = storage._decode_waveform(value)
        return float(reduce(array)) if array.size else None
    return float(value) if isinstance(value, int | float) else None


def _alarm_matches(value: float | None, alarm: int) -> bool:
    if value is None or value == 0:
        return False
    return alarm == -1 or value == alarm


def _group_pulses(storage: ReadStorage, heads: list[dict], var_id: str) -> list[_Pulse]:
    """Group consecutive records sharing a timestamp into pulses and flag malformed ones.

    A well-formed pulse holds exactly one status record and exactly one record per trace
    name (``Trace1``, ``Trace2``, ``var_id``: those the file uses). A lone group with one
    status record but a trace missing is a pulse with a missing trace. Other runs of
    malformed groups are out-of-order pulses: one skipped pulse per status record in the run
    (at least one), which resynchronises on the next well-formed group.
    """
    suffixes = [
        s
        for s in dict.fromkeys(("Trace1", "Trace2", var_id))
        if any(head["name"].endswith(s) for head in heads)
    ]
    groups: list[list[int]] = []
    for i, head in enumerate(heads):
        stamp = head["timestamp_ns"]
        if groups and stamp is not None and heads[groups[-1][0]]["timestamp_ns"] == stamp:
            groups[-1].append(i)
        else:
            groups.append([i])

    def statuses_of(records) -> list[int]:
        return [i for i in records if "Alarm" in heads[i]["parameters"]]

    def counts_of(group) -> dict[str, int]:
        return {s: sum(heads[i]["name"].endswith(s) for i in group) for s in suffixes}

    def alarm_of(status: int) -> float | None:
        return _number(storage, heads[status]["parameters"]["Alarm"], np.max)

    pulses: list[_Pulse] = []
    bad_run: list[list[int]] = []

    def flush_bad_run() -> None:
        records = tuple(i for group in bad_run for i in group)
        statuses = statuses_of(records)
        counts = counts_of(records)
        if len(bad_run) == 1 and len(statuses) == 1 and max(counts.values(), default=0) <= 1:
            missing = [f"*{s}" for s, n in counts.items() if n == 0]
            detail = (
                f"pulse of {_describe(heads, statuses[0])} has no record named {', '.join(missing)}"
            )
            skip = Skip(SKIP_MISSING_TRACE, detail, "pulse")
            pulses.append(
                _Pulse(
                    records, heads[statuses[0]]["timestamp_ns"], None, alarm_of(statuses[0]), skip
                )
            )
        else:
            for anchor in statuses or [records[0]]:
                detail = (
                    f"pulse of {_describe(heads, anchor)}: records {list(records)} do not form "
                    "(Trace1, Trace2, status) triples sharing one timestamp"
                )
                alarm = alarm_of(anchor) if anchor in statuses else None
                pulses.append(
                    _Pulse(
                        records,
                        heads[anchor]["timestamp_ns"],
                        None,
                        alarm,
                        Skip(SKIP_TIMESTAMP_MISMATCH, detail, "pulse"),
                    )
                )
        bad_run.clear()

    for group in groups:
        statuses = statuses_of(group)
        well_formed = (
            len(statuses) == 1
            and heads[group[0]]["timestamp_ns"] is not None
            and all(n == 1 for n in counts_of(group).values())
            and var_id in suffixes
        )
        if not well_formed:
            bad_run.append(group)
            continue
        if bad_run:
            flush_bad_run()
        trace = next(i for i in group if heads[i]["name"].endswith(var_id))
        pulses.append(
            _Pulse(tuple(group), heads[group[0]]["timestamp_ns"], trace, alarm_of(statuses[0]))
        )
    if bad_run:
        flush_bad_run()
    return pulses


def _triple_rules(
    storage: ReadStorage, heads: list[dict], var_id: str, alarm: int
) -> tuple[list[_Pick], list[Skip], list[_Pulse]]:
    """Samples of a file with status records (spec §1); a skip is logged when a sample is lost.

    Also returns the file's pulses, where the in-file references are looked up.
    """
    if not any(head["name"].endswith(var_id) for head in heads):
        return [], [Skip(SKIP_MISSING_TRACE, f"file has no record named *{var_id}", "file")], []
    pulses = _group_pulses(storage, heads, var_id)
    if alarm == 0:
        for i, head in enumerate(heads):
            value = head["parameters"].get("Alarm")
            if value is not None and _number(storage, value, np.max):
                return [], [
                    Skip(
                        SKIP_MISLABELLED,
                        f"normal file holds a pulse with Alarm={value!r}: {_describe(heads, i)}",
                        "file",
                    )
                ], pulses
        picks = [
            _Pick(p.trace_index, p.timestamp_ns, p.records, k)
            for k, p in enumerate(pulses)
            if p.problem is None
        ]
        return picks, [p.problem for p in pulses if p.problem is not None], pulses

    picks: list[_Pick] = []
    skipped: list[Skip] = []
    logged: set[int] = set()

    def log(k: int) -> None:
        if k not in logged:
            logged.add(k)
            skipped.append(pulses[k].problem)

    trips = [k for k, pulse in enumerate(pulses) if _alarm_matches(pulse.alarm, alarm)]
    if not trips:
        wanted = "any non-zero Alarm" if alarm == -1 else f"Alarm={alarm}"
        return [], [Skip(SKIP_NO_TRIP, f"anomaly file has no pulse with {wanted}", "file")], pulses
    for k in trips:
        trip = pulses[k]
        if trip.problem is not None:
            log(k)
        elif k == 0:
            detail = f"trip on the file's first pulse has no precursor: {_describe(heads, trip.records[0])}"
            skipped.append(Skip(SKIP_FIRST_PULSE_TRIP, detail, "pulse"))
        elif pulses[k - 1].problem is not None:
            log(k - 1)
        else:
            before = pulses[k - 1]
            picks.append(_Pick(before.trace_index, before.timestamp_ns, before.records, k - 1))
    return picks, skipped, pulses


def _tag_rules(heads: list[dict], var_id: str, alarm: int) -> tuple[list[_Pick], list[Skip]]:
    """Samples of an older file without status records: its ``Before``-tagged var_id traces."""
    picks: list[_Pick] = []
    skipped: list[Skip] = []
    for i, head in enumerate(heads):
        if head["name"].endswith(var_id) and "Before" in head["tags"]:
            stamp = head["timestamp_ns"]
            if stamp is None:
                skipped.append(
                    Skip(
                        SKIP_TIMESTAMP_MISMATCH,
                        f"{_describe(heads, i)} is tagged 'Before' but has no timestamp",
                        "pulse",
                    )
                )
                continue
            pulse = tuple(
                j
                for j, other in enumerate(heads)
                if other["timestamp_ns"] == stamp and "Before" in other["tags"]
            )
            picks.append(_Pick(i, stamp, pulse))
    if picks or skipped:
        return picks, skipped
    if alarm != 0 and not any("During" in head["tags"] for head in heads):
        return [], [
            Skip(SKIP_NO_TRIP, "anomaly file has no record tagged 'During' or 'Before'", "file")
        ]
    return [], [
        Skip(SKIP_MISSING_TRACE, f"file has no record named *{var_id} tagged 'Before'", "file")
    ]


def _low_bwidth(storage: ReadStorage, heads: list[dict], cut: float | None) -> Skip | None:
    if cut is None:
        return None
    for i, head in enumerate(heads):
        value = head["parameters"].get("bWidth")
        width = None if value is None else _number(storage, value, np.min)
        if width is not None and width < cut:
            return Skip(
                SKIP_LOW_BWIDTH, f"bWidth={width:g} us < {cut:g} in {_describe(heads, i)}", "file"
            )
    return None


def _check_get_traces_args(begin, shift, alarm, bwidth_cut, quality_cut) -> None:
    if isinstance(begin, bool) or not isinstance(begin, int) or begin < 0:
        raise ValueError(f"begin must be an int >= 0, got {begin!r}")
    if isinstance(shift, bool) or not isinstance(shift, int) or shift <= 0:
        raise ValueError(f"shift must be an int > 0, got {shift!r}")
    if isinstance(alarm, bool) or not isinstance(alarm, int) or alarm < -1:
        raise ValueError(
            f"alarm must be 0 (normal file), -1 (any trip) or an alarm code > 0, got {alarm!r}"
        )
    if bwidth_cut is not None and not isinstance(bwidth_cut, int | float):
        raise ValueError(f"bwidth_cut must be a number or None, got {bwidth_cut!r}")
    if quality_cut is not None and not isinstance(quality_cut, QualityCut):
        raise ValueError(
            f"quality_cut must be a QualityCut or None, got {type(quality_cut).__name__}"
        )


def _window(storage, heads, index, begin, shift) -> tuple[np.ndarray | None, Skip | None]:
    wave = heads[index]["value"]
    if not isinstance(wave, _Waveform):
        return None, Skip(
            SKIP_MISSING_TRACE, f"{_describe(heads, index)} holds no waveform", "pulse"
        )
    if wave.size < begin + shift:
        detail = f"{_describe(heads, index)} has {wave.size} samples, window needs {begin + shift}"
        return None, Skip(SKIP_SHORT_TRACE, detail, "pulse")
    return storage._decode_window(wave, begin, shift), None


def get_traces(
    path: Any,
    var_id: str = "Trace2",
    begin: int = 3000,
    shift: int = 10000,
    alarm: int = 0,
    bwidth_cut: float | None = 900,
    quality_cut: QualityCut | None = None,
    references: int = 0,
) -> TraceSet:
    """Extract the training windows ``[begin, begin + shift)`` of one DCM file (spec §1 rules).

    Args:
        path: the file (plain or gzip, by content) or a binary file object.
        var_id: suffix of the waveform record name that holds the sample trace.
        begin, shift: the window, in samples.
        alarm: 0 for a normal file; an alarm code (48 = errant beam) or -1 (any non-zero
            alarm) for an anomaly file, whose samples are the pulses before the trips.
        bwidth_cut: a file with any ``bWidth`` below it is skipped whole; None disables it.
        quality_cut: optional JLab beam-quality cut on the sampled pulse's ``Trace1`` window.
        references: K, how many in-file reference pulses to return per sample (0: none).
            A reference is a well-formed pulse of the same file, earlier than the sample's
            pulse (strictly earlier timestamp), whose ``Alarm`` is 0 and whose trace holds
            the window; the K nearest are taken. No quality cut applies to references (they
            show the machine as it was). Tag-rule files (``Before``/``During``) have none.

    Returns:
        ``TraceSet`` with float32 windows, their int64 pulse timestamps (ns, UTC) and every
        skipped file or pulse with its reason, plus the references (K = ``references``).
        ``CorruptFileError`` propagates.
    """
    _check_get_traces_args(begin, shift, alarm, bwidth_cut, quality_cut)
    if isinstance(references, bool) or not isinstance(references, int) or references < 0:
        raise ValueError(f"references must be an int >= 0, got {references!r}")
    with ReadStorage(path) as storage:
        # First pass decodes names, times and parameters only; waveforms stay descriptors.
        heads = [storage._record(i, lazy=True) for i in range(len(storage))]
        low = _low_bwidth(storage, heads, bwidth_cut)
        if low is not None:
            return _trace_set([], [], [low], shift, references)
        pulses: list[_Pulse] = []
        if any("Alarm" in head["parameters"] for head in heads):
            picks, skipped, pulses = _triple_rules(storage, heads, var_id, alarm)
        else:
            picks, skipped = _tag_rules(heads, var_id, alarm)
        windows, stamps = [], []
        refs = _References(storage, heads, pulses, references, begin, shift)
        for pick in picks:
            window, problem = _window(storage, heads, pick.index, begin, shift)
            if problem is None and quality_cut is not None:
                problem = _quality_problem(storage, heads, pick, begin, shift, quality_cut)
            if problem is not None:
                skipped.append(problem)
                continue
            windows.append(window)
            stamps.append(pick.timestamp_ns)
            refs.add(pick)
    return _trace_set(windows, stamps, skipped, shift, references, refs)


class _References:
    """The in-file references of the picked samples (see ``get_traces(references=K)``)."""

    def __init__(self, storage, heads, pulses: list[_Pulse], k: int, begin: int, shift: int):
        self.storage, self.heads, self.pulses = storage, heads, pulses
        self.k, self.begin, self.shift = k, begin, shift
        self.windows: list[np.ndarray] = []  # [K, shift] per sample
        self.stamps: list[list[int]] = []
        self._decoded: dict[int, np.ndarray | None] = {}  # pulse position -> window

    def _usable(self, position: int) -> np.ndarray | None:
        """The window of pulse ``position`` when it may serve as a reference, else None."""
        if position not in self._decoded:
            pulse = self.pulses[position]
            window = None
            # A tripping pulse (any non-zero Alarm) or one whose Alarm cannot be read is no
            # picture of normal beam; a malformed pulse has no trustworthy trace.
            if pulse.problem is None and pulse.alarm == 0:
                window, problem = _window(
                    self.storage, self.heads, pulse.trace_index, self.begin, self.shift
                )
                window = None if problem is not None else window
            self._decoded[position] = window
        return self._decoded[position]

    def add(self, pick: _Pick) -> None:
        if self.k == 0:
            return
        windows = np.zeros((self.k, self.shift), dtype=np.float32)
        stamps = [-1] * self.k
        slot = self.k - 1
        position = -1 if pick.position is None else pick.position - 1
        while slot >= 0 and position >= 0:
            pulse = self.pulses[position]
            if pulse.timestamp_ns is not None and pulse.timestamp_ns < pick.timestamp_ns:
                window = self._usable(position)
                if window is not None:
                    windows[slot] = window
                    stamps[slot] = pulse.timestamp_ns
                    slot -= 1
            position -= 1
        self.windows.append(windows)
        self.stamps.append(stamps)


def _quality_problem(storage, heads, pick: _Pick, begin, shift, cut: QualityCut) -> Skip | None:
    candidates = [i for i in pick.pulse if heads[i]["name"].endswith(cut.trace)]
    if not candidates:
        detail = (
            f"pulse of {_describe(heads, pick.index)} has no {cut.trace} record for the quality cut"
        )
        return Skip(SKIP_MISSING_TRACE, detail, "pulse")
    window, problem = _window(storage, heads, candidates[0], begin, shift)
    if problem is not None:
        return problem
    reason = cut.check(window)
    if reason is None:
        return None
    return Skip(SKIP_QUALITY, f"pulse of {_describe(heads, pick.index)}: {reason}", "pulse")


def _trace_set(
    windows: list, stamps: list, skipped: list[Skip], shift: int, k: int = 0,
    refs: _References | None = None,
) -> TraceSet:
    traces = np.stack(windows) if windows else np.empty((0, shift), dtype=np.float32)
    n = len(stamps)
    if refs is not None and k and n:
        references = np.stack(refs.windows)
        reference_stamps = np.asarray(refs.stamps, dtype=np.int64)
    else:
        references = np.zeros((n, k, shift), dtype=np.float32)
        reference_stamps = np.full((n, k), -1, dtype=np.int64)
    return TraceSet(
        traces, np.asarray(stamps, dtype=np.int64), skipped, references,
        (reference_stamps >= 0).sum(axis=1).astype(np.int16), reference_stamps,
    )


@dataclass
class FilePulses:
    """Every well-formed pulse of one file, in file order, for live scoring."""

    traces: np.ndarray  # float32 [n, shift]
    timestamps_ns: np.ndarray  # int64 [n]
    alarms: np.ndarray  # int64 [n], the status record's Alarm (0 when none / tag-format file)
    skipped: list[Skip] = field(default_factory=list)


def pulse_windows(
    path: Any,
    var_id: str = "Trace2",
    begin: int = 3000,
    shift: int = 10000,
    bwidth_cut: float | None = 900,
) -> FilePulses:
    """The window of EVERY well-formed pulse of one DCM file, with its alarm code.

    ``get_traces`` picks training samples (a normal file's pulses, the pulse before each trip);
    live scoring instead judges every pulse as it arrives and learns its label only from the
    pulse after it. The file rules are the same (``bWidth`` cut, pulse grouping and malformed
    pulses as in ``get_traces``); an older Before/During file gives its ``Before`` pulses with
    alarm 0. ``CorruptFileError`` propagates.
    """
    _check_get_traces_args(begin, shift, 0, bwidth_cut, None)
    with ReadStorage(path) as storage:
        heads = [storage._record(i, lazy=True) for i in range(len(storage))]
        low = _low_bwidth(storage, heads, bwidth_cut)
        if low is not None:
            return FilePulses(np.empty((0, shift), np.float32), np.empty(0, np.int64),
                            np.empty(0, np.int64), [low])
        skipped: list[Skip] = []
        if any("Alarm" in head["parameters"] for head in heads):
            if not any(head["name"].endswith(var_id) for head in heads):
                picks = []
                skipped.append(Skip(SKIP_MISSING_TRACE, f"file has no record named *{var_id}", "file"))
            else:
                pulses = _group_pulses(storage, heads, var_id)
                skipped += [p.problem for p in pulses if p.problem is not None]
                picks = [(p.trace_index, p.timestamp_ns, int(p.alarm or 0))
                         for p in pulses if p.problem is None]
        else:
            tagged, tag_skips = _tag_rules(heads, var_id, 0)
            skipped += tag_skips
            picks = [(pick.index, pick.timestamp_ns, 0) for pick in tagged]
        windows, stamps, alarms = [], [], []
        for index, stamp, alarm in picks:
            window, problem = _window(storage, heads, index, begin, shift)
            if problem is not None:
                skipped.append(problem)
                continue
            windows.append(window)
            stamps.append(stamp)
            alarms.append(alarm)
    traces = np.stack(windows) if windows else np.empty((0, shift), dtype=np.float32)
    return FilePulses(traces, np.asarray(stamps, np.int64), np.asarray(alarms, np.int64), skipped)
