"""`data.source = sessions`: one .csv/.xlsx file per recording session, one sample per session.

Every numeric column but the time column is a channel (unless `sessions.channels` names them);
`sessions.norms` adds Euclidean norms of x/y/z triples (an accelerometer's orientation-free
magnitude, e.g. `A=acc_x,acc_y,acc_z`). Sessions are trimmed (the end) or zero-padded to one
length, so zero marks padding for masking models. Labels come from `labels.csv`
(`file,label[,split][,group]`) when it exists, else from the class folder
(`<root>[/train|val|test]/<class>/<file>`). A session missing more than
`max_missing_columns` of the expected raw columns, or without a valid time column, is skipped and
ledgered; missing columns below that limit are zeros.

Input checks (`sources.input_files`): labels.csv entries and files that resolve outside the
dataset folder are ledgered `outside_dataset`, a file listed twice `duplicate_file`; tables
above `data.max_table_mb` (an .xlsx by its zip directory, before parsing), with a line above
`data.max_line_kb`, a duplicated header, or not UTF-8 are ledgered `unreadable_file` with the
reason; a session holding inf is ledgered `non_finite_values`. Without a configured channel
list, the channels are the numeric columns found in at least half of the files; a file with
other columns is kept and ledgered `columns_differ` with its extra and missing columns.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from data_preparation.ledger import COLUMNS_DIFFER, NON_FINITE_VALUES, DataLedger
from data_preparation.sources.contract import (
    DUPLICATE_FILE,
    MISSING_COLUMNS,
    NO_TIMESTAMP,
    PARTS,
    UNLABELLED,
    UNLABELLED_FILE,
    UNREADABLE_FILE,
    Samples,
    encode_labels,
    group_ids,
    normalise_split,
)
from data_preparation.sources.input_files import (
    read_csv_file,
    read_xlsx_file,
    resolve_inside,
)
from utils.text import listing

logger = logging.getLogger(__name__)

SUFFIXES = (".csv", ".xlsx", ".xls")


def parse_norms(norms) -> list[tuple[str, list[str]]]:
    """`("A=ax,ay,az", ...)` -> `[("A", ["ax", "ay", "az"]), ...]` (validated by the config)."""
    out = []
    for item in norms:
        name, _, parts = item.partition("=")
        out.append((name.strip(), [p.strip() for p in parts.split(",") if p.strip()]))
    return out


def read_table(path: Path, data_config) -> pd.DataFrame:
    """A session file as a DataFrame (.csv, or the first sheet of an .xlsx), checked and
    capped by `data.max_table_mb` / `data.max_line_kb` (`sources.input_files`)."""
    max_bytes = int(data_config.max_table_mb) * 2**20
    if path.suffix.lower() == ".csv":
        return read_csv_file(path, max_bytes, int(data_config.max_line_kb) * 1024)
    return read_xlsx_file(path, max_bytes)


def session_times(frame: pd.DataFrame, column: str) -> np.ndarray | None:
    """int64 ns per row of the time column (NaT rows -> min int), None if no row is valid.

    Numbers are read as epoch (or relative) times; their unit is guessed from the magnitude
    (s, ms, us, ns), as loggers write any of them. Text is parsed as dates.
    """
    if column not in frame.columns:
        return None
    values = frame[column]
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().mean() > 0.5:
        x = numeric.to_numpy(dtype=np.float64)
        finite = x[np.isfinite(x)]
        if finite.size == 0:
            return None
        peak = np.abs(finite).max()
        scale = 1 if peak > 1e17 else 1e3 if peak > 1e14 else 1e6 if peak > 1e11 else 1e9
        ns = np.where(np.isfinite(x), x * scale, np.nan)
        out = np.full(x.size, np.iinfo(np.int64).min, dtype=np.int64)
        ok = np.isfinite(ns)
        out[ok] = ns[ok].astype(np.int64)
        return out
    parsed = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
    if parsed.notna().sum() == 0:
        return None
    # Text parses to microseconds in pandas 2; force ns. NaT views as int64 min.
    return parsed.dt.tz_convert(None).to_numpy(dtype="datetime64[ns]").view(np.int64)


def _labelled_files(root: Path, labels_file: str, ledger: DataLedger, data_config):
    """[(path, class or None, split, group key)] from labels.csv or the folder layout; files
    outside `root` (../, absolute paths, links leaving it) and repeats are ledgered."""
    table = root / labels_file
    if table.is_file():
        frame = read_table(table, data_config)
        missing = [c for c in ("file", "label") if c not in frame.columns]
        if missing:
            raise ValueError(f"{table}: needs columns file, label (and optionally split, group); "
                             f"missing {listing(missing)}; found {listing(frame.columns)}.")
        split = (normalise_split(frame["split"], str(table)) if "split" in frame.columns
                 else np.full(len(frame), "", dtype=object))
        groups = frame["group"].astype(str) if "group" in frame.columns else frame["file"]
        listed = [(root / str(f), str(lab), s, str(g)) for f, lab, s, g in
                  zip(frame["file"], frame["label"], split, groups, strict=True)]
    else:
        listed = []
        for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in SUFFIXES):
            if path.name == labels_file:
                continue
            rel = path.relative_to(root).parts
            split = ""
            if len(rel) > 1 and rel[0].lower() in ("train", "val", "validation", "test"):
                split = normalise_split([rel[0]], str(path))[0]
                rel = rel[1:]
            if len(rel) < 2:
                ledger.add(path, UNLABELLED_FILE, 0, "not under a class folder and not in "
                           f"{labels_file}", scope="file")
                continue
            listed.append((path, rel[-2], split, str(path.relative_to(root))))
    out, first_use = [], {}
    for path, cls, split, group in listed:
        target = resolve_inside(path, root, ledger)
        if target is None:
            continue
        if target in first_use:
            ledger.add(path, DUPLICATE_FILE, 0, f"the same file as {first_use[target]}; read "
                       "once", scope="file")
            continue
        first_use[target] = path
        out.append((path, cls, split, group))
    return out


def _channels_from_frame(frame: pd.DataFrame, time_column: str) -> list[str]:
    numeric = frame.drop(columns=[time_column], errors="ignore").apply(
        pd.to_numeric, errors="coerce")
    return [c for c in numeric.columns if numeric[c].notna().any()]


def _common_columns(per_file: list[list[str]]) -> list[str]:
    """The numeric columns found in at least half of the files, in order of first appearance
    (one file's extra columns do not become every session's channels)."""
    counts: dict[str, int] = {}
    for columns in per_file:
        for column in columns:
            counts[column] = counts.get(column, 0) + 1
    return [c for c, n in counts.items() if 2 * n >= len(per_file)]


def _session_matrix(frame, times, raw_columns, norms, channels) -> np.ndarray:
    """[steps, channels] float32 in time order; missing raw columns are zeros."""
    keep = times != np.iinfo(np.int64).min
    frame = frame.loc[keep]
    order = np.argsort(times[keep], kind="stable")
    data = {}
    for column in raw_columns:
        if column in frame.columns:
            values = pd.to_numeric(frame[column], errors="coerce").to_numpy(np.float64)[order]
            series = pd.Series(values).interpolate(limit_direction="both")
            data[column] = series.fillna(0.0).to_numpy()
        else:
            data[column] = np.zeros(len(order))
    for name, parts in norms:
        data[name] = np.sqrt(sum(data[p] ** 2 for p in parts))
    return np.stack([data[c] for c in channels], axis=1).astype(np.float32)


def load(config, location: str | None = None, layout: dict | None = None,
         files: list[str] | None = None) -> Samples:
    """Sessions under `data.dataset_loc` (or `files`, unlabelled, for --predict)."""
    scfg = config.sessions
    ledger = DataLedger()
    if files is None:
        root = Path(location or config.data.dataset_loc)
        if not root.is_dir():
            raise FileNotFoundError(f"data.dataset_loc {root} is not a folder of session files "
                                    "(data.source=sessions expects one .csv/.xlsx per session).")
        entries = _labelled_files(root, scfg.labels_file, ledger, config.data)
    else:
        root = None
        entries = [(Path(f), None, "", str(f)) for f in files]
    norms = parse_norms(scfg.norms)
    components = {c for _, parts in norms for c in parts}
    frames = []
    for path, cls, split, group in entries:
        try:
            frame = read_table(path, config.data)
        except Exception as exc:  # any reader error: the file is ledgered, not fatal
            ledger.add(path, UNREADABLE_FILE, 0, f"{type(exc).__name__}: {exc}", scope="file")
            continue
        times = session_times(frame, scfg.time_column)
        if times is None or (times == np.iinfo(np.int64).min).all():
            ledger.add(path, NO_TIMESTAMP, 1, f"no valid '{scfg.time_column}' column "
                       f"(columns: {listing(frame.columns, 8)})", scope="file")
            continue
        frames.append((path, cls, split, group, frame, times))
    # The channel layout: from a trained run, from the config, or every numeric column seen.
    if layout:
        raw_columns, channels = list(layout["raw_columns"]), list(layout["channels"])
    else:
        if scfg.expected_columns or scfg.channels:
            raw_columns = list(scfg.expected_columns or scfg.channels)
            raw_columns += [c for c in sorted(components) if c not in raw_columns]
        else:
            raw_columns = _common_columns([_channels_from_frame(frame, scfg.time_column)
                                           for *_, frame, _ in frames])
        plain = list(scfg.channels) if scfg.channels else [
            c for c in raw_columns if c not in components or scfg.keep_norm_components]
        channels = plain + [name for name, _ in norms]
    matrices, kept = [], []
    for path, cls, split, group, frame, times in frames:
        missing = [c for c in raw_columns if c not in frame.columns]
        if len(missing) > scfg.max_missing_columns:
            ledger.add(path, MISSING_COLUMNS, 1, f"{len(missing)} of the expected columns "
                       f"missing (more than {scfg.max_missing_columns}): {listing(missing, 6)}",
                       scope="file")
            continue
        matrix = _session_matrix(frame, times, raw_columns, norms, channels)
        if not np.isfinite(matrix).all():
            ledger.add(path, NON_FINITE_VALUES, 1, "inf in a channel (NaN is interpolated, "
                       "inf cannot be)", scope="file")
            continue
        extra = [c for c in _channels_from_frame(frame, scfg.time_column)
                 if c not in raw_columns]
        if extra or missing:
            ledger.add(path, COLUMNS_DIFFER, 0, f"columns not in the channel layout, not "
                       f"used: {listing(extra, 6)}; missing, filled with zeros: "
                       f"{listing(missing, 6)}")
        matrices.append(matrix)
        valid = times[times != np.iinfo(np.int64).min]
        kept.append((path, cls, split, group, int(valid.min())))
    if not matrices:
        where = root if root is not None else ", ".join(map(str, files or []))
        reasons = sorted({e.reason for e in ledger.entries})
        skipped = f" (skipped: {listing(reasons)}; the log lists each file)" if reasons else ""
        if not entries:
            raise ValueError(f"no session file in {where}: expected files ending in "
                             f"{listing(SUFFIXES)} in <class>/ folders or listed in labels.csv"
                             + skipped)
        raise ValueError(f"no valid session file in {where}: {len(entries)} labelled file(s) "
                         "found, none usable" + skipped)
    length = int(layout["length"]) if layout else (
        scfg.length or int(np.median([m.shape[0] for m in matrices])))
    trace = np.zeros((len(matrices), length, len(channels)), dtype=np.float32)
    for i, m in enumerate(matrices):
        trace[i, : min(length, m.shape[0])] = m[:length]
    if files is None:
        label, class_names = encode_labels([k[1] for k in kept], f"{root} labels",
                                           layout.get("class_names") if layout else None)
    else:
        label = np.full(len(kept), UNLABELLED, dtype=np.int64)
        class_names = tuple(layout["class_names"]) if layout else ()
    split_values = np.asarray([k[2] for k in kept], dtype=object)
    logger.info("sessions: %d kept of %d files, %d channels %s, length %d", len(kept),
                len(entries), len(channels), channels, length)
    return Samples(
        inputs={"trace": trace},
        label=label,
        class_names=class_names,
        group=group_ids([k[3] for k in kept]),
        ids=np.asarray([str(k[0]) for k in kept], dtype=object),
        timestamp_ns=np.asarray([k[4] for k in kept], dtype=np.int64),
        split=split_values if any(s in PARTS for s in split_values) else None,
        layout={"raw_columns": raw_columns, "channels": channels, "length": length,
                "class_names": list(class_names)},
        ledger=ledger,
    )
