"""Session seams the database decoders use: requests the decoder knows will never be answered
(Role.UNANSWERED), and the decoders' own counters surfacing in ProtocolStats."""

from __future__ import annotations

from packetd.pairing.roundtrip import Roundtrip
from packetd.pairing.session import ProtocolStats, Session
from packetd.protocols.base import Flag, Kind
from packetd.protocols.registry import MYSQL, POSTGRESQL, Registry
from tests.helpers import mywire as my
from tests.helpers import pgwire as pg
from tests.helpers.decoding import open_session


def mysql_session() -> tuple[Session, list[Roundtrip], dict[str, ProtocolStats]]:
    """A MySQL connection past its login (greeting, HandshakeResponse, OK)."""
    reg = Registry([MYSQL])
    s, records, stats = open_session(reg["mysql"], reg, ("10.0.0.1", 5555), ("10.0.0.2", 3306))
    s.data(1, memoryview(my.greeting(my.MODERN)), 1)
    s.data(0, memoryview(my.login(my.MODERN, "app", b"x" * 20, "shop")), 2)
    s.data(1, memoryview(my.ok(2)), 3)
    return s, records, stats


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


def test_an_answer_to_nothing_pending_is_counted_as_an_orphan_response() -> None:
    # issue 9 item 17: counted among the orphan responses (the summary's and packetd_orphan_responses),
    # never a decode reset; one per answer, not per backend message
    s, records, stats = session()
    s.data(0, memoryview(pg.startup(user="u")), 1)
    s.data(1, memoryview(pg.auth(0) + pg.ready()), 2)
    s.data(1, memoryview(pg.PARSE_COMPLETE + pg.BIND_COMPLETE + pg.complete("INSERT 0 1") + pg.ready()), 3)
    s.data(1, memoryview(pg.PARSE_COMPLETE + pg.ready()), 4)  # a Parse ... Sync cycle's answer
    s.data(0, memoryview(pg.query("SELECT 1")), 5)  # and pairing goes on
    s.data(
        1, memoryview(pg.row_description("c") + pg.data_row(b"1") + pg.complete("SELECT 1") + pg.ready()), 6
    )
    st = stats["postgresql"]
    assert st.pairing.orphans == 2 and not st.decode_errors
    assert [(r.kind, r.operation) for r in records] == [
        (Kind.HANDSHAKE, "StartupMessage"),
        (Kind.ROUNDTRIP, "Query"),
    ]


def test_mysql_answers_to_nothing_pending_are_orphan_responses() -> None:
    s, records, stats = mysql_session()
    s.data(1, memoryview(my.ok(1) + my.result_set(["a"], [("1",), ("2",)], deprecate_eof=True)), 4)
    st = stats["mysql"]
    assert st.pairing.orphans == 2 and not st.decode_errors
    assert [r.kind for r in records] == [Kind.HANDSHAKE]


def test_a_start_up_the_server_answered_then_abandoned_is_a_handshake() -> None:
    # issue 9 item 17: libpq without a password (psql prompting for one) reads the authentication request
    # and closes; the exchange happened, it is a handshake record, not an unanswered request
    s, records, stats = session()
    s.data(0, memoryview(pg.startup(user="u", database="db")), 1)
    sasl = pg.auth(10, b"SCRAM-SHA-256\x00\x00")
    s.data(1, memoryview(sasl), 2)
    s.eof(0, 3)
    s.eof(1, 4)
    s.close(5)
    (r,) = records
    assert (r.kind, r.operation, r.status, r.request.user) == (Kind.HANDSHAKE, "StartupMessage", "OK", "u")  # type: ignore[union-attr]
    assert (
        r.response.size == len(sasl)
        and r.response.auth == "sasl"
        and r.response.start_ns == r.response.end_ns == 2
    )  # type: ignore[union-attr]
    assert r.all_flags & Flag.TRUNCATED and stats["postgresql"].pairing.unanswered == 0


def test_answers_complete_before_garbage_in_the_same_segment_are_kept() -> None:
    # the same rule as Redis (issue 9 item 12) for PostgreSQL and MySQL: a reset loses only what follows
    s, records, stats = session()
    s.data(0, memoryview(pg.startup(user="u")), 1)
    s.data(1, memoryview(pg.auth(0) + pg.ready()), 2)
    s.data(0, memoryview(pg.query("SELECT 1") + pg.query("SELECT 2")), 3)
    s.data(1, memoryview(pg.complete("SELECT 1") + pg.ready() + b"\x01garbage"), 4)
    s.close(5)
    assert [(r.kind, r.operation, r.status) for r in records] == [
        (Kind.HANDSHAKE, "StartupMessage", "OK"),
        (Kind.ROUNDTRIP, "Query", "OK"),
        (Kind.UNANSWERED, "Query", None),
    ]
    assert stats["postgresql"].decode_errors == {"unknown message type": 1}
    s, records, stats = mysql_session()
    s.data(0, memoryview(my.query("SELECT 1")), 4)
    s.data(1, memoryview(my.ok(1, affected=3) + my.packet(1, b"\x01\x02")), 5)  # an answer to nothing, odd
    s.data(0, memoryview(my.query("SELECT 2") + my.packet(0, b"\xee")), 6)  # a command, then garbage
    s.close(7)
    assert [(r.kind, r.operation, r.response and r.response.affected_rows) for r in records[1:]] == [  # type: ignore[union-attr]
        (Kind.ROUNDTRIP, "COM_QUERY", 3),
        (Kind.UNANSWERED, "COM_QUERY", None),
    ]
    assert stats["mysql"].decode_errors == {"unknown command": 1}


def test_a_mysql_answer_before_the_login_is_not_a_decode_reset() -> None:
    # issue 9 item 17: the server gives up on a client that sent no login (ERR 1043 "Bad handshake"): a
    # one-way server message, not a reset; anything else there is counted as an orphan packet
    reg = Registry([MYSQL])
    s, records, stats = open_session(reg["mysql"], reg, ("10.0.0.1", 5555), ("10.0.0.2", 3306))
    s.data(1, memoryview(my.greeting(my.MODERN)), 1)
    s.data(1, memoryview(my.err(1, 1043, "08S01", "Bad handshake")), 2)
    s.close(3)
    assert [(r.kind, r.status) for r in records] == [(Kind.ONEWAY, "1043")]
    assert not stats["mysql"].decode_errors
    s, records, stats = open_session(reg["mysql"], reg, ("10.0.0.1", 5556), ("10.0.0.2", 3306))
    s.data(1, memoryview(my.greeting(my.MODERN) + my.ok(1)), 1)
    assert not stats["mysql"].decode_errors and stats["mysql"].counters == {"orphan_packets": 1}
