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
waiting, so scoring never blocks on a slow client. Network: caproto reads the standard EPICS
variables (EPICS_CAS_INTF_ADDR_LIST, EPICS_CAS_BEACON_ADDR_LIST, EPICS_CA_SERVER_PORT, ...), as
every IOC does; `interfaces` restricts the addresses it serves on (the tests use 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

from live.engine import PulseRow, iso_time

PV_NAMES = ("SCORE", "ALARM", "THRESHOLD", "UNSEEN", "PULSE_TIME", "COUNT")


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

    def __init__(self, prefix: str, interfaces: Sequence[str] | None = None):
        if not prefix or any(c.isspace() for c in prefix):
            raise ValueError(f"--epics prefix {prefix!r}: expected a PV prefix without spaces, "
                             "e.g. SNS:BEAMWATCH")
        self.prefix = prefix.rstrip(":")
        self.group = _group_class()(prefix=self.prefix + ":")
        self._interfaces = list(interfaces) if interfaces else None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="beamwatch-epics", daemon=True)
        self._task = None
        self._count = 0
        self._error: BaseException | None = None

    @classmethod
    def start(cls, prefix: str, interfaces: Sequence[str] | None = None,
              timeout_s: float = 10.0) -> EpicsPublisher:
        """Start serving; raises when the server could not come up within `timeout_s`."""
        publisher = cls(prefix, interfaces)
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
                start_server(self.group.pvdb, interfaces=self._interfaces))
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
        self._thread.join(timeout=5)
