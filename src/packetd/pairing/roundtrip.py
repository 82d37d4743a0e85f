"""The roundtrip record: the public contract of `watch`, the roundtrip file and `/watch` (ARCHITECTURE.md).

`Roundtrip` holds the messages themselves; `to_json()` derives the contract's envelope (operation, status,
error, times, flags) from them only when a record is serialised.
"""

from __future__ import annotations

import time
from typing import Any, Final

import orjson

from packetd._values import value
from packetd.protocols.base import Flag, Kind, Message, TraceContext, endpoint_text, flag_names

Endpoint = tuple[str, int]


@value
class Process:
    """The process that owns one end's socket on this host (packetd.attribution finds it; None fields are
    unknown, never guessed)."""

    pid: int
    comm: str
    exe: str | None = None  # the /proc/<pid>/exe link, as the process's mount namespace sees it
    container_id: str | None = None
    container_runtime: str | None = None  # docker, containerd, cri-o, podman, when the cgroup path names it
    pod_uid: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "comm": self.comm,
            "exe": self.exe,
            "container_id": self.container_id,
            "container_runtime": self.container_runtime,
            "pod_uid": self.pod_uid,
        }


Processes = tuple["Process | None", "Process | None"]  # (client's, server's)

# workload kinds an owner chain can name, in the order OpenTelemetry's k8s conventions take the first of for
# `service.name` (semconv non-normative/k8s-attributes: deployment, replicaset, statefulset, daemonset,
# cronjob, job, then the pod)
WORKLOAD_KINDS = ("deployment", "replicaset", "statefulset", "daemonset", "cronjob", "job")


@value
class K8sMeta:
    """What the Kubernetes API says an address is (packetd.attribution.kubernetes finds it): a pod (with
    its node, owner chain and the one service it backs), a service's ClusterIP, or a node. None fields are
    unknown or not applicable, never guessed."""

    namespace: str | None = None
    pod: str | None = None
    node: str | None = None
    service: str | None = None
    # (kind, name) from the pod's controller up: (("replicaset", "web-7d9f"), ("deployment", "web"))
    owners: tuple[tuple[str, str], ...] = ()

    def workload(self) -> tuple[str, str] | None:
        """(kind, name) of the workload by OpenTelemetry's order, else ("pod", name); None for a service
        or node address."""
        for kind in WORKLOAD_KINDS:
            for k, name in self.owners:
                if k == kind:
                    return kind, name
        return ("pod", self.pod) if self.pod is not None else None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"namespace": self.namespace, "pod": self.pod, "node": self.node}
        for kind in WORKLOAD_KINDS:
            out[kind] = None
        for kind, name in self.owners:
            out[kind] = name
        out["service"] = self.service
        return out

    def attributes(self) -> dict[str, str]:
        """OpenTelemetry resource attributes (`k8s.namespace.name`, `k8s.pod.name`, ...), known ones only."""
        return {f"k8s.{k}.name": v for k, v in self.to_json().items() if v is not None}


K8sPair = tuple["K8sMeta | None", "K8sMeta | None"]  # (client's, server's)


# Roundtrip's fields in their order (its constructor's, equality's and the repr's)
_FIELD_NAMES: Final = (
    "protocol",
    "kind",
    "client",
    "server",
    "request",
    "response",
    "flags",
    "seq",
    "processes",
    "k8s",
)


class Roundtrip:
    """A request and its response (or one of them alone, by `kind`) on one connection.

    A value like the messages (STYLE.md), but a plain class rather than `@value`: in the compiled build
    mypyc makes it a native class (its fields in a C struct), which it cannot do for a decorated class.
    Every record is built once and read ~30 times (its JSON, the summary, metrics, spans), and compiled
    code reads a decorated class's field through the generic getattr (~165 instructions) where a native
    field is a load. What `@value` gives, by hand: slots, positional or keyword construction, equality
    over all fields, the repr, unhashable; the fields are Final, so mypy rejects assigning one.
    """

    __slots__ = (
        "client",
        "flags",
        "k8s",
        "kind",
        "processes",
        "protocol",
        "request",
        "response",
        "seq",
        "server",
    )

    def __init__(
        self,
        protocol: str,
        kind: str,
        client: Endpoint,
        server: Endpoint,
        request: Message | None,
        response: Message | None,
        flags: int = 0,
        # the record's ordinal on its connection (1, 2, ...; 0: not known): four pipelined commands answered
        # in one segment share endpoints and times, and only this tells their span ids apart (pipeline/spans.py)
        seq: int = 0,
        # set by the I/O layer when process attribution is on (then `client.process` / `server.process` are
        # in the JSON, null when not found); None when it is off (a capture file: its processes are not this
        # host's)
        processes: Processes | None = None,
        # set by the agent when `kubernetes.enabled` and its index has synced (then `client.k8s` / `server.k8s`
        # are in the JSON, null for an address the API does not know); None when off or not synced
        k8s: K8sPair | None = None,
    ) -> None:
        self.protocol: Final = protocol
        self.kind: Final = kind
        self.client: Final = client
        self.server: Final = server
        self.request: Final = request
        self.response: Final = response
        self.flags: Final = flags
        self.seq: Final = seq
        self.processes: Final = processes
        self.k8s: Final = k8s

    def _fields(self) -> tuple[object, ...]:
        return (
            self.protocol,
            self.kind,
            self.client,
            self.server,
            self.request,
            self.response,
            self.flags,
            self.seq,
            self.processes,
            self.k8s,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Roundtrip) or type(other) is not type(self):
            return NotImplemented
        return self._fields() == other._fields()

    def __reduce__(self) -> tuple[type[Roundtrip], tuple[object, ...]]:
        # pickled by its constructor: a native class's default pickling builds it with no arguments first
        return (Roundtrip, self._fields())

    __hash__ = None  # type: ignore[assignment]  # equal by value, as a value class: unhashable

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}={v!r}" for n, v in zip(_FIELD_NAMES, self._fields(), strict=True))
        return f"Roundtrip({shown})"

    def attributed(self, processes: Processes | None, k8s: K8sPair | None) -> Roundtrip:
        """A copy naming who talks (the record is a value): its processes and its k8s objects."""
        return Roundtrip(
            self.protocol,
            self.kind,
            self.client,
            self.server,
            self.request,
            self.response,
            self.flags,
            self.seq,
            processes,
            k8s,
        )

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
        if self.request is not None and self.request.TRACED:
            ctx = self.request.trace_context()
            if ctx is not None:
                return ctx
        return self.response.trace_context() if self.response is not None and self.response.TRACED else None

    @property
    def all_flags(self) -> int:
        flags = self.flags
        if self.request is not None:
            flags |= self.request.flags
        if self.response is not None:
            flags |= self.response.flags
        return flags

    def to_json(self) -> dict[str, Any]:
        """The record contract's JSON object (built once per record on every output's path: the envelope's
        fields are read straight from the messages here, not through the properties above)."""
        req, resp = self.request, self.response
        flags = self.flags
        trace = None
        if req is not None:
            first = req
            operation = req.operation()
            flags |= req.flags
            if req.TRACED:  # (Message.TRACED: most classes cannot carry one, and the call costs)
                trace = req.trace_context()
            req_json: dict[str, Any] | None = req.to_json()
        else:
            req_json = None
        if resp is not None:
            last = resp
            status: str | None = resp.status()
            error = resp.is_error()
            flags |= resp.flags
            if trace is None and resp.TRACED:
                trace = resp.trace_context()
            resp_json: dict[str, Any] | None = resp.to_json()
            if req is None:
                first = resp
                operation = resp.operation()
                duration: int | None = None
            else:
                duration = resp.end_ns - req.start_ns
        else:
            assert req is not None
            last = req
            status, error, resp_json, duration = None, False, None, None
        ip, port = self.client
        client: dict[str, Any] = {"ip": ip, "port": port}
        ip, port = self.server
        server: dict[str, Any] = {"ip": ip, "port": port}
        if self.processes is not None:
            cp, sp = self.processes
            client["process"] = cp.to_json() if cp is not None else None
            server["process"] = sp.to_json() if sp is not None else None
        if self.k8s is not None:
            ck, sk = self.k8s
            client["k8s"] = ck.to_json() if ck is not None else None
            server["k8s"] = sk.to_json() if sk is not None else None
        # rfc3339_ns's cached second, inline (start and end of a record almost always fall in it)
        # (nine digits as `str(ns + _NS)[1:]`: compiled, half the time of `"%09dZ" % ns`, whose generic
        # formatter was ~1 800 instructions a call; the same in the pure build)
        ns = first.start_ns - _sec_start
        start_time = (
            f"{_sec_prefix}{str(ns + _NS)[1:]}Z"
            if 0 <= ns < _NS and _sec_start >= 0
            else rfc3339_ns(first.start_ns)
        )
        ns = last.end_ns - _sec_start  # the globals again: rfc3339_ns may have moved them to a new second
        end_time = (
            f"{_sec_prefix}{str(ns + _NS)[1:]}Z"
            if 0 <= ns < _NS and _sec_start >= 0
            else rfc3339_ns(last.end_ns)
        )
        return {
            "protocol": self.protocol,
            "kind": self.kind,
            "client": client,
            "server": server,
            "operation": operation,
            "status": status,
            "error": error,
            "start_time": start_time,
            "end_time": end_time,
            "duration_ns": duration,
            "request": req_json,
            "response": resp_json,
            "trace": trace.to_json() if trace is not None else None,
            "flags": flag_names(flags) if flags else [],
        }


MAX_TIME_S: Final = 253_402_300_799  # 9999-12-31T23:59:59Z, the last second RFC 3339 can write
_NS: Final = 1_000_000_000  # Final: a constant in the compiled build, not a globals lookup
# the second rfc3339_ns wrote last: its first nanosecond and its text with the dot, "2024-05-01T12:00:00."
# (records come in time order, so the start and end of one record, and of the next ones, almost always fall in it)
_sec_start = -1
_sec_prefix = ""


def dumps(rt: Roundtrip, rec: dict[str, Any] | None = None) -> bytes:
    """One record as a JSON line, newline included (the record contract; watch, the agent's roundtrip
    exporters and /watch all write this); `rec`: its `to_json()` when the caller already built it."""
    return orjson.dumps(rec if rec is not None else rt.to_json(), option=orjson.OPT_APPEND_NEWLINE)


def rfc3339_ns(ts_ns: int) -> str:
    """RFC 3339 UTC with nanoseconds: 2024-05-01T12:00:00.123456789Z (the per-second prefix is cached)."""
    ns = ts_ns - _sec_start
    if 0 <= ns < _NS and _sec_start >= 0:
        return f"{_sec_prefix}{str(ns + _NS)[1:]}Z"
    return _rfc3339_new_second(ts_ns)


def _rfc3339_new_second(ts_ns: int) -> str:
    global _sec_start, _sec_prefix
    sec, ns = divmod(ts_ns, _NS)
    if not 0 <= sec <= MAX_TIME_S:  # RFC 3339 years are 0000-9999 (gmtime fails near 2^55 s): clamp
        sec, ns = (0, 0) if sec < 0 else (MAX_TIME_S, _NS - 1)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{ns:09d}Z"
    _sec_prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(sec))
    _sec_start = sec * _NS
    return f"{_sec_prefix}{str(ns + _NS)[1:]}Z"


def has_flag(rt: Roundtrip, flag: int) -> bool:
    return bool(rt.all_flags & flag)


__all__ = [
    "WORKLOAD_KINDS",
    "Endpoint",
    "Flag",
    "K8sMeta",
    "K8sPair",
    "Kind",
    "Process",
    "Processes",
    "Roundtrip",
    "endpoint_text",
    "has_flag",
    "rfc3339_ns",
]
