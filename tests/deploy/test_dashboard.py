"""The Grafana dashboard (deploy/grafana/packetd.json, written by scripts/make_dashboard.py): its shape,
and every query of every panel evaluated by a real Prometheus that scrapes a real agent watching real
traffic (nginx and an HTTP client, redis-server and redis-py), with the dashboard's variables filled in
as Grafana would. Each query of a protocol in the traffic must return series; each query of a protocol
not chosen in the protocol variable, or of a server not chosen, must return none; the top-N tables and
the error ratio are compared with what the clients sent."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest

from packetd.protocols.registry import REGISTRY
from tests.helpers.backends import PROM_CONFIG as BASE_PROM_CONFIG
from tests.helpers.backends import AgentProcess, Prometheus
from tests.helpers.build import PACKAGE_PATH
from tests.helpers.dbservers import RedisServer, redis_available
from tests.helpers.golden import ROOT
from tests.helpers.live import Nginx, can_capture, free_port, nginx_available

DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "packetd.json")
PROTOCOLS = [s.name for s in REGISTRY.specs()]
IN_TRAFFIC = ("http", "redis")


def load() -> dict[str, Any]:
    with open(DASHBOARD) as f:
        d: dict[str, Any] = json.load(f)
    return d


def targets(d: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in d["panels"]:
        for t in panel.get("targets", []):
            yield panel, t


def test_dashboard_is_what_the_script_writes() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, PYTHONPATH=PACKAGE_PATH)
        script = os.path.join(ROOT, "scripts", "make_dashboard.py")
        code = f"import runpy, sys; sys.argv=['x']; g = runpy.run_path({script!r}, run_name='lib'); "
        code += f"g['OUT'] = {os.path.join(tmp, 'd.json')!r}; g['main'].__globals__['OUT'] = g['OUT']; g['main']()"
        subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)
        with open(os.path.join(tmp, "d.json")) as f:
            assert json.load(f) == load(), (
                "deploy/grafana/packetd.json is stale: run scripts/make_dashboard.py"
            )


def test_dashboard_variables_inputs_and_scoping() -> None:
    d = load()
    assert [i["pluginId"] for i in d["__inputs"]] == ["prometheus"]
    assert {r["id"] for r in d["__requires"]} >= {"grafana", "prometheus", "timeseries", "table"}
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert list(variables) == ["datasource", "job", "instance", "protocol", "server"]
    assert variables["datasource"]["current"]["value"] == "${DS_PROMETHEUS}"
    assert variables["protocol"]["query"].split(",") == PROTOCOLS
    titles = [p["title"] for p in d["panels"]]
    assert titles[:6] == [
        "overview",
        "requests/s per protocol",
        "error ratio per protocol",
        "p99 latency per protocol",
        "slowest endpoints (p99, top 10)",
        "most errors (top 10)",
    ]
    for p in PROTOCOLS:
        assert f"{p}: requests/s per server" in titles and f"{p}: latency percentiles per server" in titles
    for panel, t in targets(d):
        e = t["expr"]
        assert panel["datasource"]["uid"] == "${datasource}" == t["datasource"]["uid"]
        assert 'job=~"$job"' in e and 'instance=~"$instance"' in e, panel["title"]
        if "_requests_total" in e or "_request_duration_seconds" in e:  # protocol metrics
            for m in re.finditer(r'\{__name__="([a-z0-9]+)_[a-z_]+"(, .*?")\}', e):
                assert '__name__=~"(${protocol:regex})_' in m.group(
                    2
                ) and 'server_address=~"$server"' in m.group(2)
        if "per server" in panel["title"]:
            assert "{{server}}" in t["legendFormat"]


def fill(expr: str, protocols: str = "|".join(PROTOCOLS), server: str = ".*") -> str:
    """Grafana's interpolation of the variables (All = every value; ${protocol:regex} is `(a|b)`)."""
    return (
        expr.replace("${protocol:regex}", protocols)
        .replace("$job", "packetd")
        .replace("$instance", ".*")
        .replace("$server", server)
        .replace("$__rate_interval", "2m")
        .replace("$__range", "5m")
    )


# the agent's own /metrics too, in the same job as its protocol metrics (the chart's ServiceMonitor gives
# both endpoints one job)
PROM_CONFIG = (
    BASE_PROM_CONFIG
    + """
  - job_name: packetd-self
    metrics_path: /metrics
    static_configs:
      - targets: ["{target}"]
    relabel_configs:
      - {target_label: job, replacement: packetd}
"""
)


@pytest.mark.root
@pytest.mark.live
@pytest.mark.server
@pytest.mark.slow
@pytest.mark.skipif(not can_capture(), reason="live capture needs root / CAP_NET_RAW")
@pytest.mark.skipif(not nginx_available(), reason="nginx is not installed (make test-deps)")
@pytest.mark.skipif(not os.path.exists("/usr/bin/prometheus"), reason="prometheus is not installed")
@pytest.mark.skipif(not redis_available(), reason="redis-server is not installed (make test-deps)")
def test_every_panel_query_returns_series_for_the_protocols_in_the_traffic() -> None:
    from tests.agent.test_e2e import redis_traffic, traffic

    nginx, rds, api = Nginx(), RedisServer(), free_port()
    prom = Prometheus(target=f"127.0.0.1:{api}", config=PROM_CONFIG)
    agent = AgentProcess(
        f"""
sniffer:
  ifaces: "^lo$"
  blockNum: 32
  protocols.rules:
    - {{name: web, protocol: http, ports: [{nginx.port}]}}
    - {{name: cache, protocol: redis, ports: [{rds.port}]}}
server.address: "127.0.0.1:{api}"
"""
    )
    try:
        agent.wait_ready(api)
        time.sleep(1.0)
        # phase 1 creates every series (a series' first value is invisible to increase()/rate());
        # phase 2, a few scrapes later, is what the tables must show
        log: list[dict[str, Any]] = []
        traffic(nginx.port, [("/index.txt", {}), ("/boom", {})], log)
        redis_traffic(rds.port)
        time.sleep(4)
        log2: list[dict[str, Any]] = []
        plan = [("/index.txt", {})] * 20 + [("/boom", {})] * 4 + [("/missing", {})] * 2
        traffic(nginx.port, plan, log2)
        redis_sent = redis_traffic(rds.port)
        assert prom.wait_value('sum(http_requests_total{job="packetd"})', 28, timeout=30) == 28
        assert prom.wait_value('sum(redis_requests_total{job="packetd"})', 46, timeout=30) == 46
        # increase() extrapolates a series' samples to the window's edges by up to ~1.5 scrape intervals;
        # ~20 s of samples keep that under 10%
        time.sleep(12)

        d = load()
        for panel, t in targets(d):
            title = panel["title"]
            m = re.match(r"([a-z0-9]+): ", title)
            if m:  # a protocol's row: series when its protocol is in the traffic, none otherwise
                want = m.group(1) in IN_TRAFFIC
                got = prom.query(fill(t["expr"]))
                assert bool(got) == want, (title, t["refId"], got)
                if want:
                    assert all(r["metric"]["server"].startswith("127.0.0.1:") for r in got), got
                    assert not prom.query(fill(t["expr"], protocols="(kafka)")), title  # protocol scoping
                    assert not prom.query(fill(t["expr"], server="10\\\\.9\\\\.9\\\\.9")), (
                        title
                    )  # server scoping
            elif title.endswith("per protocol"):  # one target per protocol, its legend names it
                got = prom.query(fill(t["expr"]))
                assert bool(got) == (t["legendFormat"] in IN_TRAFFIC), (title, t["legendFormat"], got)
            elif panel["type"] == "table":
                got = prom.query(fill(t["expr"]))
                assert {r["metric"]["protocol"] for r in got} == set(IN_TRAFFIC), (title, got)
            elif title != "decode resets and gaps":  # no reset or gap happened: that panel may be empty
                assert prom.query(fill(t["expr"])), title
            else:
                prom.query(fill(t["expr"]))  # valid PromQL all the same

        by_title = {p["title"]: p for p in d["panels"]}
        # the error ratio of HTTP over the window: the 503s of both phases over all requests (rate()'s
        # extrapolation applies alike to both counters' series that started together)
        (ratio,) = [t for t in by_title["error ratio per protocol"]["targets"] if t["legendFormat"] == "http"]
        value = float(prom.query(fill(ratio["expr"]))[0]["value"][1])
        assert value == pytest.approx(5 / 28, rel=0.25)
        # most errors: phase 2's errors per endpoint, within increase()'s extrapolation
        rows = prom.query(fill(by_title["most errors (top 10)"]["targets"][0]["expr"]))
        errors = {(r["metric"]["protocol"], r["metric"]["endpoint"]): float(r["value"][1]) for r in rows}
        assert set(errors) == {("http", "GET /boom"), ("redis", "INCRBY")}
        assert errors["http", "GET /boom"] == pytest.approx(4, rel=0.12)
        assert errors["redis", "INCRBY"] == pytest.approx(redis_sent["INCRBY", True], rel=0.12)
        rows = prom.query(fill(by_title["slowest endpoints (p99, top 10)"]["targets"][0]["expr"]))
        endpoints = {(r["metric"]["protocol"], r["metric"]["endpoint"]) for r in rows}
        assert ("http", "GET /index.txt") in endpoints and ("redis", "GET") in endpoints
        # [v6]:port legends: the same label_join/label_replace on an IPv6 address
        (lat,) = [by_title["redis: requests/s per server"]["targets"][0]["expr"]]
        wrap = (
            lat[: lat.index("sum by")]
            + 'label_replace(label_replace(vector(1), "server_address", "::1", "", "")'
        )
        wrap += ', "server_port", "6379", "", "")' + lat[lat.rindex(")", 0, lat.index('"server", "|"')) + 1 :]
        (res,) = prom.query(wrap)
        assert res["metric"]["server"] == "[::1]:6379"
    finally:
        agent.stop()
        prom.cleanup()
        rds.stop()
        nginx.stop()
