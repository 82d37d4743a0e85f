"""`roundtripstotraces`: one span per roundtrip, built from packet times, reproducible.

* Ids — trace and span ids are derived from a hash of the roundtrip (protocol, endpoints, first and last
  byte times), so replaying a capture gives the same spans. A `traceparent` on the wire makes the span a
  child in the caller's trace (its trace id, parent span id = the caller's span); otherwise the span is the
  root of a new trace — never a phantom parent (reference §18.22).
* Kind — SERVER: the span stands for the observed server handling the request (its resource's
  `service.name` is that server: a configured address:port → name map, default `<protocol>:<addr>:<port>`).
* Status — ERROR when the record is an error by the protocol's rules (HTTP 5xx, gRPC non-OK, database and
  broker errors, DNS failures), with the status as description; otherwise UNSET.
* Attributes follow the OpenTelemetry semantic conventions (HTTP, RPC, database, messaging, DNS) as far as
  the wire shows them, plus `network.*`, `server.*`, `client.*`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from packetd._values import value
from packetd.pairing.roundtrip import Roundtrip, endpoint_text
from packetd.pipeline.semantics import SPAN_BUILDERS, AttrValue
from packetd.protocols.base import Kind, flag_names


@value
class SpanData:
    """What an exporter needs to build an OTLP span; plain values, picklable, comparable in tests."""

    name: str
    trace_id: int
    span_id: int
    parent_span_id: int | None  # set only when the wire carried the caller's context
    remote_parent: bool
    start_ns: int
    end_ns: int
    service: str
    error: bool
    status_description: str
    attributes: dict[str, AttrValue]
    trace_flags: int = 1


def span_ids(rt: Roundtrip) -> tuple[int, int]:
    """(trace id, span id) from a hash of what identifies this exchange on the wire."""
    h = hashlib.blake2b(digest_size=24)
    h.update(
        f"{rt.protocol}|{rt.client[0]}|{rt.client[1]}|{rt.server[0]}|{rt.server[1]}|{rt.start_ns}|{rt.end_ns}|{rt.operation}".encode()
    )
    d = h.digest()
    trace_id = int.from_bytes(d[:16], "big") or 1
    span_id = int.from_bytes(d[16:], "big") or 1
    return trace_id, span_id


def _peer_attrs(rt: Roundtrip) -> dict[str, AttrValue]:
    return {
        "server.address": rt.server[0],
        "server.port": rt.server[1],
        "client.address": rt.client[0],
        "client.port": rt.client[1],
        "network.peer.address": rt.client[0],
        "network.peer.port": rt.client[1],
        "network.transport": "udp"
        if rt.protocol == "dns" and getattr(rt.request, "transport", "tcp") == "udp"
        else "tcp",
    }


def _generic(rt: Roundtrip) -> tuple[str, dict[str, AttrValue]]:
    return rt.operation or rt.protocol, {"network.protocol.name": rt.protocol}


class RoundtripsToTraces:
    """The processor. `config`: {"services": {"10.0.0.1:80": "frontend", ...}}."""

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        config = dict(config or {})
        services = config.pop("services", {}) or {}
        if config:
            raise ValueError(
                f"roundtripstotraces: unknown key(s) {', '.join(sorted(config))}; allowed: services"
            )
        if not isinstance(services, Mapping):
            raise ValueError("roundtripstotraces.services: expected a map of 'address:port' to service name")
        self._services = {str(k): str(v) for k, v in services.items()}

    def service_for(self, rt: Roundtrip) -> str:
        key = endpoint_text(rt.server)
        name = self._services.get(key) or self._services.get(rt.server[0])
        return name or f"{rt.protocol}:{key}"

    def process(self, rt: Roundtrip) -> SpanData | None:
        if rt.response is None and rt.kind != Kind.UNANSWERED and rt.kind != Kind.ONEWAY:
            return None
        build = SPAN_BUILDERS.get(rt.protocol, _generic)
        name, attrs = build(rt)
        merged = _peer_attrs(rt)
        merged.update(attrs)
        merged["packetd.kind"] = rt.kind
        flags = rt.all_flags
        if flags:
            merged["packetd.flags"] = flag_names(flags)
        trace_id, span_id = span_ids(rt)
        parent = None
        ctx = rt.trace
        sampled = 1
        if ctx is not None:
            trace_id = int(ctx.trace_id, 16)
            parent = int(ctx.parent_span_id, 16)
            sampled = 1 if ctx.sampled else 0
        error = rt.error or rt.kind == Kind.UNANSWERED
        desc = ""
        if rt.error:
            desc = str(rt.status)
        elif rt.kind == Kind.UNANSWERED:
            desc = "no response"
        return SpanData(
            name=name,
            trace_id=trace_id,
            span_id=span_id,
            parent_span_id=parent,
            remote_parent=parent is not None,
            start_ns=rt.start_ns,
            end_ns=rt.end_ns,
            service=self.service_for(rt),
            error=error,
            status_description=desc,
            attributes=merged,
            trace_flags=sampled,
        )
