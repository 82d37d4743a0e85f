"""`packetd agent` with `kubernetes.enabled`: a crafted capture between the stand-in cluster's addresses,
replayed through the agent, gives records naming the namespace, pod, workload and service of every address
the stand-in API knows, and nothing for the others; an API that forbids (403) or is down keeps decoding,
the records carry no k8s fields, the errors are counted and logged once per kind, and the agent catches up
by itself once the API answers.

No Kubernetes API server can run here: the API is the stand-in HTTP server of tests/helpers/kubeapi.py
(threading http.server on a free 127.0.0.1 port, every served object checked against the Kubernetes
OpenAPI schemas). The expected names are written by hand from the stand-in's objects (shop_cluster).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from packetd.capture.pcapwrite import PcapWriter, TcpConversation, ethernet
from tests.agent.test_e2e import counter_sum, get
from tests.helpers.backends import AgentProcess, wait_records
from tests.helpers.golden import ROOT
from tests.helpers.kubeapi import FakeKubeApi
from tests.helpers.live import free_port

pytestmark = [pytest.mark.server, pytest.mark.slow]

RS = {"replicaset": "payments-7d9f8c6b5", "deployment": "payments"}
NONE = dict.fromkeys(
    (
        "namespace",
        "pod",
        "node",
        "deployment",
        "replicaset",
        "statefulset",
        "daemonset",
        "cronjob",
        "job",
        "service",
    )
)


def k8s(**fields: str) -> dict[str, Any]:
    return {**NONE, **fields}


# (client, server) of each crafted connection → (client.k8s, server.k8s) as the stand-in's objects say
CONVERSATIONS: list[tuple[tuple[str, int], tuple[str, int], dict[str, Any] | None, dict[str, Any] | None]] = [
    (  # a Deployment's pod to a StatefulSet's pod, each backing one service
        ("10.244.1.7", 40001),
        ("10.244.1.8", 8080),
        k8s(namespace="shop", pod="payments-7d9f8c6b5-x2x4z", node="node-a", service="payments", **RS),
        k8s(namespace="shop", pod="orders-db-0", node="node-a", statefulset="orders-db", service="orders-db"),
    ),
    (  # a CronJob's Job's pod to a ClusterIP
        ("10.244.2.10", 40002),
        ("10.96.0.20", 80),
        k8s(
            namespace="shop",
            pod="report-29000000-7hj2k",
            node="node-b",
            job="report-29000000",
            cronjob="report",
        ),
        k8s(namespace="shop", service="payments"),
    ),
    (  # a bare pod to a hostNetwork DaemonSet pod (its node's address, its container port)
        ("10.244.2.11", 40003),
        ("192.168.50.10", 9100),
        k8s(namespace="shop", pod="debug", node="node-b"),
        k8s(namespace="shop", pod="node-exporter-abcde", node="node-a", daemonset="node-exporter"),
    ),
    (  # node to node on a port no hostNetwork pod declares: the nodes only
        ("192.168.50.11", 40004),
        ("192.168.50.10", 8080),
        k8s(node="node-b"),
        k8s(node="node-a"),
    ),
    (  # an address outside the cluster to a pod backing two services: no service named
        ("10.9.9.9", 40005),
        ("10.244.1.12", 8080),
        None,
        k8s(namespace="shop", pod="cache-0", node="node-a", statefulset="cache"),
    ),
    (("10.1.2.3", 40006), ("10.244.2.99", 8080), None, None),  # nothing known; a Succeeded pod's old IP
]


def crafted_capture(path: str) -> None:
    ts = 1_764_000_000_000_000_000
    with open(path, "wb") as f:
        w = PcapWriter(f)
        for client, server, _, _ in CONVERSATIONS:
            conv = TcpConversation(client, server)
            for pkt in conv.handshake():
                w.write(ts, ethernet(pkt))
                ts += 100_000
            for side, data in (
                (0, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"),
                (1, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            ):
                for pkt in conv.send(side, data):
                    w.write(ts, ethernet(pkt))
                    ts += 100_000
            for pkt in conv.close():
                w.write(ts, ethernet(pkt))
                ts += 100_000


def run_agent(tmp_path: Any, api_url: str, extra: str = "") -> tuple[AgentProcess, int, str]:
    cap = os.path.join(str(tmp_path), "cluster.pcap")
    crafted_capture(cap)
    out = os.path.join(str(tmp_path), "roundtrips.jsonl")
    port = free_port()
    agent = AgentProcess(
        f"""
sniffer.file: {cap}
sniffer.protocols.rules: [{{name: web, protocol: http, ports: [80, 8080, 9100]}}]
server.address: "127.0.0.1:{port}"
exporter.roundtrips: {{enabled: true, filename: "{out}"}}
kubernetes: {{enabled: true, apiServer: "{api_url}", syncTimeout: 2s}}
{extra}"""
    )
    return agent, port, out


def metrics(port: int) -> str:
    status, body = get(port, "/metrics")
    assert status == 200
    return body.decode()


def wait_metric(agent: AgentProcess, port: int, done: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not done(metrics(port)):
        assert time.monotonic() < deadline, agent.stderr()
        time.sleep(0.2)


def replay(tmp_path: Any, api_url: str) -> tuple[list[dict[str, Any]], str, str]:
    """The agent reads the crafted capture: (its records, its /metrics after, its stderr)."""
    agent, port, out = run_agent(tmp_path, api_url)
    try:
        agent.wait_ready(port)
        recs = wait_records(out, len(CONVERSATIONS))
        text = metrics(port)
    finally:
        assert agent.stop() == 0
    assert len(recs) == len(CONVERSATIONS), agent.stderr()
    return recs, text, agent.stderr()


def test_replayed_capture_names_every_address_the_api_knows_and_no_other(
    api: FakeKubeApi, tmp_path: Any
) -> None:
    recs, text, _ = replay(tmp_path, api.url)
    by_conn = {
        ((r["client"]["ip"], r["client"]["port"]), (r["server"]["ip"], r["server"]["port"])): r for r in recs
    }
    with open(os.path.join(ROOT, "docs", "roundtrip.schema.json")) as f:
        schema = Draft202012Validator(json.load(f))
    for client, server, want_client, want_server in CONVERSATIONS:
        rec = by_conn[(client, server)]
        schema.validate(rec)
        assert rec["client"]["k8s"] == want_client, client
        assert rec["server"]["k8s"] == want_server, server
    assert counter_sum(text, "packetd_kubernetes_synced") == 1
    assert counter_sum(text, "packetd_kubernetes_objects", resource="pods") == 8
    assert counter_sum(text, "packetd_kubernetes_errors_total") == 0


def test_forbidden_api_keeps_decoding_without_k8s_fields_then_recovers(
    api: FakeKubeApi, tmp_path: Any
) -> None:
    api.forbidden.update({"pods", "nodes"})
    agent, port, out = run_agent(tmp_path, api.url)
    try:
        agent.wait_ready(port)
        recs = wait_records(out, len(CONVERSATIONS))
        wait_metric(
            agent, port, lambda t: counter_sum(t, "packetd_kubernetes_errors_total", resource="pods") >= 2
        )
        before = metrics(port)
        api.forbidden.clear()  # RBAC fixed: the agent catches up by itself
        wait_metric(agent, port, lambda t: counter_sum(t, "packetd_kubernetes_synced") == 1)
    finally:
        assert agent.stop() == 0
    assert len(recs) == len(CONVERSATIONS), agent.stderr()
    for rec in recs:
        assert "k8s" not in rec["client"] and "k8s" not in rec["server"]
        assert rec["status"] == "200"  # decoding went on
    assert counter_sum(before, "packetd_kubernetes_synced") == 0
    assert counter_sum(before, "packetd_kubernetes_errors_total", resource="nodes") >= 1
    assert counter_sum(before, "packetd_kubernetes_errors_total", resource="services") == 0
    err = agent.stderr()
    assert err.count("kubernetes API: pods: HTTP 403") == 1  # once per outage, not once per retry
    assert err.count("kubernetes API: nodes: HTTP 403") == 1
    assert "Traceback" not in err


def test_unreachable_api_keeps_decoding_without_k8s_fields(tmp_path: Any) -> None:
    recs, text, err = replay(tmp_path, f"http://127.0.0.1:{free_port()}")
    assert all("k8s" not in r["client"] and "k8s" not in r["server"] for r in recs)
    assert counter_sum(text, "packetd_kubernetes_errors_total", resource="pods") >= 1
    assert "Traceback" not in err


@pytest.mark.root
@pytest.mark.live
def test_a_pod_added_while_capturing_reaches_the_running_worker(api: FakeKubeApi, tmp_path: Any) -> None:
    """Live capture on loopback: the table changes after the worker started (the agent sends it the diff):
    records before the pod exists name nothing, records after name it."""
    import http.client

    from tests.helpers.kubeapi import pod
    from tests.helpers.live import Nginx, can_capture, nginx_available

    if not can_capture() or not nginx_available():
        pytest.skip("needs live capture (root) and nginx")
    nginx = Nginx()
    out = os.path.join(str(tmp_path), "roundtrips.jsonl")
    port = free_port()
    agent = AgentProcess(
        f"""
sniffer:
  ifaces: "^lo$"
  processes: false
  protocols.rules: [{{name: web, protocol: http, ports: [{nginx.port}]}}]
server.address: "127.0.0.1:{port}"
exporter.roundtrips: {{enabled: true, filename: "{out}"}}
kubernetes: {{enabled: true, apiServer: "{api.url}"}}
"""
    )

    def one_request() -> None:
        c = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=5)
        c.request("GET", "/index.txt")
        c.getresponse().read()
        c.close()

    try:
        agent.wait_ready(port)
        one_request()
        first = wait_records(out, 1)
        api.add("pods", pod("loopback-0", "shop", "127.0.0.1", "node-a"))
        deadline = time.monotonic() + 20
        named: list[dict[str, Any]] = []
        while not named:  # the diff reaches the worker within a push (1 s) and a control cycle (0.5 s)
            assert time.monotonic() < deadline, agent.stderr()
            one_request()
            time.sleep(0.3)
            named = [r for r in wait_records(out, 1) if r["server"]["k8s"] is not None]
    finally:
        assert agent.stop() == 0
        nginx.stop()
    assert first[0]["client"]["k8s"] is None and first[0]["server"]["k8s"] is None
    want = k8s(namespace="shop", pod="loopback-0", node="node-a")
    assert named[0]["server"]["k8s"] == want and named[0]["client"]["k8s"] == want
