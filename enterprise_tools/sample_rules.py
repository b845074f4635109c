"""Which pulses of a DCM file are samples (spec §1 "What counts as a training sample").

Groups a file's records into pulses, flags malformed ones, and picks the samples of a normal
file, of an anomaly file (the pulse before each trip) and of an older Before/During file; every
sample lost gets a ``Skip`` with one of the ``SKIP_*`` codes below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from enterprise_tools.biet_format import ns_to_datetime
from enterprise_tools.biet_reader import ReadStorage, Waveform

SKIP_MISLABELLED = "mislabelled_normal_file"
SKIP_LOW_BWIDTH = "no_production_beam"
SKIP_FIRST_PULSE_TRIP = "trip_on_first_pulse"
SKIP_TIMESTAMP_MISMATCH = "pulse_records_out_of_order"
SKIP_MISSING_TRACE = "trace_missing"
SKIP_SHORT_TRACE = "trace_shorter_than_window"
SKIP_QUALITY = "failed_quality_cut"
SKIP_NO_TRIP = "anomaly_file_without_trip"


@dataclass(frozen=True)
class Skip:
    """One skipped file or pulse, for the data ledger."""

    reason: str  # one of the SKIP_* codes
    detail: str  # names the record / timestamp
    scope: str  # "file" or "pulse"


class Pick(NamedTuple):
    """A sample to extract: the var_id record, the time it is filed under, its pulse's records.

    ``position`` is the pulse's index in the file's pulse list (triple rules; None under the
    tag rules, whose files have no in-file references).
    """

    index: int
    timestamp_ns: int
    pulse: tuple[int, ...]
    position: int | None = None


@dataclass
class Pulse:
    records: tuple[int, ...]
    timestamp_ns: int | None
    trace_index: int | None  # the var_id record when the pulse is well formed
    alarm: float | None
    problem: Skip | None = None  # why the pulse cannot give a sample


def describe_pulse(heads: list[dict], index: int) -> str:
    stamp = heads[index]["timestamp_ns"]
    when = "no timestamp" if stamp is None else f"{ns_to_datetime(stamp).isoformat()} ({stamp} ns)"
    return f"record {index} {heads[index]['name']!r} at {when}"


def _number(storage: ReadStorage, value: Any, reduce: Callable) -> float | None:
    """A scalar parameter as a number; waveform parameters are reduced (min / max)."""
    if isinstance(value, Waveform):
        array = storage._decode_waveform(value)
        return float(reduce(array)) if array.size else None
    return float(value) if isinstance(value, int | float) else None


def _alarm_matches(value: float | None, alarm: int) -> bool:
    if value is None or value == 0:
        return False
    return alarm == -1 or value == alarm


def group_pulses(storage: ReadStorage, heads: list[dict], var_id: str) -> list[Pulse]:
    """Group consecutive records sharing a timestamp into pulses and flag malformed ones.

    A well-formed pulse holds exactly one status record and exactly one record per trace
    name (``Trace1``, ``Trace2``, ``var_id``: those the file uses). A lone group with one
    status record but a trace missing is a pulse with a missing trace. Other runs of
    malformed groups are out-of-order pulses: one skipped pulse per status record in the run
    (at least one), which resynchronises on the next well-formed group.
    """
    suffixes = [
        s
        for s in dict.fromkeys(("Trace1", "Trace2", var_id))
        if any(head["name"].endswith(s) for head in heads)
    ]
    groups: list[list[int]] = []
    for i, head in enumerate(heads):
        stamp = head["timestamp_ns"]
        if groups and stamp is not None and heads[groups[-1][0]]["timestamp_ns"] == stamp:
            groups[-1].append(i)
        else:
            groups.append([i])

    def statuses_of(records) -> list[int]:
        return [i for i in records if "Alarm" in heads[i]["parameters"]]

    def counts_of(group) -> dict[str, int]:
        return {s: sum(heads[i]["name"].endswith(s) for i in group) for s in suffixes}

    def alarm_of(status: int) -> float | None:
        return _number(storage, heads[status]["parameters"]["Alarm"], np.max)

    pulses: list[Pulse] = []
    bad_run: list[list[int]] = []

    def flush_bad_run() -> None:
        records = tuple(i for group in bad_run for i in group)
        statuses = statuses_of(records)
        counts = counts_of(records)
        if len(bad_run) == 1 and len(statuses) == 1 and max(counts.values(), default=0) <= 1:
            missing = [f"*{s}" for s, n in counts.items() if n == 0]
            detail = (
                f"pulse of {describe_pulse(heads, statuses[0])} has no record named {', '.join(missing)}"
            )
            skip = Skip(SKIP_MISSING_TRACE, detail, "pulse")
            pulses.append(
                Pulse(
                    records, heads[statuses[0]]["timestamp_ns"], None, alarm_of(statuses[0]), skip
                )
            )
        else:
            for anchor in statuses or [records[0]]:
                detail = (
                    f"pulse of {describe_pulse(heads, anchor)}: records {list(records)} do not form "
                    "(Trace1, Trace2, status) triples sharing one timestamp"
                )
                alarm = alarm_of(anchor) if anchor in statuses else None
                pulses.append(
                    Pulse(
                        records,
                        heads[anchor]["timestamp_ns"],
                        None,
                        alarm,
                        Skip(SKIP_TIMESTAMP_MISMATCH, detail, "pulse"),
                    )
                )
        bad_run.clear()

    for group in groups:
        statuses = statuses_of(group)
        well_formed = (
            len(statuses) == 1
            and heads[group[0]]["timestamp_ns"] is not None
            and all(n == 1 for n in counts_of(group).values())
            and var_id in suffixes
        )
        if not well_formed:
            bad_run.append(group)
            continue
        if bad_run:
            flush_bad_run()
        trace = next(i for i in group if heads[i]["name"].endswith(var_id))
        pulses.append(
            Pulse(tuple(group), heads[group[0]]["timestamp_ns"], trace, alarm_of(statuses[0]))
        )
    if bad_run:
        flush_bad_run()
    return pulses


def triple_rules(
    storage: ReadStorage, heads: list[dict], var_id: str, alarm: int
) -> tuple[list[Pick], list[Skip], list[Pulse]]:
    """Samples of a file with status records (spec §1); a skip is logged when a sample is lost.

    Also returns the file's pulses, where the in-file references are looked up.
    """
    if not any(head["name"].endswith(var_id) for head in heads):
        return [], [Skip(SKIP_MISSING_TRACE, f"file has no record named *{var_id}", "file")], []
    pulses = group_pulses(storage, heads, var_id)
    if alarm == 0:
        for i, head in enumerate(heads):
            value = head["parameters"].get("Alarm")
            if value is not None and _number(storage, value, np.max):
                return [], [
                    Skip(
                        SKIP_MISLABELLED,
                        f"normal file holds a pulse with Alarm={value!r}: {describe_pulse(heads, i)}",
                        "file",
                    )
                ], pulses
        picks = [
            Pick(p.trace_index, p.timestamp_ns, p.records, k)
            for k, p in enumerate(pulses)
            if p.problem is None
        ]
        return picks, [p.problem for p in pulses if p.problem is not None], pulses

    picks: list[Pick] = []
    skipped: list[Skip] = []
    logged: set[int] = set()

    def log(k: int) -> None:
        if k not in logged:
            logged.add(k)
            skipped.append(pulses[k].problem)

    trips = [k for k, pulse in enumerate(pulses) if _alarm_matches(pulse.alarm, alarm)]
    if not trips:
        wanted = "any non-zero Alarm" if alarm == -1 else f"Alarm={alarm}"
        return [], [Skip(SKIP_NO_TRIP, f"anomaly file has no pulse with {wanted}", "file")], pulses
    for k in trips:
        trip = pulses[k]
        if trip.problem is not None:
            log(k)
        elif k == 0:
            detail = f"trip on the file's first pulse has no precursor: {describe_pulse(heads, trip.records[0])}"
            skipped.append(Skip(SKIP_FIRST_PULSE_TRIP, detail, "pulse"))
        elif pulses[k - 1].problem is not None:
            log(k - 1)
        else:
            before = pulses[k - 1]
            picks.append(Pick(before.trace_index, before.timestamp_ns, before.records, k - 1))
    return picks, skipped, pulses


def tag_rules(heads: list[dict], var_id: str, alarm: int) -> tuple[list[Pick], list[Skip]]:
    """Samples of an older file without status records: its ``Before``-tagged var_id traces."""
    picks: list[Pick] = []
    skipped: list[Skip] = []
    for i, head in enumerate(heads):
        if head["name"].endswith(var_id) and "Before" in head["tags"]:
            stamp = head["timestamp_ns"]
            if stamp is None:
                skipped.append(
                    Skip(
                        SKIP_TIMESTAMP_MISMATCH,
                        f"{describe_pulse(heads, i)} is tagged 'Before' but has no timestamp",
                        "pulse",
                    )
                )
                continue
            pulse = tuple(
                j
                for j, other in enumerate(heads)
                if other["timestamp_ns"] == stamp and "Before" in other["tags"]
            )
            picks.append(Pick(i, stamp, pulse))
    if picks or skipped:
        return picks, skipped
    if alarm != 0 and not any("During" in head["tags"] for head in heads):
        return [], [
            Skip(SKIP_NO_TRIP, "anomaly file has no record tagged 'During' or 'Before'", "file")
        ]
    return [], [
        Skip(SKIP_MISSING_TRACE, f"file has no record named *{var_id} tagged 'Before'", "file")
    ]


def low_bwidth(storage: ReadStorage, heads: list[dict], cut: float | None) -> Skip | None:
    if cut is None:
        return None
    for i, head in enumerate(heads):
        value = head["parameters"].get("bWidth")
        width = None if value is None else _number(storage, value, np.min)
        if width is not None and width < cut:
            return Skip(
                SKIP_LOW_BWIDTH, f"bWidth={width:g} us < {cut:g} in {describe_pulse(heads, i)}", "file"
            )
    return None
