"""What each protocol's roundtrips mean to metrics and traces: label getters and span attributes.

Metric labels keep the Go implementation's `requireLabels` names (reference §8.2) with its bugs fixed
(§18.21): MongoDB's command is the `command` label (not `service`), gRPC's `status_code` is the gRPC status
(not the HTTP one), AMQP's `queue_name` of a method without a queue is "" (not a crash). Each protocol also
has documented default labels, used when its `requireLabels` are not configured.

Span attributes follow the OpenTelemetry semantic conventions — HTTP, RPC (gRPC), database (Redis,
MySQL, PostgreSQL, MongoDB), messaging (Kafka, AMQP) and DNS — as far as the wire shows them. Statement
text in `db.query.text` is what the decoders record: literals already replaced by `?` unless configured.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from packetd.pairing.roundtrip import Roundtrip

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


def _dns_question(rt: Roundtrip) -> object:
    msg = rt.request if rt.request is not None else rt.response
    qs = getattr(msg, "questions", ())
    return qs[0][0] if qs else ""  # (name, type, class)


# protocol → requireLabels key → (label name, getter). `path` getters are templated by the processor.
PROTOCOL_LABELS: dict[str, dict[str, tuple[str, Getter]]] = {
    "http": {
        "request.method": ("method", req("method")),
        "request.path": ("path", req("path")),
        "request.remote_host": ("remote_host", req("host")),
        "response.status_code": ("status_code", resp("status_code")),
    },
    "http2": {
        "request.method": ("method", req("method")),
        "request.path": ("path", req("path")),
        "request.authority": ("authority", req("authority")),
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
def _put(attrs: dict[str, AttrValue], key: str, value: object) -> None:
    if value is None or value == "":
        return
    if isinstance(value, bool | int | float | str):
        attrs[key] = value
    elif isinstance(value, bytes):
        attrs[key] = value.decode("utf-8", "replace")
    else:
        attrs[key] = str(value)


def _http_common(rt: Roundtrip, version: str) -> dict[str, AttrValue]:
    r, s = rt.request, rt.response
    a: dict[str, AttrValue] = {"network.protocol.name": "http", "network.protocol.version": version}
    _put(a, "http.request.method", getattr(r, "method", None))
    path = getattr(r, "path", None)
    _put(a, "url.path", path)
    target = getattr(r, "target", None)
    if isinstance(target, str) and "?" in target:
        a["url.query"] = target.split("?", 1)[1]
    host = getattr(r, "host", None) or getattr(r, "authority", None)
    if isinstance(host, str) and host:
        a["server.address"] = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if r is not None:
        a["http.request.body.size"] = int(getattr(r, "body_bytes", r.size))
    if s is not None:
        code = getattr(s, "status_code", None)
        if code is not None:
            a["http.response.status_code"] = int(code)
        a["http.response.body.size"] = int(getattr(s, "body_bytes", s.size))
    return a


def _http(rt: Roundtrip) -> tuple[str, dict[str, AttrValue]]:
    version = str(getattr(rt.request, "version", "HTTP/1.1")).removeprefix("HTTP/")
    return rt.operation, _http_common(rt, version)


def _http2(rt: Roundtrip) -> tuple[str, dict[str, AttrValue]]:
    a = _http_common(rt, "2")
    _put(a, "http2.stream_id", getattr(rt.request or rt.response, "stream_id", None))
    return rt.operation, a


def _grpc(rt: Roundtrip) -> tuple[str, dict[str, AttrValue]]:
    a: dict[str, AttrValue] = {
        "rpc.system": "grpc",
        "network.protocol.name": "http",
        "network.protocol.version": "2",
    }
    _put(a, "rpc.service", _grpc_service(rt))
    _put(a, "rpc.method", _grpc_method(rt))
    code = getattr(rt.response, "grpc_status", None) if rt.response is not None else None
    if isinstance(code, int):
        a["rpc.grpc.status_code"] = code
    for side, msg in (("request", rt.request), ("response", rt.response)):
        if msg is not None:
            _put(a, f"rpc.{side}.messages", getattr(msg, "messages", None))
    return rt.operation, a


def _db(system: str) -> Callable[[Roundtrip], tuple[str, dict[str, AttrValue]]]:
    def build(rt: Roundtrip) -> tuple[str, dict[str, AttrValue]]:
        r, s = rt.request, rt.response
        a: dict[str, AttrValue] = {"db.system.name": system}
        op = rt.operation
        _put(a, "db.operation.name", op)
        _put(a, "db.query.text", getattr(r, "statement", None))
        _put(a, "db.namespace", getattr(r, "database", None) or getattr(r, "schema", None))
        _put(a, "db.collection.name", getattr(r, "collection", None))
        if s is not None:
            if rt.error:
                _put(a, "db.response.status_code", rt.status)
                a["error.type"] = str(rt.status)
            rows = getattr(s, "rows", None)
            if isinstance(rows, int):
                a["db.response.returned_rows"] = rows
            affected = getattr(s, "affected_rows", None)
            if isinstance(affected, int):
                a["db.response.affected_rows"] = affected
        return op, a

    return build


def _kafka(rt: Roundtrip) -> tuple[str, dict[str, AttrValue]]:
    r = rt.request
    a: dict[str, AttrValue] = {"messaging.system": "kafka", "messaging.operation.name": rt.operation}
    _put(a, "messaging.client.id", getattr(r, "client_id", None))
    _put(a, "messaging.consumer.group.name", getattr(r, "group_id", None))
    topics = getattr(r, "topics", ()) or ()
    names = [t.name for t in topics if getattr(t, "name", None)]
    if len(names) == 1:
        a["messaging.destination.name"] = names[0]
    elif names:
        a["packetd.kafka.topics"] = names
    _put(a, "packetd.kafka.api_version", getattr(r, "api_version", None))
    if rt.error:
        a["error.type"] = str(rt.status)
    return rt.operation, a


def _amqp(rt: Roundtrip) -> tuple[str, dict[str, AttrValue]]:
    a: dict[str, AttrValue] = {"messaging.system": "rabbitmq", "messaging.operation.name": rt.operation}
    exchange = _amqp_arg("exchange")(rt)
    routing = _amqp_arg("routing_key")(rt)
    queue = _amqp_arg("queue")(rt)
    _put(a, "messaging.destination.name", exchange or queue)
    _put(a, "messaging.rabbitmq.destination.routing_key", routing)
    msg = rt.request if rt.request is not None else rt.response
    content = getattr(msg, "content", None)
    if content is not None:
        a["messaging.message.body.size"] = int(content.body_size)
    _put(a, "messaging.destination.subscription.name", queue)
    if rt.error:
        a["error.type"] = str(rt.status)
    return rt.operation, a


def _dns(rt: Roundtrip) -> tuple[str, dict[str, AttrValue]]:
    a: dict[str, AttrValue] = {"network.protocol.name": "dns"}
    _put(a, "dns.question.name", _dns_question(rt))
    _put(a, "dns.question.type", rt.operation)
    if rt.response is not None:
        a["dns.response_code"] = str(rt.status)
        if rt.error:
            a["error.type"] = str(rt.status)
    return rt.operation, a


SPAN_BUILDERS: dict[str, Callable[[Roundtrip], tuple[str, dict[str, AttrValue]]]] = {
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
