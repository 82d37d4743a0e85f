"""Memory of the Kubernetes index and its address table, per thousand pods and for a 5 000-pod cluster.

    python bench/kubernetes_memory.py [--pods 1000 5000 20000]

A synthetic cluster shaped like a common one, built with the stand-in API's object builders (the objects
the attribution tests check against the Kubernetes schemas): 10 pods per Deployment, each Deployment with 3
ReplicaSets (the current one and two kept by revisionHistoryLimit), one Service (a ClusterIP) and one
EndpointSlice listing its pods; a CronJob's Job per 100 pods; one Node per 30 pods. The full API objects are
fed to a fresh `KubeIndex` (`replace`, as after the first list) and `tracemalloc` measures what the index
keeps (the JSON dicts are dropped afterwards, as the watcher does) and what its address table adds (held
by the agent); then the table alone is pickled and unpickled, as the worker's copy it is sent as, and
measured in the same way; "attach µs" is the CPU time of naming both ends of one record in a worker
(`K8sView.attach`: two table lookups and the record's copy), over 200 000 records. "list peak" is the transient of the first pods list as the watcher reads it:
pages of 500 pods (orjson-encoded PodList bodies), each parsed and reduced into a staged store before the
next, then installed; peak minus start. A real pod's JSON is larger than these (managedFields, more
containers, status conditions): the page part of the peak scales with it, the kept part does not.
"""

from __future__ import annotations

import argparse
import gc
import os
import pickle
import sys
import tracemalloc
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import orjson
from tests.helpers.kubeapi import endpointslice, job, node, owner, pod, replicaset, service

from packetd.attribution.kubernetes_index import K8sView, KubeIndex
from packetd.pairing.roundtrip import Roundtrip


def cluster(n_pods: int) -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {
        k: [] for k in ("pods", "replicasets", "jobs", "services", "endpointslices", "nodes")
    }
    n_nodes = max(1, n_pods // 30)
    for i in range(n_nodes):
        kinds["nodes"].append(node(f"node-{i:04d}", f"192.168.{i // 250}.{i % 250 + 1}"))
    for d in range(n_pods // 10):
        ns = f"team-{d % 40:02d}"
        dep = f"svc-{d:05d}"
        for r in range(3):
            kinds["replicasets"].append(replicaset(f"{dep}-{r:x}7d9f8c6b", ns, dep))
        rs = owner("apps/v1", "ReplicaSet", f"{dep}-27d9f8c6b", ns)
        members = []
        for p in range(10):
            k = d * 10 + p
            ip = f"10.{k // 65536 % 256}.{k // 256 % 256}.{k % 256}"
            name = f"{dep}-27d9f8c6b-{p:05x}"
            nd = f"node-{k % n_nodes:04d}"
            kinds["pods"].append(pod(name, ns, ip, nd, rs))
            members.append((name, ip, nd))
        kinds["services"].append(service(dep, ns, f"10.96.{d // 250}.{d % 250 + 1}"))
        kinds["endpointslices"].append(endpointslice(f"{dep}-x1", ns, dep, members))
    for j in range(n_pods // 100):
        kinds["jobs"].append(job(f"report-{j}", "batch", "report"))
    return kinds


def measure(n_pods: int) -> dict[str, float]:
    objs = cluster(n_pods)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    idx = KubeIndex()
    for kind, items in objs.items():
        idx.replace(kind, items)
    index_only = tracemalloc.get_traced_memory()[0] - base
    table = idx.table()
    with_table = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    blob = pickle.dumps(table)
    pages = [
        orjson.dumps(
            {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": objs["pods"][i : i + 500]}
        )
        for i in range(0, len(objs["pods"]), 500)
    ]
    del objs
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    copy = pickle.loads(blob)
    worker = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    assert len(copy) == len(table)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    idx2 = KubeIndex()
    staged = idx2.stage("pods")
    for page in pages:
        staged.add(orjson.loads(page)["items"])
    idx2.install(staged)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    view = K8sView(True, copy)
    rt = Roundtrip("http", "roundtrip", ("10.0.0.5", 40000), ("10.0.3.7", 8080), None, None)
    import time

    t0 = time.process_time()
    for _ in range(200_000):
        view.attach(rt)
    attach_us = (time.process_time() - t0) / 200_000 * 1e6
    return {
        "attach_us": attach_us,
        "list_mb": sum(len(p) for p in pages) / 1e6,
        "peak_mb": peak / 1e6,
        "pods": n_pods,
        "entries": len(table),
        "index_mb": index_only / 1e6,
        "agent_mb": with_table / 1e6,
        "worker_mb": worker / 1e6,
        "pickle_mb": len(blob) / 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pods", type=int, nargs="+", default=[1000, 5000])
    args = ap.parse_args()
    print(
        f"{'pods':>7} {'entries':>8} {'index MB':>9} {'agent MB':>9} {'worker MB':>10} {'sent MB':>8} "
        f"{'agent/1k pods':>14} {'list MB':>8} {'list peak MB':>13} {'attach µs':>10}"
    )
    for n in args.pods:
        r = measure(n)
        print(
            f"{r['pods']:>7} {r['entries']:>8} {r['index_mb']:>9.2f} {r['agent_mb']:>9.2f} {r['worker_mb']:>10.2f} "
            f"{r['pickle_mb']:>8.2f} {r['agent_mb'] / n * 1000:>14.2f} {r['list_mb']:>8.2f} {r['peak_mb']:>13.2f} {r['attach_us']:>10.2f}"
        )


if __name__ == "__main__":
    main()
