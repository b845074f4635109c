"""`data.source = features` and `data.source = text`: one row per sample in a table.

`features`: a .csv/.parquet table with a label column and numeric feature columns (every numeric
column but the label, split and group columns unless `features.feature_columns` names them).
`text`: a .csv with a text column and a label column. Both read an optional split column
(train/val/test) for split.method=predefined. Rows with a missing label or text are ledgered.
Tables are read through `sources.input_files` (size and line caps, UTF-8, no duplicated
header, errors naming the file); a feature row holding inf is ledgered `non_finite_values`
and left out (a missing value, NaN, becomes its column's median as before).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from data_preparation.ledger import DataLedger
from data_preparation.sources.contract import (
    EMPTY_SAMPLE,
    PARTS,
    UNLABELLED,
    Samples,
    encode_labels,
    group_ids,
    normalise_split,
    split_files,
)
from data_preparation.sources.input_files import (
    ledger_non_finite,
    read_csv_file,
    read_parquet_file,
)
from utils.text import listing

logger = logging.getLogger(__name__)


def read_table(path: Path, data_config) -> pd.DataFrame:
    """A .csv or .parquet table, checked and capped; a clear error for anything else."""
    if not path.is_file():
        raise FileNotFoundError(f"data.dataset_loc {path} is not a file (expected a .csv or "
                                ".parquet table).")
    suffix = path.suffix.lower()
    max_bytes = int(data_config.max_table_mb) * 2**20
    if suffix == ".csv":
        return read_csv_file(path, max_bytes, int(data_config.max_line_kb) * 1024)
    if suffix in (".parquet", ".pq"):
        return read_parquet_file(path, max_bytes)
    raise ValueError(f"{path}: unknown table type {suffix!r}; expected .csv or .parquet.")


def _tables(config, location, files, split_column: str,
            ledger: DataLedger) -> tuple[pd.DataFrame, str]:
    """The rows of `files` (--predict) or of the dataset file, each with its `__id`, and a
    display name of where they came from. A dataset folder holding train/val/test tables (as
    benchmark datasets ship) is read whole, each row's part in `split_column`."""
    root = Path(location or config.data.dataset_loc)
    if files is None and root.is_dir():
        parts = split_files(root, (".csv", ".parquet", ".pq"), ledger)
    else:
        parts = [(None, Path(f)) for f in files] if files is not None else [(None, root)]
    frames = []
    for part, path in parts:
        frame = read_table(path, config.data)
        frame["__id"] = [f"{path}#{i}" for i in range(len(frame))]
        if part is not None:
            frame[split_column] = part
        frames.append(frame)
    return pd.concat(frames, ignore_index=True), ", ".join(str(p) for _, p in parts)


def _labels_and_split(frame, label_column, split_column, where, layout, labelled, ledger):
    """(rows kept, labels, class names, split or None) shared by both table sources."""
    trained_names = tuple(layout["class_names"]) if layout else None
    if label_column not in frame.columns:
        if labelled:
            raise KeyError(f"{where}: no label column {label_column!r}; columns are "
                           f"{listing(frame.columns)}.")
        return (np.ones(len(frame), bool), np.full(len(frame), UNLABELLED, np.int64),
                trained_names or (), None)
    has_label = frame[label_column].notna().to_numpy()
    for row_id in frame.loc[~has_label, "__id"]:
        ledger.add(row_id, EMPTY_SAMPLE, 1, f"no value in column {label_column!r}")
    label, names = encode_labels(frame.loc[has_label, label_column].to_numpy(), where,
                                 trained_names)
    split = None
    if split_column in frame.columns and labelled:
        split = normalise_split(frame.loc[has_label, split_column].to_numpy(), where)
        if not any(s in PARTS for s in split):
            split = None
    return has_label, label, names, split


def load_features(config, location: str | None = None, layout: dict | None = None,
                  files: list[str] | None = None) -> Samples:
    """A feature table (`features` section) as `inputs["features"]` float32 [n, F]."""
    fcfg = config.features
    ledger = DataLedger()
    frame, where = _tables(config, location, files, fcfg.split_column, ledger)
    reserved = {fcfg.label_column, fcfg.split_column, fcfg.group_column, "__id"}
    if layout:
        columns = list(layout["feature_columns"])
    elif fcfg.feature_columns:
        columns = list(fcfg.feature_columns)
    else:
        columns = [c for c in frame.columns if c not in reserved
                   and pd.api.types.is_numeric_dtype(frame[c])]
    missing = [c for c in columns if c not in frame.columns]
    if missing or not columns:
        raise KeyError(f"{where}: feature column(s) {listing(missing, empty='(none numeric)')} not found; "
                       f"columns are {listing(frame.columns)}.")
    keep, label, names, split = _labels_and_split(frame, fcfg.label_column, fcfg.split_column,
                                                  where, layout, files is None, ledger)
    frame = frame.loc[keep]
    values = frame[columns].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    finite = ~np.isinf(values).any(axis=1)
    if not finite.all():  # inf is no missing value: it would reach the scaler and the model
        ledger_non_finite(frame["__id"].to_numpy(dtype=object), finite, ledger,
                          f"feature columns {listing(columns, 6)}")
        frame, values, label = frame.loc[finite], values[finite], label[finite]
        split = None if split is None else split[finite]
    if np.isnan(values).any():  # missing values become the column median (of all rows read)
        medians = np.nanmedian(np.where(np.isnan(values).all(axis=0), 0.0, values), axis=0)
        values = np.where(np.isnan(values), medians, values)
    group_col = fcfg.group_column
    if group_col is not None and group_col not in frame.columns:
        raise KeyError(f"{where}: features.group_column {group_col!r} not found.")
    ids = frame["__id"].to_numpy(dtype=object)
    return Samples(
        inputs={"features": values.astype(np.float32)},
        label=label,
        class_names=names,
        group=group_ids(frame[group_col] if group_col else ids),
        ids=ids,
        split=split,
        layout={"feature_columns": columns, "class_names": list(names)},
        ledger=ledger,
    )


def load_text(config, location: str | None = None, layout: dict | None = None,
              files: list[str] | None = None) -> Samples:
    """A text table (`text` section) as `inputs["text"]` str [n]; vectorised after the split."""
    tcfg = config.text
    ledger = DataLedger()
    frame, where = _tables(config, location, files, tcfg.split_column, ledger)
    if tcfg.text_column not in frame.columns:
        raise KeyError(f"{where}: no text column {tcfg.text_column!r}; columns are "
                       f"{listing(frame.columns)}.")
    has_text = frame[tcfg.text_column].notna().to_numpy()
    for row_id in frame.loc[~has_text, "__id"]:
        ledger.add(row_id, EMPTY_SAMPLE, 1, f"no value in column {tcfg.text_column!r}")
    frame = frame.loc[has_text]
    keep, label, names, split = _labels_and_split(frame, tcfg.label_column, tcfg.split_column,
                                                  where, layout, files is None, ledger)
    frame = frame.loc[keep]
    ids = frame["__id"].to_numpy(dtype=object)
    return Samples(
        inputs={"text": frame[tcfg.text_column].astype(str).to_numpy(dtype=object)},
        label=label,
        class_names=names,
        group=np.arange(len(frame), dtype=np.int64),
        ids=ids,
        split=split,
        layout={"class_names": list(names)},
        ledger=ledger,
    )
