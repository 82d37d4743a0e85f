"""Offline replay benchmark for DNS, AMQP, MongoDB and Kafka: packetd vs tshark on the same large capture.

    .venv/bin/python bench/proto_replay.py [--proto dns,amqp,mongodb,kafka] [--packets 300000] [--runs 3]

For each protocol it generates (once, cached under bench/out/, not committed) a capture of many concurrent
connections whose messages are written by the protocols' own client libraries (dnspython, pika's frame
encoder, pymongo's OP_MSG encoder, kafka-python's request classes and record-batch builder), with a
delayed pure ACK after every second exchange on TCP. It replays the file through the whole pipeline on
one core (reader → L2-L4 → flows → decoder → pairing → records, counting sink) in a fresh process, and
reports the median of `--runs`: packets/s, records/s, peak RSS; then tshark's time on the same file with a
filter that makes it dissect every message of the protocol.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "src"))
sys.path.insert(0, ROOT)

from bench.common import in_fresh_process, timed_replay  # noqa: E402

from packetd.capture.pcapwrite import PcapWriter, TcpConversation, ethernet, ipv4_udp  # noqa: E402
from packetd.engine import Rule  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")
PORTS = {"dns": 53, "amqp": 5672, "mongodb": 27017, "kafka": 9092}
TSHARK = {
    "dns": ["-Y", "dns.flags.response == 1", "-T", "fields", "-e", "dns.time"],
    "amqp": ["-Y", "amqp", "-T", "fields", "-e", "amqp.method.method"],
    "mongodb": ["-d", "tcp.port==27017,mongo", "-Y", "mongo", "-T", "fields", "-e", "mongo.opcode"],
    "kafka": ["-Y", "kafka", "-T", "fields", "-e", "kafka.correlation_id"],
}
Exchange = list[tuple[int, bytes]]  # (side, bytes) in order


# -- exchanges, written by the client libraries -----------------------------------------------------------
def dns_exchanges(rng: random.Random) -> Callable[[], Exchange]:
    import dns.message
    import dns.rrset

    names = [f"host{i}.svc{i % 7}.example.com." for i in range(50)]

    def make() -> Exchange:
        q = dns.message.make_query(rng.choice(names), rng.choice(["A", "AAAA"]), use_edns=0)
        q.id = rng.getrandbits(16)
        r = dns.message.make_response(q)
        name = q.question[0].name.to_text()
        rtype = dns.rdatatype.to_text(q.question[0].rdtype)
        r.answer.append(dns.rrset.from_text(name, 60, "IN", "CNAME", "lb." + name))
        data = "192.0.2.%d" % rng.randint(1, 254) if rtype == "A" else "2001:db8::%x" % rng.randint(1, 9999)
        r.answer.append(dns.rrset.from_text("lb." + name, 60, "IN", rtype, data))
        return [(0, q.to_wire()), (1, r.to_wire())]

    return make


def amqp_exchanges(rng: random.Random) -> tuple[bytes, Callable[[], Exchange]]:
    import pika.frame
    import pika.spec

    def m(ch: int, method: object) -> bytes:
        return pika.frame.Method(ch, method).marshal()  # type: ignore[arg-type]

    def content(ch: int, body: bytes, **props: object) -> bytes:
        return (pika.frame.Header(ch, len(body), pika.spec.BasicProperties(**props)).marshal()
                + pika.frame.Body(ch, body).marshal())  # fmt: skip

    tags: dict[int, int] = {}  # per connection: the channel's delivery tags count from 1
    opening = [
        (0, pika.frame.ProtocolHeader().marshal()),
        (1, m(0, pika.spec.Connection.Start(server_properties={"product": "RabbitMQ"}, mechanisms="PLAIN"))),
        (0, m(0, pika.spec.Connection.StartOk(client_properties={}, mechanism="PLAIN", response="\0g\0g"))),
        (1, m(0, pika.spec.Connection.Tune(2047, 131072, 60))),
        (0, m(0, pika.spec.Connection.TuneOk(2047, 131072, 60)) + m(0, pika.spec.Connection.Open("/"))),
        (1, m(0, pika.spec.Connection.OpenOk())),
        (0, m(1, pika.spec.Channel.Open())),
        (1, m(1, pika.spec.Channel.OpenOk())),
        (0, m(1, pika.spec.Confirm.Select())),
        (1, m(1, pika.spec.Confirm.SelectOk())),
    ]

    def make(conn: int) -> Exchange:
        kind = rng.random()
        body = os.urandom(rng.randint(50, 1500))
        if kind < 0.6:  # a confirmed publish
            tags[conn] = tags.get(conn, 0) + 1
            return [(0, m(1, pika.spec.Basic.Publish(exchange="orders", routing_key="new"))
                     + content(1, body, content_type="application/json",
                               headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})),
                    (1, m(1, pika.spec.Basic.Ack(delivery_tag=tags[conn])))]  # fmt: skip
        if kind < 0.8:
            return [(1, m(1, pika.spec.Basic.Deliver(consumer_tag="c1", delivery_tag=rng.randint(1, 1 << 20),
                                                     exchange="orders", routing_key="new")) + content(1, body)),
                    (0, m(1, pika.spec.Basic.Ack(delivery_tag=1)))]  # fmt: skip
        return [(0, m(1, pika.spec.Queue.Declare(queue="work-%d" % rng.randint(1, 50), durable=True))),
                (1, m(1, pika.spec.Queue.DeclareOk(queue="work", message_count=3, consumer_count=1)))]  # fmt: skip

    return b"", make, opening  # type: ignore[return-value]


def mongodb_exchanges(rng: random.Random) -> Callable[[], Exchange]:
    import bson
    import pymongo.message
    from bson.codec_options import CodecOptions

    opts = CodecOptions()

    def reply(to: int, doc: dict) -> bytes:
        body = struct.pack("<IB", 0, 0) + bson.encode(doc)
        return struct.pack("<iiii", 16 + len(body), rng.getrandbits(31), to, 2013) + body

    def make() -> Exchange:
        if rng.random() < 0.7:
            rid, msg, _s, _m = pymongo.message._op_msg(0, {"find": "users", "filter": {"age": {"$gt": rng.randint(1, 90)}, "name": "x"}, "limit": 20, "lsid": {"id": bson.Binary(os.urandom(16), 4)}}, "app", None, opts)  # fmt: skip
            docs = [
                {"_id": i, "name": "user%d" % i, "age": rng.randint(1, 99), "tags": ["a", "b"]}
                for i in range(rng.randint(1, 20))
            ]
            return [
                (0, msg),
                (1, reply(rid, {"cursor": {"firstBatch": docs, "id": 0, "ns": "app.users"}, "ok": 1.0})),
            ]
        rid, msg, _s, _m = pymongo.message._op_msg(0, {"insert": "events", "documents": [{"t": time.time(), "v": os.urandom(64)} for _ in range(rng.randint(1, 5))]}, "app", None, opts)  # fmt: skip
        return [(0, msg), (1, reply(rid, {"n": 1, "ok": 1.0}))]

    return make


def kafka_exchanges(rng: random.Random) -> Callable[[], Exchange]:
    from kafka.protocol.consumer import FetchRequest, FetchResponse
    from kafka.protocol.producer import ProduceRequest, ProduceResponse
    from kafka.record.default_records import DefaultRecordBatchBuilder

    corr = {"n": 0}

    def batch(n: int) -> bytes:
        b = DefaultRecordBatchBuilder(2, 0, False, -1, -1, -1, 1 << 20)
        for i in range(n):
            b.append(i, timestamp=1_700_000_000_000 + i, key=b"k%d" % i, value=os.urandom(rng.randint(50, 400)),
                     headers=[("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")])  # fmt: skip
        return bytes(b.build())

    def framed(msg: object, with_client: bool) -> bytes:
        if with_client:
            msg.with_header(correlation_id=corr["n"], client_id="bench-producer")  # type: ignore[attr-defined]
        else:
            msg.with_header(correlation_id=corr["n"])  # type: ignore[attr-defined]
        return bytes(msg.encode(header=True, framed=True))  # type: ignore[attr-defined]

    def make() -> Exchange:
        corr["n"] += 1
        if rng.random() < 0.6:
            t = ProduceRequest.TopicProduceData
            req = ProduceRequest[9](transactional_id=None, acks=-1, timeout_ms=1500, topic_data=[t(name="orders", partition_data=[t.PartitionProduceData(index=rng.randint(0, 11), records=batch(rng.randint(1, 8)))])])  # fmt: skip
            rt = ProduceResponse.TopicProduceResponse
            resp = ProduceResponse[9](responses=[rt(name="orders", partition_responses=[rt.PartitionProduceResponse(index=0, error_code=0, base_offset=rng.randint(0, 1 << 30))])], throttle_time_ms=0)  # fmt: skip
            return [(0, framed(req, True)), (1, framed(resp, False))]
        ft = FetchRequest.FetchTopic
        req = FetchRequest[12](replica_id=-1, max_wait_ms=500, min_bytes=1, max_bytes=1 << 20, isolation_level=0, session_id=0, session_epoch=-1, topics=[ft(topic="orders", partitions=[ft.FetchPartition(partition=0, current_leader_epoch=-1, fetch_offset=0, last_fetched_epoch=-1, log_start_offset=-1, partition_max_bytes=1 << 20)])], forgotten_topics_data=[], rack_id="")  # fmt: skip
        rt2 = FetchResponse.FetchableTopicResponse
        resp = FetchResponse[12](throttle_time_ms=0, error_code=0, session_id=0, responses=[rt2(topic="orders", partitions=[rt2.PartitionData(partition_index=0, error_code=0, high_watermark=5, last_stable_offset=5, log_start_offset=0, aborted_transactions=None, preferred_read_replica=-1, records=batch(rng.randint(1, 10)))])])  # fmt: skip
        return [(0, framed(req, True)), (1, framed(resp, False))]

    return make


# -- capture generation --------------------------------------------------------------------------------------
def generate(proto: str, path: str, packets: int, seed: int = 11) -> tuple[int, int]:
    rng = random.Random(seed)
    port = PORTS[proto]
    ts = 1_700_000_000_000_000_000
    n = exchanges = 0
    opening: Exchange = []
    if proto == "dns":
        make = dns_exchanges(rng)
    elif proto == "amqp":
        _, make, opening = amqp_exchanges(rng)  # type: ignore[misc]
    elif proto == "mongodb":
        make = mongodb_exchanges(rng)
    else:
        make = kafka_exchanges(rng)
    pool = [] if proto == "amqp" else [make() for _ in range(2000)]  # encoding is slow: reuse real exchanges
    with open(path, "wb") as f:
        w = PcapWriter(f)
        if proto == "dns":
            while n < packets:
                client = (f"10.1.{rng.randint(0, 200)}.{rng.randint(2, 250)}", rng.randint(1024, 65000))
                server = f"10.0.0.{rng.randint(1, 4)}"
                for side, data in rng.choice(pool):
                    ts += rng.randint(2_000, 300_000)
                    pkt = (
                        ipv4_udp(client[0], server, client[1], port, data)
                        if side == 0
                        else ipv4_udp(server, client[0], port, client[1], data)
                    )
                    w.write(ts, ethernet(pkt))
                    n += 1
                exchanges += 1
            return n, exchanges
        conns = []
        for i in range(128):
            conv = TcpConversation((f"10.1.{i // 200}.{i % 200 + 2}", 40000 + i), (f"10.0.0.{i % 4 + 1}", port),
                                   isn_client=rng.getrandbits(32), isn_server=rng.getrandbits(32), mss=1448)  # fmt: skip
            conns.append(conv)
            for pkt in conv.handshake():
                ts += 1000
                w.write(ts, ethernet(pkt))
                n += 1
            for side, data in opening:
                for pkt in conv.send(side, data):
                    ts += 20_000
                    w.write(ts, ethernet(pkt))
                    n += 1
        while n < packets:
            i = rng.randrange(len(conns))
            conv = conns[i]
            for side, data in make(i) if proto == "amqp" else rng.choice(pool):
                ts += rng.randint(5_000, 500_000)
                for pkt in conv.send(side, data):
                    w.write(ts, ethernet(pkt))
                    n += 1
            exchanges += 1
            if exchanges % 2 == 0:
                ts += 40_000
                w.write(ts, ethernet(conv.ack(0)))
                n += 1
    return n, exchanges


def replay(proto: str, path: str) -> dict[str, float]:
    count = 0

    def sink(rt: object) -> None:
        nonlocal count
        count += 1

    engine, packets, elapsed = timed_replay(path, Rule(protocol=proto, ports=(PORTS[proto],)), sink)
    stats = engine.protocol_stats[proto]
    return {"packets": packets, "records": count, "seconds": elapsed, "pps": packets / elapsed,
            "rps": count / elapsed, "resets": stats.resets, "orphans": stats.pairing.orphans}  # fmt: skip


def run_child(proto: str, path: str) -> dict[str, float]:
    result, rss = in_fresh_process("proto_replay", "replay", proto, path)
    return {**result, "peak_rss_mb": rss}


def run_tshark(proto: str, path: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(["tshark", "-n", "-r", path, *TSHARK[proto]], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True)  # fmt: skip
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--proto", default="dns,amqp,mongodb,kafka")
    ap.add_argument("--packets", type=int, default=300_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-tshark", action="store_true")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    results = {}
    for proto in args.proto.split(","):
        path = os.path.join(OUT, f"{proto}-{args.packets}.pcap")
        if not os.path.exists(path):
            t0 = time.perf_counter()
            n, ex = generate(proto, path, args.packets)
            print(f"generated {path}: {n} packets, {ex} exchanges, {os.path.getsize(path) / 1e6:.0f} MB "
                  f"in {time.perf_counter() - t0:.0f}s", file=sys.stderr)  # fmt: skip
        runs = [run_child(proto, path) for _ in range(args.runs)]
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        result: dict[str, object] = {"file": path, "packetd": med}
        if not args.no_tshark and shutil.which("tshark"):
            t = statistics.median(run_tshark(proto, path) for _ in range(args.runs))
            result["tshark_seconds"] = t
            result["speedup_vs_tshark"] = t / med["seconds"]
        results[proto] = result
        print(json.dumps({proto: result}, indent=2), flush=True)


if __name__ == "__main__":
    main()
