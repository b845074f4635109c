"""A simulated DCM IOC: the every-pulse stream served as EPICS PVs at 60 Hz, with faults on cue.

For tests, demos and benchmarks of the EPICS input (`live.epics_source`) without the machine.
It replays `enterprise_tools.sns_stream.pulse_stream` and serves, per pulse, all stamped with
the pulse's time:

    {prefix}DCM:Trace2       float32 waveform   the analysis window (data.begin .. + data.shift)
    {prefix}DCM:PulseCount   int                the stream's pulse number (counts on while the
                                                IOC is down: a jump is pulses never published)
    {prefix}DCM:Alarm        int                the pulse's MPS alarm code (48 errant, 0 none)
    {prefix}<settings PV>    float64            each beam-settings PV of the stream

Order per pulse: settings that changed, alarm, counter, waveform last. Channel Access through
caproto's asyncio server, or pvAccess through p4p's server (`protocol="pva"`, when installed).

Faults, by stream pulse number:
* `--restart-at N`: the command stops its IOC process at pulse N (every client is
  disconnected) and starts a fresh one `--restart-pause` seconds later, as an IOC restart does;
  the pulses in between are not published (a caproto server cancelled inside a process keeps
  its old listening socket, so a restart is a real process restart);
* `stall_at`: no update for `stall_s` (the PVs stay connected); those pulses are not published;
* `wrong_length_at`: that pulse's waveform is half the length.
A settings PV that disconnects on its own (with the rest up) is not simulated.

`published` lists (pulse number, stream timestamp ns) of every waveform served (the PVs carry
float seconds: a client sees the time to within a microsecond), so a test
can check that each was scored exactly once or ledgered. Servers bind to `interfaces` (default
127.0.0.1); the port follows EPICS_CA_SERVER_PORT / EPICS_PVAS_SERVER_PORT as for any IOC.

Run it (docs/live.md):
    python -m live.epics_ioc --prefix SIM: --minutes 10 [--restart-at 600 --stall-at 900 ...]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from enterprise_tools.sns_stream import StreamSpec, pulse_stream

log = logging.getLogger("beamwatch.epics_ioc")

WAVEFORM, COUNTER, ALARM = "DCM:Trace2", "DCM:PulseCount", "DCM:Alarm"
_LINGER_S = 0.5


@dataclasses.dataclass(frozen=True)
class IocFaults:
    """Faults one IOC process injects, by stream pulse number (restarts: `main`)."""

    stall_at: tuple[int, ...] = ()
    stall_s: float = 1.0
    wrong_length_at: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class IocSpec:
    """What the IOC serves: the stream, its names and pace, how long, where, which faults."""

    stream: StreamSpec
    seed: int = 0
    prefix: str = "SIM:"
    rate_hz: float = 60.0
    start_at: int = 0
    stop_at: int | None = None
    hold_s: float = 0.0
    protocol: str = "ca"
    interfaces: tuple[str, ...] = ("127.0.0.1",)
    faults: IocFaults = IocFaults()

    def __post_init__(self):
        if self.protocol not in ("ca", "pva"):
            raise ValueError(f"IocSpec.protocol {self.protocol!r}: expected 'ca' or 'pva'")
        if self.rate_hz <= 0 or self.start_at < 0 or (self.stop_at is not None
                                                      and self.stop_at <= self.start_at):
            raise ValueError(f"IocSpec: need rate_hz > 0 and 0 <= start_at < stop_at; got {self}")

    def pv(self, name: str) -> str:
        return f"{self.prefix}{name}"


class StreamPulse(NamedTuple):
    number: int
    timestamp_ns: int
    window: np.ndarray
    settings: np.ndarray
    alarm: int


def stream_pulses(spec: IocSpec) -> Iterator[StreamPulse]:
    """The stream's pulses from `start_at` to `stop_at`, one at a time (the pulses before
    `start_at` are simulated and passed over)."""
    number = 0
    for chunk in pulse_stream(spec.stream, spec.seed):
        n = len(chunk.timestamps_ns)
        if number + n <= spec.start_at:
            number += n
            continue
        for i in range(n):
            if spec.stop_at is not None and number >= spec.stop_at:
                return
            if number >= spec.start_at:
                yield StreamPulse(number, int(chunk.timestamps_ns[i]), chunk.traces[i],
                                  chunk.settings[i], int(chunk.alarms[i]))
            number += 1


class _CaServer:
    """Channel Access: a fresh caproto pvdb per (re)start, values carried over."""

    def __init__(self, spec: IocSpec):
        self.spec = spec
        self._task = None
        self._context = None
        self._pvs: dict = {}

    async def start(self, first) -> None:
        """Serve, with the PVs holding `first` pulse's values and time (no placeholder values
        a client could take for a pulse)."""
        from caproto import ChannelDouble, ChannelFloat, ChannelInteger
        from caproto.asyncio.server import Context

        spec = self.spec
        stamp = first.timestamp_ns / 1e9
        pvs = {spec.pv(WAVEFORM): ChannelFloat(value=first.window, max_length=spec.stream.shift,
                                               timestamp=stamp),
               spec.pv(COUNTER): ChannelInteger(value=first.number, timestamp=stamp),
               spec.pv(ALARM): ChannelInteger(value=first.alarm, timestamp=stamp)}
        for name, value in zip(spec.stream.pvs, first.settings, strict=True):
            pvs[spec.pv(name)] = ChannelDouble(value=float(value), precision=6, timestamp=stamp)
        self._pvs = pvs
        self._context = Context(pvs, interfaces=list(spec.interfaces))
        self._task = asyncio.ensure_future(self._context.run())
        await asyncio.sleep(0.2)  # bind
        if self._task.done() and self._task.exception() is not None:
            raise RuntimeError(f"simulated IOC could not start: {self._task.exception()}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
            # caproto cancels its circuits' tasks but leaves the client sockets open: close
            # them, so clients see the IOC go away as they would a real restart
            for circuit in list(self._context.circuits):
                circuit.client.close()

    async def post(self, name: str, value, stamp_s: float) -> None:
        await self._pvs[name].write(value, timestamp=stamp_s)


class _PvaServer:
    """pvAccess: p4p SharedPVs (NTScalar) on a p4p Server, rebuilt on each (re)start."""

    def __init__(self, spec: IocSpec):
        self.spec = spec
        self._server = None
        self._pvs: dict = {}

    async def start(self, first) -> None:
        from p4p.nt import NTScalar
        from p4p.server import Server
        from p4p.server.thread import SharedPV

        spec = self.spec
        stamp = first.timestamp_ns / 1e9
        values = {spec.pv(WAVEFORM): ("af", first.window), spec.pv(COUNTER): ("l", first.number),
                  spec.pv(ALARM): ("l", first.alarm),
                  **{spec.pv(p): ("d", float(v)) for p, v in zip(spec.stream.pvs, first.settings,
                                                                 strict=True)}}
        pvs = {}
        for name, (code, value) in values.items():
            pvs[name] = SharedPV(nt=NTScalar(code))
            pvs[name].open(value, timestamp=stamp)
        self._pvs = pvs
        self._server = Server(providers=[pvs], useenv=True,
                              conf={"EPICS_PVAS_INTF_ADDR_LIST": " ".join(spec.interfaces)})

    async def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            for pv in self._pvs.values():
                pv.close(destroy=True)
            self._server = None

    async def post(self, name: str, value, stamp_s: float) -> None:
        self._pvs[name].post(value, timestamp=stamp_s)


def _server(spec: IocSpec):
    return _PvaServer(spec) if spec.protocol == "pva" else _CaServer(spec)


class SimulatedIoc:
    """One IOC process's server, its asyncio loop in a thread; `published` grows as pulses are
    served (and each is appended to `published_file` when given, flushed)."""

    def __init__(self, spec: IocSpec, published_file: Path | None = None):
        self.spec = spec
        self.published: list[tuple[int, int]] = []
        self.published_file = published_file
        self.done = threading.Event()
        self.up = threading.Event()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="beamwatch-sim-ioc", daemon=True)

    def start(self, timeout_s: float = 30.0) -> SimulatedIoc:
        """Start serving; returns once the server is up (raises if it did not come up)."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.up.is_set() and not self.done.is_set() and time.monotonic() < deadline:
            self.up.wait(0.05)
        if self.error is not None or not self.up.is_set():
            self.stop()
            raise RuntimeError(f"simulated IOC did not start within {timeout_s} s: {self.error}")
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by start() / the caller
            self.error = exc
            log.error("simulated IOC stopped: %s", exc)
        finally:
            self.done.set()

    async def _serve(self) -> None:
        spec, faults = self.spec, self.spec.faults
        server = _server(spec)
        pulses = stream_pulses(spec)
        pulse = next(pulses, None)  # the stream up to start_at is simulated before serving
        if pulse is None:
            raise RuntimeError(f"the stream holds no pulse from {spec.start_at} on")
        await server.start(pulse)
        self.up.set()
        log.info("simulated IOC up: %s (%s) at %.0f Hz from pulse %d", spec.pv(WAVEFORM),
                 spec.protocol, spec.rate_hz, spec.start_at)
        period = 1.0 / spec.rate_hz
        if spec.hold_s > 0:
            await asyncio.sleep(spec.hold_s)
        started = time.monotonic()
        stalled_until = -1.0
        last_settings = None
        out = open(self.published_file, "a") if self.published_file is not None else None
        try:
            while pulse is not None and not self._stop.is_set():
                number, ts, window, settings, alarm = pulse
                slot = started + (number - spec.start_at) * period
                now = time.monotonic()
                if slot > now:
                    await asyncio.sleep(slot - now)
                if number in faults.stall_at:
                    stalled_until = time.monotonic() + faults.stall_s
                    log.info("simulated IOC stalls at pulse %d for %.1f s", number, faults.stall_s)
                if time.monotonic() >= stalled_until:
                    await self._publish(server, number, ts, window, settings, alarm,
                                        last_settings)
                    last_settings = settings
                    if out is not None:
                        out.write(f"{number},{ts}\n")
                        out.flush()
                pulse = next(pulses, None)
            await asyncio.sleep(_LINGER_S)  # let the last updates leave before closing
        finally:
            if out is not None:
                out.close()
            await server.stop()

    async def _publish(self, server, number: int, ts: int, window: np.ndarray,
                       settings: np.ndarray, alarm: int, last_settings) -> None:
        spec = self.spec
        stamp = ts / 1e9
        for i, (name, value) in enumerate(zip(spec.stream.pvs, settings, strict=True)):
            if last_settings is None or value != last_settings[i]:
                await server.post(spec.pv(name), float(value), stamp)
        await server.post(spec.pv(ALARM), int(alarm), stamp)
        await server.post(spec.pv(COUNTER), int(number), stamp)
        if number in spec.faults.wrong_length_at:
            window = window[: len(window) // 2]
        await server.post(spec.pv(WAVEFORM), np.asarray(window, np.float32), stamp)
        self.published.append((number, ts))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m live.epics_ioc",
        description="Serve the simulated every-pulse stream as DCM waveform and settings PVs "
                    "(a simulated IOC for the EPICS input; docs/live.md).")
    parser.add_argument("--prefix", default="SIM:", help="PV name prefix (default SIM:)")
    parser.add_argument("--protocol", choices=("ca", "pva"), default="ca")
    parser.add_argument("--minutes", type=float, default=10.0, help="beam time to serve")
    parser.add_argument("--rate", type=float, default=60.0, help="pulses per second (60)")
    parser.add_argument("--machine", choices=("demo", "tiny"), default="demo",
                        help="the simulated machine (SimulatorParams.demo or .tiny)")
    parser.add_argument("--seed", type=int, default=0, help="machine and stream seed")
    parser.add_argument("--begin", type=int, default=3000, help="window start (data.begin)")
    parser.add_argument("--shift", type=int, default=10000, help="window length (data.shift)")
    parser.add_argument("--interfaces", default="127.0.0.1",
                        help="addresses to serve on, comma-separated (default 127.0.0.1)")
    parser.add_argument("--start-at", type=int, default=0, metavar="N",
                        help="first stream pulse to serve")
    parser.add_argument("--stop-at", type=int, default=None, metavar="N",
                        help="stop before this stream pulse (default: the end of --minutes)")
    parser.add_argument("--restart-at", type=int, nargs="*", default=[], metavar="N",
                        help="pulse numbers at which the IOC process is stopped and, after "
                             "--restart-pause, started again (the pulses between are lost)")
    parser.add_argument("--restart-pause", type=float, default=1.0, metavar="S")
    parser.add_argument("--stall-at", type=int, nargs="*", default=[], metavar="N",
                        help="pulse numbers at which updates stall for --stall seconds")
    parser.add_argument("--stall", type=float, default=1.0, metavar="S")
    parser.add_argument("--wrong-length-at", type=int, nargs="*", default=[], metavar="N",
                        help="pulse numbers whose waveform is served half-length")
    parser.add_argument("--hold", type=float, default=0.0, metavar="S",
                        help="serve the first pulse's values for S seconds before streaming "
                             "(time for a predictor to connect)")
    parser.add_argument("--published", type=Path, default=None, metavar="FILE",
                        help="append 'pulse number,timestamp ns' of every served pulse")
    return parser


def _supervise(args, argv: Sequence[str]) -> int:
    """--restart-at: run one IOC process per stretch between restarts, pausing in between."""
    import subprocess

    rest, skip = [], False
    for item in argv:  # the same arguments without the restart ones
        if item in ("--restart-at", "--restart-pause", "--start-at", "--stop-at"):
            skip = True
            continue
        if skip and (item.lstrip("-").isdigit() or item.replace(".", "", 1).isdigit()):
            continue
        skip = False
        rest.append(item)
    starts = [args.start_at]
    stops = []
    for at in sorted(args.restart_at):
        stops.append(at)
        starts.append(at + int(round(args.restart_pause * args.rate)))
    stops.append(args.stop_at)
    for k, (start, stop) in enumerate(zip(starts, stops, strict=True)):
        if k:
            log.info("simulated IOC restarting: down for %.1f s", args.restart_pause)
            time.sleep(args.restart_pause)
        command = [sys.executable, "-m", "live.epics_ioc", *rest, "--start-at", str(start)]
        if k:
            command += ["--hold", "0"]
        if stop is not None:
            command += ["--stop-at", str(stop)]
        code = subprocess.run(command, check=False).returncode
        if code:
            return code
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from enterprise_tools.simulator import SimulatorParams

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.restart_at:
        return _supervise(args, argv)
    params = (SimulatorParams.tiny(seed=args.seed) if args.machine == "tiny"
              else SimulatorParams.demo(seed=args.seed))
    try:
        stream = StreamSpec(params, hours=args.minutes / 60.0, begin=args.begin, shift=args.shift)
        spec = IocSpec(stream, seed=args.seed, prefix=args.prefix, rate_hz=args.rate,
                       start_at=args.start_at, stop_at=args.stop_at, hold_s=args.hold,
                       protocol=args.protocol,
                       interfaces=tuple(a.strip() for a in args.interfaces.split(",")),
                       faults=IocFaults(tuple(args.stall_at), args.stall,
                                        tuple(args.wrong_length_at)))
    except ValueError as exc:
        print(f"epics_ioc: error: {exc}", file=sys.stderr)
        return 2
    ioc = SimulatedIoc(spec, args.published)
    try:
        ioc.start()
        while not ioc.done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    except RuntimeError as exc:
        print(f"epics_ioc: error: {exc}", file=sys.stderr)
        return 1
    finally:
        ioc.stop()
    log.info("simulated IOC: %d pulses published", len(ioc.published))
    return 0 if ioc.error is None else 1


if __name__ == "__main__":
    sys.exit(main())
