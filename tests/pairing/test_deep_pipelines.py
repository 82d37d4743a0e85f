"""Deep pipelines (issue 9 item 15): more requests in flight than `MAX_PENDING` never shift the pairing.

Each case sends 2 x MAX_PENDING requests before the first answer, through a real Session (decoder +
matcher), crafted on the wire exactly as the clients frame them. The truth is the exchange itself: request
i is answered by reply i, and each reply names the request it answers (Redis: a SET's `+OK` vs a GET's
bulk string carrying its key; PostgreSQL: the command tag; MySQL: the affected-row count). Every record
that comes out must pair a request with its own reply; the requests beyond the bound are counted, not
recorded, and their replies are dropped (counted), never paired with a later request.
"""

from __future__ import annotations

from packetd.pairing.roundtrip import Roundtrip
from packetd.pairing.session import ProtocolStats, Session
from packetd.protocols.base import MAX_PENDING, Kind
from packetd.protocols.redis.options import RedisOptions
from packetd.protocols.registry import POSTGRESQL, REDIS, Registry
from tests.helpers import mywire as my
from tests.helpers import pgwire as pg
from tests.helpers.decoding import open_session
from tests.pairing.test_session_db import mysql_session

N = 2 * MAX_PENDING


def resp_cmd(*words: bytes) -> bytes:
    return b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)


def test_the_bound_is_what_real_pipelines_reach() -> None:
    assert MAX_PENDING >= 10_000


def redis_session() -> tuple[Session, list[Roundtrip], dict[str, ProtocolStats]]:
    reg = Registry([REDIS])
    records: list[Roundtrip] = []
    stats: dict[str, ProtocolStats] = {}
    s = Session(
        reg["redis"], reg, ("10.0.0.1", 5555), ("10.0.0.2", 6379), records.append,
        lambda name: stats.setdefault(name, ProtocolStats()), lambda name: RedisOptions(capture_keys=True),
        False,
    )  # fmt: skip
    return s, records, stats


def elements(i: int) -> int:
    """The length of the list under key k<i>: what LRANGE k<i> 0 -1 answers, different for neighbours."""
    return i % 97 + 1


def send(s: Session, direction: int, data: bytes, ts: int) -> None:
    for i in range(0, len(data), 65_000):  # segments as loopback TCP carries them
        s.data(direction, memoryview(data[i : i + 65_000]), ts + i)


def test_redis_pipeline_twice_the_bound_never_shifts() -> None:
    s, records, stats = redis_session()
    send(s, 0, b"".join(resp_cmd(b"LRANGE", b"k%d" % i, b"0", b"-1") for i in range(N)), 1_000)
    send(s, 1, b"".join(b"*%d\r\n" % elements(i) + b":7\r\n" * elements(i) for i in range(N)), 10**9)
    # the queue is free again: the next command is tracked and paired
    s.data(0, memoryview(resp_cmd(b"LRANGE", b"k%d" % N, b"0", b"-1")), 2 * 10**9)
    s.data(1, memoryview(b"*%d\r\n" % elements(N) + b":7\r\n" * elements(N)), 2 * 10**9 + 1)
    s.close(3 * 10**9)
    paired = [(r.request.key, r.response.elements) for r in records]  # type: ignore[union-attr]
    tracked = [*range(MAX_PENDING), N]
    assert paired == [(f"k{i}", elements(i)) for i in tracked]
    assert all(r.kind == Kind.ROUNDTRIP for r in records)
    st = stats["redis"]
    # every command beyond the bound is counted as not tracked, and its reply as dropped
    assert st.counters.get("pending_overflow") == N - MAX_PENDING
    assert st.counters.get("untracked_replies") == N - MAX_PENDING
    assert st.pairing.orphans == 0 and st.pairing.unanswered == 0 and not st.decode_errors


def test_postgresql_pipeline_twice_the_bound_never_shifts() -> None:
    """psycopg pipeline mode's shape: Parse/Bind/Execute per statement, one Sync at the end (the bound
    counts frontend messages: 3 per statement here)."""
    reg = Registry([POSTGRESQL])
    s, records, stats = open_session(reg["postgresql"], reg, ("10.0.0.1", 5555), ("10.0.0.2", 5432))
    s.data(0, memoryview(pg.startup(user="u")), 1)
    s.data(1, memoryview(pg.auth(0) + pg.ready()), 2)
    sql = [f"INSERT INTO t VALUES ({i})" for i in range(N)]
    send(s, 0, b"".join(pg.parse("", q) + pg.bind("", "") + pg.execute() for q in sql) + pg.SYNC, 1_000)
    # each INSERT's tag carries its own row count, i: a shifted pairing shows at once
    answers = b"".join(pg.PARSE_COMPLETE + pg.BIND_COMPLETE + pg.complete(f"INSERT 0 {i}") for i in range(N))
    send(s, 1, answers + pg.ready(), 10**9)
    s.data(0, memoryview(pg.query("SELECT 42")), 2 * 10**9)  # tracked again after the cycle ended
    s.data(
        1,
        memoryview(pg.row_description("c") + pg.data_row(b"42") + pg.complete("SELECT 1") + pg.ready()),
        2 * 10**9 + 1,
    )
    s.close(3 * 10**9)
    tracked = MAX_PENDING // 3  # whole statements within the bound
    got = [(r.kind, r.request.statement, r.response.rows if r.response else None) for r in records[1:]]  # type: ignore[union-attr]
    assert got == [(Kind.ROUNDTRIP, sql[i].encode(), i) for i in range(tracked)] + [
        (Kind.ROUNDTRIP, b"SELECT 42", 1)
    ]
    st = stats["postgresql"]
    assert st.counters.get("pending_overflow") == 3 * N + 1 - MAX_PENDING  # + the Sync
    assert st.counters.get("untracked_replies") == 1  # one cycle (its ReadyForQuery) dropped
    assert st.pairing.orphans == 0 and not st.decode_errors


def test_mysql_pipeline_twice_the_bound_never_shifts() -> None:
    s, records, stats = mysql_session()
    sql = [f"UPDATE t SET v = v + 1 LIMIT {i}" for i in range(N)]
    send(s, 0, b"".join(my.query(q) for q in sql), 1_000)
    # each answer's affected-row count is i (and every 7th is a result set): a shift shows at once
    answers = b"".join(
        my.result_set(["v"], [(str(i),)], deprecate_eof=True) if i % 7 == 0 else my.ok(1, affected=i)
        for i in range(N)
    )
    send(s, 1, answers, 10**9)
    s.data(0, memoryview(my.query("SELECT 1")), 2 * 10**9)
    s.data(1, memoryview(my.ok(1, affected=4242)), 2 * 10**9 + 1)
    s.close(3 * 10**9)
    got = [(r.request.statement, r.response.affected_rows, r.response.rows) for r in records[1:]]  # type: ignore[union-attr]
    want = [
        (sql[i].encode(), None if i % 7 == 0 else i, 1 if i % 7 == 0 else None) for i in range(MAX_PENDING)
    ]
    assert got == [*want, (b"SELECT 1", 4242, None)]
    assert all(r.kind == Kind.ROUNDTRIP for r in records[1:])
    st = stats["mysql"]
    assert st.counters.get("pending_overflow") == N - MAX_PENDING
    assert st.counters.get("untracked_replies") == N - MAX_PENDING
    assert st.pairing.orphans == 0 and not st.decode_errors
