"""The PostgreSQL connection phase table (protocols/postgresql/phases.py), walked over every
(state, event) pair, and applied by the decoder to real start-up bytes."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from packetd.protocols.base import DecodeError, Direction
from packetd.protocols.postgresql.decoder import PostgresDecoder
from packetd.protocols.postgresql.phases import SIDES, TRANSITIONS, Conn, Event, Phase, step
from tests.helpers.phases import check_pair, table_pairs

# what the decoder can read in each state, by the protocol (§55.2): the pairs the table must have
EXPECTED = {
    (Conn.STARTUP, Event.CANCEL_REQUEST): Conn.DEAD,
    (Conn.STARTUP, Event.ENCRYPTION_REQUEST): Conn.ANSWER,
    (Conn.STARTUP, Event.STARTUP_MESSAGE): Conn.AUTH,
    (Conn.STARTUP, Event.STARTUP_ENDED): Conn.READY,
    (Conn.ANSWER, Event.IN_CLEAR): Conn.STARTUP,
    (Conn.ANSWER, Event.ENCRYPTED): Conn.DEAD,
    (Conn.ANSWER, Event.ANSWER_ERROR): Conn.AUTH,
    (Conn.AUTH, Event.STARTUP_ENDED): Conn.READY,
    **{(c, Event.SYNC_LOST): Conn.READY for c in (Conn.STARTUP, Conn.ANSWER, Conn.AUTH, Conn.READY)},
    (Conn.DEAD, Event.SYNC_LOST): Conn.DEAD,
}


@given(st.sampled_from(list(Conn)), st.sampled_from(list(Event)))
def test_every_pair_is_a_listed_transition_or_a_decode_error(state: Conn, event: Event) -> None:
    check_pair(step, EXPECTED, state, event)


@given(st.lists(st.sampled_from(list(Event)), max_size=30))
def test_dead_is_final_and_every_state_has_its_two_sides(events: list[Event]) -> None:
    state = Conn.STARTUP
    for event in events:
        try:
            nxt = step(state, event)
        except DecodeError:
            continue
        if state is Conn.DEAD:
            assert nxt is Conn.DEAD
        state = nxt
        client, server = SIDES[state]
        # the client's side is untyped only in STARTUP; an SSL/GSS answer is awaited by both sides
        assert (client is Phase.STARTUP) == (state is Conn.STARTUP)
        assert (server is Phase.ANSWER) == (state is Conn.ANSWER)


def test_table_has_exactly_the_protocol_pairs() -> None:
    assert table_pairs(TRANSITIONS) == EXPECTED


def _untyped(code: int, payload: bytes = b"") -> bytes:
    return struct.pack("!ii", 8 + len(payload), code) + payload


def test_decoder_walks_ssl_refused_then_startup_then_ready() -> None:
    dec = PostgresDecoder()
    assert dec._conn is Conn.STARTUP
    dec.receive(Direction.C2S, memoryview(_untyped(80877103)), 1)  # SSLRequest (§55.7)
    assert dec._conn is Conn.ANSWER
    dec.receive(Direction.S2C, memoryview(b"N"), 2)
    assert dec._conn is Conn.STARTUP
    params = b"user\x00alice\x00database\x00db\x00\x00"
    dec.receive(Direction.C2S, memoryview(_untyped(196608, params)), 3)  # protocol 3.0
    assert dec._conn is Conn.AUTH
    auth_ok = b"R" + struct.pack("!ii", 8, 0)
    ready = b"Z" + struct.pack("!i", 5) + b"I"
    dec.receive(Direction.S2C, memoryview(auth_ok + ready), 4)
    assert dec._conn is Conn.READY and (dec._cphase, dec._sphase) == SIDES[Conn.READY]


def test_decoder_gives_up_on_tls() -> None:
    dec = PostgresDecoder()
    dec.receive(Direction.C2S, memoryview(_untyped(80877103)), 1)
    dec.receive(Direction.S2C, memoryview(b"S"), 2)
    assert dec._conn is Conn.DEAD
    dec.receive_gap(Direction.C2S, 100, 3)  # a gap does not bring a dead connection back
    assert dec._conn is Conn.DEAD
