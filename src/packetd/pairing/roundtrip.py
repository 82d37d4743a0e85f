"""The roundtrip record: the public contract of `watch`, the roundtrip file and `/watch` (ARCHITECTURE.md).

`Roundtrip` holds the messages themselves; `to_json()` derives the contract's envelope (operation, status,
error, times, flags) from them only when a record is serialised.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from packetd._values import value
from packetd.protocols.base import Flag, Kind, Message, TraceContext, flag_names

Endpoint = tuple[str, int]


@value
class Roundtrip:
    """A request and its response (or one of them alone, by `kind`) on one connection."""

    protocol: str
    kind: str
    client: Endpoint
    server: Endpoint
    request: Message | None
    response: Message | None
    flags: int = 0
    # the record's ordinal on its connection (1, 2, ...; 0: not known): four pipelined commands answered in
    # one segment share endpoints and times, and only this tells their span ids apart (pipeline/spans.py)
    seq: int = 0

    @property
    def start_ns(self) -> int:
        first = self.request if self.request is not None else self.response
        assert first is not None
        return first.start_ns

    @property
    def end_ns(self) -> int:
        last = self.response if self.response is not None else self.request
        assert last is not None
        return last.end_ns

    @property
    def duration_ns(self) -> int | None:
        if self.request is None or self.response is None:
            return None
        return self.response.end_ns - self.request.start_ns

    @property
    def operation(self) -> str:
        msg = self.request if self.request is not None else self.response
        assert msg is not None
        return msg.operation()

    @property
    def status(self) -> str | None:
        return self.response.status() if self.response is not None else None

    @property
    def error(self) -> bool:
        return self.response.is_error() if self.response is not None else False

    @property
    def trace(self) -> TraceContext | None:
        if self.request is not None:
            ctx = self.request.trace_context()
            if ctx is not None:
                return ctx
        return self.response.trace_context() if self.response is not None else None

    @property
    def all_flags(self) -> int:
        flags = self.flags
        if self.request is not None:
            flags |= self.request.flags
        if self.response is not None:
            flags |= self.response.flags
        return flags

    def to_json(self) -> dict[str, Any]:
        """The record contract's JSON object."""
        req, resp = self.request, self.response
        trace = self.trace
        return {
            "protocol": self.protocol,
            "kind": self.kind,
            "client": {"ip": self.client[0], "port": self.client[1]},
            "server": {"ip": self.server[0], "port": self.server[1]},
            "operation": self.operation,
            "status": self.status,
            "error": self.error,
            "start_time": rfc3339_ns(self.start_ns),
            "end_time": rfc3339_ns(self.end_ns),
            "duration_ns": self.duration_ns,
            "request": req.to_json() if req is not None else None,
            "response": resp.to_json() if resp is not None else None,
            "trace": trace.to_json() if trace is not None else None,
            "flags": flag_names(self.all_flags),
        }


_last_sec = -1
_last_prefix = ""


def dumps(rt: Roundtrip, rec: dict[str, Any] | None = None) -> bytes:
    """One record as a JSON line, newline included (the record contract; watch, the agent's roundtrip
    exporters and /watch all write this); `rec`: its `to_json()` when the caller already built it."""
    return orjson.dumps(rec if rec is not None else rt.to_json(), option=orjson.OPT_APPEND_NEWLINE)


def endpoint_text(ep: Endpoint) -> str:
    """`addr:port`, the address in brackets when it is IPv6 (`[::1]:80`)."""
    addr, port = ep
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def rfc3339_ns(ts_ns: int) -> str:
    """RFC 3339 UTC with nanoseconds: 2024-05-01T12:00:00.123456789Z (the per-second prefix is cached)."""
    global _last_sec, _last_prefix
    sec, ns = divmod(ts_ns, 1_000_000_000)
    if sec != _last_sec:
        _last_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        _last_sec = sec
    return f"{_last_prefix}.{ns:09d}Z"


def has_flag(rt: Roundtrip, flag: int) -> bool:
    return bool(rt.all_flags & flag)


__all__ = ["Endpoint", "Flag", "Kind", "Roundtrip", "has_flag", "rfc3339_ns"]
