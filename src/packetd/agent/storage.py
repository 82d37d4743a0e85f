"""The agent's metric store: merged worker deltas, series budgets, idle expiry, Prometheus exposition.

* Budgets — what one scrape can cost is bounded before a series exists, in three ways, each counted:
  - per label: at most `label_limits[label]` distinct values of that label per metric (e.g. `path: 500`);
    a new value beyond it becomes `__overflow__` for that label only, the other labels keep their values
    (`packetd_metric_label_overflow_total{label}`);
  - per metric: at most `series_limit` label sets (`protocol_limits[proto]` for that protocol's metrics);
  - in bytes: the exposition lines a new series will add are estimated on admission (name, labels, one
    line per bucket); beyond `max_bytes` in total, new label sets are refused.
  A label set refused by the last two is folded into one series whose label values are all `__overflow__`,
  and `packetd_metric_series_overflow_total{metric}` counts every roundtrip folded so. Label values were
  already cut to a length cap in the worker (pipeline/metrics.py), paths already templated.
  So a scrape is at most `max_bytes` plus one overflow series per metric and the HELP/TYPE lines
  (BENCHMARKS.md measures a flood: size, CPU time and the agent's peak RSS).
* Expiry — a series not updated for `expired` is dropped (a restarted pod or a vanished path must not be
  reported forever); `packetd_metric_series_expired_total` counts them. Its budget is released.
* Exposition — a custom `Collector` on our own `CollectorRegistry`: prometheus_client writes the text
  format (HELP, TYPE, escaping) for `/protocol/metrics`; `snapshot()` gives remote write the same series.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    Exemplar,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder, generate_latest
from prometheus_client.registry import Collector

from packetd.pipeline.metrics import OVERFLOW, describe, vm_range

Labels = tuple[tuple[str, str], ...]
# Measured (BENCHMARKS.md, bench/scrape_flood.py): a scrape of this many bytes takes about 0.5 s of CPU in
# prometheus_client, under the 1 s and 10 MB a scraper allows (Prometheus' default scrape timeout is 10 s,
# but the agent shares its cores with the capture workers)
DEFAULT_MAX_BYTES = 6 * 1024 * 1024
DEFAULT_LABEL_LIMITS: Mapping[str, int] = {"path": 1000}  # the label a web scan floods
VM_LINES = 20  # vmrange histograms expose only non-empty buckets: a typical latency spread, for the estimate
LINE_OVERHEAD = 40  # per exposition line beyond the labels: name suffix, `le`, value, quotes, newline


def protocol_of(name: str) -> str:
    """The budget group of a metric: its prefix (`http2_requests_total` → `http2`)."""
    return name.split("_", 1)[0]


class _Hist:
    __slots__ = ("buckets", "count", "exemplars", "layout", "sum")

    def __init__(self, layout: Any) -> None:
        self.layout = layout  # tuple of upper bounds, or "vm"
        self.buckets: dict[int, int] = {}
        self.sum = 0.0
        self.count = 0
        # bucket index → (trace id, span id, value, time s) of a recent roundtrip: one per bucket, bounded
        self.exemplars: dict[int, tuple[str, str, float, float]] = {}


class MetricStore(Collector):
    def __init__(
        self,
        series_limit: int = 10_000,
        expired_ns: int = 300 * 1_000_000_000,
        protocol_limits: Mapping[str, int] | None = None,
        label_limits: Mapping[str, int] | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.series_limit = series_limit
        self.expired_ns = expired_ns
        self.protocol_limits = dict(protocol_limits or {})
        self.label_limits = dict(DEFAULT_LABEL_LIMITS if label_limits is None else label_limits)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        # name → labels → value / histogram; last update per (name, labels)
        self._counters: dict[str, dict[Labels, float]] = {}
        self._gauges: dict[str, dict[Labels, float]] = {}
        self._hists: dict[str, dict[Labels, _Hist]] = {}
        self._touched: dict[tuple[str, Labels], int] = {}
        self._cost: dict[tuple[str, Labels], int] = {}  # estimated exposition bytes of each series
        self._values: dict[tuple[str, str], dict[str, int]] = {}  # (metric, label) → value → series using it
        self.bytes = 0  # estimated exposition bytes of every series held
        self.overflowed: dict[str, int] = {}
        self.label_overflowed: dict[str, int] = {}
        self.truncated: dict[str, int] = {}  # label → values the workers cut to the length cap
        self.expired_total = 0

    # -- merging -------------------------------------------------------------------------------------------
    def _admit(self, table: dict[Labels, Any], name: str, labels: Labels, lines: int) -> Labels:
        if labels in table:
            return labels
        folded = self._fold_values(name, labels)
        if folded in table:
            return folded
        limit = self.protocol_limits.get(protocol_of(name), self.series_limit)
        cost = lines * (len(name) + LINE_OVERHEAD + sum(len(k) + len(v.encode()) + 4 for k, v in folded))
        overflow = len(table) >= limit or self.bytes + cost > self.max_bytes
        if overflow:
            self.overflowed[name] = self.overflowed.get(name, 0) + 1
            folded = tuple((k, OVERFLOW) for k, _ in labels)
            if folded in table:
                return folded
        self._cost[(name, folded)] = cost
        self.bytes += cost  # the overflow series counts too (once per metric): it is exposed like any other
        for k, v in folded:
            if k in self.label_limits:
                seen = self._values.setdefault((name, k), {})
                seen[v] = seen.get(v, 0) + 1
        return folded

    def _fold_values(self, name: str, labels: Labels) -> Labels:
        """Values of budgeted labels beyond their budget become __overflow__ (the others stay)."""
        out = labels
        for i, (k, v) in enumerate(labels):
            limit = self.label_limits.get(k)
            if limit is None or v == OVERFLOW:
                continue
            seen = self._values.get((name, k))
            if seen is None or v in seen or len(seen) < limit:
                continue
            self.label_overflowed[k] = self.label_overflowed.get(k, 0) + 1
            out = (*out[:i], (k, OVERFLOW), *out[i + 1 :])
        return out

    def merge(self, deltas: dict[str, Any], now_ns: int) -> None:
        with self._lock:
            for label, n in deltas.get("truncated", {}).items():
                self.truncated[label] = self.truncated.get(label, 0) + n
            for metric, n in deltas.get("overflowed", {}).items():  # folded in the worker already
                self.overflowed[metric] = self.overflowed.get(metric, 0) + n
            for (name, raw_labels), v in deltas.get("counters", {}).items():
                table = self._counters.setdefault(name, {})
                labels = self._admit(table, name, raw_labels, 1)
                table[labels] = table.get(labels, 0.0) + v
                self._touched[(name, labels)] = now_ns
            for (name, raw_labels), v in deltas.get("gauges", {}).items():
                table_g = self._gauges.setdefault(name, {})
                labels = self._admit(table_g, name, raw_labels, 1)
                table_g[labels] = v
                self._touched[(name, labels)] = now_ns
            for (name, raw_labels), delta in deltas.get("histograms", {}).items():
                counts, total, n, layout = delta[:4]
                table_h = self._hists.setdefault(name, {})
                lines = (VM_LINES if layout == "vm" else len(layout) + 1) + 2  # buckets, +Inf, sum, count
                labels = self._admit(table_h, name, raw_labels, lines)
                h = table_h.get(labels)
                if h is None or h.layout != layout:
                    # new, or its buckets were reconfigured by a reload: the old counts cannot be mapped
                    # onto the new bounds, so the series restarts (a counter reset to Prometheus)
                    h = table_h[labels] = _Hist(layout)
                for idx, c in counts.items():
                    h.buckets[idx] = h.buckets.get(idx, 0) + c
                h.sum += total
                h.count += n
                if len(delta) > 4:
                    h.exemplars.update(delta[4])  # the newer delta's exemplar replaces a bucket's older one
                self._touched[(name, labels)] = now_ns

    def expire(self, now_ns: int) -> int:
        """Drop series idle for longer than `expired_ns`; returns how many."""
        dropped = 0
        with self._lock:
            for (name, labels), ts in list(self._touched.items()):
                if now_ns - ts <= self.expired_ns:
                    continue
                for table in (self._counters, self._gauges, self._hists):
                    series = table.get(name)
                    if series is not None and labels in series:
                        del series[labels]
                        if not series:
                            del table[name]
                del self._touched[(name, labels)]
                self.bytes -= self._cost.pop((name, labels), 0)
                for k, v in labels:
                    seen = self._values.get((name, k))
                    if seen is not None and v in seen:
                        seen[v] -= 1
                        if seen[v] <= 0:
                            del seen[v]
                dropped += 1
            self.expired_total += dropped
        return dropped

    # -- exposition -----------------------------------------------------------------------------------------
    def collect(self) -> Iterator[Metric]:
        with self._lock:
            counters = {n: dict(s) for n, s in self._counters.items()}
            gauges = {n: dict(s) for n, s in self._gauges.items()}
            hists = {
                n: {
                    lab: (dict(h.buckets), h.sum, h.count, h.layout, dict(h.exemplars))
                    for lab, h in s.items()
                }
                for n, s in self._hists.items()
            }
        for name in sorted(counters):
            yield _family(CounterMetricFamily, name, counters[name])
        for name in sorted(gauges):
            yield _family(GaugeMetricFamily, name, gauges[name])
        for name in sorted(hists):
            series_h = hists[name]
            layout = next(iter(series_h.values()))[3] if series_h else ()
            if layout == "vm":
                yield _vm_family(name, series_h)
                continue
            fam_h = HistogramMetricFamily(name, describe(name), labels=_label_names(series_h))
            for labels, (buckets, total, count, lay, exemplars) in series_h.items():
                cum = 0
                points: list[Any] = []
                for i, bound in enumerate(lay):
                    cum += buckets.get(i, 0)
                    points.append(_point(_fmt(bound), cum, exemplars.get(i)))
                points.append(_point("+Inf", count, exemplars.get(len(lay))))
                fam_h.add_metric([v for _, v in labels], points, total)
            yield fam_h

    def snapshot(self) -> list[tuple[list[tuple[str, str]], float]]:
        """Every sample as (labels with __name__ first, value): what remote write sends."""
        out: list[tuple[list[tuple[str, str]], float]] = []
        for fam in self.collect():
            for s in fam.samples:
                out.append(([("__name__", s.name), *sorted(s.labels.items())], float(s.value)))
        return out


def _family(
    cls: type[CounterMetricFamily] | type[GaugeMetricFamily], name: str, series: dict[Labels, float]
) -> Metric:
    """A counter or gauge family (prometheus_client drops a counter's `_total` from the family name)."""
    fam = cls(name, describe(name), labels=_label_names(series))
    for labels, v in series.items():
        fam.add_metric([v_ for _, v_ in labels], v)
    return fam


def _label_names(series: dict[Labels, Any]) -> list[str]:
    for labels in series:
        return [k for k, _ in labels]
    return []


def _fmt(bound: float) -> str:
    """Shortest float form for `le` (0.001, 10240, 1.5)."""
    return repr(float(bound)).removesuffix(".0") if float(bound).is_integer() else repr(float(bound))


def _point(le: str, cum: int, exemplar: tuple[str, str, float, float] | None) -> tuple[Any, ...]:
    """One cumulative bucket, with its exemplar when there is one (OpenMetrics shows it; text 0.0.4 not)."""
    if exemplar is None:
        return (le, cum)
    trace_id, span_id, value, ts = exemplar
    return (le, cum, Exemplar({"trace_id": trace_id, "span_id": span_id}, value, ts))


def _vm_family(name: str, series: dict[Labels, tuple[Any, ...]]) -> Metric:
    fam = Metric(name, describe(name), "histogram")
    for labels, (buckets, total, count, *_) in series.items():
        base = dict(labels)
        for idx in sorted(buckets):
            fam.add_sample(f"{name}_bucket", {**base, "vmrange": vm_range(idx)}, buckets[idx])
        fam.add_sample(f"{name}_sum", base, total)
        fam.add_sample(f"{name}_count", base, count)
    return fam


TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"  # what generate_latest writes


class _Collected:
    """Families collected once, in the shape an encoder reads (`collect()`)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


def _accepts_gzip(accept_encoding: str) -> bool:
    for part in accept_encoding.split(","):
        token, _, params = part.strip().partition(";")
        if token.strip().lower() in ("gzip", "*"):
            q = params.strip().removeprefix("q=").strip() if params.strip().startswith("q=") else "1"
            try:
                return float(q) > 0
            except ValueError:
                return False
    return False


def negotiate(registry: Any, accept: str | None, accept_encoding: str | None) -> tuple[bytes, dict[str, str]]:
    """`/protocol/metrics`: the body and headers the scraper asked for.

    `Accept: application/openmetrics-text` gets OpenMetrics 1.0 (with the duration buckets' exemplars,
    when traces are exported), anything else the text format 0.0.4 (prometheus_client's `choose_encoder`
    decides, as its own HTTP handler does). VictoriaMetrics `vmrange` histograms are not OpenMetrics
    histograms (no `le`): with them the text format is served whatever was asked. `Accept-Encoding: gzip`
    gets the body gzipped (a full scrape of ~6 MB shrinks ~10x; level 1: the CPU is the scarce part).
    """
    families = list(registry.collect())
    encoder, content_type = choose_encoder(accept or "")
    if content_type.startswith("application/openmetrics-text") and any(
        "vmrange" in s.labels for fam in families if fam.type == "histogram" for s in fam.samples[:1]
    ):
        encoder, content_type = generate_latest, TEXT_FORMAT
    body = encoder(_Collected(families))
    headers = {"Content-Type": content_type}
    if _accepts_gzip(accept_encoding or ""):
        body = gzip.compress(body, compresslevel=1)
        headers["Content-Encoding"] = "gzip"
    return body, headers
