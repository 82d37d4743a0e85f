"""The agent's HTTP API (reference §11 routes, plus probes).

    GET  /metrics              self-metrics (Prometheus text)
    GET  /protocol/metrics     protocol and layer-4 metrics (Prometheus text)
    GET  /watch?max_message=N&timeout=D    live roundtrips as JSON lines; `timeout` bounds the response
    POST /-/reload             reload the config now; 200, or 500 with the reason (the old config stays)
    POST /-/logger             level=debug|info|warn|error
    GET  /healthz              the agent's loops run (503 once the supervisor gave up, or the main loop stalls)
    GET  /readyz               healthy, and every capture worker is capturing (or the capture file was read)

Admin routes (/watch, /-/reload, /-/logger: they reveal traffic or change the agent) answer loopback
clients only, unless `server.adminToken` is set; then they require `Authorization: Bearer <token>`.
A slow or abandoned /watch client never blocks capture: each subscriber has a bounded queue, and what
does not fit is dropped and counted.

Connections: the kernel queues up to LISTEN_BACKLOG before they are accepted; at most MAX_CONNECTIONS are
served at once, each by its own thread; one beyond that is answered 503 at once and counted (`rejected`).
A route that raises is logged with its traceback and counted by the agent's supervisor (component
`http`), and the client gets a 500; the serving loop itself runs under the supervisor too.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import socket
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from packetd.agent.storage import negotiate
from packetd.units import parse_duration

log = logging.getLogger("packetd.http")

WATCH_QUEUE = 1000  # lines a /watch subscriber may lag behind before lines are dropped
MAX_WATCH_MESSAGES = 100_000
DEFAULT_WATCH_MESSAGES = 100
DEFAULT_WATCH_TIMEOUT_S = 5.0
MAX_WATCH_TIMEOUT_S = 3600.0
ADMIN_ROUTES = frozenset({"/watch", "/-/reload", "/-/logger"})
LISTEN_BACKLOG = 128  # the usual somaxconn-sized queue; socketserver's 5 refuses a burst of scrapes
MAX_CONNECTIONS = 64  # threads serving at once: scrapes, probes, a few /watch streams; bounds memory
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 31\r\n"
    b"Connection: close\r\n\r\ntoo many connections; try again\n"
)


class _Subscriber:
    __slots__ = ("cond", "lines")

    def __init__(self) -> None:
        self.lines: deque[bytes] = deque()
        self.cond = threading.Condition()


WATCH_PARAMS = ("max_message", "timeout")


def watch_params_problem(params: dict[str, list[str]]) -> str | None:
    """What is wrong with /watch's query parameters, in one line; None when nothing is."""
    unknown = sorted(set(params) - set(WATCH_PARAMS))
    if unknown:
        return f"unknown parameter '{unknown[0][:64]}'; allowed: {', '.join(WATCH_PARAMS)}"
    raw = (params.get("max_message") or [str(DEFAULT_WATCH_MESSAGES)])[0]
    if not (raw.strip().isascii() and raw.strip().isdigit()):
        return f"max_message '{raw[:64]}' is not a whole number (1..{MAX_WATCH_MESSAGES})"
    raw = (params.get("timeout") or ["5s"])[0]
    try:
        parse_duration(raw)
    except (ValueError, OverflowError):
        return f"timeout '{raw[:64]}' is not a duration (e.g. 500ms, 30s, 5m; a bare number is seconds)"
    return None


class WatchHub:
    """Fan-out of roundtrip lines to /watch subscribers, bounded per subscriber."""

    def __init__(self) -> None:
        self._subs: set[_Subscriber] = set()
        self._lock = threading.Lock()
        self.dropped = 0
        self.on_change: Callable[[int], None] = lambda n: None

    def subscribe(self) -> _Subscriber:
        s = _Subscriber()
        with self._lock:
            self._subs.add(s)
            n = len(self._subs)
        self.on_change(n)
        return s

    def unsubscribe(self, s: _Subscriber) -> None:
        with self._lock:
            self._subs.discard(s)
            n = len(self._subs)
        self.on_change(n)

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def publish(self, lines: list[bytes]) -> None:
        with self._lock:
            subs = list(self._subs)
        for s in subs:
            with s.cond:
                room = WATCH_QUEUE - len(s.lines)
                if room < len(lines):
                    self.dropped += len(lines) - max(room, 0)
                s.lines.extend(lines[: max(room, 0)])
                s.cond.notify()


class Api:
    """What the routes need from the agent."""

    def __init__(
        self,
        self_registry: CollectorRegistry,
        protocol_registry: CollectorRegistry,
        hub: WatchHub,
        reload: Callable[[], tuple[bool, str]],
        set_level: Callable[[str], bool],
        ready: Callable[[], bool],
        admin_token: str,
        health: Callable[[], str | None] = lambda: None,
        on_error: Callable[[BaseException], None] = lambda exc: None,
    ) -> None:
        self.self_registry = self_registry
        self.protocol_registry = protocol_registry
        self.hub = hub
        self.reload = reload
        self.set_level = set_level
        self.ready = ready
        self.admin_token = admin_token
        self.health = health  # None when healthy, else why not
        self.on_error = on_error  # a route raised: the supervisor logs and counts it


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%", maxsplit=1)[0]).is_loopback
    except ValueError:
        return False


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.client_address[0], format % args)

    def _send(
        self,
        code: int,
        body: bytes,
        ctype: str = "text/plain; charset=utf-8",
        extra: dict[str, str] | None = None,
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _admin_ok(self) -> bool:
        token = self.server.api.admin_token
        if token:
            auth = self.headers.get("Authorization", "")
            if auth.startswith("Bearer ") and hmac.compare_digest(auth[7:].strip().encode(), token.encode()):
                return True
            self._send(401, b"admin route: a bearer token is required\n")
            return False
        if _is_loopback(self.client_address[0]):
            return True
        self._send(403, b"admin route: loopback clients only (set server.adminToken to allow others)\n")
        return False

    def _route(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        routes: dict[str, dict[str, Callable[[urllib.parse.SplitResult], None]]] = {
            "/metrics": {"GET": self._metrics},
            "/protocol/metrics": {"GET": self._protocol_metrics},
            "/watch": {"GET": self._watch},
            "/-/reload": {"POST": self._reload},
            "/-/logger": {"POST": self._logger},
            "/healthz": {"GET": self._healthz},
            "/readyz": {"GET": self._readyz},
        }
        handlers = routes.get(path)
        if handlers is None:
            self._send(404, b"not found\n")
            return
        handler = handlers.get(method)
        if handler is None:
            self.send_response(405)
            self.send_header("Allow", ", ".join(handlers))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if path in ADMIN_ROUTES and not self._admin_ok():
            return
        try:
            handler(url)
        except (ConnectionError, TimeoutError):
            raise  # the client went away: handle_error says so at debug level
        except Exception as exc:
            self.server.api.on_error(exc)
            self.close_connection = True
            try:
                self._send(500, b"internal error (logged by the agent)\n")
            except OSError:
                pass  # the response had begun: the client sees the connection close

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def _metrics(self, url: urllib.parse.SplitResult) -> None:
        self._send(200, generate_latest(self.server.api.self_registry), CONTENT_TYPE_LATEST)

    def _protocol_metrics(self, url: urllib.parse.SplitResult) -> None:
        # format (text / OpenMetrics with exemplars) and gzip as the scraper asks: agent/storage.negotiate
        body, headers = negotiate(
            self.server.api.protocol_registry, self.headers.get("Accept"), self.headers.get("Accept-Encoding")
        )
        ctype = headers.pop("Content-Type")
        self._send(200, body, ctype, headers)

    def _healthz(self, url: urllib.parse.SplitResult) -> None:
        problem = self.server.api.health()
        if problem is None:
            self._send(200, b"ok\n")
        else:
            self._send(503, f"unhealthy: {problem}\n".encode())

    def _readyz(self, url: urllib.parse.SplitResult) -> None:
        problem = self.server.api.health()
        if problem is not None:
            self._send(503, f"unhealthy: {problem}\n".encode())
        elif self.server.api.ready():
            self._send(200, b"ready\n")
        else:
            self._send(503, b"capture workers are starting\n")

    def _reload(self, url: urllib.parse.SplitResult) -> None:
        ok, message = self.server.api.reload()
        self._send(200 if ok else 500, (message + "\n").encode())

    def _logger(self, url: urllib.parse.SplitResult) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode(errors="replace") if length else ""
        params = urllib.parse.parse_qs(url.query)
        params.update(urllib.parse.parse_qs(body))
        level = (params.get("level") or [""])[0].strip().lower()
        if not self.server.api.set_level(level):
            self._send(
                400,
                b'{"status": "error", "message": "level must be debug, info, warn or error"}\n',
                "application/json",
            )
            return
        self._send(200, b'{"status": "success"}\n', "application/json")

    def _watch(self, url: urllib.parse.SplitResult) -> None:
        params = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        problem = watch_params_problem(params)
        if problem is not None:  # one line naming the parameter and what is allowed, never exception text
            self._send(400, f"/watch: {problem}\n".encode())
            return
        max_message = int((params.get("max_message") or [str(DEFAULT_WATCH_MESSAGES)])[0])
        timeout_s = parse_duration((params.get("timeout") or ["5s"])[0]) / 1e9
        if max_message <= 0:
            max_message = DEFAULT_WATCH_MESSAGES
        max_message = min(max_message, MAX_WATCH_MESSAGES)
        timeout_s = min(timeout_s if timeout_s > 0 else DEFAULT_WATCH_TIMEOUT_S, MAX_WATCH_TIMEOUT_S)
        hub = self.server.api.hub
        sub = hub.subscribe()
        deadline = time.monotonic() + timeout_s
        sent = 0
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while sent < max_message:
                with sub.cond:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    if not sub.lines:
                        sub.cond.wait(min(remaining, 0.5))
                    batch: list[bytes] = []
                    while sub.lines and sent + len(batch) < max_message:
                        batch.append(sub.lines.popleft())
                if batch:
                    data = b"".join(batch)
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()
                    sent += len(batch)
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            hub.unsubscribe(sub)
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], api: Api, timeout_s: float) -> None:
        self.api = api
        self.request_timeout = timeout_s
        self.rejected = 0  # connections answered 503 because MAX_CONNECTIONS were being served
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        if ":" in address[0]:
            self.address_family = socket.AF_INET6  # this server's own: the next one may listen on IPv4
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.rejected += 1
            try:
                request.setblocking(False)  # the accepting loop never waits on this client
                request.send(BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()  # no thread was started to release it
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(self.request_timeout)
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A route raised (socketserver would print the traceback to stderr): logged and counted."""
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            log.debug("%s: %s", client_address[0], exc)  # the client went away: not our failure
            return
        if exc is not None:
            self.api.on_error(exc)


def parse_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


class HttpServer:
    """Bound (listening) when constructed, so that a reload can fail before it changes anything; served
    from `start` on."""

    def __init__(self, address: str, api: Api, timeout_s: float) -> None:
        self.address = address
        host, port = parse_address(address)
        self._server = _Server((host, port), api, timeout_s)
        self.port = self._server.server_address[1]
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def rejected(self) -> int:
        return self._server.rejected

    def start(
        self, supervise: Callable[[str, Callable[[], None], threading.Event], None] | None = None
    ) -> None:
        body = self._server.serve_forever
        target: Callable[[], None] = (
            body if supervise is None else (lambda: supervise("http", body, self._stopped))
        )
        self._thread = threading.Thread(target=target, name="http", daemon=True)
        self._thread.start()

    def update(self, timeout_s: float, admin_token: str) -> None:
        """Settings a reload changes in place (the address stays: no rebinding)."""
        self._server.request_timeout = timeout_s
        self._server.api.admin_token = admin_token

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None and self._thread.is_alive():
            self._server.shutdown()  # only a running loop can acknowledge it: otherwise it waits forever
        self._server.server_close()
