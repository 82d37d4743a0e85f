"""`packetd agent`: the process that runs on every node.

    main process                                   capture workers (sniffer.workers, spawned)
    ├─ HTTP API (/metrics, /protocol/metrics,      ├─ AF_PACKET ring in one PACKET_FANOUT_HASH group
    │  /watch, /-/reload, probes)                  ├─ engine: flows → decoders → pairing
    ├─ metric store (merged deltas, budgets)  <──  ├─ pipelines: metrics deltas, spans, roundtrip lines
    ├─ exporters: remote write, OTLP, lines   <──  └─ every 0.5 s: ship results + counters
    └─ config: load, validate, reload (SIGHUP, POST /-/reload, file change)

Reload applies the whole config. Rules and decoder options go to the running workers, which keep the
connections the new rules still cover; a change to the capture itself (interfaces, engine, file, ring
size, worker count, IP version) restarts the workers (their counters are carried over; flows restart).
Processors and pipelines are rebuilt in the workers; exporters, the store and the HTTP server in the main
process when their sections change. An invalid new config is rejected, logged and counted; the old one
keeps running.
"""

from __future__ import annotations

import logging
import logging.handlers
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection, wait
from typing import Any, cast

from prometheus_client import CollectorRegistry

from packetd.agent.config import Config, ConfigError, load_config
from packetd.agent.http import Api, HttpServer, WatchHub
from packetd.agent.runtime import default_rules_note, validate
from packetd.agent.selfmetrics import add_tree, self_registry
from packetd.agent.storage import MetricStore
from packetd.agent.worker import worker_main
from packetd.export import remote_write
from packetd.export.otlp import OtlpLogs, OtlpMetrics, OtlpMetricStore, Transport
from packetd.export.senders import RemoteWrite, RoundtripLines, Traces

log = logging.getLogger("packetd")

AUTO_RELOAD_CHECK_S = 5.0  # how often controller.autoReload looks at the file
WORKER_STOP_S = 10.0  # a worker has this long to ship its last results and exit
RESTART_BACKOFF_S = 2.0
CAPTURE_KEYS = ("file", "ifaces", "engine", "ip_version", "no_promisc", "block_num", "workers")
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


class _WorkerHandle:
    def __init__(self, index: int, proc: Any, conn: Connection, fanout: int | None) -> None:
        self.index = index
        self.proc = proc
        self.conn = conn
        self.fanout = fanout  # its PACKET_FANOUT group: a restarted worker joins the same one
        self.ready = False
        self.done = False  # the capture file was read
        self.closed = False  # the pipe reached EOF: the process is gone
        self.stats: dict[str, Any] = {}
        self.error: str | None = None


class Agent:
    def __init__(self, config_path: str | None, config: Config, git_hash: str = "unknown") -> None:
        self.config_path = config_path
        self.config = config
        self.git_hash = git_hash
        ms = config.metrics_storage
        self.store = MetricStore(
            ms.series_limit,
            ms.expired,
            ms.protocol_series_limit,
            ms.label_value_limit,
            int(ms.max_scrape_mb * 1024 * 1024),
        )
        self.protocol_registry = CollectorRegistry(auto_describe=False)
        self.protocol_registry.register(self.store)
        self.hub = WatchHub()
        self.hub.on_change = lambda n: self._set_consumers()
        self.self_registry = self_registry(self._view, git_hash)
        self.workers: list[_WorkerHandle] = []
        self.carry: dict[str, Any] = {}  # counters of workers that are gone
        self.reloads = 0
        self.reload_failures = 0
        self.worker_restarts = 0
        self._stop = threading.Event()
        self._reload_requested = threading.Event()
        self._reload_done = threading.Condition()
        self._reload_result: tuple[bool, str] | None = None
        self._lock = threading.RLock()
        self.http: HttpServer | None = None
        self.lines: RoundtripLines | None = None
        self.remote: RemoteWrite | None = None
        self.traces: Traces | None = None
        self.otlp_store: OtlpMetricStore | None = None
        self.otlp_metrics: OtlpMetrics | None = None
        self.otlp_logs: OtlpLogs | None = None
        self._mtime = self._config_mtime()
        self._generation = 0
        self.exit_status = 0

    # -- views ----------------------------------------------------------------------------------------------
    def _view(self) -> dict[str, Any]:
        with self._lock:
            merged: dict[str, Any] = {}
            add_tree(merged, self.carry)
            for w in self.workers:
                add_tree(merged, w.stats)
            exporters = [
                e.stats
                for e in (self.lines, self.remote, self.traces, self.otlp_metrics, self.otlp_logs)
                if e is not None
            ]
            overflowed, expired = dict(self.store.overflowed), self.store.expired_total
            if self.otlp_store is not None:
                for metric, n in self.otlp_store.overflowed.items():  # naming: otel gives the store
                    overflowed[metric] = overflowed.get(metric, 0) + n  # the same semconv names
                expired += self.otlp_store.expired
            return {
                "workers": merged,
                "exporters": exporters,
                "watch_dropped": self.hub.dropped,
                "watch_subscribers": self.hub.subscribers,
                "reloads": self.reloads,
                "reload_failures": self.reload_failures,
                "worker_restarts": self.worker_restarts,
                "overflowed": overflowed,
                "label_overflowed": dict(self.store.label_overflowed),
                "labels_truncated": dict(self.store.truncated),
                "series_expired": expired,
            }

    def ready(self) -> bool:
        with self._lock:
            return bool(self.workers) and all(w.ready or w.done for w in self.workers)

    def _consumers(self) -> dict[str, bool]:
        return {"watch": self.hub.subscribers > 0}

    def _set_consumers(self) -> None:
        self._broadcast(("consumers", self._consumers()))

    def _broadcast(self, msg: tuple[Any, ...]) -> None:
        """To every worker; a worker whose pipe is gone is seen (and handled) by `_pump`."""
        with self._lock:
            for w in self.workers:
                try:
                    w.conn.send(msg)
                except OSError:
                    pass

    # -- components -----------------------------------------------------------------------------------------
    def _start_exporters(self, cfg: Config) -> None:
        ex = cfg.exporter
        if ex.roundtrips.enabled:
            self.lines = RoundtripLines(
                ex.roundtrips.console,
                ex.roundtrips.filename,
                ex.roundtrips.max_size,
                ex.roundtrips.max_backups,
                sys.stdout.buffer,
            )
        if ex.metrics.enabled:
            self.remote = RemoteWrite(
                ex.metrics.endpoint,
                ex.metrics.interval / 1e9,
                ex.metrics.timeout / 1e9,
                ex.metrics.header,
                ex.metrics.queue_size,
                self.store.snapshot,
                remote_write.identity_labels(ex.metrics.external_labels),
            )
            self.remote.start()
        if ex.traces.enabled:
            t = ex.traces
            self.traces = Traces(
                t.endpoint, t.batch, t.interval / 1e9, t.timeout / 1e9, t.header, t.gzip, t.queue_size
            )
            self.traces.start()
        om, ol = ex.otlp_metrics, ex.otlp_logs
        if om.enabled:
            if self.otlp_store is None or self.otlp_store.series_limit != om.series_limit:
                self.otlp_store = OtlpMetricStore(om.series_limit)  # cumulative: kept across reloads
            self.otlp_store.expired_ns = cfg.metrics_storage.expired
            transport = Transport(om.protocol, om.endpoint, om.timeout / 1e9, om.header, om.gzip)
            self.otlp_metrics = OtlpMetrics(self.otlp_store, transport, om.interval / 1e9, om.queue_size)
            self.otlp_metrics.start()
        if ol.enabled:
            transport = Transport(ol.protocol, ol.endpoint, ol.timeout / 1e9, ol.header, ol.gzip)
            self.otlp_logs = OtlpLogs(transport, ol.batch, ol.interval / 1e9, ol.queue_size)
            self.otlp_logs.start()

    def _stop_exporters(self, cfg: Config) -> None:
        if self.remote is not None:
            self.remote.stop(cfg.exporter.metrics.timeout / 1e9)
            self.remote = None
        if self.traces is not None:
            self.traces.stop(cfg.exporter.traces.timeout / 1e9)
            self.traces = None
        if self.otlp_metrics is not None:
            self.otlp_metrics.stop(cfg.exporter.otlp_metrics.timeout / 1e9)
            self.otlp_metrics = None
        if self.otlp_logs is not None:
            self.otlp_logs.stop(cfg.exporter.otlp_logs.timeout / 1e9)
            self.otlp_logs = None
        if self.lines is not None:
            self.lines.close()
            self.lines = None

    def _start_http(self, cfg: Config) -> None:
        if not cfg.server.enabled:
            return
        api = Api(
            self.self_registry,
            self.protocol_registry,
            self.hub,
            self.request_reload,
            self.set_level,
            self.ready,
            cfg.server.admin_token,
        )
        try:
            self.http = HttpServer(cfg.server.address, api, cfg.server.timeout / 1e9)
        except OSError as exc:
            log.error(
                "server cannot listen on %s: %s; running without the HTTP API",
                cfg.server.address,
                exc.strerror,
            )
            self.http = None
            return
        self.http.start()
        log.info("server listening on %s (port %d)", cfg.server.address, self.http.port)

    def _start_workers(self, cfg: Config) -> None:
        n = 1 if cfg.sniffer.file else cfg.sniffer.workers
        self._generation += 1
        fanout = ((os.getpid() << 4) + self._generation) & 0xFFFF if n > 1 else None
        for i in range(n):
            self._spawn(i, cfg, fanout)

    def _spawn(self, index: int, cfg: Config, fanout: int | None) -> None:
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(
            target=worker_main,
            args=(index, child, cfg, fanout, self._consumers(), cfg.logger.level),
            name=f"packetd-worker-{index}",
            daemon=True,
        )
        proc.start()
        child.close()
        with self._lock:
            self.workers.append(_WorkerHandle(index, proc, parent, fanout))

    def _stop_workers(self) -> None:
        with self._lock:
            workers = list(self.workers)
            self._broadcast(("stop",))
        deadline = time.monotonic() + WORKER_STOP_S
        while any(not w.closed for w in workers) and time.monotonic() < deadline:
            self._pump(0.2, workers)
        for w in workers:
            if w.proc.is_alive():
                w.proc.terminate()
                w.proc.join(2)
        with self._lock:
            for w in workers:
                self._retire(w)

    def _retire(self, w: _WorkerHandle) -> None:
        """A worker leaves: its counters are carried over so that nothing goes backwards."""
        with self._lock:
            add_tree(self.carry, w.stats)
            w.stats = {}
            if w in self.workers:
                self.workers.remove(w)

    # -- messages from workers -----------------------------------------------------------------------------
    def _pump(self, timeout: float, workers: list[_WorkerHandle] | None = None) -> None:
        with self._lock:
            handles = list(workers if workers is not None else self.workers)
        conns = {w.conn: w for w in handles if not w.closed}
        if not conns:
            time.sleep(timeout)
            return
        for ready in wait(list(conns), timeout):
            conn = cast(Connection, ready)
            w = conns[conn]
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                w.closed = True
                self._worker_gone(w)
                continue
            self._handle(w, msg)

    def _handle(self, w: _WorkerHandle, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind == "data":
            payload = msg[2]
            now = time.time_ns()
            self.store.merge(payload["metrics"], now)
            if payload["spans"] and self.traces is not None:
                self.traces.offer(payload["spans"])
            if payload["lines"] and self.lines is not None:
                self.lines.write(payload["lines"])
            if self.otlp_store is not None and self.otlp_metrics is not None:
                self.otlp_store.merge(payload.get("otlp"), now)
            if payload.get("logs") and self.otlp_logs is not None:
                self.otlp_logs.offer(payload["logs"])
            if payload["watch"]:
                self.hub.publish(payload["watch"])
            with self._lock:
                w.stats = payload["stats"]
        elif kind == "ready":
            w.ready = True
            log.info("worker %d capturing on %s (filter: %s)", w.index, msg[2], msg[3] or "none")
        elif kind == "done":
            w.done = True
            log.info("worker %d: capture file %s read", w.index, self.config.sniffer.file)
        elif kind == "error":
            w.error = msg[2]
            log.error("worker %d: %s", w.index, msg[2])

    def _worker_gone(self, w: _WorkerHandle) -> None:
        w.proc.join(1)
        if w.done or self._stop.is_set() or w not in self.workers:
            return  # finished (a read capture file keeps its last counters in place) or being stopped
        self._retire(w)
        if not w.ready and w.error is not None:
            # could not even start capturing (privilege, interface): nothing to serve
            log.error("capture worker %d could not start: %s", w.index, w.error)
            self.exit_status = 1
            self._stop.set()
            return
        self.worker_restarts += 1
        log.warning("worker %d exited (%s); restarting", w.index, w.error or f"status {w.proc.exitcode}")
        time.sleep(RESTART_BACKOFF_S)
        self._spawn(w.index, self.config, w.fanout)

    # -- reload ---------------------------------------------------------------------------------------------
    def request_reload(self) -> tuple[bool, str]:
        """From the HTTP thread: reload in the main loop and wait for the outcome."""
        with self._reload_done:
            self._reload_result = None
            self._reload_requested.set()
            if not self._reload_done.wait_for(lambda: self._reload_result is not None, timeout=60):
                return False, "reload timed out"
            result: tuple[bool, str] = self._reload_result or (False, "reload lost")
            return result

    def _config_mtime(self) -> float:
        try:
            return os.stat(self.config_path).st_mtime if self.config_path else 0.0
        except OSError:
            return 0.0

    def reload(self, why: str) -> tuple[bool, str]:
        if not self.config_path:
            return False, "no config file to reload"
        try:
            new, warnings = load_config(self.config_path)
            validate(new)
        except ConfigError as exc:
            self.reload_failures += 1
            log.error("reload (%s) rejected, the running config stays: %s", why, exc)
            return False, str(exc)
        for warning in warnings:
            log.warning("%s", warning)
        if (note := default_rules_note(new)) is not None:
            log.info("%s", note)
        old = self.config
        started = time.monotonic()
        if any(getattr(old.sniffer, k) != getattr(new.sniffer, k) for k in CAPTURE_KEYS):
            self._stop_workers()
            self.config = new
            self._start_workers(new)
        else:
            self.config = new
            self._broadcast(("config", new))
        if old.exporter != new.exporter:
            self._stop_exporters(old)
            self._start_exporters(new)
        self.store.series_limit = new.metrics_storage.series_limit
        self.store.expired_ns = new.metrics_storage.expired
        self.store.protocol_limits = dict(new.metrics_storage.protocol_series_limit)
        self.store.label_limits = dict(new.metrics_storage.label_value_limit)
        self.store.max_bytes = int(new.metrics_storage.max_scrape_mb * 1024 * 1024)
        if old.server != new.server:
            if self.http is not None:
                self.http.stop()
                self.http = None
            self._start_http(new)
        self.set_level(new.logger.level)
        self.reloads += 1
        self._mtime = self._config_mtime()
        msg = f"reload ({why}) #{self.reloads} applied in {time.monotonic() - started:.2f}s"
        log.info("%s", msg)
        return True, msg

    def set_level(self, level: str) -> bool:
        lv = LEVELS.get(level)
        if lv is None:
            return False
        logging.getLogger("packetd").setLevel(lv)
        return True

    # -- the loop ---------------------------------------------------------------------------------------------
    def run(self) -> int:
        cfg = self.config
        self.set_level(cfg.logger.level)
        self._start_exporters(cfg)
        self._start_http(cfg)
        self._start_workers(cfg)
        signal.signal(signal.SIGHUP, lambda *_: self._reload_requested.set())
        signal.signal(signal.SIGTERM, lambda *_: self._stop.set())
        signal.signal(signal.SIGINT, lambda *_: self._stop.set())
        next_expire = time.monotonic() + max(1.0, self.store.expired_ns / 2e9)
        next_mtime = time.monotonic() + AUTO_RELOAD_CHECK_S
        while not self._stop.is_set():
            self._pump(0.25)
            now = time.monotonic()
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                result = self.reload("request")
                with self._reload_done:
                    self._reload_result = result
                    self._reload_done.notify_all()
            if self.config.controller.auto_reload and now >= next_mtime:
                next_mtime = now + AUTO_RELOAD_CHECK_S
                mtime = self._config_mtime()
                if mtime != self._mtime:
                    self._mtime = mtime
                    self.reload("file changed")
            if now >= next_expire:
                next_expire = now + max(1.0, self.store.expired_ns / 2e9)
                self.store.expire(time.time_ns())
        log.info("stopping")
        self._stop_workers()
        self._stop_exporters(self.config)
        if self.http is not None:
            self.http.stop()
        return self.exit_status


def setup_logging(cfg: Config) -> None:
    root = logging.getLogger("packetd")
    root.handlers.clear()
    if cfg.logger.stdout:
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
    else:
        handler = logging.handlers.RotatingFileHandler(
            cfg.logger.filename,
            maxBytes=cfg.logger.max_size * 1024 * 1024,
            backupCount=cfg.logger.max_backups,
        )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(LEVELS[cfg.logger.level])
    root.propagate = False


def run_agent(config_path: str | None, explicit: bool, git_hash: str) -> int:
    """The `agent` command; returns the exit status."""
    if config_path and (explicit or os.path.exists(config_path)):
        config, warnings = load_config(config_path)
    else:
        config, warnings = (
            Config(),
            [f"no config file {config_path!r}: running with the defaults (see `packetd config`)"],
        )
        config_path = None
    validate(config)
    setup_logging(config)
    for w in warnings:
        log.warning("%s", w)
    if (note := default_rules_note(config)) is not None:
        log.info("%s", note)
    return Agent(config_path, config, git_hash).run()
