"""Live load: Kafka produce/consume (Tansu + librdkafka) and RabbitMQ publish/consume (pika), captured by
`packetd watch` through AF_PACKET on loopback; reports the share of the clients' requests captured.

    sudo .venv/bin/python bench/live_load.py [--messages 20000] [--which kafka,amqp]

The clients' own counts are the truth: librdkafka's statistics (`brokers.*.req.Produce` / `Fetch`: the
requests it sent) and, for RabbitMQ, the messages pika published and received (each Basic.Publish without
confirms and each Basic.Deliver is one record).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from tests.helpers.live import capture  # noqa: E402
from tests.helpers.servers import RabbitMQ, Tansu  # noqa: E402


def kafka_load(n: int) -> dict[str, object]:
    from confluent_kafka import Consumer, Producer

    server = Tansu()
    stats: dict[str, dict] = {}
    try:
        bootstrap = f"127.0.0.1:{server.port}"
        with capture(["--ifaces", "^lo$", "--proto", f"kafka;{server.port}", "--block-num", "256"]) as cap:
            t0 = time.perf_counter()
            # small batches: many Produce requests (librdkafka would otherwise put 10 000 messages in one)
            p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1, "statistics.interval.ms": 100,
                          "batch.num.messages": 20,
                          "stats_cb": lambda s: stats.__setitem__("producer", json.loads(s))})  # fmt: skip
            for i in range(n):
                p.produce("load", b"m%08d" % i + b"x" * 200, partition=0)
                if i % 1000 == 0:
                    p.poll(0)
            p.flush(60)
            time.sleep(0.3)
            p.poll(0.2)
            produce_s = time.perf_counter() - t0
            c = Consumer({"bootstrap.servers": bootstrap, "group.id": "load", "auto.offset.reset": "earliest",
                          "statistics.interval.ms": 100, "fetch.max.bytes": 1 << 20,
                          "stats_cb": lambda s: stats.__setitem__("consumer", json.loads(s))})  # fmt: skip
            c.subscribe(["load"])
            got = 0
            deadline = time.monotonic() + 120
            while got < n and time.monotonic() < deadline:
                for m in c.consume(1000, 1.0):
                    if m.error() is None:
                        got += 1
            time.sleep(0.3)
            c.poll(0.2)
            c.close()
            records = cap.stop()
    finally:
        server.stop()
    sent = collections.Counter()
    for role in ("producer", "consumer"):
        for b in stats.get(role, {}).get("brokers", {}).values():
            for api, k in b.get("req", {}).items():
                sent[api] += k
    seen = collections.Counter(
        r["operation"] for r in records if r["kind"] in ("roundtrip", "unanswered", "oneway")
    )
    return {
        "messages": n, "consumed": got, "produce_seconds": round(produce_s, 2),
        "produce_requests_sent": sent["Produce"], "produce_records": seen["Produce"],
        "produce_share": seen["Produce"] / max(sent["Produce"], 1),
        "fetch_requests_sent": sent["Fetch"], "fetch_records": seen["Fetch"],
        "fetch_share": seen["Fetch"] / max(sent["Fetch"], 1),
    }  # fmt: skip


def amqp_load(n: int) -> dict[str, object]:
    import pika

    server = RabbitMQ()
    try:
        with capture(["--ifaces", "^lo$", "--proto", f"amqp;{server.port}", "--block-num", "256"]) as cap:
            conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", server.port, heartbeat=0))
            ch = conn.channel()
            ch.queue_declare("load")
            t0 = time.perf_counter()
            for i in range(n):
                ch.basic_publish("", "load", b"m%08d" % i + b"x" * 200)
            publish_s = time.perf_counter() - t0
            got = 0
            for method, _p, _b in ch.consume("load", auto_ack=True, inactivity_timeout=5):
                if method is None:
                    break
                got += 1
                if got == n:
                    break
            ch.cancel()
            conn.close()
            records = cap.stop()
    finally:
        server.stop()
    seen = collections.Counter(r["operation"] for r in records)
    return {
        "messages": n, "consumed": got, "publish_seconds": round(publish_s, 2),
        "publish_records": seen["Basic.Publish"], "publish_share": seen["Basic.Publish"] / n,
        "deliver_records": seen["Basic.Deliver"], "deliver_share": seen["Basic.Deliver"] / max(got, 1),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--which", default="kafka,amqp")
    args = ap.parse_args()
    for which in args.which.split(","):
        result = kafka_load(args.messages) if which == "kafka" else amqp_load(args.messages)
        print(json.dumps({which: result}, indent=2), flush=True)


if __name__ == "__main__":
    main()
