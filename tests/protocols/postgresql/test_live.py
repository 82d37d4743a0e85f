"""Live PostgreSQL: Debian's PostgreSQL 15 (no TLS) and psycopg 3 from PyPI, captured on loopback through the
AF_PACKET engine.

The truth is the client's own log: libpq's protocol trace (PQtrace), which lists every message the client
sent and received. From it the test derives, in order, what was answered — each Execute's result, each
statement result of a simple Query, each extended-query cycle without an Execute, each Execute the server
skipped after an error — with command tags, SQLSTATEs and DataRow counts; packetd must report exactly that,
per connection, and nothing else. The connections use sslmode=prefer against a server without TLS: the
SSLRequest is refused with 'N' and decoding goes on (the reference stalled there).
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
from typing import Any

import pytest

from tests.helpers.dbservers import PostgresServer, postgres_available
from tests.helpers.live import capture, live_marks, live_traffic

psycopg = pytest.importorskip("psycopg")

pytestmark = live_marks((postgres_available(), "PostgreSQL"))

_LINE = re.compile(r"^(F|B)\t\S+\t(\w+)\t?(.*)$")


def expected_from_trace(trace: str) -> list[tuple[str, str, str | None, int]]:
    """What libpq saw answered, in order: (record kind, operation, tag or SQLSTATE, DataRows).

    The backend answers frontend messages in order: acknowledgements (ParseComplete, BindComplete,
    NoData / RowDescription for a Describe, CloseComplete) retire the oldest pending message; a result
    (CommandComplete, EmptyQueryResponse, PortalSuspended, ErrorResponse) answers the oldest pending one;
    after an extended-query error the server skips everything up to Sync (§55.2.3).
    """
    out: list[tuple[str, str, str | None, int]] = []
    pending: list[str] = []
    rows = 0
    first_of_cycle: str | None = None
    answered = skipping = False
    for line in trace.splitlines():
        m = _LINE.match(line)
        if m is None:
            continue
        side, msg, rest = m.groups()
        if side == "F":
            if msg not in ("Parse", "Bind", "Describe", "Execute", "Close", "Sync", "Query"):
                continue
            if skipping and msg != "Sync":
                if msg == "Execute":
                    out.append(("unanswered", "Execute", None, 0))
                continue
            skipping = False
            if first_of_cycle is None:
                first_of_cycle = msg
            pending.append(msg)
        elif msg in ("ParseComplete", "BindComplete", "CloseComplete", "NoData") or (
            msg == "RowDescription" and pending and pending[0] == "Describe"
        ):
            pending.pop(0)
        elif msg == "DataRow":
            rows += 1
        elif msg in ("CommandComplete", "EmptyQueryResponse", "PortalSuspended", "ErrorResponse"):
            head = pending[0]
            if msg == "ErrorResponse":
                status: str | None = re.search(r'C "(\w+)"', rest).group(1)  # type: ignore[union-attr]
            elif msg == "CommandComplete":
                status = re.match(r'\s*"(.*)"', rest).group(1)  # type: ignore[union-attr]
            else:
                status = None
            out.append(("roundtrip", head, status, rows))
            rows = 0
            answered = True
            if head == "Query":
                continue
            if head != "Sync":
                pending.pop(0)
            if msg == "ErrorResponse":
                while pending and pending[0] != "Sync":
                    if pending.pop(0) == "Execute":
                        out.append(("unanswered", "Execute", None, 0))
                skipping = not pending
        elif msg == "ReadyForQuery":
            head = pending.pop(0)
            if head == "Sync" and not answered:
                out.append(("roundtrip", first_of_cycle or "Sync", None, 0))
            first_of_cycle = None
            answered = False
            rows = 0
    return out


def client_port(conn: Any) -> int:
    with socket.socket(fileno=os.dup(conn.fileno())) as s:
        return int(s.getsockname()[1])


def traced(conn: Any, path: str) -> Any:
    f = open(path, "w")  # noqa: SIM115
    conn.pgconn.trace(f.fileno())
    conn.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS | psycopg.pq.Trace.REGRESS_MODE)
    return f


def workload(server: PostgresServer, workdir: str) -> list[dict]:
    """Run the scripted workload; per connection: its client port and libpq's trace."""
    conns = []
    # connection 1: extended protocol, prepared statements, pipeline mode, COPY, a big SELECT, errors
    conn = psycopg.connect(server.dsn(sslmode="prefer", application_name="live-1"), autocommit=True)
    path = os.path.join(workdir, "trace1.txt")
    f = traced(conn, path)
    conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text, price numeric)")
    conn.execute("INSERT INTO items VALUES (%s, %s, %s)", (1, "apple", 1.5))
    for i in range(2, 5):  # prepared: the first execution prepares the statement (Parse ... Sync)
        conn.execute("INSERT INTO items VALUES (%s, %s, %s)", (i, f"item {i}", i * 2), prepare=True)
    assert conn.execute("SELECT name FROM items WHERE id = %s", (3,), prepare=True).fetchone() == ("item 3",)
    with conn.pipeline():
        for i in range(10, 40):
            conn.execute("INSERT INTO items VALUES (%s, %s, 0)", (i, f"bulk {i}"))
        cur = conn.execute("SELECT count(*) FROM items")
    assert cur.fetchone() == (34,)
    with conn.cursor().copy("COPY items (id, name) FROM STDIN") as copy:
        for i in range(100, 200):
            copy.write_row((i, f"copied {i}"))
    with conn.cursor().copy("COPY (SELECT id FROM items ORDER BY id) TO STDOUT") as copy:
        copied = sum(1 for _ in copy.rows())
    assert copied == 134
    rows = conn.execute("SELECT g, md5(g::text) FROM generate_series(1, 10000) g").fetchall()
    assert len(rows) == 10000
    with pytest.raises(psycopg.errors.DivisionByZero):
        conn.execute("SELECT 1 / 0")
    with pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("INSERT INTO items VALUES (1, 'again', 0)")
    # an error inside a pipeline: the server skips the rest of the cycle
    with pytest.raises(psycopg.errors.UndefinedTable), conn.pipeline():
        conn.execute("INSERT INTO items VALUES (500, 'before', 0)")
        conn.execute("SELECT * FROM missing_table")
        conn.execute("INSERT INTO items VALUES (501, 'skipped', 0)")
    # simple query protocol with several statements in one string
    with psycopg.ClientCursor(conn) as cc:
        cc.execute("UPDATE items SET price = 2 WHERE id < 5; DELETE FROM items WHERE id >= 100; SELECT 42")
    conns.append({"port": client_port(conn), "trace_path": path})
    conn.pgconn.untrace()
    f.close()
    conn.close()
    # connection 2: a second client, a failing statement first
    conn = psycopg.connect(server.dsn(sslmode="prefer", application_name="live-2"), autocommit=True)
    path = os.path.join(workdir, "trace2.txt")
    f = traced(conn, path)
    with pytest.raises(psycopg.errors.UndefinedColumn):
        conn.execute("SELECT nope FROM items")
    # 34 rows: the pipeline that failed ran in one implicit transaction, rolled back; the DELETE took the rest
    assert conn.execute("SELECT count(*) FROM items").fetchone() == (34,)
    conns.append({"port": client_port(conn), "trace_path": path})
    conn.pgconn.untrace()
    f.close()
    conn.close()
    for c in conns:
        with open(c["trace_path"]) as t:
            c["trace"] = t.read()
    return conns


@pytest.fixture(scope="module")
def traffic() -> dict:
    server = PostgresServer()
    workdir = tempfile.mkdtemp(prefix="packetd-pg-live-")
    run = live_traffic(server, f"postgresql;{server.port}", lambda: workload(server, workdir))
    return {"conns": run.result, "records": run.records, "stderr": run.stderr}


def _observed(records: list[dict], port: int) -> list[tuple[str, str, str | None, int]]:
    out = []
    for r in records:
        if r["client"]["port"] != port or r["kind"] not in ("roundtrip", "unanswered"):
            continue
        resp = r["response"] or {}
        status = resp.get("tag") if r["status"] == "OK" else r["status"]
        out.append((r["kind"], r["operation"], status, resp.get("data_rows", 0)))
    return out


def test_every_answer_libpq_saw_appears_once_in_order(traffic: dict) -> None:
    for conn in traffic["conns"]:
        expected = expected_from_trace(conn["trace"])
        assert len(expected) > 1
        assert _observed(traffic["records"], conn["port"]) == expected


def test_workload_shapes(traffic: dict) -> None:
    records = [r for r in traffic["records"] if r["client"]["port"] == traffic["conns"][0]["port"]]
    tags = [(r["response"] or {}).get("tag") for r in records]
    assert "SELECT 10000" in tags and "COPY 100" in tags and "COPY 134" in tags
    big = next(r for r in records if (r["response"] or {}).get("tag") == "SELECT 10000")
    assert big["response"]["data_rows"] == 10000 and big["response"]["rows"] == 10000
    assert big["request"]["statement"] == "SELECT g, md5(g::text) FROM generate_series(?) g"
    copy_in = next(r for r in records if (r["response"] or {}).get("tag") == "COPY 100")
    assert copy_in["request"]["copy"]["messages"] >= 1 and copy_in["response"]["copy"]["direction"] == "in"
    copy_out = next(r for r in records if (r["response"] or {}).get("tag") == "COPY 134")
    assert copy_out["response"]["copy"] == {
        "direction": "out",
        "messages": 134,
        "bytes": copy_out["response"]["copy"]["bytes"],
    }
    prepared = [
        r for r in records if r["request"] and r["request"].get("statement_name", "").startswith("_pg3_")
    ]
    assert prepared and all(
        r["request"]["statement"].startswith(("INSERT INTO items", "SELECT name")) for r in prepared
    )
    statements = [r["request"]["statement"] for r in records if r["operation"] == "Query"]
    assert statements[-3:] == [
        "UPDATE items SET price = ? WHERE id < ?",
        "DELETE FROM items WHERE id >= ?",
        "SELECT ?",
    ]
    errors = {r["status"]: r["response"]["error"]["message"] for r in records if r["error"]}
    assert errors.keys() == {"22012", "23505", "42P01"} and errors["22012"] == "division by zero"


def test_handshakes_with_refused_ssl_and_terminates(traffic: dict) -> None:
    for i, conn in enumerate(traffic["conns"], 1):
        mine = [r for r in traffic["records"] if r["client"]["port"] == conn["port"]]
        (hs,) = [r for r in mine if r["kind"] == "handshake"]
        assert (
            hs["request"]["user"] == PostgresServer.USER
            and hs["request"]["database"] == PostgresServer.DATABASE
        )
        assert hs["request"]["application_name"] == f"live-{i}" and hs["request"]["ssl_request"] is True
        assert hs["response"]["encryption_answer"] == "N" and hs["response"]["auth"] == "SCRAM-SHA-256"
        assert hs["response"]["server_version"].startswith("15.") and hs["status"] == "OK"
        assert PostgresServer.PASSWORD not in str(hs)
        assert [r["operation"] for r in mine if r["kind"] == "oneway"] == ["Terminate"]
    assert "0 decode resets" in traffic["stderr"] and "0 orphan responses" in traffic["stderr"], traffic[
        "stderr"
    ]


def test_pipeline_twice_the_bound_never_shifts_the_pairing() -> None:
    """Issue 9 item 15: 2 x MAX_PENDING statements in one psycopg pipeline, headed by pg_sleep(3) so that
    the server answers nothing until they are all on the wire (one second was too little for psycopg to
    send them on a loaded 2-core machine: the server then answered within the bound and nothing overflowed): INSERTs whose tags count i % 5 + 1 rows,
    then SELECTs of i % 7 + 1 rows. The bound counts frontend messages (Parse/Bind/Describe/Execute per
    statement), so the pipeline overflows it many times over.

    The truth is libpq's trace: every record packetd reports must be, in order, what libpq saw answered
    (a shifted pairing gives a statement another's tag or row count); beyond the bound the statements are
    counted, not recorded; after the pipeline's cycle a statement is tracked and paired again.
    """
    from packetd.protocols.base import MAX_PENDING

    server = PostgresServer()
    workdir = tempfile.mkdtemp(prefix="packetd-pg-deep-")
    path = os.path.join(workdir, "trace.txt")
    try:
        with capture(
            ["--ifaces", "^lo$", "--proto", f"postgresql;{server.port}", "--block-num", "256"]
        ) as cap:
            conn = psycopg.connect(server.dsn(), autocommit=True)
            f = traced(conn, path)
            conn.execute("CREATE TABLE t (v int)")
            # megabytes the server reads at once make the kernel grow its receive window (autotuning):
            # then the pipeline below reaches the wire whole while pg_sleep holds the server
            for _ in range(4):
                assert conn.execute("SELECT length(%s)", ("x" * 4_000_000,)).fetchone() == (4_000_000,)
            with conn.pipeline():
                conn.execute("SELECT pg_sleep(3)")
                for i in range(MAX_PENDING):
                    conn.execute("INSERT INTO t SELECT generate_series(1, %s)", (i % 5 + 1,))
                for i in range(MAX_PENDING):
                    cur = conn.execute("SELECT generate_series(1, %s)", (i % 7 + 1,))
            assert len(cur.fetchall()) == (MAX_PENDING - 1) % 7 + 1
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (
                sum(i % 5 + 1 for i in range(MAX_PENDING)),
            )
            port = client_port(conn)
            conn.pgconn.untrace()
            f.close()
            conn.close()
            records = cap.stop()
        stderr = cap.stderr.decode(errors="replace")
    finally:
        server.stop()
    with open(path) as t:
        expected = expected_from_trace(t.read())
    observed = _observed(records, port)
    assert len(expected) == 2 * MAX_PENDING + 7  # CREATE, 4 warm-ups, pg_sleep and the pipeline, the count
    k = len(observed) - 1
    assert MAX_PENDING // 5 <= k < len(expected) - 1
    assert observed[:k] == expected[:k]  # the tracked statements, each with its own answer
    assert observed[k:] == expected[-1:]  # tracked and paired again after the pipeline's cycle
    assert re.search(r"pending_overflow=\d+", stderr) and "untracked_replies=1" in stderr, stderr
    assert "0 orphan responses" in stderr and "0 decode resets" in stderr, stderr


def test_a_start_up_abandoned_at_the_password_prompt_is_a_handshake() -> None:
    """Issue 9 item 17: libpq with no password reads the server's SASL authentication request and closes
    (psql then prompts and connects again). The truth is the client's error and libpq's own trace of the
    one backend message it read; packetd reports one handshake record, not an unanswered request."""
    server = PostgresServer()
    try:
        with capture(["--ifaces", "^lo$", "--proto", f"postgresql;{server.port}"]) as cap:
            dsn = f"host=127.0.0.1 port={server.port} user={server.USER} dbname={server.DATABASE} sslmode=disable"
            with pytest.raises(psycopg.OperationalError, match="no password supplied"):
                psycopg.connect(dsn, application_name="no-password", connect_timeout=10)
            records = cap.stop()
        stderr = cap.stderr.decode(errors="replace")
    finally:
        server.stop()
    (r,) = [r for r in records if r["protocol"] == "postgresql"]
    assert (r["kind"], r["operation"], r["status"]) == ("handshake", "StartupMessage", "OK"), r
    assert r["request"]["application_name"] == "no-password" and r["request"]["user"] == server.USER
    # AuthenticationSASL: 'R', length, 10, "SCRAM-SHA-256\0" (+ "SCRAM-SHA-256-PLUS\0" with TLS only), "\0"
    assert r["response"]["auth"] == "sasl" and r["response"]["size"] == 1 + 4 + 4 + len(b"SCRAM-SHA-256\0\0")
    assert r["flags"] == ["truncated"] and "0 decode resets" in stderr, stderr
