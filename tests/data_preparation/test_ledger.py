import json
import logging

import pytest

from data_preparation.ledger import DataLedger, LedgerEntry


def _ledger() -> DataLedger:
    ledger = DataLedger()
    ledger.add("a.bin.gz", "corrupt_file", 0, "bad field code 77", scope="file")
    ledger.add("b.bin.gz", "no_settings", 12)
    ledger.add("c.bin.gz", "no_settings", 3)
    ledger.add("b.bin.gz", "trip_on_first_pulse", 1, "record 2")
    return ledger


def test_summary_counts_files_and_pulses_per_reason_most_pulses_first():
    summary = _ledger().summary()
    assert summary == [
        {"reason": "no_settings", "files": 2, "pulses": 15},
        {"reason": "trip_on_first_pulse", "files": 1, "pulses": 1},
        {"reason": "corrupt_file", "files": 1, "pulses": 0},
    ]


def test_total_pulses_skipped_sums_counts():
    assert _ledger().total_pulses_skipped == 16
    assert _ledger().total_skipped == 16


def test_json_round_trip_keeps_every_entry():
    ledger = _ledger()
    text = json.dumps(ledger.to_dict())
    again = DataLedger.from_dict(json.loads(text))
    assert again.entries == ledger.entries
    assert again.entries[0] == LedgerEntry("a.bin.gz", "corrupt_file", 0, "bad field code 77", "file")


def test_extend_appends_other_ledger():
    ledger = DataLedger()
    ledger.add("x", "gap_dropped", 2)
    ledger.extend(_ledger())
    assert len(ledger) == 5
    assert ledger.entries[0].reason == "gap_dropped"


def test_bad_scope_and_bad_entries_are_rejected():
    with pytest.raises(ValueError, match="scope"):
        DataLedger().add("x", "r", scope="everything")
    with pytest.raises(ValueError, match="entry 0"):
        DataLedger.from_dict({"entries": [{"reason": "r"}]})


def test_log_summary_writes_one_line_per_reason(caplog):
    logger = logging.getLogger("test_ledger")
    with caplog.at_level(logging.INFO, logger="test_ledger"):
        _ledger().log_summary(logger)
        DataLedger().log_summary(logger)
    text = caplog.text
    assert "16 pulses skipped" in text
    assert "no_settings" in text and "corrupt_file" in text
    assert "nothing skipped" in text
