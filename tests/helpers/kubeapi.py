"""A stand-in Kubernetes API server for the attribution tests (no real API server can run here).

It serves what kube-apiserver serves for the six kinds packetd watches, over HTTP/1.1 on 127.0.0.1:

* lists — `PodList` etc. with `metadata.resourceVersion`, paginated by `limit` / `continue`;
* watches — `?watch=1&resourceVersion=RV`: a chunked stream of newline-delimited `{"type", "object"}`
  events (ADDED / MODIFIED / DELETED after RV, from an event log, then new ones as they happen), a
  BOOKMARK before the stream ends at `timeoutSeconds` when `allowWatchBookmarks=true`, and an `ERROR`
  event with a 410 `Status` when RV is older than the log's compaction point (the API server's
  "too old resource version");
* failures on demand — 403 Forbidden (a `Status` body, as RBAC answers), a watch whose connection drops
  mid-stream (no final chunk), and the server stopped and started again on the same port.

Every object it serves (list documents, event objects, Status bodies; of a BOOKMARK, which carries only
`metadata.resourceVersion`, its metadata) is checked against the Kubernetes OpenAPI schemas with
`kubernetes-validate`; failures are collected in `invalid` for the tests to assert on.
"""

from __future__ import annotations

import copy
import http.server
import json
import threading
import time
import urllib.parse
import uuid
from typing import Any

import jsonschema
import kubernetes_validate

K8S_VERSION = "1.30.0"
PATHS = {
    "/api/v1/pods": ("pods", "v1", "Pod"),
    "/apis/apps/v1/replicasets": ("replicasets", "apps/v1", "ReplicaSet"),
    "/apis/batch/v1/jobs": ("jobs", "batch/v1", "Job"),
    "/api/v1/services": ("services", "v1", "Service"),
    "/apis/discovery.k8s.io/v1/endpointslices": ("endpointslices", "discovery.k8s.io/v1", "EndpointSlice"),
    "/api/v1/nodes": ("nodes", "v1", "Node"),
}
KIND_OF = {kind: (api, k) for kind, api, k in PATHS.values()}


def _validate_status(doc: dict[str, Any]) -> None:
    """A Status is served as `apiVersion: v1` (as the API server does) but its schema is filed under
    meta/v1, where kubernetes-validate's lookup by apiVersion does not find it: the same check, by file."""
    from kubernetes_validate.utils import schema_contents
    from referencing import Registry, Resource

    folder = f"kubernetes-json-schema/v{K8S_VERSION}-local-strict"
    schema = schema_contents(f"{folder}/status-meta-v1.json", K8S_VERSION)
    defs = schema_contents(f"{folder}/_definitions.json", K8S_VERSION)
    registry = Resource.from_contents(defs) @ (Resource.from_contents(schema) @ Registry())
    jsonschema.validators.Draft202012Validator(schema, registry=registry).validate(doc)


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class FakeKubeApi:
    def __init__(self, port: int = 0) -> None:
        self.lock = threading.Condition()
        self.rv = 1000
        self.objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {k: {} for k in KIND_OF}
        self.log: dict[str, list[tuple[int, str, dict[str, Any]]]] = {k: [] for k in KIND_OF}
        self.compacted: dict[str, int] = dict.fromkeys(KIND_OF, 0)
        self.forbidden: set[str] = set()  # kinds answered 403
        self.drop_next_watch: set[str] = set()  # kinds whose next watch drops after its first event
        self.end_watches = 0  # bumped to end every open watch cleanly (as at timeoutSeconds)
        self.hold = False  # open watches deliver nothing new (events still go to the log)
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.invalid: list[str] = []
        self.validated = 0
        self.port = port
        self.server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- objects ---------------------------------------------------------------------------------------------
    def _event(self, kind: str, etype: str, obj: dict[str, Any]) -> None:
        with self.lock:
            self.rv += 1
            obj = copy.deepcopy(obj)
            obj["metadata"]["resourceVersion"] = str(self.rv)
            key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
            if etype == "DELETED":
                self.objects[kind].pop(key, None)
            else:
                self.objects[kind][key] = obj
            self.log[kind].append((self.rv, etype, obj))
            self.lock.notify_all()

    def add(self, kind: str, obj: dict[str, Any]) -> None:
        self._event(kind, "ADDED", obj)

    def modify(self, kind: str, obj: dict[str, Any]) -> None:
        self._event(kind, "MODIFIED", obj)

    def delete(self, kind: str, namespace: str, name: str) -> None:
        with self.lock:
            obj = self.objects[kind][(namespace, name)]
        self._event(kind, "DELETED", obj)

    def compact(self) -> None:
        """Forget the event log (etcd compaction): a watch from an older RV gets 410."""
        with self.lock:
            for kind in KIND_OF:
                self.compacted[kind] = self.rv
                self.log[kind] = []

    def close_watches(self) -> None:
        with self.lock:
            self.end_watches += 1
            self.lock.notify_all()

    # -- serving ---------------------------------------------------------------------------------------------
    def check(self, doc: dict[str, Any]) -> None:
        try:
            if doc.get("kind") == "Status":
                _validate_status(doc)
            else:
                kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            with self.lock:  # handler threads count at once
                self.validated += 1 + len(doc.get("items") or ())
        except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as exc:
            with self.lock:
                self.invalid.append(f"{doc.get('kind')}: {exc}")

    def start(self) -> None:
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                params = dict(urllib.parse.parse_qsl(url.query))
                api.requests.append((url.path, params))
                if url.path not in PATHS:
                    self._json(
                        404, status(404, "NotFound", "the server could not find the requested resource")
                    )
                    return
                kind = PATHS[url.path][0]
                if kind in api.forbidden:
                    body = status(
                        403,
                        "Forbidden",
                        f'{kind} is forbidden: User "system:serviceaccount:packetd:packetd" cannot list '
                        f'resource "{kind}" at the cluster scope',
                    )
                    self._json(403, body)
                    return
                if params.get("watch") in ("1", "true"):
                    self._watch(kind, params)
                else:
                    self._list(kind, params)

            def _json(self, code: int, doc: dict[str, Any]) -> None:
                api.check(doc)
                body = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _list(self, kind: str, params: dict[str, str]) -> None:
                apiv, k = KIND_OF[kind]
                with api.lock:
                    items = sorted(api.objects[kind].values(), key=lambda o: o["metadata"]["name"])
                    rv = str(api.rv)
                limit = int(params.get("limit", 0) or 0)
                start = int(params.get("continue", "0") or 0)
                page = items[start : start + limit] if limit else items[start:]
                meta: dict[str, Any] = {"resourceVersion": rv}
                if limit and start + limit < len(items):
                    meta["continue"] = str(start + limit)
                self._json(200, {"kind": f"{k}List", "apiVersion": apiv, "metadata": meta, "items": page})

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _send_event(self, etype: str, obj: dict[str, Any]) -> None:
                if etype == "BOOKMARK":
                    # only metadata.resourceVersion, as the API server sends it (not a valid object of
                    # its kind: an EndpointSlice without addressType): its metadata is checked, as a Pod's
                    api.check({"apiVersion": "v1", "kind": "Pod", "metadata": obj["metadata"]})
                else:
                    api.check(obj)
                self._chunk(json.dumps({"type": etype, "object": obj}).encode() + b"\n")

            def _watch(self, kind: str, params: dict[str, str]) -> None:
                since = int(params.get("resourceVersion") or 0)
                timeout = float(params.get("timeoutSeconds", 5))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                if since < api.compacted[kind]:
                    self._send_event("ERROR", status(410, "Expired", f"too old resource version: {since}"))
                    self._chunk(b"")
                    return
                drop = kind in api.drop_next_watch
                api.drop_next_watch.discard(kind)
                deadline = time.monotonic() + timeout
                ending = api.end_watches
                sent = since
                while True:
                    with api.lock:
                        pending = [] if api.hold else [e for e in api.log[kind] if e[0] > sent]
                        if not pending:
                            left = deadline - time.monotonic()
                            if left <= 0 or api.end_watches != ending:
                                break
                            api.lock.wait(min(left, 0.2))
                            continue
                    for rv, etype, obj in pending:
                        self._send_event(etype, obj)
                        sent = rv
                        if drop:  # the connection dies mid-stream: no final chunk
                            self.wfile.flush()
                            self.close_connection = True
                            self.connection.shutdown(2)
                            return
                if params.get("allowWatchBookmarks") == "true":
                    apiv, k = KIND_OF[kind]
                    with api.lock:  # a bookmark promises every event up to its RV was sent
                        undelivered = api.compacted[kind] > sent or any(e[0] > sent for e in api.log[kind])
                        rv_now = str(sent if undelivered else api.rv)
                    self._send_event(
                        "BOOKMARK", {"kind": k, "apiVersion": apiv, "metadata": {"resourceVersion": rv_now}}
                    )
                self._chunk(b"")

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True  # started again on the same port after a stop

            def handle_error(self, request: Any, client_address: Any) -> None:
                import sys

                exc = sys.exc_info()[1]
                if not isinstance(exc, ConnectionError):  # a client gone mid-stream is normal
                    api.invalid.append(f"stand-in failed: {exc!r}")

        self.server = Server(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self.server is not None:
            self.close_watches()
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


# -- realistic objects ---------------------------------------------------------------------------------------
def _meta(name: str, namespace: str | None, **extra: Any) -> dict[str, Any]:
    md: dict[str, Any] = {
        "name": name,
        "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{namespace}/{name}")),
        "creationTimestamp": "2026-11-30T08:00:00Z",
        **extra,
    }
    if namespace is not None:
        md["namespace"] = namespace
    return md


def owner(api_version: str, kind: str, name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{namespace}/{name}")),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def pod(
    name: str,
    namespace: str,
    ip: str,
    node: str,
    owned_by: dict[str, Any] | None = None,
    ports: tuple[int, ...] = (8080,),
    host_network: bool = False,
    phase: str = "Running",
    host_ip: str = "192.168.50.10",
) -> dict[str, Any]:
    md = _meta(name, namespace, labels={"app": name.rsplit("-", 2)[0]})
    if owned_by is not None:
        md["ownerReferences"] = [owned_by]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": md,
        "spec": {
            "nodeName": node,
            "hostNetwork": host_network,
            "serviceAccountName": "default",
            "containers": [
                {
                    "name": "app",
                    "image": "registry.example/app:1.4.2",
                    "ports": [{"containerPort": p, "protocol": "TCP", "name": f"p{p}"} for p in ports],
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                }
            ],
        },
        "status": {
            "phase": phase,
            "hostIP": host_ip,
            "hostIPs": [{"ip": host_ip}],
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": "2026-11-30T08:00:01Z",
            "qosClass": "Burstable",
        },
    }


def replicaset(name: str, namespace: str, deployment: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": _meta(
            name, namespace, ownerReferences=[owner("apps/v1", "Deployment", deployment, namespace)]
        ),
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": deployment}},
            "template": {
                "metadata": {"labels": {"app": deployment}},
                "spec": {"containers": [{"name": "app", "image": "registry.example/app:1.4.2"}]},
            },
        },
        "status": {"replicas": 2, "readyReplicas": 2},
    }


def job(name: str, namespace: str, cronjob: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(
            name, namespace, ownerReferences=[owner("batch/v1", "CronJob", cronjob, namespace)]
        ),
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "report", "image": "registry.example/report:2"}],
                }
            }
        },
        "status": {"active": 1},
    }


def service(name: str, namespace: str, cluster_ip: str, port: int = 80) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(name, namespace),
        "spec": {
            "type": "ClusterIP",
            "clusterIP": cluster_ip,
            "clusterIPs": [cluster_ip],
            "selector": {"app": name},
            "ports": [{"name": "http", "port": port, "targetPort": 8080, "protocol": "TCP"}],
        },
        "status": {"loadBalancer": {}},
    }


def endpointslice(name: str, namespace: str, svc: str, pods: list[tuple[str, str, str]]) -> dict[str, Any]:
    """`pods`: (pod name, its IP, its node)."""
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": _meta(
            name,
            namespace,
            labels={
                "kubernetes.io/service-name": svc,
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
            },
            ownerReferences=[owner("v1", "Service", svc, namespace)],
        ),
        "addressType": "IPv4",
        "endpoints": [
            {
                "addresses": [ip],
                "conditions": {"ready": True, "serving": True, "terminating": False},
                "nodeName": node,
                "targetRef": {
                    "kind": "Pod",
                    "name": p,
                    "namespace": namespace,
                    "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{namespace}/{p}")),
                },
            }
            for p, ip, node in pods
        ],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


def node(name: str, ip: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": _meta(name, None, labels={"kubernetes.io/hostname": name}),
        "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]},
        "status": {
            "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": "b1",
                "containerRuntimeVersion": "containerd://1.7.20",
                "kernelVersion": "6.1.0",
                "kubeProxyVersion": "v1.30.0",
                "kubeletVersion": "v1.30.0",
                "machineID": "m1",
                "operatingSystem": "linux",
                "osImage": "Debian GNU/Linux 12",
                "systemUUID": "s1",
            },
        },
    }


def shop_cluster(api: FakeKubeApi) -> None:
    """A small cluster: the `shop` namespace (a Deployment behind a service, a StatefulSet, a DaemonSet's
    hostNetwork pod, a CronJob's Job, a bare pod, a pod backing two services), two nodes."""
    ns = "shop"
    api.add("nodes", node("node-a", "192.168.50.10"))
    api.add("nodes", node("node-b", "192.168.50.11"))
    api.add("replicasets", replicaset("payments-7d9f8c6b5", ns, "payments"))
    api.add("jobs", job("report-29000000", ns, "report"))
    rs = owner("apps/v1", "ReplicaSet", "payments-7d9f8c6b5", ns)
    api.add("pods", pod("payments-7d9f8c6b5-x2x4z", ns, "10.244.1.7", "node-a", rs))
    api.add("pods", pod("payments-7d9f8c6b5-q8w1r", ns, "10.244.2.9", "node-b", rs))
    api.add(
        "pods",
        pod(
            "orders-db-0",
            ns,
            "10.244.1.8",
            "node-a",
            owner("apps/v1", "StatefulSet", "orders-db", ns),
            ports=(5432,),
        ),
    )
    api.add(
        "pods",
        pod(
            "node-exporter-abcde",
            ns,
            "192.168.50.10",
            "node-a",
            owner("apps/v1", "DaemonSet", "node-exporter", ns),
            ports=(9100,),
            host_network=True,
        ),
    )
    api.add(
        "pods",
        pod(
            "report-29000000-7hj2k",
            ns,
            "10.244.2.10",
            "node-b",
            owner("batch/v1", "Job", "report-29000000", ns),
        ),
    )
    api.add("pods", pod("debug", ns, "10.244.2.11", "node-b"))
    api.add(
        "pods",
        pod(
            "cache-0",
            ns,
            "10.244.1.12",
            "node-a",
            owner("apps/v1", "StatefulSet", "cache", ns),
            ports=(6379,),
        ),
    )
    api.add("pods", pod("old-report-1", ns, "10.244.2.99", "node-b", phase="Succeeded"))
    api.add("services", service("payments", ns, "10.96.0.20"))
    api.add("services", service("orders-db", ns, "10.96.0.21", 5432))
    api.add("services", service("cache", ns, "10.96.0.22", 6379))
    api.add("services", service("cache-read", ns, "10.96.0.23", 6379))
    api.add(
        "endpointslices",
        endpointslice(
            "payments-abc12",
            ns,
            "payments",
            [
                ("payments-7d9f8c6b5-x2x4z", "10.244.1.7", "node-a"),
                ("payments-7d9f8c6b5-q8w1r", "10.244.2.9", "node-b"),
            ],
        ),
    )
    api.add(
        "endpointslices",
        endpointslice("orders-db-def34", ns, "orders-db", [("orders-db-0", "10.244.1.8", "node-a")]),
    )
    api.add(
        "endpointslices", endpointslice("cache-ghi56", ns, "cache", [("cache-0", "10.244.1.12", "node-a")])
    )
    api.add(
        "endpointslices",
        endpointslice("cache-read-jkl78", ns, "cache-read", [("cache-0", "10.244.1.12", "node-a")]),
    )
