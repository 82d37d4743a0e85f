"""What HTTP/2 and gRPC exchanges mean to metrics and traces (protocols/semantics.py says how this is used).

An `h2c` upgrade's first exchange pairs the HTTP/1.1 request that asked for it with the HTTP/2 response on
stream 1, so the HTTP/2 getters read HTTP/1 requests too. gRPC's `status_code` label is the gRPC status
name (the Go implementation used the HTTP one, reference §18.21); span attributes follow the semconv HTTP
and RPC conventions.
"""

from __future__ import annotations

from packetd.protocols.base import Message
from packetd.protocols.http1.messages import Request as Http1Request
from packetd.protocols.http1.messages import Response as Http1Response
from packetd.protocols.http1.semantics import authority, http_attributes, url_path
from packetd.protocols.http2.messages import Http2Request, Http2Response
from packetd.protocols.semantics import (
    SERVER,
    STATUS,
    Attrs,
    LabelGetter,
    Record,
    Semantics,
    first_header,
    halves,
    operation_of,
    put,
    status_of,
)


def _path(q: Message | None) -> str | None:
    return url_path(q.path) if isinstance(q, Http2Request | Http1Request) else None


def _method(q: Message | None, _s: Message | None) -> object:
    return q.method if isinstance(q, Http2Request | Http1Request) else None


def _authority(q: Message | None, _s: Message | None) -> object:
    return authority(q.authority) if isinstance(q, Http2Request) else None


def _status_code(_q: Message | None, s: Message | None) -> object:
    return s.status_code if isinstance(s, Http2Response | Http1Response) else None


def _body_bytes(m: Message) -> int:
    return (
        m.body_bytes if isinstance(m, Http2Request | Http2Response | Http1Request | Http1Response) else m.size
    )


def _stream(msg: Message | None) -> object:
    """The stream id: two exchanges of one connection may share endpoints and times."""
    return msg.pair_key if isinstance(msg, Http2Request | Http2Response) else ""


def _grpc_service(q: Message | None, s: Message | None) -> object:
    op = operation_of(q, s)
    return op.rsplit("/", 1)[0] if "/" in op else op


def _grpc_method(q: Message | None, s: Message | None) -> object:
    op = operation_of(q, s)
    return op.rsplit("/", 1)[1] if "/" in op else ""


def _http2_span(q: Message | None, s: Message | None, rec: Record) -> tuple[str, Attrs]:
    a = http_attributes(s is not None, rec, "2", "http")
    qj, sj = halves(rec)
    put(a, "packetd.http2.stream_id", qj.get("stream_id", sj.get("stream_id")))
    return rec["operation"], a


def _grpc_span(_q: Message | None, _s: Message | None, rec: Record) -> tuple[str, Attrs]:
    q, s = halves(rec)
    a: Attrs = {"rpc.system": "grpc", "network.protocol.name": "http", "network.protocol.version": "2"}
    put(a, "rpc.service", q.get("service"))
    put(a, "rpc.method", q.get("method"))
    put(a, "url.scheme", q.get("scheme"))
    put(a, "user_agent.original", first_header(q.get("metadata"), "user-agent"))
    code = s.get("grpc_status")
    if isinstance(code, int):
        a["rpc.grpc.status_code"] = code  # the older semconv, still what most back-ends read
        a["rpc.response.status_code"] = str(s.get("grpc_status_name") or code)  # the current one
        if rec["error"]:
            a["error.type"] = str(a["rpc.response.status_code"])
    for side, half in (("request", q), ("response", s)):
        put(a, f"packetd.rpc.{side}.messages", half.get("messages"))
    put(a, "packetd.http2.stream_id", q.get("stream_id", s.get("stream_id")))
    return rec["operation"], a


HTTP2_LABELS: dict[str, tuple[str, LabelGetter]] = {
    "request.method": ("method", _method),
    "request.path": ("path", lambda q, _s: _path(q)),
    "request.authority": ("authority", _authority),
    "response.status_code": ("status_code", _status_code),
}
GRPC_LABELS: dict[str, tuple[str, LabelGetter]] = {
    "request.service": ("service", _grpc_service),
    "request.method": ("method", _grpc_method),
    "response.status_code": ("status_code", status_of),  # the gRPC status name (the reference used HTTP's)
}

HTTP2_SEMANTICS = Semantics(
    labels=HTTP2_LABELS,
    default_labels=(*SERVER, "request.method", "request.path", *STATUS),
    span=_http2_span,
    templated=frozenset({"path"}),
    path=_path,
    body_bytes=_body_bytes,
    span_key=_stream,
)
GRPC_SEMANTICS = Semantics(
    labels=GRPC_LABELS,
    default_labels=(*SERVER, "request.service", "request.method", *STATUS),
    span=_grpc_span,
    path=_path,
    body_bytes=_body_bytes,
    span_key=_stream,
)

__all__ = ["GRPC_SEMANTICS", "HTTP2_SEMANTICS"]
