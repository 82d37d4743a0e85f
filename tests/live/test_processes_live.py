"""`watch` live names the processes at both ends: real nginx and redis-server started here, real clients
(http.client in a child process, redis-py in this one, curl in a second network namespace), and `ss -tnp`
taken while the connections are open as the independent truth."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.helpers.dbservers import RedisServer, redis_available
from tests.helpers.live import (
    Nginx,
    capture,
    live_marks,
    nginx_available,
    replay,
    validate_against_schema,
)
from tests.helpers.procs import child, ss_owners, veth_netns

pytestmark = live_marks((nginx_available(), "nginx"), (redis_available(), "redis-server"))


@pytest.fixture
def servers() -> Iterator[tuple[Nginx, RedisServer]]:
    nginx = Nginx()
    try:
        rs = RedisServer()
        try:
            yield nginx, rs
        finally:
            rs.stop()
    finally:
        nginx.stop()


def _http_client(host: str, port: int, n: int) -> list[str]:
    """A child process with one persistent HTTP connection: `n` requests, then it waits on stdin."""
    return [sys.executable, "-c",
            "import http.client, sys\n"
            f"c = http.client.HTTPConnection('{host}', {port})\n"
            f"for _ in range({n}):\n    c.request('GET', '/index.txt'); c.getresponse().read()\n"
            "print('up', flush=True); sys.stdin.read()"]  # fmt: skip


def _owner(proc: dict[str, Any] | None) -> list[tuple[str, int]]:
    return [] if proc is None else [(proc["comm"], proc["pid"])]


def _traffic(
    nginx: Nginx, rs: RedisServer, args: list[str], pcap: list[str] | None = None
) -> tuple[list[dict[str, Any]], dict[Any, Any], int]:
    """HTTP from a child process and Redis from this one, kept open until ss has seen them (and tcpdump
    writes the same packets to a file when `pcap` is given: its path is appended)."""
    rules = ["--proto", f"http;{nginx.port}", "--proto", f"redis;{rs.port}", "--ifaces", "lo"]
    tcpdump = f"tcp port {nginx.port} or tcp port {rs.port}" if pcap is not None else None
    with capture([*rules, *args], tcpdump) as cap:
        r = redis.Redis(port=rs.port)
        r.set("k", "v")
        r.get("k")
        with child(_http_client("127.0.0.1", nginx.port, 3)) as http_proc:
            time.sleep(0.5)  # the kernel retires the ring block; watch looks the sockets up while open
            truth = ss_owners()
            time.sleep(0.5)
            records = cap.stop()
        r.close()
    if pcap is not None:
        pcap.append(cap.pcap_path)
    return records, truth, http_proc.pid


def test_records_name_both_ends_as_ss_does(servers: tuple[Nginx, RedisServer]) -> None:
    nginx, rs = servers
    records, truth, http_pid = _traffic(nginx, rs, [])
    validate_against_schema(records)
    by_proto: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        by_proto.setdefault(rec["protocol"], []).append(rec)
    assert len(by_proto["http"]) == 3 and len(by_proto["redis"]) >= 2
    for rec in records:
        c = (rec["client"]["ip"], rec["client"]["port"])
        s = (rec["server"]["ip"], rec["server"]["port"])
        assert _owner(rec["client"]["process"]) == truth[(c, s)]
        assert _owner(rec["server"]["process"]) == truth[(s, c)]
    assert {r["client"]["process"]["pid"] for r in by_proto["http"]} == {http_pid}
    assert {r["server"]["process"]["comm"] for r in by_proto["http"]} == {"nginx"}
    assert {r["client"]["process"]["pid"] for r in by_proto["redis"]} == {os.getpid()}
    assert {r["server"]["process"]["pid"] for r in by_proto["redis"]} == {rs.proc.pid}
    assert by_proto["redis"][0]["server"]["process"]["exe"] == os.path.realpath("/usr/bin/redis-server")


def test_filters_by_comm_and_pid(servers: tuple[Nginx, RedisServer]) -> None:
    nginx, rs = servers
    records, _, _ = _traffic(nginx, rs, ["--comm", "redis-server"])
    assert records and {r["protocol"] for r in records} == {"redis"}
    records, _, _ = _traffic(nginx, rs, ["--pid", str(os.getpid())])  # this process: the Redis client
    assert records and {r["protocol"] for r in records} == {"redis"}


def test_no_processes_and_files_carry_no_process_key(servers: tuple[Nginx, RedisServer]) -> None:
    nginx, rs = servers
    pcap: list[str] = []
    records, _, _ = _traffic(nginx, rs, ["--no-processes"], pcap)
    assert records and all("process" not in r["client"] and "process" not in r["server"] for r in records)
    rules = ["--proto", f"http;{nginx.port}", "--proto", f"redis;{rs.port}"]
    replayed, _ = replay(pcap[0], rules)  # a file: off by default
    assert len(replayed) == len(records)
    assert all("process" not in r["client"] and "process" not in r["server"] for r in replayed)
    # asked for, on a file whose connections are closed now: null at both ends, never a guess (nginx and
    # redis-server still listen on those ports)
    replayed, err = replay(pcap[0], [*rules, "--processes"])
    assert len(replayed) == len(records)
    assert all(r["client"]["process"] is None and r["server"]["process"] is None for r in replayed)
    assert "0 ends found" in err


def test_a_client_in_another_namespace_through_a_veth(servers: tuple[Nginx, RedisServer]) -> None:
    """Captured on the host side of a veth: curl in the second namespace, nginx here."""
    with veth_netns("10.84.0") as net:
        nginx = Nginx(host=net["host_ip"])
        try:
            cmd = ["ip", "netns", "exec", net["ns"], *_http_client(net["host_ip"], nginx.port, 2)]
            args = ["--proto", f"http;{nginx.port}", "--ifaces", f"^{net['host_if']}$"]
            with capture(args) as cap, child(cmd) as client:
                time.sleep(0.5)
                ns_truth = ss_owners(net["ns"])
                host_truth = ss_owners()
                time.sleep(0.5)
                records = cap.stop()
        finally:
            nginx.stop()
    assert len(records) == 2
    for rec in records:
        c = (rec["client"]["ip"], rec["client"]["port"])
        s = (rec["server"]["ip"], rec["server"]["port"])
        assert (
            _owner(rec["client"]["process"])
            == ns_truth[(c, s)]
            == [("python3" if False else ns_truth[(c, s)][0][0], client.pid)]
        )
        assert _owner(rec["server"]["process"]) == host_truth[(s, c)]
