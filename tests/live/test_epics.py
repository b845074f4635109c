"""--epics: a Channel Access client on localhost sees each new score within one pulse period;
the server is read-only, quiet about refused writes, bound where told, alone with its prefix."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

import pytest

from live.engine import PulseRow

caproto = pytest.importorskip("caproto")

PULSE_PERIOD_S = 1 / 60


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        return udp.getsockname()[1]


@pytest.fixture
def localhost_only(monkeypatch):
    """EPICS traffic on 127.0.0.1 only: no auto address lists, beacons to localhost, own port."""
    port = _free_port()
    for key, value in {"EPICS_CA_ADDR_LIST": "127.0.0.1", "EPICS_CA_AUTO_ADDR_LIST": "NO",
                       "EPICS_CAS_INTF_ADDR_LIST": "127.0.0.1",
                       "EPICS_CAS_BEACON_ADDR_LIST": "127.0.0.1",
                       "EPICS_CAS_AUTO_BEACON_ADDR_LIST": "NO",
                       "EPICS_CA_SERVER_PORT": str(port), "EPICS_CAS_SERVER_PORT": str(port),
                       "EPICS_CA_REPEATER_PORT": str(_free_port()),
                       "EPICS_CAS_BEACON_PORT": str(_free_port())}.items():
        monkeypatch.setenv(key, value)
    return port


def test_client_sees_every_new_score_as_it_is_published(localhost_only):
    from caproto.threading.client import Context

    from live.epics import EpicsPublisher

    publisher = EpicsPublisher.start("TEST:BW", interfaces=["127.0.0.1"])
    context = Context()
    try:
        pvs = dict(zip(("SCORE", "ALARM", "THRESHOLD", "UNSEEN", "COUNT"),
                       context.get_pvs(*(f"TEST:BW:{n}" for n in
                                         ("SCORE", "ALARM", "THRESHOLD", "UNSEEN", "COUNT"))),
                       strict=True))
        for pv in pvs.values():
            pv.wait_for_connection(timeout=10)
        seen: dict[float, float] = {}
        subscription = pvs["SCORE"].subscribe(data_type="time")

        def on_update(sub, response):  # caproto keeps callbacks weakly: hold this name
            seen.setdefault(round(float(response.data[0]), 6), time.perf_counter())

        subscription.add_callback(on_update)
        time.sleep(0.3)  # the first monitor update (the initial value)
        sent = {}
        for k in range(20):
            score = round(0.01 + 0.045 * k, 6)
            row = PulseRow("f", k, 1_800_000_000_000_000_000 + k * 16_666_667, score, 0.5,
                           score >= 0.5, 0, k % 2 == 0, 0.1, 0, 0)
            sent[score] = time.perf_counter()
            publisher(row, 0.5)
            time.sleep(PULSE_PERIOD_S)
        time.sleep(0.3)
        delays = sorted(seen[s] - t for s, t in sent.items() if s in seen)
        assert len(delays) == len(sent), f"scores never seen: {sorted(set(sent) - set(seen))}"
        # every score reaches the client, none held back until a later one pushes it out; how
        # fast is a speed figure (no timed assertion here: a loaded CI machine stalls at will)
        assert delays[-1] < 2.0, f"slowest update {delays[-1] * 1e3:.0f} ms: a score was held"
        assert pvs["THRESHOLD"].read().data[0] == pytest.approx(0.5)
        assert pvs["ALARM"].read().data[0] == 1  # the last score 0.865 >= 0.5
        assert pvs["UNSEEN"].read().data[0] == 0  # k = 19 is odd
        assert pvs["COUNT"].read().data[0] == 20
        stamp = pvs["SCORE"].read(data_type="time").metadata.timestamp
        assert stamp == pytest.approx(1_800_000_000 + 19 * 0.016666667, abs=1e-3)
    finally:
        context.disconnect()
        publisher.stop()


def test_prefix_is_checked():
    from live.epics import EpicsPublisher

    with pytest.raises(ValueError, match="without spaces"):
        EpicsPublisher("SNS BW")


def _wait_until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


def test_writes_to_every_published_pv_fail_with_one_log_line(localhost_only, caplog, capfd):
    from caproto.threading.client import Context

    from live.epics import PV_NAMES, EpicsPublisher

    publisher = EpicsPublisher.start("TEST:RO", interfaces=["127.0.0.1"])
    publisher(PulseRow("f", 0, 1_800_000_000_000_000_000, 0.25, 0.5, False, 0, False, 0.1, 0, 0),
              0.5)
    context = Context()
    caplog.set_level(logging.WARNING, logger="beamwatch.epics")
    try:
        pvs = context.get_pvs(*(f"TEST:RO:{n}" for n in PV_NAMES))
        for pv in pvs:
            pv.wait_for_connection(timeout=10)
        before = {pv.name: pv.read().data[0] for pv in pvs}
        for pv in pvs:
            value = "x" if pv.name.endswith("PULSE_TIME") else [7]
            pv.write(value, wait=False)
        _wait_until(lambda: publisher.refusals.refused >= len(pvs), 10, "six refused writes")
        after = {pv.name: pv.read().data[0] for pv in pvs}
        assert after == before
    finally:
        context.disconnect()
        publisher.stop()
    refused = [r for r in caplog.records if "refused a write" in r.getMessage()]
    assert len(refused) == 1, [r.getMessage() for r in refused]  # rate-limited: one line
    assert refused[0].exc_info is None
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err + captured.out
    assert "Forbidden" not in captured.err + captured.out


def test_a_second_server_with_the_same_prefix_is_refused(localhost_only):
    from live.epics import DuplicatePrefixError, EpicsPublisher

    first = EpicsPublisher.start("TEST:DUP", interfaces=["127.0.0.1"])
    try:
        with pytest.raises(DuplicatePrefixError, match="TEST:DUP:SCORE is already served"):
            EpicsPublisher.start("TEST:DUP", interfaces=["127.0.0.1"])
        other = EpicsPublisher.start("TEST:DUP2", interfaces=["127.0.0.1"])  # another prefix: fine
        other.stop()
    finally:
        first.stop()


def _tcp_listeners(port: int) -> set[str]:
    """Local IPv4 addresses listening on TCP `port` (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:  # LISTEN
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net/tcp")
def test_the_server_listens_only_on_the_configured_interface(localhost_only):
    from live.epics import EpicsPublisher

    publisher = EpicsPublisher.start("TEST:BIND", interfaces=["127.0.0.1"],
                                     duplicate_search_s=0)
    try:
        assert _tcp_listeners(localhost_only) == {"127.0.0.1"}
    finally:
        publisher.stop()


def test_interfaces_must_be_given():
    from live.epics import EpicsPublisher

    with pytest.raises(ValueError, match="expected one or more addresses"):
        EpicsPublisher("SNS:BW", interfaces=())
