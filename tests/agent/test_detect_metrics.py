"""The agent's detection counters on /metrics (issue 12): connections detection by content handed to each
protocol, and those nobody claimed per server port, bounded. End to end: real redis-py traffic and
connections of bytes no protocol has, on ports no rule names, captured with tcpdump and read by
`packetd agent` with `sniffer.file`; the truth is the connections the test made."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from typing import Any

import pytest

from packetd.agent.selfmetrics import MAX_UNDETECTED_PORT_SERIES, OVERFLOW, SelfMetrics
from tests.agent.test_e2e import counter_sum, get
from tests.helpers.backends import AgentProcess
from tests.helpers.dbservers import RedisServer, redis_available
from tests.helpers.live import free_port
from tests.helpers.tapped import CAPTURE_MARKS, tcpdump

# bytes no detector takes (not a request line, not RESP, no known binary header): each side says its own
JUNK_C2S = b"\x8f\x01zq-not-a-protocol\x00\x02" * 8
JUNK_S2C = b"\x9e\x03qz-nor-this\x00\x04" * 8


def _junk_server(sock: socket.socket, stop: threading.Event) -> None:
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = sock.accept()
        except TimeoutError:
            continue
        with conn:
            conn.recv(4096)
            conn.sendall(JUNK_S2C)


@pytest.mark.skipif(not redis_available(), reason="redis-server is not installed (make test-deps)")
@pytest.mark.skipif(not shutil.which("tcpdump"), reason="tcpdump is not installed (make test-deps)")
@pytest.mark.slow
def test_agent_exports_detected_and_undetected_connections() -> None:
    import redis

    server = RedisServer()
    junk = socket.socket()
    junk.bind(("127.0.0.1", 0))
    junk.listen(8)
    junk_port = junk.getsockname()[1]
    stop = threading.Event()
    thread = threading.Thread(target=_junk_server, args=(junk, stop), daemon=True)
    thread.start()
    redis_conns, junk_conns = 3, 5
    try:
        with tcpdump(0, f"tcp port {server.port} or tcp port {junk_port}") as pcap:
            for i in range(redis_conns):  # one connection each: a fresh client, closed after its commands
                client = redis.Redis(port=server.port, single_connection_client=True)
                client.set(f"k{i}", "v")
                assert client.get(f"k{i}") == b"v"
                client.close()
            for _ in range(junk_conns):
                with socket.create_connection(("127.0.0.1", junk_port)) as c:
                    c.sendall(JUNK_C2S)
                    got = b""
                    while len(got) < len(JUNK_S2C):
                        got += c.recv(4096)
            time.sleep(0.3)
        api = free_port()
        agent = AgentProcess(f'sniffer.file: "{pcap}"\nserver.address: "127.0.0.1:{api}"\n')
        try:
            agent.wait_ready(api)
            deadline = time.monotonic() + 30
            text = ""
            while time.monotonic() < deadline:
                text = get(api, "/metrics")[1].decode()
                if counter_sum(text, "packetd_detect_undetected_connections_total") >= junk_conns:
                    break
                time.sleep(0.3)
        finally:
            agent.stop()
    finally:
        stop.set()
        thread.join()
        junk.close()
        server.stop()
    # neither port is a default one: every connection went through detection
    assert counter_sum(text, "packetd_detect_detected_connections_total", protocol="redis") == redis_conns
    assert counter_sum(text, "packetd_detect_detected_connections_total") == redis_conns
    assert (
        counter_sum(text, "packetd_detect_undetected_connections_total", transport="tcp", port=str(junk_port))
        == junk_conns
    )
    assert counter_sum(text, "packetd_detect_undetected_connections_total") == junk_conns
    # and detection handed them over whole: redis-py's SET and GET of every connection are records
    assert counter_sum(text, "packetd_roundtrips_total", protocol="redis") >= 2 * redis_conns


for _mark in CAPTURE_MARKS:
    test_agent_exports_detected_and_undetected_connections = _mark(
        test_agent_exports_detected_and_undetected_connections
    )


def _view(undetected: dict[str, int], overflow: int = 0) -> dict[str, Any]:
    return {
        "workers": {"detection": {"detected": {}, "undetected": undetected, "undetected_overflow": overflow}}
    }


def _series(collector: SelfMetrics) -> dict[tuple[str, str], float]:
    for fam in collector.collect():
        if fam.name == "packetd_detect_undetected_connections":
            return {(s.labels["transport"], s.labels["port"]): s.value for s in fam.samples}
    raise AssertionError("no packetd_detect_undetected_connections family")


def test_undetected_port_series_are_bounded_and_stable() -> None:
    """Workers' tables summed may name more ports than the bound: the first ports keep their series, the
    rest (and what a worker itself could not table) go to the overflow series; no counter moves between
    series on a later scrape, so none goes backwards. Crafted views: the bound is 1024 ports, more than a
    test should make connections for."""
    view: dict[str, Any] = _view({f"tcp/{p}": 1 for p in range(10_000, 10_000 + MAX_UNDETECTED_PORT_SERIES)})
    collector = SelfMetrics(lambda: view, "x")
    first = _series(collector)
    assert len(first) == MAX_UNDETECTED_PORT_SERIES and (OVERFLOW, OVERFLOW) not in first
    # a second worker's table brings new ports, and a worker's own overflow: those go to the overflow series
    view = _view({**{k: 2 for k in view["workers"]["detection"]["undetected"]}, "tcp/9": 5, "udp/53": 7}, 4)
    second = _series(collector)
    assert second[(OVERFLOW, OVERFLOW)] == 5 + 7 + 4
    assert len(second) == MAX_UNDETECTED_PORT_SERIES + 1
    assert all(second[k] == 2 for k in first)
