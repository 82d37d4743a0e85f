"""The Kubernetes objects an address can be, kept small, and the address table built from them (pure).

Theory of operation. The watcher (`kubernetes.py`) hands every object it lists or watches to `KubeIndex`
as the API's JSON (a dict); the index keeps only the few fields attribution needs, per kind:

    pods            (namespace, name) → node, IPs, hostNetwork, container ports, controller owner, phase
    replicasets     (namespace, name) → its controller owner (a Deployment)
    jobs            (namespace, name) → its controller owner (a CronJob)
    services        (namespace, name) → ClusterIPs
    endpointslices  (namespace, name) → the service it belongs to, the pods it lists (targetRef)
    nodes           name → addresses

`table()` turns them into the address table the capture workers look records up in:

    "10.244.1.7"            → the pod with that IP (not hostNetwork, not finished)
    ("192.168.1.10", 8080)  → the hostNetwork pod on that node listening on that container port
    "10.96.0.10"            → the service with that ClusterIP (namespace and service only)
    "192.168.1.10"          → the node with that address (node only)

A pod's workload is resolved through owner references (Pod → ReplicaSet → Deployment, Pod → Job →
CronJob, Pod → StatefulSet / DaemonSet); its service is named when its endpointslices put it behind
exactly one service. Answers, never guesses: an address two live objects claim (a pod IP reused while the
old pod is still listed) is left out of the table and counted (`ambiguous`); an owner not (yet) listed ends
the chain where it is known.

Bounds: each kind keeps at most `MAX_OBJECTS[kind]` objects; beyond that new objects are not kept and
counted (`dropped`), so a cluster larger than the bound gives records without k8s fields for the excess,
never unbounded memory. Measured (bench/kubernetes_memory.py, tracemalloc, BENCHMARKS.md): 0.42 MB per
1 000 pods for the index and 0.64 MB with its table in the agent, 0.52 MB for the table copy in each
capture worker. Bound for a 5 000-pod cluster (with its replicasets, services and slices): under 4 MB
kept in the agent (measured 3.1), under 3 MB per worker (2.4), and under 12 MB at the peak of a list
(10.5: one 500-object page of JSON alive at a time, `stage`). At the 30 000-pod bound: ~19 MB and ~15 MB.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from packetd._values import value
from packetd.pairing.roundtrip import K8sMeta, Roundtrip

KINDS = ("pods", "replicasets", "jobs", "services", "endpointslices", "nodes")
# Objects kept per kind. 30 000 pods (Kubernetes' own scalability target is 150 000 per cluster, but an
# agent on every node watching all of them should be a decision) costs ~19 MB in the agent and ~15 MB per
# worker (0.64 / 0.52 MB per 1 000, measured); replicasets outnumber pods (revisionHistoryLimit keeps 10 old
# ones per deployment, each ~150 bytes here); services and slices follow the pods.
MAX_OBJECTS = {
    "pods": 30_000,
    "replicasets": 100_000,
    "jobs": 30_000,
    "services": 30_000,
    "endpointslices": 60_000,
    "nodes": 5_000,
}
_TERMINAL = frozenset({"Succeeded", "Failed"})  # a finished pod's IP is free for another pod
_OWNER_KINDS = {  # owner reference kinds that name a workload (others, e.g. a static pod's Node, do not)
    "ReplicaSet": "replicaset",
    "Deployment": "deployment",
    "StatefulSet": "statefulset",
    "DaemonSet": "daemonset",
    "Job": "job",
    "CronJob": "cronjob",
}
_MALFORMED = (KeyError, TypeError, ValueError, AttributeError)  # what a wrongly shaped object raises here
TableKey = str | tuple[str, int]
Table = dict[TableKey, K8sMeta]
_Key = tuple[str, str]  # (namespace, name); nodes use ("", name)


@value
class _Pod:
    node: str | None
    ips: tuple[str, ...]
    host_network: bool
    ports: tuple[int, ...]
    owner: tuple[str, str] | None  # (kind, name) of its controller, a workload kind
    terminal: bool


@value
class _Slice:
    service: str | None
    pods: tuple[str, ...]  # names of the pods (in the slice's namespace) it lists


def _key(obj: Mapping[str, Any]) -> _Key:
    md = obj.get("metadata") or {}
    return (str(md.get("namespace") or ""), str(md.get("name") or ""))


def _controller(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    """(kind, name) of the object's controlling owner reference, when it is a workload kind."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller"):
            kind = _OWNER_KINDS.get(str(ref.get("kind")))
            return (kind, str(ref.get("name"))) if kind is not None else None
    return None


def _pod(obj: Mapping[str, Any]) -> _Pod:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    ips = tuple(str(p["ip"]) for p in status.get("podIPs") or () if p.get("ip"))
    if not ips and status.get("podIP"):
        ips = (str(status["podIP"]),)
    ports = sorted(
        {
            int(port["containerPort"])
            for c in spec.get("containers") or ()
            for port in c.get("ports") or ()
            if port.get("containerPort")
        }
    )
    return _Pod(
        node=spec.get("nodeName") or None,
        ips=ips,
        host_network=bool(spec.get("hostNetwork")),
        ports=tuple(ports),
        owner=_controller(obj),
        terminal=status.get("phase") in _TERMINAL,
    )


def _cluster_ips(obj: Mapping[str, Any]) -> tuple[str, ...]:
    spec = obj.get("spec") or {}
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    return tuple(str(ip) for ip in ips if ip and ip != "None")  # "None": a headless service has no IP


def _slice(obj: Mapping[str, Any]) -> _Slice:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    pods = []
    for ep in obj.get("endpoints") or ():
        ref = ep.get("targetRef") or {}
        if ref.get("kind") == "Pod" and ref.get("name"):
            pods.append(str(ref["name"]))
    service = labels.get("kubernetes.io/service-name")
    return _Slice(service=str(service) if service else None, pods=tuple(pods))


def _node_ips(obj: Mapping[str, Any]) -> tuple[str, ...]:
    addrs = (obj.get("status") or {}).get("addresses") or ()
    return tuple(
        str(a["address"]) for a in addrs if a.get("type") in ("InternalIP", "ExternalIP") and a.get("address")
    )


_PARSE = {
    "pods": _pod,
    "replicasets": _controller,
    "jobs": _controller,
    "services": _cluster_ips,
    "endpointslices": _slice,
    "nodes": _node_ips,
}


class Staged:
    """One kind's list, reduced as its pages arrive (KubeIndex.stage)."""

    __slots__ = ("bound", "dropped", "kind", "malformed", "store")

    def __init__(self, kind: str, bound: int) -> None:
        self.kind = kind
        self.bound = bound
        self.store: dict[_Key, Any] = {}
        self.dropped = 0
        self.malformed = 0

    def add(self, objects: Iterable[Mapping[str, Any]]) -> None:
        parse, store = _PARSE[self.kind], self.store
        for obj in objects:
            try:
                key = _key(obj)
                if key not in store and len(store) >= self.bound:
                    self.dropped += 1
                    continue
                store[key] = parse(obj)
            except _MALFORMED:  # not the shape the API documents: skipped (counted), the rest kept
                self.malformed += 1


class KubeIndex:
    """See the module docstring. Not thread-safe: the watcher serialises calls."""

    def __init__(self, max_objects: Mapping[str, int] | None = None) -> None:
        self.max_objects = dict(MAX_OBJECTS if max_objects is None else max_objects)
        self._objects: dict[str, dict[_Key, Any]] = {kind: {} for kind in KINDS}
        self.dropped = dict.fromkeys(KINDS, 0)  # objects not kept: the kind's bound was reached
        self.ambiguous = 0  # addresses left out of the last table: claimed by two objects
        self.malformed = 0  # objects skipped: fields of the wrong type (never from a conforming server)
        self.generation = 0  # bumped by every change: the table is rebuilt only after one
        self._table: Table | None = None

    def counts(self) -> dict[str, int]:
        return {kind: len(objs) for kind, objs in self._objects.items()}

    def replace(self, kind: str, objects: Iterable[Mapping[str, Any]]) -> None:
        """A fresh list of `kind` (first list, or the relist after a 410): what it lacks is gone."""
        staged = self.stage(kind)
        staged.add(objects)
        self.install(staged)

    def stage(self, kind: str) -> Staged:
        """A list being read page by page: each page is reduced to what the index keeps as it comes (the
        JSON of one page is alive at a time, not the whole list's), then `install` swaps it in at once."""
        return Staged(kind, self.max_objects[kind])

    def install(self, staged: Staged) -> None:
        self._objects[staged.kind] = staged.store
        self.dropped[staged.kind] += staged.dropped
        self.malformed += staged.malformed
        self._changed()

    def apply(self, kind: str, event: str, obj: Mapping[str, Any]) -> None:
        """One watch event (ADDED, MODIFIED, DELETED) of `kind`."""
        store = self._objects[kind]
        try:
            key = _key(obj)
            if event == "DELETED":
                if store.pop(key, None) is not None:
                    self._changed()
                return
            if key not in store and len(store) >= self.max_objects[kind]:
                self.dropped[kind] += 1
                return
            parsed = _PARSE[kind](obj)
        except _MALFORMED:  # not the shape the API documents: skipped (counted)
            self.malformed += 1
            return
        if store.get(key) != parsed:
            store[key] = parsed
            self._changed()

    def _changed(self) -> None:
        self.generation += 1
        self._table = None

    # -- the table -------------------------------------------------------------------------------------------
    def _owners(self, ns: str, owner: tuple[str, str] | None) -> tuple[tuple[str, str], ...]:
        """The owner chain from a pod's controller up (ReplicaSet → Deployment, Job → CronJob)."""
        chain: list[tuple[str, str]] = []
        seen = 0
        while owner is not None and seen < 4:  # Pod → ReplicaSet → Deployment is the longest real chain
            chain.append(owner)
            seen += 1
            kind, name = owner
            store = "replicasets" if kind == "replicaset" else "jobs" if kind == "job" else None
            owner = self._objects[store].get((ns, name)) if store is not None else None
        return tuple(chain)

    def table(self) -> Table:
        """The address table (module docstring); cached until the next change."""
        if self._table is not None:
            return self._table
        out: Table = {}
        claimed: set[TableKey] = set()

        def put(key: TableKey, meta: K8sMeta) -> None:
            if key in out and out[key] != meta:
                claimed.add(key)
            else:
                out[key] = meta

        for (_, name), ips in self._objects["nodes"].items():
            for ip in ips:
                put(ip, K8sMeta(node=name))
        for (ns, name), ips in self._objects["services"].items():
            for ip in ips:
                put(ip, K8sMeta(namespace=ns, service=name))
        backs: dict[_Key, set[str]] = {}
        for (ns, _), sl in self._objects["endpointslices"].items():
            if sl.service is not None:
                for pod in sl.pods:
                    backs.setdefault((ns, pod), set()).add(sl.service)
        for (ns, name), pod in self._objects["pods"].items():
            if pod.terminal or not pod.ips:
                continue
            services = backs.get((ns, name))
            meta = K8sMeta(
                namespace=ns,
                pod=name,
                node=pod.node,
                service=next(iter(services)) if services is not None and len(services) == 1 else None,
                owners=self._owners(ns, pod.owner),
            )
            if pod.host_network:  # its IPs are its node's: told apart by the ports it listens on
                for ip in pod.ips:
                    for port in pod.ports:
                        put((ip, port), meta)
            else:
                for ip in pod.ips:
                    put(ip, meta)
        for key in claimed:
            del out[key]
        self.ambiguous = len(claimed)
        self._table = out
        return out


def diff(old: Table, new: Table) -> tuple[Table, list[TableKey]]:
    """(entries added or changed, keys removed) from `old` to `new`: what the workers are sent."""
    upserts = {k: v for k, v in new.items() if old.get(k) != v}
    removed = [k for k in old if k not in new]
    return upserts, removed


def lookup(table: Mapping[TableKey, K8sMeta], ep: tuple[str, int], listening: bool) -> K8sMeta | None:
    """The object an endpoint is: a hostNetwork pod by (node address, port) only for the end that listens
    (a client's port is ephemeral: matching it to a container port would be a guess), else by address."""
    if listening:
        meta = table.get(ep)
        if meta is not None:
            return meta
    return table.get(ep[0])


class K8sView:
    """A capture worker's copy of the table, kept current by the agent's diffs; `attach` names both ends
    of a record. Not ready (the API was never listed completely): records are left without k8s fields."""

    __slots__ = ("ready", "table")

    def __init__(self, ready: bool = False, table: Table | None = None) -> None:
        self.ready = ready
        self.table: Table = dict(table or {})

    def update(self, ready: bool, upserts: Table, removed: Iterable[TableKey]) -> None:
        self.ready = ready
        self.table.update(upserts)
        for key in removed:
            self.table.pop(key, None)

    def attach(self, rt: Roundtrip) -> Roundtrip:
        if not self.ready:
            return rt
        table = self.table
        return rt.attributed(rt.processes, (lookup(table, rt.client, False), lookup(table, rt.server, True)))
