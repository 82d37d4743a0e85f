"""Deployment artifacts: Kubernetes manifests validated against the Kubernetes schemas, the Helm chart
rendered (by a minimal renderer: helm is not available here) and validated the same way, the Grafana
dashboard querying only metrics the agent exposes, the systemd unit and the Dockerfile checked by reading
(no Docker engine runs here: the image is not built)."""

from __future__ import annotations

import configparser
import glob
import hashlib
import json
import os
import re
import shutil

import jsonschema
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
from tests.deploy import helm_lint
from tests.deploy.helm_render import TemplateError, render_chart
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


# what kubernetes.enabled lists and watches (attribution/kubernetes.py PATHS), by API group: nothing more
WATCHED = {("", "pods"), ("", "services"), ("", "nodes"), ("discovery.k8s.io", "endpointslices"),
           ("apps", "replicasets"), ("batch", "jobs")}  # fmt: skip


def check_rbac(kinds: dict[str, dict], pod: dict) -> None:
    """The agent's service account may get/list/watch exactly the kinds it watches, and nothing else; its
    token is mounted because kubernetes.enabled is on in the shipped config."""
    from packetd.attribution.kubernetes import PATHS

    sa, role, binding = kinds["ServiceAccount"], kinds["ClusterRole"], kinds["ClusterRoleBinding"]
    assert pod["serviceAccountName"] == sa["metadata"]["name"]
    assert pod["automountServiceAccountToken"] is True
    granted = set()
    for rule in role["rules"]:
        assert sorted(rule["verbs"]) == ["get", "list", "watch"] and set(rule) == {
            "apiGroups",
            "resources",
            "verbs",
        }
        granted |= {(g, r) for g in rule["apiGroups"] for r in rule["resources"]}
    assert granted == WATCHED
    by_path = {
        (p.split("/")[2] if p.startswith("/apis/") else "", p.rsplit("/", 1)[1]) for p in PATHS.values()
    }
    assert by_path == WATCHED  # the agent asks for what the role grants
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": sa["metadata"]["namespace"]}
    ]


def check_set(docs: list[dict]) -> None:
    """What must hold between the objects, and with what the agent serves."""
    kinds = _by_kind(docs)
    ds, svc, cm = kinds["DaemonSet"], kinds["Service"], kinds["ConfigMap"]
    pod = ds["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert pod["hostNetwork"] is True
    check_rbac(kinds, pod)
    sec = c["securityContext"]
    assert sec["capabilities"] == {"drop": ["ALL"], "add": ["NET_RAW", "NET_ADMIN"]}
    assert sec["allowPrivilegeEscalation"] is False and sec["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert (
        c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        and c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    )
    assert c["args"] == ["agent", "--config", "/etc/packetd/packetd.yaml"]
    # the agent's identity comes from the node's name (downward API)
    assert {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}} in c["env"]
    # writable state: an emptyDir mounted where the agent's relative paths resolve
    volumes = {v["name"]: v for v in pod["volumes"]}
    (state,) = [m for m in c["volumeMounts"] if m["mountPath"] == c["workingDir"]]
    assert "emptyDir" in volumes[state["name"]] and not state.get("readOnly")
    text = cm["data"]["packetd.yaml"]
    cfg, warnings = parse_config(text)
    validate(cfg)
    assert warnings == []
    assert cfg.kubernetes.enabled and not cfg.kubernetes.api_server  # in-cluster: the service account
    # the listen address is written out, on every address: the agent's own default may be loopback
    raw = yaml.safe_load(text)
    written = raw.get("server.address") or raw.get("server", {}).get("address")
    assert written == cfg.server.address and cfg.server.address.startswith(":")
    port = int(cfg.server.address.rsplit(":", 1)[1])
    assert c["ports"][0]["containerPort"] == port and c["ports"][0]["name"] == "http"
    assert svc["spec"]["ports"][0]["targetPort"] == "http"
    labels = ds["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in svc["spec"]["selector"].items())
    assert ds["spec"]["selector"]["matchLabels"] == svc["spec"]["selector"]
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


def test_namespace_admits_the_capture_pods() -> None:
    """hostNetwork and added capabilities pass Pod Security admission only at "privileged"."""
    (ns,) = [d for _, d in k8s_docs() if d["kind"] == "Namespace"]
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    with open(os.path.join(DEPLOY, "kubernetes", "namespace.yaml")) as f:
        assert "hostNetwork" in f.read()  # the comment saying why


CHART = os.path.join(DEPLOY, "helm", "packetd")


def chart_values() -> dict:
    with open(os.path.join(CHART, "values.yaml")) as f:
        values: dict = yaml.safe_load(f)
    return values


def render_helm(values: dict, release: str = "packetd") -> dict[str, str]:
    """The chart rendered as `helm template RELEASE -n monitoring` would: {template name: text}."""
    with open(os.path.join(CHART, "Chart.yaml")) as f:
        meta = yaml.safe_load(f)
    ctx = {
        "Values": values,
        "Release": {"Name": release, "Namespace": "monitoring", "Service": "Helm"},
        "Chart": {"Name": meta["name"], "Version": meta["version"], "AppVersion": meta["appVersion"]},
    }
    files = {}
    for path in sorted(glob.glob(os.path.join(CHART, "templates", "*"))):
        with open(path) as f:
            files[f"{meta['name']}/templates/{os.path.basename(path)}"] = f.read()
    return render_chart(files, ctx)


def helm_docs(values: dict, release: str = "packetd") -> list[dict]:
    rendered = render_helm(values, release)
    return [
        d
        for name, text in rendered.items()
        if not name.endswith("NOTES.txt")
        for d in yaml.safe_load_all(text)
        if d
    ]


def test_helm_chart_renders_to_valid_manifests() -> None:
    with open(os.path.join(CHART, "Chart.yaml")) as f:
        meta = yaml.safe_load(f)
    assert meta["apiVersion"] == "v2" and meta["name"] == "packetd" and meta["version"]
    values = chart_values()
    docs = helm_docs(values)
    kinds = {d["kind"] for d in docs}
    assert kinds == {
        "ConfigMap", "DaemonSet", "Service", "ServiceAccount", "ServiceMonitor", "ClusterRole", "ClusterRoleBinding"
    }  # fmt: skip
    for d in docs:
        if d["kind"] not in ("ClusterRole", "ClusterRoleBinding"):  # cluster-scoped: no namespace
            assert d["metadata"]["namespace"] == "monitoring"
        labels = d["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "packetd"
        assert labels["app.kubernetes.io/instance"] == "packetd"
        assert labels["app.kubernetes.io/version"] == meta["appVersion"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["helm.sh/chart"] == f"packetd-{meta['version']}"
        if d["kind"] != "ServiceMonitor":
            kubernetes_validate.validate(d, K8S_VERSION, strict=True)
    check_set(docs)
    values["serviceMonitor"]["enabled"] = False
    assert "ServiceMonitor" not in {d["kind"] for d in helm_docs(values)}


def test_helm_config_checksum_is_the_rendered_configmaps() -> None:
    rendered = render_helm(chart_values())
    cm_text = rendered["packetd/templates/configmap.yaml"]
    ds = _by_kind(helm_docs(chart_values()))["DaemonSet"]
    annotations = ds["spec"]["template"]["metadata"]["annotations"]
    assert annotations["checksum/config"] == hashlib.sha256(cm_text.encode()).hexdigest()
    changed = chart_values()
    changed["config"]["logger.level"] = "debug"
    ds2 = _by_kind(helm_docs(changed))["DaemonSet"]
    assert (
        ds2["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        != annotations["checksum/config"]
    )


def test_helm_port_comes_from_one_value() -> None:
    values = chart_values()
    values["service"]["port"] = 9555
    docs = helm_docs(values)
    check_set(docs)  # containerPort == server.address port, Service → the named port
    kinds = _by_kind(docs)
    assert kinds["Service"]["spec"]["ports"][0]["port"] == 9555
    assert parse_config(kinds["ConfigMap"]["data"]["packetd.yaml"])[0].server.address == ":9555"


def test_helm_values_reach_the_objects() -> None:
    values = custom_values()
    sm_values = values["serviceMonitor"]
    jsonschema.validate(values, chart_schema())
    docs = helm_docs(values)
    for d in docs:
        if d["kind"] != "ServiceMonitor":
            kubernetes_validate.validate(d, K8S_VERSION, strict=True)
    check_set(docs)
    kinds = _by_kind(docs)
    ds = kinds["DaemonSet"]
    pod = ds["spec"]["template"]["spec"]
    assert {d["metadata"]["name"] for d in docs} == {"pd"}
    assert ds["spec"]["updateStrategy"] == {"type": "OnDelete"}
    assert ds["spec"]["template"]["metadata"]["annotations"]["example.com/team"] == "net"
    assert pod["priorityClassName"] == "system-node-critical"
    assert pod["nodeSelector"] == values["nodeSelector"]
    assert pod["affinity"] == values["affinity"] and pod["tolerations"] == values["tolerations"]
    (c,) = pod["containers"]
    assert c["resources"] == values["resources"]
    assert c["env"][0]["name"] == "NODE_NAME" and {"name": "TZ", "value": "UTC"} in c["env"]
    assert pod["volumes"][0]["configMap"]["name"] == "pd" and pod["serviceAccountName"] == "pd"
    sm = kinds["ServiceMonitor"]
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    for ep in sm["spec"]["endpoints"]:
        assert ep["scrapeTimeout"] == "5s" and ep["interval"] == "15s"
        assert ep["relabelings"][-1] == sm_values["relabelings"][0]
        assert ep["metricRelabelings"] == sm_values["metricRelabelings"]
        assert ep["relabelings"][0]["sourceLabels"] == ["__meta_kubernetes_pod_node_name"]
    # a release name that contains the chart's name is not repeated (the node-exporter convention)
    default_names = {d["metadata"]["name"] for d in helm_docs(chart_values(), release="my-packetd")}
    assert default_names == {"my-packetd"}
    assert {d["metadata"]["name"] for d in helm_docs(chart_values(), release="edge")} == {"edge-packetd"}


def chart_schema() -> dict:
    with open(os.path.join(CHART, "values.schema.json")) as f:
        schema: dict = json.load(f)
    return schema


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"service": {"port": "9091"}}, "a port is a number"),
        ({"service": {"port": 70000}}, "a port is at most 65535"),
        ({"config": {"server.address": ":1"}}, "the chart sets the address from service.port"),
        ({"config": {"server": {"address": ":1"}}}, "nested form of the same"),
        ({"serviceMonitor": {"scrapeTimeout": "ten"}}, "a duration"),
        ({"extraEnv": [{"name": "NODE_NAME", "value": "x"}]}, "NODE_NAME is the chart's"),
        ({"nodeSelectr": {}}, "a misspelt key"),
    ],
)
def test_helm_values_schema_rejects(change: dict, why: str) -> None:
    values = chart_values()
    jsonschema.validate(values, chart_schema())
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(values, chart_schema())


def test_helm_chart_holds_only_chart_files() -> None:
    """The stray PyPI tarball is gone and .helmignore keeps archives out of a packaged chart."""
    files = {os.path.relpath(os.path.join(d, f), CHART) for d, _, names in os.walk(CHART) for f in names}
    assert {".helmignore", "Chart.yaml", "values.yaml", "values.schema.json"} <= files
    assert {"templates/_helpers.tpl", "templates/NOTES.txt"} <= files
    assert all(
        f.startswith("templates/") or f in {".helmignore", "Chart.yaml", "values.yaml", "values.schema.json"}
        for f in files
    ), files
    with open(os.path.join(CHART, ".helmignore")) as f:
        assert "*.tar.bz2" in f.read().split()
    notes = render_helm(chart_values())["packetd/templates/NOTES.txt"]
    assert "pod-security.kubernetes.io/enforce=privileged" in notes
    assert "port 9091 of its node" in notes and "port-forward ds/packetd 9091" in notes


def custom_values() -> dict:
    """Every optional value set (test_helm_values_reach_the_objects checks where each lands)."""
    values = chart_values()
    values.update(
        fullnameOverride="pd",
        priorityClassName="system-node-critical",
        podAnnotations={"example.com/team": "net"},
        nodeSelector={"node-role.example.com/edge": "true"},
        affinity={
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                    ]
                }
            }
        },
        tolerations=[{"key": "dedicated", "operator": "Equal", "value": "net", "effect": "NoSchedule"}],
        resources={"requests": {"cpu": "50m", "memory": "64Mi"}},
        updateStrategy={"type": "OnDelete"},
        extraEnv=[{"name": "TZ", "value": "UTC"}],
    )
    values["serviceMonitor"].update(
        additionalLabels={"release": "kube-prometheus-stack"},
        relabelings=[{"targetLabel": "cluster", "replacement": "eu1", "action": "replace"}],
        metricRelabelings=[{"sourceLabels": ["__name__"], "regex": "go_.*", "action": "drop"}],
        scrapeTimeout="5s",
        interval="15s",
    )
    return values


@pytest.mark.skipif(
    not helm_lint.available(), reason="the Helm library is not installed (scripts/test-tools.sh)"
)
def test_helm_lint_by_the_real_helm_engine(tmp_path: pytest.TempPathFactory) -> None:
    """Helm's own lint: schema, every template rendered by Go text/template with Sprig, YAML parsed — with
    the default values and with every optional value set. Copies with a bad value and with a template
    slip show the lint is not vacuous."""
    messages = helm_lint.lint(CHART)
    assert [m for m in messages if m.severity in {"error", "warning"}] == []
    full = os.path.join(str(tmp_path), "full", "packetd")
    shutil.copytree(CHART, full)
    with open(os.path.join(full, "values.yaml"), "w") as f:
        yaml.safe_dump(custom_values(), f)
    assert [m for m in helm_lint.lint(full) if m.severity in {"error", "warning"}] == []
    broken = os.path.join(str(tmp_path), "broken", "packetd")
    shutil.copytree(CHART, broken)
    with open(os.path.join(broken, "values.yaml"), "a") as f:
        f.write("\nnodeSelectr: {}\n")
    assert any(m.severity == "error" and m.path == "values.yaml" for m in helm_lint.lint(broken))
    # the indentation slip a ServiceMonitor list invites: YAML no longer parses
    helpers = os.path.join(full, "templates", "_helpers.tpl")
    with open(helpers) as f:
        text = f.read()
    with open(helpers, "w") as f:
        f.write(text.replace("{{ toYaml . | indent 2 }}", "{{ toYaml . | indent 5 }}"))
    assert any(m.severity == "error" and m.path.startswith("templates") for m in helm_lint.lint(full))


def test_renderer_follows_go_template_rules_and_refuses_what_it_does_not_know() -> None:
    files = {
        "c/templates/_h.tpl": '{{- define "c.name" -}}\n  {{ .Values.n | default "x" | trunc 3 }}  \n{{- end }}',
        "c/templates/a.yaml": 'a: {{ include "c.name" . }}\n{{- if .Values.on }}\nb: 1\n{{- else }}\nb: 2\n{{- end }}\n'
        "{{- range $k, $v := .Values.m }}\n{{ $k }}: {{ $v | quote }}\n{{- end }}\n",
    }
    out = render_chart(files, {"Values": {"n": "abcdef", "on": False, "m": {"z": 1, "y": "q"}}})
    assert out["c/templates/a.yaml"] == 'a: abc\nb: 2\ny: "q"\nz: "1"\n'  # by hand: trims, sorted range
    with pytest.raises(TemplateError, match="unsupported function lookup"):
        render_chart({"c/templates/b.yaml": '{{ lookup "v1" "Pod" "" "" }}'}, {"Values": {}})
    with pytest.raises(TemplateError, match="values do not define"):
        render_chart({"c/templates/b.yaml": "x: {{ .Values.missing.key }}"}, {"Values": {}})


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


PROMQL_WORDS = {
    "sum", "rate", "histogram_quantile", "irate", "avg", "max", "min", "count", "increase", "topk",
    "label_replace", "label_join", "or", "and", "unless", "by", "without", "on", "ignoring", "vector",
}  # fmt: skip


def dashboard_metric_names(dashboard: dict) -> set[str]:
    """Every metric a query names: in a `__name__="..."` matcher or as a bare selector name."""
    names = set()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            names |= set(re.findall(r'__name__="([^"]+)"', expr))
            expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals (regexes, label values)
            expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
            expr = re.sub(r"\b(by|without)\s*\([^)]*\)", "", expr)  # grouping labels
            expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
            expr = re.sub(r"\$\w+", "", expr)  # dashboard variables
            for tok in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
                if tok not in PROMQL_WORDS:
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
