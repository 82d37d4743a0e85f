"""Live MySQL protocol: Debian's MariaDB server with PyMySQL and mysql-connector-python from PyPI (server-side
prepared statements, the compressed protocol), captured on loopback through the AF_PACKET engine.

The truth is the clients' own log: every command each library put on the wire (its command-sending method
is wrapped, so the commands it sends by itself — SET, COM_QUIT, COM_STMT_CLOSE — are in it) and what the
application saw come back (rows fetched, affected rows, error numbers). packetd must report exactly those
commands, in order, per connection, answered as the client saw, and nothing else.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import pytest

from tests.helpers.dbservers import MariaDBServer, mariadb_available
from tests.helpers.live import capture, live_marks, live_traffic

pymysql = pytest.importorskip("pymysql")
connector = pytest.importorskip("mysql.connector")

pytestmark = live_marks((mariadb_available(), "MariaDB"))

PYMYSQL_NAMES = {
    v: f"COM_{k[4:] if k.startswith('COM_') else k}"
    for k, v in vars(pymysql.constants.COMMAND).items()
    if k.isupper()
}
# vars(), not getattr(): the class warns on access to its deprecated names
CONNECTOR_NAMES = {
    v: f"COM_{k}"
    for k, v in vars(connector.constants.ServerCmd).items()
    if k.isupper() and isinstance(v, int)
}


class Log:
    """Per client port: the commands sent, each with what the application saw (None: not looked at)."""

    def __init__(self) -> None:
        self.commands: dict[int, list[dict[str, Any]]] = {}
        self.logins: list[dict[str, Any]] = []

    def sent(self, port: int, name: str) -> None:
        self.commands.setdefault(port, []).append({"command": name})

    def saw(self, port: int, **outcome: Any) -> None:
        self.commands[port][-1].update(outcome)


LOG = Log()


def _port(sock: Any) -> int:
    return int(sock.getsockname()[1])


class LoggedPyMySQL(pymysql.connections.Connection):  # type: ignore[misc]
    def _execute_command(self, command: int, sql: Any) -> Any:
        LOG.sent(_port(self._sock), PYMYSQL_NAMES[command])
        return super()._execute_command(command, sql)

    def close(self) -> None:
        LOG.sent(_port(self._sock), "COM_QUIT")  # close() writes COM_QUIT itself
        super().close()


def _patch_connector() -> None:
    cls = connector.connection.MySQLConnection
    original = cls._send_cmd

    def logged(self: Any, command: int, *args: Any, **kwargs: Any) -> Any:
        LOG.sent(_port(self._socket.sock), CONNECTOR_NAMES[command])
        return original(self, command, *args, **kwargs)

    cls._send_cmd = logged
    quit_ = cls.cmd_quit

    def logged_quit(self: Any) -> Any:
        LOG.sent(_port(self._socket.sock), "COM_QUIT")  # cmd_quit writes its packet itself
        return quit_(self)

    cls.cmd_quit = logged_quit


def run(conn: Any, cur: Any, sql: str, args: Any = None, many: bool = False) -> None:
    """Execute through PyMySQL and log what the application saw."""
    port = _port(conn._sock)
    try:
        if many:
            cur.executemany(sql, args)
        else:
            cur.execute(sql, args)
    except pymysql.MySQLError as exc:
        LOG.saw(port, error=exc.args[0])
        return
    if cur.description is not None:
        LOG.saw(port, rows=len(cur.fetchall()))
    else:
        LOG.saw(port, affected=cur.rowcount)


def pymysql_workload(server: MariaDBServer, workdir: str) -> None:
    conn = LoggedPyMySQL(
        host="127.0.0.1", port=server.port, user=server.USER, password=server.PASSWORD, database=server.DATABASE,
        local_infile=True, autocommit=True, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS,
    )  # fmt: skip
    LOG.logins.append({"port": _port(conn._sock), "compression": None, "error": None})
    cur = conn.cursor()
    run(
        conn,
        cur,
        "CREATE TABLE items (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(64), price DECIMAL(8,2))",
    )
    run(conn, cur, "INSERT INTO items (name, price) VALUES (%s, %s)", ("apple", 1.5))
    run(
        conn,
        cur,
        "INSERT INTO items (name, price) VALUES (%s, %s)",
        [(f"item {i}", i) for i in range(50)],
        many=True,
    )
    run(conn, cur, "SELECT seq, seq * 2 FROM seq_1_to_10000")
    run(conn, cur, "SELECT * FROM missing_table")
    run(conn, cur, "INSERT INTO items (id, name) VALUES (1, 'duplicate')")
    path = os.path.join(workdir, "items.csv")
    with open(path, "w") as f:
        f.writelines(f"{1000 + i},loaded {i},{i}\n" for i in range(20))
    run(conn, cur, f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE items FIELDS TERMINATED BY ','")
    run(conn, cur, "CREATE PROCEDURE two() BEGIN SELECT 1; SELECT id FROM items WHERE id < 3; END")
    port = _port(conn._sock)
    cur.execute("CALL two()")
    sets = 0
    while True:
        if cur.description is not None:
            cur.fetchall()
        sets += 1
        if not cur.nextset():
            break
    LOG.saw(port, results=sets)
    conn.ping(reconnect=False)
    conn.select_db(server.DATABASE)
    conn.close()
    with pytest.raises(pymysql.err.OperationalError) as exc:
        LoggedPyMySQL(host="127.0.0.1", port=server.port, user=server.USER, password="wrong")
    LOG.logins.append({"port": None, "compression": None, "error": exc.value.args[0]})


def connector_workload(server: MariaDBServer, compress: bool) -> None:
    conn = connector.connect(
        host="127.0.0.1", port=server.port, user=server.USER, password=server.PASSWORD, database=server.DATABASE,
        use_pure=True, compress=compress, autocommit=True, ssl_disabled=True,
    )  # fmt: skip
    port = _port(conn._socket.sock)
    LOG.logins.append({"port": port, "compression": "zlib" if compress else None, "error": None})
    cur = conn.cursor(prepared=True)
    for i in (1, 2, 3):
        cur.execute("SELECT id, name FROM items WHERE id <= %s", (i,))
        LOG.saw(port, rows=len(cur.fetchall()))
    cur.execute("UPDATE items SET price = %s WHERE id > %s", (9, 1000))
    LOG.saw(port, affected=cur.rowcount)
    cur.close()
    plain = conn.cursor()
    # mysql-connector-python's pure-Python compressed reader fails on MariaDB's 10 000-row answer (a
    # struct.error inside the client, without packetd): 3000 rows there
    plain.execute("SELECT seq FROM seq_1_to_3000" if compress else "SELECT seq FROM seq_1_to_10000")
    LOG.saw(port, rows=len(plain.fetchall()))
    with pytest.raises(connector.Error) as exc:
        plain.execute("SELECT nope FROM items")
    LOG.saw(port, error=exc.value.errno)
    plain.close()
    conn.close()


@pytest.fixture(scope="module")
def traffic() -> dict:
    server = MariaDBServer()
    workdir = tempfile.mkdtemp(prefix="packetd-mysql-live-")
    _patch_connector()

    def work() -> None:
        pymysql_workload(server, workdir)
        connector_workload(server, compress=False)
        connector_workload(server, compress=True)

    run = live_traffic(server, f"mysql;{server.port}", work)
    return {"records": run.records, "stderr": run.stderr}


def test_every_command_appears_once_in_order_answered_as_the_client_saw(traffic: dict) -> None:
    records = traffic["records"]
    assert len(LOG.commands) == 3
    for port, commands in LOG.commands.items():
        mine = [r for r in records if r["client"]["port"] == port and r["kind"] != "handshake"]
        assert [r["operation"] for r in mine] == [c["command"] for c in commands]
        for rec, cmd in zip(mine, commands, strict=True):
            resp = rec["response"]
            if cmd["command"] in ("COM_QUIT", "COM_STMT_CLOSE"):
                assert rec["kind"] == "oneway" and resp is None
                continue
            assert rec["kind"] == "roundtrip", rec
            if "error" in cmd:
                assert rec["status"] == str(cmd["error"]) and rec["error"]
            else:
                assert rec["status"] == "OK", rec
            if "rows" in cmd:
                assert resp["rows"] == cmd["rows"], (rec, cmd)
            if "affected" in cmd:
                assert resp["affected_rows"] == cmd["affected"], (rec, cmd)
            if "results" in cmd:
                # PyMySQL's nextset() walks the two result sets and the CALL's final OK
                assert resp["results"] == cmd["results"] == 3
    assert not [r for r in records if r["kind"] == "unanswered"]


def test_statements_prepared_and_local_infile(traffic: dict) -> None:
    records = traffic["records"]
    executes = [r for r in records if r["operation"] == "COM_STMT_EXECUTE"]
    assert len(executes) == 8  # 4 executions on each mysql-connector connection
    assert {r["request"]["statement"] for r in executes} == {
        "SELECT id, name FROM items WHERE id <= ?",
        "UPDATE items SET price = ? WHERE id > ?",
    }
    assert all(r["response"].get("binary") for r in executes if r["response"]["kind"] == "result_set")
    infile = next(r for r in records if r["request"] and "LOAD DATA" in r["request"].get("statement", ""))
    with_file = sum(len(f"{1000 + i},loaded {i},{i}\n") for i in range(20))
    assert infile["response"]["local_infile_bytes"] == with_file and infile["response"]["affected_rows"] == 20
    assert (
        infile["request"]["statement"] == "LOAD DATA LOCAL INFILE ? INTO TABLE items FIELDS TERMINATED BY ?"
    )


def test_logins_are_handshakes(traffic: dict) -> None:
    records = traffic["records"]
    handshakes = [r for r in records if r["kind"] == "handshake"]
    assert len(handshakes) == len(LOG.logins)
    for login in LOG.logins:
        if login["port"] is None:
            (failed,) = [h for h in handshakes if h["error"]]
            assert failed["status"] == str(login["error"]) == "1045"
            continue
        (hs,) = [h for h in handshakes if h["client"]["port"] == login["port"]]
        assert (
            hs["request"]["user"] == MariaDBServer.USER
            and hs["request"]["database"] == MariaDBServer.DATABASE
        )
        assert hs["response"]["compression"] == login["compression"] and hs["status"] == "OK"
        assert (
            hs["response"]["server_version"].endswith("MariaDB-0+deb12u1")
            or "MariaDB" in hs["response"]["server_version"]
        )
    assert MariaDBServer.PASSWORD not in str(records)
    assert "0 decode resets" in traffic["stderr"] and "0 orphan responses" in traffic["stderr"], traffic[
        "stderr"
    ]


def test_compressed_connection_joined_mid_stream_is_unwrapped() -> None:
    """Issue 9 item 7: mysql-connector-python with compress=True, connected before the capture starts, so
    packetd never sees the login that negotiated compression. MariaDB's answers are large enough that its
    MySQL packets straddle compressed frames. The truth is what the client fetched, query by query; each
    must be one COM_QUERY roundtrip with those rows (before: frames read as packets, a stored frame's
    zero length bytes taken for COM_SLEEP, the queries unanswered)."""
    server = MariaDBServer()
    try:
        conn = connector.connect(
            host="127.0.0.1", port=server.port, user=server.USER, password=server.PASSWORD,
            database=server.DATABASE, use_pure=True, compress=True, autocommit=True, ssl_disabled=True,
        )  # fmt: skip
        cur = conn.cursor()
        seen: list[int] = []
        with capture(["--ifaces", "^lo$", "--proto", f"mysql;{server.port}"]) as cap:
            for sql in (
                "SELECT seq, REPEAT('y', 200) FROM seq_1_to_2000",
                "SELECT REPEAT('x', 100000)",
                "SELECT 1",
            ):
                cur.execute(sql)
                seen.append(len(cur.fetchall()))
            cur.close()
            conn.close()
            records = cap.stop()
        stderr = cap.stderr.decode(errors="replace")
    finally:
        server.stop()
    queries = [r for r in records if r["operation"] == "COM_QUERY"]
    assert [(r["kind"], r["status"], r["response"]["rows"]) for r in queries] == [
        ("roundtrip", "OK", n) for n in seen
    ], records
    assert [r["request"]["statement"] for r in queries] == [
        "SELECT seq, REPEAT(?) FROM seq_1_to_2000",
        "SELECT REPEAT(?)",
        "SELECT ?",
    ]
    assert [r["operation"] for r in records if r["operation"] != "COM_QUERY"] == ["COM_QUIT"]
    assert "compression_detected=1" in stderr and "0 decode resets" in stderr, stderr
