"""The record's `trace` comes from whichever of its messages carries one (pairing/roundtrip.py).

Roundtrip.to_json asks a message for its trace context only when its class overrides `trace_context`
(`Message.TRACED`, set for every subclass): these cases prove the flag follows the override, so that a
response class carrying a trace, or a subclass of one, is still asked.
"""

from __future__ import annotations

from packetd._values import value
from packetd.pairing.roundtrip import Roundtrip
from packetd.protocols.base import Message, Role, TraceContext
from packetd.protocols.http1.messages import Request as HttpRequest
from packetd.protocols.redis.messages import Request, Response

CTX = TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", True, "congo=t61rcWkgMzE")


@value
class TracedResponse(Message):
    """A response that carries a trace (no protocol's does today; the envelope must still read it)."""

    def trace_context(self) -> TraceContext | None:
        return CTX


@value
class TracedResponseChild(TracedResponse):
    """Inherits the override."""


@value
class Untraced(TracedResponse):
    """Overrides it back to the base's behaviour under another function: still asked, and says None."""

    def trace_context(self) -> TraceContext | None:
        return None


def redis_request() -> Request:
    return Request(start_ns=10, end_ns=20, size=14, flags=0, command="PING", args=0, inline=False)


def rt(req: Message | None, resp: Message | None) -> Roundtrip:
    return Roundtrip("redis", "roundtrip", ("10.0.0.2", 50000), ("10.0.0.1", 6379), req, resp)


def test_flag_follows_the_override() -> None:
    assert Message.TRACED is False
    assert Request.TRACED is False and Response.TRACED is False  # redis: the base's method
    assert HttpRequest.TRACED is True
    assert TracedResponse.TRACED is True and TracedResponseChild.TRACED is True and Untraced.TRACED is True


def test_a_response_carrying_a_trace_is_read() -> None:
    for cls in (TracedResponse, TracedResponseChild):
        resp = cls(start_ns=30, end_ns=40, size=7, flags=0)
        assert cls.ROLE is Role.REQUEST  # the base's ROLE: untouched by the subclass hook
        for record in (rt(redis_request(), resp), rt(None, resp)):
            want = {
                "trace_id": CTX.trace_id,
                "parent_span_id": CTX.parent_span_id,
                "tracestate": CTX.tracestate,
            }
            assert record.to_json()["trace"] == want
            assert record.trace == CTX


def test_no_trace() -> None:
    resp = Response(start_ns=30, end_ns=40, size=7, flags=0, type="simple_string", elements=None)
    untraced = Untraced(start_ns=30, end_ns=40, size=7, flags=0)
    for record in (rt(redis_request(), resp), rt(redis_request(), untraced), rt(redis_request(), None)):
        assert record.to_json()["trace"] is None
        assert record.trace is None
