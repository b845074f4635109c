"""The SNS-BIET2020 format layer under its historical name: re-exports the modules that do the work.

The format (spec §1 of ``sns-data-formats.md``) is split by job:

- ``biet_format``: the byte layout (header, field codes, sample types) and ``CorruptFileError``;
- ``biet_reader``: ``ReadStorage`` and ``decompress``, reading and validating files;
- ``biet_writer``: ``encode_storage`` and ``write_storage``, writing them atomically;
- ``sample_rules``: which pulses of a file are samples, and the ``SKIP_*`` ledger codes;
- ``trace_windows``: ``get_traces`` and ``pulse_windows``, the windows cut from those pulses.

Every name this module held before the split still imports from here (``__all__`` lists the
public ones; private helpers stay reachable for code written against the single module).
"""

from __future__ import annotations

# Every name the single module defined, from the module that now owns it: the public ones are
# listed in __all__, the private ones stay importable for code written against the old module.
from enterprise_tools.biet_format import (  # noqa: F401
    _EOF_RECORD,
    _EOF_RECORD_SIZE,
    _GZIP_MAGIC,
    _KINDS,
    _NS_PER_S,
    _NUMERIC_CODES,
    _SCALAR_PARAM,
    _SCALAR_VALUE,
    _TST,
    _U8,
    _U32,
    _U32_MAX,
    _UNIX_EPOCH,
    _WAVE_PARAM,
    _WAVE_VALUE,
    DESCR,
    END_FILE,
    END_RECORD,
    EPICS_EPOCH_OFFSET_S,
    EPICSTST,
    HEADER,
    HEADER_SIZE,
    NAME,
    TAG,
    UNIXTST,
    CorruptFileError,
    FileTooLargeError,
    _Kind,
    _ns_to_datetime,
)
from enterprise_tools.biet_reader import (  # noqa: F401
    ReadStorage,
    _gunzip,
    _load_bytes,
    _parse_record,
    _RecordDecoder,
    _Waveform,
    decompress,
)
from enterprise_tools.biet_writer import (  # noqa: F401
    _DTYPE_KIND,
    _RECORD_KEYS,
    _atomic_write_bytes,
    _encode_number,
    _encode_record,
    _short_bytes,
    _timestamp_ns,
    _unsupported,
    encode_storage,
    write_storage,
)
from enterprise_tools.sample_rules import (  # noqa: F401
    SKIP_FIRST_PULSE_TRIP,
    SKIP_LOW_BWIDTH,
    SKIP_MISLABELLED,
    SKIP_MISSING_TRACE,
    SKIP_NO_TRIP,
    SKIP_QUALITY,
    SKIP_SHORT_TRACE,
    SKIP_TIMESTAMP_MISMATCH,
    Skip,
    _alarm_matches,
    _describe,
    _group_pulses,
    _low_bwidth,
    _number,
    _Pick,
    _Pulse,
    _tag_rules,
    _triple_rules,
)
from enterprise_tools.trace_windows import (  # noqa: F401
    FilePulses,
    QualityCut,
    TraceSet,
    _check_get_traces_args,
    _quality_problem,
    _References,
    _trace_set,
    _window,
    get_traces,
    pulse_windows,
)

__all__ = [
    "HEADER",
    "HEADER_SIZE",
    "NAME",
    "UNIXTST",
    "EPICSTST",
    "TAG",
    "DESCR",
    "END_RECORD",
    "END_FILE",
    "EPICS_EPOCH_OFFSET_S",
    "SKIP_MISLABELLED",
    "SKIP_LOW_BWIDTH",
    "SKIP_FIRST_PULSE_TRIP",
    "SKIP_TIMESTAMP_MISMATCH",
    "SKIP_MISSING_TRACE",
    "SKIP_SHORT_TRACE",
    "SKIP_QUALITY",
    "SKIP_NO_TRIP",
    "CorruptFileError",
    "FileTooLargeError",
    "decompress",
    "ReadStorage",
    "encode_storage",
    "write_storage",
    "Skip",
    "TraceSet",
    "QualityCut",
    "get_traces",
    "FilePulses",
    "pulse_windows",
]
