"""The agent's protocol metrics against real servers and a real Prometheus.

* Sub-millisecond latency: redis-server on loopback answers in tens of µs; Prometheus scrapes the agent and
  `histogram_quantile` must land within one bucket of the p50/p99 of the agent's own roundtrip records
  (Prometheus interpolates inside the bucket that holds the rank, so one bucket's width is the exact bound).
* A path flood through nginx: 10 000 distinct short paths and 2 000 distinct 4 KB ones, real requests
  captured live. One scrape must stay under 10 MB, the main process's peak RSS (VmHWM) bounded, every
  request still counted (in __overflow__ series where the budget is spent) and every cut label counted.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import time

import pytest

from tests.agent.test_e2e import counter_sum, get, scrape, wait_for
from tests.helpers.backends import AgentProcess, Prometheus
from tests.helpers.dbservers import RedisServer, redis_available
from tests.helpers.live import Nginx, free_port, live_marks, nginx_available

pytestmark = live_marks(slow=True)
needs_prometheus = pytest.mark.skipif(
    not os.path.exists("/usr/bin/prometheus"), reason="prometheus is not installed (make test-deps)"
)


def agent_config(api: int, rules: str, extra: str = "") -> str:
    return f"""
logger.level: info
sniffer:
  ifaces: "^lo$"
  blockNum: 128
  protocols.rules:
{rules}
server.address: "127.0.0.1:{api}"
{extra}"""


def one_two_five(lo: float, hi: float) -> list[float]:
    """The 1-2.5-5 series the issue asks for, built here independently of the code."""
    out = [round(m * 10.0**e, 12) for e in range(-7, 3) for m in (1, 2.5, 5)]
    return [b for b in out if lo <= b <= hi]


def nearest_rank(values: list[float], q: float) -> float:
    """The q-quantile as Prometheus ranks it: the ceil(q·n)-th smallest value."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def bucket_of(bounds: list[float], value: float) -> tuple[float, float]:
    """(lower, upper] of the bucket holding `value`."""
    lower = 0.0
    for upper in bounds:
        if value <= upper:
            return lower, upper
        lower = upper
    return lower, math.inf


@needs_prometheus
@pytest.mark.skipif(not redis_available(), reason="redis-server is not installed (make test-deps)")
def test_promql_quantiles_of_a_sub_millisecond_server_match_the_records() -> None:
    import redis

    rds = RedisServer()
    api = free_port()
    prom = Prometheus(target=f"127.0.0.1:{api}")
    records_path = os.path.join(prom.dir, "roundtrips.jsonl")
    agent = AgentProcess(
        agent_config(
            api,
            f"    - {{name: cache, protocol: redis, ports: [{rds.port}]}}",
            f'exporter.roundtrips: {{enabled: true, filename: "{records_path}"}}\n',
        )
    )
    try:
        agent.wait_ready(api)
        time.sleep(1.0)
        client = redis.Redis(port=rds.port, protocol=2)
        for i in range(400):
            client.set(f"k{i}", "v" * (i % 50))
            client.get(f"k{i}")
        client.close()

        def durations() -> list[float]:
            with open(records_path) as f:
                recs = [json.loads(line) for line in f]
            return [r["duration_ns"] / 1e9 for r in recs if r["protocol"] == "redis" and r["duration_ns"]]

        # 800 commands, and what redis-py sends on connect by itself (CLIENT SETINFO in redis-py 5+)
        assert wait_for(lambda: len(durations()) >= 800, True) is True
        time.sleep(1.0)
        truth = durations()
        expr_count = 'sum(redis_request_duration_seconds_count{job="packetd"})'
        assert prom.wait_value(expr_count, float(len(truth))) == len(truth)
        bounds = sorted(
            {
                float(r["metric"]["le"])
                for r in prom.query('redis_request_duration_seconds_bucket{job="packetd"}')
                if r["metric"]["le"] != "+Inf"
            }
        )
        assert bounds == pytest.approx([*one_two_five(25e-6, 25.0), 60.0])
        assert nearest_rank(truth, 0.5) < 0.001  # the server really is sub-millisecond on the wire
        for q in (0.5, 0.99):
            expr = f'histogram_quantile({q}, sum by (le) (redis_request_duration_seconds_bucket{{job="packetd"}}))'
            got = prom.value(expr)
            want = nearest_rank(truth, q)
            lower, upper = bucket_of(bounds, want)
            assert got is not None and abs(got - want) <= upper - lower, (q, got, want, (lower, upper))
    finally:
        agent.stop()
        prom.cleanup()
        rds.stop()


def hwm_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(f.read().split("VmHWM:")[1].split()[0])


@pytest.mark.skipif(not nginx_available(), reason="nginx is not installed (make test-deps)")
def test_a_path_flood_keeps_the_scrape_and_the_agent_bounded() -> None:
    nginx = Nginx()
    api = free_port()
    agent = AgentProcess(
        agent_config(
            api,
            f"    - {{name: web, protocol: http, ports: [{nginx.port}]}}",
            "controller.connExpired: 10m\n",
        )
    )
    try:
        agent.wait_ready(api)
        time.sleep(1.0)
        idle_kib = hwm_kib(agent.proc.pid)
        # word-like segments with commas: no id rule templates them (a scanner's word list)
        paths = [f"/scan/w{i}x" for i in range(10_000)]
        long_paths = [f"/long/{i}," + "ab," * 1362 for i in range(2_000)]
        assert all(4090 <= len(p) <= 4100 for p in long_paths)
        conn = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=10)
        for path in long_paths + paths:  # long first: they take the path budget, the short ones overflow it
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 404
        conn.close()
        sent = len(paths) + len(long_paths)

        def counted() -> float:
            return counter_sum(scrape(api), "http_requests_total")

        assert wait_for(counted, float(sent), timeout=90) == float(sent)  # nothing lost to the budget
        body = get(api, "/protocol/metrics")[1]
        assert len(body) < 10_000_000, len(body)
        text = body.decode()
        from prometheus_client.parser import text_string_to_metric_families

        values = [
            s.labels["path"]
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if "path" in s.labels
        ]
        assert max(len(v.encode()) for v in values) <= 256
        assert any(v.endswith("...[truncated]") for v in values) and "__overflow__" in values
        self_text = get(api, "/metrics")[1].decode()
        assert counter_sum(self_text, "packetd_metric_label_truncated_total", label="path") == len(long_paths)
        # the long paths spend the byte budget (~19 KB of lines each) before the 1 000-path budget: the rest
        # of the flood folds into whole __overflow__ series, each fold counted. Which metric hits the byte
        # budget first depends on how the flood was cut into worker deltas (a delta's counters are merged
        # before its histograms), so the folds are checked per metric that has any.
        folded = {
            s.labels["metric"]: s.value
            for f in text_string_to_metric_families(self_text)
            for s in f.samples
            if s.name == "packetd_metric_series_overflow_total"
        }
        assert sum(folded.values()) > 0, folded
        whole = {
            s.name.removesuffix("_count").removesuffix("_total")
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.labels and all(v == "__overflow__" for k, v in s.labels.items() if k != "le")
        }
        for metric, n in folded.items():
            if n > 0:
                assert metric.removesuffix("_total") in whole, (metric, sorted(whole))
        peak_kib = hwm_kib(agent.proc.pid)
        # issue 14: the same flood took the main process from 68 MiB to 1.4 GiB; the DaemonSet limit is 512 Mi.
        # The store holds at most maxScrapeMB (6) of series: 64 MiB over idle holds that with room for Python's
        # dicts and one scrape being formatted (measured: +27 MiB).
        print(f"agent main process VmHWM: idle {idle_kib} KiB, after the flood and scrapes {peak_kib} KiB")
        assert peak_kib - idle_kib < 64 * 1024, (idle_kib, peak_kib)
    finally:
        agent.stop()
        nginx.stop()


@needs_prometheus
@pytest.mark.skipif(not nginx_available(), reason="nginx is not installed (make test-deps)")
def test_two_agents_remote_writing_one_server_stay_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 10: two agents that see one server wrote the same series. Now each carries its node."""
    nginx = Nginx()
    prom = Prometheus(target=f"127.0.0.1:{free_port()}")  # nothing to scrape: remote write only
    agents: list[AgentProcess] = []
    try:
        for node in ("node-a", "node-b"):
            monkeypatch.setenv("NODE_NAME", node)  # what the chart sets from the downward API
            api = free_port()
            agents.append(
                AgentProcess(
                    agent_config(
                        api,
                        f"    - {{name: web, protocol: http, ports: [{nginx.port}]}}",
                        f'exporter.metrics: {{enabled: true, endpoint: "{prom.remote_write}", interval: 1s, '
                        "timeout: 2s, externalLabels: {cluster: lab}}\n",
                    )
                )
            )
            agents[-1].wait_ready(api)
        time.sleep(1.0)
        conn = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=10)
        for _ in range(7):
            conn.request("GET", "/index.txt")
            conn.getresponse().read()
        conn.close()
        expr = 'sum by (instance, job, cluster) (http_requests_total{cluster="lab"})'

        def per_agent() -> dict[str, float]:
            return {
                f"{r['metric']['job']}/{r['metric']['instance']}/{r['metric']['cluster']}": float(
                    r["value"][1]
                )
                for r in prom.query(expr)
            }

        want = {"packetd/node-a/lab": 7.0, "packetd/node-b/lab": 7.0}
        assert wait_for(per_agent, want, timeout=30) == want  # both saw all 7, each under its own name
        assert prom.value('count(count by (instance) (http_requests_total{cluster="lab"}))') == 2.0
    finally:
        for agent in agents:
            agent.stop()
        prom.cleanup()
        nginx.stop()


@pytest.mark.skipif(not nginx_available(), reason="nginx is not installed (make test-deps)")
def test_openmetrics_scrape_with_gzip_carries_exemplars_of_exported_spans() -> None:
    import gzip
    import urllib.request

    from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om

    from tests.agent.test_metrics import OPENMETRICS
    from tests.helpers.backends import OtlpReceiver

    nginx = Nginx()
    otlp = OtlpReceiver()
    api = free_port()
    agent = AgentProcess(
        agent_config(
            api,
            f"    - {{name: web, protocol: http, ports: [{nginx.port}]}}",
            f'exporter.traces: {{enabled: true, endpoint: "{otlp.endpoint}", batch: 10, interval: 500ms}}\n',
        )
    )
    try:
        agent.wait_ready(api)
        time.sleep(1.0)
        conn = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=10)
        for path in ["/index.txt"] * 20 + ["/big.bin"] * 2 + ["/boom"] * 3:
            conn.request("GET", path)
            conn.getresponse().read()
        conn.close()
        assert wait_for(lambda: len(otlp.spans), 25) == 25
        assert wait_for(lambda: counter_sum(scrape(api), "http_requests_total"), 25.0) == 25.0
        req = urllib.request.Request(
            f"http://127.0.0.1:{api}/protocol/metrics",
            headers={"Accept": OPENMETRICS, "Accept-Encoding": "gzip"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.headers["Content-Encoding"] == "gzip"
            assert r.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
            text = gzip.decompress(r.read()).decode()
        spans = {s["trace_id"]: s for s in otlp.spans}
        exemplars = [
            s.exemplar
            for fam in parse_om(text)
            for s in fam.samples
            if s.name == "http_request_duration_seconds_bucket" and s.exemplar is not None
        ]
        assert exemplars
        for ex in exemplars:  # each names a span the trace backend received, and that span's duration
            span = spans[ex.labels["trace_id"]]
            assert span["span_id"] == ex.labels["span_id"]
            assert ex.value == pytest.approx((span["end"] - span["start"]) / 1e9, abs=1e-9)
        plain = get(api, "/protocol/metrics")[1]
        assert b"# {" not in plain  # the text format has no exemplars
    finally:
        agent.stop()
        otlp.stop()
        nginx.stop()
