"""The worst case of `packetd top`'s memory bound (aggregate.py): every grouping full, every ring full.

    python bench/top_memory.py

Feeds records whose keys are all distinct in every grouping (MAX_ROWS + 1 servers, clients, operations,
paths of ~160 characters and processes, so every grouping reaches its bound and its "(other)" row), each
row given more than SAMPLES latencies and RECENT records, inside one window; then prints the memory
tracemalloc sees held by the aggregator (the records themselves are dropped as they are added); then
the CPU cost of `add()` without tracemalloc, and of `table()` (what each redraw of the live view costs).
"""

from __future__ import annotations

import time
import tracemalloc
from typing import Any

from packetd.top import aggregate as agg

S = 1_000_000_000


def record(i: int, j: int) -> dict[str, Any]:
    ip = f"10.{i // 256}.{i % 256}"
    return {
        "protocol": "http",
        "kind": "roundtrip",
        "client": {"ip": f"10.1{ip[2:]}", "port": 40000, "process": {"pid": i, "comm": "client"}},
        "server": {"ip": f"10.0{ip[2:]}", "port": 80, "process": {"pid": i, "comm": "server-process"}},
        "operation": f"OP{i}",
        "status": "200",
        "error": j % 10 == 0,
        "end_time": "2024-05-01T12:00:01.000000000Z",
        "duration_ns": 1000 + j,
        "request": {"path": f"/p{i}/" + "x" * 150, "target": f"/p{i}/" + "x" * 150},
        "response": {},
    }


def main() -> None:
    per_row = agg.SAMPLES + 10
    tracemalloc.start()
    a = agg.Aggregator(window_ns=60 * S)
    start = time.process_time()
    n = 0
    for j in range(per_row):
        for i in range(agg.MAX_ROWS + 1):
            a.add(record(i, j), 1000 * S + j * 59 * S // per_row)
            n += 1
    cpu = time.process_time() - start
    held, _ = tracemalloc.get_traced_memory()
    rows = sum(len(r) for r in a.rows.values())
    print(f"{n} records into {rows} rows ({len(agg.GROUPINGS)} groupings): {held / 2**20:.1f} MiB held")
    print(f"add(): {cpu / n * 1e6:.1f} µs per record of CPU (tracemalloc on: slower than without)")
    tracemalloc.stop()
    b = agg.Aggregator(window_ns=60 * S)
    records = [record(i, j) for j in range(200) for i in range(agg.MAX_ROWS + 1)]
    start = time.process_time()
    for k, rec in enumerate(records):
        b.add(rec, 1000 * S + k * 1000)
    cpu = time.process_time() - start
    print(f"add(): {cpu / len(records) * 1e6:.1f} µs per record of CPU, tracemalloc off")
    start = time.process_time()
    for grouping in agg.GROUPINGS:
        b.table(grouping, "p99")
    print(f"table(): {(time.process_time() - start) * 1e3:.1f} ms of CPU for the 5 groupings' full tables")


if __name__ == "__main__":
    main()
