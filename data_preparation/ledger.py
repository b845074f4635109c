"""The data ledger: every file or pulse the data pipeline skipped, with the reason why.

Nothing in the pipeline is dropped silently. The loader, the settings join, the production filter
and the split each add what they removed here, and the ledger travels with the samples into the
run folder (`data_ledger.json`) and the report.

Reasons used by `data_preparation` (besides the `get_traces` skip codes of
`enterprise_tools.sample_rules`, which are recorded as they come):

* `corrupt_file`: the file could not be decoded (the reader's message is the detail).
* `not_a_dcm_file`: a `.gz`/`.bin` file that is not an `SNS-BIET2020` stream.
* `unlabelled_folder`: a data file under neither a "normal" nor an "anomal" folder.
* `no_settings`: a pulse earlier than the first beam-settings row.
* `non_production`: a pulse whose settings fail the production-beam filter.
* `gap_dropped`: a pulse within `split.gap_seconds` of a split boundary.
* `no_reference`: a sample with fewer than `reference.min_count` reference pulses (none
  earlier in its file, none among the earlier normal samples of its configuration group).
* `file_too_large`: a file above `data.max_file_mb` on disk or decompressed (not read further).
* `not_a_regular_file`: a FIFO, socket, device or folder carrying a data-file name.
* `unreadable_link`: a dangling symbolic link or a link loop.
* `non_finite_trace`: a pulse whose window holds NaN or inf samples.
* `stale_settings`: a pulse later than the settings history's last row plus
  `beam_settings.max_settings_age_s` (the settings in force are not known).
* `out_of_order_pulse`: live, a pulse not later than the one before it in its file.
* `duplicate_pulse`: live, a pulse (timestamp) already scored from another file.
* `outside_dataset`: a listed file (labels.csv entry, symlink) that resolves outside the
  dataset folder; not read.
* `non_finite_values`: a sample (window, session, feature row) holding NaN or inf.
* `columns_differ`: a session file whose columns differ from the channel layout (the detail
  names the extra and missing columns).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

CORRUPT_FILE = "corrupt_file"
NOT_A_DCM_FILE = "not_a_dcm_file"
UNLABELLED_FOLDER = "unlabelled_folder"
NO_SETTINGS = "no_settings"
NON_PRODUCTION = "non_production"
GAP_DROPPED = "gap_dropped"
NO_REFERENCE = "no_reference"
FILE_TOO_LARGE = "file_too_large"
NOT_A_REGULAR_FILE = "not_a_regular_file"
UNREADABLE_LINK = "unreadable_link"
NON_FINITE_TRACE = "non_finite_trace"
STALE_SETTINGS = "stale_settings"
OUT_OF_ORDER_PULSE = "out_of_order_pulse"
DUPLICATE_PULSE = "duplicate_pulse"
OUTSIDE_DATASET = "outside_dataset"
NON_FINITE_VALUES = "non_finite_values"
COLUMNS_DIFFER = "columns_differ"

_SCOPES = ("file", "pulse")


@dataclass(frozen=True)
class LedgerEntry:
    """One skip: `count` pulses (0 when a whole file of unknown size) of `path` for `reason`.

    `scope` is "file" when the whole file was skipped, "pulse" when only some of its pulses were.
    """

    path: str
    reason: str
    count: int = 1
    detail: str = ""
    scope: str = "pulse"


class DataLedger:
    """An append-only list of `LedgerEntry`, with a per-reason summary and JSON round trip.

    Example:

    >>> ledger = DataLedger()
    >>> ledger.add("a.bin.gz", "corrupt_file", count=0, detail="bad field code", scope="file")
    >>> ledger.add("b.bin.gz", "no_settings", count=12)
    >>> [row["reason"] for row in ledger.summary()]
    ['no_settings', 'corrupt_file']
    """

    def __init__(self, entries: Iterable[LedgerEntry] = ()):
        self._entries: list[LedgerEntry] = list(entries)

    def add(
        self, path, reason: str, count: int = 1, detail: str = "", scope: str = "pulse"
    ) -> None:
        """Record that `count` pulses of `path` (or the whole file) were skipped for `reason`."""
        if scope not in _SCOPES:
            raise ValueError(f"DataLedger.add: scope must be one of {_SCOPES}, received {scope!r}.")
        if int(count) < 0:
            raise ValueError(f"DataLedger.add: count must be >= 0, received {count!r}.")
        self._entries.append(LedgerEntry(str(path), str(reason), int(count), str(detail), scope))

    def extend(self, other: DataLedger | Iterable[LedgerEntry]) -> None:
        """Append every entry of another ledger (or an iterable of entries)."""
        entries = other.entries if isinstance(other, DataLedger) else list(other)
        self._entries.extend(entries)

    @property
    def entries(self) -> list[LedgerEntry]:
        """A copy of the entries, in the order they were added."""
        return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def total_pulses_skipped(self) -> int:
        """Sum of the pulse counts of all entries (whole-file skips of unknown size count 0)."""
        return sum(entry.count for entry in self._entries)

    total_skipped = total_pulses_skipped

    def summary(self) -> list[dict]:
        """Per reason: distinct files affected and pulses skipped, most pulses first."""
        files: dict[str, set[str]] = {}
        pulses: dict[str, int] = {}
        for entry in self._entries:
            files.setdefault(entry.reason, set()).add(entry.path)
            pulses[entry.reason] = pulses.get(entry.reason, 0) + entry.count
        rows = [
            {"reason": reason, "files": len(files[reason]), "pulses": pulses[reason]}
            for reason in files
        ]
        return sorted(rows, key=lambda row: (-row["pulses"], -row["files"], row["reason"]))

    def to_dict(self) -> dict:
        """A JSON-ready dict: the summary and every entry."""
        return {
            "summary": self.summary(),
            "total_pulses_skipped": self.total_pulses_skipped,
            "entries": [asdict(entry) for entry in self._entries],
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> DataLedger:
        """Rebuild a ledger from `to_dict()` output."""
        if "entries" not in data:
            raise ValueError("DataLedger.from_dict: expected a mapping with an 'entries' list.")
        ledger = cls()
        for i, item in enumerate(data["entries"]):
            try:
                ledger.add(
                    item["path"],
                    item["reason"],
                    item.get("count", 1),
                    item.get("detail", ""),
                    item.get("scope", "pulse"),
                )
            except (KeyError, TypeError) as exc:
                raise ValueError(
                    f"DataLedger.from_dict: entry {i} needs 'path' and 'reason', got {item!r}."
                ) from exc
        return ledger

    def log_summary(self, logger: logging.Logger, level: int = logging.INFO,
                    unit: str = "pulses") -> None:
        """Log one line per reason (or a line saying nothing was skipped), in the job's words.

        `unit` names what one count is ("pulses" for SNS, "samples" for the other jobs);
        whole files skipped are counted as files, so a run that skipped 2 files says so.
        """
        rows = self.summary()
        if not rows:
            logger.log(level, "Data ledger: nothing skipped.")
            return
        files = len({e.path for e in self._entries if e.scope == "file"})
        logger.log(level, "Data ledger: %d files skipped, %d %s skipped in total; by reason "
                   "(files with a skip, %s):", files, self.total_pulses_skipped, unit, unit)
        for row in rows:
            logger.log(level, "  %-32s files=%-6d %s=%d", row["reason"], row["files"], unit,
                       row["pulses"])

    def __repr__(self) -> str:
        return f"DataLedger({len(self._entries)} entries, {self.total_pulses_skipped} pulses)"
