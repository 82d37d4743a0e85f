"""Roundtrip is a value written by hand (a plain class, so the compiled build makes it native): these check
what `@value` gave it, against the dataclass behaviour the other value classes keep."""

from __future__ import annotations

import pickle

import pytest

from packetd.pairing.roundtrip import Process, Roundtrip
from packetd.protocols.redis.messages import Request, Response

REQ = Request(start_ns=10, end_ns=20, size=14, flags=0, command="PING", args=0, inline=False)
RESP = Response(start_ns=30, end_ns=40, size=7, flags=0, type="simple_string", elements=None)
C, S = ("10.0.0.2", 50000), ("10.0.0.1", 6379)


def test_positional_keyword_and_defaults() -> None:
    a = Roundtrip("redis", "roundtrip", C, S, REQ, RESP)
    b = Roundtrip(protocol="redis", kind="roundtrip", client=C, server=S, request=REQ, response=RESP)
    assert a == b
    assert (a != b) is False  # __ne__ from __eq__
    assert (a.flags, a.seq, a.processes, a.k8s) == (0, 0, None, None)
    full = Roundtrip("redis", "roundtrip", C, S, REQ, RESP, 4, 2, (None, None), (None, None))
    assert (full.flags, full.seq, full.processes, full.k8s) == (4, 2, (None, None), (None, None))


@pytest.mark.parametrize(
    "other",
    [
        Roundtrip("redis", "handshake", C, S, REQ, RESP),
        Roundtrip("redis", "roundtrip", S, C, REQ, RESP),
        Roundtrip("redis", "roundtrip", C, S, None, RESP),
        Roundtrip("redis", "roundtrip", C, S, REQ, RESP, 1),
        Roundtrip("redis", "roundtrip", C, S, REQ, RESP, 0, 1),
        Roundtrip("redis", "roundtrip", C, S, REQ, RESP, processes=(Process(1, "redis-cli"), None)),
        Roundtrip("redis", "roundtrip", C, S, REQ, RESP, k8s=(None, None)),
    ],
)
def test_every_field_is_compared(other: Roundtrip) -> None:
    assert Roundtrip("redis", "roundtrip", C, S, REQ, RESP) != other
    assert Roundtrip("redis", "roundtrip", C, S, REQ, RESP) != ("redis", "roundtrip")


def test_repr_unhashable_slotted_picklable() -> None:
    rt = Roundtrip("redis", "roundtrip", C, S, None, RESP, 2, 3)
    assert repr(rt) == (
        "Roundtrip(protocol='redis', kind='roundtrip', client=('10.0.0.2', 50000), server=('10.0.0.1', 6379), "
        f"request=None, response={RESP!r}, flags=2, seq=3, processes=None, k8s=None)"
    )
    with pytest.raises(TypeError):
        hash(rt)
    with pytest.raises(AttributeError):
        rt.extra = 1  # type: ignore[attr-defined]
    back = pickle.loads(pickle.dumps(rt))
    assert back == rt and back is not rt
    assert rt.attributed((None, None), None) == Roundtrip(
        "redis", "roundtrip", C, S, None, RESP, 2, 3, (None, None)
    )
