"""Content-header properties are read once per distinct property block (`MAX_PROPERTY_CACHE`): messages
with repeated, changing and malformed properties give what a decoder without the cache gives (every field,
the trace context and each message's own body size), and the cache stays bounded."""

from __future__ import annotations

from typing import Any

import pika.frame
import pika.spec
import pytest

from packetd.protocols.amqp.decoder import MAX_PROPERTY_CACHE, AmqpDecoder
from packetd.protocols.base import DecodeError
from tests.helpers.decoding import C2S
from tests.protocols.amqp.test_decoder import HANDSHAKE, TRACEPARENT, content, method

PUBLISH = method(1, pika.spec.Basic.Publish(exchange="x", routing_key="rk"))


def publish(body: bytes, **props: object) -> bytes:
    return PUBLISH + content(1, body, **props)


def messages(steps: list[tuple[Any, bytes]], cache: bool) -> list[Any]:
    """The messages of `steps` (each one frame or one published message); without the cache, it is emptied
    before every step, so each property block is read afresh: the decoder's own reading, in either build (a
    compiled decoder's methods cannot be replaced on an instance, its dict attribute can be emptied)."""
    d = AmqpDecoder()
    out: list[Any] = []
    for direction, data in steps:
        if not cache:
            d._props_cache.clear()
        try:
            out.extend(d.receive(direction, memoryview(data), 1))
        except DecodeError as exc:
            out.append(("DecodeError", exc.args))
            d = AmqpDecoder()
        if not cache:
            assert len(d._props_cache) <= 1  # at most this step's block: nothing read earlier was reused
    return out


def test_repeated_and_changing_properties_read_as_without_the_cache() -> None:
    same = {"content_type": "text/plain", "delivery_mode": 2, "headers": {"traceparent": TRACEPARENT}}
    steps = [*HANDSHAKE]
    for i in range(3 * MAX_PROPERTY_CACHE):
        props = same if i % 3 else {**same, "message_id": f"m{i}", "correlation_id": str(i)}
        steps.append((C2S, publish(b"x" * i, **props)))
    got = messages(steps, cache=True)
    assert got == messages(steps, cache=False)
    sizes = [m.content.body_size for m in got if getattr(m, "content", None) is not None]
    assert sizes == list(range(3 * MAX_PROPERTY_CACHE))  # each message its own body size
    assert {m.content.message_id for m in got if getattr(m, "content", None) is not None} >= {"m0", "m3"}


def test_the_cache_stays_bounded() -> None:
    d = AmqpDecoder()
    for direction, data in HANDSHAKE:
        d.receive(direction, memoryview(data), 1)
    for i in range(5 * MAX_PROPERTY_CACHE):
        d.receive(C2S, memoryview(publish(b"b", message_id=str(i))), 1)
        assert len(d._props_cache) <= MAX_PROPERTY_CACHE


@pytest.mark.parametrize("cut", [1, 3, 8])
def test_malformed_properties_fail_every_time(cut: int) -> None:
    """A malformed property block raises each time it comes (nothing of it is kept)."""
    good = content(1, b"body", content_type="text/plain", headers={"a": "b"})
    size = int.from_bytes(good[3:7], "big")
    header = good[: 7 + size + 1]
    # the header frame's payload shortened by `cut` bytes (its size field and frame end kept consistent)
    payload = header[7:-1][:-cut]
    broken = header[:3] + len(payload).to_bytes(4, "big") + payload + b"\xce" + good[len(header) :]
    steps = [*HANDSHAKE, (C2S, PUBLISH + broken), *HANDSHAKE, (C2S, PUBLISH + broken)]
    got = messages(steps, cache=True)
    assert got == messages(steps, cache=False)
    assert sum(1 for m in got if isinstance(m, tuple) and m[0] == "DecodeError") == 2
