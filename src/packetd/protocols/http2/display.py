"""How HTTP/2 and gRPC records read in `watch`'s text line (see protocols/display.py).

HTTP/2: method, `:authority` when it is not just the server's address, and the (redacted) `:path`; the
status as HTTP/1's. gRPC: `pkg.Service/Method` and how many messages went each way (`1→5 msgs`: a
server stream); the status is already the gRPC status name (`NOT_FOUND`).
"""

from __future__ import annotations

from packetd.protocols.display import Display, Record, join, other_host, response
from packetd.protocols.http1.display import status as http_status


def what(rec: Record) -> str:
    req = rec.get("request") or {}
    host = other_host(req.get("authority"), rec)
    path = req.get("path") or ""
    return join(rec.get("operation"), path, f"({host})" if host else "")


def grpc_what(rec: Record) -> str:
    req = rec.get("request") or {}
    resp = response(rec)
    sent, got = req.get("messages"), resp.get("messages")
    counts = f"{sent if sent is not None else '-'}→{got if got is not None else '-'} msgs"
    return join(rec.get("operation"), counts if req or resp else "")


DISPLAY = Display(what=what, status=http_status)
GRPC_DISPLAY = Display(what=grpc_what)
