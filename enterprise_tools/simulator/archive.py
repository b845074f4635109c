"""One file (events, records, truth rows) and the whole archive (files, settings, json)."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import gzip
import json
import logging
import os
import shutil
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from enterprise_tools.atomic import atomic_path
from enterprise_tools.beam_settings_parser_hdf5 import write_pv_file
from enterprise_tools.biet_writer import write_storage
from enterprise_tools.simulator.params import (
    ERRANT_ALARM,
    NS,
    PV_INDEX,
    SKIP_CORRUPT,
    SKIP_LOW_BWIDTH,
    SKIP_MISLABELLED,
    SKIP_NO_TRIP,
    SKIP_SETTINGS,
    TRUTH_COLUMNS,
    SimulationSummary,
    SimulatorParams,
)
from enterprise_tools.simulator.physics import (
    Event,
    beam_at,
    draw_blip,
    draw_run_up,
    pulse_traces,
)
from enterprise_tools.simulator.schedule import (
    KIND_MPS,
    KIND_NORMAL,
    Segment,
    build_schedule,
    plan_acquisitions,
    pulse_period_ns,
    settings_rows,
)

logger = logging.getLogger("beamwatch.simulator")


# --------------------------------------------------------------------------------------
# One file: pulses, records, truth rows
# --------------------------------------------------------------------------------------


class FileJob(NamedTuple):
    index: int  # acquisition number (seeds its random stream)
    t_ns: int
    kind: int
    alarm: int
    bad_pulse: int
    corrupt: int
    mode: str
    values: tuple[float, ...]
    config_id: int
    n_pulses: int = 0  # pulses in the file (0: the kind's fixed length, as before)
    old_style: int = 0  # 1: older-style Before/During pair without status records


def file_name(job: FileJob) -> str:
    """``dcm/<normal|anomaly>/YYYY/MM/DD/DCM_<YYYYmmdd_HHMMSS_micro>_<alarm bits>.bin.gz``."""
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=job.t_ns // 1000)
    folder = "normal" if job.kind == KIND_NORMAL else "anomaly"
    named_alarm = 0 if job.kind == KIND_NORMAL else job.alarm  # mislabelled files look normal
    stamp = moment.strftime("%Y%m%d_%H%M%S_%f")
    return f"dcm/{folder}/{moment:%Y/%m/%d}/DCM_{stamp}_{named_alarm:08b}.bin.gz"


def _n_pulses(job: FileJob, params: SimulatorParams) -> int:
    if job.n_pulses:
        return job.n_pulses
    return params.pulses_per_normal_file if job.kind == KIND_NORMAL else params.context_pulses + 2


def file_events(
    job: FileJob, params: SimulatorParams, rng: np.random.Generator
) -> tuple[list[tuple[int, str, Event]], int]:
    """Per pulse (alarm, role, Event), and the precursor onset (0: none or not an errant file).

    Errant files: the precursor grows over the last ``onset`` pulses before the trip (full on
    the sample pulse); earlier pulses of the file are ``context`` (never samples) even when
    the precursor is already on them. Benign blips fall on any non-trip pulse.
    """
    n = _n_pulses(job, params)
    onset = 0
    if job.kind == KIND_NORMAL:
        role = "study" if job.mode == "study" else "normal"
        out = [(0, role, Event()) for _ in range(n)]
        if job.old_style:  # the Before pulse is the sample, the During pulse only context
            out[1] = (0, "context", Event())
        if job.bad_pulse >= 0:
            trip = job.alarm == ERRANT_ALARM
            out[job.bad_pulse] = (
                job.alarm,
                "trip" if trip else "mps_trip",
                Event(abort_at=rng.uniform(0.1, 0.9), surge=rng.uniform(8, 40) if trip else 0.0),
            )
    elif job.kind == KIND_MPS:
        out = [(0, "context", Event()) for _ in range(n - 1)]
        out.append((job.alarm, "mps_trip", Event(abort_at=rng.uniform(0.1, 0.9))))
    else:
        run_up = draw_run_up(params, rng)
        onset = run_up.onset
        out = [(0, "context", run_up.event(n - 1 - k, params.precursor_growth)) for k in range(n - 2)]
        out.append((0, "precursor", run_up.event(1, params.precursor_growth)))
        out.append((ERRANT_ALARM, "trip", run_up.trip(rng)))
    for k, (alarm, role, event) in enumerate(out):
        if event.abort_at is None:
            blip = draw_blip(params, rng)
            if blip:
                out[k] = (alarm, role, event._replace(blip=blip))
    return out, onset


def _expected(job: FileJob, role: str) -> tuple[int, str]:
    """(label, expected_skip) of one pulse (module docstring: truth.csv)."""
    if job.kind == KIND_NORMAL:
        label = -1 if job.bad_pulse >= 0 or role == "context" else 0
    else:
        label = 1 if role == "precursor" else -1
    file_skip = ""
    if job.corrupt:
        file_skip = SKIP_CORRUPT
    elif job.mode == "study" and not job.old_style:  # older files carry no bWidth to cut on
        file_skip = SKIP_LOW_BWIDTH
    elif job.kind == KIND_NORMAL and job.bad_pulse >= 0:
        file_skip = SKIP_MISLABELLED
    elif job.kind == KIND_MPS:
        file_skip = SKIP_NO_TRIP
    if file_skip:
        return label, file_skip
    if label >= 0 and job.mode != "production":
        return label, SKIP_SETTINGS
    return label, ""


def make_file(job: FileJob, params: SimulatorParams, out_dir: str) -> list[tuple]:
    """Generate, write (and maybe corrupt) one DCM file; return its truth rows."""
    rng = np.random.default_rng(np.random.SeedSequence(params.seed, spawn_key=(2, job.index)))
    beam = beam_at(job.values, job.t_ns, params)
    period = pulse_period_ns(job.values[PV_INDEX["ICS_Tim:Gate_BeamOn:RR"]])
    name = file_name(job)
    records, rows = [], []
    events, onset = file_events(job, params, rng)
    for k, (alarm, role, event) in enumerate(events):
        stamp = job.t_ns + k * period
        trace1, trace2 = pulse_traces(beam, event, rng, params)
        bwidth = round(beam.bwidth + float(rng.normal(0.0, 0.3)), 2)
        if job.old_style:
            # older acquisitions: no status record; each trace is tagged Before (the pulse
            # before the trip, or before the second pulse of a normal pair) or During
            tags = ["Before" if k == 0 else "During"]
            records += [
                {"name": "SNS:DCM:Trace1", "timestamp_ns": stamp, "tags": tags, "value": trace1},
                {"name": "SNS:DCM:Trace2", "timestamp_ns": stamp, "tags": tags, "value": trace2},
            ]
        else:
            records += [
                {"name": "SNS:DCM:Trace1", "timestamp_ns": stamp, "value": trace1},
                {"name": "SNS:DCM:Trace2", "timestamp_ns": stamp, "value": trace2},
                {
                    "name": "SNS:DCM:Status",
                    "timestamp_ns": stamp,
                    "parameters": {"Alarm": np.uint32(alarm), "bWidth": float(bwidth)},
                },
            ]
        label, skip = _expected(job, role)
        rows.append((name, k, stamp, alarm, label, role, event.precursor,
                     f"{event.strength:.4f}", job.config_id, skip, onset, k, f"{event.blip:.4f}"))
    path = Path(out_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    write_storage(path, records, compresslevel=params.compresslevel)
    if job.corrupt:
        _corrupt(path, job.corrupt, params.compresslevel)
    return rows


def _corrupt(path: Path, how: int, compresslevel: int) -> None:
    """Damage a written file the way disks and transfers do: cut it short, or garble a byte."""
    raw = path.read_bytes()
    if how == 1:
        damaged = raw[: len(raw) * 3 // 5]
    else:  # an unknown field code in the first record: the stream cannot be resynchronised
        data = bytearray(gzip.decompress(raw))
        data[12 + 4] = 0x63
        damaged = gzip.compress(bytes(data), compresslevel=compresslevel, mtime=0)
    with atomic_path(path) as tmp:
        tmp.write_bytes(damaged)


# --------------------------------------------------------------------------------------
# The archive
# --------------------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(params: SimulatorParams, out_dir: str) -> None:
    _WORKER["params"], _WORKER["out_dir"] = params, out_dir


def _run_job(job: FileJob) -> list[tuple]:
    return make_file(job, _WORKER["params"], _WORKER["out_dir"])


def _jobs(plan: np.ndarray, segments: Sequence[Segment]) -> Iterator[FileJob]:
    for index, row in enumerate(plan):
        seg = segments[int(row["segment"])]
        yield FileJob(index, int(row["t_ns"]), int(row["kind"]), int(row["alarm"]),
                      int(row["bad_pulse"]), int(row["corrupt"]), seg.mode, seg.values,
                      int(row["segment"]), int(row["n_pulses"]), int(row["old_style"]))


def _ordered_results(jobs: Iterator[FileJob], workers: int, params, out_dir) -> Iterator[list]:
    """Results in job order; at most a few jobs in flight per worker (bounded memory)."""
    if workers <= 1:
        for job in jobs:
            yield make_file(job, params, out_dir)
        return
    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(params, out_dir)) as pool:
        pending: deque = deque()
        for job in jobs:
            pending.append(pool.submit(_run_job, job))
            if len(pending) >= 4 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _check_out_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"output path {str(out_dir)!r} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not force:
            raise FileExistsError(
                f"output folder {str(out_dir)!r} is not empty; choose another or pass --force"
            )
        if (out_dir / "simulation.json").exists():  # an earlier archive: replace it wholly
            for sub in ("dcm", "beam_settings"):
                shutil.rmtree(out_dir / sub, ignore_errors=True)


def simulate_archive(
    out_dir: str | os.PathLike,
    params: SimulatorParams,
    *,
    workers: int = 1,
    progress: bool = False,
    force: bool = False,
) -> SimulationSummary:
    """Write a simulated SNS archive into ``out_dir`` (layout in the module docstring).

    Args:
        out_dir: destination folder; created if missing, must be empty unless ``force``.
        params: every knob, seed included.
        workers: processes generating files; the output is identical for any number.
        progress: log a line every ~10 % of the files.
        force: write into a non-empty folder (an earlier archive there is replaced).
    """
    out = Path(out_dir)
    _check_out_dir(out, force)
    out.mkdir(parents=True, exist_ok=True)
    segments = build_schedule(params)
    _write_settings(out, segments, params)
    plan = plan_acquisitions(params, segments)
    counts: Counter = Counter()
    tally = Counter()
    pulses = 0
    with atomic_path(out / "truth.csv") as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(TRUTH_COLUMNS)
        results = _ordered_results(_jobs(plan, segments), workers, params, str(out))
        for done, rows in enumerate(results, 1):
            writer.writerows(rows)
            pulses += len(rows)
            _tally(rows, tally)
            if progress and done % max(1, len(plan) // 10) == 0:
                logger.info("simulated %d / %d files", done, len(plan))
    counts.update(
        files=len(plan),
        normal_files=int((plan["kind"] == KIND_NORMAL).sum()),
        anomaly_files=int((plan["kind"] != KIND_NORMAL).sum()),
        corrupt_files=int((plan["corrupt"] > 0).sum()),
        old_style_files=int(plan["old_style"].sum()),
        pulses=pulses,
        settings_segments=len(segments),
    )
    summary = SimulationSummary(
        out_dir=str(out),
        files=counts["files"],
        normal_files=counts["normal_files"],
        anomaly_files=counts["anomaly_files"],
        corrupt_files=counts["corrupt_files"],
        pulses=pulses,
        samples={"normal": tally["sample:0"], "errant": tally["sample:1"]},
        counts={**dict(counts), **{k: v for k, v in sorted(tally.items())}},
    )
    _write_json(out / "simulation.json", {
        "params": dataclasses.asdict(params),
        "summary": dataclasses.asdict(summary) | {"out_dir": None},
        "segments": [
            {"start_ns": s.start_ns, "end_ns": s.end_ns, "mode": s.mode, "config_id": i}
            for i, s in enumerate(segments)
        ],
    })
    logger.info("simulated archive in %s: %d files, %d pulses, samples %s",
                out, summary.files, summary.pulses, summary.samples)
    return summary


def _tally(rows: list[tuple], tally: Counter) -> None:
    for row in rows:
        label, role, kind, skip = row[4], row[5], row[6], row[9]
        tally[f"role:{role}"] += 1
        if role == "precursor":
            tally[f"precursor:{kind}"] += 1
        if skip:
            tally[f"skip:{skip}"] += 1
        elif label >= 0:
            tally[f"sample:{label}"] += 1


def _write_settings(out: Path, segments: Sequence[Segment], params: SimulatorParams) -> None:
    folder = out / "beam_settings"
    folder.mkdir(parents=True, exist_ok=True)
    first, last = segments[0].start_ns, segments[-1].end_ns
    day = first - first % (86400 * NS)
    while day < last:
        rows = settings_rows(segments, max(day, first), day + 86400 * NS, params.heartbeat_s)
        moment = dt.datetime.fromtimestamp(day // NS, tz=dt.UTC)
        write_pv_file(folder / f"{moment:%Y-%m-%d}.hdf5", rows)
        day += 86400 * NS


def _write_json(path: Path, obj: Any) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
    with atomic_path(path) as tmp:
        tmp.write_text(text)
