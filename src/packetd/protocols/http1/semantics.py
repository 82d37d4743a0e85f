"""What HTTP/1 exchanges mean to metrics and traces (protocols/semantics.py says how this is used).

Metric labels keep the Go implementation's `requireLabels` names (reference §8.2); span attributes follow
the OpenTelemetry HTTP semantic conventions as far as the wire shows them. `http_attributes` is shared with
HTTP/2 (protocols/http2/semantics.py): the two differ only in the version and the stream id.
"""

from __future__ import annotations

from packetd.protocols import redact as policy
from packetd.protocols.base import Message
from packetd.protocols.http1.messages import Request, Response
from packetd.protocols.semantics import (
    SERVER,
    STATUS,
    Attrs,
    LabelGetter,
    Record,
    Semantics,
    first_header,
    halves,
    put,
)


def url_path(path: str | None) -> str | None:
    """A request path without its query (an HTTP/2 `:path` carries one; HTTP/1's `path` has none): a query
    is neither a series nor safe to show (metric labels, the watch summary)."""
    return path.split("?", 1)[0] if isinstance(path, str) else path


def authority(value: str | None) -> str | None:
    """A Host / :authority without credentials (`user:pw@host` → `[REDACTED]@host`), as the record shows it."""
    return policy.userinfo(value) if isinstance(value, str) else value


def _path(q: Message | None) -> str | None:
    return url_path(q.path) if isinstance(q, Request) else None


def _method(q: Message | None, _s: Message | None) -> object:
    return q.method if isinstance(q, Request) else None


def _remote_host(q: Message | None, _s: Message | None) -> object:
    return authority(q.host) if isinstance(q, Request) else None


def _status_code(_q: Message | None, s: Message | None) -> object:
    return s.status_code if isinstance(s, Response) else None


def _body_bytes(m: Message) -> int:
    return m.body_bytes if isinstance(m, Request | Response) else m.size


def http_attributes(answered: bool, rec: Record, version: str, default_scheme: str) -> Attrs:
    """The semconv HTTP attributes of a record (HTTP/1 and HTTP/2), from its redacted JSON."""
    q, s = halves(rec)
    a: Attrs = {"network.protocol.name": "http", "network.protocol.version": version}
    put(a, "http.request.method", q.get("method"))
    path = q.get("path")
    if isinstance(path, str) and "?" in path:  # an HTTP/2 :path carries its query
        path, query = path.split("?", 1)
        put(a, "url.query", query)
    put(a, "url.path", path)
    put(a, "url.query", q.get("query"))
    put(a, "url.scheme", q.get("scheme") or default_scheme)
    host = q.get("host") or q.get("authority")
    if isinstance(host, str) and host:
        a["server.address"] = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    put(a, "user_agent.original", first_header(q.get("headers"), "user-agent"))
    if rec["request"] is not None:
        put(a, "http.request.body.size", q.get("body_bytes"))
    if answered:
        code = s.get("status_code")
        if isinstance(code, int):
            a["http.response.status_code"] = code
            if code >= 500:  # semconv: a server span is an error from 500 on; error.type is the code
                a["error.type"] = str(code)
        put(a, "http.response.body.size", s.get("body_bytes"))
    if rec["error"] and "error.type" not in a:  # a reset stream
        a["error.type"] = str(s.get("reset") or rec["status"] or "_OTHER")
    return a


def _span(_q: Message | None, s: Message | None, rec: Record) -> tuple[str, Attrs]:
    q, _ = halves(rec)
    version = str(q.get("version") or "HTTP/1.1").removeprefix("HTTP/")
    # plaintext HTTP/1 is what the decoder reads (TLS is not decoded): "http" unless absolute-form says
    return rec["operation"], http_attributes(s is not None, rec, version, "http")


LABELS: dict[str, tuple[str, LabelGetter]] = {
    "request.method": ("method", _method),
    "request.path": ("path", lambda q, _s: _path(q)),
    "request.remote_host": ("remote_host", _remote_host),
    "response.status_code": ("status_code", _status_code),
}

SEMANTICS = Semantics(
    labels=LABELS,
    default_labels=(*SERVER, "request.method", "request.path", *STATUS),
    span=_span,
    templated=frozenset({"path"}),
    path=_path,
    body_bytes=_body_bytes,
)

__all__ = ["SEMANTICS", "authority", "http_attributes", "url_path"]
