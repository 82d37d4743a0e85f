"""`packetd agent`: the process that runs on every node.

    main process                                   capture workers (sniffer.workers, spawned)
    ├─ HTTP API (/metrics, /protocol/metrics,      ├─ AF_PACKET ring in one PACKET_FANOUT_HASH group
    │  /watch, /-/reload, probes)                  ├─ engine: flows → decoders → pairing
    ├─ metric store (merged deltas, budgets)  <──  ├─ pipelines: metrics deltas, spans, roundtrip lines
    ├─ exporters: remote write, OTLP, lines   <──  └─ every 0.5 s: ship results + counters
    ├─ config: load, validate, reload (SIGHUP, POST /-/reload, file change)
    ├─ kubernetes.enabled: list+watch threads → address table ──> each worker (diffs, once a second)
    └─ supervisor: every loop above restarted on failure, or the process exits 1 (agent/supervisor.py)

Reload applies exactly what the file says, or nothing. First everything that can fail is done without
touching what runs: the file is loaded and validated (rules, regexes, options, pipelines), a changed
roundtrip file is opened, a changed `server.address` is bound. Any failure rejects the reload (logged with
the key and the reason, counted, answered 500 on POST /-/reload) and the old config keeps running
unchanged. Then a change to the capture itself (interfaces, engine, file, ring size, worker count, IP
version, user) replaces the workers: the old ones are stopped (their last results shipped, their counters
carried over) before the new ones start, so exactly `sniffer.workers` capture processes run and nothing is
counted twice; if the new ones cannot capture, the old settings are started again and the reload is
rejected. Other sniffer and controller changes go to the running workers, which keep the connections the
new rules still cover. Exporters whose section changed are replaced (the old one flushes first); the new
HTTP server serves before the old one is closed; settings that need no rebinding change in place.

Privileges: the main process stays as it was started (root, or the container's capabilities) because it
must be able to start capture workers again — after a crash, or a reload that changes the capture; the
workers, which parse the traffic, become `sniffer.user` once their socket is open. The main process parses
no packets: it reads its config, merges counters and serves the HTTP API (loopback by default).

SIGTERM (or SIGINT) stops the agent within `controller.drainTimeout`: workers ship what they hold, the
exporters flush, then the process exits; what is not done by then is abandoned (a second signal abandons
it at once) and the exit status is 1.
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
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any, cast

from prometheus_client import CollectorRegistry

from packetd.agent.config import Config, ConfigError, load_config
from packetd.agent.http import Api, HttpServer, WatchHub
from packetd.agent.runtime import default_rules_note, validate
from packetd.agent.selfmetrics import add_tree, self_registry
from packetd.agent.storage import MetricStore
from packetd.agent.supervisor import Supervisor
from packetd.agent.worker import worker_main
from packetd.attribution.kubernetes_index import Table, diff
from packetd.export import remote_write
from packetd.export.otlp import OtlpLogs, OtlpMetrics, OtlpMetricStore, Transport
from packetd.export.senders import RemoteWrite, RoundtripLines, Traces

log = logging.getLogger("packetd")

AUTO_RELOAD_CHECK_S = 5.0  # how often controller.autoReload looks at the file
WORKER_STOP_S = 10.0  # a worker has this long to ship its last results and exit
WORKER_START_S = 30.0  # a reload waits this long for new workers to capture (spawning imports packetd)
RELOAD_WAIT_S = 90.0  # POST /-/reload waits this long for the main loop's answer
MAIN_STALL_S = 120.0  # /healthz fails when the main loop has not come round for this long
WORKER_SILENT_S = 30.0  # a capturing worker ships every 0.5 s (ticks when idle): this long silent is hung
FATAL_LINGER_S = 1.0  # after giving up: probes answer 503 (with the reason) this long before the drain
# `processes` too: a worker keeps the capabilities process attribution needs only if it was on at start.
CAPTURE_KEYS = (
    "file",
    "ifaces",
    "engine",
    "ip_version",
    "no_promisc",
    "block_num",
    "workers",
    "user",
    "processes",
)
K8S_PUSH_S = 1.0  # how often changes to the Kubernetes address table reach the workers (at most)
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}


def _threaded_exporters(cfg: Config | None) -> list[tuple[str, int]]:
    """The Agent attributes holding exporter threads, each with its flush timeout (ns) under `cfg`."""
    ex = cfg.exporter if cfg is not None else None
    return [
        ("remote", ex.metrics.timeout if ex else 0),
        ("traces", ex.traces.timeout if ex else 0),
        ("otlp_metrics", ex.otlp_metrics.timeout if ex else 0),
        ("otlp_logs", ex.otlp_logs.timeout if ex else 0),
    ]


class _WorkerHandle:
    def __init__(self, index: int, proc: Any, conn: Connection, fanout: int | None) -> None:
        self.index = index
        self.proc = proc
        self.conn = conn
        self.fanout = fanout  # its PACKET_FANOUT group: a restarted worker joins the same one
        self.ready = False
        self.done = False  # the capture file was read
        self.closed = False  # the pipe reached EOF: the process is gone
        self.stopping = False  # asked to stop: its exit is not a failure
        self.stats: dict[str, Any] = {}
        self.error: str | None = None
        self.last_seen = time.monotonic()  # its last message: a hung worker is found by its silence
        self.killed = False


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
        self.supervisor = Supervisor(self._stop)
        self._reload_requested = threading.Event()
        self._reload_done = threading.Condition()
        self._reload_serial = threading.Lock()  # one POST /-/reload at a time waits for its own answer
        self._reload_result: list[tuple[bool, str]] = []  # the main loop's answer, under _reload_done
        self._lock = threading.RLock()
        self.http: HttpServer | None = None
        self.http_rejected = 0  # of HTTP servers a reload replaced
        self.lines: RoundtripLines | None = None
        self.remote: RemoteWrite | None = None
        self.traces: Traces | None = None
        self.otlp_store: OtlpMetricStore | None = None
        self.otlp_metrics: OtlpMetrics | None = None
        self.otlp_logs: OtlpLogs | None = None
        self._mtime = self._config_mtime()
        self._generation = 0
        self._respawn: list[tuple[float, int, int | None]] = []  # (when, index, fanout) after a crash
        self._starting = False  # a reload waits for new workers: their failure is the reload's
        self._beat = time.monotonic()  # the main loop came round
        self.exit_status = 0
        self.kube: Any = None  # attribution.kubernetes.KubeWatcher when kubernetes.enabled (decided at start)
        self._k8s_sent: Table = {}  # the table the workers hold
        self._k8s_ready = False
        self._k8s_generation = -1
        self._next_k8s = 0.0

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
                "internal_errors": dict(self.supervisor.errors),
                "http_rejected": self.http_rejected + (self.http.rejected if self.http else 0),
                "overflowed": overflowed,
                "label_overflowed": dict(self.store.label_overflowed),
                "labels_truncated": dict(self.store.truncated),
                "series_expired": expired,
                "kubernetes": self.kube.snapshot() if self.kube is not None else None,
            }

    def health(self) -> str | None:
        """None while every loop runs; else why not (then /healthz and /readyz answer 503)."""
        if self.supervisor.fatal is not None:
            return f"gave up on {self.supervisor.fatal}"
        stalled = time.monotonic() - self._beat
        if stalled > MAIN_STALL_S:
            return f"the main loop has not run for {stalled:.0f}s"
        return None

    def ready(self) -> bool:
        with self._lock:
            if self._respawn or self._stop.is_set():
                return False
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

    # -- components: built (files opened, ports bound) before anything that runs is touched ------------------
    def _make_lines(self, cfg: Config) -> RoundtripLines | None:
        rt = cfg.exporter.roundtrips
        if not rt.enabled:
            return None
        try:
            return RoundtripLines(rt.console, rt.filename, rt.max_size, rt.max_backups, sys.stdout.buffer)
        except OSError as exc:
            raise ConfigError(
                f"'exporter.roundtrips.filename': '{rt.filename}' cannot be opened for writing: "
                f"{exc.strerror or exc}"
            ) from None

    def _make_remote(self, cfg: Config) -> RemoteWrite | None:
        m = cfg.exporter.metrics
        if not m.enabled:
            return None
        remote = RemoteWrite(
            m.endpoint,
            m.interval / 1e9,
            m.timeout / 1e9,
            m.header,
            m.queue_size,
            self.store.snapshot,
            remote_write.identity_labels(m.external_labels),
        )
        remote.supervise = self.supervisor.run
        return remote

    def _make_otlp_metrics(self, cfg: Config) -> tuple[OtlpMetricStore | None, OtlpMetrics | None]:
        """The exporter and its store: the store is cumulative, kept across reloads unless resized."""
        om = cfg.exporter.otlp_metrics
        if not om.enabled:
            return self.otlp_store, None
        store = self.otlp_store
        if store is None or store.series_limit != om.series_limit:
            store = OtlpMetricStore(om.series_limit)
        transport = Transport(om.protocol, om.endpoint, om.timeout / 1e9, om.header, om.gzip)
        exporter = OtlpMetrics(store, transport, om.interval / 1e9, om.queue_size)
        exporter.supervise = self.supervisor.run
        return store, exporter

    def _make_otlp_logs(self, cfg: Config) -> OtlpLogs | None:
        ol = cfg.exporter.otlp_logs
        if not ol.enabled:
            return None
        transport = Transport(ol.protocol, ol.endpoint, ol.timeout / 1e9, ol.header, ol.gzip)
        exporter = OtlpLogs(transport, ol.batch, ol.interval / 1e9, ol.queue_size)
        exporter.supervise = self.supervisor.run
        return exporter

    def _make_traces(self, cfg: Config) -> Traces | None:
        t = cfg.exporter.traces
        if not t.enabled:
            return None
        traces = Traces(
            t.endpoint, t.batch, t.interval / 1e9, t.timeout / 1e9, t.header, t.gzip, t.queue_size
        )
        traces.supervise = self.supervisor.run
        return traces

    def _make_http(self, cfg: Config) -> HttpServer | None:
        if not cfg.server.enabled:
            return None
        api = Api(
            self.self_registry,
            self.protocol_registry,
            self.hub,
            self.request_reload,
            self.set_level,
            self.ready,
            cfg.server.admin_token,
            health=self.health,
            on_error=lambda exc: self.supervisor.note("http", exc),
        )
        try:
            return HttpServer(cfg.server.address, api, cfg.server.timeout / 1e9)
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ConfigError(
                f"'server.address': cannot listen on '{cfg.server.address}': {reason}"
            ) from None

    def _stage(self, old: Config | None, new: Config) -> dict[str, Any]:
        """What `new` changes, built and not yet running; ConfigError (with everything staged closed)."""
        staged: dict[str, Any] = {}
        try:
            if old is not None and _log_target(old) != _log_target(new):
                staged["log"] = log_handler(new)
            if old is None or old.exporter.roundtrips != new.exporter.roundtrips:
                staged["lines"] = self._make_lines(new)
            if old is None or old.exporter.metrics != new.exporter.metrics:
                staged["remote"] = self._make_remote(new)
            if old is None or old.exporter.traces != new.exporter.traces:
                staged["traces"] = self._make_traces(new)
            if old is None or old.exporter.otlp_metrics != new.exporter.otlp_metrics:
                staged["otlp_metrics"] = self._make_otlp_metrics(new)
            if old is None or old.exporter.otlp_logs != new.exporter.otlp_logs:
                staged["otlp_logs"] = self._make_otlp_logs(new)
            if (
                old is None
                or (old.server.enabled, old.server.address) != (new.server.enabled, new.server.address)
                or (self.http is None and new.server.enabled)
            ):
                staged["http"] = self._make_http(new)
        except BaseException:
            self._unstage(staged)
            raise
        return staged

    def _unstage(self, staged: dict[str, Any]) -> None:
        lines, http, handler = staged.get("lines"), staged.get("http"), staged.get("log")
        if handler is not None:
            handler.close()
        if lines is not None:
            lines.close()
        if http is not None:
            http.stop()

    def _commit(self, old: Config | None, new: Config, staged: dict[str, Any], deadline: float) -> None:
        """Swap in what was staged; the old part of each pair is stopped (and flushed) after."""
        if "log" in staged:
            install_log_handler(staged["log"], new.logger.level)
        if "lines" in staged:
            previous_lines, self.lines = self.lines, staged["lines"]
            if previous_lines is not None:
                previous_lines.close()
        if "otlp_metrics" in staged:
            store, staged["otlp_metrics"] = staged["otlp_metrics"]
        for name, timeout_ns in _threaded_exporters(old):
            if name not in staged:
                continue
            previous = getattr(self, name)
            if previous is not None:
                previous.stop(max(0.0, min(timeout_ns / 1e9, deadline - time.monotonic())))
            if name == "otlp_metrics":
                self.otlp_store = store  # after the old exporter's last flush from the old one
            setattr(self, name, staged[name])
            if staged[name] is not None:
                staged[name].start()
        if "http" in staged:
            previous_http, self.http = self.http, staged["http"]
            if self.http is not None:
                self.http.start(self.supervisor.run)
                log.info("server listening on %s (port %d)", new.server.address, self.http.port)
            if previous_http is not None:
                self.http_rejected += previous_http.rejected
                previous_http.stop()
        elif self.http is not None:
            self.http.update(new.server.timeout / 1e9, new.server.admin_token)
        ms = new.metrics_storage
        self.store.series_limit = ms.series_limit
        self.store.expired_ns = ms.expired
        self.store.protocol_limits = dict(ms.protocol_series_limit)
        self.store.label_limits = dict(ms.label_value_limit)
        self.store.max_bytes = int(ms.max_scrape_mb * 1024 * 1024)
        if self.otlp_store is not None:
            self.otlp_store.expired_ns = ms.expired
        self.set_level(new.logger.level)

    def _stop_exporters(self, cfg: Config, deadline: float) -> None:
        def left(timeout_ns: int) -> float:
            return max(0.0, min(timeout_ns / 1e9, deadline - time.monotonic()))

        for name, timeout_ns in _threaded_exporters(cfg):
            exporter = getattr(self, name)
            if exporter is not None:
                exporter.stop(left(timeout_ns))
                setattr(self, name, None)
        if self.lines is not None:
            self.lines.close()
            self.lines = None

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
            args=(index, child, cfg, fanout, self._consumers(), cfg.logger.level, self._k8s_state()),
            name=f"packetd-worker-{index}",
            daemon=True,
        )
        proc.start()
        child.close()
        with self._lock:
            self.workers.append(_WorkerHandle(index, proc, parent, fanout))

    # -- kubernetes -------------------------------------------------------------------------------------------
    def _k8s_state(self) -> tuple[bool, Table] | None:
        """What a new worker starts with: None when kubernetes attribution is off."""
        return (self._k8s_ready, dict(self._k8s_sent)) if self.kube is not None else None

    def _start_kube(self) -> None:
        """The informer threads (attribution/kubernetes.py); capture waits up to `syncTimeout` for the
        first complete list, so that the first records already carry their names."""
        from packetd.attribution.kubernetes import KubeWatcher, make_client

        k = self.config.kubernetes
        try:
            client = make_client(k.api_server, k.kubeconfig)
        except Exception as exc:  # no in-cluster account, an unreadable kubeconfig: said in one line
            raise ConfigError(
                f"'kubernetes': cannot configure the API client: {type(exc).__name__}: {exc}"
            ) from None
        self.kube = KubeWatcher(client, supervise=self.supervisor.run)
        self.kube.start()
        if not self.kube.synced.wait(k.sync_timeout / 1e9):
            log.warning(
                "kubernetes: no complete list within %.0fs: capture starts, records gain k8s fields once "
                "it completes",
                k.sync_timeout / 1e9,
            )
        self._push_k8s(time.monotonic())

    def _push_k8s(self, now: float) -> None:
        """Changes to the address table since the last push, to every worker (at most every K8S_PUSH_S)."""
        if self.kube is None or now < self._next_k8s:
            return
        self._next_k8s = now + K8S_PUSH_S
        current = self.kube.table()
        if current is None or current[0] == self._k8s_generation:
            return
        self._k8s_generation, table = current
        upserts, removed = diff(self._k8s_sent, table)
        self._k8s_sent = dict(table)
        self._k8s_ready = True
        self._broadcast(("k8s", True, upserts, removed))

    def _stop_workers(self, timeout_s: float = WORKER_STOP_S) -> None:
        with self._lock:
            workers = list(self.workers)
            self._respawn.clear()  # a crashed worker of this generation is not started again
            for w in workers:
                w.stopping = True
            self._broadcast(("stop",))
        deadline = time.monotonic() + timeout_s
        while any(not w.closed for w in workers) and time.monotonic() < deadline:
            self._pump(0.2, workers)
        for w in workers:
            if w.proc.is_alive():
                log.warning("worker %d did not stop within %.0fs: killed", w.index, timeout_s)
                w.proc.kill()
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

    def _await_workers(self, timeout_s: float) -> str | None:
        """After a capture change: None once every new worker captures, else what went wrong."""
        self._starting = True
        try:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if self._stop.is_set():
                    return "the agent is stopping"
                with self._lock:
                    workers = list(self.workers)
                failed = [w for w in workers if w.closed and not w.done]
                if failed:
                    return f"worker {failed[0].index}: {failed[0].error or 'exited'}"
                if workers and all(w.ready or w.done for w in workers):
                    return None
                self._pump(0.2, workers)
            return f"the new workers did not start capturing within {timeout_s:.0f}s"
        finally:
            self._starting = False

    # -- messages from workers -----------------------------------------------------------------------------
    def _pump(self, timeout: float, workers: list[_WorkerHandle] | None = None) -> None:
        self._beat = time.monotonic()
        with self._lock:
            handles = list(workers if workers is not None else self.workers)
        conns = {w.conn: w for w in handles if not w.closed}
        if not conns:
            self._stop.wait(timeout)
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
        w.last_seen = time.monotonic()
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
        if w.done or w.stopping or self._stop.is_set() or w not in self.workers:
            return  # finished (a read capture file keeps its last counters in place) or being stopped
        if self._starting and not w.ready:
            return  # a reload's new worker: _await_workers reports it and the reload is undone
        self._retire(w)
        if not w.ready and w.error is not None:
            # could not even start capturing (privilege, interface): nothing to serve
            log.error("capture worker %d could not start: %s", w.index, w.error)
            self.exit_status = 1
            self._stop.set()
            return
        self.worker_restarts += 1
        delay = self.supervisor.failure(
            "worker", None, f"worker {w.index} exited ({w.error or f'status {w.proc.exitcode}'})"
        )
        if delay is not None:
            with self._lock:
                self._respawn.append((time.monotonic() + delay, w.index, w.fanout))

    def _kill_silent(self, now: float) -> None:
        """A worker that captures but has shipped nothing for WORKER_SILENT_S is hung (a loop that never
        returns): it is killed, and its end is a worker failure like any other (logged, counted, restarted)."""
        with self._lock:
            workers = list(self.workers)
        for w in workers:
            if w.ready and not (w.done or w.stopping or w.closed or w.killed):
                if now - w.last_seen > WORKER_SILENT_S:
                    w.killed = True
                    w.error = f"sent nothing for {now - w.last_seen:.0f}s: killed as hung"
                    w.proc.kill()

    def _respawn_due(self, now: float) -> None:
        with self._lock:
            due = [r for r in self._respawn if r[0] <= now]
            self._respawn = [r for r in self._respawn if r[0] > now]
        for _, index, fanout in due:
            self._spawn(index, self.config, fanout)

    # -- reload ---------------------------------------------------------------------------------------------
    def request_reload(self) -> tuple[bool, str]:
        """From the HTTP thread: reload in the main loop and wait for the outcome."""
        with self._reload_serial, self._reload_done:
            if self._stop.is_set():
                return False, "the agent is stopping"
            self._reload_result.clear()
            self._reload_requested.set()
            deadline = time.monotonic() + RELOAD_WAIT_S
            while True:
                if self._reload_result:
                    return self._reload_result[0]
                if self._stop.is_set():
                    return False, "the agent is stopping"
                left = deadline - time.monotonic()
                if left <= 0:
                    return False, "reload timed out"
                self._reload_done.wait(min(left, 0.5))

    def _config_mtime(self) -> float:
        try:
            return os.stat(self.config_path).st_mtime if self.config_path else 0.0
        except OSError:
            return 0.0

    def _reject(self, why: str, message: str) -> tuple[bool, str]:
        self.reload_failures += 1
        log.error("reload (%s) rejected, the running config stays: %s", why, message)
        return False, message

    def reload(self, why: str) -> tuple[bool, str]:
        if not self.config_path:
            return False, "no config file to reload"
        self._mtime = self._config_mtime()
        old = self.config
        try:
            new, warnings = load_config(self.config_path)
            validate(new)
            staged = self._stage(old, new)
        except ConfigError as exc:
            return self._reject(why, str(exc))
        for warning in warnings:
            log.warning("%s", warning)
        if (note := default_rules_note(new)) is not None:
            log.info("%s", note)
        if old.kubernetes != new.kubernetes:
            log.warning("kubernetes: a changed section takes effect when the agent restarts")
        started = time.monotonic()
        try:
            if any(getattr(old.sniffer, k) != getattr(new.sniffer, k) for k in CAPTURE_KEYS):
                self._stop_workers()
                self._start_workers(new)
                problem = self._await_workers(WORKER_START_S)
                if problem is not None:
                    self._stop_workers()
                    self._start_workers(old)
                    self._unstage(staged)
                    return self._reject(why, f"the new capture settings do not work: {problem}")
            else:
                self._broadcast(("config", new))
        except BaseException:
            self._unstage(staged)
            raise
        self.config = new
        self._commit(old, new, staged, time.monotonic() + WORKER_STOP_S)
        self.reloads += 1
        msg = f"reload ({why}) #{self.reloads} applied in {time.monotonic() - started:.2f}s"
        log.info("%s", msg)
        return True, msg

    def set_level(self, level: str) -> bool:
        lv = LEVELS.get(level)
        if lv is None:
            return False
        logging.getLogger("packetd").setLevel(lv)
        logging.getLogger().setLevel(lv)  # third-party libraries' records, through the same handler
        return True

    # -- the loop ---------------------------------------------------------------------------------------------
    def start(self, notes: Sequence[tuple[int, str]] = ()) -> None:
        """Open and bind what the config names (ConfigError when that fails), then log `notes` (level,
        message: after the opening, so that a config refused there is one line with nothing before it),
        then start every part."""
        self.set_level(self.config.logger.level)
        staged = self._stage(None, self.config)
        for level, message in notes:
            log.log(level, "%s", message)
        threading.excepthook = self.supervisor.excepthook
        self._commit(None, self.config, staged, time.monotonic())
        if self.config.kubernetes.enabled:
            self._start_kube()
        self._start_workers(self.config)

    def _kill_workers(self) -> None:
        """What `_stop_workers` could not stop (it failed itself): gone before the process exits."""
        with self._lock:
            workers, self.workers = list(self.workers), []
        for w in workers:
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join(2)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGHUP:
            self._reload_requested.set()
        elif self._stop.is_set():
            self._force_exit(f"second {signal.Signals(signum).name}")
        else:
            self._stop.set()

    def _force_exit(self, why: str) -> None:
        """The drain did not finish (or was cut short): nothing more is waited for."""
        log.error("%s: exiting without waiting for the drain to finish", why)
        with self._lock:
            workers = list(self.workers)
        for w in workers:
            if w.proc.is_alive():
                w.proc.kill()
        logging.shutdown()
        os._exit(1)

    def run(self) -> int:
        for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        self._next_expire = time.monotonic() + max(1.0, self.store.expired_ns / 2e9)
        self._next_mtime = time.monotonic() + AUTO_RELOAD_CHECK_S
        while not self._stop.is_set():
            try:
                self._step()
            except Exception as exc:  # the main loop's supervisor: logged, counted, the loop goes on
                delay = self.supervisor.failure("main", exc)
                if delay is None:
                    break
                self._stop.wait(delay)
        return self._shutdown()

    def _step(self) -> None:
        self._pump(0.25)
        now = time.monotonic()
        self._kill_silent(now)
        self._respawn_due(now)
        self._push_k8s(now)
        if self._reload_requested.is_set():
            self._reload_requested.clear()
            result = (False, "the reload failed: an internal error (logged)")
            try:
                result = self.reload("request")
            finally:
                with self._reload_done:
                    self._reload_result[:] = [result]
                    self._reload_done.notify_all()
        if self.config.controller.auto_reload and now >= self._next_mtime:
            self._next_mtime = now + AUTO_RELOAD_CHECK_S
            if self._config_mtime() != self._mtime:
                self.reload("file changed")
        if now >= self._next_expire:
            self._next_expire = now + max(1.0, self.store.expired_ns / 2e9)
            self.store.expire(time.time_ns())

    def _shutdown(self) -> int:
        drain_s = self.config.controller.drain_timeout / 1e9
        deadline = time.monotonic() + drain_s
        watchdog = threading.Timer(drain_s + 1.0, self._force_exit, args=(f"drain timeout ({drain_s:.0f}s)",))
        watchdog.daemon = True
        watchdog.start()
        with self._reload_done:
            self._reload_done.notify_all()  # a waiting POST /-/reload is answered while the API still serves
        if self.supervisor.fatal is not None:
            time.sleep(FATAL_LINGER_S)  # the probes say why before the API goes away
        log.info("stopping")
        steps: list[Callable[[], None]] = [
            lambda: self._stop_workers(max(0.5, min(WORKER_STOP_S, drain_s / 2))),
            self._kill_workers,
            lambda: self._stop_exporters(self.config, deadline),
            lambda: self.http.stop() if self.http is not None else None,
            lambda: self.kube.stop() if self.kube is not None else None,
        ]
        for step in steps:
            try:
                step()
            except Exception as exc:  # a failing step must not skip the others, nor the exit
                self.supervisor.note("main", exc)
                self.exit_status = 1
        watchdog.cancel()
        if self.supervisor.fatal is not None:
            self.exit_status = 1
        return self.exit_status


class _Origin(logging.Filter):
    """Third-party records (OpenTelemetry, urllib3, warnings) say whose they are; ours need not."""

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        record.origin = "" if name == "packetd" or name.startswith("packetd.") else f"{name}: "
        return True


def _log_target(cfg: Config) -> tuple[bool, str, int, int]:
    lg = cfg.logger
    return (lg.stdout, lg.filename, lg.max_size, lg.max_backups)


def log_handler(cfg: Config) -> logging.Handler:
    """The handler `logger` asks for, its file opened (ConfigError when it cannot be)."""
    if cfg.logger.stdout:
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
    else:
        try:
            handler = logging.handlers.RotatingFileHandler(
                cfg.logger.filename,
                maxBytes=cfg.logger.max_size * 1024 * 1024,
                backupCount=cfg.logger.max_backups,
            )
        except OSError as exc:
            raise ConfigError(
                f"'logger.filename': '{cfg.logger.filename}' cannot be opened for writing: "
                f"{exc.strerror or exc}"
            ) from None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(origin)s%(message)s"))
    handler.addFilter(_Origin())
    return handler


def install_log_handler(handler: logging.Handler, level: str) -> None:
    """One handler, on the root logger: the agent's records and every library's go through it."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        if old is not handler:
            old.close()
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    ours = logging.getLogger("packetd")
    ours.handlers.clear()
    ours.setLevel(LEVELS[level])
    ours.propagate = True
    logging.captureWarnings(True)  # warnings.warn from libraries: a log record, not a raw stderr line


def setup_logging(cfg: Config) -> None:
    install_log_handler(log_handler(cfg), cfg.logger.level)


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
    notes = [(logging.WARNING, w) for w in warnings]
    if (note := default_rules_note(config)) is not None:
        notes.append((logging.INFO, note))
    agent = Agent(config_path, config, git_hash)
    agent.start(notes)
    return agent.run()
