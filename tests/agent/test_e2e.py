"""`packetd agent` end to end: live capture of real traffic (nginx and an HTTP client, redis-server and
redis-py), a real Prometheus scraping it and receiving its remote write, an OTLP receiver for its spans,
/watch, reload, and back-ends that go away and return.

The truth is the clients' own logs of what they sent and received (and tshark's byte counts for the
layer-4 metrics); every number asserted is compared with them.
"""

from __future__ import annotations

import http.client
import inspect
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from typing import Any

import pytest

from tests.helpers.backends import AgentProcess, OtlpReceiver, Prometheus
from tests.helpers.dbservers import RedisServer, redis_available
from tests.helpers.live import Nginx, free_port, live_marks, nginx_available
from tests.helpers.special_server import SpecialServer

pytestmark = live_marks(
    (nginx_available(), "nginx"),
    (os.path.exists("/usr/bin/prometheus"), "prometheus"),
    (redis_available(), "redis-server"),
    slow=True,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def config(
    server_port: int,
    ports: list[int],
    prom: Prometheus | None,
    otlp: OtlpReceiver | None,
    workdir: str | None,
    workers: int = 1,
    redis_port: int | None = None,
) -> str:
    cache = "" if redis_port is None else f"\n    - {{name: cache, protocol: redis, ports: [{redis_port}]}}"
    text = f"""
logger.level: info
sniffer:
  ifaces: "^lo$"
  blockNum: 128
  workers: {workers}
  protocols.rules:
    - {{name: web, protocol: http, ports: [{", ".join(map(str, ports))}]}}{cache}
server.address: "127.0.0.1:{server_port}"
controller.layer4Metrics:
  enabled: true
  requiredLabels: [destination.port]
"""
    if workdir is not None:
        text += f'exporter.roundtrips: {{enabled: true, filename: "{workdir}/roundtrips.jsonl"}}\n'
    if prom is not None:
        text += f'exporter.metrics: {{enabled: true, endpoint: "{prom.remote_write}", interval: 1s, timeout: 2s, externalLabels: {{via: remote_write}}}}\n'
    if otlp is not None:
        text += f'exporter.traces: {{enabled: true, endpoint: "{otlp.endpoint}", batch: 10, interval: 500ms, timeout: 2s}}\n'
    return text


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def post(port: int, path: str, body: bytes = b"") -> tuple[int, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=90) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def traffic(
    port: int, plan: list[tuple[str, dict[str, str]]], log: list[dict[str, Any]], connections: int = 1
) -> None:
    """Send `plan` over `connections` keep-alive connections; log what each request got, and when."""
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(connections)]
    for i, (path, headers) in enumerate(plan):
        c = conns[i % connections]
        t0 = time.time_ns()
        c.request("GET", path, headers=headers)
        r = c.getresponse()
        r.read()
        log.append(
            {
                "path": path.split("?")[0],
                "status": r.status,
                "sent": t0,
                "received": time.time_ns(),
                "traced": "traceparent" in headers,
            }
        )
    for c in conns:
        c.close()


def redis_traffic(port: int) -> Counter[tuple[str, bool]]:
    """SETs, GETs and INCRBYs of a string (an error reply) through redis-py; (command, failed) -> count.

    No client name/version and RESP2: the library then sends nothing of its own on connect, so what it
    was asked to send is all it sent (the live Redis test checks that on the wire).
    """
    import redis

    # redis-py 5-7 name themselves with lib_name/lib_version, 8 with driver_info (the old pair deprecated)
    params = inspect.signature(redis.Redis).parameters
    quiet: dict[str, Any] = (
        {"driver_info": None} if "driver_info" in params else {"lib_name": None, "lib_version": None}
    )
    client = redis.Redis(port=port, protocol=2, **quiet)
    sent: Counter[tuple[str, bool]] = Counter()
    for i in range(12):
        client.set(f"k{i}", "v" * i)
        sent["SET", False] += 1
    for i in range(8):
        assert client.get(f"k{i}") == b"v" * i
        sent["GET", False] += 1
    for i in range(1, 4):
        with pytest.raises(redis.ResponseError):
            client.incrby(f"k{i}", 1)  # what client.incr() sends too
        sent["INCRBY", True] += 1
    client.close()
    return sent


def scrape(port: int) -> str:
    return get(port, "/protocol/metrics")[1].decode()


def counter_sum(text: str, name: str, **labels: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def wait_for(fn: Any, want: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    got = fn()
    while got != want and time.monotonic() < deadline:
        time.sleep(0.3)
        got = fn()
    return got


@pytest.fixture(scope="module")
def stack() -> Any:
    nginx = Nginx()
    rds = RedisServer()
    api_port = free_port()
    prom = Prometheus(target=f"127.0.0.1:{api_port}")
    otlp = OtlpReceiver()
    agent = AgentProcess(config(api_port, [nginx.port], prom, otlp, prom.dir, redis_port=rds.port))
    pcap = os.path.join(prom.dir, "truth.pcap")
    tcpdump = subprocess.Popen(
        ["tcpdump", "-i", "lo", "-U", "--immediate-mode", "-B", "65536", "-w", pcap,
         f"tcp port {nginx.port} or tcp port {rds.port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    state: dict[str, Any] = {
        "nginx": nginx,
        "redis": rds,
        "prom": prom,
        "otlp": otlp,
        "agent": agent,
        "api": api_port,
        "log": [],
        "pcap": pcap,
    }
    try:
        agent.wait_ready(api_port)
        time.sleep(1.0)  # tcpdump listening too
        watched: list[bytes] = []

        def watch() -> None:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{api_port}/watch?max_message=10&timeout=20s", timeout=30
            ) as r:
                watched.extend(line for line in r.read().splitlines() if line)

        watcher = threading.Thread(target=watch)
        watcher.start()
        time.sleep(1.5)  # the subscription reaches the worker before the traffic starts
        plan = [("/index.txt", {})] * 20 + [("/missing", {})] * 5 + [("/boom", {})] * 3
        plan += [("/index.txt", {"traceparent": f"00-{TRACE_ID}-{PARENT}-01"})] * 2
        traffic(nginx.port, plan, state["log"], connections=3)
        watcher.join(timeout=40)
        state["watched"] = watched
        state["redis_log"] = redis_traffic(rds.port)
        yield state
    finally:
        tcpdump.send_signal(signal.SIGINT)
        tcpdump.wait(timeout=10)
        agent.stop()
        otlp.stop()
        prom.cleanup()
        rds.stop()
        nginx.stop()


def test_scraped_request_counts_equal_what_the_client_sent(stack: Any) -> None:
    prom, log = stack["prom"], stack["log"]
    assert prom.wait_value('sum(http_requests_total{job="packetd",via=""})', len(log)) == len(log) == 30
    got = {
        r["metric"]["status"]: float(r["value"][1])
        for r in prom.query('sum by (status) (http_requests_total{job="packetd",via=""})')
    }
    want = Counter(str(e["status"]) for e in log)
    assert got == {k: float(v) for k, v in want.items()} == {"200": 22.0, "404": 5.0, "503": 3.0}


def test_scraped_redis_commands_and_errors_equal_what_redis_py_sent(stack: Any) -> None:
    prom, sent = stack["prom"], stack["redis_log"]
    total = sum(sent.values())
    assert prom.wait_value('sum(redis_requests_total{job="packetd",via=""})', total) == total == 23
    by_command = {
        r["metric"]["command"]: float(r["value"][1])
        for r in prom.query('sum by (command) (redis_requests_total{job="packetd",via=""})')
    }
    want: Counter[str] = Counter()
    for (command, _failed), n in sent.items():
        want[command] += n
    assert by_command == {k: float(v) for k, v in want.items()}
    failed = {
        r["metric"]["command"]: float(r["value"][1])
        for r in prom.query('sum by (command) (redis_requests_total{job="packetd",via="",error="true"})')
    }
    assert failed == {c: float(n) for (c, f), n in sent.items() if f} == {"INCRBY": 3.0}
    assert (
        prom.wait_value('sum(redis_requests_total{via="remote_write"})', total) == total
    )  # remote write too


def test_remote_written_counts_match_too(stack: Any) -> None:
    prom, log = stack["prom"], stack["log"]
    # remote-written series carry the config's external label: {via="remote_write"} selects them and not
    # the scraped ones (which carry the scrape's job and instance, and no `via`)
    assert prom.wait_value('sum(http_requests_total{via="remote_write"})', len(log)) == len(log)
    assert prom.wait_value('sum(http_request_duration_seconds_count{via="remote_write"})', len(log)) == len(
        log
    )
    # and the sender's identity: job=packetd, instance = the node (NODE_NAME, else the host name)
    groups = prom.query('count by (job, instance) (http_requests_total{via="remote_write"})')
    node = os.environ.get("NODE_NAME") or socket.gethostname()
    assert [g["metric"] for g in groups] == [{"job": "packetd", "instance": node}]


def test_spans_match_the_traffic(stack: Any) -> None:
    otlp, log, sent = stack["otlp"], stack["log"], stack["redis_log"]
    want = len(log) + sum(sent.values())
    assert wait_for(lambda: len(otlp.spans), want) == want
    web = f"http:127.0.0.1:{stack['nginx'].port}"
    spans = [s for s in otlp.spans if s["resource"]["service.name"] == web]
    cache = [
        s for s in otlp.spans if s["resource"]["service.name"] == f"redis:127.0.0.1:{stack['redis'].port}"
    ]
    assert len(spans) + len(cache) == want
    assert Counter((s["attributes"]["db.operation.name"], s["status"] == 2) for s in cache) == sent
    assert {s["kind"] for s in cache} == {2}  # SERVER: the span stands for the observed redis-server
    assert {s["attributes"]["db.system.name"] for s in cache} == {"redis"}
    assert Counter(s["attributes"]["url.path"] for s in spans) == Counter(e["path"] for e in log)
    assert Counter(s["attributes"]["http.response.status_code"] for s in spans) == Counter(
        e["status"] for e in log
    )
    assert {s["name"] for s in spans} == {"GET"} and {s["kind"] for s in spans} == {2}  # SPAN_KIND_SERVER
    errors = [s for s in spans if s["status"] == 2]  # STATUS_CODE_ERROR
    assert len(errors) == 3 and {s["attributes"]["url.path"] for s in errors} == {"/boom"}
    traced = [s for s in spans if s["trace_id"] == TRACE_ID]
    assert len(traced) == 2 and all(s["parent_span_id"] == PARENT for s in traced)
    untraced = [s for s in spans if s["trace_id"] != TRACE_ID]
    assert all(s["parent_span_id"] == "" for s in untraced)  # a new trace: no phantom parent
    # capture times sit inside the client's own send/receive window (same host clock; 50 ms slack)
    window_start = min(e["sent"] for e in log) - 50_000_000
    window_end = max(e["received"] for e in log) + 50_000_000
    assert all(window_start <= s["start"] <= s["end"] <= window_end for s in spans)


def test_watch_streams_roundtrips_and_probes_answer(stack: Any) -> None:
    lines = [json.loads(x) for x in stack["watched"]]
    assert len(lines) == 10 and all(r["protocol"] == "http" and r["kind"] == "roundtrip" for r in lines)
    assert get(stack["api"], "/healthz")[0] == 200
    assert get(stack["api"], "/readyz")[0] == 200
    status, body = get(stack["api"], "/metrics")
    text = body.decode()
    assert status == 200 and "packetd_build_info{" in text
    assert counter_sum(text, "packetd_roundtrips_total", protocol="http", kind="roundtrip") >= 30
    assert counter_sum(text, "packetd_sniffer_dropped_packets_total") == 0
    assert get(stack["api"], "/nope")[0] == 404
    assert post(stack["api"], "/metrics")[0] == 405


def test_roundtrip_log_has_every_exchange(stack: Any) -> None:
    path = os.path.join(stack["prom"].dir, "roundtrips.jsonl")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(path) as f:
            records = [json.loads(line) for line in f]
        if len(records) >= 30 + 23:
            break
        time.sleep(0.3)
    web = [r for r in records if r["protocol"] == "http"]
    cache = [r for r in records if r["protocol"] == "redis"]
    assert len(web) + len(cache) == len(records)
    assert Counter((r["request"]["path"], int(r["status"])) for r in web) == Counter(
        (e["path"], e["status"]) for e in stack["log"]
    )
    assert Counter((r["request"]["command"], r["error"]) for r in cache) == stack["redis_log"]


def test_layer4_bytes_equal_tshark_on_the_same_traffic(stack: Any) -> None:
    out = subprocess.run(
        ["tshark", "-n", "-r", stack["pcap"], "-T", "fields", "-e", "tcp.dstport", "-e", "tcp.len"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    truth: Counter[str] = Counter()
    for line in out.splitlines():
        dport, length = line.split("\t")
        truth[dport] += int(length)
    text = scrape(stack["api"])
    for port in (stack["nginx"].port, stack["redis"].port):
        assert truth[str(port)] > 0
        assert counter_sum(text, "tcp_received_bytes_total", dst_port=str(port)) == truth[str(port)]
    assert counter_sum(text, "tcp_received_bytes_total") == sum(truth.values())


def test_reload_adds_a_rule_rejects_a_broken_config_and_keeps_counting(stack: Any) -> None:
    agent, api, nginx = stack["agent"], stack["api"], stack["nginx"]
    special = SpecialServer(free_port())
    try:
        workdir, rport = stack["prom"].dir, stack["redis"].port
        agent.write_config(
            config(api, [nginx.port, special.port], stack["prom"], stack["otlp"], workdir, redis_port=rport)
        )
        agent.proc.send_signal(signal.SIGHUP)
        assert (
            wait_for(lambda: counter_sum(get(api, "/metrics")[1].decode(), "packetd_reloads_total"), 1.0)
            == 1.0
        )
        time.sleep(1.0)
        log: list[dict[str, Any]] = []
        traffic(special.port, [("/new-rule", {})] * 4, log)
        assert wait_for(lambda: counter_sum(scrape(api), "http_requests_total", path="/new-rule"), 4.0) == 4.0
        # a broken config is rejected; the old one keeps running and counting
        agent.write_config("sniffer:\n  blockNum: 1\n")
        agent.proc.send_signal(signal.SIGHUP)
        assert (
            wait_for(
                lambda: counter_sum(get(api, "/metrics")[1].decode(), "packetd_reload_failures_total"), 1.0
            )
            == 1.0
        )
        traffic(special.port, [("/after-broken", {})] * 2, log)
        assert (
            wait_for(lambda: counter_sum(scrape(api), "http_requests_total", path="/after-broken"), 2.0)
            == 2.0
        )
        # POST /-/reload applies a good config and answers with the outcome
        agent.write_config(
            config(api, [nginx.port, special.port], stack["prom"], stack["otlp"], workdir, redis_port=rport)
        )
        status, body = post(api, "/-/reload")
        assert status == 200 and b"applied" in body
        agent.write_config("sniffer:\n  blockNum: 1\n")
        status, body = post(api, "/-/reload")
        assert status == 500 and b"'sniffer.blockNum': 1 is invalid" in body
        assert agent.proc.poll() is None
    finally:
        special.stop()


def test_backends_that_go_away_lose_nothing_within_the_queue_bound(stack: Any) -> None:
    otlp, prom, nginx, api = stack["otlp"], stack["prom"], stack["nginx"], stack["api"]
    before_spans = len(otlp.spans)
    before = prom.value('sum(http_requests_total{via="remote_write"})') or 0.0
    otlp.stop()
    prom.stop()
    log: list[dict[str, Any]] = []
    traffic(nginx.port, [("/during-outage", {})] * 15, log)
    time.sleep(3)  # the exporters fail and back off meanwhile
    otlp.start()
    prom.start()
    assert wait_for(lambda: len(otlp.spans) - before_spans, 15, timeout=60) == 15
    assert {s["attributes"]["url.path"] for s in otlp.spans[before_spans:]} == {"/during-outage"}
    assert (
        prom.wait_value(
            'sum(http_requests_total{via="remote_write",path="/during-outage"})', 15.0, timeout=90
        )
        == 15.0
    )
    assert (prom.value('sum(http_requests_total{via="remote_write"})') or 0) >= before + 15
    text = get(api, "/metrics")[1].decode()
    assert counter_sum(text, "packetd_exporter_failed_total", exporter="traces") >= 1
    assert counter_sum(text, "packetd_exporter_dropped_total") == 0


@pytest.mark.parametrize("workers", [1, 2])
def test_one_or_two_workers_report_the_same(workers: int) -> None:
    nginx = Nginx()
    api = free_port()
    agent = AgentProcess(config(api, [nginx.port], None, None, None, workers=workers))
    try:
        agent.wait_ready(api)
        time.sleep(1.0)
        log: list[dict[str, Any]] = []
        plan = [(f"/index.txt?c={i}", {}) for i in range(30)] + [("/missing", {})] * 6 + [("/teapot", {})] * 4
        traffic(nginx.port, plan, log, connections=8)  # 8 connections: fanout spreads them over the workers
        want = Counter((e["path"], str(e["status"])) for e in log)

        def counts() -> Counter[tuple[str, str]]:
            from prometheus_client.parser import text_string_to_metric_families

            got: Counter[tuple[str, str]] = Counter()
            for fam in text_string_to_metric_families(scrape(api)):
                for s in fam.samples:
                    if s.name == "http_requests_total":
                        got[(s.labels["path"], s.labels["status"])] += int(s.value)
            return got

        assert wait_for(counts, want) == want
        text = get(api, "/metrics")[1].decode()
        assert counter_sum(text, "packetd_flows_total", event="created") == 8
        assert [f"worker {i} capturing on ^lo$" in agent.stderr() for i in range(workers)] == [True] * workers
    finally:
        agent.stop()
        nginx.stop()
