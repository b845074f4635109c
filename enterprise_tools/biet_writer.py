"""Write SNS-BIET2020 files the public JLab reader can read (atomically, optionally gzipped).

``encode_storage`` turns record mappings into the format's bytes; ``write_storage`` writes them.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from enterprise_tools.atomic import atomic_path
from enterprise_tools.biet_format import (
    DESCR,
    END_RECORD,
    EOF_RECORD,
    EOF_RECORD_SIZE,
    HEADER,
    HEADER_SIZE,
    KINDS,
    NAME,
    NS_PER_S,
    SCALAR_PARAM,
    SCALAR_VALUE,
    TAG,
    TST,
    U8,
    U32,
    U32_MAX,
    UNIX_EPOCH,
    UNIXTST,
    WAVE_PARAM,
    WAVE_VALUE,
)

_RECORD_KEYS = ("name", "timestamp", "timestamp_ns", "tags", "description", "parameters", "value")
_DTYPE_KIND = {"u4": 0, "f8": 1, "u1": 2, "f4": 3}  # dtype kind + itemsize -> KINDS index


def _short_bytes(text: Any, index: int, what: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"record {index}: {what} must be a str, got {type(text).__name__}")
    raw = text.encode("utf-8")
    if len(raw) > 255:
        raise ValueError(
            f"record {index}: {what} {text[:40]!r}... is {len(raw)} bytes; at most 255 fit"
        )
    return U8.pack(len(raw)) + raw


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
        samples = value.astype(KINDS[kind].dtype, copy=False).tobytes()
        return True, kind, U32.pack(len(samples)) + samples
    if isinstance(value, bool | np.bool_):
        raise _unsupported(index, key, value)
    if isinstance(value, np.uint8):
        kind = 2
    elif isinstance(value, np.float32):
        kind = 3
    elif isinstance(value, float):  # includes np.float64
        kind = 1
    elif isinstance(value, int | np.integer):
        if not 0 <= int(value) <= U32_MAX:
            raise ValueError(
                f"record {index}: {key}={value} does not fit an unsigned 32-bit integer"
            )
        kind = 0
        value = int(value)
    else:
        raise _unsupported(index, key, value)
    return False, kind, KINDS[kind].scalar.pack(value)


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
        delta = moment - UNIX_EPOCH
        stamp = (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1000
    else:
        return None
    if stamp < 0:
        raise ValueError(
            f"record {index}: timestamp {stamp} ns is before 1970; it cannot be written"
        )
    if stamp // NS_PER_S > U32_MAX:
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
        parts.append(bytes([UNIXTST]) + TST.pack(*divmod(stamp, NS_PER_S)))
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
        parts.append(bytes([DESCR]) + U32.pack(len(raw)) + raw)
    parameters = record.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        raise ValueError(
            f"record {index}: parameters must be a mapping, got {type(parameters).__name__}"
        )
    for key, value in parameters.items():
        key_field = _short_bytes(key, index, f"parameter key {key!r}")
        is_wave, kind, payload = _encode_number(index, f"parameter {key!r}", value)
        code = (WAVE_PARAM if is_wave else SCALAR_PARAM) + kind
        parts.append(bytes([code]) + key_field)
        parts.append(payload)
    if record.get("value") is not None:
        is_wave, kind, payload = _encode_number(index, "value", record["value"])
        parts.append(bytes([(WAVE_VALUE if is_wave else SCALAR_VALUE) + kind]))
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
        chunks.append(U32.pack(size))
        chunks.extend(parts)
        position += 4 + size
    offsets.append(position)  # the EOF record
    chunks.append(EOF_RECORD)
    position += EOF_RECORD_SIZE
    offsets.append(position)  # unused entry: the epilog's own offset
    chunks.append(np.asarray(offsets, dtype=">u8").tobytes())
    chunks.append(U32.pack(len(offsets)))
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
