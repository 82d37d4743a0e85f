"""Kubernetes attribution: the real client (lightkube's httpx2 client and our list/watch loops) against a
stand-in API server.

No Kubernetes API server can run on the development machine, so these tests run a stand-in HTTP server
(tests/helpers/kubeapi.py, threading http.server on a free 127.0.0.1 port) that serves what kube-apiserver
serves: lists of the real object kinds (Pod, ReplicaSet, Job, Service, EndpointSlice, Node, with owner
references), watch streams of newline-delimited ADDED/MODIFIED/DELETED/BOOKMARK events, a 410 Gone expiry
after compaction, a connection dropped mid-stream and 403 Forbidden. Every object it serves is checked
against the Kubernetes OpenAPI schemas (`kubernetes-validate`): `api.invalid` must stay empty.

The expected names are written by hand from the objects the stand-in was given (shop_cluster), not taken
from the index.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pytest

from packetd.attribution.kubernetes import KubeWatcher, make_client
from packetd.attribution.kubernetes_index import KubeIndex, lookup
from packetd.pairing.roundtrip import K8sMeta
from tests.helpers.kubeapi import FakeKubeApi, endpointslice, owner, pod, shop_cluster
from tests.helpers.live import free_port

NS = "shop"
RS = (("replicaset", "payments-7d9f8c6b5"), ("deployment", "payments"))
# address (and port, for the end that listens) → what the stand-in's objects say it is
TRUTH: dict[tuple[str, int], K8sMeta | None] = {
    ("10.244.1.7", 8080): K8sMeta(
        namespace=NS, pod="payments-7d9f8c6b5-x2x4z", node="node-a", service="payments", owners=RS
    ),
    ("10.244.2.9", 8080): K8sMeta(
        namespace=NS, pod="payments-7d9f8c6b5-q8w1r", node="node-b", service="payments", owners=RS
    ),
    ("10.244.1.8", 5432): K8sMeta(
        namespace=NS,
        pod="orders-db-0",
        node="node-a",
        service="orders-db",
        owners=(("statefulset", "orders-db"),),
    ),
    # hostNetwork DaemonSet pod: its node's address, told apart by its container port
    ("192.168.50.10", 9100): K8sMeta(
        namespace=NS, pod="node-exporter-abcde", node="node-a", owners=(("daemonset", "node-exporter"),)
    ),
    ("192.168.50.10", 22): K8sMeta(node="node-a"),  # the node itself
    ("192.168.50.11", 22): K8sMeta(node="node-b"),
    ("10.244.2.10", 8080): K8sMeta(
        namespace=NS,
        pod="report-29000000-7hj2k",
        node="node-b",
        owners=(("job", "report-29000000"), ("cronjob", "report")),
    ),
    ("10.244.2.11", 8080): K8sMeta(namespace=NS, pod="debug", node="node-b"),  # a bare pod: no workload
    # backs two services (cache, cache-read): no service named
    ("10.244.1.12", 6379): K8sMeta(
        namespace=NS, pod="cache-0", node="node-a", owners=(("statefulset", "cache"),)
    ),
    ("10.96.0.20", 80): K8sMeta(namespace=NS, service="payments"),  # ClusterIPs
    ("10.96.0.22", 6379): K8sMeta(namespace=NS, service="cache"),
    ("10.244.2.99", 8080): None,  # a Succeeded pod: its IP is free
    ("10.1.2.3", 80): None,  # nothing the API knows
    ("192.168.50.12", 9100): None,
}


def wait_for(cond: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def watcher(api_url: str, timeout_s: int = 5) -> KubeWatcher:
    w = KubeWatcher(make_client(api_url), watch_timeout_s=timeout_s, first_backoff_s=0.05)
    w.start()
    return w


def table_of(w: KubeWatcher) -> dict:
    got = w.table()
    assert got is not None
    return got[1]


def test_every_address_the_api_knows_is_named_and_no_other(api: FakeKubeApi) -> None:
    w = watcher(api.url)
    try:
        assert w.synced.wait(10)
        table = table_of(w)
        for (ip, port), want in TRUTH.items():
            assert lookup(table, (ip, port), listening=True) == want, ip
        # a client end's port is ephemeral: a hostNetwork pod is never matched by it, the node is
        assert lookup(table, ("192.168.50.10", 9100), listening=False) == K8sMeta(node="node-a")
        assert api.validated > 20
    finally:
        w.stop()


def test_lists_then_watches_from_the_lists_version_with_bookmarks(api: FakeKubeApi) -> None:
    w = watcher(api.url)
    try:
        assert w.synced.wait(10)
        wait_for(lambda: any(p == "/api/v1/pods" and q.get("watch") for p, q in api.requests))
        pods = [q for p, q in api.requests if p == "/api/v1/pods"]
        assert pods[0]["limit"] == "500" and "watch" not in pods[0]
        assert pods[1]["watch"] == "1" and pods[1]["allowWatchBookmarks"] == "true"
        assert pods[1]["resourceVersion"] == str(api.rv)  # the list's: nothing changed since
    finally:
        w.stop()


def test_watch_events_add_modify_delete(api: FakeKubeApi) -> None:
    w = watcher(api.url)
    try:
        assert w.synced.wait(10)
        api.add(
            "pods", pod("late-1", NS, "10.244.3.3", "node-b", owner("apps/v1", "StatefulSet", "late", NS))
        )
        wait_for(lambda: "10.244.3.3" in table_of(w))
        assert table_of(w)["10.244.3.3"].owners == (("statefulset", "late"),)
        moved = pod("late-1", NS, "10.244.3.4", "node-b", owner("apps/v1", "StatefulSet", "late", NS))
        api.modify("pods", moved)  # restarted with another IP: the old one is no longer it
        wait_for(lambda: "10.244.3.4" in table_of(w))
        assert "10.244.3.3" not in table_of(w)
        api.delete("pods", NS, "late-1")
        wait_for(lambda: "10.244.3.4" not in table_of(w))
        # the pod now backs a second service: it backs more than one, none is named
        api.add(
            "endpointslices",
            endpointslice(
                "billing-x1", NS, "billing", [("payments-7d9f8c6b5-x2x4z", "10.244.1.7", "node-a")]
            ),
        )
        wait_for(lambda: table_of(w)["10.244.1.7"].service is None)
        assert w.snapshot()["events"]["pods"] == 3
        assert w.snapshot()["relists"]["pods"] == 0
    finally:
        w.stop()


def test_a_bookmark_moves_the_resource_version_on(api: FakeKubeApi) -> None:
    w = watcher(api.url, timeout_s=1)
    try:
        assert w.synced.wait(10)
        api.add(
            "nodes",
            {
                **api.objects["nodes"][("", "node-a")],
                "metadata": {
                    **api.objects["nodes"][("", "node-a")]["metadata"],
                    "name": "node-c",
                    "uid": "c",
                },
            },
        )
        rv_after = api.rv  # pods saw no event since: only a bookmark can tell them this version
        wait_for(
            lambda: any(
                p == "/api/v1/pods" and q.get("resourceVersion") == str(rv_after) for p, q in api.requests
            ),
            5,
        )
        assert w.snapshot()["relists"]["pods"] == 0
    finally:
        w.stop()


def test_410_gone_relists_and_forgets_what_was_deleted_meanwhile(api: FakeKubeApi) -> None:
    w = watcher(api.url)
    try:
        assert w.synced.wait(10)
        assert "10.244.2.11" in table_of(w)
        lists_before = sum(1 for p, q in api.requests if p == "/api/v1/pods" and "watch" not in q)
        api.hold = True  # the watch does not see this deletion...
        api.delete("pods", NS, "debug")
        api.compact()  # ... and the history that had it is gone: watching from the old version is 410
        api.close_watches()
        api.hold = False
        wait_for(lambda: "10.244.2.11" not in table_of(w))
        assert w.snapshot()["relists"]["pods"] >= 1
        assert sum(1 for p, q in api.requests if p == "/api/v1/pods" and "watch" not in q) == lists_before + 1
        assert w.snapshot()["errors"]["pods"] == 0  # an expiry is routine, not an error
    finally:
        w.stop()


def test_a_dropped_watch_is_counted_and_recovered(api: FakeKubeApi) -> None:
    w = watcher(api.url)
    try:
        assert w.synced.wait(10)
        api.drop_next_watch.add("pods")
        api.close_watches()  # the next pods watch is the dropping one
        wait_for(lambda: api.drop_next_watch == set())
        api.add("pods", pod("late-2", NS, "10.244.3.5", "node-b"))
        wait_for(lambda: w.snapshot()["errors"]["pods"] == 1)
        api.add("pods", pod("late-3", NS, "10.244.3.6", "node-b"))
        wait_for(lambda: "10.244.3.6" in table_of(w) and "10.244.3.5" in table_of(w))
    finally:
        w.stop()


def test_forbidden_is_counted_logged_once_never_synced_then_recovers(
    api: FakeKubeApi, caplog: pytest.LogCaptureFixture
) -> None:
    api.forbidden.add("pods")
    caplog.set_level(logging.INFO, logger="packetd")
    w = watcher(api.url)
    try:
        wait_for(lambda: w.snapshot()["errors"]["pods"] >= 3)
        assert w.table() is None and not w.synced.is_set()  # records get no k8s fields at all
        warnings = [
            r for r in caplog.records if r.levelno == logging.WARNING and "kubernetes API" in r.getMessage()
        ]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert "pods: HTTP 403" in warnings[0].getMessage()
        assert "cannot list resource" in warnings[0].getMessage()
        api.forbidden.clear()  # RBAC fixed
        assert w.synced.wait(10)
        assert table_of(w)["10.244.1.7"].pod == "payments-7d9f8c6b5-x2x4z"
        assert any("pods listed again after: HTTP 403" in r.getMessage() for r in caplog.records)
    finally:
        w.stop()


def test_unreachable_until_the_api_comes_up() -> None:
    port = free_port()
    w = watcher(f"http://127.0.0.1:{port}")
    api = FakeKubeApi(port)
    shop_cluster(api)
    try:
        wait_for(lambda: w.snapshot()["errors"]["pods"] >= 2)
        assert w.table() is None
        api.start()
        assert w.synced.wait(15)
        assert table_of(w)["10.96.0.20"] == K8sMeta(namespace=NS, service="payments")
    finally:
        w.stop()
        api.stop()
    assert api.invalid == []


# -- the index alone ---------------------------------------------------------------------------------------------
def test_an_address_two_pods_claim_is_left_out_and_counted() -> None:
    idx = KubeIndex()
    idx.replace(
        "pods", [pod("a", NS, "10.0.0.5", "n"), pod("b", NS, "10.0.0.5", "n"), pod("c", NS, "10.0.0.6", "n")]
    )
    table = idx.table()
    assert "10.0.0.5" not in table and table["10.0.0.6"].pod == "c"
    assert idx.ambiguous == 1


def test_the_bound_of_a_kind_is_kept_and_counted() -> None:
    idx = KubeIndex(
        {**dict.fromkeys(("replicasets", "jobs", "services", "endpointslices", "nodes"), 10), "pods": 2}
    )
    idx.replace("pods", [pod(f"p{i}", NS, f"10.0.0.{i}", "n") for i in range(3)])
    idx.apply("pods", "ADDED", pod("p9", NS, "10.0.0.9", "n"))
    assert idx.counts()["pods"] == 2 and idx.dropped["pods"] == 2
    idx.apply("pods", "MODIFIED", pod("p0", NS, "10.0.1.0", "n"))  # a kept object still changes
    assert "10.0.1.0" in idx.table()


def test_an_owner_not_listed_ends_the_chain_where_it_is_known() -> None:
    idx = KubeIndex()
    idx.replace("pods", [pod("w-5c-x", NS, "10.0.0.5", "n", owner("apps/v1", "ReplicaSet", "w-5c", NS))])
    assert idx.table()["10.0.0.5"].owners == (("replicaset", "w-5c"),)
    assert idx.table()["10.0.0.5"].workload() == ("replicaset", "w-5c")


def test_a_wrongly_shaped_object_is_skipped_and_counted_the_rest_kept() -> None:
    idx = KubeIndex()
    bad = pod("bad", NS, "10.0.0.7", "n")
    bad["spec"]["containers"] = 5  # not a list
    worse = pod("worse", NS, "10.0.0.8", "n")
    worse["status"]["podIPs"] = [{"ip": "10.0.0.8"}, "10.0.0.9"]  # an item that is no object
    idx.replace("pods", [pod("good", NS, "10.0.0.6", "n"), bad])
    idx.apply("pods", "ADDED", worse)
    idx.apply(
        "nodes", "ADDED", {"metadata": {"name": "n"}, "status": {"addresses": [{"type": "InternalIP"}]}}
    )
    assert set(idx.table()) == {"10.0.0.6"} and idx.malformed == 2
