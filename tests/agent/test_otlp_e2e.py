"""`packetd agent` with the OpenTelemetry-native exports on: live capture of redis-py talking to a real
redis-server, OTLP metrics over gRPC and OTLP logs over HTTP to receivers built on opentelemetry-proto,
spans and the roundtrip file beside them. The truth is what redis-py sent (command by command, with the
errors it got back); the log records are compared with the roundtrip file's lines and the spans."""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any

import orjson
import pytest

from tests.agent.test_e2e import counter_sum, get, redis_traffic, wait_for
from tests.helpers.backends import AgentProcess, OtlpGrpcReceiver, OtlpReceiver
from tests.helpers.dbservers import RedisServer, redis_available
from tests.helpers.live import free_port, live_marks

pytestmark = live_marks((redis_available(), "redis-server"), slow=True)


def test_otlp_metrics_and_logs_equal_what_redis_py_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    rds = RedisServer()
    grpc_rx = OtlpGrpcReceiver()
    http_rx = OtlpReceiver()
    api = free_port()
    workdir = os.path.join(rds.dir, "agent")
    os.makedirs(workdir)
    monkeypatch.setenv("NODE_NAME", "node-under-test")  # as the DaemonSet's downward API sets it
    agent = AgentProcess(
        f"""
sniffer:
  ifaces: "^lo$"
  blockNum: 32
  protocols.rules:
    - {{name: cache, protocol: redis, ports: [{rds.port}]}}
server.address: "127.0.0.1:{api}"
exporter:
  roundtrips: {{enabled: true, filename: "{workdir}/roundtrips.jsonl"}}
  traces: {{enabled: true, endpoint: "{http_rx.endpoint}", batch: 10, interval: 500ms, timeout: 2s}}
  otlpMetrics: {{enabled: true, protocol: grpc, endpoint: "{grpc_rx.endpoint}", interval: 1s, timeout: 2s}}
  otlpLogs: {{enabled: true, endpoint: "{http_rx.url("logs")}", batch: 10, interval: 500ms, timeout: 2s}}
"""
    )
    try:
        agent.wait_ready(api)
        time.sleep(1.0)
        sent = redis_traffic(rds.port)
        total = sum(sent.values())
        assert total == 23

        def metric_counts() -> Counter[tuple[str, bool]]:
            latest: dict[Any, dict[str, Any]] = {}
            for p in grpc_rx.metrics:  # cumulative: the newest point of each series holds the total
                key = (p["name"], tuple(sorted(p["attributes"].items())))
                if key not in latest or p["time"] > latest[key]["time"]:
                    latest[key] = p
            got: Counter[tuple[str, bool]] = Counter()
            for p in latest.values():
                if p["name"] == "db.client.operation.duration":
                    a = p["attributes"]
                    assert a["db.system.name"] == "redis" and a["server.port"] == rds.port
                    got[a["db.operation.name"], "error.type" in a] += p["count"]
            return got

        assert wait_for(metric_counts, sent, timeout=30) == sent
        point = grpc_rx.metrics[-1]
        assert point["resource"]["k8s.node.name"] == "node-under-test"
        assert point["resource"]["service.name"] == "packetd" and point["unit"] == "s"

        assert wait_for(lambda: len(http_rx.logs), total, timeout=30) == total
        assert wait_for(lambda: len(http_rx.spans), total, timeout=30) == total
        with open(os.path.join(workdir, "roundtrips.jsonl"), "rb") as f:
            lines = [orjson.loads(line) for line in f if line.strip()]
        assert sorted(orjson.dumps(r["body"]) for r in http_rx.logs) == sorted(orjson.dumps(x) for x in lines)
        span_ids = {(s["trace_id"], s["span_id"]) for s in http_rx.spans}
        assert {(r["trace_id"], r["span_id"]) for r in http_rx.logs} == span_ids
        ops = Counter(
            (r["attributes"]["packetd.operation"], r["severity_text"] == "ERROR") for r in http_rx.logs
        )
        assert ops == sent
        # the exporters' counters on /metrics say the same (and nothing was dropped or failed)
        text = get(api, "/metrics")[1].decode()
        assert counter_sum(text, "packetd_exporter_sent_total", exporter="otlpLogs") == total
        assert counter_sum(text, "packetd_exporter_sent_total", exporter="otlpMetrics") >= 1
        for name in ("otlpLogs", "otlpMetrics"):
            assert counter_sum(text, "packetd_exporter_dropped_total", exporter=name) == 0
            assert counter_sum(text, "packetd_exporter_failed_total", exporter=name) == 0
    finally:
        agent.stop()
        grpc_rx.stop()
        http_rx.stop()
        rds.stop()
