"""Reading the other jobs' input files as carefully as the SNS reader reads DCM files.

Every table a source reads (sessions .csv/.xlsx, feature and text tables, labels.csv, .npz
windows) goes through here: the file must resolve inside the dataset folder (a labels.csv entry
with `../` or an absolute path, or a symlink that leaves the folder, is ledgered
`outside_dataset`, never read), its size is capped before it is parsed (`data.max_table_mb` on
disk, and for .xlsx/.npz the uncompressed size from the zip directory, so a zip bomb is
refused without inflating it), a text line longer than `data.max_line_kb` is refused, and so
is a duplicated column name (pandas would rename it silently). Every error is one line that
names the file.
"""

from __future__ import annotations

import csv
import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from data_preparation.ledger import NON_FINITE_VALUES, OUTSIDE_DATASET, DataLedger
from utils.text import listing


class InputFileError(ValueError):
    """An input file that cannot be used as it is (too large, damaged, ambiguous)."""


def resolve_inside(path: Path, root: Path, ledger: DataLedger) -> Path | None:
    """`path` resolved (links followed) when it lies inside `root`, else None (ledgered)."""
    target = Path(os.path.realpath(path))
    if target.is_relative_to(Path(os.path.realpath(root))):
        return target
    ledger.add(path, OUTSIDE_DATASET, 0, f"resolves to {target}, outside the dataset folder "
               f"{root}; not read", scope="file")
    return None


def _cap_size(path: Path, max_bytes: int) -> None:
    """Refuse a file above `max_bytes` on disk, or uncompressed when it is a zip (.xlsx, .npz)."""
    size = path.stat().st_size
    if size > max_bytes:
        raise InputFileError(f"{path}: {size} bytes on disk, more than data.max_table_mb "
                             f"({max_bytes // 2**20} MB); not read")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            inflated = sum(item.file_size for item in archive.infolist())
        if inflated > max_bytes:
            raise InputFileError(f"{path}: {inflated} bytes once uncompressed (zip directory), "
                                 f"more than data.max_table_mb ({max_bytes // 2**20} MB); "
                                 "not read")


def _check_lines(path: Path, max_line_bytes: int) -> str:
    """The file as text, once every line is shown to be within the cap and valid UTF-8."""
    with open(path, "rb") as handle:
        lines = []
        for number, line in enumerate(iter(lambda: handle.readline(max_line_bytes + 1), b""), 1):
            if len(line) > max_line_bytes:
                raise InputFileError(f"{path}: line {number} is longer than data.max_line_kb "
                                     f"({max_line_bytes // 1024} kB); not read")
            lines.append(line)
    raw = b"".join(lines)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputFileError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None


def _refuse_duplicates(path: Path, header) -> None:
    names = [str(h).strip() for h in header]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputFileError(f"{path}: duplicated column name(s) {listing(repeated, 5)} in the header; "
                             "rename them (which one is meant cannot be guessed)")


def read_csv_file(path: Path, max_bytes: int, max_line_bytes: int) -> pd.DataFrame:
    """A .csv as a DataFrame: capped, UTF-8, one header without repeats, errors naming it."""
    path = Path(path)
    _cap_size(path, max_bytes)
    text = _check_lines(path, max_line_bytes)
    header = next(csv.reader(io.StringIO(text)), None)
    if not header or not any(h.strip() for h in header):
        raise InputFileError(f"{path}: empty file (no header row)")
    _refuse_duplicates(path, header)
    try:
        return pd.read_csv(io.StringIO(text))
    except (pd.errors.ParserError, ValueError) as exc:
        raise InputFileError(f"{path}: cannot be read as CSV ({str(exc).strip()})") from None


def read_xlsx_file(path: Path, max_bytes: int) -> pd.DataFrame:
    """The first sheet of an .xlsx: size checked from the zip directory before it is parsed."""
    path = Path(path)
    _cap_size(path, max_bytes)
    try:
        frame = pd.read_excel(path, sheet_name=0, header=None)
    except Exception as exc:  # openpyxl raises many types for a damaged workbook
        raise InputFileError(f"{path}: cannot be read as a workbook ({type(exc).__name__}: "
                             f"{exc})") from None
    if frame.empty:
        raise InputFileError(f"{path}: empty sheet (no header row)")
    header = frame.iloc[0].tolist()
    _refuse_duplicates(path, header)
    body = frame.iloc[1:].reset_index(drop=True)
    body.columns = [str(h).strip() for h in header]
    return body.infer_objects()


def read_parquet_file(path: Path, max_bytes: int) -> pd.DataFrame:
    path = Path(path)
    _cap_size(path, max_bytes)
    try:
        return pd.read_parquet(path)
    except ImportError as exc:
        raise ImportError(f"{path}: reading parquet needs pyarrow or fastparquet "
                          f"(pip install pyarrow), or save the table as .csv ({exc}).") from exc
    except Exception as exc:
        raise InputFileError(f"{path}: cannot be read as parquet ({type(exc).__name__}: "
                             f"{exc})") from None


def check_npz_size(path: Path, max_bytes: int) -> None:
    """Refuse an .npz above the cap on disk or uncompressed, before any array is inflated."""
    _cap_size(Path(path), max_bytes)


def finite_rows(values: np.ndarray) -> np.ndarray:
    """True for the rows (first axis) of `values` without NaN or inf."""
    values = np.asarray(values)
    return np.isfinite(values).all(axis=tuple(range(1, values.ndim)))


def ledger_non_finite(ids, keep: np.ndarray, ledger: DataLedger, what: str) -> None:
    """Ledger each sample where `keep` is False as `non_finite_values`."""
    for sample in np.asarray(ids, dtype=object)[~keep]:
        ledger.add(sample, NON_FINITE_VALUES, 1, f"NaN or inf in {what}")
