"""protocols/framing.py's fast paths against its general ones.

Truths: the varint loop as it was (`reference_uvarint`), and for the framing of whole messages (one message
a segment, or many in a row) the messages the same conversations give fed one byte at a time, which only
the general path (head buffered, body kept then emitted) reads. Conversations: the Kafka and MongoDB
decoder tables, their steps merged per direction and cut at random places, with `max_parse_bytes` small
enough, sometimes, that bodies are cut (kept in part, the rest counted).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from packetd.protocols.base import DecodeError, DecoderContext, Direction, Message
from packetd.protocols.framing import LengthPrefixed, Short, uvarint
from packetd.protocols.kafka.decoder import KafkaDecoder
from packetd.protocols.kafka.options import KafkaOptions
from packetd.protocols.mongodb.decoder import MongoDecoder
from packetd.protocols.mongodb.options import MongoOptions
from tests.protocols.kafka.test_decoder import CASES as KAFKA_CASES
from tests.protocols.mongodb.test_decoder import CASES as MONGO_CASES


def reference_uvarint(buf: bytes, p: int, end: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if p >= end:
            raise Short
        b = buf[p]
        p += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, p
        shift += 7
        if shift > 63:
            raise DecodeError("bad varint")


def outcome(fn: Callable[[], tuple[int, int]]) -> Any:
    try:
        return fn()
    except (Short, DecodeError) as exc:
        return type(exc).__name__, exc.args


VARINT_BYTES = st.lists(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0x81, 0xFF]), max_size=12).map(bytes)


@settings(max_examples=2000, deadline=None)
@given(st.one_of(VARINT_BYTES, st.binary(max_size=12)), st.integers(0, 12), st.integers(0, 12))
def test_uvarint(buf: bytes, p: int, end: int) -> None:
    end = min(end, len(buf))
    assert outcome(lambda: uvarint(buf, p, end)) == outcome(lambda: reference_uvarint(buf, p, end))


Steps = list[tuple[Direction, bytes]]
CONVERSATIONS: list[tuple[str, Steps]] = [("kafka", steps) for steps, _ in KAFKA_CASES.values()] + [
    ("mongodb", steps) for steps, _ in MONGO_CASES.values()
]


def make(proto: str, keep: int) -> LengthPrefixed:
    if proto == "kafka":
        return KafkaDecoder(DecoderContext(options=KafkaOptions(max_parse_bytes=keep), shared={}))
    return MongoDecoder(DecoderContext(options=MongoOptions(max_parse_bytes=keep)))


def feed(dec: LengthPrefixed, segments: Steps) -> list[tuple[Any, ...]]:
    out: list[Message] = []
    try:
        for d, data in segments:
            out.extend(dec.receive(d, memoryview(data), 1))
    except DecodeError as exc:
        return [("DecodeError", exc.args)]
    return [(type(m).__name__, m.size, m.flags, m.start_ns, m.end_ns, repr(m.to_json())) for m in out]


def merged(steps: Steps) -> Steps:
    """Consecutive steps of one direction as one segment (pipelined messages)."""
    out: Steps = []
    for d, data in steps:
        if out and out[-1][0] == d:
            out[-1] = (d, out[-1][1] + data)
        else:
            out.append((d, data))
    return out


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(CONVERSATIONS), st.booleans(), st.lists(st.integers(1, 400), max_size=6),
       st.sampled_from([1 << 20, 64, 30, 8]))  # fmt: skip
def test_segmentation(conversation: tuple[str, Steps], merge: bool, cuts: list[int], keep: int) -> None:
    proto, steps = conversation
    segments = merged(steps) if merge else list(steps)
    cut: Steps = []
    for d, data in segments:
        pos = 0
        for c in cuts:
            if pos + c < len(data):
                cut.append((d, data[pos : pos + c]))
                pos += c
        cut.append((d, data[pos:]))
    bytewise = [(d, data[i : i + 1]) for d, data in segments for i in range(len(data))]
    assert feed(make(proto, keep), cut) == feed(make(proto, keep), bytewise)
