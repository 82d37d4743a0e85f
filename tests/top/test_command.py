"""`packetd top --pcap-file` as a user runs it, against `packetd watch --format json` on the same capture.

The truth is the independent path: watch's JSON records of the file, grouped and ranked here (nearest
rank, the definition top documents); top's numbers come from its own aggregation of the same capture.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from packetd.pipeline.metrics import PathTemplater
from tests.helpers.golden import CORPUS, ROOT

# (file, --proto rules): captures with errors, several servers, clients, operations or paths
CAPTURES = [
    ("mysql/zeek_zeek__mysql__auth.pcap", ["mysql;3306"]),
    ("postgresql/OISF_suricata-verify__pgsql-simple-query-rollback__input.pcap", ["postgresql;5432"]),
    ("amqp/deepflowio_deepflow__amqp-error.pcap", ["amqp;5672"]),
    ("http1/zeek_zeek__bro.org.pcap", ["http;80"]),
]


def packetd(*args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "COLUMNS": "120"}
    return subprocess.run(
        [sys.executable, "-m", "packetd", *args],
        capture_output=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=False,
    )


def _rules(protos: list[str]) -> list[str]:
    return [a for p in protos for a in ("--proto", p)]


def _watch_records(path: str, protos: list[str]) -> list[dict[str, Any]]:
    r = packetd("watch", "--pcap-file", path, "--format", "json", *_rules(protos))
    assert r.returncode == 0, r.stderr
    return [orjson.loads(line) for line in r.stdout.splitlines()]


with open(os.path.join(ROOT, "docs", "top.schema.json"), encoding="utf-8") as _f:
    SCHEMA = Draft202012Validator(orjson.loads(_f.read()))
Draft202012Validator.check_schema(SCHEMA.schema)

_templater = PathTemplater()  # the agent's templating, which top's path rows are documented to use


def _path(rec: dict[str, Any]) -> str:
    path = (rec.get("request") or {}).get("path")
    return _templater(path.split("?", 1)[0]) if path else "(no path)"


KEYS: dict[str, Callable[[dict[str, Any]], str]] = {
    "server": lambda r: (
        (f"[{r['server']['ip']}]" if ":" in r["server"]["ip"] else r["server"]["ip"])
        + f":{r['server']['port']}"
    ),
    "client": lambda r: str(r["client"]["ip"]),
    "operation": lambda r: f"{r['protocol']} {r['operation']}",
    "path": _path,
    "process": lambda r: "(attribution off)",  # a file's processes are not this host's
}


def _rank(values: list[int], q: float) -> int | None:
    return values[math.ceil(q * len(values)) - 1] if values else None


def _truth(records: list[dict[str, Any]], key: Callable[[dict[str, Any]], str]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        groups[key(rec)].append(rec)
    out = {}
    for k, recs in groups.items():
        lat = sorted(r["duration_ns"] for r in recs if r["duration_ns"] is not None)
        out[k] = {
            "count": len(recs),
            "errors": sum(bool(r["error"]) for r in recs),
            "p50_ns": _rank(lat, 0.5),
            "p99_ns": _rank(lat, 0.99),
            "max_ns": lat[-1] if lat else None,
            "protocols": sorted({r["protocol"] for r in recs}),
        }
    return out


@pytest.mark.slow  # six packetd runs a capture
@pytest.mark.parametrize(("name", "protos"), CAPTURES, ids=[c[0].split("/")[0] for c in CAPTURES])
def test_file_json_matches_watch_records(name: str, protos: list[str]) -> None:
    path = os.path.join(CORPUS, name)
    records = _watch_records(path, protos)
    assert records, "the capture gives records"
    for grouping in ("server", "client", "operation", "path", "process"):
        r = packetd("top", "--pcap-file", path, "--format", "json", "--group-by", grouping, *_rules(protos))
        assert r.returncode == 0, r.stderr
        assert r.stdout.count(b"\n") == 1  # one JSON document, one line
        warned = b"--group-by process: process attribution is off" in r.stderr
        assert warned == (grouping == "process")
        doc = orjson.loads(r.stdout)
        SCHEMA.validate(doc)  # the documented shape (docs/top.schema.json)
        assert (doc["grouping"], doc["sort_by"], doc["window_ns"]) == (grouping, "count", None)
        assert doc["records"] == len(records) and doc["late"] == 0 and doc["folded"] == 0
        want = _truth(records, KEYS[grouping])
        got = {
            row["key"]: {k: row[k] for k in ("count", "errors", "p50_ns", "p99_ns", "max_ns")}
            | {"protocols": sorted(row["protocols"])}
            for row in doc["rows"]
        }
        assert got == want, grouping
        counts = [row["count"] for row in doc["rows"]]
        assert counts == sorted(counts, reverse=True)  # sorted by count
        for row in doc["rows"]:
            assert row["error_ratio"] == round(row["errors"] / row["count"], 6)
            assert not row["sampled"]
            assert len(row["sparkline_ns"]) <= 20


def test_file_table_sorted_by_errors_plain_text() -> None:
    name, protos = CAPTURES[0]
    path = os.path.join(CORPUS, name)
    truth = _truth(_watch_records(path, protos), KEYS["operation"])
    r = packetd("top", "--pcap-file", path, "--group-by", "operation", "--sort-by", "errors", *_rules(protos))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert "\x1b" not in r.stdout.decode()  # not a terminal: plain text
    assert lines[0].split() == ["OPERATION", "PROTO", "COUNT", "ERR", "ERR%", "P50", "P99", "MAX", "LATENCY"]
    assert all(len(line) <= 120 for line in lines)
    # "mysql COM_QUERY   mysql  12  3 ...": the key is two words, then PROTO, COUNT, ERR
    rows = [line.split() for line in lines[1:]]
    shown = {" ".join(r[:2]): (int(r[3]), int(r[4])) for r in rows}
    assert shown == {k: (v["count"], v["errors"]) for k, v in truth.items()}
    errors = [int(r[4]) for r in rows]
    assert errors == sorted(errors, reverse=True)
    assert f"packetd: {sum(v['count'] for v in truth.values())} records" in r.stderr.decode()


def test_bad_window_and_grouping_are_one_line() -> None:
    r = packetd("top", "--pcap-file", os.path.join(CORPUS, CAPTURES[0][0]), "--window", "5ns")
    assert r.returncode == 2
    assert r.stderr.decode().strip() == "packetd: --window: window must be at least 20 ns"
    r = packetd("top", "--pcap-file", os.path.join(CORPUS, CAPTURES[0][0]), "--refresh", "0")
    assert r.returncode == 2
    assert (
        r.stderr.decode().strip()
        == "packetd: --refresh must be at least 50ms (a redraw costs a sort of every row)"
    )
    r = packetd("top", "--group-by", "pod")
    assert r.returncode == 2 and b"'pod' is not one of" in r.stderr and b"Traceback" not in r.stderr


def _secret_capture(path: str) -> None:
    """HTTP/1.1 requests whose target carries a token and whose path has ids (crafted: the query rule)."""
    from packetd.capture.pcapwrite import PcapWriter, TcpConversation, ethernet

    with open(path, "wb") as f:
        w = PcapWriter(f)
        conv = TcpConversation(("10.0.0.1", 40000), ("10.0.0.2", 80))
        ts = 1_700_000_000_000_000_000
        for pkt in conv.handshake():
            w.write(ts, ethernet(pkt))
        for i, status in enumerate((200, 503, 200)):
            req = b"GET /users/%d/orders?token=s3cr3t-%d&page=2 HTTP/1.1\r\nHost: a\r\n\r\n" % (1000 + i, i)
            for pkt in conv.send(0, req):
                ts += 1_000_000
                w.write(ts, ethernet(pkt))
            for pkt in conv.send(1, b"HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n" % status):
                ts += (i + 1) * 1_000_000  # 1, 2 and 3 ms
                w.write(ts, ethernet(pkt))


def test_only_the_redacted_view_leaves(tmp_path: Any) -> None:
    cap = os.path.join(str(tmp_path), "secret.pcap")
    _secret_capture(cap)
    r = packetd("top", "--pcap-file", cap, "--proto", "http;80", "--format", "json", "--group-by", "path")
    assert r.returncode == 0, r.stderr
    assert b"s3cr3t" not in r.stdout + r.stderr
    doc = orjson.loads(r.stdout)
    (row,) = doc["rows"]
    # three requests, one 503; latencies 1, 2 and 3 ms by construction: p50 rank 2, p99 rank 3
    assert (row["key"], row["count"], row["errors"]) == ("/users/{id}/orders", 3, 1)
    assert (row["p50_ns"], row["p99_ns"], row["max_ns"]) == (2_000_000, 3_000_000, 3_000_000)
    table = packetd("top", "--pcap-file", cap, "--proto", "http;80", "--group-by", "path")
    assert b"s3cr3t" not in table.stdout and b"/users/{id}/orders" in table.stdout

    # the records of a row (the app's detail view) are lines of the redacted record
    from packetd.engine import Rule
    from packetd.top.aggregate import Aggregator
    from tests.helpers.golden import run_file

    rts, _ = run_file(cap, (Rule("http", (80,)),))
    agg = Aggregator(window_ns=None)
    for rt in rts:
        agg.add(rt.to_json(), rt.end_ns)
    lines = agg.recent("path", "/users/{id}/orders")
    assert len(lines) == 3 and not any("s3cr3t" in line for line in lines)
    assert "GET /users/1001/orders?token=[REDACTED]&page=2 503" in lines[1]
