"""Spans as a trace back-end reads them: OpenTelemetry semantic-convention attributes from real traffic,
the instrumentation scope and the resource naming the observing host, exported through the SDK's OTLP
exporter to a receiver built on opentelemetry-proto.

The truth is what the clients sent and got (the gRPC status code the client library raised, the HTTP
status the client read, the User-Agent it sent) and, for the corpus captures, the records' own JSON.
"""

from __future__ import annotations

import socket
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from packetd import __version__
from packetd.engine import Rule
from packetd.pairing.roundtrip import Roundtrip
from packetd.pipeline.spans import RoundtripsToTraces, SpanData
from packetd.protocols.base import Kind
from tests.agent.test_semantics import records_of
from tests.helpers.golden import run_file
from tests.helpers.live import can_capture, free_port
from tests.helpers.tapped import export, grpc_server, tcpdump

SERVER_KIND, CLIENT_KIND = 2, 3  # opentelemetry-proto Span.SpanKind


def spans_of(records: list[Roundtrip], config: dict[str, Any] | None = None) -> list[SpanData]:
    proc = RoundtripsToTraces(config)
    return [s for s in (proc.process(r) for r in records) if s is not None]


# -- gRPC status --------------------------------------------------------------------------------------------
@pytest.mark.root
@pytest.mark.live
@pytest.mark.server
@pytest.mark.skipif(not can_capture(), reason="capture on loopback needs root / CAP_NET_RAW")
def test_grpc_spans_carry_the_status_the_client_saw() -> None:
    grpc = pytest.importorskip("grpc")
    seen: dict[str, Any] = {}
    with grpc_server() as port, tcpdump(port) as pcap, grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        unary = ch.unary_unary("/demo.Echo/Unary")
        unary(b"hello", timeout=30)
        seen["Unary-ok"] = grpc.StatusCode.OK
        try:
            unary(b"missing", timeout=30)
        except grpc.RpcError as e:
            seen["Unary-missing"] = e.code()
        try:
            list(ch.unary_stream("/demo.Echo/Count")(b"-1", timeout=30))
        except grpc.RpcError as e:
            seen["Count"] = e.code()
    records, _ = run_file(pcap, (Rule(protocol="grpc", ports=(port,)),))
    exported = export(spans_of(records))
    got = sorted(
        (s["attributes"]["rpc.grpc.status_code"], s["attributes"]["rpc.response.status_code"])
        for s in exported
    )
    want = sorted((code.value[0], code.name) for code in seen.values())
    assert got == want
    for s in exported:
        failed = s["attributes"]["rpc.grpc.status_code"] != 0
        assert ("error.type" in s["attributes"]) == failed
        assert s["status"] == (2 if failed else 0)  # STATUS_CODE_ERROR / UNSET


# -- HTTP: error.type, url.scheme, user agent; scope and resource ------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *a: object) -> None:
        pass

    def do_GET(self) -> None:
        code = 503 if self.path.startswith("/fail") else 200
        body = b"x" * 10
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.mark.root
@pytest.mark.live
@pytest.mark.server
@pytest.mark.skipif(not can_capture(), reason="capture on loopback needs root / CAP_NET_RAW")
def test_http_spans_scheme_user_agent_error_type_scope_and_host(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    statuses: dict[str, int] = {}
    ua = "semconv-test/2.0"
    try:
        with tcpdump(port) as pcap:
            for path in ("/ok", "/fail"):
                req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"User-Agent": ua})
                try:
                    with urllib.request.urlopen(req, timeout=10) as r:
                        statuses[path] = r.status
                except urllib.error.HTTPError as e:
                    statuses[path] = e.code
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert statuses == {"/ok": 200, "/fail": 503}
    records, _ = run_file(pcap, (Rule(protocol="http", ports=(port,)),))
    monkeypatch.setenv("NODE_NAME", "node-7")
    exported = export(spans_of(records))
    by_path = {s["attributes"]["url.path"]: s for s in exported}
    assert set(by_path) == set(statuses)
    for path, code in statuses.items():
        a = by_path[path]["attributes"]
        assert a["http.response.status_code"] == code
        assert a["url.scheme"] == "http"
        assert a["user_agent.original"] == ua
        assert a.get("error.type") == ("503" if code >= 500 else None)
        assert by_path[path]["kind"] == SERVER_KIND
        assert by_path[path]["scope"] == ("packetd", __version__)
        resource = by_path[path]["resource"]
        assert resource["host.name"] == socket.gethostname()
        assert resource["k8s.node.name"] == "node-7"
    # kind: client makes them CLIENT spans of the client's service, their peer the server
    clients = export(spans_of(records, {"kind": "client"}))
    assert {s["kind"] for s in clients} == {CLIENT_KIND}
    assert {s["resource"]["service.name"] for s in clients} == {"client:127.0.0.1"}
    assert {
        (s["attributes"]["network.peer.address"], s["attributes"]["network.peer.port"]) for s in clients
    } == {("127.0.0.1", port)}
    assert {s["resource"]["service.name"] for s in exported} == {f"http:127.0.0.1:{port}"}


def test_no_k8s_node_name_without_node_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from packetd.export.senders import host_identity

    monkeypatch.delenv("NODE_NAME", raising=False)
    assert host_identity() == {"host.name": socket.gethostname()}


# -- databases, messaging, DNS: names and namespaces ------------------------------------------------------
@pytest.mark.parametrize("proto", ["mysql", "postgresql"])
def test_db_operation_name_is_the_statements_operation(proto: str) -> None:
    records = [r for r in records_of(proto) if r.kind == Kind.ROUNDTRIP]
    checked = 0
    for rt, span in zip(records, spans_of(records), strict=True):
        statement = (rt.to_json()["request"] or {}).get("statement")
        a = span.attributes
        assert a.get("db.operation.name") not in (
            "Query",
            "COM_QUERY",
            "Parse",
            "Execute",
            "COM_STMT_EXECUTE",
        )
        if "db.operation.name" not in a:  # the statement is not known (prepared before the capture)
            assert not statement or not statement.split()[0].isalpha()
            continue
        if statement and statement.split()[0].isalpha():
            # the first word of the record's statement, by hand
            assert a["db.operation.name"] == statement.split()[0].upper()
            target = a.get("db.collection.name") or a.get("db.namespace") or f"{rt.server[0]}:{rt.server[1]}"
            assert span.name == f"{a['db.operation.name']} {target}"
            assert a["db.query.text"] == statement
            checked += 1
    assert checked


def test_redis_and_mongodb_operation_names() -> None:
    for proto in ("redis", "mongodb"):
        records = [r for r in records_of(proto) if r.kind == Kind.ROUNDTRIP]
        for rt, span in zip(records, spans_of(records), strict=True):
            assert span.attributes["db.operation.name"] == rt.to_json()["operation"]
            assert span.name.startswith(rt.to_json()["operation"] + " ")


def test_our_attributes_live_under_packetd_only() -> None:
    semconv = ("http.", "url.", "rpc.", "db.", "messaging.", "dns.", "network.", "server.", "client.")
    known = {
        "dns.question.name", "rpc.grpc.status_code", "rpc.response.status_code", "rpc.system", "rpc.service",
        "rpc.method", "user_agent.original", "error.type",
    }  # fmt: skip
    seen: set[str] = set()
    for proto in ("dns", "grpc", "http2", "kafka", "amqp", "mysql"):
        for span in spans_of(records_of(proto)):
            seen.update(span.attributes)
    assert "packetd.dns.question.type" in seen and "dns.question.type" not in seen
    assert "http2.stream_id" not in seen and "packetd.http2.stream_id" in seen
    invented = {"dns.question.type", "dns.response_code", "http2.stream_id", "rpc.request.messages",
                "rpc.response.messages", "db.response.affected_rows"}  # fmt: skip
    assert not (seen & invented)
    assert all(k.startswith((*semconv, "packetd.")) or k in known for k in seen)


def test_messaging_operation_type() -> None:
    kafka = {s.name: s.attributes.get("messaging.operation.type") for s in spans_of(records_of("kafka"))}
    if "Produce" in kafka:
        assert kafka["Produce"] == "send"
    if "Fetch" in kafka:
        assert kafka["Fetch"] == "receive"
    assert "Produce" in kafka or "Fetch" in kafka
    amqp = spans_of(records_of("amqp"), {"include": ["oneway"]})
    types = {s.name: s.attributes.get("messaging.operation.type") for s in amqp}
    assert types.get("Basic.Publish") == "send"


def test_handshake_and_oneway_records_are_spans_only_when_asked() -> None:
    records = records_of("mysql") + records_of("amqp")
    kinds = {r.kind for r in records}
    assert Kind.HANDSHAKE in kinds and Kind.ONEWAY in kinds
    default = spans_of(records)
    assert {s.attributes["packetd.kind"] for s in default} <= {Kind.ROUNDTRIP, Kind.UNANSWERED}
    every = spans_of(records, {"include": ["handshake", "oneway"]})
    assert len(every) == len(records)
    with pytest.raises(ValueError, match="include: 'roundtrip' is not allowed; allowed: handshake, oneway"):
        RoundtripsToTraces({"include": ["roundtrip"]})
    with pytest.raises(ValueError, match="kind: 'internal' is not allowed; allowed: client, server"):
        RoundtripsToTraces({"kind": "internal"})
