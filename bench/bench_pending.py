"""Memory per pending request (issue 9 item 15): what one request in flight costs a connection, measured
with tracemalloc, to size `MAX_PENDING` (protocols/base.py).

    .venv/bin/python bench/bench_pending.py [--requests 10000]

For each in-order protocol, a real Session (decoder + FIFO matcher) is fed `--requests` pipelined requests
as their clients frame them (Redis `GET key:<i>`, MySQL COM_QUERY `SELECT * FROM t WHERE id = <i>`,
PostgreSQL psycopg-style Parse/Bind/Execute per statement) and none is answered; the memory tracemalloc
sees allocated and still held, divided by the requests, is the cost of one pending entry: the request
record held by the matcher (or, for PostgreSQL, the decoder's frontend message) plus the decoder's own
expectation, statement text included.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tracemalloc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "src"))

from tests.helpers import mywire as my  # noqa: E402
from tests.helpers import pgwire as pg  # noqa: E402
from tests.helpers.decoding import open_session  # noqa: E402

from packetd.protocols.base import MAX_PENDING  # noqa: E402
from packetd.protocols.registry import MYSQL, POSTGRESQL, REDIS, Registry  # noqa: E402


def redis(n: int) -> tuple[list[tuple[int, bytes]], int]:
    def cmd(*w: bytes) -> bytes:
        return b"*%d\r\n" % len(w) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in w)

    return [(0, b"".join(cmd(b"GET", b"key:%d" % i) for i in range(n)))], n


def mysql(n: int) -> tuple[list[tuple[int, bytes]], int]:
    hello = [(1, my.greeting(my.MODERN)), (0, my.login(my.MODERN, "app", b"x" * 20, "shop")), (1, my.ok(2))]
    return [*hello, (0, b"".join(my.query(f"SELECT * FROM t WHERE id = {i}") for i in range(n)))], n


def postgresql(n: int) -> tuple[list[tuple[int, bytes]], int]:
    hello = [(0, pg.startup(user="u")), (1, pg.auth(0) + pg.ready())]
    body = b"".join(
        pg.parse("", f"SELECT * FROM t WHERE id = {i}") + pg.bind("", "") + pg.execute()
        for i in range(n // 3)
    )
    return [*hello, (0, body)], 3 * (n // 3)  # frontend messages: the unit the bound counts


def measure(name: str, steps: list[tuple[int, bytes]], pending: int) -> float:
    reg = Registry([REDIS, MYSQL, POSTGRESQL])
    gc.collect()
    tracemalloc.start()
    s, _records, _stats = open_session(reg[name], reg, ("10.0.0.1", 5555), ("10.0.0.2", 1))
    base = tracemalloc.get_traced_memory()[0]
    ts = 1
    for direction, data in steps[:-1]:
        s.data(direction, memoryview(data), ts)
        ts += 1
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    direction, data = steps[-1]
    for i in range(0, len(data), 65_000):
        s.data(direction, memoryview(data[i : i + 65_000]), ts + i)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del s
    assert after >= base
    return (after - before) / pending


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=MAX_PENDING)
    args = ap.parse_args()
    print(f"{'protocol':<12} {'pending':>8} {'bytes/entry':>12} {'at MAX_PENDING':>15}")
    for name, build in (("redis", redis), ("mysql", mysql), ("postgresql", postgresql)):
        steps, n = build(args.requests)
        per = measure(name, steps, n)
        print(f"{name:<12} {n:>8} {per:>12.0f} {per * MAX_PENDING / 1e6:>12.1f} MB")


if __name__ == "__main__":
    main()
