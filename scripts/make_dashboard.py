"""Write deploy/grafana/packetd.json: the Grafana dashboard for the metrics packetd exposes.

    .venv/bin/python scripts/make_dashboard.py

Generated from the protocol registry and the metric label tables, so it names exactly the metrics and
labels the agent exposes (tests/deploy/test_dashboard.py runs every query against a real Prometheus
scraping a real agent).

Layout: an overview row (requests/s, error ratio and p99 per protocol), two top-N tables (slowest
endpoints, most errors, across protocols), a row per protocol (requests/s, errors/s and latency
percentiles per server), and the agent's own health. Variables: datasource, job, instance (the node),
protocol, server. Every query is scoped by them:

* job and instance are Prometheus' target labels (a scrape, or the agent's identity on remote write);
* protocol selects metric names — packetd's metrics are per protocol (`redis_requests_total`), so each
  selector carries a second `__name__` matcher, `__name__=~"(${protocol:regex})_requests_total"`, which
  matches nothing for a protocol not selected (PromQL ANDs two matchers on one label);
* server matches the `server_address` label.

Server legends are `address:port`, IPv6 addresses bracketed (`[::1]:6379`), built in PromQL with
label_join/label_replace into a `server` label (legendFormat cannot branch). The file carries
`__inputs`/`__requires`, so it imports on grafana.com with a data source chosen at import.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from packetd import __version__
from packetd.pipeline.semantics import GENERIC_LABELS, semantics_of
from packetd.protocols.registry import REGISTRY

OUT = os.path.join(os.path.dirname(__file__), "..", "deploy", "grafana", "packetd.json")
DS = {"type": "prometheus", "uid": "${datasource}"}
PROTOCOLS = [spec.name for spec in REGISTRY.specs()]
TOP_N = 10
SCOPE = 'job=~"$job", instance=~"$instance"'


def sel(p: str, suffix: str, extra: str = "") -> str:
    """The selector of protocol p's metric `<p>_<suffix>`, scoped by every variable."""
    more = f", {extra}" if extra else ""
    return (
        f'{{__name__="{p}_{suffix}", __name__=~"(${{protocol:regex}})_{suffix}", {SCOPE}, '
        f'server_address=~"$server"{more}}}'
    )


def errors_rate(p: str, by: str) -> str:
    """Errors/s: the `error` label where the protocol has one; HTTP counts ≥500 by its status code (the
    Go-compatible label set has no `error` label for HTTP; both spellings are asked for, `or` keeps one)."""
    errors = sel(p, "requests_total", 'error="true"')
    with_label = f"sum by ({by}) (rate({errors}[$__rate_interval]))"
    if p not in ("http", "http2"):
        return with_label
    fivexx = sel(p, "requests_total", 'status_code=~"5.."')
    by_status = f"sum by ({by}) (rate({fivexx}[$__rate_interval]))"
    return f"({with_label} or {by_status})"


def server_label(expr: str) -> str:
    """`expr` with a `server` label "addr:port", "[v6addr]:port" when the address has a colon."""
    joined = f'label_join({expr}, "server", "|", "server_address", "server_port")'
    v6 = f'label_replace({joined}, "server", "[$1]:$2", "server", "(.*:.*)\\\\|(.*)")'
    return f'label_replace({v6}, "server", "$1:$2", "server", "([^|]*)\\\\|(.*)")'


def endpoint_labels(p: str) -> list[str]:
    """The labels that name what was asked of a server (method and path, command, API...), as exposed."""
    names = []
    semantics = semantics_of(p)
    for key in semantics.default_labels:
        if key.startswith(("server.", "client.", "response.")):
            continue
        label = semantics.labels.get(key) or GENERIC_LABELS.get(key)
        if label is not None:
            names.append(label[0])
    return names


def with_protocol(expr: str, p: str) -> str:
    return f'label_replace({expr}, "protocol", "{p}", "", "")'


def with_endpoint(expr: str, p: str) -> str:
    labels = endpoint_labels(p)
    if not labels:
        return f'label_replace({expr}, "endpoint", "", "", "")'
    return f'label_join({expr}, "endpoint", " ", {", ".join(json.dumps(x) for x in labels)})'


def target(i: int, expr: str, legend: str, instant: bool = False) -> dict[str, Any]:
    t: dict[str, Any] = {"refId": chr(65 + i), "datasource": DS, "expr": expr, "legendFormat": legend}
    if instant:
        t.update(instant=True, range=False, format="table")
    return t


def timeseries(
    pid: int, title: str, exprs: list[tuple[str, str]], x: int, y: int, unit: str, w: int = 8
) -> dict:
    return {
        "id": pid,
        "type": "timeseries",
        "title": title,
        "datasource": DS,
        "gridPos": {"h": 8, "w": w, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [target(i, e, leg) for i, (e, leg) in enumerate(exprs)],
    }


def table(pid: int, title: str, expr: str, x: int, y: int, unit: str, value: str) -> dict:
    return {
        "id": pid,
        "type": "table",
        "title": title,
        "datasource": DS,
        "gridPos": {"h": 9, "w": 12, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"showHeader": True, "sortBy": [{"displayName": value, "desc": True}]},
        "targets": [target(0, expr, "", instant=True)],
        "transformations": [
            {
                "id": "organize",
                "options": {
                    "excludeByName": {"Time": True},
                    "indexByName": {"protocol": 0, "server": 1, "endpoint": 2, "Value": 3},
                    "renameByName": {"Value": value},
                },
            }
        ],
    }


def row(pid: int, title: str, y: int) -> dict:
    return {
        "id": pid,
        "type": "row",
        "title": title,
        "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
        "collapsed": False,
    }


def variables() -> list[dict[str, Any]]:
    any_requests = '{__name__=~"(' + "|".join(PROTOCOLS) + ')_requests_total"}'

    def query_var(name: str, label: str, query: str, all_value: str = ".*") -> dict[str, Any]:
        return {
            "name": name,
            "label": label,
            "type": "query",
            "datasource": DS,
            "query": {"query": query, "refId": f"{name}-var"},
            "definition": query,
            "refresh": 2,  # on time range change: agents come and go
            "includeAll": True,
            "allValue": all_value,
            "multi": True,
            "sort": 1,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        }

    return [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {"selected": False, "text": "Prometheus", "value": "${DS_PROMETHEUS}"},
            "hide": 0,
        },
        query_var("job", "Job", f"label_values({any_requests}, job)"),
        query_var(
            "instance", "Instance (node)", f'label_values({any_requests[:-1]}, job=~"$job"}}, instance)'
        ),
        {
            "name": "protocol",
            "label": "Protocol",
            "type": "custom",
            "query": ",".join(PROTOCOLS),
            "options": [{"text": p, "value": p, "selected": False} for p in PROTOCOLS],
            "includeAll": True,
            "multi": True,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        },
        query_var(
            "server",
            "Server",
            f'label_values({any_requests[:-1]}, job=~"$job", instance=~"$instance"}}, server_address)',
        ),
    ]


def main() -> None:
    panels: list[dict] = []
    pid = 1
    y = 0

    def next_id() -> int:
        nonlocal pid
        pid += 1
        return pid - 1

    # -- overview: one target per protocol (metric names differ; each is empty unless its protocol is chosen)
    panels.append(row(next_id(), "overview", y))
    y += 1
    rps = [(f"sum(rate({sel(p, 'requests_total')}[$__rate_interval]))", p) for p in PROTOCOLS]
    ratio = [
        (f"{errors_rate(p, '')} / sum(rate({sel(p, 'requests_total')}[$__rate_interval]))", p)
        for p in PROTOCOLS
    ]
    p99 = [
        (
            f"histogram_quantile(0.99, sum by (le) (rate({sel(p, 'request_duration_seconds_bucket')}[$__rate_interval])))",
            p,
        )
        for p in PROTOCOLS
    ]
    panels.append(timeseries(next_id(), "requests/s per protocol", rps, 0, y, "reqps"))
    panels.append(timeseries(next_id(), "error ratio per protocol", ratio, 8, y, "percentunit"))
    panels.append(timeseries(next_id(), "p99 latency per protocol", p99, 16, y, "s"))
    y += 8

    # -- top N across protocols: the union of one term per protocol, each labelled with its protocol
    slow_terms, err_terms = [], []
    for p in PROTOCOLS:
        ep = endpoint_labels(p)
        by = ", ".join(["server_address", "server_port", *ep])
        q = f"histogram_quantile(0.99, sum by (le, {by}) (rate({sel(p, 'request_duration_seconds_bucket')}[$__range])))"
        slow_terms.append(with_protocol(with_endpoint(server_label(q), p), p))
        e = errors_rate(p, by).replace("rate(", "increase(").replace("[$__rate_interval]", "[$__range]")
        err_terms.append(with_protocol(with_endpoint(server_label(e), p), p))
    keep = "protocol, server, endpoint"
    slowest = f"topk({TOP_N}, max by ({keep}) ({' or '.join(slow_terms)}))"
    most_errors = f"topk({TOP_N}, sum by ({keep}) ({' or '.join(err_terms)}) > 0)"
    panels.append(table(next_id(), f"slowest endpoints (p99, top {TOP_N})", slowest, 0, y, "s", "p99"))
    panels.append(table(next_id(), f"most errors (top {TOP_N})", most_errors, 12, y, "short", "errors"))
    y += 9

    # -- a row per protocol
    by = "server_address, server_port"
    for p in PROTOCOLS:
        panels.append(row(next_id(), p, y))
        y += 1
        rate = f"sum by ({by}) (rate({sel(p, 'requests_total')}[$__rate_interval]))"
        panels.append(
            timeseries(
                next_id(), f"{p}: requests/s per server", [(server_label(rate), "{{server}}")], 0, y, "reqps"
            )
        )
        panels.append(
            timeseries(
                next_id(),
                f"{p}: errors/s per server",
                [(server_label(errors_rate(p, by)), "{{server}}")],
                8,
                y,
                "reqps",
            )
        )
        lat = [
            (
                server_label(
                    f"histogram_quantile({q}, sum by (le, {by}) (rate({sel(p, 'request_duration_seconds_bucket')}[$__rate_interval])))"
                ),
                f"p{int(q * 100)} {{{{server}}}}",
            )
            for q in (0.5, 0.9, 0.99)
        ]
        panels.append(timeseries(next_id(), f"{p}: latency percentiles per server", lat, 16, y, "s"))
        y += 8

    # -- the agent itself (its /metrics; the same job and instance as its protocol metrics)
    panels.append(row(next_id(), "packetd itself", y))
    y += 1
    panels.append(timeseries(next_id(), "packets dropped before decoding", [
        (f'sum by (instance, iface) (rate(packetd_sniffer_dropped_packets_total{{{SCOPE}}}[$__rate_interval]))',
         "{{instance}} {{iface}}"),
    ], 0, y, "pps"))  # fmt: skip
    scope_p = f'{SCOPE}, protocol=~"${{protocol:regex}}"'
    panels.append(timeseries(next_id(), "decode resets and gaps", [
        (f"sum by (protocol) (rate(packetd_decode_resets_total{{{scope_p}}}[$__rate_interval]))", "resets {{protocol}}"),
        (f"sum by (protocol) (rate(packetd_decode_gaps_total{{{scope_p}}}[$__rate_interval]))", "gaps {{protocol}}"),
    ], 8, y, "ops"))  # fmt: skip
    panels.append(timeseries(next_id(), "exporters: sent, dropped, queued", [
        (f"sum by (exporter) (rate(packetd_exporter_sent_total{{{SCOPE}}}[$__rate_interval]))", "sent {{exporter}}"),
        (f"sum by (exporter) (rate(packetd_exporter_dropped_total{{{SCOPE}}}[$__rate_interval]))", "dropped {{exporter}}"),
        (f"sum by (exporter) (packetd_exporter_queue_length{{{SCOPE}}})", "queued {{exporter}}"),
    ], 16, y, "short"))  # fmt: skip

    dashboard = {
        "__inputs": [
            {
                "name": "DS_PROMETHEUS",
                "label": "Prometheus",
                "description": "The Prometheus that scrapes (or receives remote write from) packetd",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            }
        ],
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            {"type": "panel", "id": "timeseries", "name": "Time series", "version": ""},
            {"type": "panel", "id": "table", "name": "Table", "version": ""},
        ],
        "title": "packetd — requests, errors and latency by protocol and server",
        "description": f"Generated by packetd {__version__} scripts/make_dashboard.py",
        "uid": "packetd-overview",
        "schemaVersion": 39,
        "version": 2,
        "editable": True,
        "graphTooltip": 1,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "tags": ["packetd", "network", "prometheus"],
        "templating": {"list": variables()},
        "panels": panels,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(dashboard, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(OUT)


if __name__ == "__main__":
    main()
