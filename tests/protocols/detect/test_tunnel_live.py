"""A CONNECT tunnel to a server-first protocol, for real: pymysql to MariaDB through Debian's tinyproxy,
captured with tcpdump on the proxy's port only, read with only the proxy's port as an HTTP rule. The
server's greeting comes first through the tunnel; the HTTP/1 decoder hands the tunnel over with it, so the
detectors see it and MySQL decodes the rest (issue 12). The truth is what pymysql sent (its commands, logged
by the client) and the rows it got."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.dbservers import MariaDBServer, mariadb_available
from tests.helpers.live import free_port, replay, stop_process, wait_port
from tests.helpers.tapped import CAPTURE_MARKS, tcpdump
from tests.protocols.http1.test_live import TINYPROXY_CONF

pytestmark = [
    *CAPTURE_MARKS,
    pytest.mark.skipif(
        shutil.which("tinyproxy") is None, reason="tinyproxy is not installed (make test-deps)"
    ),
    pytest.mark.skipif(not mariadb_available(), reason="MariaDB is not installed (make test-deps)"),
]

# no literals: the records' statements are then the text sent, character for character
QUERIES = (
    "SELECT @@version_comment",
    "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()",
    "CREATE TABLE items (id INT PRIMARY KEY, name TEXT)",
    "SELECT id, name FROM items",
)


def _tunnel(proxy_port: int, target_port: int) -> socket.socket:
    """A socket through the proxy to 127.0.0.1:target_port (CONNECT answered 200)."""
    sock = socket.create_connection(("127.0.0.1", proxy_port), timeout=20)
    target = f"127.0.0.1:{target_port}"
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)  # one byte at a time: nothing of the greeting that follows is taken here
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.") and head.split(b" ", 2)[1] == b"200", head
    return sock


def test_pymysql_to_mariadb_through_tinyproxy_is_decoded(tmp_path: Path) -> None:
    import pymysql

    sent: list[tuple[int, str]] = []

    class Logged(pymysql.connections.Connection):  # type: ignore[misc]
        def _execute_command(self, command: int, sql: Any) -> Any:
            sent.append((command, sql if isinstance(sql, str) else sql.decode()))
            return super()._execute_command(command, sql)

    proxy_port = free_port()
    (tmp_path / "tinyproxy.conf").write_text(TINYPROXY_CONF.format(port=proxy_port, dir=tmp_path))
    server = MariaDBServer()
    proxy = subprocess.Popen(
        ["tinyproxy", "-d", "-c", str(tmp_path / "tinyproxy.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rows: list[int] = []
    try:
        wait_port(proxy_port)
        with tcpdump(proxy_port) as pcap:
            conn = Logged(
                user=server.USER, password=server.PASSWORD, database=server.DATABASE, defer_connect=True,
                autocommit=None,  # no SET AUTOCOMMIT at connect: every command is one of QUERIES
            )  # fmt: skip
            conn.connect(_tunnel(proxy_port, server.port))
            with conn.cursor() as cur:
                for sql in QUERIES:
                    cur.execute(sql)
                    rows.append(len(cur.fetchall()))
            conn.close()
        records, stderr = replay(pcap, ["--proto", f"http;{proxy_port}"])
    finally:
        stop_process(proxy, timeout=10)
        server.stop()
    statements = [sql for _, sql in sent]  # pymysql's own first (SET NAMES), then QUERIES
    assert statements[-len(QUERIES) :] == list(QUERIES) and {c for c, _ in sent} == {0x03}
    got = [(r["protocol"], r["kind"], r["operation"], r["status"]) for r in records]
    assert got == [
        ("http", "roundtrip", "CONNECT", "200"),
        ("mysql", "handshake", "Handshake", "OK"),
        *[("mysql", "roundtrip", "COM_QUERY", "OK")] * len(statements),
        ("mysql", "oneway", "COM_QUIT", None),
    ], (records, stderr)
    queries = [r for r in records if r["operation"] == "COM_QUERY"]
    assert [r["request"]["statement"] for r in queries] == statements
    selects = [r["response"]["rows"] for r in queries if r["request"]["statement"].startswith("SELECT")]
    assert selects == [n for n, sql in zip(rows, QUERIES, strict=True) if sql.startswith("SELECT")]
    assert records[1]["request"]["user"] == server.USER
