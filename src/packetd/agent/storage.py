"""The agent's metric store: merged worker deltas, series budgets, idle expiry, Prometheus exposition.

* Budget — at most `series_limit` label sets per metric; a new label set beyond it is folded into one
  series whose label values are all `__overflow__`, and `packetd_metric_series_overflow_total{metric}`
  counts every roundtrip folded so.
* Expiry — a series not updated for `expired` is dropped (a restarted pod or a vanished path must not be
  reported forever); `packetd_metric_series_expired_total` counts them.
* Exposition — a custom `Collector` on our own `CollectorRegistry`: prometheus_client writes the text
  format (HELP, TYPE, escaping) for `/protocol/metrics`; `snapshot()` gives remote write the same series.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from packetd.pipeline.metrics import describe, vm_range

OVERFLOW = "__overflow__"
Labels = tuple[tuple[str, str], ...]


class _Hist:
    __slots__ = ("buckets", "count", "layout", "sum")

    def __init__(self, layout: Any) -> None:
        self.layout = layout  # tuple of upper bounds, or "vm"
        self.buckets: dict[int, int] = {}
        self.sum = 0.0
        self.count = 0


class MetricStore(Collector):
    def __init__(self, series_limit: int = 10_000, expired_ns: int = 300 * 1_000_000_000) -> None:
        self.series_limit = series_limit
        self.expired_ns = expired_ns
        self._lock = threading.Lock()
        # name → labels → value / histogram; last update per (name, labels)
        self._counters: dict[str, dict[Labels, float]] = {}
        self._gauges: dict[str, dict[Labels, float]] = {}
        self._hists: dict[str, dict[Labels, _Hist]] = {}
        self._touched: dict[tuple[str, Labels], int] = {}
        self.overflowed: dict[str, int] = {}
        self.expired_total = 0

    # -- merging -------------------------------------------------------------------------------------------
    def _admit(self, table: dict[Labels, Any], name: str, labels: Labels) -> Labels:
        if labels in table or len(table) < self.series_limit:
            return labels
        self.overflowed[name] = self.overflowed.get(name, 0) + 1
        return tuple((k, OVERFLOW) for k, _ in labels)

    def merge(self, deltas: dict[str, Any], now_ns: int) -> None:
        with self._lock:
            for (name, raw_labels), v in deltas.get("counters", {}).items():
                table = self._counters.setdefault(name, {})
                labels = self._admit(table, name, raw_labels)
                table[labels] = table.get(labels, 0.0) + v
                self._touched[(name, labels)] = now_ns
            for (name, raw_labels), v in deltas.get("gauges", {}).items():
                table_g = self._gauges.setdefault(name, {})
                labels = self._admit(table_g, name, raw_labels)
                table_g[labels] = v
                self._touched[(name, labels)] = now_ns
            for (name, raw_labels), (counts, total, n, layout) in deltas.get("histograms", {}).items():
                table_h = self._hists.setdefault(name, {})
                labels = self._admit(table_h, name, raw_labels)
                h = table_h.get(labels)
                if h is None:
                    h = table_h[labels] = _Hist(layout)
                for idx, c in counts.items():
                    h.buckets[idx] = h.buckets.get(idx, 0) + c
                h.sum += total
                h.count += n
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
                dropped += 1
            self.expired_total += dropped
        return dropped

    # -- exposition -----------------------------------------------------------------------------------------
    def collect(self) -> Iterator[Metric]:
        with self._lock:
            counters = {n: dict(s) for n, s in self._counters.items()}
            gauges = {n: dict(s) for n, s in self._gauges.items()}
            hists = {
                n: {lab: (dict(h.buckets), h.sum, h.count, h.layout) for lab, h in s.items()}
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
            for labels, (buckets, total, count, lay) in series_h.items():
                cum = 0
                points = []
                for i, bound in enumerate(lay):
                    cum += buckets.get(i, 0)
                    points.append((_fmt(bound), cum))
                points.append(("+Inf", count))
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


def _vm_family(name: str, series: dict[Labels, tuple[dict[int, int], float, int, Any]]) -> Metric:
    fam = Metric(name, describe(name), "histogram")
    for labels, (buckets, total, count, _) in series.items():
        base = dict(labels)
        for idx in sorted(buckets):
            fam.add_sample(f"{name}_bucket", {**base, "vmrange": vm_range(idx)}, buckets[idx])
        fam.add_sample(f"{name}_sum", base, total)
        fam.add_sample(f"{name}_count", base, count)
    return fam
