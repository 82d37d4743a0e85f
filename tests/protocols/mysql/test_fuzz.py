"""Fuzz the MySQL decoder: random bytes give only messages or DecodeError with bounded state, and real
exchanges cut at random places give the same records as in one piece."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from packetd.protocols.mysql.decoder import (
    ATTR_MARGIN,
    MAX_LOGIN,
    MAX_PENDING,
    MAX_SERVER_KEEP,
    MAX_STATEMENTS,
    MysqlDecoder,
    new_decoder,
)
from tests.helpers import mywire as my
from tests.helpers.decoding import project
from tests.helpers.fuzzing_db import drive, events, whole_and_segmented
from tests.protocols.mysql.test_decoder import CASES


def bounded(d: MysqlDecoder) -> None:
    assert d._pending.tracked <= MAX_PENDING and len(d._statements) <= MAX_STATEMENTS
    for side in (d._c, d._s):
        assert len(side.hdr) <= 4 and len(side.zhdr) <= 7
        assert len(side.body) <= max(MAX_LOGIN, MAX_SERVER_KEEP, 1024 + ATTR_MARGIN + 16)


@settings(max_examples=300, deadline=None)
@given(events(), st.booleans())
def test_random_bytes_give_messages_or_decode_errors(evs: list, midstream: bool) -> None:
    drive(new_decoder, evs, bounded, midstream)


PIECES = [
    my.greeting(my.MODERN), my.greeting(my.MODERN | my.COMPRESS), my.login(my.MODERN, "u", b"x" * 20),
    my.login(my.MODERN | my.COMPRESS, "u", b"x"), my.ok(1), my.ok(2), my.ok(3, header=0xFE), my.eof(4),
    my.err(1, 1064, "42000", "syntax"), my.query("SELECT 1"), my.command(0x16, b"SELECT ?"), my.column(2, "a"),
    my.text_row(3, "v"), my.binary_row(3, 1), my.packet(1, b"\x02"), my.packet(1, b"\xfb/f"), my.packet(2, b""),
    my.compress_frames(my.query("SELECT 2")), my.compress_frames(my.ok(1), stored=True), b"\xff\xff\xff\x00",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 1), st.lists(st.sampled_from(PIECES), max_size=5).map(b"".join)), max_size=25
    )
)
def test_protocol_shaped_garbage(chunks: list) -> None:
    evs = [("data", d, b) for d, b in chunks if b]
    drive(new_decoder, evs, bounded)
    drive(new_decoder, evs, bounded, midstream=True)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(CASES)), st.data())
def test_any_segmentation_gives_the_same_records(name: str, data: st.DataObject) -> None:
    pre, steps, _ = CASES[name]
    expected, got = whole_and_segmented(MysqlDecoder, pre + steps, data)
    assert project(got) == project(expected)
