"""Hostile input for the other jobs (sessions, npz windows, feature and text tables): nothing
non-finite reaches a model, nothing outside the dataset folder is read, bombs stop at the caps,
every error names its file, and nothing a user owns is overwritten (issue 22, item 3 and 4)."""

from __future__ import annotations

import logging
import os
import zipfile

import numpy as np
import pandas as pd
import pytest

from data_preparation.ledger import DataLedger
from data_preparation.sources import load_samples
from data_preparation.sources.input_files import InputFileError
from parser.configs import config_from_dict


def _config(**sections):
    return config_from_dict(sections)


def _session(path, n=10, *, extra=None, drop=()):
    t = 1_700_000_000 + np.arange(n) * 0.02
    frame = pd.DataFrame({"timestamp": t, "ax": 1.0, "ay": 2.0, "temp": 20.0 + np.arange(n)})
    frame = frame.drop(columns=list(drop))
    for key, value in (extra or {}).items():
        frame[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".xlsx":
        frame.to_excel(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


def _reasons(samples) -> dict[str, str]:
    return {e.path.split("/")[-1]: e.reason for e in samples.ledger.entries}


# ----------------------------------------------------------------------------------------------
# Non-finite values


def test_nan_and_inf_windows_are_ledgered_and_never_reach_the_model(tmp_path):
    x = np.random.default_rng(0).normal(size=(20, 8, 2)).astype(np.float32)
    x[3, 2, 1] = np.nan
    x[7] = np.inf
    y = np.arange(20) % 2
    path = tmp_path / "w.npz"
    np.savez(path, X=x, y=y)
    samples = load_samples(_config(data={"source": "npz", "dataset_loc": str(path)}))
    assert len(samples) == 18 and np.isfinite(samples.inputs["trace"]).all()
    skipped = {e.path: e.reason for e in samples.ledger.entries}
    assert skipped == {f"{path}#3": "non_finite_values", f"{path}#7": "non_finite_values"}


def test_non_finite_windows_in_one_split_part_keep_the_ledger_of_every_part(tmp_path):
    for part, bad in (("train", 1), ("val", 0), ("test", 2)):
        x = np.ones((6, 4), np.float32)
        x[:bad, 0] = np.nan
        np.savez(tmp_path / f"{part}.npz", X=x, y=np.arange(6) % 2)
    samples = load_samples(_config(data={"source": "npz", "dataset_loc": str(tmp_path)}))
    assert len(samples) == 15
    assert sorted(e.path.split("/")[-1] for e in samples.ledger.entries) == [
        "test.npz#0", "test.npz#1", "train.npz#0"]


def test_session_with_inf_is_ledgered(tmp_path):
    _session(tmp_path / "walk" / "a.csv")
    _session(tmp_path / "walk" / "b.csv")
    bad = _session(tmp_path / "sit" / "c.csv")
    bad.write_text(bad.read_text().replace("20.0", "inf", 1))
    _session(tmp_path / "sit" / "d.csv")
    samples = load_samples(_config(data={"source": "sessions", "dataset_loc": str(tmp_path)}))
    assert len(samples) == 3 and np.isfinite(samples.inputs["trace"]).all()
    assert _reasons(samples) == {"c.csv": "non_finite_values"}


def test_feature_row_with_inf_is_ledgered_and_left_out(tmp_path):
    table = tmp_path / "f.csv"
    pd.DataFrame({"a": [1.0, np.inf, 3.0, 4.0], "b": [1.0, 2.0, 3.0, 4.0],
                  "label": [0, 1, 0, 1]}).to_csv(table, index=False)
    samples = load_samples(_config(data={"source": "features", "dataset_loc": str(table)}))
    assert len(samples) == 3 and np.isfinite(samples.inputs["features"]).all()
    assert samples.label.tolist() == [0, 0, 1]
    assert [(e.path, e.reason) for e in samples.ledger.entries] == [
        (f"{table}#1", "non_finite_values")]


# ----------------------------------------------------------------------------------------------
# Files outside the dataset folder


def test_labels_entries_and_links_that_leave_the_dataset_are_ledgered(tmp_path):
    root, outside = tmp_path / "data", tmp_path / "outside"
    for name in ("a", "b", "c"):
        _session(root / f"{name}.csv")
    secret = _session(outside / "secret.csv")
    os.symlink(secret, root / "link.csv")
    pd.DataFrame({"file": ["a.csv", "b.csv", "c.csv", "../outside/secret.csv", str(secret),
                           "link.csv", "a.csv"],
                  "label": ["x", "y", "x", "y", "x", "y", "y"]}).to_csv(root / "labels.csv",
                                                                        index=False)
    samples = load_samples(_config(data={"source": "sessions", "dataset_loc": str(root)}))
    assert sorted(p.split("/")[-1] for p in samples.ids) == ["a.csv", "b.csv", "c.csv"]
    reasons = [(e.path.split("/")[-1], e.reason) for e in samples.ledger.entries]
    assert sorted(reasons) == [("a.csv", "duplicate_file"), ("link.csv", "outside_dataset"),
                               ("secret.csv", "outside_dataset"),
                               ("secret.csv", "outside_dataset")]


def test_split_part_linked_outside_the_folder_is_not_read(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    for part in ("train", "val"):
        np.savez(root / f"{part}.npz", X=np.ones((4, 3), np.float32), y=np.arange(4) % 2)
    np.savez(tmp_path / "elsewhere.npz", X=np.ones((4, 3), np.float32), y=np.arange(4) % 2)
    os.symlink(tmp_path / "elsewhere.npz", root / "test.npz")
    samples = load_samples(_config(data={"source": "npz", "dataset_loc": str(root)}))
    assert len(samples) == 8
    assert _reasons(samples) == {"test.npz": "outside_dataset"}


# ----------------------------------------------------------------------------------------------
# Size caps: memory stays bounded whatever the file says


def test_xlsx_bomb_is_refused_from_its_zip_directory_before_parsing(tmp_path, monkeypatch):
    root = tmp_path / "data"
    for name in ("a", "b"):
        _session(root / "walk" / f"{name}.csv")
    bomb = root / "sit" / "bomb.xlsx"
    bomb.parent.mkdir(parents=True)
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:  # 3 MB sheet, ~3 kB
        archive.writestr("xl/worksheets/sheet1.xml", b"<c/>" * (3 * 2**18))
    _session(root / "sit" / "c.csv")

    def parse(*args, **kwargs):
        raise AssertionError("the workbook was parsed")

    monkeypatch.setattr(pd, "read_excel", parse)
    samples = load_samples(_config(data={"source": "sessions", "dataset_loc": str(root),
                                         "max_table_mb": 1}))
    assert len(samples) == 3
    (entry,) = samples.ledger.entries
    assert entry.reason == "unreadable_file" and "zip directory" in entry.detail


def test_npz_bomb_is_refused_before_any_array_is_inflated(tmp_path):
    path = tmp_path / "w.npz"
    np.savez_compressed(path, X=np.zeros((2, 2**19), np.float32), y=np.array([0, 1]))
    with pytest.raises(InputFileError, match=r"w\.npz: .* once uncompressed"):
        load_samples(_config(data={"source": "npz", "dataset_loc": str(path),
                                   "max_table_mb": 1}))


def test_text_line_beyond_the_cap_is_refused_naming_file_and_line(tmp_path):
    table = tmp_path / "t.csv"
    table.write_text("text,label\nshort,0\n" + "x" * 70_000 + ",1\n")
    with pytest.raises(InputFileError, match=r"t\.csv: line 3 is longer than data.max_line_kb"):
        load_samples(_config(data={"source": "text", "dataset_loc": str(table),
                                   "max_line_kb": 64}))


# ----------------------------------------------------------------------------------------------
# Ambiguous or damaged tables: one line naming the file


@pytest.mark.parametrize(("content", "message"), [
    (b"a,a,label\n1,2,0\n3,4,1\n", r"duplicated column name\(s\) a in the header"),
    (b"", "empty file"),
    (b"a,label\n\xff\xfe,0\n", "not UTF-8"),
])
def test_bad_feature_table_is_one_error_naming_it(tmp_path, content, message):
    table = tmp_path / "bad.csv"
    table.write_bytes(content)
    with pytest.raises(InputFileError, match=rf"bad\.csv: .*{message}"):
        load_samples(_config(data={"source": "features", "dataset_loc": str(table)}))


def test_sessions_with_other_columns_keep_the_common_channels_and_say_why(tmp_path):
    _session(tmp_path / "walk" / "a.csv")
    _session(tmp_path / "walk" / "b.csv", extra={"gyro": 5.0})
    _session(tmp_path / "sit" / "c.csv", drop=("temp",))
    _session(tmp_path / "sit" / "d.csv")
    samples = load_samples(_config(data={"source": "sessions", "dataset_loc": str(tmp_path)}))
    assert samples.layout["channels"] == ["ax", "ay", "temp"]  # gyro is in one file of four
    differ = {e.path.split("/")[-1]: e.detail for e in samples.ledger.entries
              if e.reason == "columns_differ"}
    assert set(differ) == {"b.csv", "c.csv"}
    assert "not used: gyro;" in differ["b.csv"] and "zeros: temp" in differ["c.csv"]
    assert len(samples) == 4


def test_ledger_line_counts_skipped_files_in_the_jobs_words(caplog):
    ledger = DataLedger()
    ledger.add("a.csv", "unreadable_file", 0, "bad", scope="file")
    ledger.add("b.csv", "no_timestamp", 1, "none", scope="file")
    with caplog.at_level(logging.INFO):
        ledger.log_summary(logging.getLogger("t"), unit="samples")
    assert "2 files skipped, 1 samples skipped" in caplog.text
    assert "pulses" not in caplog.text


# ----------------------------------------------------------------------------------------------
# Nothing a user owns is overwritten


def test_predict_output_refuses_an_existing_file(tmp_path):
    from training.samples_flow import predict_files

    mine = tmp_path / "mine.csv"
    mine.write_text("precious\n")
    with pytest.raises(FileExistsError, match="mine.csv: the file exists"):
        predict_files(tmp_path / "run", ["x.npz"], mine)
    assert mine.read_text() == "precious\n"
