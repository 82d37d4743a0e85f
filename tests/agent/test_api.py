"""The agent's HTTP API and file mode: a capture file is read once, then the agent keeps serving its metrics;
admin routes answer loopback clients only, or anyone with the bearer token."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.agent.test_e2e import counter_sum, get, post
from tests.helpers.backends import AgentProcess
from tests.helpers.golden import CORPUS
from tests.helpers.live import free_port

BRO = os.path.join(CORPUS, "http1", "zeek_zeek__bro.org.pcap")


def file_agent(api: int, extra: str = "", host: str = "127.0.0.1") -> AgentProcess:
    return AgentProcess(
        f"""
sniffer.file: {BRO}
sniffer.protocols.rules: [{{name: web, protocol: http, ports: [80]}}]
server.address: "{host}:{api}"
{extra}
"""
    )


@pytest.fixture(scope="module")
def agent() -> Iterator[tuple[AgentProcess, int]]:
    api = free_port()
    a = file_agent(api, "exporter.roundtrips: {enabled: true, console: true}\n")
    try:
        a.wait_ready(api)
        yield a, api
    finally:
        assert a.stop() == 0


def test_a_capture_file_is_read_once_and_its_metrics_stay_served(agent: tuple[AgentProcess, int]) -> None:
    a, api = agent
    deadline = time.monotonic() + 20
    text = ""
    while time.monotonic() < deadline:
        text = get(api, "/protocol/metrics")[1].decode()
        if counter_sum(text, "http_requests_total") == 31:
            break
        time.sleep(0.3)
    assert (
        counter_sum(text, "http_requests_total") == 31
    )  # tshark: 31 requests (see tests/protocols/http1/test_golden.py)
    time.sleep(1.5)
    assert counter_sum(get(api, "/protocol/metrics")[1].decode(), "http_requests_total") == 31  # not re-read
    assert a.proc.poll() is None and "capture file" in a.stderr()
    assert get(api, "/readyz")[0] == 200


def test_console_roundtrips_go_to_stdout(agent: tuple[AgentProcess, int]) -> None:
    a, _ = agent
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(a.out_path) as f:
            lines = f.read().splitlines()
        if len(lines) >= 31:
            break
        time.sleep(0.3)
    assert len(lines) == 31 and all(line.startswith('{"protocol":"http"') for line in lines)


def test_logger_level_can_be_changed(agent: tuple[AgentProcess, int]) -> None:
    _, api = agent
    status, body = post(api, "/-/logger", b"level=debug")
    assert status == 200 and body == b'{"status": "success"}\n'
    status, body = post(api, "/-/logger?level=loud")
    assert status == 400 and b"debug, info, warn or error" in body


def test_file_agent_exit_status_and_summary_on_sigterm() -> None:
    api = free_port()
    a = file_agent(api)
    a.wait_ready(api)
    assert a.stop() == 0
    assert "stopping" in a.stderr()


def _netns_client(ns: str, url: str, token: str | None = None) -> int:
    """HTTP GET from inside a network namespace: a client that is not loopback."""
    cmd = [
        "ip",
        "netns",
        "exec",
        ns,
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "10",
        url,
    ]
    if token is not None:
        cmd[5:5] = ["-H", f"Authorization: Bearer {token}"]
    return int(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


@pytest.fixture
def netns() -> Iterator[dict[str, Any]]:
    ns, host_if, ns_if = (
        f"pdapi{os.getpid() % 10000}",
        f"pda{os.getpid() % 10000}",
        f"pdb{os.getpid() % 10000}",
    )
    run = lambda *a: subprocess.run(list(a), check=True, capture_output=True)  # noqa: E731
    run("ip", "netns", "add", ns)
    try:
        run("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        run("ip", "link", "set", ns_if, "netns", ns)
        run("ip", "addr", "add", "10.79.0.1/24", "dev", host_if)
        run("ip", "link", "set", host_if, "up")
        run("ip", "netns", "exec", ns, "ip", "addr", "add", "10.79.0.2/24", "dev", ns_if)
        run("ip", "netns", "exec", ns, "ip", "link", "set", ns_if, "up")
        yield {"ns": ns, "host_ip": "10.79.0.1"}
    finally:
        subprocess.run(["ip", "link", "del", host_if], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
@pytest.mark.parametrize("token", [None, "s3cret"])
def test_admin_routes_are_loopback_only_unless_a_token_is_set(
    netns: dict[str, Any], token: str | None
) -> None:
    api = free_port()
    a = file_agent(api, f"server.adminToken: {token}\n" if token else "", host="0.0.0.0")
    try:
        a.wait_ready(api)
        remote = f"http://{netns['host_ip']}:{api}"
        assert _netns_client(netns["ns"], f"{remote}/metrics") == 200  # not an admin route
        assert _netns_client(netns["ns"], f"{remote}/watch?timeout=1s") == (401 if token else 403)
        if token:
            assert _netns_client(netns["ns"], f"{remote}/watch?timeout=1s", token) == 200
            assert _netns_client(netns["ns"], f"{remote}/watch?timeout=1s", "wrong") == 401
            try:  # with a token set, loopback needs it too
                urllib.request.urlopen(f"http://127.0.0.1:{api}/watch?timeout=1s", timeout=10)
                raise AssertionError("expected 401")
            except urllib.error.HTTPError as exc:
                assert exc.code == 401
        else:
            assert get(api, "/watch?timeout=1s")[0] == 200  # loopback may
    finally:
        a.stop()


def test_an_ipv6_server_leaves_the_next_ipv4_one_alone() -> None:
    """A reload may move server.address from [::1] to 127.0.0.1 in the same process: each server gets
    the socket family of its own address (the family used to be set on the server class, for good)."""
    import socket

    from prometheus_client import CollectorRegistry

    from packetd.agent.http import Api, HttpServer, WatchHub

    api = Api(CollectorRegistry(), CollectorRegistry(), WatchHub(), lambda: (True, ""), lambda _: True,
              lambda: True, "")  # fmt: skip
    families = []
    for address in ("[::1]:0", "127.0.0.1:0"):
        server = HttpServer(address, api, 5.0)
        families.append(server._server.socket.family)
        server._server.server_close()
    assert families == [socket.AF_INET6, socket.AF_INET]
