"""`--watch --epics PREFIX`: publish each new score as EPICS Channel Access process variables.

Channel Access through `caproto` (pure Python, pip-installable, with its own client for tests),
rather than PV Access through `p4p` (compiled EPICS 7 libraries): every SNS control-room tool
(Phoebus/CS-Studio, the archiver, alarm handlers, the machine-protection logic's soft IOCs)
speaks CA, and scalar PVs need nothing PVA adds. PVs, each stamped with the pulse's time:

    PREFIX:SCORE       float   latest score (0..1)
    PREFIX:ALARM       int     1 when the score is at or above the threshold
    PREFIX:THRESHOLD   float   the run's operating threshold
    PREFIX:UNSEEN      int     1 when the pulse's configuration is unseen (-1 unknown)
    PREFIX:PULSE_TIME  string  the pulse's UTC time
    PREFIX:COUNT       int     pulses published since start

The server runs its asyncio loop in a daemon thread; `publish` hands each value over without
waiting, so scoring never blocks on a slow client.

Locked down (docs/live.md, "Security defaults"):
* every PV is read-only; a client's write is refused, and the refusal is one warning line
  (at most one per `REFUSED_LOG_INTERVAL_S`, later ones counted into the next line), not
  caproto's traceback, so no client can flood the operator's console;
* the server binds to the `interfaces` it is given (config `live.epics_interfaces`, command line
  `--epics-interfaces`; default 127.0.0.1: serving the network is an operator's explicit choice);
* before binding, a Channel Access search for PREFIX:SCORE (the client address list of the
  standard EPICS_CA_* variables, as every CA client reads it) finds a server already publishing
  the prefix, and the start is refused with one line naming it.
The port and beacons follow the standard EPICS_CA_SERVER_PORT / EPICS_CAS_BEACON_* variables.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence

from live.engine import PulseRow, iso_time

log = logging.getLogger("beamwatch.epics")

PV_NAMES = ("SCORE", "ALARM", "THRESHOLD", "UNSEEN", "PULSE_TIME", "COUNT")
DEFAULT_INTERFACES = ("127.0.0.1",)
REFUSED_LOG_INTERVAL_S = 10.0


class DuplicatePrefixError(RuntimeError):
    """Another Channel Access server already publishes the prefix."""


class RefusedWriteFilter(logging.Filter):
    """Turns caproto's log record of a refused write (an ERROR with a traceback, on the
    `caproto.circ` logger) into one rate-limited warning line on `beamwatch.epics`.

    At most one line per `interval_s`; writes refused in between are counted and the count is
    given in the next line. `refused` counts every refused write (tests wait on it).
    """

    def __init__(self, prefix: str, interval_s: float = REFUSED_LOG_INTERVAL_S):
        super().__init__()
        self.prefix = prefix
        self.interval_s = interval_s
        self.refused = 0
        self._held = 0
        self._last_line = -float("inf")
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("Invalid write request"):
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        who = f"{args[0]}@{args[1]}" if len(args) >= 2 else "a client"
        with self._lock:
            self.refused += 1
            now = time.monotonic()
            if now - self._last_line < self.interval_s:
                self._held += 1
                return False
            held, self._held, self._last_line = self._held, 0, now
        more = f"; {held} more refused since the last line" if held else ""
        log.warning("EPICS: refused a write by %s to a read-only %s: PV (all are read-only)%s",
                    who, self.prefix, more)
        return False


def check_prefix_free(prefix: str, timeout_s: float) -> None:
    """Raise `DuplicatePrefixError` when a CA search for PREFIX:SCORE is answered within
    `timeout_s` (the search goes to the standard EPICS_CA_ADDR_LIST / auto address list)."""
    import caproto as ca
    from caproto.sync.client import search

    name = f"{prefix}:SCORE"
    sock = ca.bcast_socket()
    try:
        address = search(name, sock, timeout_s, max_retries=1)
    except ca.CaprotoTimeoutError:
        return
    finally:
        sock.close()
    raise DuplicatePrefixError(
        f"--epics {prefix}: {name} is already served by {address[0]}:{address[1]}; another "
        "predictor publishes this prefix on the network: stop it or choose another prefix")


def _group_class():
    from caproto import ChannelType
    from caproto.server import PVGroup, pvproperty

    class BeamwatchPVs(PVGroup):
        """The live score PVs (module docstring)."""

        score = pvproperty(value=0.0, name="SCORE", read_only=True, precision=4,
                           doc="latest errant-beam score of the next pulse")
        alarm = pvproperty(value=0, name="ALARM", read_only=True, doc="score >= threshold")
        threshold = pvproperty(value=0.0, name="THRESHOLD", read_only=True, precision=4)
        unseen = pvproperty(value=-1, name="UNSEEN", read_only=True,
                            doc="1: configuration far from every trained one")
        pulse_time = pvproperty(value="", name="PULSE_TIME", read_only=True,
                                dtype=ChannelType.STRING, max_length=40)
        count = pvproperty(value=0, name="COUNT", read_only=True)

    return BeamwatchPVs


class EpicsPublisher:
    """A caproto CA server in a background thread; call it with each scored row."""

    def __init__(self, prefix: str, interfaces: Sequence[str] = DEFAULT_INTERFACES):
        if not prefix or any(c.isspace() for c in prefix):
            raise ValueError(f"--epics prefix {prefix!r}: expected a PV prefix without spaces, "
                             "e.g. SNS:BEAMWATCH")
        if not interfaces or any(not isinstance(a, str) or not a.strip() for a in interfaces):
            raise ValueError(f"EPICS interfaces {interfaces!r}: expected one or more addresses "
                             "to serve on, e.g. 127.0.0.1 (or 0.0.0.0 for every interface)")
        self.prefix = prefix.rstrip(":")
        self.group = _group_class()(prefix=self.prefix + ":")
        self.interfaces = tuple(interfaces)
        self.refusals = RefusedWriteFilter(self.prefix)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="beamwatch-epics", daemon=True)
        self._task = None
        self._count = 0
        self._error: BaseException | None = None

    @classmethod
    def start(cls, prefix: str, interfaces: Sequence[str] = DEFAULT_INTERFACES,
              timeout_s: float = 10.0, duplicate_search_s: float = 1.0) -> EpicsPublisher:
        """Start serving on `interfaces`; raises `DuplicatePrefixError` when another server
        answers for PREFIX:SCORE within `duplicate_search_s` (0: no search), RuntimeError when
        the server could not come up within `timeout_s`."""
        publisher = cls(prefix, interfaces)
        if duplicate_search_s > 0:
            check_prefix_free(publisher.prefix, duplicate_search_s)
        logging.getLogger("caproto.circ").addFilter(publisher.refusals)
        log.info("EPICS: serving %s:{%s} on %s", publisher.prefix, ",".join(PV_NAMES),
                 ", ".join(publisher.interfaces))
        publisher._thread.start()
        if not publisher._ready.wait(timeout_s) or publisher._error is not None:
            publisher.stop()
            raise RuntimeError(f"EPICS server for {prefix!r} did not start: {publisher._error}")
        return publisher

    def _serve(self) -> None:
        from caproto.asyncio.server import start_server

        asyncio.set_event_loop(self._loop)

        async def main():
            self._task = asyncio.ensure_future(
                start_server(self.group.pvdb, interfaces=list(self.interfaces)))
            await asyncio.sleep(0.2)  # let the sockets bind
            if self._task.done() and self._task.exception() is not None:
                self._error = self._task.exception()
            self._ready.set()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

        try:
            self._loop.run_until_complete(main())
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()

    async def _write(self, row: PulseRow, threshold: float, count: int) -> None:
        stamp = row.timestamp_ns / 1e9
        unseen = -1 if row.unseen_configuration is None else int(row.unseen_configuration)
        g = self.group
        await g.threshold.write(float(threshold), timestamp=stamp)
        await g.unseen.write(unseen, timestamp=stamp)
        await g.alarm.write(int(row.alarm), timestamp=stamp)
        await g.pulse_time.write(iso_time(row.timestamp_ns), timestamp=stamp)
        await g.count.write(count, timestamp=stamp)
        await g.score.write(float(row.score), timestamp=stamp)  # last: a SCORE monitor sees all

    def __call__(self, row: PulseRow, threshold: float) -> None:
        """Publish one scored pulse (does not wait for the write)."""
        self._count += 1
        asyncio.run_coroutine_threadsafe(self._write(row, threshold, self._count), self._loop)

    def stop(self) -> None:
        """Stop the server and its thread."""
        if self._task is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._task.cancel)
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        logging.getLogger("caproto.circ").removeFilter(self.refusals)
