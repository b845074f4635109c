"""Cut the sample windows out of a DCM file: ``get_traces`` and ``pulse_windows``.

``get_traces`` gives the training samples (with the optional quality cut and in-file reference
pulses); ``pulse_windows`` gives every well-formed pulse with its alarm, for live scoring.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from enterprise_tools.biet_reader import ReadStorage, Waveform
from enterprise_tools.sample_rules import (
    SKIP_MISSING_TRACE,
    SKIP_QUALITY,
    SKIP_SHORT_TRACE,
    Pick,
    Pulse,
    Skip,
    describe_pulse,
    group_pulses,
    low_bwidth,
    tag_rules,
    triple_rules,
)


@dataclass
class TraceSet:
    """The samples of one file: windows, their pulse timestamps and what was skipped.

    With ``get_traces(..., references=K)`` each sample also carries the windows of the K
    well-formed, non-tripping pulses just before it in the same file (oldest first,
    right-aligned: slot K-1 is the pulse immediately before; empty slots are zeros, with
    timestamp -1). Left as None they are filled with K = 0 arrays.
    """

    traces: np.ndarray  # float32 [n, shift]
    timestamps_ns: np.ndarray  # int64 [n]
    skipped: list[Skip] = field(default_factory=list)
    references: np.ndarray | None = None  # float32 [n, K, shift]
    reference_count: np.ndarray | None = None  # int16 [n]: filled slots (the last ones)
    reference_timestamp_ns: np.ndarray | None = None  # int64 [n, K], -1 for empty slots

    def __post_init__(self):
        n, shift = len(self.timestamps_ns), int(np.shape(self.traces)[-1])
        if self.references is None:
            self.references = np.zeros((n, 0, shift), dtype=np.float32)
        if self.reference_timestamp_ns is None:
            self.reference_timestamp_ns = np.full((n, self.references.shape[1]), -1, np.int64)
        if self.reference_count is None:
            self.reference_count = (self.reference_timestamp_ns >= 0).sum(axis=1).astype(np.int16)


@dataclass(frozen=True)
class QualityCut:
    """JLab's beam-quality cut on the ``trace`` window: peaks, median and first quartile."""

    min_peaks: int = 100
    min_median: float = 0.02
    max_q1: float = 0.0075
    trace: str = "Trace1"

    def __post_init__(self):
        if self.min_peaks < 0 or not self.trace:
            raise ValueError(
                f"QualityCut needs min_peaks >= 0 and a trace name, got min_peaks={self.min_peaks}, "
                f"trace={self.trace!r}"
            )

    def check(self, window: np.ndarray) -> str | None:
        """Return why ``window`` fails the cut, or None when it passes."""
        from scipy.signal import find_peaks  # only needed when a cut is asked for

        peaks, _ = find_peaks(window, distance=75, height=0.002)
        median = float(np.median(window))
        q1 = float(np.percentile(window, 25))
        if len(peaks) >= self.min_peaks and median >= self.min_median and q1 <= self.max_q1:
            return None
        return (
            f"{self.trace} window has {len(peaks)} peaks (need >= {self.min_peaks}), median "
            f"{median:.4g} (need >= {self.min_median}), first quartile {q1:.4g} "
            f"(need <= {self.max_q1})"
        )


def _check_get_traces_args(begin, shift, alarm, bwidth_cut, quality_cut) -> None:
    if isinstance(begin, bool) or not isinstance(begin, int) or begin < 0:
        raise ValueError(f"begin must be an int >= 0, got {begin!r}")
    if isinstance(shift, bool) or not isinstance(shift, int) or shift <= 0:
        raise ValueError(f"shift must be an int > 0, got {shift!r}")
    if isinstance(alarm, bool) or not isinstance(alarm, int) or alarm < -1:
        raise ValueError(
            f"alarm must be 0 (normal file), -1 (any trip) or an alarm code > 0, got {alarm!r}"
        )
    if bwidth_cut is not None and not isinstance(bwidth_cut, int | float):
        raise ValueError(f"bwidth_cut must be a number or None, got {bwidth_cut!r}")
    if quality_cut is not None and not isinstance(quality_cut, QualityCut):
        raise ValueError(
            f"quality_cut must be a QualityCut or None, got {type(quality_cut).__name__}"
        )


def _window(storage, heads, index, begin, shift) -> tuple[np.ndarray | None, Skip | None]:
    wave = heads[index]["value"]
    if not isinstance(wave, Waveform):
        return None, Skip(
            SKIP_MISSING_TRACE, f"{describe_pulse(heads, index)} holds no waveform", "pulse"
        )
    if wave.size < begin + shift:
        detail = f"{describe_pulse(heads, index)} has {wave.size} samples, window needs {begin + shift}"
        return None, Skip(SKIP_SHORT_TRACE, detail, "pulse")
    return storage._decode_window(wave, begin, shift), None


def get_traces(
    path: Any,
    var_id: str = "Trace2",
    begin: int = 3000,
    shift: int = 10000,
    alarm: int = 0,
    bwidth_cut: float | None = 900,
    quality_cut: QualityCut | None = None,
    references: int = 0,
) -> TraceSet:
    """Extract the training windows ``[begin, begin + shift)`` of one DCM file (spec §1 rules).

    Args:
        path: the file (plain or gzip, by content) or a binary file object.
        var_id: suffix of the waveform record name that holds the sample trace.
        begin, shift: the window, in samples.
        alarm: 0 for a normal file; an alarm code (48 = errant beam) or -1 (any non-zero
            alarm) for an anomaly file, whose samples are the pulses before the trips.
        bwidth_cut: a file with any ``bWidth`` below it is skipped whole; None disables it.
        quality_cut: optional JLab beam-quality cut on the sampled pulse's ``Trace1`` window.
        references: K, how many in-file reference pulses to return per sample (0: none).
            A reference is a well-formed pulse of the same file, earlier than the sample's
            pulse (strictly earlier timestamp), whose ``Alarm`` is 0 and whose trace holds
            the window; the K nearest are taken. No quality cut applies to references (they
            show the machine as it was). Tag-rule files (``Before``/``During``) have none.

    Returns:
        ``TraceSet`` with float32 windows, their int64 pulse timestamps (ns, UTC) and every
        skipped file or pulse with its reason, plus the references (K = ``references``).
        ``CorruptFileError`` propagates.
    """
    _check_get_traces_args(begin, shift, alarm, bwidth_cut, quality_cut)
    if isinstance(references, bool) or not isinstance(references, int) or references < 0:
        raise ValueError(f"references must be an int >= 0, got {references!r}")
    with ReadStorage(path) as storage:
        # First pass decodes names, times and parameters only; waveforms stay descriptors.
        heads = [storage._record(i, lazy=True) for i in range(len(storage))]
        low = low_bwidth(storage, heads, bwidth_cut)
        if low is not None:
            return _trace_set([], [], [low], shift, references)
        pulses: list[Pulse] = []
        if any("Alarm" in head["parameters"] for head in heads):
            picks, skipped, pulses = triple_rules(storage, heads, var_id, alarm)
        else:
            picks, skipped = tag_rules(heads, var_id, alarm)
        windows, stamps = [], []
        refs = _References(storage, heads, pulses, references, begin, shift)
        for pick in picks:
            window, problem = _window(storage, heads, pick.index, begin, shift)
            if problem is None and quality_cut is not None:
                problem = _quality_problem(storage, heads, pick, begin, shift, quality_cut)
            if problem is not None:
                skipped.append(problem)
                continue
            windows.append(window)
            stamps.append(pick.timestamp_ns)
            refs.add(pick)
    return _trace_set(windows, stamps, skipped, shift, references, refs)


class _References:
    """The in-file references of the picked samples (see ``get_traces(references=K)``)."""

    def __init__(self, storage, heads, pulses: list[Pulse], k: int, begin: int, shift: int):
        self.storage, self.heads, self.pulses = storage, heads, pulses
        self.k, self.begin, self.shift = k, begin, shift
        self.windows: list[np.ndarray] = []  # [K, shift] per sample
        self.stamps: list[list[int]] = []
        self._decoded: dict[int, np.ndarray | None] = {}  # pulse position -> window

    def _usable(self, position: int) -> np.ndarray | None:
        """The window of pulse ``position`` when it may serve as a reference, else None."""
        if position not in self._decoded:
            pulse = self.pulses[position]
            window = None
            # A tripping pulse (any non-zero Alarm) or one whose Alarm cannot be read is no
            # picture of normal beam; a malformed pulse has no trustworthy trace.
            if pulse.problem is None and pulse.alarm == 0:
                window, problem = _window(
                    self.storage, self.heads, pulse.trace_index, self.begin, self.shift
                )
                window = None if problem is not None else window
            self._decoded[position] = window
        return self._decoded[position]

    def add(self, pick: Pick) -> None:
        if self.k == 0:
            return
        windows = np.zeros((self.k, self.shift), dtype=np.float32)
        stamps = [-1] * self.k
        slot = self.k - 1
        position = -1 if pick.position is None else pick.position - 1
        while slot >= 0 and position >= 0:
            pulse = self.pulses[position]
            if pulse.timestamp_ns is not None and pulse.timestamp_ns < pick.timestamp_ns:
                window = self._usable(position)
                if window is not None:
                    windows[slot] = window
                    stamps[slot] = pulse.timestamp_ns
                    slot -= 1
            position -= 1
        self.windows.append(windows)
        self.stamps.append(stamps)


def _quality_problem(storage, heads, pick: Pick, begin, shift, cut: QualityCut) -> Skip | None:
    candidates = [i for i in pick.pulse if heads[i]["name"].endswith(cut.trace)]
    if not candidates:
        detail = (
            f"pulse of {describe_pulse(heads, pick.index)} has no {cut.trace} record for the quality cut"
        )
        return Skip(SKIP_MISSING_TRACE, detail, "pulse")
    window, problem = _window(storage, heads, candidates[0], begin, shift)
    if problem is not None:
        return problem
    reason = cut.check(window)
    if reason is None:
        return None
    return Skip(SKIP_QUALITY, f"pulse of {describe_pulse(heads, pick.index)}: {reason}", "pulse")


def _trace_set(
    windows: list, stamps: list, skipped: list[Skip], shift: int, k: int = 0,
    refs: _References | None = None,
) -> TraceSet:
    traces = np.stack(windows) if windows else np.empty((0, shift), dtype=np.float32)
    n = len(stamps)
    if refs is not None and k and n:
        references = np.stack(refs.windows)
        reference_stamps = np.asarray(refs.stamps, dtype=np.int64)
    else:
        references = np.zeros((n, k, shift), dtype=np.float32)
        reference_stamps = np.full((n, k), -1, dtype=np.int64)
    return TraceSet(
        traces, np.asarray(stamps, dtype=np.int64), skipped, references,
        (reference_stamps >= 0).sum(axis=1).astype(np.int16), reference_stamps,
    )


@dataclass
class FilePulses:
    """Every well-formed pulse of one file, in file order, for live scoring."""

    traces: np.ndarray  # float32 [n, shift]
    timestamps_ns: np.ndarray  # int64 [n]
    alarms: np.ndarray  # int64 [n], the status record's Alarm (0 when none / tag-format file)
    skipped: list[Skip] = field(default_factory=list)


def pulse_windows(
    path: Any,
    var_id: str = "Trace2",
    begin: int = 3000,
    shift: int = 10000,
    bwidth_cut: float | None = 900,
) -> FilePulses:
    """The window of EVERY well-formed pulse of one DCM file, with its alarm code.

    ``get_traces`` picks training samples (a normal file's pulses, the pulse before each trip);
    live scoring instead judges every pulse as it arrives and learns its label only from the
    pulse after it. The file rules are the same (``bWidth`` cut, pulse grouping and malformed
    pulses as in ``get_traces``); an older Before/During file gives its ``Before`` pulses with
    alarm 0. ``CorruptFileError`` propagates.
    """
    _check_get_traces_args(begin, shift, 0, bwidth_cut, None)
    with ReadStorage(path) as storage:
        heads = [storage._record(i, lazy=True) for i in range(len(storage))]
        low = low_bwidth(storage, heads, bwidth_cut)
        if low is not None:
            return FilePulses(np.empty((0, shift), np.float32), np.empty(0, np.int64),
                            np.empty(0, np.int64), [low])
        skipped: list[Skip] = []
        if any("Alarm" in head["parameters"] for head in heads):
            if not any(head["name"].endswith(var_id) for head in heads):
                picks = []
                skipped.append(Skip(SKIP_MISSING_TRACE, f"file has no record named *{var_id}", "file"))
            else:
                pulses = group_pulses(storage, heads, var_id)
                skipped += [p.problem for p in pulses if p.problem is not None]
                picks = [(p.trace_index, p.timestamp_ns, int(p.alarm or 0))
                         for p in pulses if p.problem is None]
        else:
            tagged, tag_skips = tag_rules(heads, var_id, 0)
            skipped += tag_skips
            picks = [(pick.index, pick.timestamp_ns, 0) for pick in tagged]
        windows, stamps, alarms = [], [], []
        for index, stamp, alarm in picks:
            window, problem = _window(storage, heads, index, begin, shift)
            if problem is not None:
                skipped.append(problem)
                continue
            windows.append(window)
            stamps.append(stamp)
            alarms.append(alarm)
    traces = np.stack(windows) if windows else np.empty((0, shift), dtype=np.float32)
    return FilePulses(traces, np.asarray(stamps, np.int64), np.asarray(alarms, np.int64), skipped)
