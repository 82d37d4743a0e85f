"""Self-observability on `/metrics`: what the agent saw, dropped, decoded, exported (reference §12, and what
§18.26 says was missing). Counters are cumulative over the agent's life: when workers are restarted (a
reload that changes the capture), their last counters are carried over so nothing goes backwards.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from packetd import __version__


def add_tree(into: dict[str, Any], other: dict[str, Any]) -> None:
    """Sum nested dicts of numbers (worker counter snapshots)."""
    for k, v in other.items():
        if isinstance(v, dict):
            add_tree(into.setdefault(k, {}), v)
        elif isinstance(v, int | float) and not isinstance(v, bool):
            into[k] = into.get(k, 0) + v
        elif isinstance(v, list | tuple) and len(v) == 2 and all(isinstance(x, int) for x in v):
            cur = into.get(k, (0, 0))
            into[k] = (cur[0] + v[0], cur[1] + v[1])


# Server ports with their own packetd_detect_undetected_connections series. Each worker bounds its table at
# flow/detect.py MAX_UNDETECTED_PORTS, but several workers' tables summed may name more: the first ports
# seen keep their series for the agent's life (a counter must not move between series), the rest are
# summed into the port="__overflow__" series. Same bound as a worker's table.
MAX_UNDETECTED_PORT_SERIES = 1024
OVERFLOW = "__overflow__"


class SelfMetrics(Collector):
    def __init__(self, source: Callable[[], dict[str, Any]], git_hash: str) -> None:
        self._source = source  # the agent's merged view: {"workers": {...}, "exporters": [...], ...}
        self._git_hash = git_hash
        self._started = time.time()
        self._undetected_ports: set[str] = set()  # "tcp/5555" given a series, at most the bound above

    def collect(self) -> Iterator[Metric]:
        view = self._source()
        w = view.get("workers", {})
        info = GaugeMetricFamily(
            "packetd_build_info",
            "packetd build information (always 1)",
            labels=["version", "git_hash", "python"],
        )
        info.add_metric([__version__, self._git_hash, platform.python_version()], 1)
        yield info
        yield GaugeMetricFamily(
            "packetd_uptime_seconds", "Seconds since the agent started", value=time.time() - self._started
        )
        rec = CounterMetricFamily(
            "packetd_sniffer_received_packets",
            "Packets the kernel or libpcap delivered, per interface",
            labels=["iface"],
        )
        drop = CounterMetricFamily(
            "packetd_sniffer_dropped_packets",
            "Packets dropped before packetd could read them, per interface",
            labels=["iface"],
        )
        for iface, (received, dropped) in sorted(w.get("kernel", {}).items()):
            rec.add_metric([iface], received)
            drop.add_metric([iface], dropped)
        yield rec
        yield drop
        net = w.get("net", {})
        frames = CounterMetricFamily(
            "packetd_packets", "Packets decoded, and why some were not", labels=["outcome"]
        )
        for key in (
            "segments",
            "non_ip",
            "other_transport",
            "malformed",
            "bad_linktype",
            "filtered_ip_version",
            "loopback_duplicates",
        ):
            frames.add_metric([key], net.get(key, 0))
        yield frames
        flows = w.get("flows", {})
        yield GaugeMetricFamily(
            "packetd_flows_active", "Connections tracked now", value=flows.get("active", 0)
        )
        ev = CounterMetricFamily("packetd_flows", "Connection lifecycle events", labels=["event"])
        for key in ("created", "closed", "expired", "evicted", "midstream"):
            ev.add_metric([key], flows.get(key, 0))
        yield ev
        tcp = CounterMetricFamily("packetd_tcp_segments", "TCP segments that needed work", labels=["event"])
        for key in (
            "duplicates",
            "out_of_order",
            "ooo_overflows",
            "ooo_segment_overflows",
            "hole_timeouts",
            "late_segments",
            "rst_out_of_window",
        ):
            tcp.add_metric([key], flows.get(key, 0))
        yield tcp
        memos = CounterMetricFamily(
            "packetd_memo_resets",
            "Bounded memos emptied because they were full (work is redone, nothing is lost)",
            labels=["memo"],
        )
        for key, n in sorted(w.get("memo_resets", {}).items()):
            memos.add_metric([key], n)
        yield memos
        resets = CounterMetricFamily(
            "packetd_decode_resets", "Decoder resets after malformed input", labels=["protocol", "reason"]
        )
        gaps = CounterMetricFamily(
            "packetd_decode_gaps", "Capture gaps passed to decoders", labels=["protocol"]
        )
        gap_bytes = CounterMetricFamily(
            "packetd_decode_gap_bytes", "Bytes lost in capture gaps", labels=["protocol"]
        )
        orphans = CounterMetricFamily(
            "packetd_orphan_responses", "Responses with no request to answer", labels=["protocol"]
        )
        unanswered = CounterMetricFamily(
            "packetd_unanswered_requests", "Requests whose response never came", labels=["protocol"]
        )
        evicted = CounterMetricFamily(
            "packetd_evicted_requests",
            "Pending requests pushed out by the per-connection bound",
            labels=["protocol"],
        )
        records = CounterMetricFamily("packetd_roundtrips", "Records produced", labels=["protocol", "kind"])
        encrypted = CounterMetricFamily(
            "packetd_encrypted_connections", "Connections found encrypted (TLS)", labels=["protocol"]
        )
        for proto, st in sorted(w.get("protocols", {}).items()):
            for reason, n in sorted(st.get("decode_errors", {}).items()):
                resets.add_metric([proto, reason], n)
            gaps.add_metric([proto], st.get("gaps", 0))
            gap_bytes.add_metric([proto], st.get("gap_bytes", 0))
            orphans.add_metric([proto], st.get("orphans", 0))
            unanswered.add_metric([proto], st.get("unanswered", 0))
            evicted.add_metric([proto], st.get("evicted", 0))
            encrypted.add_metric([proto], st.get("encrypted", 0))
            for kind, n in sorted(st.get("records", {}).items()):
                records.add_metric([proto, kind], n)
        yield from (resets, gaps, gap_bytes, orphans, unanswered, evicted, records, encrypted)
        yield from self._detection(w.get("detection", {}))
        filt = CounterMetricFamily(
            "packetd_filter_roundtrips", "roundtripsfilter decisions", labels=["pipeline", "decision"]
        )
        for pipe, st in sorted(w.get("filters", {}).items()):
            filt.add_metric([pipe, "kept"], st.get("kept", 0))
            for reason, n in sorted(st.get("dropped", {}).items()):
                filt.add_metric([pipe, reason], n)
        yield filt
        outbox = CounterMetricFamily(
            "packetd_worker_outbox_dropped",
            "Items a worker dropped because the agent fell behind",
            labels=["what"],
        )
        for what, n in sorted(w.get("outbox_dropped", {}).items()):
            outbox.add_metric([what], n)
        yield outbox
        q = GaugeMetricFamily(
            "packetd_exporter_queue_length", "Items waiting in an exporter's queue", labels=["exporter"]
        )
        sent = CounterMetricFamily(
            "packetd_exporter_sent", "Items an exporter delivered", labels=["exporter"]
        )
        failed = CounterMetricFamily(
            "packetd_exporter_failed", "Send attempts that failed", labels=["exporter"]
        )
        dropped = CounterMetricFamily(
            "packetd_exporter_dropped", "Items lost to an exporter's queue bound", labels=["exporter"]
        )
        for st in view.get("exporters", []):
            q.add_metric([st.name], st.queue_length)
            sent.add_metric([st.name], st.sent)
            failed.add_metric([st.name], st.failed)
            dropped.add_metric([st.name], st.dropped)
        yield from (q, sent, failed, dropped)
        yield CounterMetricFamily(
            "packetd_watch_dropped",
            "Lines /watch subscribers were too slow to take",
            value=view.get("watch_dropped", 0),
        )
        yield GaugeMetricFamily(
            "packetd_watch_subscribers", "Open /watch streams", value=view.get("watch_subscribers", 0)
        )
        yield CounterMetricFamily(
            "packetd_reloads", "Configuration reloads applied", value=view.get("reloads", 0)
        )
        yield CounterMetricFamily(
            "packetd_reload_failures", "Configuration reloads rejected", value=view.get("reload_failures", 0)
        )
        internal = CounterMetricFamily(
            "packetd_internal_errors",
            "Unexpected failures of the agent's own loops (logged with a traceback; the loop restarted)",
            labels=["component"],
        )
        for component, n in sorted(view.get("internal_errors", {}).items()):
            internal.add_metric([component], n)
        yield internal
        yield CounterMetricFamily(
            "packetd_http_rejected_connections",
            "HTTP API connections answered 503 because the connection limit was reached",
            value=view.get("http_rejected", 0),
        )
        yield CounterMetricFamily(
            "packetd_worker_restarts",
            "Capture workers restarted after a failure",
            value=view.get("worker_restarts", 0),
        )
        overflow = CounterMetricFamily(
            "packetd_metric_series_overflow",
            "Observations folded into __overflow__ series by the series budget",
            labels=["metric"],
        )
        for metric, n in sorted(view.get("overflowed", {}).items()):
            overflow.add_metric([metric], n)
        yield overflow
        for name, text, key in (
            ("packetd_metric_label_overflow", "Label values replaced by __overflow__ (labelValueLimit)", "label_overflowed"),
            ("packetd_metric_label_truncated", "Label values cut to maxLabelBytes", "labels_truncated"),
        ):  # fmt: skip
            fam = CounterMetricFamily(name, text, labels=["label"])
            for label, n in sorted(view.get(key, {}).items()):
                fam.add_metric([label], n)
            yield fam
        yield CounterMetricFamily(
            "packetd_metric_series_expired", "Idle metric series dropped", value=view.get("series_expired", 0)
        )
        kube = view.get("kubernetes")
        if kube is not None:
            yield from _kubernetes(kube)

    def _detection(self, det: dict[str, Any]) -> Iterator[Metric]:
        """Detection by content (flow/detect.py DetectionStats): connections handed to each protocol, and
        those no protocol claimed per server port, bounded (MAX_UNDETECTED_PORT_SERIES)."""
        detected = CounterMetricFamily(
            "packetd_detect_detected_connections",
            "Connections no rule claimed that detection by content handed to a protocol",
            labels=["protocol"],
        )
        for proto, n in sorted(det.get("detected", {}).items()):
            detected.add_metric([proto], n)
        yield detected
        undetected = CounterMetricFamily(
            "packetd_detect_undetected_connections",
            "Connections no rule and no detector claimed, per transport and server port "
            f'(beyond {MAX_UNDETECTED_PORT_SERIES} ports: port="{OVERFLOW}")',
            labels=["transport", "port"],
        )
        admitted = self._undetected_ports
        overflow = det.get("undetected_overflow", 0)  # beyond a worker's own table bound
        for key, n in sorted(det.get("undetected", {}).items()):
            if key not in admitted and len(admitted) < MAX_UNDETECTED_PORT_SERIES:
                admitted.add(key)
            if key in admitted:
                transport, _, port = key.partition("/")
                undetected.add_metric([transport, port], n)
            else:
                overflow += n
        if overflow:
            undetected.add_metric([OVERFLOW, OVERFLOW], overflow)
        yield undetected


def _kubernetes(kube: dict[str, Any]) -> Iterator[Metric]:
    """The informers' counters (attribution/kubernetes.py), per resource kind; only with kubernetes.enabled."""
    for name, text, key, family in (
        ("packetd_kubernetes_errors", "Failed list/watch requests to the Kubernetes API (retried with back-off)", "errors", CounterMetricFamily),
        ("packetd_kubernetes_relists", "Lists done again after 410 Gone (history compacted)", "relists", CounterMetricFamily),
        ("packetd_kubernetes_events", "Watch events applied to the index", "events", CounterMetricFamily),
        ("packetd_kubernetes_dropped_objects", "Objects not kept: the index's bound for the kind was reached", "dropped", CounterMetricFamily),
        ("packetd_kubernetes_objects", "Objects in the index", "objects", GaugeMetricFamily),
    ):  # fmt: skip
        fam = family(name, text, labels=["resource"])
        for resource, n in sorted(kube.get(key, {}).items()):
            fam.add_metric([resource], n)
        yield fam
    yield GaugeMetricFamily(
        "packetd_kubernetes_synced",
        "1 once every kind was listed (records carry k8s fields from then on)",
        value=1 if kube.get("synced") else 0,
    )
    yield CounterMetricFamily(
        "packetd_kubernetes_malformed_objects",
        "Objects skipped because a field had the wrong shape",
        value=kube.get("malformed", 0),
    )
    yield GaugeMetricFamily(
        "packetd_kubernetes_ambiguous_addresses",
        "Addresses two live objects claim, left out of the table (never guessed)",
        value=kube.get("ambiguous", 0),
    )


def self_registry(source: Callable[[], dict[str, Any]], git_hash: str) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(SelfMetrics(source, git_hash))
    ProcessCollector(registry=reg)
    PlatformCollector(registry=reg)
    return reg
