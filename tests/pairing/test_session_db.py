"""Session seams the database decoders use: requests the decoder knows will never be answered
(Role.UNANSWERED), and the decoders' own counters surfacing in ProtocolStats."""

from __future__ import annotations

from packetd.pairing.roundtrip import Roundtrip
from packetd.pairing.session import ProtocolStats, Session
from packetd.protocols.base import Kind
from packetd.protocols.registry import POSTGRESQL, Registry
from tests.helpers import pgwire as pg
from tests.helpers.decoding import open_session


def session() -> tuple[Session, list[Roundtrip], dict[str, ProtocolStats]]:
    reg = Registry([POSTGRESQL])
    return open_session(reg["postgresql"], reg, ("10.0.0.1", 5555), ("10.0.0.2", 5432))


def test_a_skipped_execute_is_an_unanswered_record_at_once_and_pairing_stays_aligned() -> None:
    s, records, stats = session()
    s.data(0, memoryview(pg.startup(user="u")), 1)
    s.data(1, memoryview(pg.auth(0) + pg.ready()), 2)
    s.data(
        0,
        memoryview(
            pg.parse("", "SELECT 1/$1")
            + pg.bind("", "")
            + pg.execute()
            + pg.bind("", "")
            + pg.execute()
            + pg.SYNC
        ),
        3,
    )
    s.data(
        1,
        memoryview(pg.PARSE_COMPLETE + pg.BIND_COMPLETE + pg.error("22012", "division by zero") + pg.ready()),
        4,
    )
    s.data(0, memoryview(pg.query("SELECT 2")), 5)
    s.data(
        1, memoryview(pg.row_description("c") + pg.data_row(b"2") + pg.complete("SELECT 1") + pg.ready()), 6
    )
    assert [(r.kind, r.operation, r.status) for r in records] == [
        (Kind.HANDSHAKE, "StartupMessage", "OK"),
        (Kind.ROUNDTRIP, "Execute", "22012"),
        (Kind.UNANSWERED, "Execute", None),  # skipped by the server after the error: emitted at once
        (Kind.ROUNDTRIP, "Query", "OK"),
    ]
    assert stats["postgresql"].pairing.unanswered == 1 and stats["postgresql"].pairing.orphans == 0


def test_decoder_counters_reach_the_protocol_stats_at_once_and_once() -> None:
    s, _, stats = session()
    s.data(0, memoryview(pg.startup(user="u")), 1)
    s.data(1, memoryview(pg.auth(0) + pg.ready()), 2)
    s.data(0, memoryview(pg.bind("", "prepared-before-the-capture") + pg.execute() + pg.SYNC), 3)
    assert stats["postgresql"].counters == {"statement_cache_misses": 1}  # a live agent sees it now
    s.close(4)
    assert stats["postgresql"].counters == {"statement_cache_misses": 1}  # and closing adds nothing
