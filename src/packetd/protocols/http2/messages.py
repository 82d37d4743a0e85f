"""HTTP/2 and gRPC request/response messages, and their record fields.

One HTTP/2 stream is one exchange: its request (the client's header block, DATA and trailers) and its
response (the server's). A stream whose `content-type` starts with `application/grpc` becomes a gRPC record
(`GrpcRequest`/`GrpcResponse`), any other an HTTP/2 record: the message class fixes the record's protocol
(`Message.PROTOCOL`), whichever rule matched the connection.

Header fields stay raw `(name, value)` byte pairs, pseudo-header fields apart; the record's `headers` /
`metadata` objects are built only when a record is serialised. Values are redacted then, by name (the
decoder's `redact` option, as in HTTP/1) and when the sender marked them never-indexed (RFC 7541 §7.1.3:
that is how an HPACK encoder says a value is sensitive).
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import unquote

from packetd._values import value
from packetd.protocols import redact as policy
from packetd.protocols.base import Flag, Message, Role, TraceContext
from packetd.protocols.http1.messages import DEFAULT_QUERY_REDACTED, DEFAULT_REDACTED
from packetd.protocols.http2.fields import (
    GRPC_STATUS,
    Fields,
    error_code,
    field_map,
    field_value,
    grpc_status_from_http,
    grpc_status_from_reset,
    parse_grpc_timeout,
    split_grpc_path,
)


def _text(raw: bytes | None) -> str | None:
    return raw.decode("utf-8", "replace") if raw is not None else None


@value
class Http2Request(Message):
    """The client's half of one stream: header block, body, trailers (or a PUSH_PROMISE's request)."""

    ROLE: ClassVar[Role] = Role.REQUEST
    PROTOCOL: ClassVar[str] = "http2"
    stream_id: int
    method: str
    scheme: str | None
    authority: str | None
    path: str | None
    headers: Fields  # regular fields, in order
    trailers: Fields | None
    header_bytes: int  # HPACK-encoded header block(s), frame headers excluded
    body_bytes: int  # DATA payload, padding excluded
    reset: int | None  # RST_STREAM error code that ended the stream
    reset_by: str | None  # "client" | "server"
    goaway: int | None  # GOAWAY error code when the connection's GOAWAY ended this stream unanswered
    pushed: bool  # promised by the server (PUSH_PROMISE), not sent by the client
    trace: TraceContext | None
    # gRPC length-prefixed messages (counted only on gRPC streams)
    messages: int
    message_bytes: int
    compressed: int
    redact: frozenset[str] = DEFAULT_REDACTED
    sensitive: frozenset[bytes] = frozenset()
    redact_query: frozenset[str] = DEFAULT_QUERY_REDACTED

    @property
    def pair_key(self) -> int:
        return self.stream_id

    @property
    def target(self) -> str | None:
        """What a person reads after the method (the text output): the :path."""
        return self.path

    def operation(self) -> str:
        return self.method

    def trace_context(self) -> TraceContext | None:
        return self.trace

    def to_json(self) -> dict[str, Any]:
        trailers = self.trailers
        return {
            "stream_id": self.stream_id,
            "method": self.method,
            "scheme": self.scheme,
            "authority": policy.userinfo(self.authority),
            "path": policy.target(self.path, self.redact_query),
            "headers": field_map(self.headers, self.redact, self.sensitive),
            "trailers": field_map(trailers, self.redact, self.sensitive) if trailers is not None else None,
            "header_bytes": self.header_bytes,
            "body_bytes": self.body_bytes,
            "size": self.size,
            "pushed": self.pushed,
            "reset": error_code(self.reset),
            "reset_by": self.reset_by,
            "goaway": error_code(self.goaway),
        }


@value
class Http2Response(Message):
    """The server's half of one stream: final header block (1xx folded into `interim`), body, trailers."""

    ROLE: ClassVar[Role] = Role.RESPONSE
    PROTOCOL: ClassVar[str] = "http2"
    stream_id: int
    status_code: int | None  # None: the header block could not be read (joined mid-connection)
    headers: Fields
    trailers: Fields | None
    interim: tuple[int, ...]
    header_bytes: int
    body_bytes: int
    reset: int | None
    reset_by: str | None
    messages: int
    message_bytes: int
    compressed: int
    redact: frozenset[str] = DEFAULT_REDACTED
    sensitive: frozenset[bytes] = frozenset()

    @property
    def pair_key(self) -> int:
        return self.stream_id

    def status(self) -> str:
        return str(self.status_code) if self.status_code is not None else ""  # unreadable (joined late)

    def is_error(self) -> bool:
        if self.status_code is not None and self.status_code >= 500:
            return True
        return self.reset is not None and self.reset != 0

    def to_json(self) -> dict[str, Any]:
        trailers = self.trailers
        out: dict[str, Any] = {
            "stream_id": self.stream_id,
            "status_code": self.status_code,
            "headers": field_map(self.headers, self.redact, self.sensitive),
            "trailers": field_map(trailers, self.redact, self.sensitive) if trailers is not None else None,
            "header_bytes": self.header_bytes,
            "body_bytes": self.body_bytes,
            "size": self.size,
            "reset": error_code(self.reset),
            "reset_by": self.reset_by,
        }
        if self.interim:
            out["interim"] = list(self.interim)
        return out


_UNSURE = Flag.MIDSTREAM | Flag.GAP | Flag.TRUNCATED


@value
class GrpcRequest(Http2Request):
    """A gRPC call's request half (content-type application/grpc)."""

    PROTOCOL: ClassVar[str] = "grpc"

    @property
    def target(self) -> str | None:
        return None  # the operation already names the service and method

    def operation(self) -> str:
        service, method = split_grpc_path(self.path)
        return f"{service}/{method}" if method else service

    def to_json(self) -> dict[str, Any]:
        service, method = split_grpc_path(self.path)
        timeout = _text(field_value(self.headers, b"grpc-timeout"))
        return {
            "stream_id": self.stream_id,
            "service": service,
            "method": method,
            "path": policy.target(self.path, self.redact_query),
            "authority": policy.userinfo(self.authority),
            "scheme": self.scheme,
            "http_method": self.method,
            "metadata": field_map(self.headers, self.redact, self.sensitive),
            "timeout_ns": parse_grpc_timeout(timeout),
            "encoding": _text(field_value(self.headers, b"grpc-encoding")),
            "messages": self.messages,
            "message_bytes": self.message_bytes,
            "compressed_messages": self.compressed,
            "header_bytes": self.header_bytes,
            "body_bytes": self.body_bytes,
            "size": self.size,
            "reset": error_code(self.reset),
            "reset_by": self.reset_by,
            "goaway": error_code(self.goaway),
        }


@value
class GrpcResponse(Http2Response):
    """A gRPC call's response half: status from the trailers, or from a trailers-only response."""

    PROTOCOL: ClassVar[str] = "grpc"

    @property
    def trailers_only(self) -> bool:
        """Status in the only header block (RFC: Trailers-Only, used for immediate errors)."""
        return self.trailers is None and field_value(self.headers, b"grpc-status") is not None

    def grpc_status(self) -> int | None:
        """The call's status as its client learns it; None when the capture cannot tell.

        From grpc-status in the trailers or a Trailers-Only block; else from an RST_STREAM that cut the
        response, or from the HTTP status (grpc/doc/http-grpc-status-mapping.md). When the response is
        flagged `midstream` (a header block referred to HPACK entries the capture never saw), `gap` or
        `truncated` (its trailers may be what was lost), a missing grpc-status is unknown to us: None, not
        gRPC's UNKNOWN, which would be a claim about the call.
        """
        raw = field_value(self.trailers, b"grpc-status")
        if raw is None:
            raw = field_value(self.headers, b"grpc-status")  # Trailers-Only
        if raw is not None and raw.isdigit() and len(raw) < 10:
            return int(raw)
        if self.reset is not None and self.status_code is not None and self.trailers is None:
            return grpc_status_from_reset(self.reset)
        if raw is None and (self.status_code is None or self.flags & _UNSURE):
            return None
        return grpc_status_from_http(self.status_code)

    def status(self) -> str:
        code = self.grpc_status()
        if code is None:
            return ""  # the response came; its status could not be read
        return GRPC_STATUS[code] if 0 <= code < len(GRPC_STATUS) else str(code)

    def is_error(self) -> bool:
        code = self.grpc_status()
        return code is not None and code != 0

    def grpc_message(self) -> str | None:
        raw = field_value(self.trailers, b"grpc-message")
        if raw is None:
            raw = field_value(self.headers, b"grpc-message")
        if raw is None:
            return None
        return unquote(raw.decode("latin-1"), errors="replace")

    def to_json(self) -> dict[str, Any]:
        code = self.grpc_status()
        trailers = self.trailers
        return {
            "stream_id": self.stream_id,
            "http_status": self.status_code,
            "grpc_status": code,
            "grpc_status_name": GRPC_STATUS[code]
            if code is not None and 0 <= code < len(GRPC_STATUS)
            else None,
            "grpc_message": policy.server_message(self.grpc_message()),
            "trailers_only": self.trailers_only,
            "metadata": field_map(self.headers, self.redact, self.sensitive),
            "trailers": field_map(trailers, self.redact, self.sensitive) if trailers is not None else None,
            "encoding": _text(field_value(self.headers, b"grpc-encoding")),
            "messages": self.messages,
            "message_bytes": self.message_bytes,
            "compressed_messages": self.compressed,
            "header_bytes": self.header_bytes,
            "body_bytes": self.body_bytes,
            "size": self.size,
            "reset": error_code(self.reset),
            "reset_by": self.reset_by,
        }
