"""`driver.py --epics-input`: score every pulse straight from the DCM waveform and settings PVs.

Subscribes (Channel Access through caproto's threading client, or pvAccess through p4p) to

* `live.waveform_pv`: the DCM waveform, one update per pulse, stamped with the pulse's time;
  the model's window is `[begin - waveform_offset, + shift)` of it (serving.json's window rule);
* `live.counter_pv` / `live.alarm_pv` (optional): the pulse counter and MPS alarm code, stamped
  with the same time as the waveform;
* the run's settings PVs (serving.json `settings.features` and production-filter PVs, each
  after `live.settings_pv_prefix`): the latest value of each is the setting in force.

and feeds each pulse to `live.engine.LiveScorer` - the engine of `--watch`: the same reference
rule (a pulse arrives alone, so its references are the last normal pulses of its configuration
group, as a file's pulses take the ones before them), threshold, unseen-configuration flag and
ledger reasons - through the exported artefact's per-pulse path (`serve_one`).

Nothing is skipped silently. Per session RUN/epics/<start>-<waveform PV>/:
    alarms.csv    one row per scored pulse (engine.CSV_COLUMNS; `file` is the waveform PV,
                  `pulse_in_file` the counter; `label` -1: the next pulse is not known yet)
    ledger.json   every pulse not scored, with its reason: `missed_pulses` (the counter jumped:
                  updates lost, e.g. while the IOC restarted), `timestamp_gap` (no counter PV:
                  a step of more than one pulse period, which beam-off time also makes),
                  `no_waveform` (a counter update whose waveform never came within
                  `pulse_wait_s`), `malformed_waveform` (too short, or not finite), and the
                  engine's `no_settings` (a settings PV not connected), `non_production`,
                  `no_reference`
    state.json    counts, the last pulse scored, the committed length of alarms.csv
A pulse is scored once: an update at or before the last pulse handled (a monitor's first
value after a reconnect repeats the last one) is counted as a repeat, not scored again.
Subscriptions survive an IOC restart: the client reconnects (searches are re-sent every
`_KICK_S` while a PV is down) and scoring resumes with the same predictor and buffers.
Rows are flushed per pulse; alarms.csv is fsynced and state.json replaced every `_COMMIT_S`.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import logging
import os
import queue
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from data_preparation.ledger import NO_SETTINGS, DataLedger
from live.engine import CSV_COLUMNS, PulseRow, csv_row
from utils.run_folder import atomic_write_json, create_run_dir

log = logging.getLogger("beamwatch.epics_input")

MISSED_PULSES = "missed_pulses"
TIMESTAMP_GAP = "timestamp_gap"
NO_WAVEFORM = "no_waveform"
MALFORMED_WAVEFORM = "malformed_waveform"
_EPICS_EPOCH_S = 631_152_000  # 1990-01-01 in Unix seconds (CA time stamps count from it)
_NS = 1_000_000_000
_KICK_S = 0.5
_PVA_REQUEST = "record[queueSize=240]field()"
_COMMIT_S = 1.0


@dataclasses.dataclass(frozen=True)
class InputPVs:
    """The PVs one pulse is made of: waveform, optional counter and alarm, settings in order."""

    waveform: str
    counter: str | None
    alarm: str | None
    settings: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n in (self.waveform, self.counter, self.alarm, *self.settings) if n)


@dataclasses.dataclass
class Pulse:
    """One assembled pulse: its time, waveform, counter (None: no counter PV or it never came),
    alarm code and the settings in force (NaN where a settings PV is not connected)."""

    timestamp_ns: int
    waveform: np.ndarray
    counter: int | None
    alarm: int
    settings: np.ndarray


@dataclasses.dataclass
class Dropped:
    """Pulses that will not be scored: `count` of them, a ledger reason and a detail."""

    reason: str
    count: int
    detail: str


class PulseAssembler:
    """Joins the per-pulse updates (waveform, counter, alarm: same time stamp) into pulses, in
    time order, and finds the pulses that never came (counter jumps or timestamp gaps).

    `add(name, timestamp_ns, value, now)` with each update; `ready(now)` returns the pulses and
    drops that are due: the oldest pending pulse once all its parts arrived or `wait_s` passed.
    """

    def __init__(self, pvs: InputPVs, wait_s: float, pulse_rate_hz: float):
        self.pvs = pvs
        self.wait_s = wait_s
        self.period_ns = int(round(_NS / pulse_rate_hz))
        self.settings = np.full(len(pvs.settings), np.nan)
        self._settings_index = {name: i for i, name in enumerate(pvs.settings)}
        self._parts = {n for n in (pvs.waveform, pvs.counter, pvs.alarm) if n}
        self._pending: dict[int, dict] = {}  # timestamp -> {pv name: value, "_since": arrival}
        self.last_ns: int | None = None
        self.last_counter: int | None = None
        self.repeats = 0

    def add(self, name: str, timestamp_ns: int, value, now: float) -> None:
        if name in self._settings_index:
            self.settings[self._settings_index[name]] = float(np.ravel(value)[0])
            return
        if self.last_ns is not None and timestamp_ns <= self.last_ns:
            self.repeats += 1  # a reconnect's first value, or an update after its pulse was due
            return
        parts = self._pending.setdefault(timestamp_ns, {"_since": now})
        parts[name] = value
        # the settings in force when the pulse's last part came (not when it is scored: a
        # later disconnect, already queued, must not reach back)
        parts["_settings"] = self.settings.copy()

    def disconnected(self, name: str) -> None:
        """A settings PV went away: the setting is not known until it is back."""
        if name in self._settings_index:
            self.settings[self._settings_index[name]] = np.nan

    def ready(self, now: float) -> list[Pulse | Dropped]:
        out: list[Pulse | Dropped] = []
        while self._pending:
            ts = min(self._pending)
            parts = self._pending[ts]
            if not self._parts <= parts.keys() and now - parts["_since"] < self.wait_s:
                break
            del self._pending[ts]
            counter = None
            if self.pvs.counter and self.pvs.counter in parts:
                counter = int(np.ravel(parts[self.pvs.counter])[0])
            out.extend(self._gap(ts, counter))
            self.last_ns = ts
            if counter is not None:
                self.last_counter = counter
            if self.pvs.waveform not in parts:
                out.append(Dropped(NO_WAVEFORM, 1, f"pulse {counter} at {ts} ns: counter "
                                                   f"without waveform within {self.wait_s} s"))
                continue
            alarm = 0
            if self.pvs.alarm and self.pvs.alarm in parts:
                alarm = int(np.ravel(parts[self.pvs.alarm])[0])
            out.append(Pulse(ts, np.asarray(parts[self.pvs.waveform]), counter, alarm,
                             parts["_settings"]))
        return out

    def _gap(self, ts: int, counter: int | None) -> list[Dropped]:
        if counter is not None and self.last_counter is not None:
            if counter > self.last_counter + 1:
                missing = counter - self.last_counter - 1
                return [Dropped(MISSED_PULSES, missing, f"pulses {self.last_counter + 1}.."
                                                        f"{counter - 1} never came (the counter "
                                                        f"jumped {self.last_counter} -> {counter})")]
            if counter <= self.last_counter:
                log.warning("pulse counter went back (%d -> %d): the IOC restarted its count; "
                            "gaps are counted from here", self.last_counter, counter)
            return []
        if self.pvs.counter is None and self.last_ns is not None:
            missing = int(round((ts - self.last_ns) / self.period_ns)) - 1
            if missing > 0:
                return [Dropped(TIMESTAMP_GAP, missing, f"{(ts - self.last_ns) / 1e9:.3f} s "
                                                        "since the previous pulse")]
        return []


# ----------------------------------------------------------------------------------------------
# Transports: each update becomes ("value", name, timestamp_ns, array) or ("down", name) on a
# queue, from the client library's threads


class CaTransport:
    """Channel Access monitors through caproto's threading client."""

    protocol = "ca"

    def __init__(self, updates: queue.Queue):
        self.updates = updates
        self._context = None
        self._pvs: list = []
        self._callbacks: list = []  # caproto holds callbacks weakly

    def start(self, names: tuple[str, ...]) -> None:
        from caproto.threading.client import Context

        self._context = Context()
        self._pvs = self._context.get_pvs(*names, connection_state_callback=self._on_state)
        for pv in self._pvs:
            callback = functools.partial(self._on_update, pv.name)
            self._callbacks.append(callback)
            pv.subscribe(data_type="time").add_callback(callback)

    def _on_update(self, name: str, subscription, response) -> None:
        stamp = response.metadata.stamp
        ts = (int(stamp.secondsSinceEpoch) + _EPICS_EPOCH_S) * _NS + int(stamp.nanoSeconds)
        self.updates.put(("value", name, ts, np.array(response.data)))

    def _on_state(self, pv, state: str) -> None:
        if state == "disconnected":
            self.updates.put(("down", pv.name, 0, None))

    def connected(self, name: str) -> bool:
        return any(pv.name == name and pv.connected for pv in self._pvs)

    def kick(self) -> None:
        """Resend the searches still unanswered now: caproto backs its retries off to 5 s
        apart, so a restarted IOC would be found seconds late. The same searches (same ids)
        go out again, so an answer in flight cannot connect a PV twice. caproto has no public
        call for this; `_search_now` is the event its own retry loop waits on."""
        if any(not pv.connected for pv in self._pvs):
            self._context.broadcaster._search_now.set()

    def close(self) -> None:
        if self._context is not None:
            self._context.disconnect()


class PvaTransport:
    """pvAccess monitors through p4p (NTScalar values; reconnects by itself)."""

    protocol = "pva"

    def __init__(self, updates: queue.Queue):
        self.updates = updates
        self._context = None
        self._subscriptions: list = []
        self._up: set[str] = set()

    def start(self, names: tuple[str, ...]) -> None:
        from p4p.client.thread import Context

        self._context = Context("pva")
        # a deep server-side queue: pvAccess squashes updates a slow client has not taken yet,
        # which would merge two pulses' counters; what still overflows is a counter jump
        self._subscriptions = [self._context.monitor(n, functools.partial(self._on_update, n),
                                                     request=_PVA_REQUEST, notify_disconnect=True)
                               for n in names]

    def _on_update(self, name: str, value) -> None:
        if isinstance(value, Exception):
            self._up.discard(name)
            self.updates.put(("down", name, 0, None))
            return
        self._up.add(name)
        seconds, nanoseconds = value.raw_stamp
        self.updates.put(("value", name, int(seconds) * _NS + int(nanoseconds),
                          np.array(value)))

    def connected(self, name: str) -> bool:
        return name in self._up

    def kick(self) -> None:
        return None  # pvxs re-searches by itself

    def close(self) -> None:
        for subscription in self._subscriptions:
            subscription.close()
        if self._context is not None:
            self._context.close()


TRANSPORTS = {"ca": CaTransport, "pva": PvaTransport}


# ----------------------------------------------------------------------------------------------
# The loop


@dataclasses.dataclass
class EpicsSummary:
    session: Path
    pulses: int
    alarms: int
    unseen: int
    skipped: dict
    repeats: int
    seconds: float

    def line(self) -> str:
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items())) or "none"
        return (f"epics input summary: {self.pulses} pulses scored, {self.alarms} alarms, "
                f"{self.unseen} on unseen configurations, not scored: {skipped}; "
                f"{self.repeats} repeated updates ignored; {self.seconds:.0f} s; "
                f"log {self.session / 'alarms.csv'}")


def input_pvs(live_config, filter_columns: list[str]) -> InputPVs:
    """The PV names from the `live` config and the run's settings columns."""
    if not live_config.waveform_pv:
        raise ValueError("--epics-input: live.waveform_pv is not set; give the DCM waveform PV, "
                         "e.g. --set live.waveform_pv=SIM:DCM:Trace2 (docs/live.md)")
    prefix = live_config.settings_pv_prefix or ""
    return InputPVs(live_config.waveform_pv, live_config.counter_pv, live_config.alarm_pv,
                    tuple(prefix + name for name in filter_columns))


def run_epics_input(run_dir: Path, live_config, *, artefact: str = "saved_model",
                    pulse_rate_hz: float = 60.0, idle_exit_s: float | None = None,
                    echo: bool = True,
                    publishers: tuple[Callable[[PulseRow, float], None], ...] = (),
                    stop: threading.Event | None = None,
                    on_pulse: Callable[[Pulse | Dropped], None] | None = None) -> EpicsSummary:
    """Score pulses from EPICS until Ctrl-C, `stop` is set, or no update came for
    `idle_exit_s` seconds (module docstring). `on_pulse` sees each pulse or drop (tests)."""
    from live.formats import find_artefact
    from live.serving import InputLayout
    from live.watch import open_scorer, watch_line
    from parser.configs import load_config

    run_dir = Path(run_dir)
    find_artefact(artefact)  # an unknown name is refused before anything is opened
    max_age = load_config(run_dir / "config.yaml").beam_settings.max_settings_age_s  # as --watch
    scorer, meta = open_scorer(run_dir, artefact, max_age, per_pulse=True)
    layout = InputLayout.from_dict(meta["layout"])
    columns = scorer.filter_columns if meta["settings"]["use"] else []
    pvs = input_pvs(live_config, columns)
    window = meta["window"]
    start = int(window["begin"]) - live_config.waveform_offset
    if start < 0:
        raise ValueError(f"live.waveform_offset {live_config.waveform_offset} is past the window "
                         f"start {window['begin']} of the run's serving.json")
    stop_at = start + layout.trace_length

    updates: queue.Queue = queue.Queue()
    transport = TRANSPORTS[live_config.input_protocol](updates)
    transport.start(pvs.names)
    deadline = time.monotonic() + live_config.connect_timeout_s
    last_kick = time.monotonic()
    while not transport.connected(pvs.waveform):
        if time.monotonic() > deadline:
            transport.close()
            raise TimeoutError(f"--epics-input: {pvs.waveform} did not connect over "
                               f"{live_config.input_protocol} within "
                               f"{live_config.connect_timeout_s:g} s (is the IOC up, and in "
                               "the EPICS address list?)")
        if time.monotonic() - last_kick >= _KICK_S:
            transport.kick()
            last_kick = time.monotonic()
        time.sleep(0.05)

    session = create_run_dir(run_dir / "epics", pvs.waveform)
    alarms_path = session / "alarms.csv"
    with open(alarms_path, "w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerow(CSV_COLUMNS)
    alarms = open(alarms_path, "a", newline="")
    ledger = DataLedger()
    counts: Counter = Counter()
    skipped: Counter = Counter()
    assembler = PulseAssembler(pvs, live_config.pulse_wait_s, pulse_rate_hz)
    log.info("EPICS input: %s over %s (%d settings PVs) with %s (%s); session %s", pvs.waveform,
             live_config.input_protocol, len(pvs.settings), artefact, run_dir.name, session)
    started = last_update = last_commit = time.monotonic()

    def commit() -> None:
        alarms.flush()
        os.fsync(alarms.fileno())
        atomic_write_json(session / "ledger.json", ledger.to_dict())
        atomic_write_json(session / "state.json", {
            "waveform_pv": pvs.waveform, "protocol": live_config.input_protocol,
            "alarms_bytes": alarms.tell(), "last_timestamp_ns": assembler.last_ns,
            "last_counter": assembler.last_counter, "scored": counts["pulses"],
            "not_scored": dict(skipped), "repeats": assembler.repeats})

    def handle(item: Pulse | Dropped) -> None:
        if isinstance(item, Dropped):
            ledger.add(pvs.waveform, item.reason, item.count, item.detail)
            skipped[item.reason] += item.count
            return
        trace = np.asarray(item.waveform, np.float32).reshape(-1)
        if trace.size < stop_at or not np.all(np.isfinite(trace[start:stop_at])):
            detail = (f"{trace.size} samples, the window needs {stop_at}" if trace.size < stop_at
                      else "non-finite samples in the window")
            ledger.add(pvs.waveform, MALFORMED_WAVEFORM, 1,
                       f"pulse {item.counter} at {item.timestamp_ns} ns: {detail}")
            skipped[MALFORMED_WAVEFORM] += 1
            return
        index = item.counter if item.counter is not None else counts["seen"]
        counts["seen"] += 1
        unknown = [name for name, v in zip(pvs.settings, item.settings, strict=True)
                   if np.isnan(v)]
        if unknown:  # the engine would ledger it no_settings; here the PVs can be named
            shown = ", ".join(unknown[:3]) + (f" and {len(unknown) - 3} more"
                                              if len(unknown) > 3 else "")
            ledger.add(pvs.waveform, NO_SETTINGS, 1, f"pulse {item.counter} at "
                                                     f"{item.timestamp_ns} ns: no value from "
                                                     f"{shown} (not connected)")
            skipped[NO_SETTINGS] += 1
            return
        settings = item.settings[None] if len(pvs.settings) else None
        rows, dropped = scorer.score_file(pvs.waveform, trace[None, start:stop_at],
                                          np.array([item.timestamp_ns], np.int64),
                                          np.array([item.alarm], np.int64), settings,
                                          continues=True)  # one stream: the history goes on
        for reason, count, detail in dropped:
            ledger.add(pvs.waveform, reason, count,
                       f"pulse {item.counter} at {item.timestamp_ns} ns: {detail}")
            skipped[reason] += count
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        for row in rows:
            row.pulse_in_file = index
            row.label = -1  # live, the next pulse has not come yet
            writer.writerow(csv_row(row))
            counts["pulses"] += 1
            counts["alarms"] += int(row.alarm)
            counts["unseen"] += int(bool(row.unseen_configuration))
            for publish in publishers:
                publish(row, row.threshold)
            if echo:
                print(watch_line(row), file=sys.stdout, flush=True)
        alarms.write(text.getvalue())
        alarms.flush()

    try:
        while stop is None or not stop.is_set():
            try:
                kind, name, ts, value = updates.get(timeout=0.05)
                now = time.monotonic()
                if kind == "value":
                    assembler.add(name, ts, value, now)
                    last_update = now
                else:
                    assembler.disconnected(name)
                    log.warning("EPICS input: %s disconnected", name)
                while True:  # drain what else has come
                    kind, name, ts, value = updates.get_nowait()
                    if kind == "value":
                        assembler.add(name, ts, value, now)
                    else:
                        assembler.disconnected(name)
            except queue.Empty:
                pass
            now = time.monotonic()
            for item in assembler.ready(now):
                handle(item)
                if on_pulse is not None:
                    on_pulse(item)
            if now - last_kick >= _KICK_S:
                transport.kick()
                last_kick = now
            if now - last_commit >= _COMMIT_S:
                commit()
                last_commit = now
            if idle_exit_s is not None and now - last_update >= idle_exit_s:
                break
    except KeyboardInterrupt:
        log.info("interrupted: stopping cleanly")
    finally:
        transport.close()
        for item in assembler.ready(float("inf")):  # what is still pending is due now
            handle(item)
            if on_pulse is not None:
                on_pulse(item)
        commit()
        alarms.close()
    summary = EpicsSummary(session, counts["pulses"], counts["alarms"], counts["unseen"],
                           dict(skipped), assembler.repeats, time.monotonic() - started)
    if echo:
        print(summary.line())
    log.info("%s", summary.line())
    return summary
