"""Write deploy/grafana/packetd.json: the Grafana dashboard, one row of panels per protocol packetd decodes.

    .venv/bin/python scripts/make_dashboard.py

Generated from the protocol registry so that it names exactly the metrics the agent exposes
(tests/deploy/test_deploy.py checks every metric name it queries).
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from packetd.protocols.registry import REGISTRY

OUT = os.path.join(os.path.dirname(__file__), "..", "deploy", "grafana", "packetd.json")
DS = {"type": "prometheus", "uid": "${datasource}"}


def row(pid: int, title: str, y: int) -> dict:
    """A full-width row header."""
    return {
        "id": pid,
        "type": "row",
        "title": title,
        "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
        "collapsed": False,
    }


def panel(pid: int, title: str, exprs: list[tuple[str, str]], x: int, y: int, unit: str) -> dict:
    return {
        "id": pid,
        "type": "timeseries",
        "title": title,
        "datasource": DS,
        "gridPos": {"h": 8, "w": 8, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(65 + i), "datasource": DS, "expr": e, "legendFormat": leg}
            for i, (e, leg) in enumerate(exprs)
        ],
    }


def main() -> None:
    panels: list[dict] = []
    pid = 1
    y = 0
    for spec in REGISTRY.specs():
        p = spec.name
        err = f'{p}_requests_total{{error="true"}}'  # every protocol has the error label (semantics.py)
        by = "server_address, server_port"
        panels.append(row(pid, p, y))
        pid += 1
        y += 1
        panels.append(
            panel(
                pid,
                f"{p}: requests/s per server",
                [
                    (
                        f"sum by ({by}) (rate({p}_requests_total[$__rate_interval]))",
                        "{{server_address}}:{{server_port}}",
                    )
                ],
                0,
                y,
                "reqps",
            )
        )
        pid += 1
        panels.append(
            panel(
                pid,
                f"{p}: errors/s per server",
                [(f"sum by ({by}) (rate({err}[$__rate_interval]))", "{{server_address}}:{{server_port}}")],
                8,
                y,
                "reqps",
            )
        )
        pid += 1
        lat = [
            (
                f"histogram_quantile({q}, sum by (le, {by}) (rate({p}_request_duration_seconds_bucket[$__rate_interval])))",
                f"p{int(q * 100)} {{{{server_address}}}}:{{{{server_port}}}}",
            )
            for q in (0.5, 0.9, 0.99)
        ]
        panels.append(panel(pid, f"{p}: latency percentiles per server", lat, 16, y, "s"))
        pid += 1
        y += 8
    panels.append(row(pid, "packetd itself", y))
    pid += 1
    y += 1
    panels.append(
        panel(
            pid,
            "packets dropped before decoding",
            [("sum by (iface) (rate(packetd_sniffer_dropped_packets_total[$__rate_interval]))", "{{iface}}")],
            0,
            y,
            "pps",
        )
    )
    pid += 1
    panels.append(panel(pid, "decode resets and gaps", [
        ("sum by (protocol) (rate(packetd_decode_resets_total[$__rate_interval]))", "resets {{protocol}}"),
        ("sum by (protocol) (rate(packetd_decode_gaps_total[$__rate_interval]))", "gaps {{protocol}}"),
    ], 8, y, "ops"))  # fmt: skip
    pid += 1
    panels.append(panel(pid, "exporter drops and queue", [
        ("sum by (exporter) (rate(packetd_exporter_dropped_total[$__rate_interval]))", "dropped {{exporter}}"),
        ("sum by (exporter) (packetd_exporter_queue_length)", "queued {{exporter}}"),
    ], 16, y, "short"))  # fmt: skip
    dashboard = {
        "title": "packetd — requests, errors and latency by protocol and server",
        "uid": "packetd-overview",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "tags": ["packetd"],
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Data source"}
            ]
        },
        "panels": panels,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(dashboard, f, indent=2)
        f.write("\n")
    print(OUT)


if __name__ == "__main__":
    main()
