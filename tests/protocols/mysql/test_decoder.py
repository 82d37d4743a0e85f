"""MySQL / MariaDB decoder table cases, each run whole, byte by byte, and with trailing bytes that must survive.

Packets are built from the protocol's definitions (tests/helpers/mywire.py); expected sizes are the lengths
of the packets each record stands for, added up in the case; values (rows, columns, codes, flags) are the
ones written into those packets.
"""

from __future__ import annotations

import itertools
import struct

import pytest

from packetd.protocols.base import DecodeError, DecoderContext, Flag, Role, StopDecoding, SyncLost
from packetd.protocols.mysql.decoder import MAX_STATEMENTS, MysqlDecoder
from packetd.protocols.mysql.messages import Command, Login, LoginResult, OnewayCommand, Result, ServerError
from packetd.protocols.mysql.options import MysqlOptions
from packetd.protocols.registry import MYSQL, Registry
from tests.helpers import mywire as my
from tests.helpers.decoding import C2S, MODES, S2C, feed, open_session, project, run

SECRET = b"scramble-secret-0123"
FAST_AUTH = my.packet(2, b"\x01\x03")  # caching_sha2_password: fast authentication succeeded


def preamble(caps: int) -> tuple[list, list]:
    g = my.greeting(caps)
    lg = my.login(caps, "app", SECRET, "shop")
    done = FAST_AUTH + my.ok(3)
    steps = [(S2C, g), (C2S, lg), (S2C, done)]
    want = [("login", "app", "shop", "caching_sha2_password", "pymysql", len(lg)),
            ("loginr", "8.0.36", 7, "caching_sha2_password", None, "OK", len(done))]  # fmt: skip
    return steps, want


MODERN_PRE, MODERN_WANT = preamble(my.MODERN)
CLASSIC_PRE, CLASSIC_WANT = preamble(my.CLASSIC)
PING = my.command(0x0E)
PING_OK = my.ok(1)
SENTINEL = [(C2S, PING), (S2C, PING_OK)]
SENTINEL_SUMMARY = [
    ("cmd", "COM_PING", None, None, len(PING)),
    ("res", "ok", "OK", None, None, 1, len(PING_OK)),
]


def decoder(**opts: object) -> MysqlDecoder:
    return MysqlDecoder(DecoderContext(options=MysqlOptions(**opts)))  # type: ignore[arg-type]


def summary(msgs: list) -> list[tuple]:
    out: list[tuple] = []
    for m in msgs:
        if isinstance(m, Login):
            out.append(("login", m.user, m.database, m.auth_plugin, m.client_name, m.size))
        elif isinstance(m, LoginResult):
            out.append(
                (
                    "loginr",
                    m.server_version,
                    m.connection_id,
                    m.auth_plugin,
                    m.compression,
                    m.status(),
                    m.size,
                )
            )
        elif isinstance(m, Command):
            kind = "oneway" if isinstance(m, OnewayCommand) else "cmd"
            out.append((kind, m.command, m.to_json().get("statement"), m.statement_id, m.size))
        elif isinstance(m, Result):
            out.append(("res", m.kind, m.status(), m.columns, m.rows, m.results, m.size))
        elif isinstance(m, ServerError):
            out.append(("servererr", m.error_code, m.size))
    return out


Q_USERS = my.query("SELECT id, name FROM users WHERE email = 'a@b.c'")
RS_MODERN = my.result_set(["id", "name"], [("1", "ann"), ("2", None)], deprecate_eof=True)
RS_CLASSIC = my.result_set(["id", "name"], [("1", "ann"), ("2", "bob"), ("3", None)], deprecate_eof=False)
Q_INSERT = my.query("INSERT INTO t (a) VALUES (1)")
INSERT_OK = my.ok(1, affected=1, insert_id=42, status=0x0002, warnings=1)
Q_MISSING = my.query("SELECT * FROM x.y")
MISSING = my.err(1, 1146, "42S02", "Table 'x.y' doesn't exist")
PREPARE = my.command(0x16, b"SELECT a, b FROM t WHERE a = ?")
PREPARE_OK = (
    my.packet(1, b"\x00" + struct.pack("<IHHBH", 1, 2, 1, 0, 0))
    + my.column(2, "?") + my.eof(3) + my.column(4, "a") + my.column(5, "b") + my.eof(6)
)  # fmt: skip
EXECUTE = my.command(
    0x17, struct.pack("<IBI", 1, 0, 1) + b"\x00\x01" + struct.pack("<H", 8) + struct.pack("<q", 5)
)
EXEC_RS = (
    my.packet(1, b"\x02") + my.column(2, "a") + my.column(3, "b") + my.eof(4)
    + my.binary_row(5, 5, 6) + my.binary_row(6, 5, 7) + my.eof(7)
)  # fmt: skip
CLOSE = my.command(0x19, struct.pack("<I", 1))
RESET = my.command(0x1A, struct.pack("<I", 1))
CALL = my.query("CALL p()")
CALL_RS = my.result_set(["x"], [("1",)], deprecate_eof=False, status=0x000A) + my.ok(5, status=0x0002)
INFILE_Q = my.query("LOAD DATA LOCAL INFILE '/tmp/x.csv' INTO TABLE t")
INFILE_REQ = my.packet(1, b"\xfb/tmp/x.csv")
FILE = my.packet(2, b"1,a\n2,b\n3,") + my.packet(3, b"c\n") + my.packet(4, b"")
CURSOR_EXEC = my.command(
    0x17, struct.pack("<IBI", 1, 1, 1) + b"\x00\x01" + struct.pack("<H", 8) + struct.pack("<q", 5)
)
CURSOR_RS = my.packet(1, b"\x02") + my.column(2, "a") + my.column(3, "b") + my.eof(4, status=0x0042)
FETCH = my.command(0x1C, struct.pack("<II", 1, 10))
FETCHED = my.binary_row(1, 5, 6) + my.eof(2, status=0x0082)
FIELD_LIST = my.command(0x04, b"t\x00")
FIELDS = my.column(1, "a") + my.column(2, "b") + my.eof(3)
STATS = my.packet(1, b"Uptime: 5  Threads: 1  Questions: 9")
CHANGE_USER = my.command(0x11, b"bob\x00" + bytes([20]) + b"x" * 20 + b"shop\x00")
SWITCH = my.packet(1, b"\xfemysql_native_password\x00" + b"y" * 20)
SWITCH_REPLY = my.packet(2, b"z" * 20)

CASES: dict[str, tuple[list, list, list]] = {
    "deprecate-eof-result-set-and-literal-replacement": (
        MODERN_PRE, [(C2S, Q_USERS), (S2C, RS_MODERN)],
        [("cmd", "COM_QUERY", "SELECT id, name FROM users WHERE email = ?", None, len(Q_USERS)),
         ("res", "result_set", "OK", 2, 2, 1, len(RS_MODERN))],
    ),
    "classic-eof-result-set": (
        CLASSIC_PRE, [(C2S, Q_USERS), (S2C, RS_CLASSIC)],
        [("cmd", "COM_QUERY", "SELECT id, name FROM users WHERE email = ?", None, len(Q_USERS)),
         ("res", "result_set", "OK", 2, 3, 1, len(RS_CLASSIC))],
    ),
    "ok-and-err": (
        MODERN_PRE, [(C2S, Q_INSERT), (S2C, INSERT_OK), (C2S, Q_MISSING), (S2C, MISSING)],
        [("cmd", "COM_QUERY", "INSERT INTO t (a) VALUES (?)", None, len(Q_INSERT)),
         ("res", "ok", "OK", None, None, 1, len(INSERT_OK)),
         ("cmd", "COM_QUERY", "SELECT * FROM x.y", None, len(Q_MISSING)),
         ("res", "error", "1146", None, None, 1, len(MISSING))],
    ),
    "prepare-execute-reset-close": (
        CLASSIC_PRE,
        [(C2S, PREPARE), (S2C, PREPARE_OK), (C2S, EXECUTE), (S2C, EXEC_RS), (C2S, RESET), (S2C, my.ok(1)), (C2S, CLOSE)],
        [("cmd", "COM_STMT_PREPARE", "SELECT a, b FROM t WHERE a = ?", None, len(PREPARE)),
         ("res", "prepare_ok", "OK", 2, None, 1, len(PREPARE_OK)),
         ("cmd", "COM_STMT_EXECUTE", "SELECT a, b FROM t WHERE a = ?", 1, len(EXECUTE)),
         ("res", "result_set", "OK", 2, 2, 1, len(EXEC_RS)),
         ("cmd", "COM_STMT_RESET", "SELECT a, b FROM t WHERE a = ?", 1, len(RESET)),
         ("res", "ok", "OK", None, None, 1, len(my.ok(1))),
         ("oneway", "COM_STMT_CLOSE", "SELECT a, b FROM t WHERE a = ?", 1, len(CLOSE))],
    ),
    "prepare-with-deprecate-eof-has-no-eofs": (
        MODERN_PRE,
        [(C2S, PREPARE),
         (S2C, my.packet(1, b"\x00" + struct.pack("<IHHBH", 1, 2, 1, 0, 0)) + my.column(2, "?") + my.column(3, "a") + my.column(4, "b"))],
        [("cmd", "COM_STMT_PREPARE", "SELECT a, b FROM t WHERE a = ?", None, len(PREPARE)),
         ("res", "prepare_ok", "OK", 2, None, 1,
          len(my.packet(1, b"\x00" + struct.pack("<IHHBH", 1, 2, 1, 0, 0)) + my.column(2, "?") + my.column(3, "a") + my.column(4, "b")))],
    ),
    "call-answers-with-several-results": (
        CLASSIC_PRE, [(C2S, CALL), (S2C, CALL_RS)],
        [("cmd", "COM_QUERY", "CALL p()", None, len(CALL)), ("res", "result_set", "OK", 1, 1, 2, len(CALL_RS))],
    ),
    "local-infile": (
        MODERN_PRE, [(C2S, INFILE_Q), (S2C, INFILE_REQ), (C2S, FILE), (S2C, my.ok(5, affected=3))],
        [("cmd", "COM_QUERY", "LOAD DATA LOCAL INFILE ? INTO TABLE t", None, len(INFILE_Q)),
         ("res", "ok", "OK", None, None, 1, len(INFILE_REQ + my.ok(5, affected=3)))],
    ),
    "cursor-then-fetch": (
        CLASSIC_PRE,
        [(C2S, PREPARE), (S2C, PREPARE_OK), (C2S, CURSOR_EXEC), (S2C, CURSOR_RS), (C2S, FETCH), (S2C, FETCHED)],
        [("cmd", "COM_STMT_PREPARE", "SELECT a, b FROM t WHERE a = ?", None, len(PREPARE)),
         ("res", "prepare_ok", "OK", 2, None, 1, len(PREPARE_OK)),
         ("cmd", "COM_STMT_EXECUTE", "SELECT a, b FROM t WHERE a = ?", 1, len(CURSOR_EXEC)),
         ("res", "result_set", "OK", 2, 0, 1, len(CURSOR_RS)),
         ("cmd", "COM_STMT_FETCH", "SELECT a, b FROM t WHERE a = ?", 1, len(FETCH)),
         ("res", "result_set", "OK", 0, 1, 1, len(FETCHED))],
    ),
    "ping-init-db-field-list-statistics-change-user-quit": (
        MODERN_PRE,
        [(C2S, my.command(0x0E)), (S2C, my.ok(1)), (C2S, my.command(0x02, b"shop")), (S2C, my.ok(1)),
         (C2S, FIELD_LIST), (S2C, FIELDS), (C2S, my.command(0x09)), (S2C, STATS),
         (C2S, CHANGE_USER), (S2C, SWITCH), (C2S, SWITCH_REPLY), (S2C, my.ok(3)),
         (C2S, my.command(0x0E)), (S2C, my.ok(1))],
        [("cmd", "COM_PING", None, None, 5), ("res", "ok", "OK", None, None, 1, len(my.ok(1))),
         ("cmd", "COM_INIT_DB", None, None, 9), ("res", "ok", "OK", None, None, 1, len(my.ok(1))),
         ("cmd", "COM_FIELD_LIST", None, None, len(FIELD_LIST)), ("res", "result_set", "OK", 2, 0, 1, len(FIELDS)),
         ("cmd", "COM_STATISTICS", None, None, 5), ("res", "data", "OK", None, None, 1, len(STATS)),
         ("cmd", "COM_CHANGE_USER", None, None, len(CHANGE_USER)), ("res", "ok", "OK", None, None, 1, len(SWITCH + my.ok(3))),
         ("cmd", "COM_PING", None, None, 5), ("res", "ok", "OK", None, None, 1, len(my.ok(1)))],
    ),
    "error-in-the-middle-of-rows": (
        CLASSIC_PRE,
        [(C2S, Q_USERS),
         (S2C, my.packet(1, b"\x01") + my.column(2, "id") + my.eof(3) + my.text_row(4, "1") + my.err(5, 1317, "70100", "Query execution was interrupted"))],
        [("cmd", "COM_QUERY", "SELECT id, name FROM users WHERE email = ?", None, len(Q_USERS)),
         ("res", "error", "1317", 1, 1, 1,
          len(my.packet(1, b"\x01") + my.column(2, "id") + my.eof(3) + my.text_row(4, "1") + my.err(5, 1317, "70100", "Query execution was interrupted")))],
    ),
}  # fmt: skip


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(CASES))
def test_table(name: str, mode: str) -> None:
    pre, steps, expected = CASES[name]
    msgs = run(decoder, pre + steps, mode, SENTINEL)
    pre_want = MODERN_WANT if pre is MODERN_PRE else CLASSIC_WANT
    assert summary(msgs) == pre_want + expected + (SENTINEL_SUMMARY if mode == "trailing" else [])
    assert SECRET.decode() not in repr([m.to_json() for m in msgs])


def test_three_modes_give_identical_records() -> None:
    pre, steps, _ = CASES["prepare-execute-reset-close"]
    whole = project(run(decoder, pre + steps, "whole"))
    assert project(run(decoder, pre + steps, "bytewise")) == whole


def test_ok_fields_are_fixed_two_byte_status_and_warnings() -> None:
    msgs = feed(decoder(), [*MODERN_PRE, (C2S, Q_INSERT), (S2C, INSERT_OK)])
    assert msgs[-1].to_json() == {
        "kind": "ok", "size": len(INSERT_OK), "affected_rows": 1, "last_insert_id": 42, "status_flags": 2,
        "warnings": 1,
    }  # fmt: skip
    err = feed(decoder(), [*MODERN_PRE, (C2S, Q_MISSING), (S2C, MISSING)])[-1].to_json()
    assert (err["error_code"], err["sql_state"], err["error_message"]) == (
        1146,
        "42S02",
        "Table ? doesn't exist",  # what the server quotes back is hidden (protocols/redact.py)
    )


def test_failed_login_is_one_handshake_with_its_error() -> None:
    g = my.greeting(my.CLASSIC)
    lg = my.login(my.CLASSIC, "app", SECRET, "shop", plugin="mysql_native_password")
    denied = my.err(2, 1045, "28000", "Access denied for user 'app'@'localhost' (using password: YES)")
    msgs = feed(decoder(), [(S2C, g), (C2S, lg), (S2C, denied)])
    assert summary(msgs) == [
        ("login", "app", "shop", "mysql_native_password", "pymysql", len(lg)),
        ("loginr", "8.0.36", 7, "mysql_native_password", None, "1045", len(denied)),
    ]
    assert msgs[0].record_kind() == "handshake"


def test_auth_switch_and_full_authentication_stay_in_the_handshake() -> None:
    g = my.greeting(my.MODERN)
    lg = my.login(my.MODERN, "app", SECRET, "shop")
    more = my.packet(2, b"\x01\x04")  # perform full authentication
    key_req = my.packet(3, b"\x02")
    key = my.packet(4, b"\x01-----BEGIN PUBLIC KEY-----...")
    enc = my.packet(5, b"encrypted-password-bytes")
    switch = my.packet(2, b"\xfemysql_native_password\x00" + b"s" * 20)
    for server, client, plugin in (
        (more + key + my.ok(6), key_req + enc, "caching_sha2_password"),
        (switch + my.ok(4), my.packet(3, b"p" * 20), "mysql_native_password"),
    ):
        msgs = feed(
            decoder(),
            [
                (S2C, g),
                (C2S, lg),
                (S2C, server[: len(server) // 2]),
                (C2S, client),
                (S2C, server[len(server) // 2 :]),
            ],
        )
        assert summary(msgs) == [
            ("login", "app", "shop", "caching_sha2_password", "pymysql", len(lg + client)),
            ("loginr", "8.0.36", 7, plugin, None, "OK", len(server)),
        ]
        assert "encrypted-password" not in repr([m.to_json() for m in msgs])


def test_ssl_request_stops_decoding_encrypted() -> None:
    msgs = feed(
        decoder(),
        [(S2C, my.greeting(my.MODERN | my.SSL)), (C2S, my.ssl_request(my.MODERN)), (C2S, b"\x16\x03\x01")],
    )
    assert len(msgs) == 1 and isinstance(msgs[0], StopDecoding) and msgs[0].encrypted


def test_compressed_protocol_is_unwrapped() -> None:
    caps = my.MODERN | my.COMPRESS
    g, lg = my.greeting(caps), my.login(caps, "app", SECRET, "shop")
    # after the login's OK every packet travels in compressed frames; several packets may share a frame
    c1 = my.compress_frames(Q_USERS)
    s1 = my.compress_frames(RS_MODERN[:40]) + my.compress_frames(RS_MODERN[40:], stored=True)
    c2 = my.compress_frames(Q_INSERT + my.command(0x0E), stored=True)
    s2 = my.compress_frames(INSERT_OK + my.ok(1), level=9)
    for mode in ("whole", "bytewise"):
        msgs = run(
            decoder, [(S2C, g), (C2S, lg), (S2C, my.ok(2)), (C2S, c1), (S2C, s1), (C2S, c2), (S2C, s2)], mode
        )
        assert summary(msgs)[1:] == [
            ("loginr", "8.0.36", 7, "caching_sha2_password", "zlib", "OK", len(my.ok(2))),
            ("cmd", "COM_QUERY", "SELECT id, name FROM users WHERE email = ?", None, len(Q_USERS)),
            ("res", "result_set", "OK", 2, 2, 1, len(RS_MODERN)),
            ("cmd", "COM_QUERY", "INSERT INTO t (a) VALUES (?)", None, len(Q_INSERT)),
            ("cmd", "COM_PING", None, None, 5),
            ("res", "ok", "OK", None, None, 1, len(INSERT_OK)),
            ("res", "ok", "OK", None, None, 1, len(my.ok(1))),
        ]


def test_zstd_compression_is_reported_and_decoding_stops() -> None:
    caps = my.MODERN | my.ZSTD
    d = decoder()
    msgs = feed(
        d,
        [
            (S2C, my.greeting(caps)),
            (C2S, my.login(caps, "app", SECRET)),
            (S2C, my.ok(2) + b"\x28\xb5\x2f\xfd"),
        ],
    )
    assert summary(msgs)[1][4] == "zstd" and isinstance(msgs[-1], StopDecoding)
    assert d.counters == {"unsupported_compression": 1}


def test_packets_of_16_mib_and_more_are_joined() -> None:
    sql = b"SELECT '" + b"x" * (0xFFFFFF + 100) + b"'"
    payload = b"\x03" + sql
    big_query = my.packet(0, payload[:0xFFFFFF]) + my.packet(1, payload[0xFFFFFF:])
    row_value = b"y" * (0xFFFFFF + 10)
    row = b"\xfe" + struct.pack("<Q", len(row_value)) + row_value
    rs = (my.packet(1, b"\x01") + my.column(2, "c") + my.packet(3, row[:0xFFFFFF]) + my.packet(4, row[0xFFFFFF:])
          + my.ok(5, header=0xFE))  # fmt: skip
    for cuts in ((), (3, 70000, 0xFFFFFF + 2, 0xFFFFFF + 4)):
        d = decoder(max_statement=64)
        msgs = list(feed(d, MODERN_PRE))
        for direction, data in ((C2S, big_query), (S2C, rs)):
            points = [0, *[c for c in cuts if c < len(data)], len(data)]
            for a, b in itertools.pairwise(points):
                msgs += d.receive(direction, memoryview(data[a:b]), 5)
        assert summary(msgs)[2:] == [
            ("cmd", "COM_QUERY", "SELECT ?", None, len(big_query)),
            ("res", "result_set", "OK", 1, 1, 1, len(rs)),  # the 0xFE-led 16 MiB row is a row, not the end
        ]
        assert msgs[2].to_json()["statement_truncated"] is True


def test_query_attributes_are_skipped() -> None:
    caps = my.MODERN | my.QUERY_ATTRIBUTES
    g, lg = my.greeting(caps), my.login(caps, "app", SECRET, "shop")
    # 1 attribute: null bitmap, bind flag, type (MYSQL_TYPE_VAR_STRING 253) + name, value
    attrs = (
        my.lenenc(1)
        + my.lenenc(1)
        + b"\x00"
        + b"\x01"
        + bytes([253, 0])
        + my.lstr("traceparent")
        + my.lstr("00-abc")
    )
    q1 = my.command(0x03, attrs + b"SELECT 1")
    q2 = my.command(0x03, my.lenenc(0) + my.lenenc(1) + b"SELECT 2")
    msgs = feed(
        decoder(keep_literals=True),
        [(S2C, g), (C2S, lg), (S2C, my.ok(2)), (C2S, q1), (S2C, my.ok(1)), (C2S, q2)],
    )
    assert [m.to_json().get("statement") for m in msgs[2::2]] == ["SELECT 1", "SELECT 2"]
    # joined mid-stream (capabilities unknown), attributes are recognised by their leading control bytes
    d = MysqlDecoder(DecoderContext(midstream=True, options=MysqlOptions(keep_literals=True)))
    assert d.receive(C2S, memoryview(q2), 1)[0].to_json()["statement"] == "SELECT 2"


def test_statement_ids_are_bounded_and_misses_counted() -> None:
    d = decoder()
    steps = list(CLASSIC_PRE)
    for i in range(MAX_STATEMENTS + 5):
        steps += [
            (C2S, my.command(0x16, b"SELECT %d" % i)),
            (S2C, my.packet(1, b"\x00" + struct.pack("<IHHBH", i + 1, 0, 0, 0, 0))),
        ]
    steps += [(C2S, my.command(0x17, struct.pack("<IBI", 1, 0, 1))), (S2C, my.ok(1))]  # id 1 was evicted
    msgs = feed(d, steps)
    assert len(d._statements) == MAX_STATEMENTS
    assert d.counters == {"statement_id_evictions": 5, "statement_id_misses": 1}
    assert msgs[-2].to_json().get("statement") is None and msgs[-2].to_json()["statement_id"] == 1


def test_quit_and_send_long_data_are_one_way() -> None:
    msgs = feed(
        decoder(),
        [*MODERN_PRE, (C2S, my.command(0x18, struct.pack("<IH", 1, 0) + b"data")), (C2S, my.command(0x01))],
    )
    assert [m.ROLE for m in msgs[2:]] == [Role.ONEWAY, Role.ONEWAY]
    assert [m.command for m in msgs[2:]] == ["COM_STMT_SEND_LONG_DATA", "COM_QUIT"]


def test_refused_greeting_is_a_server_error() -> None:
    refused = my.packet(
        0, b"\xff" + struct.pack("<H", 1130) + b"Host 'x' is not allowed to connect to this MySQL server"
    )
    msgs = feed(decoder(), [(S2C, refused)])
    assert summary(msgs) == [("servererr", 1130, len(refused))] and msgs[0].ROLE is Role.ONEWAY


def test_joined_mid_stream_resyncs_on_a_command_and_invents_nothing() -> None:
    d = MysqlDecoder(DecoderContext(midstream=True))
    out = list(d.receive(S2C, memoryview(my.text_row(7, "tail of an earlier result") + my.eof(8)), 1))
    out += d.receive(C2S, memoryview(Q_USERS), 2)
    out += d.receive(S2C, memoryview(RS_MODERN), 3)
    assert summary(out) == [
        ("cmd", "COM_QUERY", "SELECT id, name FROM users WHERE email = ?", None, len(Q_USERS)),
        ("res", "result_set", "OK", 2, 2, 1, len(RS_MODERN)),
    ]
    assert out[0].flags & Flag.MIDSTREAM


def test_joined_before_the_greeting_decodes_the_login() -> None:
    d = MysqlDecoder(DecoderContext(midstream=True))
    msgs = feed(d, MODERN_PRE)
    assert summary(msgs) == MODERN_WANT


def test_gap_inside_a_row_is_absorbed_and_a_header_gap_resyncs() -> None:
    d = decoder()
    feed(d, [*MODERN_PRE, (C2S, Q_USERS)])
    big = my.text_row(3, "z" * 3000)
    rs = my.packet(1, b"\x01") + my.column(2, "id") + big + my.ok(4, header=0xFE)
    cut = len(my.packet(1, b"\x01") + my.column(2, "id")) + 1500
    out = list(d.receive(S2C, memoryview(rs[:cut]), 5))
    out += d.receive_gap(S2C, 1000, 6)
    out += d.receive(S2C, memoryview(rs[cut + 1000 :]), 7)
    assert summary(out) == [("res", "result_set", "OK", 1, 1, 1, len(rs))] and out[0].flags & Flag.GAP
    out = list(d.receive(C2S, memoryview(Q_USERS[:2]), 8))
    out += d.receive_gap(C2S, 50, 9)
    assert [type(m) for m in out] == [SyncLost, SyncLost]


def test_statement_cap_and_raw_option() -> None:
    q = my.query("SELECT * FROM t WHERE note = '" + "n" * 2000 + "'")
    capped = feed(decoder(), [*MODERN_PRE, (C2S, q)])[-1].to_json()
    assert capped["statement"] == "SELECT * FROM t WHERE note = ?" and capped["statement_truncated"] is True
    raw = feed(decoder(keep_literals=True, max_statement=35), [*MODERN_PRE, (C2S, q)])[-1].to_json()
    assert raw["statement"] == "SELECT * FROM t WHERE note = 'nnnnn"


@pytest.mark.parametrize(
    ("steps", "reason"),
    [
        ([(S2C, my.packet(0, b"\x09old"))], "unsupported protocol version"),
        ([*MODERN_PRE, (C2S, my.command(0x77))], "unknown command"),
        ([*MODERN_PRE, (C2S, my.packet(3, b"\x03SELECT 1"))], "unexpected sequence id"),
        ([*MODERN_PRE, (C2S, Q_USERS), (S2C, my.packet(1, b"\xfc\x00\x50"))], "bad column count"),
        ([*CLASSIC_PRE[:2], (S2C, my.packet(2, b"\x07"))], "unexpected packet during authentication"),
    ],
)
def test_garbage_raises_decode_error(steps: list, reason: str) -> None:
    with pytest.raises(DecodeError) as exc:
        feed(decoder(), steps)
    assert exc.value.reason == reason


def test_compressed_protocol_found_when_joined_mid_stream_with_packets_straddling_frames() -> None:
    # issue 9 item 7: without the login, frames were read as packets; a stored frame's three zero bytes
    # of uncompressed length read as COM_SLEEP and no answer paired
    rs = RS_MODERN + INSERT_OK
    for cut in (3, 30, len(RS_MODERN) - 2, len(RS_MODERN) + 5):  # header, body, terminator, next answer
        steps = [
            (C2S, my.compress_frames(Q_USERS)),  # zlib
            (S2C, my.compress_frames(rs[:cut], seq=1) + my.compress_frames(rs[cut:], seq=2, stored=True)),
        ]
        qc = len(Q_INSERT) // 2
        steps[1:1] = [
            (
                C2S,
                my.compress_frames(Q_INSERT[:qc], seq=1, stored=True)
                + my.compress_frames(Q_INSERT[qc:], seq=2),
            )
        ]
        # joined mid-stream, a segment is where framing can be trusted to start (the resync rule): each
        # step whole, and each step cut after its first 40 bytes (the rest of a straddle)
        split = [(d, b[:40]) for d, b in steps] + [(d, b[40:]) for d, b in steps]
        split = [x for pair in zip(split[: len(steps)], split[len(steps) :], strict=True) for x in pair]
        for mode, order in (("whole", steps), ("split", split)):
            d = MysqlDecoder(DecoderContext(midstream=True))
            msgs = feed(d, order)
            assert summary(msgs) == [
                ("cmd", "COM_QUERY", "SELECT id, name FROM users WHERE email = ?", None, len(Q_USERS)),
                ("cmd", "COM_QUERY", "INSERT INTO t (a) VALUES (?)", None, len(Q_INSERT)),
                ("res", "result_set", "OK", 2, 2, 1, len(RS_MODERN)),
                ("res", "ok", "OK", None, None, 1, len(INSERT_OK)),
            ], (cut, mode)
            assert d.counters == {"compression_detected": 1}


def test_compressed_protocol_found_on_a_later_segment_gives_up_what_was_paired_before() -> None:
    # the first segment seen starts inside a frame: plain packets are found in it; the next segment starts
    # a frame: pairing is declared lost (SyncLost) and decoding goes on compressed
    first = my.compress_frames(Q_USERS, stored=True)
    d = MysqlDecoder(DecoderContext(midstream=True))
    msgs = feed(
        d,
        [
            (C2S, first[5:]),
            (C2S, my.compress_frames(Q_INSERT, seq=0, stored=True)),
            (S2C, my.compress_frames(INSERT_OK, seq=1)),
        ],
    )
    assert sum(isinstance(m, SyncLost) for m in msgs) == 2
    assert summary(msgs)[-2:] == [
        ("cmd", "COM_QUERY", "INSERT INTO t (a) VALUES (?)", None, len(Q_INSERT)),
        ("res", "ok", "OK", None, None, 1, len(INSERT_OK)),
    ]


def test_plain_packets_mid_stream_are_never_taken_for_frames() -> None:
    d = MysqlDecoder(DecoderContext(midstream=True))
    msgs = feed(d, [(C2S, Q_USERS), (S2C, RS_MODERN), (C2S, Q_INSERT), (S2C, INSERT_OK)])
    assert [s[0] for s in summary(msgs)] == ["cmd", "res", "cmd", "res"] and not d.counters


def _rows_answer(deprecate_eof: bool, rows: int) -> bytes:
    return my.result_set(
        ["id", "name"], [(str(i), "n" * 40) for i in range(rows)], deprecate_eof=deprecate_eof
    )


@pytest.mark.parametrize("deprecate_eof", [True, False])
def test_gap_among_the_rows_keeps_the_roundtrip_flagged_gap(deprecate_eof: bool) -> None:
    # issue 9 item 8: bytes lost in the middle of a result set (headers included) whose closing EOF/OK is
    # captured: one record, the rows counted up to the gap, flagged gap; it used to be unanswered
    pre = MODERN_PRE if deprecate_eof else CLASSIC_PRE
    rs = _rows_answer(deprecate_eof, 50)
    head = (
        my.packet(1, b"\x02")
        + my.column(2, "id")
        + my.column(3, "name")
        + (b"" if deprecate_eof else my.eof(4))
    )
    row = len(my.text_row(9, "1", "n" * 40))
    cut = len(head) + 10 * row + 7  # inside the 11th row: 10 rows seen
    for lost in (100, 30 * row):  # a few bytes (past the row: framing lost), most of the rows
        reg = Registry([MYSQL])
        s, records, stats = open_session(reg["mysql"], reg, ("10.0.0.1", 5555), ("10.0.0.2", 3306))
        for i, (d, b) in enumerate([*pre, (C2S, Q_USERS)]):
            s.data(d, memoryview(b), i)
        s.data(1, memoryview(rs[:cut]), 10)
        s.gap(1, lost, 11)
        rest = rs[cut + lost :]
        s.data(1, memoryview(rest[: len(rest) // 2]), 12)  # a segment ending inside a row
        s.data(1, memoryview(rest[len(rest) // 2 :]), 13)
        s.data(0, memoryview(Q_INSERT), 14)  # and pairing goes on
        s.data(1, memoryview(INSERT_OK), 15)
        s.close(16)
        got = [
            (r.kind, r.operation, r.response and r.response.rows, r.response and r.response.size)
            for r in records[1:]
        ]
        assert got == [
            ("roundtrip", "COM_QUERY", 10, len(rs)),
            ("roundtrip", "COM_QUERY", None, len(INSERT_OK)),
        ]
        assert records[1].all_flags & Flag.GAP and not records[2].all_flags & Flag.GAP
        assert not stats["mysql"].decode_errors and stats["mysql"].pairing.unanswered == 0


def test_gap_among_the_rows_whose_end_never_comes_is_unanswered_at_the_next_command() -> None:
    reg = Registry([MYSQL])
    s, records, _stats = open_session(reg["mysql"], reg, ("10.0.0.1", 5555), ("10.0.0.2", 3306))
    for i, (d, b) in enumerate([*MODERN_PRE, (C2S, Q_USERS)]):
        s.data(d, memoryview(b), i)
    rs = _rows_answer(True, 50)
    s.data(1, memoryview(rs[:600]), 10)
    s.gap(1, len(rs) - 600, 11)  # the terminator too
    s.data(0, memoryview(Q_INSERT), 14)
    s.data(1, memoryview(INSERT_OK), 15)
    s.close(16)
    assert [(r.kind, r.all_flags & Flag.GAP) for r in records[1:]] == [
        ("unanswered", Flag.GAP),
        ("roundtrip", Flag.GAP),  # the bytes lost were just before it
    ]
