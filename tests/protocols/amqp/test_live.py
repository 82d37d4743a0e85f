"""Live AMQP 0-9-1: Debian's rabbitmq-server and pika, captured through AF_PACKET on loopback.

The truth is the client's own log: each pika call, the methods it puts on the wire by the spec (pika's
BlockingConnection opens with Connection.Start/Tune/Open and closes every channel and the connection), and
what came back (the delivered bodies, the Get results, the broker's 404 reply text). packetd must report
each once, with the right kind, exchange, routing key, queue and body size, and nothing else; consumer
acks and heartbeats are counted, not recorded.
"""

from __future__ import annotations

import collections
import re

import pika
import pika.exceptions
import pytest

from tests.helpers.live import live_marks, live_traffic
from tests.helpers.servers import RabbitMQ, rabbitmq_available

pytestmark = live_marks((rabbitmq_available(), "rabbitmq-server"))

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class Log:
    def __init__(self) -> None:
        self.expected: collections.Counter[tuple[str, str, str | None]] = collections.Counter()
        self.publishes: list[tuple[str, str, int]] = []  # exchange, routing key, body size
        self.delivered = 0
        self.acked = 0
        self.not_found = ""

    def add(self, kind: str, op: str, status: str | None = "OK", n: int = 1) -> None:
        self.expected[(kind, op, status)] += n


def workload(port: int) -> Log:
    log = Log()
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port, heartbeat=0))
    for op in ("Connection.Start", "Connection.Tune", "Connection.Open"):
        log.add("handshake", op)
    ch = conn.channel()
    log.add("roundtrip", "Channel.Open")
    ch.exchange_declare("orders", exchange_type="direct")
    log.add("roundtrip", "Exchange.Declare")
    ch.queue_declare("work")
    log.add("roundtrip", "Queue.Declare")
    ch.queue_bind("work", "orders", routing_key="new")
    log.add("roundtrip", "Queue.Bind")
    for i in range(3):
        body = b"order-%d" % i * (i + 1)
        props = pika.BasicProperties(
            content_type="text/plain", headers={"traceparent": TRACEPARENT} if i == 0 else None
        )
        ch.basic_publish("orders", "new", body, props)
        log.publishes.append(("orders", "new", len(body)))
    log.add("oneway", "Basic.Publish", None, 3)
    # publisher confirms on a second channel: each publish is answered by the broker's Basic.Ack
    confirmed = conn.channel()
    log.add("roundtrip", "Channel.Open")
    confirmed.confirm_delivery()
    log.add("roundtrip", "Confirm.Select")
    for i in range(3):
        confirmed.basic_publish("", "work", b"confirmed-%d" % i)
        log.publishes.append(("", "work", len(b"confirmed-%d" % i)))
    log.add("roundtrip", "Basic.Publish", "OK", 3)
    # one message fetched with Basic.Get, then the rest consumed and acked
    method, _props, _body = ch.basic_get("work", auto_ack=True)
    assert method is not None
    log.add("roundtrip", "Basic.Get")
    for method, _props, _body in ch.consume("work", inactivity_timeout=5):  # Basic.Consume
        if method is None:
            break
        ch.basic_ack(method.delivery_tag)
        log.delivered += 1
        log.acked += 1
        if log.delivered == 5:  # 6 published, 1 taken by Basic.Get
            break
    log.add("roundtrip", "Basic.Consume")
    ch.cancel()
    log.add("roundtrip", "Basic.Cancel")
    log.add("oneway", "Basic.Deliver", "OK", log.delivered)
    method, _props, _body = ch.basic_get("work")
    assert method is None
    log.add("roundtrip", "Basic.Get")  # answered by Basic.Get-Empty
    # a passive declare of a missing queue: the broker closes the channel with 404
    bad = conn.channel()
    log.add("roundtrip", "Channel.Open")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as exc:
        bad.queue_declare("no-such-queue", passive=True)
    assert exc.value.reply_code == 404
    log.not_found = exc.value.reply_text
    log.add("roundtrip", "Queue.Declare", "404")
    confirmed.close()
    ch.close()
    log.add("roundtrip", "Channel.Close", "OK", 2)
    conn.close()
    log.add("roundtrip", "Connection.Close")
    return log


@pytest.fixture(scope="module")
def traffic() -> dict:
    server = RabbitMQ()
    run = live_traffic(server, f"amqp;{server.port}", lambda: workload(server.port))
    return {"log": run.result, "records": run.records, "stderr": run.stderr}


def test_every_method_once_and_nothing_else(traffic: dict) -> None:
    got = collections.Counter((r["kind"], r["operation"], r["status"]) for r in traffic["records"])
    assert got == traffic["log"].expected


def test_publish_fields_trace_and_confirms(traffic: dict) -> None:
    pubs = [r for r in traffic["records"] if r["operation"] == "Basic.Publish"]
    seen = sorted(
        (p["request"]["exchange"], p["request"]["routing_key"], p["request"]["body_size"]) for p in pubs
    )
    assert seen == sorted(traffic["log"].publishes)
    traced = [p for p in pubs if p["trace"] is not None]
    assert len(traced) == 1 and traced[0]["trace"]["trace_id"] == TRACEPARENT.split("-")[1]
    confirmed = [p for p in pubs if p["kind"] == "roundtrip"]
    assert all(p["response"]["method"] == "Basic.Ack" for p in confirmed)
    assert [p["request"]["content_type"] for p in pubs if p["request"]["exchange"] == "orders"] == [
        "text/plain"
    ] * 3


def test_404_is_the_declare_error_with_the_brokers_text(traffic: dict) -> None:
    (rec,) = [r for r in traffic["records"] if r["status"] == "404"]
    assert rec["error"] is True and rec["request"]["queue"] == "no-such-queue"
    assert rec["response"]["method"] == "Channel.Close" and rec["response"]["reply_name"] == "NOT_FOUND"
    assert rec["response"]["reply_text"] == traffic["log"].not_found


def test_consumer_acks_counted(traffic: dict) -> None:
    m = re.search(r"amqp counters: (.*)", traffic["stderr"])
    assert m is not None, traffic["stderr"]
    counters = dict(kv.split("=") for kv in m.group(1).split(", "))
    assert int(counters["consumer_ack"]) == traffic["log"].acked
    assert int(counters.get("close_ok_after_error", 0)) == 1
