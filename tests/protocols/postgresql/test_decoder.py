"""PostgreSQL decoder table cases, each run whole, byte by byte, and with trailing bytes that must survive.

Messages are built from their definitions (tests/helpers/pgwire.py, PostgreSQL docs §55.7); expected sizes
are the lengths of the messages each record stands for, added up by hand in the case; statements are the
text sent, with literals replaced as the documented rule says.
"""

from __future__ import annotations

import pytest

from packetd.protocols.base import DecodeError, DecoderContext, Flag, Role, StopDecoding, SyncLost
from packetd.protocols.postgresql.decoder import MAX_PORTALS, MAX_STATEMENTS, PostgresDecoder
from packetd.protocols.postgresql.messages import (
    ClientNotice,
    Request,
    Response,
    ServerNotice,
    SkippedRequest,
    Startup,
    StartupResult,
)
from packetd.protocols.postgresql.options import PostgresOptions
from tests.helpers import pgwire as pg
from tests.helpers.decoding import C2S, MODES, S2C, feed, project, run

START = pg.startup(user="alice", database="shop", application_name="app")
AUTH_OK = pg.auth(0) + pg.param("server_version", "16.1") + pg.key_data(42, 987654) + pg.ready()
PREAMBLE = [(C2S, START), (S2C, AUTH_OK)]
PRE = [("hs", "StartupMessage", "alice", "shop", "app", False, False, len(START)),
       ("hsr", "trust", "16.1", 42, "OK", None, len(AUTH_OK))]  # fmt: skip
# The sentinel's answer begins with a message longer than half the answer: in "trailing" mode no complete
# backend message arrives before the sentinel's query is complete (a server never answers before it is
# asked; the decoder drops answers to nothing it saw).
SENT_Q = pg.query("LISTEN sentinel")
SENT_R = pg.complete("LISTEN") + pg.ready()
SENTINEL = [(C2S, SENT_Q), (S2C, SENT_R)]
SENTINEL_SUMMARY = [
    ("req", "Query", "LISTEN sentinel", len(SENT_Q), 1),
    ("resp", "LISTEN", None, 0, "OK", len(pg.complete("LISTEN"))),
]


def decoder(**opts: object) -> PostgresDecoder:
    return PostgresDecoder(DecoderContext(options=PostgresOptions(**opts)))  # type: ignore[arg-type]


def summary(msgs: list) -> list[tuple]:
    out: list[tuple] = []
    for m in msgs:
        if isinstance(m, Startup):
            out.append(
                (
                    "hs",
                    m.message,
                    m.user,
                    m.database,
                    m.application_name,
                    m.ssl_request,
                    m.gssenc_request,
                    m.size,
                )
            )
        elif isinstance(m, StartupResult):
            out.append(("hsr", m.auth, m.server_version, m.backend_pid, m.status(), m.encryption, m.size))
        elif isinstance(m, Request):
            kind = "skipped" if isinstance(m, SkippedRequest) else "req"
            out.append((kind, m.op, m.to_json()["statement"], m.size, m.messages))
        elif isinstance(m, Response):
            out.append(("resp", m.tag, m.rows, m.data_rows, m.status(), m.size))
        elif isinstance(m, ClientNotice):
            out.append(("client", m.op, m.backend_pid, m.size))
        elif isinstance(m, ServerNotice):
            out.append(("server", m.op, m.sqlstate or m.channel, m.size))
    return out


# -- the cases -----------------------------------------------------------------------------------------------
MD5_CHALLENGE = pg.auth(5, b"salt")
PASSWORD = pg.password("md5" + "0" * 32)
MULTI = "CREATE TABLE t (a int); INSERT INTO t VALUES (1), (2); SELECT a FROM t WHERE a > 1;"
ROWS = pg.row_description("a") + pg.data_row(b"2")
P_INS = pg.parse("", "INSERT INTO t VALUES ($1)")
B_1, B_2, B_3 = (pg.bind("", "", (v,)) for v in (b"1", b"2", b"3"))
E_ = pg.execute()
INSERTED = pg.complete("INSERT 0 1")
P_NAMED = pg.parse("s1", "SELECT * FROM t WHERE a = $1 AND b = 'x'", (23,))
D_NAMED = pg.describe(b"S", "s1")
DESCRIBED = pg.parameter_description(23) + pg.row_description("a", "b")
B_NAMED = pg.bind("p1", "s1", (b"7",))
E_NAMED = pg.execute("p1")
SELECTED = pg.data_row(b"7", b"x") + pg.data_row(b"7", b"x") + pg.complete("SELECT 2")
P_BAD = pg.parse("", "SELEC 1")
SYNTAX = pg.error("42601", 'syntax error at or near "SELEC"', P="1")
P_DIV = pg.parse("", "SELECT 1 / $1")
DIV0 = pg.error("22012", "division by zero")
COPY_ROWS = [pg.copy_data(b"1\n"), pg.copy_data(b"2\n"), pg.copy_data(b"3\n")]

CASES: dict[str, tuple[list, list]] = {
    "simple-query-rows-from-datarow": (
        [(C2S, pg.query("SELECT id FROM users WHERE email = 'a@b.c'")),
         (S2C, ROWS + pg.complete("SELECT 1") + pg.ready())],
        [("req", "Query", "SELECT id FROM users WHERE email = ?", len(pg.query("SELECT id FROM users WHERE email = 'a@b.c'")), 1),
         ("resp", "SELECT 1", 1, 1, "OK", len(ROWS + pg.complete("SELECT 1")))],
    ),
    "several-statements-in-one-query-one-roundtrip-each": (
        [(C2S, pg.query(MULTI)),
         (S2C, pg.complete("CREATE TABLE") + pg.complete("INSERT 0 2") + ROWS + pg.complete("SELECT 1") + pg.ready(b"I"))],
        [("req", "Query", "CREATE TABLE t (a int)", len(pg.query(MULTI)), 1),
         ("resp", "CREATE TABLE", None, 0, "OK", len(pg.complete("CREATE TABLE"))),
         ("req", "Query", "INSERT INTO t VALUES (?)", 0, 0),
         ("resp", "INSERT 0 2", 2, 0, "OK", len(pg.complete("INSERT 0 2"))),
         ("req", "Query", "SELECT a FROM t WHERE a > ?", 0, 0),
         ("resp", "SELECT 1", 1, 1, "OK", len(ROWS + pg.complete("SELECT 1")))],
    ),
    "an-error-ends-a-multi-statement-query": (
        [(C2S, pg.query("SELECT 1; SELECT 1/0; SELECT 3")),
         (S2C, pg.row_description("c") + pg.data_row(b"1") + pg.complete("SELECT 1") + DIV0 + pg.ready())],
        [("req", "Query", "SELECT ?", len(pg.query("SELECT 1; SELECT 1/0; SELECT 3")), 1),
         ("resp", "SELECT 1", 1, 1, "OK", len(pg.row_description("c") + pg.data_row(b"1") + pg.complete("SELECT 1"))),
         ("req", "Query", "SELECT ?/?", 0, 0),
         ("resp", None, None, 0, "22012", len(DIV0))],
    ),
    "pipeline-of-executes-before-one-sync": (
        [(C2S, P_INS + B_1 + E_ + B_2 + E_ + B_3 + E_ + pg.SYNC),
         (S2C, pg.PARSE_COMPLETE + pg.BIND_COMPLETE + INSERTED + (pg.BIND_COMPLETE + INSERTED) * 2 + pg.ready())],
        [("req", "Execute", "INSERT INTO t VALUES ($1)", len(P_INS + B_1 + E_), 3),
         ("resp", "INSERT 0 1", 1, 0, "OK", len(pg.PARSE_COMPLETE + pg.BIND_COMPLETE + INSERTED)),
         ("req", "Execute", "INSERT INTO t VALUES ($1)", len(B_2 + E_), 2),
         ("resp", "INSERT 0 1", 1, 0, "OK", len(pg.BIND_COMPLETE + INSERTED)),
         ("req", "Execute", "INSERT INTO t VALUES ($1)", len(B_3 + E_), 2),
         ("resp", "INSERT 0 1", 1, 0, "OK", len(pg.BIND_COMPLETE + INSERTED))],
    ),
    "named-statement-prepared-then-executed-through-a-portal": (
        [(C2S, P_NAMED + D_NAMED + pg.SYNC),
         (S2C, pg.PARSE_COMPLETE + DESCRIBED + pg.ready()),
         (C2S, B_NAMED + E_NAMED + pg.SYNC),
         (S2C, pg.BIND_COMPLETE + SELECTED + pg.ready())],
        [("req", "Parse", "SELECT * FROM t WHERE a = $1 AND b = ?", len(P_NAMED + D_NAMED + pg.SYNC), 3),
         ("resp", None, None, 0, "OK", len(pg.PARSE_COMPLETE + DESCRIBED + pg.ready())),
         ("req", "Execute", "SELECT * FROM t WHERE a = $1 AND b = ?", len(B_NAMED + E_NAMED), 2),
         ("resp", "SELECT 2", 2, 2, "OK", len(pg.BIND_COMPLETE + SELECTED))],
    ),
    "parse-error-skips-the-execute-up-to-sync": (
        [(C2S, P_BAD + pg.bind("", "") + E_ + pg.SYNC), (S2C, SYNTAX + pg.ready())],
        [("req", "Parse", "SELEC ?", len(P_BAD), 1),
         ("resp", None, None, 0, "42601", len(SYNTAX)),
         # the skipped Execute runs the unnamed statement the failed Parse was meant to create
         ("skipped", "Execute", "SELEC ?", len(pg.bind("", "") + E_), 2)],
    ),
    "execute-error-skips-the-next-execute": (
        [(C2S, P_DIV + pg.bind("", "", (b"0",)) + E_ + pg.bind("", "", (b"1",)) + E_ + pg.SYNC),
         (S2C, pg.PARSE_COMPLETE + pg.BIND_COMPLETE + DIV0 + pg.ready(b"I"))],
        [("req", "Execute", "SELECT ? / $1", len(P_DIV + pg.bind("", "", (b"0",)) + E_), 3),
         ("resp", None, None, 0, "22012", len(pg.PARSE_COMPLETE + pg.BIND_COMPLETE + DIV0)),
         ("skipped", "Execute", "SELECT ? / $1", len(pg.bind("", "", (b"1",)) + E_), 2)],
    ),
    "error-arrives-before-the-rest-of-the-cycle-is-sent": (
        [(C2S, P_DIV + pg.bind("", "", (b"0",)) + E_ + pg.FLUSH),
         (S2C, pg.PARSE_COMPLETE + pg.BIND_COMPLETE + DIV0),
         (C2S, pg.bind("", "", (b"1",)) + E_ + pg.SYNC), (S2C, pg.ready(b"I"))],
        [("req", "Execute", "SELECT ? / $1", len(P_DIV + pg.bind("", "", (b"0",)) + E_), 3),
         ("resp", None, None, 0, "22012", len(pg.PARSE_COMPLETE + pg.BIND_COMPLETE + DIV0)),
         # sent after the error arrived: the server still discards it up to Sync
         ("skipped", "Execute", "SELECT ? / $1", len(pg.bind("", "", (b"1",)) + E_), 2)],
    ),
    "copy-in-counts-the-client-data": (
        [(C2S, pg.query("COPY t FROM STDIN")), (S2C, pg.copy_in()),
         (C2S, b"".join(COPY_ROWS) + pg.COPY_DONE), (S2C, pg.complete("COPY 3") + pg.ready())],
        [("req", "Query", "COPY t FROM STDIN", len(pg.query("COPY t FROM STDIN") + b"".join(COPY_ROWS) + pg.COPY_DONE), 1),
         ("resp", "COPY 3", 3, 0, "OK", len(pg.copy_in() + pg.complete("COPY 3")))],
    ),
    "copy-out-counts-the-server-data": (
        [(C2S, pg.query("COPY t TO STDOUT")),
         (S2C, pg.copy_out() + pg.copy_data(b"1\n") + pg.copy_data(b"2\n") + pg.COPY_DONE + pg.complete("COPY 2") + pg.ready())],
        [("req", "Query", "COPY t TO STDOUT", len(pg.query("COPY t TO STDOUT")), 1),
         ("resp", "COPY 2", 2, 0, "OK",
          len(pg.copy_out() + pg.copy_data(b"1\n") + pg.copy_data(b"2\n") + pg.COPY_DONE + pg.complete("COPY 2")))],
    ),
    "notices-and-notifications-are-one-way": (
        [(C2S, pg.query("LISTEN ch")),
         (S2C, pg.notice("00000", "hello") + pg.complete("LISTEN") + pg.ready() + pg.notification(99, "ch", "secret payload"))],
        [("server", "NoticeResponse", "00000", len(pg.notice("00000", "hello"))),
         ("req", "Query", "LISTEN ch", len(pg.query("LISTEN ch")), 1),
         ("resp", "LISTEN", None, 0, "OK", len(pg.complete("LISTEN"))),
         ("server", "NotificationResponse", "ch", len(pg.notification(99, "ch", "secret payload")))],
    ),
    "empty-query-and-a-suspended-portal": (
        [(C2S, pg.query("")), (S2C, pg.EMPTY_QUERY + pg.ready()),
         (C2S, pg.parse("", "SELECT g FROM generate_series(1, 3) g") + pg.bind("", "") + pg.execute("", 2) + pg.FLUSH),
         (S2C, pg.PARSE_COMPLETE + pg.BIND_COMPLETE + pg.data_row(b"1") + pg.data_row(b"2") + pg.PORTAL_SUSPENDED),
         (C2S, pg.execute("", 2) + pg.SYNC),
         (S2C, pg.data_row(b"3") + pg.complete("SELECT 1") + pg.ready())],
        [("req", "Query", "", len(pg.query("")), 1),
         ("resp", None, None, 0, "OK", len(pg.EMPTY_QUERY)),
         ("req", "Execute", "SELECT g FROM generate_series(?) g",
          len(pg.parse("", "SELECT g FROM generate_series(1, 3) g") + pg.bind("", "") + pg.execute("", 2)), 3),
         ("resp", None, None, 2, "OK", len(pg.PARSE_COMPLETE + pg.BIND_COMPLETE + pg.data_row(b"1") + pg.data_row(b"2") + pg.PORTAL_SUSPENDED)),
         ("req", "Execute", "SELECT g FROM generate_series(?) g", len(pg.execute("", 2)), 1),
         ("resp", "SELECT 1", 1, 1, "OK", len(pg.data_row(b"3") + pg.complete("SELECT 1")))],
    ),
    "close-and-a-bare-sync": (
        [(C2S, pg.close(b"S", "s1") + pg.SYNC + pg.SYNC),
         (S2C, pg.CLOSE_COMPLETE + pg.ready() + pg.ready())],
        [("req", "Close", None, len(pg.close(b"S", "s1") + pg.SYNC), 2),
         ("resp", None, None, 0, "OK", len(pg.CLOSE_COMPLETE + pg.ready())),
         ("req", "Sync", None, len(pg.SYNC), 1),
         ("resp", None, None, 0, "OK", len(pg.ready()))],
    ),
    "function-call": (
        [(C2S, pg.function_call(1598)), (S2C, pg.function_result(b"\x00\x00\x00\x07") + pg.ready())],
        [("req", "FunctionCall", None, len(pg.function_call(1598)), 1),
         ("resp", None, None, 0, "OK", len(pg.function_result(b"\x00\x00\x00\x07")))],
    ),
}  # fmt: skip

HANDSHAKE_CASES: dict[str, tuple[list, list]] = {
    "ssl-refused-then-md5-password": (
        [(C2S, pg.SSL_REQUEST), (S2C, b"N"), (C2S, START), (S2C, MD5_CHALLENGE), (C2S, PASSWORD), (S2C, AUTH_OK)],
        [("hs", "StartupMessage", "alice", "shop", "app", True, False, len(pg.SSL_REQUEST + START + PASSWORD)),
         ("hsr", "md5", "16.1", 42, "OK", "N", 1 + len(MD5_CHALLENGE + AUTH_OK))],
    ),
    "gssenc-refused-then-ssl-refused-then-failed-password": (
        [(C2S, pg.GSSENC_REQUEST), (S2C, b"N"), (C2S, pg.SSL_REQUEST), (S2C, b"N"), (C2S, START),
         (S2C, pg.auth(3)), (C2S, pg.password("hunter2")),
         (S2C, pg.error("28P01", 'password authentication failed for user "alice"', "FATAL"))],
        [("hs", "StartupMessage", "alice", "shop", "app", True, True,
          len(pg.GSSENC_REQUEST + pg.SSL_REQUEST + START + pg.password("hunter2"))),
         ("hsr", "password", None, None, "28P01", "N",
          2 + len(pg.auth(3) + pg.error("28P01", 'password authentication failed for user "alice"', "FATAL")))],
    ),
    "scram": (
        [(C2S, pg.startup(user="bob")), (S2C, pg.auth(10, pg.cstr("SCRAM-SHA-256-PLUS") + pg.cstr("SCRAM-SHA-256") + b"\x00")),
         (C2S, pg.msg(b"p", pg.cstr("SCRAM-SHA-256") + b"\x00\x00\x00\x05n,,n=")), (S2C, pg.auth(11, b"r=abc")),
         (C2S, pg.msg(b"p", b"c=biws,r=abc,p=proofsecret")), (S2C, pg.auth(12, b"v=sig") + AUTH_OK)],
        [("hs", "StartupMessage", "bob", "bob", None, False, False,
          len(pg.startup(user="bob") + pg.msg(b"p", pg.cstr("SCRAM-SHA-256") + b"\x00\x00\x00\x05n,,n=") + pg.msg(b"p", b"c=biws,r=abc,p=proofsecret"))),
         ("hsr", "SCRAM-SHA-256", "16.1", 42, "OK", None,
          len(pg.auth(10, pg.cstr("SCRAM-SHA-256-PLUS") + pg.cstr("SCRAM-SHA-256") + b"\x00") + pg.auth(11, b"r=abc") + pg.auth(12, b"v=sig") + AUTH_OK))],
    ),
}  # fmt: skip


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(CASES))
def test_table(name: str, mode: str) -> None:
    steps, expected = CASES[name]
    msgs = run(decoder, PREAMBLE + steps, mode, SENTINEL)
    want = PRE + expected + (SENTINEL_SUMMARY if mode == "trailing" else [])
    assert summary(msgs) == want


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(HANDSHAKE_CASES))
def test_handshakes(name: str, mode: str) -> None:
    steps, expected = HANDSHAKE_CASES[name]
    msgs = run(
        decoder,
        steps,
        mode,
        SENTINEL if name != "gssenc-refused-then-ssl-refused-then-failed-password" else (),
    )
    want = expected + (SENTINEL_SUMMARY if mode == "trailing" and "failed" not in name else [])
    assert summary(msgs) == want
    text = repr([m.to_json() for m in msgs])
    assert "hunter2" not in text and "proofsecret" not in text and "0" * 32 not in text
    assert "987654" not in text  # the cancel key


def test_three_modes_give_identical_records() -> None:
    steps, _ = CASES["named-statement-prepared-then-executed-through-a-portal"]
    whole = project(run(decoder, PREAMBLE + steps, "whole"))
    assert project(run(decoder, PREAMBLE + steps, "bytewise")) == whole


def test_ssl_accepted_stops_decoding_encrypted() -> None:
    out = feed(decoder(), [(C2S, pg.SSL_REQUEST), (S2C, b"S\x16\x03\x03"), (C2S, b"\x16\x03\x01\x02\x00")])
    assert len(out) == 1 and isinstance(out[0], StopDecoding) and out[0].encrypted and out[0].reason == "tls"


def test_gss_accepted_stops_decoding_encrypted() -> None:
    out = feed(decoder(), [(C2S, pg.GSSENC_REQUEST), (S2C, b"G")])
    assert len(out) == 1 and isinstance(out[0], StopDecoding) and out[0].reason == "gssapi"


def test_gssenc_refused_then_client_gone_is_an_answered_handshake() -> None:
    d = decoder()
    out = feed(d, [(C2S, pg.GSSENC_REQUEST), (S2C, b"N")])
    out += [*d.receive_eof(C2S, 9), *d.receive_eof(S2C, 9)]
    assert summary(out) == [
        ("hs", "GSSENCRequest", None, None, None, False, True, 8),
        ("hsr", None, None, None, "OK", "N", 1),
    ]


def test_cancel_request_is_one_way_and_keeps_no_key() -> None:
    (m,) = feed(decoder(), [(C2S, pg.cancel(1234, 987654321))])
    assert summary([m]) == [("client", "CancelRequest", 1234, 16)] and m.ROLE is Role.ONEWAY
    assert "987654321" not in repr(m.to_json())


def test_terminate_is_one_way() -> None:
    out = feed(decoder(), [*PREAMBLE, (C2S, pg.TERMINATE)])
    assert summary(out)[-1] == ("client", "Terminate", None, 5) and out[-1].ROLE is Role.ONEWAY


def test_unsolicited_error_is_one_way() -> None:
    err = pg.error("57P01", "terminating connection due to administrator command", "FATAL")
    out = feed(decoder(), [*PREAMBLE, (S2C, err)])
    assert summary(out)[-1] == ("server", "ErrorResponse", "57P01", len(err)) and out[-1].is_error()


def test_pending_execute_at_eof_is_reported_for_unanswered() -> None:
    d = decoder()
    out = feed(d, [*PREAMBLE, (C2S, P_INS + B_1 + E_ + pg.SYNC), (S2C, pg.PARSE_COMPLETE)])
    out += d.receive_eof(S2C, 9)
    assert summary(out)[2:] == [("req", "Execute", "INSERT INTO t VALUES ($1)", len(P_INS + B_1 + E_), 3)]


def test_statement_cap_and_raw_text_option() -> None:
    sql = "SELECT * FROM t WHERE name = 'Zoë' AND note = '" + "x" * 3000 + "'"
    steps = [*PREAMBLE, (C2S, pg.query(sql)), (S2C, pg.complete("SELECT 0") + pg.ready())]
    capped = feed(decoder(max_statement=50), steps)[2].to_json()
    assert capped["statement"] == "SELECT * FROM t WHERE name = ? AND note = ?"
    assert capped["statement_truncated"] is True
    raw = feed(decoder(keep_literals=True, max_statement=33), steps)[2].to_json()
    # 33 bytes end inside the two-byte "ë": the cut character is dropped, never shown half
    assert raw["statement"] == "SELECT * FROM t WHERE name = 'Zo" and raw["statement_truncated"] is True


def test_statement_cache_is_bounded_and_misses_are_counted() -> None:
    d = decoder()
    steps = [*PREAMBLE]
    for i in range(MAX_STATEMENTS + 10):
        steps.append((C2S, pg.parse(f"s{i}", f"SELECT {i}")))
    steps.append((C2S, pg.bind("", "s0") + E_ + pg.SYNC))  # s0 was evicted
    steps.append((C2S, pg.bind("", "nope") + E_ + pg.SYNC))
    feed(d, steps)
    assert len(d._statements) == MAX_STATEMENTS and len(d._portals) <= MAX_PORTALS
    assert d.counters == {"statement_cache_evictions": 10, "statement_cache_misses": 2}


def test_joined_mid_stream_finds_message_headers_and_invents_nothing() -> None:
    d = PostgresDecoder(DecoderContext(midstream=True))
    # the tail of an earlier answer, then a query (after the tail of an earlier one), then its answer
    tail = b"\x00\x00\x01" + pg.data_row(b"1") + pg.complete("SELECT 1") + pg.ready()
    out = list(d.receive(S2C, memoryview(tail), 9))
    out += d.receive(C2S, memoryview(b"ng text\x00" + pg.query("SELECT 2")), 10)
    out += d.receive(
        S2C,
        memoryview(pg.row_description("c") + pg.data_row(b"2") + pg.complete("SELECT 1") + pg.ready()),
        12,
    )
    assert summary(out) == [
        ("req", "Query", "SELECT ?", len(pg.query("SELECT 2")), 1),
        (
            "resp",
            "SELECT 1",
            1,
            1,
            "OK",
            len(pg.row_description("c") + pg.data_row(b"2") + pg.complete("SELECT 1")),
        ),
    ]
    assert out[0].flags & Flag.MIDSTREAM


def test_mid_stream_answer_to_the_pending_execute_aligns_at_once() -> None:
    d = PostgresDecoder(DecoderContext(midstream=True))
    out = list(d.receive(C2S, memoryview(pg.bind("", "x") + E_ + pg.SYNC), 10))
    out += d.receive(
        S2C, memoryview(pg.BIND_COMPLETE + pg.data_row(b"1") + pg.complete("SELECT 1") + pg.ready()), 11
    )
    assert summary(out) == [
        ("req", "Execute", None, len(pg.bind("", "x") + E_), 2),
        ("resp", "SELECT 1", 1, 1, "OK", len(pg.BIND_COMPLETE + pg.data_row(b"1") + pg.complete("SELECT 1"))),
    ]
    assert d.counters == {"statement_cache_misses": 1}


def test_gap_inside_a_data_row_is_absorbed_and_a_header_gap_resyncs() -> None:
    d = decoder()
    feed(d, [*PREAMBLE, (C2S, pg.query("SELECT big"))])
    row = pg.data_row(b"x" * 1000)
    out = list(d.receive(S2C, memoryview(row[:100]), 5))
    out += d.receive_gap(S2C, 800, 6)
    out += d.receive(S2C, memoryview(row[900:] + pg.complete("SELECT 1") + pg.ready()), 7)
    assert summary(out) == [
        ("req", "Query", "SELECT big", len(pg.query("SELECT big")), 1),
        ("resp", "SELECT 1", 1, 1, "OK", len(row + pg.complete("SELECT 1"))),
    ]
    assert out[1].flags & Flag.GAP
    out = list(d.receive(C2S, memoryview(pg.query("SELECT 1")[:3]), 8))
    out += d.receive_gap(C2S, 20, 9)
    assert [type(m) for m in out] == [SyncLost, SyncLost]


@pytest.mark.parametrize(
    ("steps", "reason"),
    [
        ([(C2S, START), (S2C, AUTH_OK), (C2S, b"Q\x7f\xff\xff\xff")], "bad message length"),
        ([(C2S, START), (S2C, AUTH_OK), (C2S, b"Z\x00\x00\x00\x04")], "unknown message type"),
        ([(C2S, START), (S2C, AUTH_OK), (C2S, b"S\x00\x00\x00\x08")], "bad message length"),
        ([(C2S, b"\x00\x00\x00\x08\x00\x02\x00\x00")], "unsupported protocol version"),
        ([(C2S, b"\x7f\x00\x00\x00\x00\x03\x00\x00")], "bad startup packet length"),
        ([(C2S, pg.SSL_REQUEST), (S2C, b"X")], "bad SSL/GSS answer"),
        # the sslmode=prefer bug of the reference: an 'N' glued to a message is a short header, not a wait
        ([(C2S, START), (S2C, b"N\x40\x00\x00\x00")], "bad message length"),
        (
            [(C2S, START), (S2C, AUTH_OK), (C2S, pg.query("SELECT 1")), (S2C, pg.PARSE_COMPLETE)],
            "unexpected ParseComplete",
        ),
    ],
)
def test_garbage_raises_decode_error(steps: list, reason: str) -> None:
    with pytest.raises(DecodeError) as exc:
        feed(decoder(), steps)
    assert exc.value.reason == reason
