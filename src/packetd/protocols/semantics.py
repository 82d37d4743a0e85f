"""What a protocol's messages mean to metrics and traces: the shape every protocol package fills in.

Theory of operation. Each protocol package has a `semantics.py` that builds one `Semantics` value over its
own message classes (typed: `isinstance` on the package's classes, never `getattr` by a field name), and its
`SPEC` carries it. `pipeline/` keeps the generic parts (endpoints, kind, flags, operation, status, error)
and asks `spec.semantics` for the rest, so a field renamed in a messages module is a type error here, not a
label that silently turns into "".

A semantics function takes messages (the request and the response, either may be None), never a
`Roundtrip`: `protocols/` imports nothing above it (ARCHITECTURE.md). Span builders also get the record's
JSON — the redacted view (protocols/redact.py) — and read every value they put into an attribute from it,
so a span carries only what the JSON record carries; the typed messages decide which fields apply.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from packetd._values import value
from packetd.protocols.base import Message, endpoint_text

AttrValue = str | int | float | bool | list[str]
Attrs = dict[str, AttrValue]
Record = dict[str, Any]  # a roundtrip's `to_json()`: the redacted view
# a metric label's value from (request, response); None or "" is the empty label
LabelGetter = Callable[[Message | None, Message | None], object]
# (request, response, the record's JSON) → (span name, attributes)
SpanBuilder = Callable[[Message | None, Message | None, Record], tuple[str, Attrs]]

SERVER = ("server.address", "server.port")
# Every protocol's default label set has the same shape: the server, what was asked, `status` (the record's
# status: HTTP code, gRPC status name, "OK" or the error code) and `error` ("true"/"false", by the protocol's
# own rules: HTTP >= 500, gRPC not OK, Redis -ERR, SQLSTATE, RCODE, ...), so one query counts the errors of
# every protocol. The Go implementation's `status_code` (HTTP, HTTP/2: the HTTP code; gRPC: now the gRPC
# status) stays available as `response.status_code` in requireLabels (README: "Metric labels").
STATUS = ("response.status", "response.error")


def _none(_msg: Message) -> int | None:
    return None


def _size(msg: Message) -> int:
    return msg.size


def _no_key(_msg: Message | None) -> object:
    return ""


def _no_path(_msg: Message | None) -> str | None:
    return None


@value
class Semantics:
    """One protocol's meaning to metrics and traces (see the module docstring)."""

    # requireLabels key → (label name, getter)
    labels: Mapping[str, tuple[str, LabelGetter]]
    # the requireLabels used when none are configured (README: "Metric labels")
    default_labels: tuple[str, ...]
    # semconv span name and attributes; None: the generic span (operation, network.protocol.name)
    span: SpanBuilder | None = None
    # label names whose values are URL paths, templated by the metrics processor (`/users/{id}`)
    templated: frozenset[str] = frozenset()
    # a request's URL path without its query (metric labels, the watch summary); None when it has none
    path: Callable[[Message | None], str | None] = _no_path
    # the body size of a message for the body-bytes histograms (the message size where there is no body)
    body_bytes: Callable[[Message], int] = _size
    # rows a write changed, as the server reported
    affected_rows: Callable[[Message], int | None] = _none
    # rows returned, and the histogram they are observed into (reference §8.2 names; None: no such metric)
    rows: Callable[[Message], int | None] = _none
    rows_metric: str | None = None
    # what tells two exchanges with the same endpoints and times apart in the span id (HTTP/2 stream id)
    span_key: Callable[[Message | None], object] = _no_key


# what a protocol without semantics of its own gets (and what `pipeline/` uses for a name not registered)
GENERIC = Semantics(labels={}, default_labels=(*SERVER, "request.operation", *STATUS))


def put(attrs: Attrs, key: str, val: object) -> None:
    """Set an attribute when there is a value (None and "" are no value); other types as their text."""
    if val is None or val == "":
        return
    if isinstance(val, bool | int | float | str):
        attrs[key] = val
    else:
        attrs[key] = str(val)


def halves(rec: Record) -> tuple[Record, Record]:
    """The record's `request` and `response` objects ({} when absent)."""
    return rec.get("request") or {}, rec.get("response") or {}


def first_header(fields: object, name: str) -> str | None:
    """The first value of a header field in a record's `{name: [values]}` map."""
    if isinstance(fields, dict):
        vals = fields.get(name)
        if vals:
            return str(vals[0])
    return None


def error_type(a: Attrs, rec: Record) -> None:
    """semconv `error.type`: the record's status when the record is an error."""
    if rec["error"]:
        a["error.type"] = str(rec["status"])


def endpoint_of(rec: Record, side: str) -> str:
    """`addr:port` of the record's `client` or `server`, the address in brackets when it is IPv6."""
    ep = rec[side]
    return endpoint_text((ep["ip"], ep["port"]))


def operation_of(q: Message | None, s: Message | None) -> str:
    """The record's `operation`: what the request asked (the response's, when there is no request)."""
    msg = q if q is not None else s
    return msg.operation() if msg is not None else ""


def status_of(_q: Message | None, s: Message | None) -> str | None:
    """The record's `status` (None without a response)."""
    return s.status() if s is not None else None


def db_span(rec: Record, system: str, op: str | None, text: object, message: object) -> tuple[str, Attrs]:
    """A database span (Redis, MySQL, PostgreSQL, MongoDB) from the record's redacted JSON: `op` is the
    semconv db.operation.name, `text` the query text, `message` the wire message (`packetd.db.message`)."""
    q, s = halves(rec)
    a: Attrs = {"db.system.name": system}
    put(a, "db.operation.name", op)
    put(a, "packetd.db.message", message)
    put(a, "db.query.text", text)
    put(a, "db.namespace", q.get("database") or q.get("schema"))
    put(a, "db.collection.name", q.get("collection"))
    if rec["response"] is not None:
        if rec["error"]:
            put(a, "db.response.status_code", rec["status"])
            a["error.type"] = str(rec["status"])
        rows = s.get("rows")
        if isinstance(rows, int):
            a["db.response.returned_rows"] = rows
        affected = s.get("affected_rows")
        if isinstance(affected, int):
            a["packetd.db.response.affected_rows"] = affected
    # semconv span name: `{db.operation.name} {target}`, target the collection, else the namespace, else the
    # server's address:port
    target = a.get("db.collection.name") or a.get("db.namespace") or endpoint_of(rec, "server")
    return (f"{op} {target}" if op else str(target)), a


__all__ = [
    "GENERIC",
    "SERVER",
    "STATUS",
    "AttrValue",
    "Attrs",
    "LabelGetter",
    "Record",
    "Semantics",
    "SpanBuilder",
    "db_span",
    "endpoint_of",
    "error_type",
    "first_header",
    "halves",
    "operation_of",
    "put",
    "status_of",
]
