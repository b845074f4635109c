"""Tests of the benchmark report helpers: markdown tables and the GENERATED-marker rewrite."""

from __future__ import annotations

from datetime import datetime

import pytest

from benchmarks.report import (
    BEGIN_MARK,
    END_MARK,
    render_table,
    replace_generated,
    results_path,
    update_document,
)


def test_render_table_aligns_and_escapes_pipes():
    text = render_table(["model", "PR AUC"], [["a|b", "0.5"], ["c", None]])
    assert text.splitlines() == [
        "| model | PR AUC |",
        "| :--- | ---: |",
        "| a\\|b | 0.5 |",
        "| c |  |",
    ]


def test_render_table_rejects_a_short_row():
    with pytest.raises(ValueError, match="1 cells for 2 columns"):
        render_table(["a", "b"], [["x"]])


def test_replace_generated_keeps_the_hand_written_parts(tmp_path):
    doc = tmp_path / "bench.md"
    doc.write_text(f"# Intro\nhand text\n\n{BEGIN_MARK}\nold table\n{END_MARK}\n\n## After\nmore\n")
    update_document(doc, "new table")
    text = doc.read_text()
    assert "old table" not in text
    assert text.startswith("# Intro\nhand text\n")
    assert f"{BEGIN_MARK}\nnew table\n{END_MARK}" in text
    assert text.endswith("## After\nmore\n")
    update_document(doc, "newer")  # a rerun replaces again, nothing piles up
    assert doc.read_text().count(BEGIN_MARK) == 1 and "new table" not in doc.read_text()


def test_replace_generated_appends_markers_when_absent():
    text = replace_generated("# Title\n", "tables")
    assert text == f"# Title\n\n{BEGIN_MARK}\ntables\n{END_MARK}\n"


def test_replace_generated_refuses_markers_out_of_order():
    with pytest.raises(ValueError, match="once"):
        replace_generated(f"{END_MARK}\n{BEGIN_MARK}\n", "x")


def test_results_path_is_dated_and_names_the_machine(tmp_path):
    path = results_path(tmp_path, {"hostname": "ws 1/a"}, datetime(2026, 3, 4, 5, 6))
    assert path == tmp_path / "2026-03-04-ws-1-a.json"
