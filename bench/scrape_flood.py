"""What one `/protocol/metrics` scrape costs when a web scan floods the agent with distinct paths.

HTTP/1 roundtrips to N distinct paths (short ones like a scanner's, or 4 KB ones) go through the real
processor (`roundtripstometrics`: templating, the label cap), the worker's `Aggregator`, the agent's
`MetricStore` (budgets) and prometheus_client's exposition, exactly as in the agent. Reported per case:
the series the store kept, the scrape's size, the CPU time of one scrape (`time.process_time`, best of 3),
and this process's peak RSS (VmHWM), each case in a fresh interpreter so its peak is its own.

    python bench/scrape_flood.py                 # the default budget
    python bench/scrape_flood.py --unbounded     # budgets lifted: what the flood costs without them

The agent's end-to-end flood test (tests/agent/test_metrics_live.py,
`test_a_path_flood_keeps_the_scrape_and_the_agent_bounded`) checks the same bounds live.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run as a script, too

from bench.common import in_fresh_process

CASES = [("10000 distinct short paths", 10_000, 12), ("2000 distinct 4 KB paths", 2_000, 4096)]


def flood(n: int, length: int, unbounded: bool) -> dict[str, Any]:
    from prometheus_client import CollectorRegistry, generate_latest

    from packetd.agent.storage import MetricStore
    from packetd.pairing.roundtrip import Roundtrip
    from packetd.pipeline.metrics import Aggregator, RoundtripsToMetrics
    from packetd.protocols.base import Kind
    from packetd.protocols.http1.messages import Request, Response

    if unbounded:
        proc = RoundtripsToMetrics({}, ["http"], label_bytes=1 << 30)
        store = MetricStore(series_limit=1 << 30, label_limits={}, max_bytes=1 << 60)
    else:
        proc = RoundtripsToMetrics({}, ["http"])
        store = MetricStore()
    agg = Aggregator()
    for i in range(n):
        # word-like segments with a comma: no id rule templates them (as in a scanner's word list)
        path = f"/scan/w{i}x" if length < 64 else f"/scan/{i}," + "a," * ((length - 16) // 2)
        req = Request(
            start_ns=i * 1000, end_ns=i * 1000 + 10, size=len(path) + 40, flags=0, method="GET",
            target=path, version="HTTP/1.1", host="web", header_block=b"", header_bytes=40,
            body_bytes=0, chunked=False, close=False,
        )  # fmt: skip
        resp = Response(
            start_ns=i * 1000 + 60, end_ns=i * 1000 + 70 + i % 500, size=150, flags=0, status_code=404,
            reason="Not Found", version="HTTP/1.1", header_block=b"", header_bytes=140, body_bytes=10,
            chunked=False, close=False,
        )  # fmt: skip
        rt = Roundtrip(
            protocol="http", kind=Kind.ROUNDTRIP, client=("10.0.0.2", 40000 + i % 20000),
            server=("10.0.0.1", 80), request=req, response=resp,
        )  # fmt: skip
        proc.process(rt, agg)
        if i % 1000 == 999:
            store.merge(agg.take(), 0)  # a worker ships its deltas every 0.5 s
    store.merge(agg.take(), 0)
    reg = CollectorRegistry(auto_describe=False)
    reg.register(store)
    best = float("inf")
    size = 0
    for _ in range(3):
        t0 = time.process_time()
        size = len(generate_latest(reg))
        best = min(best, time.process_time() - t0)
    return {
        "series": sum(len(s) for s in store._counters.values()),
        "scrape_bytes": size,
        "estimated_bytes": store.bytes,
        "scrape_cpu_s": round(best, 3),
        "truncated": sum(store.truncated.values()),
        "overflowed": sum(store.overflowed.values()),
        "label_overflowed": sum(store.label_overflowed.values()),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--unbounded", action="store_true", help="lift the budgets and the label cap")
    args = ap.parse_args()
    for title, n, length in CASES:
        result, rss = in_fresh_process("scrape_flood", "flood", n, length, args.unbounded)
        result["peak_rss_mb"] = round(rss, 1)
        print(f"{title}: {json.dumps(result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
