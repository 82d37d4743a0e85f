"""Kubernetes attribution: the agent lists and watches the API and keeps the address index (I/O).

Theory of operation. With `kubernetes.enabled`, the agent's main process runs one thread per kind —
pods, replicasets, jobs, services, endpointslices (discovery.k8s.io/v1), nodes — each an informer loop:

    list (paginated, limit=500)  →  KubeIndex.replace(kind, items)            resourceVersion = the list's
    watch ?watch=1&resourceVersion=RV&allowWatchBookmarks=true&timeoutSeconds=T
        ADDED / MODIFIED / DELETED  → KubeIndex.apply                          RV = the object's
        BOOKMARK                    → RV = its resourceVersion (a quiet kind does not fall out of history)
        stream ends cleanly (T)     → watch again from RV
        410 Gone (HTTP or an ERROR event), or a list's continue token expired → list again (relist)
    any other failure (connection refused or dropped, 401/403, 5xx, bad JSON)
        → counted (`packetd_kubernetes_errors_total{resource}`), logged once per outage (not once per
          retry; per kind: RBAC may forbid one), then listed again after a back-off (0.5 s doubling to 30 s,
          reset by a successful list): what happened while the watch was down is in the new list

A relist replaces the kind's objects, so an object deleted while the watch was down does not linger (a
watch restarted without a list, as client libraries do on 410, never sees that DELETED). Each thread runs
under the agent's supervisor (`component` "kubernetes"): an unexpected exception is logged with its
traceback and the loop restarts; expected failures above never reach it. An object of the wrong shape is
skipped and counted by the index (`packetd_kubernetes_malformed_objects_total`), never a failure.

`table()` is ready once every kind has been listed: until then (API unreachable or forbidden) records carry
no k8s fields at all rather than fields that look like "unknown" for every address. After that the last
index keeps serving through an outage (as client-go's informers do) and catches up by relisting.

Client library: lightkube (a maintained, light client: httpx2 and msgspec, 40 MB installed against 190 MB
for the official `kubernetes` package) gives the configuration — in-cluster (service-account token, re-read
when the kubelet rotates it; CA; KUBERNETES_SERVICE_HOST/PORT), a kubeconfig file (certificates, tokens,
exec plugins), or a bare server URL (`kubernetes.apiServer`, for tests) — and its authenticated, TLS-checked
HTTP client. The list and watch requests are made here on that client because lightkube's own watch offers
no `allowWatchBookmarks` and answers a 410 by watching again without a list, and its typed objects of every
pod cost memory the index does not need: the JSON is read once and only the fields the index keeps survive.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from packetd.attribution.kubernetes_index import KINDS, KubeIndex, Table

log = logging.getLogger("packetd")

PATHS = {
    "pods": "/api/v1/pods",
    "replicasets": "/apis/apps/v1/replicasets",
    "jobs": "/apis/batch/v1/jobs",
    "services": "/api/v1/services",
    "endpointslices": "/apis/discovery.k8s.io/v1/endpointslices",
    "nodes": "/api/v1/nodes",
}
PAGE = 500  # objects per list request: the API server's recommended chunk (kubectl uses 500)
WATCH_TIMEOUT_S = 300  # a watch request's server-side life; bookmarks keep RV fresh within it
READ_SLACK_S = 60.0  # a watch silent this long past its timeout is a dead connection
CONNECT_TIMEOUT_S = 10.0
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
MAX_LINE = 16 * 1024 * 1024  # one watch event; the API server's own limit on an object is ~1.5 MB (etcd)


class _Gone(Exception):
    """410: the resourceVersion is too old (or a continue token expired): list again."""


class ApiProblem(Exception):
    """The API answered with an error status (403 forbidden, 5xx, an ERROR event other than 410)."""


@dataclass(slots=True)
class KubeStats:
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    relists: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    events: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))


def make_client(api_server: str = "", kubeconfig: str = "") -> Any:
    """lightkube's authenticated httpx2 client: `api_server` (a bare URL, no credentials: tests and
    `kubectl proxy`), else the `kubeconfig` file, else in-cluster / $KUBECONFIG / ~/.kube/config."""
    import httpx2
    from lightkube.config import client_adapter
    from lightkube.config.kubeconfig import KubeConfig
    from lightkube.config.models import User

    logging.getLogger("httpx2").setLevel(logging.WARNING)  # one INFO line per request: every watch
    if api_server:
        config = KubeConfig.from_one(cluster=_cluster(api_server), user=User())
    elif kubeconfig:
        config = KubeConfig.from_file(kubeconfig)
    else:
        config = KubeConfig.from_env()
    single = config.get()
    if single is None:
        raise ValueError("the kubeconfig has no current context")
    timeout = httpx2.Timeout(CONNECT_TIMEOUT_S, read=WATCH_TIMEOUT_S + READ_SLACK_S)
    return client_adapter.Client(single, client_adapter.ConnectionParams(timeout=timeout, trust_env=False))


def _cluster(url: str) -> Any:
    from lightkube.config.models import Cluster

    return Cluster(server=url)


class KubeWatcher:
    """The informer threads and the index they feed (module docstring)."""

    def __init__(
        self,
        client: Any,
        supervise: Callable[[str, Callable[[], None], threading.Event], None] | None = None,
        index: KubeIndex | None = None,
        watch_timeout_s: int = WATCH_TIMEOUT_S,
        first_backoff_s: float = FIRST_BACKOFF_S,
    ) -> None:
        self.client = client
        self.index = index if index is not None else KubeIndex()
        self.stats = KubeStats()
        self.watch_timeout_s = watch_timeout_s
        self.first_backoff_s = first_backoff_s
        self._supervise = supervise
        self._lock = threading.Lock()  # the index and the outage state: six threads write, the agent reads
        self._listed: set[str] = set()
        self._down: dict[str, str] = {}  # kind → the first error of its outage (logged once per outage)
        self._stopped = threading.Event()
        self.synced = threading.Event()  # every kind was listed once
        self._threads: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> None:
        for kind in KINDS:
            t = threading.Thread(target=self._thread, args=(kind,), name=f"kubernetes-{kind}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout_s: float = 1.0) -> None:
        """Stop the loops. A watch blocked on its stream ends with it (bookmarks, `watch_timeout_s`): the
        threads are daemons, so the agent's exit does not wait for them beyond `timeout_s` in all."""
        self._stopped.set()
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        try:
            self.client.close()
        except Exception as exc:  # closing a client another thread still reads from may complain
            log.debug("kubernetes client close: %s", exc)

    def _thread(self, kind: str) -> None:
        if self._supervise is not None:
            self._supervise("kubernetes", lambda: self.run(kind), self._stopped)
        else:
            self.run(kind)

    # -- what the agent reads --------------------------------------------------------------------------------
    def table(self) -> tuple[int, Table] | None:
        """(generation, address table) once every kind was listed, else None."""
        with self._lock:
            if not self.synced.is_set():
                return None
            return self.index.generation, self.index.table()

    def snapshot(self) -> dict[str, Any]:
        """Counters and sizes for the agent's self-metrics."""
        with self._lock:
            return {
                "errors": dict(self.stats.errors),
                "relists": dict(self.stats.relists),
                "events": dict(self.stats.events),
                "objects": self.index.counts(),
                "dropped": dict(self.index.dropped),
                "ambiguous": self.index.ambiguous,
                "malformed": self.index.malformed,
                "synced": self.synced.is_set(),
            }

    # -- one kind's informer loop ------------------------------------------------------------------------------
    def run(self, kind: str) -> None:
        """List and watch `kind` until stopped (module docstring)."""
        backoff = self.first_backoff_s
        while not self._stopped.is_set():
            try:
                rv = self._list(kind)
                backoff = self.first_backoff_s
                while not self._stopped.is_set():
                    rv = self._watch(kind, rv)
            except _Gone:
                with self._lock:
                    self.stats.relists[kind] += 1
                continue
            except Exception as exc:
                if self._stopped.is_set():
                    return
                if not _expected(exc):
                    raise  # a bug: the supervisor logs it with its traceback and runs the loop again
                self._failed(kind, exc)
                if self._stopped.wait(backoff):
                    return
                backoff = min(MAX_BACKOFF_S, backoff * 2)

    def _failed(self, kind: str, exc: BaseException) -> None:
        with self._lock:
            self.stats.errors[kind] += 1
            first = kind not in self._down
            if first:
                self._down[kind] = _describe(exc)
        if first:
            log.warning(
                "kubernetes API: %s: %s; retrying (records keep their last k8s fields, none before every "
                "kind is listed once)",
                kind,
                self._down[kind],
            )

    def _list(self, kind: str) -> str:
        """The whole list, page by page (one page's JSON alive at a time), swapped in at once."""
        with self._lock:
            staged = self.index.stage(kind)
        params: dict[str, Any] = {"limit": PAGE}
        while True:
            resp = self.client.get(PATHS[kind], params=params)
            if resp.status_code == 410:
                raise _Gone()  # the continue token expired: list from the start
            _check(resp)
            body = orjson.loads(resp.content)
            staged.add(body.get("items") or ())
            meta = body.get("metadata") or {}
            del body, resp
            if not meta.get("continue"):
                break
            params = {"limit": PAGE, "continue": meta["continue"]}
        with self._lock:
            self.index.install(staged)
            self._listed.add(kind)
            complete = len(self._listed) == len(KINDS)
            recovered = self._down.pop(kind, None)
        if recovered is not None:
            log.info("kubernetes API: %s listed again after: %s", kind, recovered)
        if complete:
            self.synced.set()
        return str(meta.get("resourceVersion") or "")

    def _watch(self, kind: str, rv: str) -> str:
        """One watch request; the resourceVersion to go on from when it ends cleanly."""
        params = {
            "watch": "1",
            "resourceVersion": rv,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self.watch_timeout_s),
        }
        with self.client.stream("GET", PATHS[kind], params=params) as resp:
            if resp.status_code == 410:
                raise _Gone()
            if resp.status_code >= 400:
                resp.read()
                _check(resp)
            for line in _lines(resp.iter_bytes()):
                rv = self._event(kind, orjson.loads(line), rv)
        return rv

    def _event(self, kind: str, ev: dict[str, Any], rv: str) -> str:
        etype, obj = ev.get("type"), ev.get("object") or {}
        if etype == "ERROR":  # a Status object: 410 Expired is the usual one
            if obj.get("code") == 410:
                raise _Gone()
            raise ApiProblem(f"watch error {obj.get('code')}: {obj.get('message') or obj.get('reason')}")
        new_rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
        if etype in ("ADDED", "MODIFIED", "DELETED"):
            with self._lock:
                self.index.apply(kind, etype, obj)
                self.stats.events[kind] += 1
        return new_rv


def _lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Newline-delimited JSON of a watch stream, one event at a time (bounded: MAX_LINE)."""
    buf = b""
    for chunk in chunks:
        buf += chunk
        while True:
            i = buf.find(b"\n")
            if i < 0:
                break
            line, buf = buf[:i], buf[i + 1 :]
            if line.strip():
                yield line
        if len(buf) > MAX_LINE:
            raise ApiProblem(f"a watch event longer than {MAX_LINE} bytes")
    if buf.strip():
        yield buf


def _check(resp: Any) -> None:
    if resp.status_code < 400:
        return
    reason = ""
    try:
        status = orjson.loads(resp.content)
        reason = str(status.get("message") or status.get("reason") or "")
    except (orjson.JSONDecodeError, AttributeError):
        reason = resp.content[:200].decode(errors="replace")
    raise ApiProblem(f"HTTP {resp.status_code}" + (f": {reason}" if reason else ""))


def _expected(exc: BaseException) -> bool:
    """Failures of the API or the network (retried), as opposed to bugs (raised to the supervisor)."""
    import httpx2

    return isinstance(
        exc, ApiProblem | httpx2.HTTPError | httpx2.StreamError | OSError | orjson.JSONDecodeError
    )


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "..."
