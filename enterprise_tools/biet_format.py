"""The SNS-BIET2020 byte layout (spec §1) and its errors: what the reader and the writer share.

Field codes, the numeric sample types, the epoch offsets and ``CorruptFileError``; no I/O here.
"""

from __future__ import annotations

import datetime as _dt
import struct
from typing import NamedTuple

import numpy as np

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
# waveform value 36-39; the last digit picks the sample type in KINDS (6 -> u32, ... 9 -> f32).
SCALAR_PARAM, SCALAR_VALUE, WAVE_PARAM, WAVE_VALUE = 6, 16, 26, 36
NUMERIC_CODES = frozenset(
    base + i for base in (SCALAR_PARAM, SCALAR_VALUE, WAVE_PARAM, WAVE_VALUE) for i in range(4)
)

# Seconds from the Unix epoch to the EPICS epoch (1990-01-01 UTC).
EPICS_EPOCH_OFFSET_S = 631_152_000
UNIX_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
GZIP_MAGIC = b"\x1f\x8b"
NS_PER_S = 1_000_000_000
U32_MAX = 0xFFFF_FFFF

U8 = struct.Struct(">B")
U32 = struct.Struct(">I")
TST = struct.Struct(">II")
EOF_RECORD = U32.pack(1) + bytes([END_FILE])
EOF_RECORD_SIZE = len(EOF_RECORD)


class Kind(NamedTuple):
    dtype: np.dtype  # big-endian on-disk dtype
    scalar: struct.Struct


# Index = field code minus its family base (6, 16, 26 or 36). 32-bit ints are unsigned,
# as the public reader decodes them.
KINDS = (
    Kind(np.dtype(">u4"), struct.Struct(">I")),
    Kind(np.dtype(">f8"), struct.Struct(">d")),
    Kind(np.dtype("u1"), struct.Struct(">B")),
    Kind(np.dtype(">f4"), struct.Struct(">f")),
)


def ns_to_datetime(timestamp_ns: int) -> _dt.datetime:
    return UNIX_EPOCH + _dt.timedelta(microseconds=timestamp_ns // 1000)


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
