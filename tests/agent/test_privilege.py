"""Least privilege and a bounded HTTP API: workers become `sniffer.user` once their socket is open (the
uid read from /proc, the traffic still counted, after a capture reload too); the API listens on loopback
by default, with a normal backlog (as `ss` reports it) and a bounded number of connections served at once;
third-party libraries' log records come out in the agent's format, in the agent's log file."""

from __future__ import annotations

import os
import pwd
import re
import socket
import subprocess
import tempfile
import time
from typing import Any

import pytest

from packetd.agent.config import Config
from packetd.agent.http import LISTEN_BACKLOG, MAX_CONNECTIONS
from tests.agent.test_e2e import counter_sum, get, post, scrape, traffic, wait_for
from tests.agent.test_reload import live, live_config
from tests.agent.test_supervise import BRO_REQUESTS, Faulty
from tests.helpers.backends import AgentProcess
from tests.helpers.build import PACKAGE_PATH
from tests.helpers.live import Nginx, free_port
from tests.helpers.procs import worker_pids as _worker_pids


def _uids(pid: int) -> tuple[int, int, int]:
    """(real, effective, saved) uid of a process."""
    with open(f"/proc/{pid}/status") as f:
        line = next(ln for ln in f if ln.startswith("Uid:"))
    real, effective, saved = (int(x) for x in line.split()[1:4])
    return real, effective, saved


@live
def test_workers_become_sniffer_user_and_still_count_after_a_capture_reload() -> None:
    nobody = pwd.getpwnam("nobody").pw_uid
    nginx = Nginx()
    api = free_port()
    lines = os.path.join(tempfile.mkdtemp(prefix="packetd-priv-"), "roundtrips.jsonl")
    agent = AgentProcess(live_config(api, nginx.port, 2, 16, lines, "sniffer.user: nobody\n"))
    sent: list[dict[str, Any]] = []
    try:
        agent.wait_ready(api)
        for round_, block_num in enumerate((16, 32)):
            if round_:
                agent.write_config(
                    live_config(api, nginx.port, 2, block_num, lines, "sniffer.user: nobody\n")
                )
                assert post(api, "/-/reload")[0] == 200  # the still-privileged parent opens new sockets
            pids = _worker_pids(agent.proc.pid)
            assert len(pids) == 2
            assert [_uids(p) for p in pids] == [(nobody, nobody, nobody)] * 2  # no way back to root
            assert _uids(agent.proc.pid) == (0, 0, 0)
            time.sleep(1.0)
            traffic(nginx.port, [(f"/r{round_}/{n}", {}) for n in range(6)], sent, connections=3)
            want = float(len(sent))
            assert wait_for(lambda: counter_sum(scrape(api), "http_requests_total"), want) == want
    finally:
        agent.stop()
        nginx.stop()


def test_a_user_that_does_not_exist_is_one_line_and_exit_2() -> None:
    import sys

    d = tempfile.mkdtemp(prefix="packetd-priv-")
    path = os.path.join(d, "packetd.yaml")
    with open(path, "w") as f:
        f.write('sniffer.user: no-such-user-here\nserver.address: "127.0.0.1:0"\n')
    r = subprocess.run(
        [sys.executable, "-m", "packetd", "agent", "--config", path],
        check=False, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": PACKAGE_PATH},
    )  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.splitlines() == ["packetd: 'sniffer.user': 'no-such-user-here' is invalid: no such user"]


def test_the_api_listens_on_loopback_by_default() -> None:
    assert Config().server.address == "127.0.0.1:9091"


def test_backlog_and_connection_bound() -> None:
    f = Faulty("", "server.timeout: 30s")  # no fault: a plain file agent
    idle: list[socket.socket] = []
    try:
        f.agent.wait_ready(f.api)
        ss = subprocess.run(
            ["ss", "-Hltn", f"sport = :{f.api}"], capture_output=True, text=True, check=True
        ).stdout.split()
        assert int(ss[2]) == LISTEN_BACKLOG  # Send-Q of a listening socket: its backlog
        # MAX_CONNECTIONS clients that connect and say nothing hold every serving thread
        for _ in range(MAX_CONNECTIONS):
            idle.append(socket.create_connection(("127.0.0.1", f.api), timeout=5))
        time.sleep(1.0)  # all accepted
        extra = socket.create_connection(("127.0.0.1", f.api), timeout=5)
        reply = extra.recv(200)
        extra.close()
        assert reply.startswith(b"HTTP/1.1 503 ") and b"too many connections" in reply
        for s in idle:
            s.close()
        idle.clear()
        time.sleep(0.5)
        text = get(f.api, "/metrics")[1].decode()
        assert counter_sum(text, "packetd_http_rejected_connections_total") == 1
        assert counter_sum(scrape(f.api), "http_requests_total") == BRO_REQUESTS
    finally:
        for s in idle:
            s.close()
        f.agent.stop()


LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


@pytest.mark.parametrize("to_file", [False, True])
def test_third_party_log_records_go_through_the_agents_logger(to_file: bool) -> None:
    # an OTLP back-end that refuses every batch with 400: the SDK logs that, through its own logger
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    class Refuse(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(400)
            self.send_header("Content-Length", "3")
            self.end_headers()
            self.wfile.write(b"no\n")

        def log_message(self, *a: object) -> None:
            pass

    refuse = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    Thread(target=refuse.serve_forever, daemon=True).start()
    log_dir = tempfile.mkdtemp(prefix="packetd-log-")
    log_file = os.path.join(log_dir, "agent.log")
    extra = (
        f'exporter.traces: {{enabled: true, endpoint: "http://127.0.0.1:{refuse.server_port}/v1/traces", '
        "batch: 5, interval: 200ms}\n"
    )
    if to_file:
        extra += f'logger: {{stdout: false, filename: "{log_file}"}}\n'
    f = Faulty("", extra)
    try:
        f.agent.wait_ready(f.api)
        assert wait_for(
            lambda: counter_sum(get(f.api, "/metrics")[1].decode(), "packetd_exporter_failed_total") >= 1,
            True,
        )
        time.sleep(0.5)
        f.agent.stop()
        if to_file:
            with open(log_file) as lf:
                text = lf.read()
            assert f.agent.stderr() == ""  # nothing bypasses the log file
        else:
            text = f.agent.stderr()
        sdk = [ln for ln in text.splitlines() if " opentelemetry." in ln]
        assert sdk, text  # the SDK's own record of the 400 ...
        assert all(LOG_RECORD.match(ln) for ln in sdk)  # ... in the agent's format, its logger named
        assert all(
            LOG_RECORD.match(ln) for ln in text.splitlines() if ln and not ln.startswith((" ", "Trace"))
        )
    finally:
        f.agent.stop()
        refuse.shutdown()
        refuse.server_close()
