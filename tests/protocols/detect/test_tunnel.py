"""An HTTP CONNECT tunnel carrying what the HTTP/1 decoder does not follow (not TLS, HTTP/2 or HTTP/1) is
offered to the detectors and handed to the protocol they name; a tunnel of nothing known stops decoding.

Before: every such tunnel stopped decoding at its first bytes. The truth is the bytes written here: the
Redis commands sent through the tunnel and their replies. A server-first protocol (MySQL: its greeting
comes first) is handed over with the server's bytes as soon as they come, before the client answers them:
the detectors see the greeting, the MySQL decoder the exchange in its order (the live test with tinyproxy
and MariaDB: test_tunnel_live.py).
"""

from __future__ import annotations

import pytest

from packetd.protocols.registry import REGISTRY
from tests.helpers import mywire
from tests.helpers.decoding import open_session

CONNECT = b"CONNECT cache.internal:6379 HTTP/1.1\r\nHost: cache.internal:6379\r\n\r\n"
ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"
C, S = ("10.0.0.1", 40000), ("10.0.0.2", 3128)


def test_tunnel_carrying_redis_is_handed_to_redis() -> None:
    s, records, stats = open_session(REGISTRY["http"], REGISTRY, C, S)
    s.data(0, memoryview(CONNECT), 1)
    s.data(1, memoryview(ESTABLISHED), 2)
    s.data(0, memoryview(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"), 3)
    s.data(1, memoryview(b"$1\r\nv\r\n"), 4)
    s.data(0, memoryview(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nw\r\n"), 5)
    s.data(1, memoryview(b"+OK\r\n"), 6)
    s.close(10)
    assert [(r.protocol, r.operation, r.status) for r in records] == [
        ("http", "CONNECT", "200"),
        ("redis", "GET", "OK"),
        ("redis", "SET", "OK"),
    ]
    assert stats["http"].handovers == 1


def test_tunnel_of_nothing_known_stops() -> None:
    s, records, _ = open_session(REGISTRY["http"], REGISTRY, C, S)
    s.data(0, memoryview(CONNECT), 1)
    s.data(1, memoryview(ESTABLISHED), 2)
    s.data(0, memoryview(b"SSH-2.0-OpenSSH_9.2\r\n"), 3)
    s.data(1, memoryview(b"SSH-2.0-OpenSSH_9.2\r\n"), 4)
    assert not s.decoding
    s.close(10)
    assert [(r.operation, r.status) for r in records] == [("CONNECT", "200")]


def test_upgrade_to_a_token_no_row_takes_is_detected() -> None:
    """A 101 to a custom token, then RESP on the same connection: handed to Redis, the 101 still answers."""
    s, records, stats = open_session(REGISTRY["http"], REGISTRY, C, S)
    s.data(0, memoryview(b"GET /cache HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: resp-tunnel\r\n\r\n"), 1)
    s.data(
        1,
        memoryview(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: resp-tunnel\r\nConnection: Upgrade\r\n\r\n"
        ),
        2,
    )
    s.data(0, memoryview(b"*1\r\n$4\r\nPING\r\n"), 3)
    s.data(1, memoryview(b"+PONG\r\n"), 4)
    s.close(10)
    assert [(r.protocol, r.operation, r.status) for r in records] == [
        ("http", "GET", "101"),
        ("redis", "PING", "OK"),
    ]
    assert stats["http"].unsupported_upgrades == 1


@pytest.mark.parametrize("with_200", [False, True], ids=["greeting-alone", "greeting-with-the-200"])
def test_tunnel_to_a_server_first_protocol_is_handed_to_mysql(with_200: bool) -> None:
    """Before: the client's login went to the detectors first, alone, and no detector takes a login
    without the greeting: the tunnel stopped. Bytes built with tests/helpers/mywire.py."""
    s, records, stats = open_session(REGISTRY["http"], REGISTRY, C, S)
    s.data(0, memoryview(b"CONNECT db.internal:3306 HTTP/1.1\r\nHost: db.internal:3306\r\n\r\n"), 1)
    greeting = mywire.greeting(mywire.MODERN, version="11.8.3-MariaDB")
    if with_200:
        s.data(1, memoryview(ESTABLISHED + greeting), 2)
    else:
        s.data(1, memoryview(ESTABLISHED), 2)
        s.data(1, memoryview(greeting), 3)
    s.data(0, memoryview(mywire.login(mywire.MODERN, "app", b"x" * 20)), 4)
    s.data(1, memoryview(mywire.ok(2)), 5)
    s.data(0, memoryview(mywire.query("SELECT name FROM items")), 6)
    s.data(1, memoryview(mywire.result_set(["name"], [("a",), ("b",)], deprecate_eof=True)), 7)
    s.close(10)
    assert [(r.protocol, r.operation, r.status) for r in records] == [
        ("http", "CONNECT", "200"),
        ("mysql", "Handshake", "OK"),
        ("mysql", "COM_QUERY", "OK"),
    ]
    assert stats["http"].handovers == 1
