"""One supervisor for every long-running loop of the agent.

    component           runs in                    restarted by
    main                the main thread            the loop itself, after `failure()`'s back-off
    http                the HTTP server's thread   `run()`
    exporter_metrics    the exporter's thread      `run()`
    exporter_traces     the exporter's thread      `run()`
    exporter_otlp*      the exporter's thread      `run()`   (otlpMetrics, otlpLogs)
    kubernetes          six informer threads       `run()`   (API failures are retried by the loop itself)
    worker              a capture process          the agent, after `failure()`'s back-off
    thread              any other thread           nobody: `threading.excepthook` logs and counts it

A failure is an unexpected exception (or a capture process that died). It is logged once, with its
traceback, counted in `packetd_internal_errors_total{component}`, and the component runs again after a
back-off (0.5 s, doubling up to 30 s). MAX_FAILURES failures of one component within FAILURE_WINDOW_S mean
it cannot be kept running: the supervisor gives up, `/readyz` and `/healthz` answer 503, the agent drains
and exits with status 1, and the orchestrator starts a fresh process. Expected failures (a backend that is
down, a full disk) are not failures here: the exporters count and retry those themselves.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable

log = logging.getLogger("packetd")

MAX_FAILURES = 5  # of one component within the window: a crash loop, not bad luck
FAILURE_WINDOW_S = 60.0
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
COMPONENTS = (
    "main",
    "http",
    "worker",
    "exporter_metrics",
    "exporter_traces",
    "exporter_otlpMetrics",
    "exporter_otlpLogs",
    "kubernetes",
    "thread",
)


class Supervisor:
    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop  # the agent's: set when the supervisor gives up
        self.errors: Counter[str] = Counter({c: 0 for c in COMPONENTS})
        self.fatal: str | None = None  # why the agent must exit, once it gave up
        self._history: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def failure(self, component: str, exc: BaseException | None, what: str = "") -> float | None:
        """Count and log one failure; the back-off before the restart, or None when it gives up."""
        now = time.monotonic()
        with self._lock:
            self.errors[component] += 1
            history = self._history.setdefault(component, deque(maxlen=MAX_FAILURES))
            history.append(now)
            recent = sum(1 for t in history if now - t <= FAILURE_WINDOW_S)
        detail = what or (f"{type(exc).__name__}: {exc}" if exc is not None else "failed")
        if recent >= MAX_FAILURES:
            log.error("%s failed: %s", component, detail, exc_info=exc)
            self.give_up(component, f"{recent} failures within {FAILURE_WINDOW_S:.0f}s")
            return None
        delay = min(MAX_BACKOFF_S, FIRST_BACKOFF_S * float(1 << (recent - 1)))
        log.error("%s failed: %s; restarting in %.1fs", component, detail, delay, exc_info=exc)
        return delay

    def note(self, component: str, exc: BaseException) -> None:
        """A failure of one request or item (the loop carries on): logged and counted, never fatal."""
        with self._lock:
            self.errors[component] += 1
        log.error("%s: %s: %s", component, type(exc).__name__, exc, exc_info=exc)

    def give_up(self, component: str, why: str) -> None:
        with self._lock:
            if self.fatal is not None:
                return
            self.fatal = f"{component}: {why}"
        log.critical("%s cannot be kept running (%s): the agent stops with status 1", component, why)
        self.stop.set()

    def run(self, component: str, body: Callable[[], None], stopped: threading.Event) -> None:
        """A thread's target: `body` until it returns (a clean stop), restarted after each failure."""
        while True:
            try:
                body()
                return
            except Exception as exc:  # the point of a supervisor: anything, logged and counted
                delay = self.failure(component, exc)
            if delay is None or stopped.wait(delay) or self.stop.is_set():
                return

    def excepthook(self, args: threading.ExceptHookArgs) -> None:
        """For threads nobody supervises: a thread that dies says so, once, through the logger."""
        if args.exc_type is SystemExit:
            return
        with self._lock:
            self.errors["thread"] += 1
        name = args.thread.name if args.thread is not None else "?"
        log.error("thread %s died: %s", name, args.exc_value, exc_info=args.exc_value)
