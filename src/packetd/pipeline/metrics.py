"""`roundtripstometrics`: roundtrips become counters and histograms (reference §8.2, its bugs fixed).

Per roundtrip of protocol P (kinds roundtrip, unanswered and oneway; handshakes are not queries):

    P_requests_total                counter
    P_request_duration_seconds      histogram (seconds buckets)   roundtrips only
    P_request_body_bytes            histogram (bytes buckets)     the request's body (HTTP) or size
    P_response_body_bytes           histogram (bytes buckets)     when there is a response
    mysql_response_affected_rows / postgresql_response_affected_rows   counters
    mysql_response_resultset_rows / postgresql_response_rows            histograms (row buckets, not bytes)

Labels: the configured `requireLabels` of the protocol, or its documented defaults (the reference added
none by default; its docs said four). Label values come from the records' fields: `server.address`,
`server.port`, `client.address`, `client.port`, `request.<field>`, `response.<field>`; an HTTP path is
templated first (`/users/123` → `/users/{id}`) so that one series does not become a million.

This module is pure: `Aggregator` accumulates deltas in a capture worker; the agent merges them into its
store (agent/storage.py) which owns series budgets, expiry and exposition.
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from packetd.pairing.roundtrip import Roundtrip
from packetd.pipeline.otlp_metrics import DEFAULT_BOUNDS, metric_attributes, metric_for
from packetd.pipeline.semantics import (
    DEFAULT_LABELS,
    GENERIC_DEFAULT,
    GENERIC_LABELS,
    OTEL_HTTP_BODY,
    OTEL_ROWS,
    PROTOCOL_LABELS,
    SPAN_BUILDERS,
    TEMPLATED,
    affected_rows,
)
from packetd.pipeline.spans import trace_context
from packetd.protocols.base import Kind
from packetd.units import parse_duration

MiB = 1024 * 1024
# Wire latencies: one default for the Prometheus and the OTLP histograms (otlp_metrics.DEFAULT_BOUNDS: a
# 1-2.5-5 series from 25 µs to 60 s; the old 1 ms first bucket made every p50 "500 µs").
SECONDS_BUCKETS = DEFAULT_BOUNDS
# Bodies and messages: most Redis/DNS/SQL messages are tens of bytes, HTTP bodies from 0 to megabytes;
# powers of 4 from 64 B to 256 MiB (12 buckets; the old first bucket, 10 KiB, held nearly everything).
BYTES_BUCKETS = tuple(float(64 * 4**i) for i in range(12))
ROWS_BUCKETS = (0.0, 1.0, 10.0, 100.0, 1000.0, 10_000.0, 100_000.0, 1_000_000.0, 10_000_000.0)
DEFAULT_LAYOUT = (SECONDS_BUCKETS, BYTES_BUCKETS, ROWS_BUCKETS)
BUCKET_KINDS = ("duration", "bytes", "rows")
MAX_BUCKETS = 64  # per histogram: every bucket is one exposed line per series, so the count is bounded too
# Label values longer than this are cut and marked (counted per label): a 4 KB path must not become a 4 KB
# label on ~50 lines of every scrape (issue 14: 2 000 such paths made one scrape 471 MB)
LABEL_VALUE_BYTES = 256
TRUNCATED = "...[truncated]"
OVERFLOW = "__overflow__"
# Distinct (metric, labels) keys one worker delta holds. The store admits far fewer (maxScrapeMB: ~15 000 at
# 6 MB), so this only matters when the agent falls behind and deltas pile up in a worker during a flood
DELTA_MAX_KEYS = 50_000
NAMINGS = ("packetd", "otel")  # metricsStorage.naming: the Go implementation's names, or semconv's

COMMON_LABELS = {
    "client.address": "client_address",
    "client.port": "client_port",
    "server.address": "server_address",
    "server.port": "server_port",
}

# requireLabels, default labels and their getters live in pipeline/semantics.py (one place per protocol)


def _k8s_getter(side: int, what: str) -> Callable[[Roundtrip], object]:
    def get(rt: Roundtrip) -> object:
        meta = rt.k8s[side] if rt.k8s is not None else None
        if meta is None:
            return ""
        if what == "namespace":
            return meta.namespace or ""
        workload = meta.workload()
        return workload[1] if workload is not None else ""

    return get


# Opt-in (requireLabels) with `kubernetes.enabled` in the agent: the workload (deployment, statefulset, ...,
# else the pod: spans' service.name order) and namespace of each end; "" when the API does not know it.
# Workloads and namespaces are few next to pod names and IPs, and the store's series budget bounds them anyway
K8S_LABELS = {
    f"{side}.{what}": (f"{side}_{what}", _k8s_getter(i, what))
    for i, side in enumerate(("client", "server"))
    for what in ("workload", "namespace")
}


class MetricsConfigError(ValueError):
    pass


# -- path templating ------------------------------------------------------------------------------------------
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
_NUMBER = re.compile(r"^[+-]?\d+(?:[.,]\d+)?$")
_HEX = re.compile(r"^(?=.*\d)[0-9a-fA-F]{8,}$")
_OPAQUE = re.compile(r"^[A-Za-z0-9_\-=+.~%]{24,}$")
MAX_PATH_SEGMENTS = 12  # deeper paths are cut (the rest becomes "{...}"): bounds label length and work
MAX_CACHED_PATH = 512  # bytes: the cache bound counts entries, so an entry's size is bounded too


def replacement_problem(rx: re.Pattern[str], repl: str) -> str:
    """Why `repl` cannot replace matches of `rx` (a group it does not have, a bad escape), or "".

    `re.compile` does not look at a replacement: without this check a bad one raised on the first
    matching path, in a worker's record loop. `sub` parses its replacement before it searches, so an
    empty string shows the problem; 3.11 raises IndexError for an unknown group name, later ones re.error.
    """
    try:
        rx.sub(repl, "")
    except (re.error, IndexError) as exc:
        return str(exc)
    return ""


class PathTemplater:
    """`/api/v1/users/123/orders/5f1e...` → `/api/v1/users/{id}/orders/{id}`; custom rules first."""

    def __init__(
        self, rules: Sequence[tuple[str, str]] = (), default: bool = True, cache_size: int = 10_000
    ) -> None:
        self._rules = [(re.compile(pattern), repl) for pattern, repl in rules]
        for j, (rx, repl) in enumerate(self._rules):
            problem = replacement_problem(rx, repl)
            if problem:
                raise MetricsConfigError(
                    f"pathTemplates[{j}].replacement: {repl!r} does not fit its regex {rx.pattern!r}: {problem}"
                )
        self._default = default
        self._cache: dict[str, str] = {}
        self._cache_size = cache_size  # bounded: distinct raw paths are unbounded by nature

    def __call__(self, path: str) -> str:
        out = self._cache.get(path)
        if out is not None:
            return out
        out = path
        for rx, repl in self._rules:
            out = rx.sub(repl, out)
        if self._default:
            segs = out.split("/")
            if len(segs) > MAX_PATH_SEGMENTS + 1:
                segs = [*segs[: MAX_PATH_SEGMENTS + 1], "{...}"]
            out = "/".join(
                "{id}"
                if s and (_NUMBER.match(s) or _UUID.match(s) or _HEX.match(s) or _OPAQUE.match(s))
                else s
                for s in segs
            )
        if len(path) > MAX_CACHED_PATH:
            return out  # a scan of long distinct paths would fill the cache with kilobytes per entry
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[path] = out
        return out


# -- VictoriaMetrics vmrange buckets ----------------------------------------------------------------------------
VM_BUCKETS_PER_DECADE = 18
VM_MIN_EXP = -9
VM_MAX_EXP = 18


def vm_bucket(value: float) -> int:
    """Bucket index of `value` in the VictoriaMetrics log histogram (18 per decade from 1e-9 to 1e18)."""
    if value < 1e-9:
        return -1
    if value >= 1e18:
        return (VM_MAX_EXP - VM_MIN_EXP) * VM_BUCKETS_PER_DECADE
    idx = math.floor((math.log10(value) - VM_MIN_EXP) * VM_BUCKETS_PER_DECADE)
    lower = 10 ** (VM_MIN_EXP + idx / VM_BUCKETS_PER_DECADE)
    if abs(value - lower) <= lower * 1e-12:
        idx -= 1  # buckets are (lower, upper]: an exact lower bound belongs to the bucket below
    return idx


def vm_range(idx: int) -> str:
    if idx < 0:
        return "0...1.000e-09"
    if idx >= (VM_MAX_EXP - VM_MIN_EXP) * VM_BUCKETS_PER_DECADE:
        return "1.000e+18...+Inf"
    lo = 10 ** (VM_MIN_EXP + idx / VM_BUCKETS_PER_DECADE)
    hi = 10 ** (VM_MIN_EXP + (idx + 1) / VM_BUCKETS_PER_DECADE)
    return f"{lo:.3e}...{hi:.3e}"


# -- aggregation ----------------------------------------------------------------------------------------------
class Aggregator:
    """Deltas since the last `take()`: counters, histograms (bucket index → count, sum, count), gauges."""

    __slots__ = ("counters", "gauges", "histograms", "max_keys", "overflowed", "truncated", "vm")

    def __init__(self, vm: bool = False, max_keys: int = DELTA_MAX_KEYS) -> None:
        self.vm = vm
        self.max_keys = max_keys
        self.counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self.histograms: dict[tuple[str, tuple[tuple[str, str], ...]], list[Any]] = {}
        self.gauges: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self.truncated: dict[str, int] = {}  # label name → values cut to the length cap
        self.overflowed: dict[str, int] = {}  # metric → observations folded by the delta's own bound

    def _bounded(
        self, table: dict[Any, Any], name: str, labels: tuple[tuple[str, str], ...]
    ) -> tuple[Any, ...]:
        key = (name, labels)
        if key in table or len(table) < self.max_keys:
            return key
        self.overflowed[name] = self.overflowed.get(name, 0) + 1
        return (name, tuple((k, OVERFLOW) for k, _ in labels))

    def inc(self, name: str, labels: tuple[tuple[str, str], ...], value: float = 1.0) -> None:
        key = self._bounded(self.counters, name, labels)
        self.counters[key] = self.counters.get(key, 0.0) + value

    def set(self, name: str, labels: tuple[tuple[str, str], ...], value: float) -> None:
        self.gauges[(name, labels)] = value

    def observe(
        self,
        name: str,
        labels: tuple[tuple[str, str], ...],
        value: float,
        buckets: Sequence[float],
        exemplar: Roundtrip | None = None,
    ) -> None:
        key = self._bounded(self.histograms, name, labels)
        h = self.histograms.get(key)
        if h is None:
            # [bucket index → count, sum, count, bucket layout, bucket index → exemplar]
            h = self.histograms[key] = [{}, 0.0, 0, "vm" if self.vm else buckets, {}]
        idx = vm_bucket(value) if self.vm else bisect.bisect_left(buckets, value)
        counts = h[0]
        counts[idx] = counts.get(idx, 0) + 1
        h[1] += value
        h[2] += 1
        if exemplar is not None and not self.vm and idx not in h[4]:
            # the first roundtrip of a delta (0.5 s) per bucket: a hash per bucket and flush, not per record
            h[4][idx] = exemplar_of(exemplar, value)

    def take(self) -> dict[str, Any]:
        """The deltas, and a fresh start."""
        out = {
            "counters": self.counters,
            "histograms": self.histograms,
            "gauges": self.gauges,
            "truncated": self.truncated,
            "overflowed": self.overflowed,
        }
        self.counters, self.histograms, self.gauges, self.truncated, self.overflowed = {}, {}, {}, {}, {}
        return out


LabelFn = Callable[[Roundtrip], tuple[tuple[str, str], ...]]


def exemplar_of(rt: Roundtrip, value: float) -> tuple[str, str, float, float]:
    """(trace id, span id, value, time in s): the ids the roundtrip's span has (spans.trace_context: hashed, or the
    caller's trace id when the wire carried a traceparent), so a bucket links to the trace in the backend."""
    trace_id, span_id, _, _ = trace_context(rt)
    return f"{trace_id:032x}", f"{span_id:016x}", value, rt.end_ns / 1e9


def _value(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _endpoint_getter(side: str, part: str) -> Callable[[Roundtrip], object]:
    pos = 0 if part == "address" else 1
    if side == "client":
        return lambda rt: rt.client[pos]
    return lambda rt: rt.server[pos]


def _templated(
    getter: Callable[[Roundtrip], object], templater: PathTemplater
) -> Callable[[Roundtrip], object]:
    def get(rt: Roundtrip) -> object:
        return templater(str(getter(rt) or ""))

    return get


def _bounds(where: str, kind: str, raw: object) -> tuple[float, ...]:
    """One `buckets.<kind>` list: numbers (durations also as 25us, 1ms, 2s), strictly increasing."""
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_BUCKETS:
        raise MetricsConfigError(f"{where}.{kind}: expected a list of 1 to {MAX_BUCKETS} upper bounds")
    values: list[float] = []
    for b in raw:
        if kind == "duration" and isinstance(b, str):
            try:
                v = parse_duration(b) / 1e9
            except ValueError as exc:
                raise MetricsConfigError(f"{where}.{kind}: {exc}") from None
        elif isinstance(b, int | float) and not isinstance(b, bool):
            v = float(b)
        else:
            raise MetricsConfigError(f"{where}.{kind}: {b!r} is not a number")
        if not math.isfinite(v) or v < 0:
            raise MetricsConfigError(f"{where}.{kind}: {b!r} is not a finite number >= 0")
        values.append(v)
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise MetricsConfigError(f"{where}.{kind}: upper bounds must increase strictly")
    return tuple(values)


def _buckets(where: str, raw: object) -> dict[str, tuple[float, ...]]:
    if not isinstance(raw, Mapping) or not raw or set(raw) - set(BUCKET_KINDS):
        raise MetricsConfigError(
            f"{where}: expected a map with any of {', '.join(BUCKET_KINDS)}, "
            "e.g. {duration: [100us, 1ms, 10ms], bytes: [64, 1024, 65536]}"
        )
    return {str(kind): _bounds(where, str(kind), bounds) for kind, bounds in raw.items()}


def cap_label(value: str, limit: int) -> str | None:
    """`value` cut to at most `limit` UTF-8 bytes, marker included; None when it fits."""
    if len(value) * 4 <= limit:  # a character is at most 4 bytes: the common case needs no encoding
        return None
    raw = value.encode("utf-8", "surrogatepass")
    if len(raw) <= limit:
        return None
    keep = max(0, limit - len(TRUNCATED))
    return raw[:keep].decode("utf-8", "ignore") + TRUNCATED  # "ignore": a cut multibyte character goes


class RoundtripsToMetrics:
    """The processor (see module docstring). `config` is the processor's `config` map."""

    def __init__(
        self,
        config: Mapping[str, Any] | None = None,
        protocols: Iterable[str] = (),
        label_bytes: int = LABEL_VALUE_BYTES,
        naming: str = "packetd",
        exemplars: bool = False,
    ) -> None:
        self.exemplars = exemplars  # traces are exported: each duration bucket names a recent trace
        if naming not in NAMINGS:
            raise MetricsConfigError(f"naming '{naming}': expected one of {', '.join(NAMINGS)}")
        self.naming = naming
        config = dict(config or {})
        templates = config.pop("pathTemplates", None) or []
        default_templating = bool(config.pop("defaultPathTemplating", True))
        config.pop("expired", None)  # accepted by the reference, unused there and here (storage expires)
        try:
            rules = [(str(r["regex"]), str(r["replacement"])) for r in templates]
        except (KeyError, TypeError):
            raise MetricsConfigError("pathTemplates: each entry needs 'regex' and 'replacement'") from None
        self.templater = PathTemplater(rules, default_templating)
        self.label_bytes = label_bytes
        self._label_fns: dict[str, LabelFn] = {}
        self._config = config
        # protocol → (duration, bytes, rows) bucket bounds; protocols not configured use the defaults
        self._layouts: dict[str, tuple[tuple[float, ...], ...]] = {}
        for proto, proto_cfg in config.items():
            if not isinstance(proto_cfg, Mapping) or set(proto_cfg) - {"requireLabels", "buckets"}:
                raise MetricsConfigError(
                    f"roundtripstometrics.{proto}: only 'requireLabels' and 'buckets' are allowed"
                )
            if "buckets" in proto_cfg:
                got = _buckets(f"roundtripstometrics.{proto}.buckets", proto_cfg["buckets"])
                self._layouts[proto] = (
                    got.get("duration", SECONDS_BUCKETS),
                    got.get("bytes", BYTES_BUCKETS),
                    got.get("rows", ROWS_BUCKETS),
                )
        for proto in protocols:
            self._label_fns[proto] = self._build(proto)

    def allowed_labels(self, proto: str) -> list[str]:
        return [*COMMON_LABELS, *PROTOCOL_LABELS.get(proto, {}), *GENERIC_LABELS, *K8S_LABELS]

    def buckets_for(self, proto: str) -> tuple[tuple[float, ...], ...]:
        """(duration, bytes, rows) upper bounds of `proto`'s histograms."""
        return self._layouts.get(proto, DEFAULT_LAYOUT)

    def _build(self, proto: str) -> LabelFn:
        cfg = self._config.get(proto)
        keys: Sequence[str] = list(cfg.get("requireLabels") or []) if isinstance(cfg, Mapping) else []
        if not keys:
            keys = DEFAULT_LABELS.get(proto, GENERIC_DEFAULT)
        allowed = self.allowed_labels(proto)
        getters: list[tuple[str, Callable[[Roundtrip], object]]] = []
        for key in keys:
            if key in COMMON_LABELS:
                side, part = key.split(".")
                getters.append((COMMON_LABELS[key], _endpoint_getter(side, part)))
            elif key in GENERIC_LABELS:
                getters.append(GENERIC_LABELS[key])
            elif key in K8S_LABELS:
                getters.append(K8S_LABELS[key])
            elif key in PROTOCOL_LABELS.get(proto, {}):
                label, getter = PROTOCOL_LABELS[proto][key]
                if (proto, label) in TEMPLATED:
                    getter = _templated(getter, self.templater)
                getters.append((label, getter))
            else:
                raise MetricsConfigError(
                    f"roundtripstometrics.{proto}.requireLabels: unknown label '{key}'; allowed: {', '.join(allowed)}"
                )

        def labels(rt: Roundtrip) -> tuple[tuple[str, str], ...]:
            return tuple((name, _value(get(rt))) for name, get in getters)

        return labels

    def labels_for(self, proto: str) -> LabelFn:
        fn = self._label_fns.get(proto)
        if fn is None:
            fn = self._label_fns[proto] = self._build(proto)
        return fn

    def _capped(self, labels: tuple[tuple[str, str], ...], agg: Aggregator) -> tuple[tuple[str, str], ...]:
        out = []
        for name, value in labels:
            cut = cap_label(value, self.label_bytes)
            if cut is not None:
                agg.truncated[name] = agg.truncated.get(name, 0) + 1
            out.append((name, value if cut is None else cut))
        return tuple(out)

    def process(self, rt: Roundtrip, agg: Aggregator) -> None:
        if rt.kind == Kind.HANDSHAKE:
            return
        p = rt.protocol
        if self.naming == "otel" and p in SPAN_BUILDERS:
            self._process_otel(rt, agg)
            return
        labels = self.labels_for(p)(rt)
        quick = self.label_bytes // 4
        if any(len(v) > quick for _, v in labels):
            labels = self._capped(labels, agg)
        seconds, sizes, row_bounds = self.buckets_for(p)
        agg.inc(f"{p}_requests_total", labels)
        req, resp = rt.request, rt.response
        if req is not None and resp is not None:
            agg.observe(
                f"{p}_request_duration_seconds",
                labels,
                (resp.end_ns - req.start_ns) / 1e9,
                seconds,
                rt if self.exemplars else None,
            )
        if req is not None:
            agg.observe(f"{p}_request_body_bytes", labels, float(getattr(req, "body_bytes", req.size)), sizes)
        if resp is not None:
            agg.observe(
                f"{p}_response_body_bytes", labels, float(getattr(resp, "body_bytes", resp.size)), sizes
            )
            affected = affected_rows(rt)
            if affected:
                agg.inc(f"{p}_response_affected_rows", labels, float(affected))
            rows = getattr(resp, "rows", None)
            if rows is not None and p in ("mysql", "postgresql"):
                name = "mysql_response_resultset_rows" if p == "mysql" else "postgresql_response_rows"
                agg.observe(name, labels, float(rows), row_bounds)

    def _process_otel(self, rt: Roundtrip, agg: Aggregator) -> None:
        """`naming: otel`: the semconv histograms with the attributes the OTLP metrics exporter gives them
        (pipeline/otlp_metrics.py, from the span builders), dots as underscores and the unit as a suffix, as
        Prometheus' OTLP translation writes them. Answered roundtrips only: a request without an answer has
        no duration (`packetd_roundtrips_total{kind="unanswered"}` counts it)."""
        req, resp = rt.request, rt.response
        if rt.kind != Kind.ROUNDTRIP or req is None or resp is None:
            return
        attrs: dict[str, Any] = {"server.address": rt.server[0], "server.port": rt.server[1]}
        attrs.update(SPAN_BUILDERS[rt.protocol](rt, rt.to_json())[1])  # from the redacted view, as spans
        metric = metric_for(attrs)
        if metric is None:
            return
        labels = tuple((k.replace(".", "_"), _value(v)) for k, v in metric_attributes(metric, rt, attrs))
        quick = self.label_bytes // 4
        if any(len(v) > quick for _, v in labels):
            labels = self._capped(labels, agg)
        p = rt.protocol
        seconds, sizes, row_bounds = self.buckets_for(p)
        name = metric.replace(".", "_") + "_seconds"
        duration = (resp.end_ns - req.start_ns) / 1e9
        agg.observe(name, labels, duration, seconds, rt if self.exemplars else None)
        if name.startswith("http_"):
            agg.observe(OTEL_HTTP_BODY[0], labels, float(getattr(req, "body_bytes", req.size)), sizes)
            agg.observe(OTEL_HTTP_BODY[1], labels, float(getattr(resp, "body_bytes", resp.size)), sizes)
        rows = getattr(resp, "rows", None)
        if isinstance(rows, int) and name.startswith("db_"):
            agg.observe(OTEL_ROWS, labels, float(rows), row_bounds)


METRIC_HELP = {
    "server_request_duration_seconds": "Duration of HTTP server requests (semconv http.server.request.duration)",
    "server_request_body_size_bytes": "Size of HTTP server request bodies (semconv http.server.request.body.size)",
    "server_response_body_size_bytes": "Size of HTTP server response bodies (semconv http.server.response.body.size)",
    "server_call_duration_seconds": "Duration of RPC calls (semconv rpc.server.call.duration)",
    "client_operation_duration_seconds": "Duration of operations (semconv db/messaging.client.operation.duration)",
    "client_response_returned_rows": "Rows returned (semconv db.client.response.returned_rows)",
    "lookup_duration_seconds": "Duration of DNS lookups (semconv dns.lookup.duration)",
    "requests_total": "Requests seen (roundtrips, unanswered requests and one-way messages)",
    "request_duration_seconds": "From the request's first byte to the response's last byte",
    "request_body_bytes": "Request body size (message size for protocols without a body)",
    "response_body_bytes": "Response body size (message size for protocols without a body)",
    "response_affected_rows": "Rows changed, as the server reported",
    "response_resultset_rows": "Rows returned in result sets",
    "response_rows": "Rows returned or affected, from the command tag",
}


def describe(name: str) -> str:
    for suffix, text in METRIC_HELP.items():
        if name.endswith(suffix):
            return text
    return name.replace("_", " ")
