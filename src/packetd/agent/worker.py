"""A capture worker: one process that captures, decodes, pairs and runs the pipelines for its share of flows.

Workers join one PACKET_FANOUT_HASH group: the kernel hashes both directions of a flow to the same worker,
so workers share no state. Every FLUSH_S a worker ships to the agent what it produced — metric deltas,
spans, roundtrip lines (and, while someone watches `/watch`, every record as JSON) — plus cumulative
counters. Shipping happens on a sender thread behind a bounded queue: the capture loop never waits on the
agent; when the agent falls behind, metric deltas keep accumulating in place and spans/lines beyond the
bound are dropped and counted.

Messages to the agent: ("ready", index, source name, filter), ("data", index, payload), ("done", index),
("error", index, text). From the agent: ("consumers", {...}), ("config", Config), ("stop",), and with
`kubernetes.enabled` ("k8s", ready, upserts, removed): changes to the address table the agent builds from
the Kubernetes API (attribution/kubernetes.py), which the worker names each record's ends from; a new
worker gets the whole table with its arguments. The agent's end of the pipe closing means stop too.

Least privilege: a worker opens its capture socket (or file) first, then, when `sniffer.user` is set,
becomes that user (capture/privileges.py, as `watch --user` does) before it reads a single packet: the
code that parses hostile traffic never runs as root. With `sniffer.processes` on, the worker keeps exactly
PROCESS_CAPS across that change and nothing else (none at all with it off): process attribution lists
other users' /proc/<pid>/fd (a directory only its owner may read: CAP_DAC_READ_SEARCH) and reads the links
in it and /proc/<pid>/ns/net and exe (a ptrace access check: CAP_SYS_PTRACE); both were found needed by
trying each alone. On Linux a worker also asks the kernel to kill it
when the agent dies (PR_SET_PDEATHSIG), so no capture process outlives its agent.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from packetd.agent.config import Config
from packetd.agent.runtime import bpf_from, detect_from, options_from, pipelines_from, rules_from
from packetd.attribution.kubernetes_index import K8sView, Table
from packetd.attribution.processes import HeldRecords, ProcessResolver
from packetd.buildinfo import slot_names  # the compiled build's stats classes have no __slots__
from packetd.capture.source import TICK
from packetd.engine import Engine, EngineConfig
from packetd.flow.table import FlowConfig, flows_for_memory
from packetd.pairing.roundtrip import Roundtrip, dumps

FLUSH_S = 0.5  # how often results reach the agent: metrics freshness vs. IPC overhead
MAX_PENDING_SPANS = 50_000  # per worker, while the agent is slow
MAX_PENDING_LINES = 50_000
MAX_PENDING_WATCH = 10_000
SEND_QUEUE = 4  # batches waiting for the sender thread

log = logging.getLogger("packetd.worker")


def stats_snapshot(engine: Engine, source: Any, extra: dict[str, Any]) -> dict[str, Any]:
    protocols = {}
    for name, st in engine.protocol_stats.items():
        protocols[name] = {
            "messages": st.messages,
            "records": dict(st.records),
            "decode_errors": dict(st.decode_errors),
            "gaps": st.gaps,
            "gap_bytes": st.gap_bytes,
            "sync_lost": st.sync_lost,
            "encrypted": st.encrypted,
            "gave_up": st.gave_up,
            "handovers": st.handovers,
            "unsupported_upgrades": st.unsupported_upgrades,
            "orphans": st.pairing.orphans,
            "evicted": st.pairing.evicted,
            "unanswered": st.pairing.unanswered,
        }
    net = {k: getattr(engine.net.stats, k) for k in slot_names(type(engine.net.stats))}
    flows = {k: getattr(engine.flows.stats, k) for k in slot_names(type(engine.flows.stats))}
    # bounded memos that empty themselves when full (speed lost, never a field): how often they did. The
    # HTTP/1 line memo is a module's, counted only once a rule or detection has imported its decoder
    http1 = sys.modules.get("packetd.protocols.http1.headers")
    memos = {
        "addr_texts": flows["addr_cache_resets"],
        "http1_header_lines": getattr(http1, "line_cache_resets", 0),
        "http1_header_names": getattr(http1, "decision_resets", 0),
    }
    snapshot = {
        "protocols": protocols,
        "net": net,
        "flows": flows,
        "memo_resets": memos,
        "kernel": source.stats(),
        **extra,
    }
    det = engine.detection_stats  # detection by content: what it handed where, and what nobody claimed
    if det.started:
        snapshot["detection"] = {
            "detected": dict(det.detected),
            # "tcp/5555": the agent sums these over workers (add_tree), so keys are plain strings
            "undetected": {f"{t}/{port}": n for (t, port), n in det.undetected_ports.items()},
            "undetected_overflow": det.ports_overflow,
        }
    return snapshot


class _Outbox:
    """What the capture loop produced since the last ship, bounded."""

    def __init__(self) -> None:
        self.watch: list[bytes] = []
        self.dropped = {"spans": 0, "lines": 0, "watch": 0, "logs": 0}


def open_source(config: Config, bpf_expr: str, fanout: int | None) -> Any:
    sn = config.sniffer
    if sn.file:
        from packetd.capture.pcapfile import CaptureFile

        return CaptureFile(sn.file)
    import sys

    from packetd.capture.source import resolve_engine

    if resolve_engine(sn.engine) == "afpacket":  # the same names and meanings as `watch --engine`
        from packetd.capture.afpacket import AfPacketSource

        return AfPacketSource(
            sn.ifaces, bpf_expr, promisc=not sn.no_promisc, block_num=sn.block_num, fanout_group=fanout
        )
    from packetd.capture.libpcap import PcapLiveSource, interfaces

    if sn.ifaces in ("", "any"):
        names = ["any"] if sys.platform.startswith("linux") else [n for n, _ in interfaces()]
    else:
        import re

        names = [n for n, _ in interfaces() if re.search(sn.ifaces, n)]
    return PcapLiveSource(names, bpf_expr, promisc=not sn.no_promisc)


# Capabilities a worker keeps after becoming `sniffer.user` when `sniffer.processes` is on (see above).
PROCESS_CAPS = ("CAP_DAC_READ_SEARCH", "CAP_SYS_PTRACE")


def process_resolver(config: Config) -> ProcessResolver | None:
    """Process attribution for live capture on Linux when `sniffer.processes` (a file's processes are not
    this host's)."""
    if not config.sniffer.processes or config.sniffer.file or not os.path.exists("/proc/self/net/tcp"):
        return None
    return ProcessResolver()


class Worker:
    def __init__(
        self,
        index: int,
        conn: Connection,
        config: Config,
        fanout: int | None,
        consumers: dict[str, bool],
        k8s: tuple[bool, Table] | None = None,
    ) -> None:
        self.index = index
        self.k8s = K8sView(*k8s) if k8s is not None else None  # None: kubernetes.enabled is off
        self.conn = conn
        self.fanout = fanout
        self.consumers = dict(consumers)
        self.outbox = _Outbox()
        self.sendq: queue.Queue[tuple[Any, ...] | None] = queue.Queue(SEND_QUEUE)
        self.stopping = False
        self.config = config
        self._l4_last: dict[int, tuple[int, int, int, int, int, int]] = {}
        self.pending_config: Config | None = None
        self._build(config)

    def _build(self, config: Config) -> None:
        """A new config: new pipelines; the engine keeps its flows that the new rules still cover."""
        self.config = config
        self.rules = rules_from(config)
        self.detect = detect_from(config)
        self.pipelines = pipelines_from(config)
        engine_config = EngineConfig(
            rules=tuple(self.rules),
            ip_versions=frozenset({4, 6})
            if not config.sniffer.ip_version
            else frozenset({int(config.sniffer.ip_version[1])}),
            flow=FlowConfig(
                idle_timeout_ns=config.controller.conn_expired,
                max_flows=flows_for_memory(config.sniffer.max_memory_mb),
            ),
            options=options_from(config),
            detect=self.detect,
        )
        engine: Engine | None = getattr(self, "engine", None)
        if engine is None:
            # process attribution is decided once, at start (a reload does not turn it on or off)
            self.resolver = process_resolver(config)
            self.held = HeldRecords(self.resolver, self._sink) if self.resolver is not None else None
            self.engine = Engine(
                engine_config,
                self.held if self.held is not None else self._sink,
                on_connection=self.resolver.note if self.resolver is not None else None,
            )
            self.engine.flows.on_remove = self._flow_removed
        else:
            engine.reconfigure(engine_config)

    def _sink(self, rt: Roundtrip) -> None:
        if self.k8s is not None:
            rt = self.k8s.attach(rt)
        line = self.pipelines.process(rt)  # the record's JSON line when a pipeline made it
        if self.consumers.get("watch"):
            watch = self.outbox.watch
            if len(watch) >= MAX_PENDING_WATCH:
                self.outbox.dropped["watch"] += 1
            else:
                watch.append(line if line is not None else dumps(rt))

    # -- shipping ----------------------------------------------------------------------------------------------
    def _sender(self) -> None:
        while True:
            item = self.sendq.get()
            if item is None:
                return
            try:
                self.conn.send(item)
            except (OSError, EOFError, BrokenPipeError):
                return

    def flush(self, source: Any, final: bool = False) -> None:
        p = self.pipelines
        spans, lines = p.spans, p.lines
        if len(spans) > MAX_PENDING_SPANS:
            self.outbox.dropped["spans"] += len(spans) - MAX_PENDING_SPANS
            del spans[: len(spans) - MAX_PENDING_SPANS]
        if len(lines) > MAX_PENDING_LINES:
            self.outbox.dropped["lines"] += len(lines) - MAX_PENDING_LINES
            del lines[: len(lines) - MAX_PENDING_LINES]
        logs = p.logs  # OTLP log records: the same bound as the lines they carry
        if len(logs) > MAX_PENDING_LINES:
            self.outbox.dropped["logs"] += len(logs) - MAX_PENDING_LINES
            del logs[: len(logs) - MAX_PENDING_LINES]
        if self.sendq.full() and not final:
            return  # the agent is behind: keep accumulating (metrics are deltas, nothing is lost)
        self._harvest_l4()
        payload = {
            "metrics": p.agg.take(),
            "spans": spans,
            "lines": lines,
            "logs": logs,
            "otlp": p.otlp.take() if p.otlp is not None else None,
            "watch": self.outbox.watch,
            "stats": stats_snapshot(
                self.engine,
                source,
                {"filters": p.filter_stats(), "outbox_dropped": dict(self.outbox.dropped)},
            ),
        }
        p.spans, p.lines, p.logs, self.outbox.watch = [], [], [], []
        self.sendq.put(("data", self.index, payload))

    def _harvest_l4(self) -> None:
        """Layer-4 counters (reference §4.7), counted once per connection, not per map entry: live flows
        are harvested at each flush, ended ones by `_flow_removed` when they leave the table."""
        flows = self.engine.flows
        live = flows.flows()  # a copy of the table: taken once per flush
        tcp = sum(1 for f in live if f.transport == 6)
        agg = self.pipelines.agg
        agg.set("tcp_active_conns", (), float(tcp))
        agg.set("udp_active_conns", (), float(flows.stats.active - tcp))
        if not self.config.controller.layer4_metrics.enabled:
            return
        seen = set()
        for flow in live:
            seen.add(flow.id)
            self._l4_flow(flow)
        for fid in list(self._l4_last):
            if fid not in seen:
                del self._l4_last[fid]

    def _flow_removed(self, flow: Any, reason: str) -> None:
        if reason == "expired":
            self.pipelines.agg.inc(
                "tcp_remove_expired_conns_total" if flow.transport == 6 else "udp_remove_expired_conns_total",
                (),
            )
        if self.config.controller.layer4_metrics.enabled:
            self._l4_flow(flow)
            self._l4_last.pop(flow.id, None)

    def _l4_flow(self, flow: Any) -> None:
        last = self._l4_last.get(flow.id, (0, 0, 0, 0, 0, 0))
        s0, s1 = flow.streams
        now = (s0.packets, s0.bytes, s0.retrans, s1.packets, s1.bytes, s1.retrans)
        if now == last:
            return
        self._l4_last[flow.id] = now
        agg = self.pipelines.agg
        required = self.config.controller.layer4_metrics.required_labels
        proto = "tcp" if flow.transport == 6 else "udp"
        for d, (src, dst) in enumerate(((flow.client, flow.server), (flow.server, flow.client))):
            labels = _l4_labels(required, src, dst)
            packets, nbytes, retrans = (
                now[3 * d] - last[3 * d],
                now[3 * d + 1] - last[3 * d + 1],
                now[3 * d + 2] - last[3 * d + 2],
            )
            if packets:
                agg.inc(f"{proto}_received_packets_total", labels, packets)
            if nbytes:
                agg.inc(f"{proto}_received_bytes_total", labels, nbytes)
            if retrans and proto == "tcp":
                agg.inc("tcp_skipped_packets_total", labels, retrans)

    def control(self) -> None:
        while self.conn.poll():
            try:
                msg = self.conn.recv()
            except (EOFError, OSError):  # the agent is gone: nobody to ship to
                self.stopping = True
                return
            if msg[0] == "stop":
                self.stopping = True
            elif msg[0] == "consumers":
                self.consumers = dict(msg[1])
            elif msg[0] == "config":
                self.pending_config = msg[1]
            elif msg[0] == "k8s" and self.k8s is not None:
                self.k8s.update(msg[1], msg[2], msg[3])

    # -- the loop ------------------------------------------------------------------------------------------------
    def run(self) -> None:
        bpf_expr = bpf_from(self.rules, self.detect)
        source = open_source(self.config, bpf_expr, self.fanout)
        if self.config.sniffer.user:
            from packetd.capture.privileges import drop_privileges

            drop_privileges(self.config.sniffer.user, PROCESS_CAPS if self.resolver is not None else ())
        _die_with_parent()  # after the change of user, which clears the setting
        sender = threading.Thread(target=self._sender, name="sender", daemon=True)
        sender.start()
        self.conn.send(("ready", self.index, getattr(source, "name", "?"), bpf_expr))
        frame = self.engine.frame
        held = self.held
        next_flush = time.monotonic() + FLUSH_S
        n = 0
        try:
            for ts, lt, data in source:
                if lt == TICK:
                    self.engine.tick(ts)
                    if held is not None:
                        held.flush()  # a quiet moment: connections noted since the last pass
                else:
                    frame(ts, lt, data)
                    if held is not None and ts >= held.due:
                        held.flush()
                    n += 1
                    if n & 1023:
                        continue
                now = time.monotonic()
                if now >= next_flush:
                    next_flush = now + FLUSH_S
                    self.control()
                    if self.stopping:
                        break
                    self.flush(source)
                    if self.pending_config is not None:
                        # what the old pipelines produced was just shipped; rules change in place
                        self._build(self.pending_config)
                        self.pending_config = None
                        source_filter = bpf_from(self.rules, self.detect)
                        if hasattr(source, "set_filter"):
                            source.set_filter(source_filter)
                        log.info(
                            "worker %d: configuration reloaded (filter: %s)",
                            self.index,
                            source_filter or "none",
                        )
            if self.config.sniffer.file:
                self.engine.finish()
                for warning in getattr(source, "warnings", ()):  # damage, unknown link types, clamped times
                    log.warning("%s", warning)
        finally:
            if held is not None:
                held.flush()
            if self.resolver is not None:
                self.resolver.close()
            self.flush(source, final=True)
            if self.config.sniffer.file:
                self.sendq.put(("done", self.index))
            self.sendq.put(None)
            sender.join(timeout=10)
            source.close()


def _l4_labels(
    required: Sequence[str], src: tuple[str, int], dst: tuple[str, int]
) -> tuple[tuple[str, str], ...]:
    values = {
        "source.host": ("src_host", src[0]),
        "source.port": ("src_port", str(src[1])),
        "destination.host": ("dst_host", dst[0]),
        "destination.port": ("dst_port", str(dst[1])),
    }
    return tuple(values[k] for k in required)


def _die_with_parent() -> None:
    import sys

    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1  # <linux/prctl.h>
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)


def worker_main(
    index: int,
    conn: Connection,
    config: Config,
    fanout: int | None,
    consumers: dict[str, bool],
    log_level: str,
    k8s: tuple[bool, Table] | None = None,
) -> None:
    """Entry point of a worker process (spawned)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the agent stops workers by message, after a flush
    signal.signal(signal.SIGTERM, lambda *_: None)
    handler: logging.Handler = logging.StreamHandler()
    if not config.logger.stdout:
        # the agent's log file; the agent rotates it, and a watched handler follows it to the new file
        handler = logging.handlers.WatchedFileHandler(config.logger.filename)
        logging.raiseExceptions = False  # a log file it may not reopen (after sniffer.user): no raw stderr
    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format=f"%(asctime)s %(levelname)s worker-{index} %(message)s",
        handlers=[handler],
    )
    logging.captureWarnings(True)
    try:
        Worker(index, conn, config, fanout, consumers, k8s).run()
    except PermissionError:
        from packetd.capture.privileges import PRIVILEGE_HINT

        conn.send(("error", index, PRIVILEGE_HINT))
    except OSError as exc:  # the capture cannot be opened (no such interface, ...): said, not a traceback
        log.error("worker %d: %s", index, exc)
        conn.send(("error", index, f"cannot capture: {exc.strerror or exc}"))
    except Exception as exc:  # reported to the agent, which logs it and keeps serving
        log.exception("worker %d failed", index)
        conn.send(("error", index, f"{type(exc).__name__}: {exc}"))
