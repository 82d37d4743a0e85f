"""The agent's exporters: roundtrip lines, Prometheus remote write, OTLP/HTTP traces.

Each owns a bounded queue and a thread; the pipeline only ever appends (never waits on a backend). A
backend that is slow or down fills the queue; beyond the bound the oldest entries are dropped and
counted. Failed sends are retried with exponential back-off; on shutdown what is queued is flushed
(within the exporter's timeout). Counters per exporter: sent, failed (attempts), dropped, queue length.

The roundtrip lines have no queue: they are written as they arrive, by the agent's loop. A file that
cannot be written (a full or read-only disk, a closed stdout) is an exporter failure like a backend that
is down: the batch is dropped and counted, the file is closed, and the next batch after a back-off tries
again (reopening the file), so the rest of the agent never notices. A thread's loop that raises anything
else is a bug: it runs under the agent's supervisor (`supervise`), which logs, counts and restarts it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO

from packetd.export import remote_write
from packetd.export.rotating import RotatingFile
from packetd.pipeline.spans import SpanData

log = logging.getLogger("packetd.export")

MAX_BACKOFF_S = 30.0  # between retries of a failing backend


class ExporterStats:
    __slots__ = ("dropped", "failed", "name", "queue_length", "sent")

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent = 0  # items delivered (spans, snapshots, lines)
        self.failed = 0  # send attempts that failed
        self.dropped = 0  # items lost to the queue bound
        self.queue_length = 0


# a supervisor's `run(component, body, stopped)`: runs an exporter thread's loop, restarting it on failure
Supervise = Callable[[str, Callable[[], None], threading.Event], None]


class RoundtripLines:
    """JSON lines to stdout or a size-rotated file; written by the receiving thread, one write a batch.

    The constructor opens the file (an OSError there is the caller's: a config that cannot work).
    """

    def __init__(
        self, console: bool, filename: str, max_mb: int, backups: int, stdout: BinaryIO | None = None
    ) -> None:
        self.stats = ExporterStats("roundtrips")
        self._lock = threading.Lock()
        self._file: RotatingFile | None = None
        self._out = stdout
        self._where = "stdout" if console else filename
        self._backoff = 0.0
        self._retry_at = 0.0  # monotonic: batches before it are dropped without trying
        self._dropped_since = 0  # lines lost since the last successful write (for the recovery line)
        if not console:
            self._file = RotatingFile(filename, max_mb * 1024 * 1024, backups, buffered=False)

    def write(self, lines: Sequence[bytes]) -> None:
        with self._lock:
            now = time.monotonic()
            if now < self._retry_at:
                self.stats.dropped += len(lines)
                self._dropped_since += len(lines)
                return
            written, error = self._emit(lines)
            self.stats.sent += written
            if error is None:
                if self._backoff:
                    log.info(
                        "roundtrips exporter: writing to %s again (%d lines were dropped)",
                        self._where,
                        self._dropped_since,
                    )
                self._backoff = 0.0
                self._dropped_since = 0
                return
            lost = len(lines) - written
            self.stats.failed += 1
            self.stats.dropped += lost
            self._dropped_since += lost
            self._backoff = min(MAX_BACKOFF_S, max(1.0, self._backoff * 2))
            self._retry_at = now + self._backoff
            log.warning(
                "roundtrips exporter: cannot write to %s: %s; %d lines dropped (retrying in %.0fs)",
                self._where,
                error.strerror or error,
                lost,
                self._backoff,
            )

    def _emit(self, lines: Sequence[bytes]) -> tuple[int, OSError | None]:
        if self._file is not None:
            return self._file.write_lines(lines)
        if self._out is None:
            return len(lines), None
        try:
            self._out.write(b"".join(lines))
            self._out.flush()
        except OSError as exc:  # a closed or full stdout: what the buffer kept is not known to be out
            return 0, exc
        return len(lines), None

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()


class _Worker(threading.Thread):
    """Periodic/batched sending with retry and back-off; subclasses say what a send is."""

    def __init__(self, name: str, interval_s: float, queue_size: int, batch: int = 0) -> None:
        super().__init__(name=f"exporter-{name}", daemon=True)
        self.stats = ExporterStats(name)
        self.interval_s = interval_s
        self.batch = batch  # > 0: a full batch in the queue is sent at once, not at the next interval
        self.queue: deque[Any] = deque()
        self.queue_size = queue_size
        self._wake = threading.Event()
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        self._backoff = 0.0
        self.supervise: Supervise | None = None  # set by the agent before start()

    def offer(self, items: Sequence[Any]) -> None:
        with self._lock:
            for item in items:
                if len(self.queue) >= self.queue_size:
                    self.queue.popleft()
                    self.stats.dropped += 1
                self.queue.append(item)
            self.stats.queue_length = len(self.queue)
        if self.batch and len(self.queue) >= self.batch:
            self._wake.set()

    def take(self, n: int) -> list[Any]:
        with self._lock:
            batch = [self.queue.popleft() for _ in range(min(n, len(self.queue)))]
            self.stats.queue_length = len(self.queue)
            return batch

    def give_back(self, batch: list[Any]) -> None:
        """A failed batch goes back to the head of the queue (the bound still applies)."""
        with self._lock:
            room = self.queue_size - len(self.queue)
            if room < len(batch):
                self.stats.dropped += len(batch) - max(room, 0)
                batch = batch[len(batch) - max(room, 0) :]
            self.queue.extendleft(reversed(batch))
            self.stats.queue_length = len(self.queue)

    def run(self) -> None:
        if self.supervise is None:
            self._loop()
        else:
            self.supervise(f"exporter_{self.stats.name}", self._loop, self._stop_event)

    def _loop(self) -> None:
        while not self._stop_event.is_set():
            self._wake.wait(self._backoff or self.interval_s)
            self._wake.clear()
            if self._stop_event.is_set():
                break
            self.cycle()

    def cycle(self, final: bool = False) -> None:
        raise NotImplementedError

    def _failed(self, what: str) -> None:
        self.stats.failed += 1
        self._backoff = min(MAX_BACKOFF_S, max(1.0, self._backoff * 2))
        log.warning("%s exporter: %s (retrying in %.0fs)", self.stats.name, what, self._backoff)

    def _succeeded(self) -> None:
        self._backoff = 0.0

    def stop(self, flush_timeout_s: float) -> None:
        self._stop_event.set()
        self._wake.set()
        self.join(timeout=2)
        deadline = time.monotonic() + flush_timeout_s
        try:
            while self.queue and time.monotonic() < deadline:
                before = len(self.queue)
                self.cycle(final=True)
                if len(self.queue) >= before:
                    break
        except Exception:  # a bug in the last flush must not stop the agent's shutdown or reload
            log.exception("%s exporter: the final flush failed", self.stats.name)


class RemoteWrite(_Worker):
    """Every `interval`, the store's snapshot is encoded and queued; the queue is sent oldest first.

    The snapshot is taken on its own clock, whatever the backend does: during an outage every interval
    still gets its snapshot (with its own timestamp), up to `queue_size` of them; when the backend returns
    they are sent in order, so the gap is filled. Beyond the bound the oldest is dropped and counted, as is
    a snapshot the backend refuses (4xx other than 429). The queue holds encoded, compressed bodies: a
    snapshot of a full store (maxScrapeMB) is a few hundred KB that way, not tens of MB of Python tuples.
    """

    def __init__(
        self,
        endpoint: str,
        interval_s: float,
        timeout_s: float,
        headers: dict[str, str],
        queue_size: int,
        snapshot: Callable[[], list[tuple[list[tuple[str, str]], float]]],
        labels: dict[str, str] | None = None,
    ) -> None:
        super().__init__("metrics", interval_s, queue_size)
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self.headers = {**remote_write.HEADERS, **headers}
        self.labels = dict(labels or {})
        self._snapshot = snapshot

    def run(self) -> None:
        next_snapshot = time.monotonic() + self.interval_s
        retry_at: float | None = None  # set while backing off: snapshots queue, sends wait
        while not self._stop_event.is_set():
            deadline = next_snapshot if retry_at is None else min(next_snapshot, retry_at)
            self._wake.wait(max(0.0, deadline - time.monotonic()))
            self._wake.clear()
            if self._stop_event.is_set():
                break
            now = time.monotonic()
            if now >= next_snapshot:
                self._queue_snapshot()
                # on schedule; after a stall (a slow send), the next interval starts now, not in the past
                next_snapshot = max(next_snapshot + self.interval_s, now)
            if retry_at is None or now >= retry_at:
                retry_at = None if self._drain() else now + self._backoff

    def _queue_snapshot(self) -> None:
        ts_ms = int(time.time() * 1000)
        self.offer([remote_write.encode(self._snapshot(), ts_ms, self.labels)])

    def cycle(self, final: bool = False) -> None:
        self._queue_snapshot()
        self._drain()

    def _drain(self) -> bool:
        """Send the queue oldest first; False when the backend failed (the rest stays queued)."""
        while True:
            batch = self.take(1)
            if not batch:
                return True
            req = urllib.request.Request(self.endpoint, data=batch[0], headers=self.headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    resp.read()
            except urllib.error.HTTPError as exc:
                if 400 <= exc.code < 500 and exc.code != 429:
                    self.stats.failed += 1
                    self.stats.dropped += 1  # the backend refuses this data: retrying will not help
                    log.warning("metrics exporter: %s answered %d, snapshot dropped", self.endpoint, exc.code)
                    continue
                self.give_back(batch)
                self._failed(f"{self.endpoint} answered {exc.code}")
                return False
            except (OSError, urllib.error.URLError) as exc:
                self.give_back(batch)
                self._failed(f"{self.endpoint}: {getattr(exc, 'reason', exc)}")
                return False
            self.stats.sent += 1
            self._succeeded()

    def stop(self, flush_timeout_s: float) -> None:
        """The last interval's snapshot too, then what is queued, within `flush_timeout_s`."""
        self._stop_event.set()
        self._wake.set()
        self.join(timeout=2)
        self._queue_snapshot()
        deadline = time.monotonic() + flush_timeout_s
        while self.queue and time.monotonic() < deadline:
            before = len(self.queue)
            self._drain()
            if len(self.queue) >= before:
                break


def host_identity() -> dict[str, str]:
    """Resource attributes naming the observing host: `host.name`, and `k8s.node.name` from `$NODE_NAME`
    (the Kubernetes downward API sets it in the DaemonSet) when set."""
    out = {"host.name": socket.gethostname()}
    node = os.environ.get("NODE_NAME", "").strip()
    if node:
        out["k8s.node.name"] = node
    return out


class Traces(_Worker):
    """Spans batched to an OTLP/HTTP endpoint with the OpenTelemetry SDK's protobuf exporter."""

    def __init__(
        self,
        endpoint: str,
        batch: int,
        interval_s: float,
        timeout_s: float,
        headers: dict[str, str],
        gzip: bool,
        queue_size: int,
    ) -> None:
        super().__init__("traces", interval_s, queue_size, batch)
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        self._exporter = OTLPSpanExporter(
            endpoint=endpoint,
            headers=headers or None,
            timeout=timeout_s,
            compression=Compression.Gzip if gzip else Compression.NoCompression,
        )
        self._resources: dict[Any, Any] = {}
        self._host = host_identity()

    def cycle(self, final: bool = False) -> None:
        from opentelemetry.sdk.trace.export import SpanExportResult

        while self.queue:
            batch = self.take(self.batch)
            try:
                spans = self._readable(batch)
            except Exception:
                self.stats.dropped += len(batch)  # data the SDK cannot take: retrying will not help
                raise  # a bug: the supervisor logs it with its traceback, counts it, restarts the loop
            try:
                result = self._exporter.export(spans)
            except Exception as exc:  # the SDK raises on some transport errors: never into the pipeline
                result = SpanExportResult.FAILURE
                log.debug("traces exporter: %s", exc)
            if result is not SpanExportResult.SUCCESS:
                self.give_back(batch)
                self._failed("OTLP export failed")
                return
            self.stats.sent += len(batch)
            self._succeeded()
            if not final and len(self.queue) < self.batch:
                return

    def _readable(self, batch: list[SpanData]) -> list[Any]:
        """The SDK's spans for a batch (its names are looked up once a batch, not once a span)."""
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

        from packetd import __version__

        scope = InstrumentationScope("packetd", __version__)
        kinds = {"server": SpanKind.SERVER, "client": SpanKind.CLIENT}
        out = []
        for s in batch:
            key = (s.service, tuple(sorted(s.resource.items()))) if s.resource else s.service
            resource = self._resources.get(key)
            if resource is None:
                if len(self._resources) > 10_000:  # bounded: one per observed server (or pod)
                    self._resources.clear()
                resource = self._resources[key] = Resource.create(
                    {
                        "service.name": s.service,
                        "telemetry.sdk.name": "packetd",
                        "telemetry.sdk.version": __version__,
                        **self._host,  # which host observed it
                        **(s.resource or {}),  # the pod's k8s.* (its k8s.node.name: the pod's node)
                    }
                )
            flags = TraceFlags(s.trace_flags)
            ctx = SpanContext(s.trace_id, s.span_id, is_remote=False, trace_flags=flags)
            parent = (
                SpanContext(s.trace_id, s.parent_span_id, is_remote=True, trace_flags=flags)
                if s.parent_span_id is not None
                else None
            )
            status = Status(StatusCode.ERROR, s.status_description) if s.error else Status(StatusCode.UNSET)
            out.append(
                ReadableSpan(
                    name=s.name,
                    context=ctx,
                    parent=parent,
                    resource=resource,
                    attributes=s.attributes,
                    kind=kinds.get(s.kind, SpanKind.SERVER),
                    status=status,
                    instrumentation_scope=scope,
                    start_time=s.start_ns,
                    end_time=s.end_ns,
                )
            )
        return out

    def stop(self, flush_timeout_s: float) -> None:
        super().stop(flush_timeout_s)
        self._exporter.shutdown()  # type: ignore[no-untyped-call]
