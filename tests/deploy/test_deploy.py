"""Deployment artifacts: Kubernetes manifests validated against the Kubernetes schemas, the Helm chart
rendered (by a minimal renderer: helm is not available here) and validated the same way, the Grafana
dashboard querying only metrics the agent exposes, the systemd unit and the Dockerfile checked by reading
(no Docker engine runs here: the image is not built)."""

from __future__ import annotations

import configparser
import glob
import json
import os
import re

import kubernetes_validate
import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from packetd.agent.config import parse_config
from packetd.agent.runtime import validate
from packetd.agent.selfmetrics import self_registry
from packetd.agent.storage import MetricStore
from packetd.engine import Rule
from packetd.pipeline.metrics import Aggregator, RoundtripsToMetrics
from packetd.protocols.registry import REGISTRY
from tests.deploy.helm_render import render
from tests.helpers.golden import ROOT, manifest, run_file

DEPLOY = os.path.join(ROOT, "deploy")
K8S_VERSION = "1.30.0"
CORPUS_DIR = {"http": "http1"}  # protocol → corpus folder when the names differ


def load_all(path: str) -> list[dict]:
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def k8s_docs() -> list[tuple[str, dict]]:
    return [
        (os.path.basename(p), d)
        for p in sorted(glob.glob(os.path.join(DEPLOY, "kubernetes", "*.yaml")))
        for d in load_all(p)
    ]


@pytest.mark.parametrize(
    ("name", "doc"),
    [d for d in k8s_docs() if d[1]["kind"] != "ServiceMonitor"],
    ids=lambda x: x if isinstance(x, str) else x["kind"],
)
def test_manifests_validate_against_kubernetes_schemas(name: str, doc: dict) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def _by_kind(docs: list[dict]) -> dict[str, dict]:
    return {d["kind"]: d for d in docs}


def check_set(docs: list[dict]) -> None:
    """What must hold between the objects, and with what the agent serves."""
    kinds = _by_kind(docs)
    ds, svc, cm = kinds["DaemonSet"], kinds["Service"], kinds["ConfigMap"]
    pod = ds["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert pod["hostNetwork"] is True
    sec = c["securityContext"]
    assert sec["capabilities"] == {"drop": ["ALL"], "add": ["NET_RAW", "NET_ADMIN"]}
    assert sec["allowPrivilegeEscalation"] is False
    assert (
        c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        and c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    )
    assert c["args"] == ["agent", "--config", "/etc/packetd/packetd.yaml"]
    cfg, warnings = parse_config(cm["data"]["packetd.yaml"])
    validate(cfg)
    assert warnings == []
    port = int(cfg.server.address.rsplit(":", 1)[1])
    assert c["ports"][0]["containerPort"] == port and c["ports"][0]["name"] == "http"
    assert svc["spec"]["ports"][0]["targetPort"] == "http"
    labels = ds["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in svc["spec"]["selector"].items())
    sm = kinds.get("ServiceMonitor")
    if sm is not None:  # a CRD: checked by structure against the Service and the agent's routes
        assert sm["apiVersion"] == "monitoring.coreos.com/v1"
        assert all(
            svc["metadata"]["labels"].get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items()
        )
        assert {e["path"] for e in sm["spec"]["endpoints"]} == {"/protocol/metrics", "/metrics"}
        assert {e["port"] for e in sm["spec"]["endpoints"]} == {p["name"] for p in svc["spec"]["ports"]}


def test_manifests_fit_together_and_with_the_agent() -> None:
    check_set([d for _, d in k8s_docs()])


def test_helm_chart_renders_to_valid_manifests() -> None:
    chart = os.path.join(DEPLOY, "helm", "packetd")
    with open(os.path.join(chart, "Chart.yaml")) as f:
        meta = yaml.safe_load(f)
    assert meta["apiVersion"] == "v2" and meta["name"] == "packetd" and meta["version"]
    with open(os.path.join(chart, "values.yaml")) as f:
        values = yaml.safe_load(f)
    ctx = {
        "Values": values,
        "Release": {"Name": "packetd", "Namespace": "monitoring"},
        "Chart": {"Name": meta["name"], "AppVersion": meta["appVersion"]},
    }
    docs = []
    for path in sorted(glob.glob(os.path.join(chart, "templates", "*.yaml"))):
        with open(path) as f:
            rendered = render(f.read(), ctx)
        docs += [d for d in yaml.safe_load_all(rendered) if d]
    assert {d["kind"] for d in docs} == {"ConfigMap", "DaemonSet", "Service", "ServiceMonitor"}
    for d in docs:
        assert d["metadata"]["namespace"] == "monitoring"
        if d["kind"] != "ServiceMonitor":
            kubernetes_validate.validate(d, K8S_VERSION, strict=True)
    check_set(docs)
    values["serviceMonitor"]["enabled"] = False
    with open(os.path.join(chart, "templates", "servicemonitor.yaml")) as f:
        assert not [d for d in yaml.safe_load_all(render(f.read(), ctx)) if d]


def exposed_metric_names() -> set[str]:
    """Metric names a running agent exposes: protocol metrics from a real capture of every registered
    protocol (its shared corpus), and the self-metrics."""
    names: set[str] = set()
    store = MetricStore()
    for spec in REGISTRY.specs():
        folder = CORPUS_DIR.get(spec.name, spec.name)
        rows = manifest(folder)
        assert rows, f"no corpus for {spec.name}"
        proc = RoundtripsToMetrics({}, [spec.name])
        agg = Aggregator()
        for row in rows:
            records, _ = run_file(row.path, (Rule(protocol=spec.name, ports=row.ports),))
            for rt in records:
                proc.process(rt, agg)
        store.merge(agg.take(), 0)
    reg = CollectorRegistry(auto_describe=False)
    reg.register(store)
    texts = [generate_latest(reg).decode(), generate_latest(self_registry(lambda: {}, "test")).decode()]
    for text in texts:
        for fam in text_string_to_metric_families(text):
            names |= {s.name for s in fam.samples} | {fam.name}
            if fam.type == "counter":
                names.add(fam.name + "_total")  # a counter's samples are <name>_total, even before the first
    return names


def dashboard_metric_names(dashboard: dict) -> set[str]:
    names = set()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = re.sub(r"\{[^}]*\}", "", target["expr"])  # label matchers
            expr = re.sub(r"\b(by|without)\s*\([^)]*\)", "", expr)  # grouping labels
            expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
            for tok in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
                if tok not in {
                    "sum",
                    "rate",
                    "histogram_quantile",
                    "irate",
                    "avg",
                    "max",
                    "min",
                    "count",
                    "increase",
                }:
                    names.add(tok)
    return names


def test_dashboard_queries_only_metrics_the_agent_exposes() -> None:
    with open(os.path.join(DEPLOY, "grafana", "packetd.json")) as f:
        dashboard = json.load(f)
    queried = dashboard_metric_names(dashboard)
    assert queried, "the dashboard queries nothing"
    missing = queried - exposed_metric_names()
    assert not missing, f"the dashboard queries metrics the agent does not expose: {sorted(missing)}"
    titles = " ".join(p["title"] for p in dashboard["panels"])
    for spec in REGISTRY.specs():
        assert f"{spec.name}: requests/s" in titles and f"{spec.name}: latency percentiles" in titles


def test_systemd_unit_and_dockerfile() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(os.path.join(DEPLOY, "systemd", "packetd.service"))
    svc = unit["Service"]
    assert svc["ExecStart"].endswith("packetd agent --config /etc/packetd/packetd.yaml")
    assert (
        set(svc["AmbientCapabilities"].split())
        == {"CAP_NET_RAW", "CAP_NET_ADMIN"}
        == set(svc["CapabilityBoundingSet"].split())
    )
    assert svc["ExecReload"] == "/bin/kill -HUP $MAINPID" and svc["NoNewPrivileges"] == "yes"
    with open(os.path.join(ROOT, "Dockerfile")) as f:
        docker = f.read()
    assert "NOT BUILT HERE" in docker and 'ENTRYPOINT ["packetd"]' in docker and "USER packetd" in docker
    assert "cap_net_raw,cap_net_admin+eip" in docker
