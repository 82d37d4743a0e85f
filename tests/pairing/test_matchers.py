"""Matchers and sessions: pairing order, bounds and counters, resets, hand-overs, TLS."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from packetd._values import value
from packetd.pairing.matchers import FifoMatcher, KeyedMatcher, OneWayMatcher, PairingStats
from packetd.pairing.roundtrip import Roundtrip
from packetd.pairing.session import MAX_RESETS, ProtocolStats, Session
from packetd.protocols.base import MAX_PENDING, DecoderContext, Direction, Flag, Kind, Message, Role
from packetd.protocols.registry import HTTP, ProtocolSpec, Registry
from tests.helpers.decoding import open_session
from tests.helpers.tlsgen import handshake


@value
class Req(Message):
    ROLE: ClassVar[Role] = Role.REQUEST
    name: str = ""
    pair_key: int = 0


@value
class Resp(Message):
    ROLE: ClassVar[Role] = Role.RESPONSE
    name: str = ""
    pair_key: int = 0


def req(name: str, t: int, key: int = 0) -> Req:
    return Req(t, t, 1, 0, name, key)


def resp(name: str, t: int, key: int = 0) -> Resp:
    return Resp(t, t, 1, 0, name, key)


class Out:
    def __init__(self) -> None:
        self.items: list[tuple[str, str | None, str | None, int]] = []

    def __call__(self, kind: str, request: Message | None, response: Message | None, flags: int) -> None:
        name = lambda m: m.name if m is not None else None  # noqa: E731
        self.items.append((kind, name(request), name(response), flags))


def test_fifo_pairs_pipelined_requests_in_order() -> None:
    out, stats = Out(), PairingStats()
    m = FifoMatcher(out, stats)
    for i in range(5):
        m.request(req(f"q{i}", i))
    for i in range(5):
        m.response(resp(f"r{i}", 10 + i))
    assert out.items == [(Kind.ROUNDTRIP, f"q{i}", f"r{i}", 0) for i in range(5)]


def test_fifo_orphans_and_causality() -> None:
    out, stats = Out(), PairingStats()
    m = FifoMatcher(out, stats)
    m.response(resp("early", 1))  # nothing pending
    m.request(req("q", 10))
    m.response(resp("before-the-request", 5))  # began before the request: cannot answer it
    m.response(resp("r", 11))
    assert out.items == [(Kind.ROUNDTRIP, "q", "r", 0)]
    assert stats.orphans == 2


def test_fifo_bound_refuses_new_requests_and_drops_their_answers_without_shifting() -> None:
    # issue 9 item 15: evicting the oldest made every later response answer the wrong request
    out, stats = Out(), PairingStats()
    m = FifoMatcher(out, stats, limit=3)
    for i in range(5):
        m.request(req(f"q{i}", i))
    assert out.items == [] and stats.evicted == 2  # q3, q4: not tracked, counted
    for i in range(4):
        m.response(resp(f"r{i}", 10 + i))  # r0..r2 answer q0..q2; r3 is q3's: dropped
    m.request(req("q5", 20))  # room again: tracked
    m.response(resp("r4", 21))  # q4's answer, still owed: dropped
    m.response(resp("r5", 22))
    assert out.items == [(Kind.ROUNDTRIP, f"q{i}", f"r{i}", 0) for i in (0, 1, 2, 5)]
    assert stats.untracked_answers == 2 and stats.orphans == 0 and stats.unanswered == 0
    assert m.settled()
    assert MAX_PENDING >= 10_000


def test_fifo_sync_lost_on_the_response_side_flushes_pending() -> None:
    out, stats = Out(), PairingStats()
    m = FifoMatcher(out, stats)
    m.request(req("q1", 1))
    m.request(req("q2", 2))
    m.sync_lost(Direction.C2S)  # lost requests heal by themselves
    assert out.items == []
    m.sync_lost(Direction.S2C)
    assert out.items == [(Kind.UNANSWERED, "q1", None, Flag.GAP), (Kind.UNANSWERED, "q2", None, Flag.GAP)]
    m.response(resp("late", 3))
    assert stats.orphans == 1


def test_keyed_pairs_by_key_in_any_order_and_bounds() -> None:
    out, stats = Out(), PairingStats()
    m = KeyedMatcher(out, stats, lambda msg: msg.pair_key, limit=2)  # type: ignore[attr-defined]
    m.request(req("a", 1, key=1))
    m.request(req("b", 2, key=3))
    m.response(resp("rb", 3, key=3))
    m.request(req("c", 4, key=5))
    m.request(req("d", 5, key=7))  # the table holds a and c: a (oldest) is evicted
    m.request(req("c2", 6, key=5))  # key reused before an answer: c was not answered
    m.response(resp("unknown", 7, key=9))
    m.close()
    assert out.items == [
        (Kind.ROUNDTRIP, "b", "rb", 0),
        (Kind.UNANSWERED, "a", None, 0),
        (Kind.UNANSWERED, "c", None, 0),
        (Kind.UNANSWERED, "d", None, 0),
        (Kind.UNANSWERED, "c2", None, 0),
    ]
    assert stats.evicted == 1 and stats.orphans == 1


def test_oneway_matcher() -> None:
    out, stats = Out(), PairingStats()
    m = OneWayMatcher(out, stats)
    m.request(req("a", 1))
    m.response(resp("b", 2))
    assert out.items == [(Kind.ONEWAY, "a", None, 0), (Kind.ONEWAY, None, "b", 0)]


# -- sessions ---------------------------------------------------------------------------------------------------
def session(
    registry: Registry | None = None, midstream: bool = False
) -> tuple[Session, list[Roundtrip], dict[str, ProtocolStats]]:
    reg = registry or Registry([HTTP])
    return open_session(reg["http"], reg, ("10.0.0.1", 5555), ("10.0.0.2", 80), midstream)


def test_decode_error_resets_counts_and_resyncs() -> None:
    s, records, stats = session()
    s.data(0, memoryview(b"\x00\x01garbage that is not http\r\n"), 1)
    s.data(0, memoryview(b"GET /ok HTTP/1.1\r\n\r\n"), 2)
    s.data(1, memoryview(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), 3)
    assert stats["http"].decode_errors == {"bad request line": 1}
    assert [(r.kind, r.operation, r.status) for r in records] == [(Kind.ROUNDTRIP, "GET", "200")]


def test_too_many_resets_gives_the_connection_up() -> None:
    s, records, stats = session()
    for i in range(MAX_RESETS + 3):  # a start line each time, then a head that cannot be framed
        s.data(0, memoryview(b"GET /%d HTTP/1.1\r\nContent-Length: many\r\n\r\n" % i), i)
    assert stats["http"].gave_up == 1 and not s.decoding
    assert stats["http"].decode_errors == {"bad content-length": MAX_RESETS}
    assert records == []


def test_unsupported_upgrade_pairs_the_101_and_stops() -> None:
    s, records, stats = session()
    s.data(0, memoryview(b"GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"), 1)
    s.data(
        1,
        memoryview(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x00"
        ),
        2,
    )
    s.data(0, memoryview(b"\x81\x85garbage frames"), 3)
    assert [(r.operation, r.status) for r in records] == [("GET", "101")]
    assert stats["http"].unsupported_upgrades == 1 and stats["http"].resets == 0 and not s.decoding


class Recorder:
    """A decoder standing in for a protocol that takes connections over (HTTP/2 arrives with its own
    issue): it records what it is handed, so the seam itself is what is tested."""

    seen: ClassVar[list[tuple[str, object]]] = []

    def __init__(self, ctx: DecoderContext) -> None:
        Recorder.seen.append(("ctx", ctx.upgrade_request))

    def receive(self, direction: Direction, data: memoryview, ts_ns: int) -> Sequence[Message]:
        Recorder.seen.append((direction.name, bytes(data)))
        return ()

    def receive_gap(self, direction: Direction, nbytes: int, ts_ns: int) -> Sequence[Message]:
        return ()

    def receive_eof(self, direction: Direction, ts_ns: int) -> Sequence[Message]:
        return ()


def test_upgrade_hands_the_connection_and_the_request_over() -> None:
    other = ProtocolSpec(
        name="h2test", family="h2test", factory=Recorder, options_type=None, pairing="keyed",
        default_ports=(), transports=frozenset({"tcp"}), upgrade_tokens=frozenset({"h2c"}),
    )  # fmt: skip
    Recorder.seen.clear()
    s, records, stats = session(Registry([HTTP, other]))
    s.data(
        0,
        memoryview(
            b"GET /up HTTP/1.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\r\nPRI * pre"
        ),
        1,
    )
    s.data(
        1,
        memoryview(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n\x00\x00\x00\x04"
        ),
        2,
    )
    s.data(0, memoryview(b"face"), 3)
    kinds = [k for k, _ in Recorder.seen]
    assert kinds == ["ctx", "C2S", "S2C", "C2S"]
    upgrade_request = Recorder.seen[0][1]
    assert upgrade_request is not None and upgrade_request.operation() == "GET"  # type: ignore[attr-defined]
    assert Recorder.seen[1][1] == b"PRI * pre" and Recorder.seen[2][1] == b"\x00\x00\x00\x04"
    assert records == []  # the 101 is not a record: the upgrade request becomes the new protocol's
    assert stats["http"].handovers == 1 and s.protocol == "h2test"


def test_tls_client_hello_becomes_an_encrypted_handshake_record() -> None:
    hs = handshake("shop.example.test", ["http/1.1"], ["http/1.1"])
    s, records, stats = session()
    s.data(0, memoryview(hs.client_hello), 1)
    s.data(1, memoryview(hs.server_hello), 2)
    s.data(0, memoryview(b"\x17\x03\x03\x00\x20" + bytes(32)), 3)  # application data: not decoded
    (rt,) = records
    j = rt.to_json()
    assert (j["kind"], j["operation"], j["status"], j["flags"]) == ("handshake", "TLS", "OK", ["encrypted"])
    assert j["request"]["tls"]["server_name"] == "shop.example.test"
    assert stats["http"].encrypted == 1 and stats["http"].resets == 0


def test_midstream_tls_is_marked_encrypted_without_a_record() -> None:
    s, records, stats = session(midstream=True)
    s.data(0, memoryview(b"\x17\x03\x03\x00\x20" + bytes(32)), 1)
    s.data(1, memoryview(b"\x17\x03\x03\x00\x20" + bytes(32)), 2)
    assert records == [] and stats["http"].encrypted == 1 and stats["http"].resets == 0


def test_first_record_of_a_joined_connection_is_flagged_midstream() -> None:
    s, records, _ = session(midstream=True)
    for _ in range(2):
        s.data(0, memoryview(b"GET / HTTP/1.1\r\n\r\n"), 1)
        s.data(1, memoryview(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), 2)
    assert [r.to_json()["flags"] for r in records] == [["midstream"], []]


def test_close_turns_pending_requests_into_unanswered() -> None:
    s, records, stats = session()
    s.data(0, memoryview(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n"), 1)
    s.data(1, memoryview(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), 2)
    s.close(3)
    assert [(r.kind, r.to_json()["request"]["path"]) for r in records] == [
        ("roundtrip", "/a"),
        ("unanswered", "/b"),
    ]
    assert stats["http"].pairing.unanswered == 1
