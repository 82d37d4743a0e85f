"""Record the captures `make bench` replicates: a real server talking to a real client library, on loopback.

    .venv/bin/python scripts/record_bench_captures.py [CASE ...] [--out bench/out/real] [--force]

One capture per benchmark case (CASES below), each a few seconds of traffic: the server is started by the
tests' own helpers (tests/helpers/dbservers.py, servers.py, live.py: Debian's nginx, nghttpd, redis-server,
PostgreSQL, MariaDB, RabbitMQ, unbound; Tansu for Kafka, SecantusDB for MongoDB, the grpcio test server) on
a free port with its own directory, a real client library makes the traffic, and tcpdump writes the file
(`-s 0`, nanosecond timestamps). Beside each `<case>.pcap` goes `<case>.json`: the server port, the
protocol rule, what the client did (the number of requests it sent, by its own count) and tcpdump's drop
count. bench/replicate.py turns the small file into a large one; bench/vs_tshark.py measures it.

Needs root (tcpdump on `lo`). Captures are cached: a case whose files exist is not recorded again unless
--force. Every server started here is stopped here, by PID.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.helpers.live import Nginx, free_port, stop_process, wait_port  # noqa: E402

OUT = os.path.join(ROOT, "bench", "out", "real")
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
Info = dict[str, Any]


# tcpdump's kernel ring (-B, KiB): 512 MiB, 2.5 times the largest recording (http1-large: ~207 MB of frames
# in under a second on loopback), so tcpdump can fall behind by a whole recording (a loaded machine
# deschedules it) without the kernel dropping a frame; with 64 MiB, a busy 2-core machine dropped thousands.
# The ring is kernel memory, held only while one recording runs.
RING_KIB = 512 * 1024
# without --immediate-mode the kernel hands tcpdump whole ring blocks, a block at the latest this long after
# its first frame (libpcap's TPACKET_V3 block timeout, tcpdump's default 1000 ms): stop() waits this long
# before it interrupts tcpdump, so the last block is read, not left in the ring
BLOCK_TIMEOUT_S = 1.0
# tmpfs for the file while tcpdump writes it (moved to its place after): a disk's writeback cannot stall it
TMPFS = "/dev/shm"


class Tcpdump:
    """tcpdump -i lo of one port, to a file; stopped by PID with SIGINT (it then writes its drop count).

    Made not to drop under load (a test run beside it): a ring that holds a whole recording, frames taken in
    blocks and written buffered (no --immediate-mode, no -U: one wake-up and one write per many frames, not
    per frame), into a file on tmpfs (TMPFS) that is moved to `path` when tcpdump has ended.
    """

    def __init__(self, path: str, port: int) -> None:
        self.path = path
        tmp_dir = TMPFS if os.path.isdir(TMPFS) else os.path.dirname(os.path.abspath(path))
        self.tmp = tempfile.mkdtemp(prefix="packetd-rec-", dir=tmp_dir)
        self.proc = subprocess.Popen(
            ["tcpdump", "-i", "lo", "-n", "-s", "0", "-B", str(RING_KIB), "--time-stamp-precision=nano",
             "-w", os.path.join(self.tmp, "rec.pcap"), f"port {port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert self.proc.stderr is not None
        seen = b""
        while b"listening on" not in seen:
            chunk = self.proc.stderr.read1(4096)  # type: ignore[attr-defined]
            if not chunk:
                shutil.rmtree(self.tmp, ignore_errors=True)
                raise RuntimeError(f"tcpdump did not start: {seen.decode(errors='replace')}")
            seen += chunk

    def __enter__(self) -> Tcpdump:
        return self

    def __exit__(self, *exc: object) -> None:
        """A workload that raised leaves no tcpdump running and no half-written file on tmpfs."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def stop(self) -> int:
        time.sleep(BLOCK_TIMEOUT_S + 1.0)  # the last block is handed to tcpdump (and the last frames with it)
        self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=60)
            shutil.move(os.path.join(self.tmp, "rec.pcap"), self.path)
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
        m = re.search(rb"(\d+) packets? dropped by kernel", err)
        return int(m.group(1)) if m else -1


# -- the workloads: each takes the server's port and returns what the client did -----------------------------
def http_small_load(port: int) -> Info:
    """http.client, 8 keep-alive connections in turn: small nginx answers (200, 404, 418, 204, 201)."""
    rng = random.Random(1)
    conns = [http.client.HTTPConnection("127.0.0.1", port) for _ in range(8)]
    paths = ["/index.txt", "/index.txt?page=%d", "/teapot", "/missing/%d", "/empty"]
    sent = 0
    for i in range(4000):
        c = conns[i % len(conns)]
        headers = {"User-Agent": "python-http.client bench", "Accept": "*/*"}
        if rng.random() < 0.3:
            headers["traceparent"] = TRACEPARENT
        if rng.random() < 0.1:
            c.request(
                "POST",
                "/created",
                body=b'{"id": %d}' % i,
                headers={**headers, "Content-Type": "application/json"},
            )
        else:
            path = rng.choice(paths)
            c.request("GET", path % i if "%d" in path else path, headers=headers)
        c.getresponse().read()
        sent += 1
    for c in conns:
        c.close()
    return {"requests": sent, "client": "http.client (CPython), 8 keep-alive connections"}


def http_large_load(port: int, www: str) -> Info:
    """http.client, 4 keep-alive connections: 32 KiB - 2 MiB static files from nginx."""
    sizes = {"f32k.bin": 32 << 10, "f256k.bin": 256 << 10, "f1m.bin": 1 << 20, "f2m.bin": 2 << 20}
    for name, size in sizes.items():
        with open(os.path.join(www, name), "wb") as f:
            f.write(os.urandom(size))
    conns = [http.client.HTTPConnection("127.0.0.1", port) for _ in range(4)]
    names = list(sizes)
    sent = 0
    for i in range(240):
        c = conns[i % len(conns)]
        c.request("GET", "/" + names[i % len(names)], headers={"User-Agent": "python-http.client bench"})
        c.getresponse().read()
        sent += 1
    for c in conns:
        c.close()
    return {"requests": sent, "client": "http.client (CPython), 4 keep-alive connections"}


def record_http(kind: str, path: str) -> Info:
    nginx = Nginx()
    try:
        with Tcpdump(path, nginx.port) as td:
            info = (
                http_small_load(nginx.port)
                if kind == "small"
                else http_large_load(nginx.port, os.path.join(nginx.dir, "www"))
            )
            drops = td.stop()
    finally:
        nginx.stop()
    return {
        **info,
        "port": nginx.port,
        "protocol": "http",
        "server": "nginx (Debian)",
        "tcpdump_drops": drops,
    }


def record_http2(path: str) -> Info:
    www = tempfile.mkdtemp(prefix="packetd-bench-h2-")
    for name, size in (("index.html", 600), ("api.json", 2000), ("img.bin", 4000)):
        with open(os.path.join(www, name), "wb") as f:
            f.write(os.urandom(size))
    port = free_port()
    server = subprocess.Popen(["nghttpd", "--no-tls", "-d", www, str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_port(port)
        with Tcpdump(path, port) as td:
            base = f"http://127.0.0.1:{port}"
            out = subprocess.run(
                ["h2load", "-n", "6000", "-c", "8", "-m", "8", f"{base}/index.html", f"{base}/api.json", f"{base}/img.bin",
                 f"{base}/missing"],
                capture_output=True, text=True, check=True, timeout=120,
            ).stdout  # fmt: skip
            drops = td.stop()
    finally:
        stop_process(server)  # type: ignore[arg-type]
        shutil.rmtree(www, ignore_errors=True)
    done = int(re.search(r"requests: \d+ total, \d+ started, (\d+) done", out).group(1))  # type: ignore[union-attr]
    return {"requests": done, "port": port, "protocol": "http2", "server": "nghttpd (nghttp2)",
            "client": "h2load (nghttp2), 8 connections x 8 streams", "tcpdump_drops": drops}  # fmt: skip


def record_grpc(path: str) -> Info:
    import grpc

    port = free_port()
    server = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "helpers", "grpc_server.py"), str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    rng = random.Random(2)
    try:
        wait_port(port, timeout=30)
        with Tcpdump(path, port) as td:
            sent = 0
            channels = [grpc.insecure_channel(f"127.0.0.1:{port}") for _ in range(4)]

            def calls(ch: grpc.Channel) -> None:
                nonlocal sent
                unary = ch.unary_unary("/demo.Echo/Unary")
                count = ch.unary_stream("/demo.Echo/Count")
                for i in range(1000):
                    if i % 20 == 0:
                        list(count(b"5"))
                    else:
                        unary(os.urandom(rng.randint(10, 600)), metadata=(("traceparent", TRACEPARENT),))
                    sent += 1

            threads = [threading.Thread(target=calls, args=(ch,)) for ch in channels]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for ch in channels:
                ch.close()
            drops = td.stop()
    finally:
        stop_process(server)  # type: ignore[arg-type]
    return {"requests": sent, "port": port, "protocol": "grpc", "server": "grpcio server (tests/helpers/grpc_server.py)",
            "client": "grpcio (Python), 4 channels in threads", "tcpdump_drops": drops}  # fmt: skip


def record_redis(path: str) -> Info:
    import redis
    from tests.helpers.dbservers import RedisServer

    server = RedisServer()
    rng = random.Random(3)
    try:
        with Tcpdump(path, server.port) as td:
            clients = [redis.Redis(host="127.0.0.1", port=server.port) for _ in range(4)]
            sent = 0
            for i in range(4000):
                r = clients[i % 4]
                k = f"key:{rng.randint(0, 500)}"
                op = rng.random()
                if op < 0.35:
                    r.get(k)
                elif op < 0.6:
                    r.set(k, os.urandom(rng.randint(10, 300)))
                elif op < 0.7:
                    r.hset(f"h:{i % 50}", mapping={"a": i, "b": "x" * 20})
                elif op < 0.75:
                    r.hgetall(f"h:{i % 50}")
                elif op < 0.85:
                    r.lpush(f"l:{i % 20}", i)
                elif op < 0.9:
                    r.lrange(f"l:{i % 20}", 0, 20)
                elif op < 0.95:
                    r.incr("counter")
                else:
                    p = r.pipeline(transaction=False)
                    for j in range(10):
                        p.get(f"key:{j}")
                    p.execute()
                    sent += 9
                sent += 1
            for r in clients:
                r.close()
            drops = td.stop()
    finally:
        server.stop()
    return {"requests": sent, "port": server.port, "protocol": "redis", "server": "redis-server (Debian)",
            "client": "redis-py, 4 connections, 5 % pipelines of 10", "tcpdump_drops": drops}  # fmt: skip


def record_postgresql(path: str) -> Info:
    import psycopg
    from tests.helpers.dbservers import PostgresServer

    server = PostgresServer()
    rng = random.Random(4)
    try:
        server.psql("CREATE TABLE items (id int PRIMARY KEY, name text, qty int)", db=server.DATABASE)
        server.psql(
            "INSERT INTO items SELECT g, 'item-' || g, g % 17 FROM generate_series(1, 1000) g",
            db=server.DATABASE,
        )
        with Tcpdump(path, server.port) as td:
            conns = [psycopg.connect(server.dsn(), autocommit=True) for _ in range(4)]
            sent = 0
            for i in range(3000):
                c = conns[i % 4]
                op = rng.random()
                if op < 0.5:
                    c.execute("SELECT name, qty FROM items WHERE id = %s", (rng.randint(1, 1000),)).fetchall()
                elif op < 0.7:
                    c.execute("UPDATE items SET qty = qty + 1 WHERE id = %s", (rng.randint(1, 1000),))
                elif op < 0.8:
                    c.execute(
                        "SELECT id, name FROM items WHERE qty = %s LIMIT 20",
                        (rng.randint(0, 16),),
                        prepare=True,
                    ).fetchall()
                elif op < 0.9:
                    c.execute(b"SELECT count(*) FROM items", prepare=False).fetchall()
                else:
                    c.execute("SELECT now()").fetchall()
                sent += 1
            for c in conns:
                c.close()
            drops = td.stop()
    finally:
        server.stop()
    return {"requests": sent, "port": server.port, "protocol": "postgresql", "server": "PostgreSQL (Debian)",
            "client": "psycopg 3 (libpq), 4 connections, extended protocol", "tcpdump_drops": drops}  # fmt: skip


def record_mysql(path: str) -> Info:
    import pymysql
    from tests.helpers.dbservers import MariaDBServer

    server = MariaDBServer()
    rng = random.Random(5)
    try:
        server.sql(f"CREATE TABLE {server.DATABASE}.kv (id INT PRIMARY KEY, v VARCHAR(64), n INT); "
                   f"USE {server.DATABASE}; INSERT INTO kv SELECT seq, md5(seq), seq % 13 FROM seq_1_to_1000;")  # fmt: skip
        with Tcpdump(path, server.port) as td:
            conns = [pymysql.connect(host="127.0.0.1", port=server.port, user=server.USER, password=server.PASSWORD,
                                     database=server.DATABASE, autocommit=True) for _ in range(4)]  # fmt: skip
            sent = 0
            for i in range(3000):
                with conns[i % 4].cursor() as cur:
                    op = rng.random()
                    if op < 0.55:
                        cur.execute("SELECT v, n FROM kv WHERE id = %s", (rng.randint(1, 1000),))
                    elif op < 0.75:
                        cur.execute("UPDATE kv SET n = n + 1 WHERE id = %s", (rng.randint(1, 1000),))
                    elif op < 0.9:
                        cur.execute("SELECT id, v FROM kv WHERE n = %s LIMIT 25", (rng.randint(0, 12),))
                    else:
                        cur.execute("SELECT NOW(), VERSION()")
                    cur.fetchall()
                sent += 1
            for c in conns:
                c.close()
            drops = td.stop()
    finally:
        server.stop()
    return {"requests": sent, "port": server.port, "protocol": "mysql", "server": "MariaDB (Debian)",
            "client": "PyMySQL, 4 connections", "tcpdump_drops": drops}  # fmt: skip


def record_kafka(path: str) -> Info:
    from confluent_kafka import Consumer, Producer
    from tests.helpers.servers import Tansu

    server = Tansu()
    try:
        with Tcpdump(path, server.port) as td:
            bootstrap = f"127.0.0.1:{server.port}"
            stats: dict[str, Any] = {}
            p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1, "batch.num.messages": 10,
                          "statistics.interval.ms": 100, "stats_cb": lambda s: stats.__setitem__("p", json.loads(s))})  # fmt: skip
            n = 20000
            for i in range(n):
                p.produce("bench", b"m%08d" % i + os.urandom(100), key=b"k%d" % (i % 64), partition=0,
                          headers=[("traceparent", TRACEPARENT.encode())])  # fmt: skip
                if i % 500 == 0:
                    p.poll(0)
            p.flush(60)
            time.sleep(0.3)
            p.poll(0.2)
            c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "auto.offset.reset": "earliest",
                          "max.partition.fetch.bytes": 65536})  # fmt: skip
            c.subscribe(["bench"])
            got = 0
            deadline = time.monotonic() + 60
            while got < n and time.monotonic() < deadline:
                for m in c.consume(1000, 1.0):
                    if m.error() is None:
                        got += 1
            c.close()
            drops = td.stop()
    finally:
        server.stop()
    produce = sum(b.get("req", {}).get("Produce", 0) for b in stats.get("p", {}).get("brokers", {}).values())
    return {"requests": produce, "consumed": got, "port": server.port, "protocol": "kafka",
            "server": "Tansu (Kafka-compatible broker)", "client": "librdkafka (confluent-kafka): produce, then a group consumer",
            "tcpdump_drops": drops}  # fmt: skip


def record_mongodb(path: str) -> Info:
    import pymongo
    from tests.helpers.servers import Secantus

    server = Secantus()
    rng = random.Random(6)
    try:
        with Tcpdump(path, server.port) as td:
            client = pymongo.MongoClient("127.0.0.1", server.port, directConnection=True, maxPoolSize=4)
            coll = client.app.users
            sent = 0
            for i in range(2000):
                op = rng.random()
                if op < 0.4:
                    coll.insert_one(
                        {"_id": i, "name": f"user{i}", "age": rng.randint(1, 99), "tags": ["a", "b"]}
                    )
                elif op < 0.7:
                    coll.find_one({"_id": rng.randint(0, i)})
                elif op < 0.85:
                    list(coll.find({"age": {"$gt": rng.randint(1, 90)}}).limit(10))
                else:
                    coll.update_one({"_id": rng.randint(0, i)}, {"$inc": {"age": 1}})
                sent += 1
            client.close()
            drops = td.stop()
    finally:
        server.stop()
    return {"requests": sent, "port": server.port, "protocol": "mongodb", "server": "SecantusDB (MongoDB wire protocol)",
            "client": "pymongo", "tcpdump_drops": drops}  # fmt: skip


def record_amqp(path: str) -> Info:
    import pika
    from tests.helpers.servers import RabbitMQ

    server = RabbitMQ()
    try:
        with Tcpdump(path, server.port) as td:
            conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", server.port, heartbeat=0))
            ch = conn.channel()
            ch.queue_declare("bench")
            ch.confirm_delivery()
            n = 3000
            for i in range(n):
                ch.basic_publish("", "bench", b"m%08d" % i + os.urandom(200),
                                 pika.BasicProperties(content_type="application/octet-stream", headers={"traceparent": TRACEPARENT}))  # fmt: skip
            got = 0
            for method, _props, _body in ch.consume("bench", inactivity_timeout=5):
                if method is None:
                    break
                ch.basic_ack(method.delivery_tag)
                got += 1
                if got == n:
                    break
            ch.cancel()
            conn.close()
            drops = td.stop()
    finally:
        server.stop()
    return {"requests": n, "consumed": got, "port": server.port, "protocol": "amqp", "server": "RabbitMQ (Debian)",
            "client": "pika: confirmed publishes, then a consumer with acks", "tcpdump_drops": drops}  # fmt: skip


def record_dns(path: str) -> Info:
    import dns.message
    import dns.query
    from tests.helpers.servers import Unbound

    server = Unbound()
    rng = random.Random(7)
    names = [("www.packetd.test.", "A"), ("www.packetd.test.", "AAAA"), ("alias.packetd.test.", "A"),
             ("packetd.test.", "MX"), ("missing.packetd.test.", "A"), ("packetd.test.", "SOA")]  # fmt: skip
    try:
        with Tcpdump(path, server.port) as td:
            sent = 0
            for i in range(4000):
                name, rdtype = rng.choice(names)
                q = dns.message.make_query(name, rdtype, use_edns=0 if i % 2 else None)
                if i % 100 == 99:
                    dns.query.tcp(q, "127.0.0.1", port=server.port, timeout=5)
                else:
                    dns.query.udp(q, "127.0.0.1", port=server.port, timeout=5)
                sent += 1
            drops = td.stop()
    finally:
        server.stop()
    return {"requests": sent, "port": server.port, "protocol": "dns", "server": "unbound (Debian), local zone",
            "client": "dnspython: UDP (a new socket per query), 1 % over TCP", "tcpdump_drops": drops}  # fmt: skip


CASES: dict[str, Callable[[str], Info]] = {
    "http1-large": lambda p: record_http("large", p),
    "http1-small": lambda p: record_http("small", p),
    "http2": record_http2,
    "grpc": record_grpc,
    "mysql": record_mysql,
    "postgresql": record_postgresql,
    "redis": record_redis,
    "kafka": record_kafka,
    "mongodb": record_mongodb,
    "amqp": record_amqp,
    "dns": record_dns,
}


def record(case: str, out: str = OUT, force: bool = False) -> tuple[str, Info]:
    """(the capture's path, its metadata), recorded now unless cached."""
    os.makedirs(out, exist_ok=True)
    pcap, meta = os.path.join(out, f"{case}.pcap"), os.path.join(out, f"{case}.json")
    if not force and os.path.exists(pcap) and os.path.exists(meta):
        with open(meta) as f:
            return pcap, json.load(f)
    t0 = time.perf_counter()
    info = CASES[case](pcap + ".tmp")
    os.replace(pcap + ".tmp", pcap)
    info["recorded_seconds"] = round(time.perf_counter() - t0, 1)
    info["bytes"] = os.path.getsize(pcap)
    with open(meta, "w") as f:
        json.dump(info, f, indent=2)
    return pcap, info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cases", nargs="*", default=list(CASES), help=f"of {', '.join(CASES)} (default: all)")
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--force", action="store_true", help="record again even if cached")
    args = ap.parse_args()
    for case in args.cases:
        if case not in CASES:
            sys.exit(f"record_bench_captures: unknown case {case!r}; one of {', '.join(CASES)}")
        path, info = record(case, args.out, args.force)
        print(f"{case}: {path} ({info['bytes'] / 1e6:.1f} MB, port {info['port']}, {info['requests']} requests, "
              f"tcpdump drops {info['tcpdump_drops']})", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
