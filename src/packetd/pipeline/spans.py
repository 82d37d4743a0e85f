"""`roundtripstotraces`: one span per roundtrip, built from packet times, reproducible.

* Ids — trace and span ids are derived from a hash of the roundtrip (protocol, endpoints, first and last
  byte times, operation, the record's ordinal on its connection and, for HTTP/2 and gRPC, the stream id),
  so replaying a capture gives the same spans and two exchanges on one connection never share an id
  (pipelined commands answered in one segment have the same endpoints and times). A `traceparent` on the
  wire makes the span a child in the caller's trace (its trace id, parent span id = the caller's span);
  otherwise the span is the root of a new trace — never a phantom parent (reference §18.22).
* Kind — SERVER by default: the span stands for the observed server handling the request (its resource's
  `service.name` is that server: a configured address:port → name map, default `<protocol>:<addr>:<port>`).
  `kind: client` makes it a CLIENT span instead (the call as its caller made it: `service.name` is then
  the client, by the same map or `client:<addr>`, and `network.peer.*` the server), for back-ends whose
  service graphs draw databases and uninstrumented servers from CLIENT spans (README, "Traces").
* Kubernetes — with `kubernetes.enabled` in the agent, the span's side (the server for SERVER spans, the
  client for CLIENT spans) named by the API gives the resource its `k8s.*` attributes (namespace, pod,
  node, workload, service: OpenTelemetry's k8s resource conventions) and `service.namespace` = the
  namespace; `service.name` is then the workload (deployment, replicaset, statefulset, daemonset, cronjob,
  job, else the pod: the order of semconv's non-normative k8s-attributes), or for a ClusterIP its service
  — unless the `services` map names the address, which always wins.
* Records — `roundtrip` and `unanswered` records become spans; `handshake` (connection set-up) and `oneway`
  records only when `include: [handshake, oneway]` asks for them: they are not requests a trace follows.
* Status — ERROR when the record is an error by the protocol's rules (HTTP 5xx, gRPC non-OK, database and
  broker errors, DNS failures), with the status as description; otherwise UNSET.
* Attributes follow the OpenTelemetry semantic conventions (HTTP, RPC, database, messaging, DNS) as far as
  the wire shows them, plus `network.*`, `server.*`, `client.*`; ours are under `packetd.*`. They are built
  from the record's JSON (`Roundtrip.to_json()`), the redacted view every output shares
  (protocols/redact.py): a span never carries what the JSON record does not.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from packetd._values import value
from packetd.pairing.roundtrip import K8sMeta, Roundtrip, endpoint_text
from packetd.pipeline.semantics import SPAN_BUILDERS, AttrValue
from packetd.protocols.base import Kind

SPAN_KINDS = ("server", "client")
OPTIONAL_KINDS = (Kind.HANDSHAKE, Kind.ONEWAY)  # records turned into spans only when asked for


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
    kind: str = "server"  # SPAN_KINDS
    resource: dict[str, str] | None = None  # k8s.* and service.namespace of the span's side, when known


def span_ids(rt: Roundtrip) -> tuple[int, int]:
    """(trace id, span id) from a hash of what identifies this exchange on the wire."""
    msg = rt.request if rt.request is not None else rt.response
    stream = getattr(msg, "pair_key", "") if rt.protocol in ("http2", "grpc") else ""
    h = hashlib.blake2b(digest_size=24)
    h.update(
        f"{rt.protocol}|{rt.client[0]}|{rt.client[1]}|{rt.server[0]}|{rt.server[1]}|{rt.start_ns}|{rt.end_ns}|{rt.operation}|{rt.seq}|{stream}".encode()
    )
    d = h.digest()
    trace_id = int.from_bytes(d[:16], "big") or 1
    span_id = int.from_bytes(d[16:], "big") or 1
    return trace_id, span_id


def trace_context(rt: Roundtrip) -> tuple[int, int, int | None, int]:
    """(trace id, span id, parent span id or None, sampled flag) of the roundtrip's span: the hashed ids
    (`span_ids`), with the trace id, parent and sampled flag the wire carried when it carried a traceparent.
    Spans, OTLP log records and exemplars all take their ids from here, so each links to the same span."""
    trace_id, span_id = span_ids(rt)
    ctx = rt.trace
    if ctx is None:
        return trace_id, span_id, None, 1
    return int(ctx.trace_id, 16), span_id, int(ctx.parent_span_id, 16), 1 if ctx.sampled else 0


def _peer_attrs(rt: Roundtrip, rec: dict[str, Any], client_kind: bool) -> dict[str, AttrValue]:
    req = rec.get("request") or {}
    peer = (
        rt.server if client_kind else rt.client
    )  # network.peer.*: the other end, as the span's side sees it
    return {
        "server.address": rt.server[0],
        "server.port": rt.server[1],
        "client.address": rt.client[0],
        "client.port": rt.client[1],
        "network.peer.address": peer[0],
        "network.peer.port": peer[1],
        "network.transport": "udp" if req.get("transport") == "udp" else "tcp",
    }


def _generic(rt: Roundtrip, rec: dict[str, Any]) -> tuple[str, dict[str, AttrValue]]:
    return rt.operation or rt.protocol, {"network.protocol.name": rt.protocol}


class RoundtripsToTraces:
    """The processor. `config`: {"services": {"10.0.0.1:80": "frontend", ...}, "kind": "server" | "client",
    "include": ["handshake", "oneway"]}."""

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        config = dict(config or {})
        services = config.pop("services", {}) or {}
        kind = config.pop("kind", "server")
        include = config.pop("include", []) or []
        if config:
            raise ValueError(
                f"roundtripstotraces: unknown key(s) {', '.join(sorted(config))}; allowed: include, kind, services"
            )
        if not isinstance(services, Mapping):
            raise ValueError("roundtripstotraces.services: expected a map of 'address:port' to service name")
        if kind not in SPAN_KINDS:
            raise ValueError(f"roundtripstotraces.kind: '{kind}' is not allowed; allowed: client, server")
        if isinstance(include, str) or not isinstance(include, list | tuple):
            raise ValueError(
                "roundtripstotraces.include: expected a list of record kinds (handshake, oneway)"
            )
        bad = [str(k) for k in include if k not in OPTIONAL_KINDS]
        if bad:
            raise ValueError(
                f"roundtripstotraces.include: '{bad[0]}' is not allowed; allowed: {', '.join(OPTIONAL_KINDS)}"
            )
        self._services = {str(k): str(v) for k, v in services.items()}
        self.kind = str(kind)
        self._kinds = frozenset({Kind.ROUNDTRIP, Kind.UNANSWERED, *include})

    def _side(self, rt: Roundtrip) -> K8sMeta | None:
        """What the Kubernetes API says the span's side is (None: off, or not known)."""
        if rt.k8s is None:
            return None
        return rt.k8s[0] if self.kind == "client" else rt.k8s[1]

    def service_for(self, rt: Roundtrip) -> str:
        """The span resource's service.name: the observed server (SERVER spans) or client (CLIENT spans),
        by the `services` map (address:port, or address), else its Kubernetes workload or service, else
        `<protocol>:<addr>:<port>` for a server and `client:<addr>` for a client (its port is ephemeral:
        one service per client host)."""
        meta = self._side(rt)
        workload = meta.workload() if meta is not None else None
        named = workload[1] if workload is not None else meta.service if meta is not None else None
        if self.kind == "client":
            return self._services.get(rt.client[0]) or named or f"client:{rt.client[0]}"
        key = endpoint_text(rt.server)
        name = self._services.get(key) or self._services.get(rt.server[0])
        return name or named or f"{rt.protocol}:{key}"

    def resource_for(self, rt: Roundtrip) -> dict[str, str] | None:
        """The k8s resource attributes of the span's side, with `service.namespace`; None when unknown."""
        meta = self._side(rt)
        if meta is None:
            return None
        attrs = meta.attributes()
        if meta.namespace is not None:
            attrs["service.namespace"] = meta.namespace
        return attrs or None

    def process(self, rt: Roundtrip, rec: dict[str, Any] | None = None) -> SpanData | None:
        """The span of `rt`; `rec` is its `to_json()` when the caller already built it."""
        if rt.kind not in self._kinds:
            return None
        if rec is None:
            rec = rt.to_json()  # the redacted view: every attribute below comes from it
        build = SPAN_BUILDERS.get(rt.protocol, _generic)
        name, attrs = build(rt, rec)
        merged = _peer_attrs(rt, rec, self.kind == "client")
        merged.update(attrs)
        merged["packetd.kind"] = rt.kind
        flags = rec["flags"]
        if flags:
            merged["packetd.flags"] = flags
        trace_id, span_id, parent, sampled = trace_context(rt)
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
            kind=self.kind,
            resource=self.resource_for(rt),
        )
