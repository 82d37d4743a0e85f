"""AMQP 0-9-1 decoder table cases, run whole, byte by byte and with trailing bytes that must survive.

The bytes are written by pika's own frame encoder (`pika.frame`, `pika.spec`): an independent
implementation of the wire format. Expected records (kinds, operations, statuses, fields) are worked out
from what each case sends; pairing is checked through a real `Session` and keyed matcher.
"""

from __future__ import annotations

import pika.frame
import pika.spec
import pytest

from packetd.pairing.roundtrip import Roundtrip
from packetd.pairing.session import ProtocolStats
from packetd.protocols.amqp.decoder import MAX_RESYNC_SCAN, AmqpDecoder
from packetd.protocols.amqp.messages import AmqpMethod
from packetd.protocols.base import DecodeError, DecoderContext, Flag
from packetd.protocols.registry import AMQP, REGISTRY
from tests.helpers.decoding import C2S, MODES, S2C, Step, open_session, run

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
PASSWORD = "s3cr3t-passw0rd"


def method(channel: int, m: pika.amqp_object.Method) -> bytes:
    return pika.frame.Method(channel, m).marshal()


def content(channel: int, body: bytes, frame_max: int = 1 << 20, **props: object) -> bytes:
    """A content header and the body, cut into body frames of at most `frame_max` bytes."""
    out = pika.frame.Header(channel, len(body), pika.spec.BasicProperties(**props)).marshal()
    for i in range(0, len(body), frame_max):
        out += pika.frame.Body(channel, body[i : i + frame_max]).marshal()
    return out


HEADER = pika.frame.ProtocolHeader().marshal()
START = method(0, pika.spec.Connection.Start(server_properties={"product": "RabbitMQ"}, mechanisms="PLAIN"))
START_OK = method(
    0,
    pika.spec.Connection.StartOk(
        client_properties={"product": "pika"}, mechanism="PLAIN", response=f"\0guest\0{PASSWORD}"
    ),
)
TUNE = method(0, pika.spec.Connection.Tune(2047, 131072, 60))
TUNE_OK = method(0, pika.spec.Connection.TuneOk(2047, 131072, 60))
OPEN = method(0, pika.spec.Connection.Open(virtual_host="/"))
OPEN_OK = method(0, pika.spec.Connection.OpenOk())
CH_OPEN = method(1, pika.spec.Channel.Open())
CH_OPEN_OK = method(1, pika.spec.Channel.OpenOk())
HANDSHAKE: list[Step] = [
    (C2S, HEADER),
    (S2C, START),
    (C2S, START_OK),
    (S2C, TUNE),
    (C2S, TUNE_OK + OPEN),
    (S2C, OPEN_OK),
    (C2S, CH_OPEN),
    (S2C, CH_OPEN_OK),
]
HANDSHAKE_RECORDS = [
    ("handshake", "Connection.Start", "OK"),
    ("handshake", "Connection.Tune", "OK"),
    ("handshake", "Connection.Open", "OK"),
    ("roundtrip", "Channel.Open", "OK"),
]

SENTINEL: list[Step] = [
    (C2S, method(7, pika.spec.Basic.Qos(prefetch_count=7))),
    (S2C, method(7, pika.spec.Basic.QosOk())),
]
SENTINEL_RECORDS = [("roundtrip", "Basic.Qos", "OK")]

BODY = b"hello, amqp " * 3

CASES: dict[str, tuple[list[Step], list[tuple[str, str, str | None]]]] = {
    "handshake": (HANDSHAKE, HANDSHAKE_RECORDS),
    "declare-bind-purge-delete": (
        [
            (C2S, method(1, pika.spec.Exchange.Declare(exchange="ex", type="topic"))),
            (S2C, method(1, pika.spec.Exchange.DeclareOk())),
            (C2S, method(1, pika.spec.Queue.Declare(queue="q1", durable=True))),
            (S2C, method(1, pika.spec.Queue.DeclareOk(queue="q1", message_count=3, consumer_count=1))),
            (C2S, method(1, pika.spec.Queue.Bind(queue="q1", exchange="ex", routing_key="a.#"))),
            (S2C, method(1, pika.spec.Queue.BindOk())),
            (C2S, method(1, pika.spec.Exchange.Bind(destination="ex2", source="ex", routing_key="k"))),
            (S2C, method(1, pika.spec.Exchange.BindOk())),
            (C2S, method(1, pika.spec.Exchange.Unbind(destination="ex2", source="ex", routing_key="k"))),
            (S2C, method(1, pika.spec.Exchange.UnbindOk())),
            (C2S, method(1, pika.spec.Queue.Purge(queue="q1"))),
            (S2C, method(1, pika.spec.Queue.PurgeOk(message_count=3))),
            (C2S, method(1, pika.spec.Queue.Delete(queue="q1"))),
            (S2C, method(1, pika.spec.Queue.DeleteOk(message_count=0))),
        ],
        [
            ("roundtrip", "Exchange.Declare", "OK"),
            ("roundtrip", "Queue.Declare", "OK"),
            ("roundtrip", "Queue.Bind", "OK"),
            ("roundtrip", "Exchange.Bind", "OK"),
            ("roundtrip", "Exchange.Unbind", "OK"),
            ("roundtrip", "Queue.Purge", "OK"),
            ("roundtrip", "Queue.Delete", "OK"),
        ],
    ),
    "passive-declare-404-is-the-requests-error": (
        [
            (C2S, method(1, pika.spec.Queue.Declare(queue="missing", passive=True))),
            (S2C, method(1, pika.spec.Channel.Close(404, "NOT_FOUND - no queue 'missing'", 50, 10))),
            (C2S, method(1, pika.spec.Channel.CloseOk())),
        ],
        [("roundtrip", "Queue.Declare", "404")],
    ),
    "publish-without-confirms-is-oneway": (
        [
            (
                C2S,
                method(1, pika.spec.Basic.Publish(exchange="ex", routing_key="rk"))
                + content(1, BODY, content_type="text/plain", headers={"traceparent": TRACEPARENT}),
            )
        ],
        [("oneway", "Basic.Publish", None)],
    ),
    "publisher-confirms-multiple-and-nack": (
        [
            (C2S, method(2, pika.spec.Confirm.Select())),
            (S2C, method(2, pika.spec.Confirm.SelectOk())),
            (
                C2S,
                b"".join(
                    method(2, pika.spec.Basic.Publish(exchange="", routing_key="q")) + content(2, b"m%d" % i)
                    for i in (1, 2, 3)
                ),
            ),
            (S2C, method(2, pika.spec.Basic.Ack(delivery_tag=2, multiple=True))),
            (S2C, method(2, pika.spec.Basic.Nack(delivery_tag=3))),
        ],
        [
            ("roundtrip", "Confirm.Select", "OK"),
            ("roundtrip", "Basic.Publish", "OK"),
            ("roundtrip", "Basic.Publish", "OK"),
            ("roundtrip", "Basic.Publish", "NACK"),
        ],
    ),
    "consume-deliver-and-consumer-ack": (
        [
            (C2S, method(1, pika.spec.Basic.Consume(queue="q", consumer_tag="ctag"))),
            (S2C, method(1, pika.spec.Basic.ConsumeOk(consumer_tag="ctag"))),
            (
                S2C,
                method(
                    1,
                    pika.spec.Basic.Deliver(
                        consumer_tag="ctag", delivery_tag=1, exchange="ex", routing_key="rk"
                    ),
                )
                + content(1, BODY, frame_max=10, content_type="application/json"),
            ),
            (C2S, method(1, pika.spec.Basic.Ack(delivery_tag=1))),
            (C2S, method(1, pika.spec.Basic.Cancel(consumer_tag="ctag"))),
            (S2C, method(1, pika.spec.Basic.CancelOk(consumer_tag="ctag"))),
        ],
        [
            ("roundtrip", "Basic.Consume", "OK"),
            ("oneway", "Basic.Deliver", "OK"),
            ("roundtrip", "Basic.Cancel", "OK"),
        ],
    ),
    "get-ok-with-content-and-get-empty": (
        [
            (C2S, method(1, pika.spec.Basic.Get(queue="q"))),
            (
                S2C,
                method(
                    1, pika.spec.Basic.GetOk(delivery_tag=5, exchange="", routing_key="q", message_count=0)
                )
                + content(1, BODY),
            ),
            (C2S, method(1, pika.spec.Basic.Get(queue="q"))),
            (S2C, method(1, pika.spec.Basic.GetEmpty())),
        ],
        [("roundtrip", "Basic.Get", "OK"), ("roundtrip", "Basic.Get", "OK")],
    ),
    "nowait-and-heartbeats-and-blocked": (
        [
            (C2S, method(1, pika.spec.Queue.Declare(queue="nw", nowait=True))),
            (S2C, pika.frame.Heartbeat().marshal() * 2),
            (C2S, pika.frame.Heartbeat().marshal()),
            (S2C, method(0, pika.spec.Connection.Blocked(reason="low on memory"))),
            (S2C, method(0, pika.spec.Connection.Unblocked())),
        ],
        [
            ("oneway", "Queue.Declare", None),
            ("oneway", "Connection.Blocked", "OK"),
            ("oneway", "Connection.Unblocked", "OK"),
        ],
    ),
    "tx-and-recover-and-flow": (
        [
            (C2S, method(3, pika.spec.Tx.Select())),
            (S2C, method(3, pika.spec.Tx.SelectOk())),
            (C2S, method(3, pika.spec.Tx.Commit())),
            (S2C, method(3, pika.spec.Tx.CommitOk())),
            (C2S, method(3, pika.spec.Tx.Rollback())),
            (S2C, method(3, pika.spec.Tx.RollbackOk())),
            (C2S, method(3, pika.spec.Basic.Recover(requeue=True))),
            (S2C, method(3, pika.spec.Basic.RecoverOk())),
            (S2C, method(3, pika.spec.Channel.Flow(active=False))),
            (C2S, method(3, pika.spec.Channel.FlowOk(active=False))),
        ],
        [
            ("roundtrip", "Tx.Select", "OK"),
            ("roundtrip", "Tx.Commit", "OK"),
            ("roundtrip", "Tx.Rollback", "OK"),
            ("roundtrip", "Basic.Recover", "OK"),
            ("roundtrip", "Channel.Flow", "OK"),
        ],
    ),
    "connection-refused-and-close": (
        [
            (C2S, method(0, pika.spec.Connection.Open(virtual_host="/nope"))),
            (S2C, method(0, pika.spec.Connection.Close(530, "NOT_ALLOWED - vhost /nope not found", 10, 40))),
            (C2S, method(0, pika.spec.Connection.CloseOk())),
        ],
        [("handshake", "Connection.Open", "530")],
    ),
    "client-close-and-server-initiated-close": (
        [
            (C2S, method(1, pika.spec.Channel.Close(200, "bye", 0, 0))),
            (S2C, method(1, pika.spec.Channel.CloseOk())),
            (S2C, method(0, pika.spec.Connection.Close(320, "CONNECTION_FORCED - shutdown", 0, 0))),
            (C2S, method(0, pika.spec.Connection.CloseOk())),
        ],
        [("roundtrip", "Channel.Close", "OK"), ("roundtrip", "Connection.Close", "OK")],
    ),
}


def session_records(steps: list[Step], mode: str = "whole") -> tuple[list[Roundtrip], ProtocolStats]:
    """Feed the steps through a real Session (decoder + keyed matcher), as the flow layer would."""
    s, records, stats = open_session(AMQP, REGISTRY, ("10.0.0.1", 40000), ("10.0.0.2", 5672))
    ts = 1000
    for d, data in steps:
        pieces = [data[i : i + 1] for i in range(len(data))] if mode == "bytewise" else [data]
        for piece in pieces:
            ts += 1
            s.data(d, memoryview(piece), ts)
    s.close(ts + 1)
    return records, stats["amqp"]


def summary(records: list[Roundtrip]) -> list[tuple[str, str, str | None]]:
    return [(r.kind, r.operation, r.status) for r in records]


@pytest.mark.parametrize("mode", ("whole", "bytewise"))
@pytest.mark.parametrize("name", sorted(CASES))
def test_table_through_a_session(name: str, mode: str) -> None:
    steps, expected = CASES[name]
    records, stats = session_records(steps, mode)
    assert summary(records) == expected
    assert stats.resets == 0 and stats.pairing.orphans == 0


@pytest.mark.parametrize("name", sorted(CASES))
def test_table_trailing_bytes_survive(name: str) -> None:
    steps, _ = CASES[name]
    msgs = run(lambda: AmqpDecoder(DecoderContext()), steps, "trailing", sentinel=SENTINEL)
    whole = run(lambda: AmqpDecoder(DecoderContext()), steps, "whole")
    names = [m.to_json()["method"] for m in msgs if isinstance(m, AmqpMethod)]
    assert names == [m.to_json()["method"] for m in whole if isinstance(m, AmqpMethod)] + [
        "Basic.Qos",
        "Basic.Qos-Ok",
    ]


@pytest.mark.parametrize("mode", MODES)
def test_modes_give_identical_fields(mode: str) -> None:
    steps = CASES["consume-deliver-and-consumer-ack"][0]
    base = [m.to_json() for m in run(lambda: AmqpDecoder(DecoderContext()), steps, "whole")]
    got = [m.to_json() for m in run(lambda: AmqpDecoder(DecoderContext()), steps, mode, sentinel=SENTINEL)]
    assert got[: len(base)] == base


def test_handshake_fields_and_no_secrets() -> None:
    records, _ = session_records(HANDSHAKE)
    text = str([r.to_json() for r in records])
    assert PASSWORD not in text and "guest" not in text
    start = records[0].to_json()
    assert start["request"]["mechanisms"] == "PLAIN"
    assert start["response"]["mechanism"] == "PLAIN"
    tune = records[1].to_json()
    assert tune["request"] == {"channel": 0, "method": "Connection.Tune", "channel_max": 2047,
                               "frame_max": 131072, "heartbeat": 60, "size": len(TUNE)}  # fmt: skip
    assert records[2].to_json()["request"]["virtual_host"] == "/"


def test_publish_fields_and_traceparent() -> None:
    steps, _ = CASES["publish-without-confirms-is-oneway"]
    records, _ = session_records(steps)
    rec = records[0].to_json()
    assert rec["request"]["exchange"] == "ex" and rec["request"]["routing_key"] == "rk"
    assert rec["request"]["body_size"] == len(BODY)
    assert rec["request"]["content_type"] == "text/plain"
    assert rec["request"]["size"] == len(steps[0][1])  # method + header + body frames, frame ends included
    assert rec["trace"] == {
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "parent_span_id": "b7ad6b7169203331",
        "tracestate": None,
    }


def test_channel_close_404_fields() -> None:
    records, stats = session_records(CASES["passive-declare-404-is-the-requests-error"][0])
    rec = records[0].to_json()
    assert rec["error"] is True
    assert rec["response"]["reply_name"] == "NOT_FOUND"
    assert rec["response"]["reply_text"] == "NOT_FOUND - no queue 'missing'"
    assert rec["request"]["queue"] == "missing" and rec["request"]["passive"] is True
    assert stats.counters == {"close_ok_after_error": 1}


def test_confirms_pair_by_delivery_tag() -> None:
    records, _ = session_records(CASES["publisher-confirms-multiple-and-nack"][0])
    publishes = [r.to_json() for r in records if r.operation == "Basic.Publish"]
    assert [p["response"]["method"] for p in publishes] == ["Basic.Ack", "Basic.Ack", "Basic.Nack"]
    assert [p["response"]["delivery_tag"] for p in publishes] == [2, 2, 3]
    assert [p["error"] for p in publishes] == [False, False, True]


def test_consumer_acks_and_heartbeats_are_counted_not_recorded() -> None:
    _, stats = session_records(CASES["consume-deliver-and-consumer-ack"][0])
    assert stats.counters == {"consumer_ack": 1}
    _, stats = session_records(CASES["nowait-and-heartbeats-and-blocked"][0])
    assert stats.counters == {"heartbeats": 3}


def test_deliver_fields() -> None:
    records, _ = session_records(CASES["consume-deliver-and-consumer-ack"][0])
    deliver = records[1].to_json()
    assert deliver["request"] is None
    assert deliver["response"]["consumer_tag"] == "ctag" and deliver["response"]["delivery_tag"] == 1
    assert deliver["response"]["body_size"] == len(BODY)
    assert deliver["response"]["content_type"] == "application/json"


def test_update_secret_is_never_shown() -> None:
    steps: list[Step] = [
        (C2S, method(0, pika.spec.Connection.UpdateSecret(new_secret=PASSWORD, reason="rotate"))),
        (S2C, method(0, pika.spec.Connection.UpdateSecretOk())),
    ]
    records, _ = session_records(steps)
    assert summary(records) == [("roundtrip", "Connection.Update-Secret", "OK")]
    assert PASSWORD not in str(records[0].to_json())


def test_joined_mid_body_resyncs_on_the_next_method() -> None:
    publish = method(1, pika.spec.Basic.Publish(exchange="", routing_key="q")) + content(1, b"x" * 500)
    qos = method(1, pika.spec.Basic.Qos(prefetch_count=1))
    d = AmqpDecoder(DecoderContext(midstream=True))
    out = list(d.receive(C2S, memoryview(publish[60:] + qos), 1))
    assert [m.to_json()["method"] for m in out if isinstance(m, AmqpMethod)] == ["Basic.Qos"]
    assert out[0].flags & Flag.MIDSTREAM


def test_gap_inside_a_body_keeps_framing_and_flags_the_message() -> None:
    publish = method(1, pika.spec.Basic.Publish(exchange="", routing_key="q")) + content(1, b"x" * 500)
    d = AmqpDecoder(DecoderContext())
    d.receive(C2S, memoryview(HEADER + publish[:100]), 1)
    assert d.receive_gap(C2S, 200, 2) == ()
    out = d.receive(C2S, memoryview(publish[300:]), 3)
    assert len(out) == 1 and out[0].flags & Flag.GAP
    assert out[0].to_json()["body_size"] == 500 and out[0].size == len(publish)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (HEADER + b"\x05\x00\x00\x00\x00\x00\x00\xce", "bad frame type"),
        (HEADER + b"\x01\x00\x00\x00\x00\x00\x04\x00\x63\x00\x01\xce", "unknown method"),
        (HEADER + b"\x01\x00\x00\x00\x00\x00\x04\x00\x0a\x00\x33\x00", "bad frame end"),
        (b"AMQP\x01\x01\x00\x0a", "unsupported protocol header"),
        (
            HEADER + b"\x01\x00\x01\x00\x00\x00\x06\x00\x32\x00\x0a\x00\x00\xce",
            "method arguments past frame end",
        ),
    ],
)
def test_garbage_raises_decode_error(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as exc:
        AmqpDecoder(DecoderContext()).receive(C2S, memoryview(data), 1)
    assert exc.value.reason == reason


def test_resync_search_is_bounded() -> None:
    d = AmqpDecoder(DecoderContext(midstream=True))
    junk = memoryview(b"\x00" * (1024 * 1024))
    with pytest.raises(DecodeError):
        for i in range(MAX_RESYNC_SCAN // len(junk) + 2):
            d.receive(C2S, junk, i)


def test_requests_beyond_the_bound_are_refused_not_the_oldest_evicted() -> None:
    """The overflow rule (protocols/base.py PendingQueue): past MAX_PENDING unanswered synchronous requests
    a new one is not tracked (counted, no record) and its answer is dropped (counted); the oldest keeps its
    place. Evicting the oldest instead made its answer an orphan."""
    from packetd.protocols.amqp.messages import Request, Response
    from packetd.protocols.base import MAX_PENDING

    counters: dict[str, int] = {}
    dec = AmqpDecoder(DecoderContext(counters=counters))
    declare = method(1, pika.spec.Queue.Declare(queue="q0"))
    qos = method(1, pika.spec.Basic.Qos(prefetch_count=1))
    sent = dec.receive(C2S, memoryview(HEADER + declare + qos * MAX_PENDING), 1)
    requests = [m for m in sent if isinstance(m, Request)]
    assert len(requests) == MAX_PENDING  # 1 + MAX_PENDING sent: the last Qos is the one refused
    assert counters.get("pending_refused") == 1
    answers = (
        method(1, pika.spec.Queue.DeclareOk("q0", 0, 0)) + method(1, pika.spec.Basic.QosOk()) * MAX_PENDING
    )
    got = [m for m in dec.receive(S2C, memoryview(answers), 2) if isinstance(m, Response)]
    # each answer pairs with its own request, in order; the refused request's answer is dropped
    assert [m.pair_key for m in got] == [m.pair_key for m in requests]
    assert counters.get("pending_dropped") == 1
