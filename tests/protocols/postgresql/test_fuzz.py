"""Fuzz the PostgreSQL decoder: random bytes give only messages or DecodeError with bounded state, and real
exchanges cut at random places give the same records as in one piece."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from packetd.protocols.postgresql.decoder import (
    MAX_PENDING,
    MAX_PORTALS,
    MAX_STATEMENTS,
    PostgresDecoder,
    new_decoder,
)
from tests.helpers import pgwire as pg
from tests.helpers.decoding import project
from tests.helpers.fuzzing_db import drive, events, whole_and_segmented
from tests.protocols.postgresql.test_decoder import CASES, HANDSHAKE_CASES, PREAMBLE


def bounded(d: PostgresDecoder) -> None:
    assert d._items.tracked <= MAX_PENDING
    assert len(d._statements) <= MAX_STATEMENTS and len(d._portals) <= MAX_PORTALS
    for side in (d._c, d._s):
        assert len(side.hdr) <= 5 and len(side.body) <= max(side.keep, 0)
        assert side.keep <= 10_000 + 1024 + 600


@settings(max_examples=300, deadline=None)
@given(events(), st.booleans())
def test_random_bytes_give_messages_or_decode_errors(evs: list, midstream: bool) -> None:
    drive(new_decoder, evs, bounded, midstream)


PIECES = [
    pg.query("SELECT 1"), pg.SYNC, pg.ready(), pg.complete("SELECT 1"), pg.data_row(b"x"), pg.PARSE_COMPLETE,
    pg.BIND_COMPLETE, pg.parse("", "SELECT $1"), pg.bind("", ""), pg.execute(), pg.error("42P01", "no"),
    pg.startup(user="u"), pg.SSL_REQUEST, b"N", b"S", pg.auth(0), pg.auth(5, b"salt"), pg.copy_in(),
    pg.copy_data(b"1\n"), pg.COPY_DONE, pg.notice("00000", "n"), b"\x00\x00\x00\x05", b"Q\x7f",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 1), st.lists(st.sampled_from(PIECES), max_size=6).map(b"".join)), max_size=25
    )
)
def test_protocol_shaped_garbage(chunks: list) -> None:
    drive(new_decoder, [("data", d, b) for d, b in chunks if b], bounded)
    drive(new_decoder, [("data", d, b) for d, b in chunks if b], bounded, midstream=True)


ALL = {**{k: PREAMBLE + v[0] for k, v in CASES.items()}, **{k: v[0] for k, v in HANDSHAKE_CASES.items()}}


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(ALL)), st.data())
def test_any_segmentation_gives_the_same_records(name: str, data: st.DataObject) -> None:
    expected, got = whole_and_segmented(PostgresDecoder, ALL[name], data)
    assert project(got) == project(expected)
