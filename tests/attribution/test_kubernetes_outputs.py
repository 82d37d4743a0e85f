"""What the k8s fields become in the outputs: span resources (service.name = the workload, service.namespace,
k8s.* attributes, through the OpenTelemetry SDK's own Resource) and the opt-in metric labels.

The records are decoded from a crafted capture (one HTTP exchange) and named by the same `K8sView` the
capture workers use; the expected values are the names given to the view, written by hand."""

from __future__ import annotations

import os
from typing import Any

import pytest

from packetd.attribution.kubernetes_index import K8sView
from packetd.capture.pcapwrite import PcapWriter, TcpConversation, ethernet
from packetd.engine import Rule
from packetd.export.senders import Traces
from packetd.pairing.roundtrip import K8sMeta, Roundtrip
from packetd.pipeline.metrics import Aggregator, MetricsConfigError, RoundtripsToMetrics
from packetd.pipeline.spans import RoundtripsToTraces
from tests.helpers.golden import run_file

CLIENT, SERVER = ("10.244.2.10", 40000), ("10.244.1.7", 8080)
JOB = K8sMeta(
    namespace="batch", pod="report-1-x", node="node-b", owners=(("job", "report-1"), ("cronjob", "report"))
)
WEB = K8sMeta(
    namespace="shop",
    pod="payments-7d9-x",
    node="node-a",
    service="payments",
    owners=(("replicaset", "payments-7d9"), ("deployment", "payments")),
)


def exchange(tmp_path: Any, server: tuple[str, int] = SERVER) -> Roundtrip:
    path = os.path.join(str(tmp_path), "one.pcap")
    conv = TcpConversation(CLIENT, server)
    pkts = [*conv.handshake(), *conv.send(0, b"GET /pay HTTP/1.1\r\nHost: a\r\n\r\n")]
    pkts += conv.send(1, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    with open(path, "wb") as f:
        w = PcapWriter(f)
        for i, pkt in enumerate(pkts):
            w.write(1_764_000_000_000_000_000 + i * 1_000_000, ethernet(pkt))
    (rt,), _ = run_file(path, (Rule(protocol="http", ports=(server[1],)),))
    return rt


def named(rt: Roundtrip, table: dict) -> Roundtrip:
    return K8sView(True, table).attach(rt)


def test_server_span_is_its_workload_with_k8s_resource_attributes(tmp_path: Any) -> None:
    rt = named(exchange(tmp_path), {CLIENT[0]: JOB, SERVER[0]: WEB})
    span = RoundtripsToTraces().process(rt)
    assert span is not None and span.service == "payments"
    assert span.resource == {
        "k8s.namespace.name": "shop",
        "k8s.pod.name": "payments-7d9-x",
        "k8s.node.name": "node-a",
        "k8s.deployment.name": "payments",
        "k8s.replicaset.name": "payments-7d9",
        "k8s.service.name": "payments",
        "service.namespace": "shop",
    }
    (readable,) = Traces("http://127.0.0.1:9/v1/traces", 10, 1.0, 1.0, {}, False, 10)._readable([span])
    attrs = dict(readable.resource.attributes)
    assert attrs["service.name"] == "payments" and attrs["service.namespace"] == "shop"
    assert attrs["k8s.node.name"] == "node-a"  # the pod's node, not the observer's
    assert attrs["k8s.deployment.name"] == "payments"
    client_span = RoundtripsToTraces({"kind": "client"}).process(rt)
    assert client_span is not None and client_span.service == "report"  # a CronJob's pod: its CronJob
    assert client_span.resource is not None and client_span.resource["k8s.job.name"] == "report-1"


def test_the_services_map_wins_and_unknown_addresses_keep_the_default(tmp_path: Any) -> None:
    rt = exchange(tmp_path)
    mapped = RoundtripsToTraces({"services": {"10.244.1.7:8080": "pay-api"}}).process(
        named(rt, {SERVER[0]: WEB})
    )
    assert mapped is not None and mapped.service == "pay-api"
    unknown = RoundtripsToTraces().process(named(rt, {}))
    assert unknown is not None and unknown.service == "http:10.244.1.7:8080" and unknown.resource is None
    off = RoundtripsToTraces().process(rt)  # kubernetes off: the record has no k8s at all
    assert off is not None and off.service == "http:10.244.1.7:8080" and off.resource is None
    cluster_ip = exchange(tmp_path, ("10.96.0.20", 80))
    svc = RoundtripsToTraces().process(
        named(cluster_ip, {"10.96.0.20": K8sMeta(namespace="shop", service="payments")})
    )
    assert svc is not None and svc.service == "payments"
    assert svc.resource == {
        "k8s.namespace.name": "shop",
        "k8s.service.name": "payments",
        "service.namespace": "shop",
    }


def test_opt_in_metric_labels_name_both_ends(tmp_path: Any) -> None:
    rt = named(exchange(tmp_path), {CLIENT[0]: JOB, SERVER[0]: WEB})
    labels = ["server.workload", "server.namespace", "client.workload", "client.namespace"]
    m = RoundtripsToMetrics({"http": {"requireLabels": labels}}, protocols=["http"])
    agg = Aggregator()
    m.process(rt, agg)
    ((_, got),) = [k for k in agg.counters if k[0] == "http_requests_total"]
    assert dict(got) == {
        "server_workload": "payments",
        "server_namespace": "shop",
        "client_workload": "report",
        "client_namespace": "batch",
    }
    agg = Aggregator()
    m.process(named(exchange(tmp_path), {}), agg)  # unknown addresses: empty values, one series
    ((_, got),) = [k for k in agg.counters if k[0] == "http_requests_total"]
    assert set(dict(got).values()) == {""}
    # not asked for: the defaults carry no k8s labels
    default = RoundtripsToMetrics({}, protocols=["http"])
    agg = Aggregator()
    default.process(rt, agg)
    assert not any("workload" in k for _, labels_ in agg.counters for k, _ in labels_)
    with pytest.raises(MetricsConfigError, match=r"server\.workload"):
        RoundtripsToMetrics({"http": {"requireLabels": ["server.workloads"]}}, protocols=["http"])
