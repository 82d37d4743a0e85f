"""The agent's supervisor, by injecting a fault into each of its loops in a real agent process.

The fault: tests/agent/faultinject/sitecustomize.py, first on the agent's PYTHONPATH, makes one method
raise RuntimeError("injected fault") for its first N calls, in the agent or in its capture workers, and
keeps its own record of how often it fired (the independent truth the counters are compared with). Each
test then checks the four things the supervisor promises: one log line with one traceback per failure,
`packetd_internal_errors_total{component}` equal to the faults fired, the loop working again afterwards,
and — when the fault never stops — failing probes and exit status 1.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.agent.test_api import BRO
from tests.agent.test_e2e import counter_sum, get, post, scrape, traffic, wait_for
from tests.agent.test_reload import live, live_config
from tests.helpers.backends import AgentProcess, OtlpReceiver
from tests.helpers.build import PACKAGE_PATH
from tests.helpers.live import Nginx, free_port
from tests.helpers.procs import worker_pids as _worker_pids

FAULTS = os.path.join(os.path.dirname(__file__), "faultinject")
RULES = "sniffer.protocols.rules: [{name: web, protocol: http, ports: [80]}]"
BRO_REQUESTS = 31  # tshark counts 31 HTTP requests in the capture (tests/protocols/http1/test_golden.py)


class Faulty:
    """An agent reading the bro.org capture with one method made to fail."""

    def __init__(self, fault: str, extra: str = "") -> None:
        self.fault_dir = tempfile.mkdtemp(prefix="packetd-fault-")
        self.api = free_port()
        env = {"PYTHONPATH": os.pathsep.join([FAULTS, PACKAGE_PATH])}
        if fault:
            env.update(PACKETD_FAULT=fault, PACKETD_FAULT_DIR=self.fault_dir)
        config = f'sniffer.file: {BRO}\n{RULES}\nserver.address: "127.0.0.1:{self.api}"\n{extra}\n'
        self.agent = AgentProcess(config, env=env)

    def fired(self) -> int:
        try:
            with open(os.path.join(self.fault_dir, "fired")) as f:
                return len(f.read().splitlines())
        except FileNotFoundError:
            return 0

    def errors(self, component: str) -> float:
        return counter_sum(
            get(self.api, "/metrics")[1].decode(), "packetd_internal_errors_total", component=component
        )

    def requests(self) -> float:
        return counter_sum(get(self.api, "/protocol/metrics")[1].decode(), "http_requests_total")


def wait_until(fn: object, timeout: float = 30.0) -> bool:
    assert callable(fn)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if fn():
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


@pytest.fixture
def faulty(request: pytest.FixtureRequest) -> Iterator[Faulty]:
    fault, extra = request.param
    f = Faulty(fault, extra)
    try:
        yield f
    finally:
        f.agent.stop()


def tracebacks(text: str) -> int:
    return text.count("Traceback (most recent call last)")


@pytest.mark.parametrize("faulty", [("packetd.agent.main:Agent._pump:2:main", "")], indirect=True)
def test_a_failing_main_loop_is_logged_counted_and_restarted(faulty: Faulty) -> None:
    faulty.agent.wait_ready(faulty.api)
    assert wait_until(lambda: faulty.requests() == BRO_REQUESTS)
    assert faulty.fired() == 2
    assert faulty.errors("main") == 2
    err = faulty.agent.stderr()
    assert "main failed: RuntimeError: injected fault; restarting in 0.5s" in err
    assert "main failed: RuntimeError: injected fault; restarting in 1.0s" in err
    assert tracebacks(err) == 2  # once per failure
    with open(faulty.agent.config_path) as cfg:
        faulty.agent.write_config(cfg.read())
    status, body = post(faulty.api, "/-/reload")  # the loop answers again
    assert status == 200 and b"applied" in body
    assert faulty.agent.stop() == 0


@pytest.mark.parametrize("faulty", [("packetd.agent.http:_Server.service_actions:1:main", "")], indirect=True)
def test_a_failing_http_loop_is_restarted(faulty: Faulty) -> None:
    faulty.agent.wait_ready(faulty.api)
    assert faulty.fired() == 1
    assert faulty.errors("http") == 1
    err = faulty.agent.stderr()
    assert "http failed: RuntimeError: injected fault; restarting in 0.5s" in err and tracebacks(err) == 1
    assert get(faulty.api, "/healthz") == (200, b"ok\n")
    assert faulty.agent.stop() == 0


@pytest.mark.parametrize("faulty", [("packetd.agent.http:_Handler._healthz:1:main", "")], indirect=True)
def test_a_failing_route_answers_500_and_the_next_request_is_served(faulty: Faulty) -> None:
    faulty.agent.wait_ready(faulty.api)
    assert get(faulty.api, "/healthz")[0] == 500
    assert get(faulty.api, "/healthz") == (200, b"ok\n")
    assert faulty.fired() == 1 and faulty.errors("http") == 1
    err = faulty.agent.stderr()
    assert "http: RuntimeError: injected fault" in err and tracebacks(err) == 1


@pytest.mark.parametrize("faulty", [("packetd.agent.worker:Worker.flush:1:worker", "")], indirect=True)
def test_a_failing_worker_is_restarted_and_counts_once(faulty: Faulty) -> None:
    faulty.agent.wait_ready(faulty.api)
    # the first worker failed before shipping anything: the capture file, read again, counts once
    assert wait_until(lambda: faulty.requests() == BRO_REQUESTS)
    assert faulty.fired() == 1
    assert faulty.errors("worker") == 1
    text = get(faulty.api, "/metrics")[1].decode()
    assert counter_sum(text, "packetd_worker_restarts_total") == 1
    err = faulty.agent.stderr()
    assert "worker failed: worker 0 exited (RuntimeError: injected fault); restarting in 0.5s" in err
    assert tracebacks(err) == 1  # the worker's own, once
    time.sleep(1.0)
    assert faulty.requests() == BRO_REQUESTS
    assert faulty.agent.stop() == 0


def test_a_failing_exporter_thread_is_restarted_and_delivers_everything() -> None:
    otlp = OtlpReceiver()
    f = Faulty(
        "packetd.export.senders:Traces.cycle:2:main",
        f'exporter.traces: {{enabled: true, endpoint: "{otlp.endpoint}", batch: 10, interval: 200ms}}',
    )
    try:
        f.agent.wait_ready(f.api)
        assert wait_until(lambda: len(otlp.spans) == BRO_REQUESTS)
        assert f.fired() == 2 and f.errors("exporter_traces") == 2
        err = f.agent.stderr()
        assert "exporter_traces failed: RuntimeError: injected fault; restarting in 0.5s" in err
        assert tracebacks(err) == 2
        text = get(f.api, "/metrics")[1].decode()
        assert counter_sum(text, "packetd_exporter_dropped_total", exporter="traces") == 0
        assert f.agent.stop() == 0
    finally:
        f.agent.stop()
        otlp.stop()


def _probe_until_exit(f: Faulty) -> list[int]:
    """/healthz every 50 ms until the agent is gone: the statuses in order (-1: no answer)."""
    seen: list[int] = []
    deadline = time.monotonic() + 90  # a crash loop that is never given up on would run forever
    while f.agent.proc.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{f.api}/healthz", timeout=2) as r:
                seen.append(r.status)
        except urllib.error.HTTPError as exc:
            seen.append(exc.code)
        except OSError:
            seen.append(-1)
        time.sleep(0.05)
    return seen


@pytest.mark.parametrize(
    ("fault", "component", "fired"),
    [
        # the drain calls _pump as well: that sixth failure is logged and the drain goes on
        ("packetd.agent.main:Agent._pump:1000:main", "main", 6),
        ("packetd.agent.worker:Worker.flush:1000:worker", "worker", 5),
    ],
)
def test_a_component_that_keeps_failing_fails_the_probes_and_exits_1(
    fault: str, component: str, fired: int
) -> None:
    f = Faulty(fault)
    try:
        assert wait_until(lambda: get(f.api, "/healthz")[0] == 200)
        seen = _probe_until_exit(f)
        assert f.agent.proc.wait(timeout=60) == 1
        assert 503 in seen and seen.index(503) > seen.index(200)  # healthy, then failing, then gone
        assert f.fired() == fired  # five failures within the window, then no restart
        err = f.agent.stderr()
        assert f"{component} cannot be kept running (5 failures within 60s)" in err
        assert err.count(f"{component} failed:") == 5
    finally:
        f.agent.stop()


@pytest.mark.parametrize("faulty", [("packetd.agent.main:Agent._pump:1000:main", "")], indirect=True)
def test_sigterm_stops_an_agent_whose_main_loop_keeps_failing(faulty: Faulty) -> None:
    assert wait_until(lambda: faulty.fired() >= 2)
    answer: list[tuple[int, bytes]] = []
    reload = threading.Thread(target=lambda: answer.append(post(faulty.api, "/-/reload")))
    reload.start()  # waits for a main loop that keeps failing
    time.sleep(0.3)
    started = time.monotonic()
    faulty.agent.proc.send_signal(signal.SIGTERM)
    # stopped on request, before the supervisor gave up; the drain's own _pump fails too: status 1
    assert faulty.agent.proc.wait(timeout=30) == 1
    assert time.monotonic() - started < 20.0  # controller.drainTimeout (default 20s)
    reload.join(timeout=10)
    assert answer == [(500, b"the agent is stopping\n")]  # answered, not left hanging
    err = faulty.agent.stderr()
    assert "cannot be kept running" not in err and "stopping" in err
    assert err.count("main failed:") == faulty.fired() - 1  # the loop's; the drain's is the last one
    assert err.count("main: RuntimeError: injected fault") == 1


def test_sigterm_stops_within_the_drain_timeout_while_a_backend_hangs() -> None:
    # a traces back-end that accepts and never answers; the exporter's own timeout is far longer
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(16)
    port = hang.getsockname()[1]
    f = Faulty(
        "",  # no fault: the drain alone is tested
        f'exporter.traces: {{enabled: true, endpoint: "http://127.0.0.1:{port}/v1/traces", '
        f"batch: 5, interval: 100ms, timeout: 60s}}\ncontroller.drainTimeout: 3s",
    )
    try:
        f.agent.wait_ready(f.api)
        time.sleep(1.5)  # the exporter is inside its 60 s request
        started = time.monotonic()
        f.agent.proc.send_signal(signal.SIGTERM)
        f.agent.proc.wait(timeout=30)
        assert time.monotonic() - started < 3.0 + 2.5  # drain, the watchdog's second, process exit
    finally:
        f.agent.stop()
        hang.close()


def test_one_traceback_per_failure_and_every_line_formatted() -> None:
    """The stderr of a faulty run: each line is a log record in the agent's format or part of a traceback."""
    f = Faulty("packetd.agent.main:Agent._pump:1:main")
    try:
        f.agent.wait_ready(f.api)
        assert f.agent.stop() == 0
        record = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")
        in_traceback = False
        for line in f.agent.stderr().splitlines():
            if record.match(line):
                in_traceback = False
            elif line.startswith("Traceback"):
                in_traceback = True
            else:
                assert in_traceback, line
    finally:
        f.agent.stop()


def test_a_workers_failure_goes_to_the_agents_log_file() -> None:
    log_file = os.path.join(tempfile.mkdtemp(prefix="packetd-log-"), "agent.log")
    f = Faulty(
        "packetd.agent.worker:Worker.flush:1:worker", f'logger: {{stdout: false, filename: "{log_file}"}}'
    )
    try:
        f.agent.wait_ready(f.api)
        assert wait_until(lambda: f.requests() == BRO_REQUESTS)
        assert f.agent.stop() == 0
        with open(log_file) as lf:
            text = lf.read()
        assert "ERROR worker-0 worker 0 failed" in text and tracebacks(text) == 1
        assert "worker failed: worker 0 exited (RuntimeError: injected fault)" in text
        assert f.agent.stderr() == ""
    finally:
        f.agent.stop()


@live
def test_a_hung_worker_is_killed_restarted_and_counts_again() -> None:
    from packetd.agent.main import WORKER_SILENT_S

    nginx = Nginx()
    fault_dir = tempfile.mkdtemp(prefix="packetd-fault-")
    api = free_port()
    lines = os.path.join(fault_dir, "roundtrips.jsonl")
    env = {
        "PYTHONPATH": os.pathsep.join([FAULTS, PACKAGE_PATH]),
        "PACKETD_FAULT": "packetd.agent.worker:Worker.flush:1:worker",
        "PACKETD_FAULT_DIR": fault_dir,
        "PACKETD_FAULT_ACTION": "hang",
    }
    agent = AgentProcess(live_config(api, nginx.port, 1, 16, lines), env=env)
    sent: list[dict[str, Any]] = []
    try:
        agent.wait_ready(api)
        first = _worker_pids(agent.proc.pid)
        assert len(first) == 1
        # its first flush never returns: silent, then killed and replaced
        deadline = time.monotonic() + WORKER_SILENT_S + 30
        while time.monotonic() < deadline and _worker_pids(agent.proc.pid) in ([], first):
            time.sleep(0.5)
        second = _worker_pids(agent.proc.pid)
        assert len(second) == 1 and second != first
        agent.wait_ready(api)
        err = agent.stderr()
        assert "worker failed: worker 0 exited (sent nothing for" in err and "killed as hung" in err
        text = get(api, "/metrics")[1].decode()
        assert counter_sum(text, "packetd_internal_errors_total", component="worker") == 1
        time.sleep(1.0)
        traffic(nginx.port, [(f"/after-hang/{n}", {}) for n in range(6)], sent, connections=2)
        assert wait_for(lambda: counter_sum(scrape(api), "http_requests_total"), 6.0) == 6.0
        with open(os.path.join(fault_dir, "fired")) as f:
            assert len(f.read().splitlines()) == 1
    finally:
        agent.stop()
        nginx.stop()
