"""The MySQL connection phase table (protocols/mysql/phases.py), walked over every (state, event) pair,
and applied by the decoder to a real greeting and login (PyMySQL is not needed: crafted per §14.2)."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from packetd.protocols.base import DecodeError, Direction
from packetd.protocols.mysql.decoder import MysqlDecoder
from packetd.protocols.mysql.phases import SIDES, TRANSITIONS, Conn, Event, Phase, step
from tests.helpers.phases import check_pair, table_pairs

ALWAYS = {Event.GAVE_UP: Conn.DEAD, Event.SYNC_LOST: Conn.COMMAND}
# the pairs the protocol has (protocols/mysql/phases.py's picture), written out once more by hand
EXPECTED = {
    (Conn.GREETING, Event.GREETING): Conn.LOGIN,
    (Conn.GREETING, Event.HANDSHAKE_RESPONSE): Conn.AUTH,
    (Conn.GREETING, Event.SSL_REQUEST): Conn.DEAD,
    (Conn.LOGIN, Event.HANDSHAKE_RESPONSE): Conn.AUTH,
    (Conn.LOGIN, Event.SSL_REQUEST): Conn.DEAD,
    (Conn.LOGIN, Event.LOGIN_DONE): Conn.COMMAND,
    (Conn.AUTH, Event.LOGIN_DONE): Conn.COMMAND,
    (Conn.COMMAND, Event.GREETING_SEEN): Conn.GREETING,
    (Conn.COMMAND, Event.INFILE_REQUESTED): Conn.INFILE,
    (Conn.COMMAND, Event.INFILE_ENDED): Conn.COMMAND,
    (Conn.INFILE, Event.INFILE_ENDED): Conn.COMMAND,
    (Conn.INFILE, Event.INFILE_REQUESTED): Conn.INFILE,
    **{(c, e): nxt for c in Conn for e, nxt in ALWAYS.items()},
}


@given(st.sampled_from(list(Conn)), st.sampled_from(list(Event)))
def test_every_pair_is_a_listed_transition_or_a_decode_error(state: Conn, event: Event) -> None:
    check_pair(step, EXPECTED, state, event)


@given(st.lists(st.sampled_from(list(Event)), max_size=30))
def test_sides_follow_the_state(events: list[Event]) -> None:
    state = Conn.GREETING
    for event in events:
        try:
            state = step(state, event)
        except DecodeError:
            continue
        client, server = SIDES[state]
        assert (client is Phase.INFILE) == (state is Conn.INFILE)
        assert (server is Phase.GREETING) == (state is Conn.GREETING)
        assert (client is Phase.DEAD) == (server is Phase.DEAD) == (state is Conn.DEAD)


def test_table_has_exactly_the_protocol_pairs() -> None:
    assert table_pairs(TRANSITIONS) == EXPECTED


def _packet(seq: int, payload: bytes) -> bytes:
    return struct.pack("<I", len(payload))[:3] + bytes([seq]) + payload


def test_decoder_walks_greeting_login_command() -> None:
    dec = MysqlDecoder()
    assert dec._conn is Conn.GREETING
    # protocol 10 greeting (§14.2.2): version, thread id, salt, caps, charset, status, caps, salt, plugin
    greeting = (
        b"\x0a8.0.36\x00" + struct.pack("<I", 7) + b"12345678\x00" + struct.pack("<H", 0xFFFF) + b"\x21"
        + struct.pack("<HH", 2, 0xDFFF) + b"\x15" + b"\x00" * 10 + b"123456789012\x00" + b"caching_sha2_password\x00"
    )  # fmt: skip
    dec.receive(Direction.S2C, memoryview(_packet(0, greeting)), 1)
    assert dec._conn is Conn.LOGIN
    caps = (
        0x0008_0000 | 0x0000_8000 | 0x0000_0200 | 0x0000_0008
    )  # PLUGIN_AUTH, SECURE_CONN, 41, CONNECT_WITH_DB
    login = struct.pack("<IIB", caps, 1 << 24, 0x21) + b"\x00" * 23 + b"alice\x00" + b"\x00" + b"db\x00"
    dec.receive(Direction.C2S, memoryview(_packet(1, login)), 2)
    assert dec._conn is Conn.AUTH
    dec.receive(Direction.S2C, memoryview(_packet(2, b"\x00\x00\x00\x02\x00\x00\x00")), 3)  # OK
    assert dec._conn is Conn.COMMAND and (dec._cphase, dec._sphase) == SIDES[Conn.COMMAND]
