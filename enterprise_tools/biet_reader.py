"""Read SNS-BIET2020 files: gzip detection, epilog check and random-access record decoding.

``ReadStorage`` holds one file's (decompressed) bytes and decodes records on access; every
damaged byte becomes a ``CorruptFileError`` naming the file, record and offset.
"""

from __future__ import annotations

import operator
import os
import zlib
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from enterprise_tools.biet_format import (
    DESCR,
    END_FILE,
    END_RECORD,
    EOF_RECORD_SIZE,
    EPICS_EPOCH_OFFSET_S,
    EPICSTST,
    GZIP_MAGIC,
    HEADER,
    HEADER_SIZE,
    KINDS,
    NAME,
    NS_PER_S,
    NUMERIC_CODES,
    SCALAR_PARAM,
    TAG,
    TST,
    U32,
    UNIXTST,
    WAVE_PARAM,
    WAVE_VALUE,
    CorruptFileError,
    FileTooLargeError,
    Kind,
    ns_to_datetime,
)


class Waveform(NamedTuple):
    """An undecoded waveform: where its samples lie in the uncompressed stream."""

    offset: int
    nbytes: int
    dtype: np.dtype

    @property
    def size(self) -> int:
        return self.nbytes // self.dtype.itemsize


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
    """Decompress a (possibly multi-member) gzip stream, as corruption-safe.

    Inflates in 16 MiB steps; with ``max_bytes``, a stream that inflates past it raises
    ``FileTooLargeError`` holding at most ``max_bytes`` plus one step (a small file cannot
    fill the memory, and zlib's growing output buffer never doubles it).
    """
    members = []
    view = memoryview(raw)
    start = 0
    total = 0
    while True:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        data = view[start:]
        while not inflater.eof:
            try:
                out = inflater.decompress(data, _GUNZIP_STEP)
            except zlib.error as exc:
                raise CorruptFileError(path, None, None, f"bad gzip stream: {exc}") from None
            total += len(out)
            if max_bytes is not None and total > max_bytes:
                raise FileTooLargeError(path, max_bytes)
            members.append(out)
            data = inflater.unconsumed_tail
            if not out and not data:
                break
        if not inflater.eof:
            raise CorruptFileError(path, None, None, "gzip stream is truncated")
        rest = inflater.unused_data
        if not rest.strip(b"\x00"):  # gzip itself ignores zero padding after the last member
            return members[0] if len(members) == 1 else b"".join(members)
        if rest[:2] != GZIP_MAGIC:
            raise CorruptFileError(path, None, None, "trailing garbage after the gzip stream")
        start = len(raw) - len(rest)


_GUNZIP_STEP = 1 << 24


def decompress(raw: bytes, path: str, max_bytes: int | None = None) -> bytes:
    """The SNS-BIET2020 bytes of a file's content: gunzipped when gzip, else as is.

    ``max_bytes`` caps the decompressed size (``FileTooLargeError``); ``path`` names the file
    in errors. Lets a caller that opened the file itself (to refuse FIFOs, say) keep the cap.
    """
    if raw[:2] == GZIP_MAGIC:
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
        if raw[:2] == GZIP_MAGIC:
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
        smallest = HEADER_SIZE + EOF_RECORD_SIZE + 4
        if total < smallest:
            raise self._corrupt(None, total, f"file of {total} bytes is too short for an epilog")
        (count,) = U32.unpack_from(data, total - 4)
        if count < 2:
            raise self._corrupt(None, total - 4, f"epilog count {count} is below 2")
        epilog_start = total - 4 - 8 * count
        if epilog_start < HEADER_SIZE + EOF_RECORD_SIZE:
            raise self._corrupt(
                None, total - 4, f"epilog count {count} is too large for a file of {total} bytes"
            )
        table = np.frombuffer(data, dtype=">u8", count=count, offset=epilog_start).tolist()
        offsets, eof_offset, last = table[:-2], table[-2], table[-1]
        if eof_offset + EOF_RECORD_SIZE != epilog_start:
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
        if self.strict and U32.unpack_from(data, eof_offset)[0] != 1:
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
        """Decode record ``index``; with ``lazy`` waveforms stay ``Waveform`` descriptors."""
        data = self._buffer()
        start = self._offsets[index]
        end = self._offsets[index + 1] if index + 1 < len(self._offsets) else self._eof_offset
        return _parse_record(self, data, index, start, end, lazy)

    def _decode_waveform(self, waveform: Waveform) -> np.ndarray:
        """Decode a waveform descriptor to a native-byte-order array (a copy)."""
        array = np.frombuffer(
            self._buffer(), dtype=waveform.dtype, count=waveform.size, offset=waveform.offset
        )
        return array.astype(waveform.dtype.newbyteorder("="))

    def _decode_window(self, waveform: Waveform, begin: int, length: int) -> np.ndarray:
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

    def waveform(self, pos: int, kind: Kind, what: str) -> tuple[Any, int]:
        self.need(pos, 4, f"{what} length")
        (nbytes,) = U32.unpack_from(self.data, pos)
        self.need(pos + 4, nbytes, what)
        if nbytes % kind.dtype.itemsize:
            raise self.corrupt(
                pos,
                f"{what} byte length {nbytes} is not a multiple of the sample size "
                f"{kind.dtype.itemsize}",
            )
        wave = Waveform(pos + 4, nbytes, kind.dtype)
        value = wave if self.lazy else self.storage._decode_waveform(wave)
        return value, pos + 4 + nbytes

    def number(self, code: int, pos: int, record: dict) -> int:
        """A numeric field (codes 6-9, 16-19, 26-29, 36-39); returns the position after it."""
        family = code - (code - 6) % 10
        kind = KINDS[code - family]
        key = None
        if family in (SCALAR_PARAM, WAVE_PARAM):
            key, pos = self.short_text(pos, "parameter key")
        if family in (WAVE_PARAM, WAVE_VALUE):
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
            seconds, nanos = TST.unpack_from(self.data, pos)
            if code == EPICSTST:
                seconds += EPICS_EPOCH_OFFSET_S
            record["timestamp_ns"] = seconds * NS_PER_S + nanos
            pos += 8
        elif code == DESCR:
            self.need(pos, 4, "description length")
            (n,) = U32.unpack_from(self.data, pos)
            record["description"] = self.text(pos + 4, n, "description")
            pos += 4 + n
        elif code in NUMERIC_CODES:
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
        (size,) = U32.unpack_from(self.data, start)  # the epilog check left room for it
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
            record["timestamp"] = ns_to_datetime(record["timestamp_ns"])
        return record
