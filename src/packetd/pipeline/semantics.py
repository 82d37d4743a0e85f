"""What each protocol's roundtrips mean to metrics and traces: label getters and span attributes.

Metric labels keep the Go implementation's `requireLabels` names (reference §8.2) with its bugs fixed
(§18.21): MongoDB's command is the `command` label (not `service`), gRPC's `status_code` is the gRPC status
(not the HTTP one), AMQP's `queue_name` of a method without a queue is "" (not a crash). Each protocol also
has documented default labels, used when its `requireLabels` are not configured.

Span attributes follow the OpenTelemetry semantic conventions — HTTP, RPC (gRPC), database (Redis,
MySQL, PostgreSQL, MongoDB), messaging (Kafka, AMQP) and DNS — as far as the wire shows them; attributes
of our own are under `packetd.*`, never inside a semconv namespace. Span builders read the record's JSON
(the redacted view, protocols/redact.py), so `db.query.text`, `url.query` and header-derived attributes are
exactly what the JSON record shows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from packetd.pairing.roundtrip import Roundtrip, endpoint_text
from packetd.protocols import redact as policy

AttrValue = str | int | float | bool | list[str]
Getter = Callable[[Roundtrip], object]


def req(field: str) -> Getter:
    def get(rt: Roundtrip) -> object:
        return getattr(rt.request, field, None) if rt.request is not None else None

    return get


def resp(field: str) -> Getter:
    def get(rt: Roundtrip) -> object:
        return getattr(rt.response, field, None) if rt.response is not None else None

    return get


def _operation(rt: Roundtrip) -> object:
    return rt.operation


def _status(rt: Roundtrip) -> object:
    return rt.status


def _error(rt: Roundtrip) -> object:
    return rt.error


def _grpc_service(rt: Roundtrip) -> object:
    op = rt.operation
    return op.rsplit("/", 1)[0] if "/" in op else op


def _grpc_method(rt: Roundtrip) -> object:
    op = rt.operation
    return op.rsplit("/", 1)[1] if "/" in op else ""


def _amqp_class(rt: Roundtrip) -> object:
    return rt.operation.split(".", 1)[0]


def _amqp_method(rt: Roundtrip) -> object:
    op = rt.operation
    return op.split(".", 1)[1] if "." in op else op


def _amqp_arg(name: str) -> Getter:
    def get(rt: Roundtrip) -> object:
        msg = rt.request if rt.request is not None else rt.response
        args = getattr(msg, "args", None) or {}
        return args.get(name, "") if isinstance(args, dict) else ""

    return get


def _mongo_source(rt: Roundtrip) -> object:
    db, coll = req("database")(rt), req("collection")(rt)
    return f"{db}.{coll}" if db and coll else (db or "")


def url_path(rt: Roundtrip) -> object:
    """The request's path without its query (HTTP/1's `path` has none; an HTTP/2 `:path` carries one): a
    query is neither a series nor safe to show (metric labels, the watch summary)."""
    path = getattr(rt.request, "path", None) if rt.request is not None else None
    return path.split("?", 1)[0] if isinstance(path, str) else path


def _authority(field: str) -> Getter:
    """A Host / :authority without credentials (`user:pw@host` → `[REDACTED]@host`), as the record shows it."""
    get = req(field)

    def authority(rt: Roundtrip) -> object:
        value = get(rt)
        return policy.userinfo(value) if isinstance(value, str) else value

    return authority


def _dns_question(rt: Roundtrip) -> object:
    msg = rt.request if rt.request is not None else rt.response
    qs = getattr(msg, "questions", ())
    return qs[0][0] if qs else ""  # (name, type, class)


# protocol → requireLabels key → (label name, getter). `path` getters are templated by the processor.
PROTOCOL_LABELS: dict[str, dict[str, tuple[str, Getter]]] = {
    "http": {
        "request.method": ("method", req("method")),
        "request.path": ("path", url_path),
        "request.remote_host": ("remote_host", _authority("host")),
        "response.status_code": ("status_code", resp("status_code")),
    },
    "http2": {
        "request.method": ("method", req("method")),
        "request.path": ("path", url_path),
        "request.authority": ("authority", _authority("authority")),
        "response.status_code": ("status_code", resp("status_code")),
    },
    "grpc": {
        "request.service": ("service", _grpc_service),
        "request.method": ("method", _grpc_method),
        "response.status_code": ("status_code", _status),  # the gRPC status name (the reference used HTTP's)
    },
    "redis": {"request.command": ("command", req("command"))},
    "mysql": {"request.command": ("command", req("command"))},
    "postgresql": {"request.command": ("command", req("op"))},
    "kafka": {
        "request.api": ("api", _operation),
        "request.version": ("version", req("api_version")),
        "request.client_id": ("client_id", req("client_id")),
        "request.group_id": ("group_id", req("group_id")),
    },
    "mongodb": {
        "request.command": ("command", req("command")),  # label `command` (the reference said `service`)
        "request.source": ("source", _mongo_source),
        "request.database": ("database", req("database")),
        "response.ok": ("ok", resp("ok")),
    },
    "amqp": {
        "request.class": ("class", _amqp_class),
        "request.method": ("method", _amqp_method),
        "request.queue_name": ("queue_name", _amqp_arg("queue")),
        "request.exchange_name": ("exchange_name", _amqp_arg("exchange")),
    },
    "dns": {
        "request.question": ("question", _dns_question),
        "request.qtype": ("qtype", _operation),
    },
}

SERVER = ("server.address", "server.port")
# Every protocol's default label set has the same shape: the server, what was asked, `status` (the record's
# status: HTTP code, gRPC status name, "OK" or the error code) and `error` ("true"/"false", by the protocol's
# own rules: HTTP >= 500, gRPC not OK, Redis -ERR, SQLSTATE, RCODE, ...), so one query counts the errors of
# every protocol. The Go implementation's `status_code` (HTTP, HTTP/2: the HTTP code; gRPC: now the gRPC
# status) stays available as `response.status_code` in requireLabels (README: "Metric labels").
STATUS = ("response.status", "response.error")
DEFAULT_LABELS: dict[str, tuple[str, ...]] = {
    "http": (*SERVER, "request.method", "request.path", *STATUS),
    "http2": (*SERVER, "request.method", "request.path", *STATUS),
    "grpc": (*SERVER, "request.service", "request.method", *STATUS),
    "redis": (*SERVER, "request.command", *STATUS),
    "mysql": (*SERVER, "request.command", *STATUS),
    "postgresql": (*SERVER, "request.command", *STATUS),
    "kafka": (*SERVER, "request.api", *STATUS),
    "mongodb": (*SERVER, "request.command", *STATUS),
    "amqp": (*SERVER, "request.class", "request.method", *STATUS),
    "dns": (*SERVER, "request.qtype", *STATUS),
}
GENERIC_DEFAULT = (*SERVER, "request.operation", *STATUS)
# requireLabels every protocol accepts besides the endpoints → (label name, getter)
GENERIC_LABELS: dict[str, tuple[str, Getter]] = {
    "request.operation": ("operation", _operation),
    "response.status": ("status", _status),
    "response.error": ("error", _error),
}
TEMPLATED = {("http", "path"), ("http2", "path")}


# -- metricsStorage.naming: otel ---------------------------------------------------------------------------
# The duration histograms and their attributes are pipeline/otlp_metrics.py's (metric_for,
# metric_attributes: the same as the OTLP metrics exporter's, from the span builders below); these are the
# two semconv metrics it does not produce, on the same attributes.
OTEL_HTTP_BODY = ("http_server_request_body_size_bytes", "http_server_response_body_size_bytes")
OTEL_ROWS = "db_client_response_returned_rows"


# -- spans ------------------------------------------------------------------------------------------------
# Span builders read the record's JSON (`Roundtrip.to_json()`): the redacted view (protocols/redact.py),
# never the messages' raw fields, so a span can carry only what the JSON record carries.
Record = dict[str, Any]
SpanBuilder = Callable[[Roundtrip, Record], tuple[str, dict[str, AttrValue]]]


def _put(attrs: dict[str, AttrValue], key: str, value: object) -> None:
    if value is None or value == "":
        return
    if isinstance(value, bool | int | float | str):
        attrs[key] = value
    else:
        attrs[key] = str(value)


def _halves(rec: Record) -> tuple[Record, Record]:
    return rec.get("request") or {}, rec.get("response") or {}


def _first_header(fields: object, name: str) -> str | None:
    if isinstance(fields, dict):
        vals = fields.get(name)
        if vals:
            return str(vals[0])
    return None


def _http_common(rt: Roundtrip, rec: Record, version: str, default_scheme: str) -> dict[str, AttrValue]:
    q, s = _halves(rec)
    a: dict[str, AttrValue] = {"network.protocol.name": "http", "network.protocol.version": version}
    _put(a, "http.request.method", q.get("method"))
    path = q.get("path")
    if isinstance(path, str) and "?" in path:  # an HTTP/2 :path carries its query
        path, query = path.split("?", 1)
        _put(a, "url.query", query)
    _put(a, "url.path", path)
    _put(a, "url.query", q.get("query"))
    _put(a, "url.scheme", q.get("scheme") or default_scheme)
    host = q.get("host") or q.get("authority")
    if isinstance(host, str) and host:
        a["server.address"] = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    _put(a, "user_agent.original", _first_header(q.get("headers"), "user-agent"))
    if rt.request is not None:
        _put(a, "http.request.body.size", q.get("body_bytes"))
    if rt.response is not None:
        code = s.get("status_code")
        if isinstance(code, int):
            a["http.response.status_code"] = code
            if code >= 500:  # semconv: a server span is an error from 500 on; error.type is the code
                a["error.type"] = str(code)
        _put(a, "http.response.body.size", s.get("body_bytes"))
    if rt.error and "error.type" not in a:  # a reset stream
        a["error.type"] = str(s.get("reset") or rt.status or "_OTHER")
    return a


def _http(rt: Roundtrip, rec: Record) -> tuple[str, dict[str, AttrValue]]:
    q, _ = _halves(rec)
    version = str(q.get("version") or "HTTP/1.1").removeprefix("HTTP/")
    # plaintext HTTP/1 is what the decoder reads (TLS is not decoded): "http" unless absolute-form says
    return rt.operation, _http_common(rt, rec, version, "http")


def _http2(rt: Roundtrip, rec: Record) -> tuple[str, dict[str, AttrValue]]:
    a = _http_common(rt, rec, "2", "http")
    q, s = _halves(rec)
    _put(a, "packetd.http2.stream_id", q.get("stream_id", s.get("stream_id")))
    return rt.operation, a


def _grpc(rt: Roundtrip, rec: Record) -> tuple[str, dict[str, AttrValue]]:
    q, s = _halves(rec)
    a: dict[str, AttrValue] = {
        "rpc.system": "grpc",
        "network.protocol.name": "http",
        "network.protocol.version": "2",
    }
    _put(a, "rpc.service", q.get("service"))
    _put(a, "rpc.method", q.get("method"))
    _put(a, "url.scheme", q.get("scheme"))
    _put(a, "user_agent.original", _first_header(q.get("metadata"), "user-agent"))
    code = s.get("grpc_status")
    if isinstance(code, int):
        a["rpc.grpc.status_code"] = code  # the older semconv, still what most back-ends read
        a["rpc.response.status_code"] = str(s.get("grpc_status_name") or code)  # the current one
        if rt.error:
            a["error.type"] = str(a["rpc.response.status_code"])
    for side, half in (("request", q), ("response", s)):
        _put(a, f"packetd.rpc.{side}.messages", half.get("messages"))
    _put(a, "packetd.http2.stream_id", q.get("stream_id", s.get("stream_id")))
    return rt.operation, a


def statement_operation(text: object) -> str | None:
    """The operation a statement performs: its first keyword, upper-cased (`select ...` → `SELECT`);
    a leading comment (sqlcommenter) or parenthesis is skipped; None when there is no keyword."""
    if not isinstance(text, str):
        return None
    t = text.lstrip(" \t\r\n(")
    while t.startswith("/*"):
        end = t.find("*/")
        if end < 0:
            return None
        t = t[end + 2 :].lstrip(" \t\r\n(")
    word = t.split(None, 1)[0] if t else ""
    word = word.rstrip(";(")
    return word.upper() if word.isalpha() else None


def _db(system: str) -> SpanBuilder:
    def build(rt: Roundtrip, rec: Record) -> tuple[str, dict[str, AttrValue]]:
        q, s = _halves(rec)
        a: dict[str, AttrValue] = {"db.system.name": system}
        text = q.get("statement") if system != "mongodb" else q.get("query")
        op: str | None = rt.operation
        if system in ("mysql", "postgresql"):
            # semconv db.operation.name: what the statement does (SELECT), not the wire message
            # (COM_QUERY, Execute); MySQL commands that are operations themselves (COM_PING) by their name;
            # unknown (an Execute of a statement prepared before the capture) is left unset
            op = statement_operation(text)
            if op is None and system == "mysql" and rt.operation.startswith("COM_"):
                cmd = rt.operation[4:]
                op = None if cmd in ("QUERY", "STMT_PREPARE", "STMT_EXECUTE") else cmd
        _put(a, "db.operation.name", op)
        _put(a, "packetd.db.message", q.get("command") if system == "mysql" else q.get("message"))
        _put(a, "db.query.text", text)
        _put(a, "db.namespace", q.get("database") or q.get("schema"))
        _put(a, "db.collection.name", q.get("collection"))
        if rt.response is not None:
            if rt.error:
                _put(a, "db.response.status_code", rt.status)
                a["error.type"] = str(rt.status)
            rows = s.get("rows")
            if isinstance(rows, int):
                a["db.response.returned_rows"] = rows
            affected = s.get("affected_rows")
            if isinstance(affected, int):
                a["packetd.db.response.affected_rows"] = affected
        # semconv span name: `{db.operation.name} {target}`, target the collection, else the namespace,
        # else the server's address:port
        target = a.get("db.collection.name") or a.get("db.namespace") or endpoint_text(rt.server)
        return (f"{op} {target}" if op else str(target)), a

    return build


# semconv messaging.operation.type by operation (only where the operation is plainly one of them)
KAFKA_OPERATION_TYPE = {"Produce": "send", "Fetch": "receive", "OffsetCommit": "settle"}
AMQP_OPERATION_TYPE = {
    "Basic.Publish": "send",
    "Basic.Get": "receive",
    "Basic.Deliver": "process",
    "Basic.Ack": "settle",
    "Basic.Nack": "settle",
    "Basic.Reject": "settle",
}


def _kafka(rt: Roundtrip, rec: Record) -> tuple[str, dict[str, AttrValue]]:
    q, _ = _halves(rec)
    a: dict[str, AttrValue] = {"messaging.system": "kafka", "messaging.operation.name": rt.operation}
    _put(a, "messaging.operation.type", KAFKA_OPERATION_TYPE.get(rt.operation))
    _put(a, "messaging.client.id", q.get("client_id"))
    _put(a, "messaging.consumer.group.name", q.get("group_id"))
    names = [t["name"] for t in q.get("topics") or () if isinstance(t, dict) and t.get("name")]
    if len(names) == 1:
        a["messaging.destination.name"] = names[0]
    elif names:
        a["packetd.kafka.topics"] = names
    _put(a, "packetd.kafka.api_version", q.get("api_version"))
    if rt.error:
        a["error.type"] = str(rt.status)
    return rt.operation, a


def _amqp(rt: Roundtrip, rec: Record) -> tuple[str, dict[str, AttrValue]]:
    q, s = _halves(rec)
    m = q or s
    a: dict[str, AttrValue] = {"messaging.system": "rabbitmq", "messaging.operation.name": rt.operation}
    _put(a, "messaging.operation.type", AMQP_OPERATION_TYPE.get(rt.operation))
    exchange, queue = m.get("exchange"), m.get("queue")
    _put(a, "messaging.destination.name", exchange or queue)
    _put(a, "messaging.rabbitmq.destination.routing_key", m.get("routing_key"))
    _put(a, "messaging.message.body.size", m.get("body_size"))
    _put(a, "messaging.destination.subscription.name", queue)
    if rt.error:
        a["error.type"] = str(rt.status)
    return rt.operation, a


def _dns(rt: Roundtrip, rec: Record) -> tuple[str, dict[str, AttrValue]]:
    q, s = _halves(rec)
    qs = (q or s).get("questions") or ()
    a: dict[str, AttrValue] = {"network.protocol.name": "dns"}
    if qs:
        _put(a, "dns.question.name", qs[0].get("name"))
    _put(a, "packetd.dns.question.type", rt.operation)  # not a semconv attribute: ours
    if rt.response is not None:
        a["packetd.dns.response_code"] = str(rt.status)
        if rt.error:
            a["error.type"] = str(rt.status)
    return rt.operation, a


SPAN_BUILDERS: dict[str, SpanBuilder] = {
    "http": _http,
    "http2": _http2,
    "grpc": _grpc,
    "redis": _db("redis"),
    "mysql": _db("mysql"),
    "postgresql": _db("postgresql"),
    "mongodb": _db("mongodb"),
    "kafka": _kafka,
    "amqp": _amqp,
    "dns": _dns,
}


def affected_rows(rt: Roundtrip) -> int | None:
    """Rows a write changed, as the server reported (MySQL OK packet; PostgreSQL's command tag)."""
    s: Any = rt.response
    if s is None:
        return None
    n = getattr(s, "affected_rows", None)
    if isinstance(n, int):
        return n
    if rt.protocol == "postgresql" and getattr(s, "command", None) in ("INSERT", "UPDATE", "DELETE", "MERGE"):
        rows = getattr(s, "rows", None)
        return rows if isinstance(rows, int) else None
    return None
