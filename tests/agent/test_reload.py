"""Reloads that do exactly what the file says, or nothing: a real agent, reloaded through POST /-/reload.

Rejected reloads (a bad regex, a roundtrip file that cannot be opened, a busy port) must leave every part
of the old config running — checked through what each part does, not through the agent's own word. A
reload that changes the capture must replace the workers: the capture processes are counted in /proc
(children of the agent running multiprocessing's spawn_main) and real traffic (an HTTP client against
nginx on loopback) must be counted exactly once after every reload.
"""

from __future__ import annotations

import json
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.agent.test_api import BRO
from tests.agent.test_e2e import counter_sum, get, post, scrape, traffic, wait_for
from tests.helpers.backends import AgentProcess
from tests.helpers.live import Nginx, can_capture, free_port, nginx_available
from tests.helpers.procs import worker_pids

RULES = "sniffer.protocols.rules: [{name: web, protocol: http, ports: [80]}]"


def file_config(api: int, roundtrips: str, extra: str = "") -> str:
    return (
        f'sniffer.file: {BRO}\n{RULES}\nserver.address: "127.0.0.1:{api}"\n'
        f'exporter.roundtrips: {{enabled: true, filename: "{roundtrips}"}}\n{extra}'
    )


def reloads(api: int) -> tuple[float, float]:
    text = get(api, "/metrics")[1].decode()
    return counter_sum(text, "packetd_reloads_total"), counter_sum(text, "packetd_reload_failures_total")


@pytest.fixture
def file_agent() -> Iterator[dict[str, Any]]:
    work = tempfile.mkdtemp(prefix="packetd-reload-")
    api = free_port()
    lines = os.path.join(work, "roundtrips.jsonl")
    agent = AgentProcess(file_config(api, lines))
    try:
        agent.wait_ready(api)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and counter_sum(scrape(api), "http_requests_total") < 31:
            time.sleep(0.2)
        yield {"agent": agent, "api": api, "lines": lines, "work": work}
    finally:
        agent.stop()


def _line_count(path: str) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def test_invalid_reloads_are_rejected_and_the_old_config_keeps_running(file_agent: dict[str, Any]) -> None:
    agent, api, lines = file_agent["agent"], file_agent["api"], file_agent["lines"]
    assert _line_count(lines) == 31  # the old roundtrip file got the capture's 31 exchanges
    a_file = os.path.join(file_agent["work"], "plain-file")
    with open(a_file, "w") as f:
        f.write("not a directory\n")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    # every bad config also sets an admin token: if any of it were applied, loopback POSTs would need it
    token = 'server.adminToken: "s3cret"\nlogger.level: debug\n'
    templates = (
        "processor: [{name: roundtripstometrics, config: {pathTemplates: [{regex: '(', replacement: x}]}}]\n"
    )
    cases = [
        (
            file_config(api, lines, token + templates),
            "'processor[0].config.pathTemplates[0].regex': '(' is not a valid regular expression",
        ),
        (
            file_config(api, os.path.join(a_file, "r.jsonl"), token),
            f"'exporter.roundtrips.filename': '{a_file}/r.jsonl' cannot be created: {a_file} is not a directory",
        ),
        (
            file_config(api, lines, token).replace(f"127.0.0.1:{api}", f"127.0.0.1:{busy.getsockname()[1]}"),
            f"'server.address': cannot listen on '127.0.0.1:{busy.getsockname()[1]}': Address already in use",
        ),
        (
            file_config(api, lines, token + f'logger: {{stdout: false, filename: "{a_file}/agent.log"}}\n'),
            f"'logger.filename': '{a_file}/agent.log' cannot be created: {a_file} is not a directory",
        ),
    ]
    try:
        for n, (text, message) in enumerate(cases, start=1):
            agent.write_config(text)
            status, body = post(api, "/-/reload")
            assert status == 500 and message in body.decode(), body
            assert reloads(api) == (0.0, float(n))
            # the log line names the file, then the key and the reason
            assert re.search(
                r"reload \(request\) rejected, the running config stays: (\S+: )?" + re.escape(message),
                agent.stderr(),
            )
            # the old parts run unchanged: no token needed, the same API port, the same file, level info
            assert post(api, "/-/logger", b"level=info")[0] == 200
            assert counter_sum(scrape(api), "http_requests_total") == 31
            assert _line_count(lines) == 31
        assert " DEBUG " not in agent.stderr()
        assert agent.proc.poll() is None
        # and a good reload after them is applied, all of it: the token, and the log going to a file
        log_file = os.path.join(file_agent["work"], "agent.log")
        agent.write_config(
            file_config(api, lines, token + f'logger: {{stdout: false, filename: "{log_file}"}}\n')
        )
        assert post(api, "/-/reload")[0] == 200
        assert post(api, "/-/logger", b"level=info")[0] == 401  # now the token is needed
        with open(log_file) as f:
            assert "reload (request) #1 applied" in f.read()
        assert "reload (request) #1 applied" not in agent.stderr()
    finally:
        busy.close()


def test_a_moved_server_address_is_bound_before_the_old_one_is_released(file_agent: dict[str, Any]) -> None:
    agent, api, lines = file_agent["agent"], file_agent["api"], file_agent["lines"]
    new = free_port()
    agent.write_config(file_config(api, lines).replace(f"127.0.0.1:{api}", f"127.0.0.1:{new}"))
    status, body = post(api, "/-/reload")  # asked on the old address, answered there
    assert status == 200 and b"applied" in body
    assert get(new, "/healthz") == (200, b"ok\n")
    assert counter_sum(scrape(new), "http_requests_total") == 31  # the same store behind it
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", api), timeout=2).close()
    assert f"server listening on 127.0.0.1:{new}" in agent.stderr()


def live_config(api: int, port: int, workers: int, block_num: int, roundtrips: str, extra: str = "") -> str:
    return f"""
sniffer:
  ifaces: "^lo$"
  blockNum: {block_num}
  workers: {workers}
  protocols.rules: [{{name: web, protocol: http, ports: [{port}]}}]
server.address: "127.0.0.1:{api}"
exporter.roundtrips: {{enabled: true, filename: "{roundtrips}"}}
{extra}"""


def live(fn: Any) -> Any:
    """The marks of a test that captures real traffic on loopback."""
    for mark in (
        pytest.mark.root,
        pytest.mark.live,
        pytest.mark.server,
        pytest.mark.slow,
        pytest.mark.skipif(not can_capture(), reason="live capture needs root / CAP_NET_RAW"),
        pytest.mark.skipif(not nginx_available(), reason="nginx is not installed (make test-deps)"),
    ):
        fn = mark(fn)
    return fn


@pytest.mark.parametrize("workers", [1, 2])
@live
def test_capture_reloads_replace_the_workers_and_count_each_roundtrip_once(workers: int) -> None:
    nginx = Nginx()
    api = free_port()
    work = tempfile.mkdtemp(prefix="packetd-reload-")
    lines = os.path.join(work, "roundtrips.jsonl")
    agent = AgentProcess(live_config(api, nginx.port, workers, 16, lines))
    sent: list[dict[str, Any]] = []
    targets: list[str] = []
    try:
        agent.wait_ready(api)
        time.sleep(1.0)
        seen_pids: set[int] = set()
        for i, block_num in enumerate([16, 32, 48, 64, 80, 96]):
            if i:
                agent.write_config(live_config(api, nginx.port, workers, block_num, lines))
                status, body = post(api, "/-/reload")
                assert status == 200 and b"applied" in body, body
                time.sleep(1.0)  # the new sockets see the next connection from its SYN
            pids = worker_pids(agent.proc.pid)
            assert len(pids) == workers, (i, pids)
            assert not seen_pids & set(pids)  # new processes each time, the old ones gone
            seen_pids |= set(pids)
            plan = [f"/reload-{i}/request-{n}" for n in range(10)]  # 404s: each path unique
            targets += plan
            traffic(nginx.port, [(t, {}) for t in plan], sent, connections=4)
            want = float(len(sent))
            assert wait_for(lambda: counter_sum(scrape(api), "http_requests_total"), want) == want
        time.sleep(1.5)  # nothing arrives late, twice
        assert counter_sum(scrape(api), "http_requests_total") == len(sent) == 60
        assert reloads(api) == (5.0, 0.0)
        with open(lines) as f:
            records = [json.loads(line) for line in f]
        assert sorted(r["request"]["path"] for r in records) == sorted(targets)  # each exactly once
    finally:
        agent.stop()
        nginx.stop()


@live
def test_a_capture_reload_that_cannot_capture_is_undone() -> None:
    nginx = Nginx()
    api = free_port()
    work = tempfile.mkdtemp(prefix="packetd-reload-")
    lines = os.path.join(work, "roundtrips.jsonl")
    agent = AgentProcess(live_config(api, nginx.port, 2, 16, lines))
    sent: list[dict[str, Any]] = []
    try:
        agent.wait_ready(api)
        bad = live_config(api, nginx.port, 2, 32, lines).replace('"^lo$"', '"^no-such-if$"')
        agent.write_config(bad)
        status, body = post(api, "/-/reload")
        assert status == 500 and b"the new capture settings do not work" in body, body
        assert b"no interface matches" in body
        assert reloads(api) == (0.0, 1.0)
        assert wait_for(lambda: get(api, "/readyz")[0], 200) == 200
        assert len(worker_pids(agent.proc.pid)) == 2
        time.sleep(1.0)
        traffic(nginx.port, [(f"/index.txt?n={n}", {}) for n in range(8)], sent, connections=4)
        assert wait_for(lambda: counter_sum(scrape(api), "http_requests_total"), 8.0) == 8.0
        assert agent.proc.poll() is None
    finally:
        agent.stop()
        nginx.stop()
