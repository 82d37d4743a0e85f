"""HTTP/1.x request and response messages, and their record fields.

Headers are kept as the raw header block (`b"\\r\\nName: value\\r\\n...\\r\\n"`) and parsed into the
record's `headers` object only when a record is serialised: framing needs five headers, found with
`bytes.find` on the lower-cased block; everything else is paid for only by records someone reads.
"""

from __future__ import annotations

from typing import Any, ClassVar

from packetd._values import value
from packetd.protocols import redact as policy
from packetd.protocols.base import Message, Role, TraceContext
from packetd.protocols.http1.headers import parse_header_block, split_target

# header names and query parameters whose values are replaced (the decision: protocols/redact.py)
DEFAULT_REDACTED = policy.DEFAULT_HEADERS
DEFAULT_QUERY_REDACTED = policy.DEFAULT_QUERY
REDACTED = policy.REDACTED


@value
class Request(Message):
    """One HTTP/1.x request: request line, header block, framed body."""

    ROLE: ClassVar[Role] = Role.REQUEST
    method: str
    target: str
    version: str
    host: str | None
    header_block: bytes
    header_bytes: int
    body_bytes: int
    chunked: bool
    close: bool
    trace: TraceContext | None = None
    body: bytes | None = None
    redact: frozenset[str] = DEFAULT_REDACTED
    redact_query: frozenset[str] = DEFAULT_QUERY_REDACTED

    def operation(self) -> str:
        return self.method

    def trace_context(self) -> TraceContext | None:
        return self.trace

    @property
    def path(self) -> str:
        return split_target(self.target)[2]

    def to_json(self) -> dict[str, Any]:
        scheme, authority, path, query = split_target(self.target)
        params = self.redact_query
        headers = parse_header_block(self.header_block, self.redact)
        out: dict[str, Any] = {
            "method": self.method,
            "target": policy.target(self.target, params),
            "path": path,
            "query": policy.query(query, params) if query else query,
            "scheme": scheme,
            "host": policy.userinfo(self.host if self.host is not None else authority),
            "version": self.version,
            "headers": headers,
            "header_bytes": self.header_bytes,
            "body_bytes": self.body_bytes,
            "size": self.size,
            "chunked": self.chunked,
            "close": self.close,
        }
        if self.body is not None:
            ctype = headers.get("content-type")
            text = self.body.decode("utf-8", "replace")
            out["body"] = policy.body(text, ctype[0] if ctype else None, params)
        return out


@value
class Response(Message):
    """One HTTP/1.x final response (1xx interim responses are folded into `interim`)."""

    ROLE: ClassVar[Role] = Role.RESPONSE
    status_code: int
    reason: str
    version: str
    header_block: bytes
    header_bytes: int
    body_bytes: int
    chunked: bool
    close: bool
    interim: tuple[int, ...] = ()
    body: bytes | None = None
    redact: frozenset[str] = DEFAULT_REDACTED
    redact_query: frozenset[str] = DEFAULT_QUERY_REDACTED  # for a captured body (an OAuth token answer)

    def status(self) -> str:
        return str(self.status_code)

    def is_error(self) -> bool:
        return self.status_code >= 500

    def to_json(self) -> dict[str, Any]:
        headers = parse_header_block(self.header_block, self.redact)
        out: dict[str, Any] = {
            "status_code": self.status_code,
            "reason": self.reason,
            "version": self.version,
            "headers": headers,
            "header_bytes": self.header_bytes,
            "body_bytes": self.body_bytes,
            "size": self.size,
            "chunked": self.chunked,
            "close": self.close,
        }
        if self.interim:
            out["interim"] = list(self.interim)
        if self.body is not None:
            ctype = headers.get("content-type")
            text = self.body.decode("utf-8", "replace")
            out["body"] = policy.body(text, ctype[0] if ctype else None, self.redact_query)
        return out
