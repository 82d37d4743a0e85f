"""The endpoint summary printed when `watch` ends: per (server, protocol, operation, path) count, errors and
latency percentiles.

Latencies go into a log-bucketed histogram (buckets 2% wide, so a reported percentile is within 2% of the
true one) instead of a list: memory per endpoint is bounded whatever the traffic. Endpoints are bounded
too (MAX_ENDPOINTS); the rest fold into one "(other)" row, counted.
"""

from __future__ import annotations

import math

from packetd.pairing.roundtrip import Roundtrip
from packetd.pipeline.semantics import url_path
from packetd.protocols.base import Kind

MAX_ENDPOINTS = 1000  # rows kept; more distinct endpoints than this fold into "(other)"
MAX_PATH = 60  # characters of the path shown
_GROWTH = math.log(1.02)
OTHER = ("(other)", "", "", "")


class LatencyHistogram:
    """Log-bucketed latency histogram; percentiles within 2% relative error."""

    __slots__ = ("buckets", "count", "max", "min")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.count = 0
        self.min = 0
        self.max = 0

    def add(self, ns: int) -> None:
        b = int(math.log(ns) / _GROWTH) if ns > 1 else 0
        self.buckets[b] = self.buckets.get(b, 0) + 1
        if not self.count or ns < self.min:
            self.min = ns
        self.max = max(self.max, ns)
        self.count += 1

    def percentile(self, q: float) -> float:
        if not self.count:
            return 0.0
        rank = q * self.count
        seen = 0
        for b in sorted(self.buckets):
            seen += self.buckets[b]
            if seen >= rank:
                value = math.exp((b + 0.5) * _GROWTH)
                return min(max(value, self.min), self.max)
        return float(self.max)


class EndpointStats:
    __slots__ = ("count", "errors", "latency")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.latency = LatencyHistogram()


class Summary:
    """Aggregates every record (before display filters) for the exit summary."""

    def __init__(self) -> None:
        self.endpoints: dict[tuple[str, str, str, str], EndpointStats] = {}
        self.kinds: dict[str, int] = dict.fromkeys(Kind.ALL, 0)
        self.folded = 0

    def add(self, rt: Roundtrip) -> None:
        self.kinds[rt.kind] += 1
        req = rt.request if rt.request is not None else rt.response
        assert req is not None
        path = str(url_path(rt) or "")  # never the query: the summary leaves the host too (stderr)
        if len(path) > MAX_PATH:
            path = path[: MAX_PATH - 1] + "…"
        key = (f"{rt.server[0]}:{rt.server[1]}", rt.protocol, rt.operation, path)
        ep = self.endpoints.get(key)
        if ep is None:
            if len(self.endpoints) >= MAX_ENDPOINTS:
                self.folded += 1
                key = OTHER
                ep = self.endpoints.get(key)
            if ep is None:
                ep = self.endpoints[key] = EndpointStats()
        ep.count += 1
        if rt.error:
            ep.errors += 1
        d = rt.duration_ns
        if d is not None:
            ep.latency.add(d)

    def rows(self) -> list[tuple[tuple[str, str, str, str], EndpointStats]]:
        return sorted(self.endpoints.items(), key=lambda kv: (-kv[1].count, kv[0]))
