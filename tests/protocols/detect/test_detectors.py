"""Each detector over hand-made bytes: YES for its protocol's message starts, MORE for their prefixes, NO
for neighbours that look alike (other text protocols, other versions, off-by-one lengths).

Every case's bytes are written out from the protocol's specification (the detector's docstring draws the
format); a case's prefixes must all say MORE or YES, never NO (`test_prefixes_never_say_no`): a detector
that said NO on a short read would lose a connection split into small segments.
"""

from __future__ import annotations

import struct

import pytest

from packetd.protocols.amqp import detect as amqp
from packetd.protocols.detection import MORE, NO, YES, Verdict, tls_detect, tls_protocol
from packetd.protocols.dns import detect as dns
from packetd.protocols.http1 import detect as http1
from packetd.protocols.http2 import detect as http2
from packetd.protocols.kafka import detect as kafka
from packetd.protocols.mongodb import detect as mongodb
from packetd.protocols.mysql import detect as mysql
from packetd.protocols.postgresql import detect as postgresql
from packetd.protocols.redis import detect as redis


def _bson(body: bytes) -> bytes:
    """A BSON document: int32 total length, elements, NUL."""
    return struct.pack("<i", 4 + len(body) + 1) + body + b"\x00"


_PING_DOC = _bson(b"\x10ping\x00" + struct.pack("<i", 1))  # {ping: int32 1}
_OP_MSG = struct.pack("<iiii", 16 + 4 + 1 + len(_PING_DOC), 7, 0, 2013) + b"\x00\x00\x00\x00\x00" + _PING_DOC
_OP_REPLY_MSG = (
    struct.pack("<iiii", 16 + 4 + 1 + len(_PING_DOC), 8, 7, 2013) + b"\x00\x00\x00\x00\x00" + _PING_DOC
)
_OP_QUERY = (
    struct.pack("<iiii", 16 + 4 + 11 + 8 + len(_PING_DOC), 1, 0, 2004)
    + b"\x00\x00\x00\x00admin.$cmd\x00"
    + struct.pack("<ii", 0, -1)
    + _PING_DOC
)


def _kafka(key: int, version: int, client: bytes | None, body: bytes = b"") -> bytes:
    cid = struct.pack(">h", -1) if client is None else struct.pack(">h", len(client)) + client
    header = struct.pack(">hhi", key, version, 42) + cid + body
    return struct.pack(">i", len(header)) + header


def _dns_query(name: bytes, qtype: int = 1, flags: int = 0x0100, arcount: int = 0) -> bytes:
    labels = b"".join(bytes([len(x)]) + x for x in name.split(b".")) + b"\x00"
    return struct.pack("!HHHHHH", 0x1234, flags, 1, 0, 0, arcount) + labels + struct.pack("!HH", qtype, 1)


_GREETING_BODY = (
    b"\x0a8.0.36\x00"  # protocol 10, server version
    + struct.pack("<I", 11)  # connection id
    + b"abcdefgh\x00"  # auth data part 1, filler
    + struct.pack("<H", 0xF7FF)  # capabilities (low): CLIENT_PROTOCOL_41 is 0x0200
    + b"\xff\x02\x00\xff\xc1\x15"
    + b"\x00" * 10
    + b"ijklmnopqrst\x00mysql_native_password\x00"
)
_GREETING = struct.pack("<I", len(_GREETING_BODY))[:3] + b"\x00" + _GREETING_BODY
_STARTUP_BODY = struct.pack("!i", 196608) + b"user\x00alice\x00database\x00shop\x00\x00"
_STARTUP = struct.pack("!i", 4 + len(_STARTUP_BODY)) + _STARTUP_BODY
_CLIENT_HELLO = (
    bytes.fromhex("16030100c4010000c00303") + bytes(32) + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
)
_COM_QUERY = struct.pack("<I", 1 + 17)[:3] + b"\x00\x03" + b"SELECT * FROM t;\n"
_PG_QUERY = b"Q" + struct.pack("!i", 4 + 9) + b"SELECT 1\x00"

# (detector, c2s, s2c, verdict)
CASES: list[tuple[str, object, bytes, bytes, Verdict]] = [
    # HTTP/1
    ("http get", http1.detect, b"GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n", b"", YES),
    ("http bare LF", http1.detect, b"POST /api HTTP/1.0\nContent-Length: 0\n\n", b"", YES),
    ("http webdav", http1.detect, b"PROPFIND /dav/ HTTP/1.1\r\n", b"", YES),
    ("http status only", http1.detect, b"", b"HTTP/1.1 200 OK\r\n", YES),
    ("http status mid-body c2s", http1.detect, b"tail of a body", b"HTTP/1.1 404 Not Found\r\n", YES),
    ("http prefix", http1.detect, b"GE", b"", MORE),
    ("http no line end yet", http1.detect, b"GET /long/path", b"", MORE),
    ("http2 preface is not http1", http1.detect, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"", NO),
    ("rtsp", http1.detect, b"OPTIONS rtsp://cam/ RTSP/1.0\r\n", b"", NO),
    ("sip", http1.detect, b"INVITE sip:bob@x SIP/2.0\r\n", b"", NO),
    ("lower-case method", http1.detect, b"get / HTTP/1.1\r\n", b"", NO),
    ("ssh banner", http1.detect, b"SSH-2.0-OpenSSH_9.2\r\n", b"SSH-2.0-OpenSSH_9.2\r\n", NO),
    ("smtp", http1.detect, b"EHLO client\r\n", b"220 mx ESMTP\r\n", NO),
    ("status 600", http1.detect, b"", b"HTTP/1.1 600 X\r\n", NO),
    # HTTP/2
    ("h2 preface", http2.detect, http2.PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00", b"", YES),
    ("h2 prefix", http2.detect, http2.PREFACE[:10], b"", MORE),
    ("h2 wrong", http2.detect, b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", b"", NO),
    # AMQP
    ("amqp 0-9-1", amqp.detect, amqp.HEADER, b"", YES),
    ("amqp prefix", amqp.detect, b"AMQ", b"", MORE),
    ("amqp 1.0", amqp.detect, b"AMQP\x00\x01\x00\x00", b"", NO),
    (
        "amqp method frame mid-stream",  # Basic.Ack (60, 80) on channel 1: delivery tag 8 bytes, multiple 1
        amqp.detect,
        b"\x01\x00\x01" + struct.pack("!I", 13) + struct.pack("!HH", 60, 80) + bytes(8) + b"\x00" + b"\xce",
        b"",
        YES,
    ),
    (
        "amqp frame end wrong",
        amqp.detect,
        b"\x01\x00\x01" + struct.pack("!I", 13) + struct.pack("!HH", 60, 80) + bytes(8) + b"\x00" + b"\xcf",
        b"",
        NO,
    ),
    # PostgreSQL
    ("pg startup", postgresql.detect, _STARTUP, b"", YES),
    ("pg ssl request", postgresql.detect, struct.pack("!ii", 8, 80877103), b"", YES),
    ("pg gssenc request", postgresql.detect, struct.pack("!ii", 8, 80877104), b"", YES),
    ("pg cancel", postgresql.detect, struct.pack("!iiii", 16, 80877102, 4242, 99), b"", YES),
    ("pg startup cut", postgresql.detect, _STARTUP[:20], b"", MORE),
    (
        "pg startup without user",
        postgresql.detect,
        struct.pack("!ii", 8 + 12, 196608) + b"database\x00x\x00\x00",
        b"",
        NO,
    ),
    ("pg protocol 2", postgresql.detect, struct.pack("!ii", 16, 131072) + b"user\x00a\x00\x00\x00", b"", NO),
    ("pg query mid-stream", postgresql.detect, _PG_QUERY, b"", YES),
    ("pg query not sql", postgresql.detect, b"Q" + struct.pack("!i", 4 + 9) + b"HELLO ab\x00", b"", NO),
    # MySQL
    ("mysql greeting", mysql.detect, b"", _GREETING, YES),
    ("mysql greeting cut", mysql.detect, b"", _GREETING[:12], MORE),
    ("mysql client first", mysql.detect, b"\x01\x00\x00\x00\x01", b"", NO),
    ("mysql protocol 9", mysql.detect, b"", _GREETING[:4] + b"\x09" + _GREETING[5:], NO),
    (
        "mysql refusal",  # ERR 1130 in place of the greeting
        mysql.detect,
        b"",
        b"\x14\x00\x00\x00\xff\x6a\x04Host 'x' not allowed",
        YES,
    ),
    ("mysql com_query mid-stream", mysql.detect, _COM_QUERY, b"", YES),
    ("mysql com_query not sql", mysql.detect, _COM_QUERY[:5] + b"XELECT * FROM t;\n", b"", NO),
    (
        "mysql stmt_execute mid-stream",  # stmt id 1, no cursor, iteration count 1, no parameters
        mysql.detect,
        b"\x0a\x00\x00\x00\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00",
        b"",
        YES,
    ),
    (
        "mysql stmt_execute count 2",
        mysql.detect,
        b"\x0a\x00\x00\x00\x17\x01\x00\x00\x00\x00\x02\x00\x00\x00",
        b"",
        NO,
    ),
    # HTTP/2 mid-stream: HEADERS (type 1, END_HEADERS) of 3 bytes on stream 1, then PING ACK on stream 0
    (
        "h2 frames mid-stream",
        http2.detect,
        b"\x00\x00\x03\x01\x04\x00\x00\x00\x01\x82\x86\x84"
        + b"\x00\x00\x08\x06\x01\x00\x00\x00\x00"
        + bytes(8),
        b"",
        YES,
    ),
    ("h2 frames from the server", http2.detect, b"", b"\x00\x00\x01\x01\x04\x00\x00\x00\x01\x88", YES),
    ("h2 headers on stream 0", http2.detect, b"\x00\x00\x01\x01\x04\x00\x00\x00\x00\x88", b"", NO),
    ("h2 ping of 7", http2.detect, b"\x00\x00\x07\x06\x00\x00\x00\x00\x00" + bytes(7), b"", NO),
    ("h2 data only", http2.detect, b"\x00\x00\x02\x00\x00\x00\x00\x00\x01hi", b"", MORE),
    # Kafka
    ("kafka api versions", kafka.detect, _kafka(18, 3, b"rdkafka", b"\x00"), b"", YES),
    ("kafka produce v2 (old clients)", kafka.detect, _kafka(0, 2, b"sarama"), b"", YES),
    ("kafka null client id", kafka.detect, _kafka(3, 1, None), b"", YES),
    ("kafka cut", kafka.detect, _kafka(18, 3, b"rdkafka")[:9], b"", MORE),
    ("kafka unknown key", kafka.detect, _kafka(999, 0, b"x"), b"", NO),
    ("kafka version too new", kafka.detect, _kafka(18, 99, b"x"), b"", NO),
    ("kafka empty client id", kafka.detect, _kafka(18, 3, b""), b"", NO),
    ("kafka binary client id", kafka.detect, _kafka(18, 3, b"\x01\x02"), b"", NO),
    # MongoDB
    ("mongo op_msg", mongodb.detect, _OP_MSG, b"", YES),
    ("mongo op_query", mongodb.detect, _OP_QUERY, b"", YES),
    ("mongo reply only", mongodb.detect, b"", _OP_REPLY_MSG, YES),
    ("mongo cut header", mongodb.detect, _OP_MSG[:10], b"", MORE),
    ("mongo reply from client", mongodb.detect, _OP_REPLY_MSG, b"", NO),
    ("mongo unknown opcode", mongodb.detect, _OP_MSG[:12] + struct.pack("<i", 2014) + _OP_MSG[16:], b"", NO),
    ("mongo bad bson type", mongodb.detect, _OP_MSG[:25] + b"\x42" + _OP_MSG[26:], b"", NO),
    # Redis
    ("resp array", redis.detect, b"*1\r\n$4\r\nPING\r\n", b"", YES),
    ("resp module command", redis.detect, b"*2\r\n$8\r\nJSON.GET\r\n$1\r\nk\r\n", b"", YES),
    ("resp cut", redis.detect, b"*3\r\n$3\r\nSE", b"", MORE),
    ("resp wrong length", redis.detect, b"*1\r\n$5\r\nPING\r\n", b"", NO),
    ("resp binary name", redis.detect, b"*1\r\n$4\r\n\x00\x01\x02\x03\r\n", b"", NO),
    ("inline with reply", redis.detect, b"PING\r\n", b"+PONG\r\n", YES),
    ("inline waits for reply", redis.detect, b"PING\r\n", b"", MORE),
    ("pop3 quit", redis.detect, b"QUIT\r\n", b"+OK bye\r\n", NO),
    ("pop3 user", redis.detect, b"USER bob\r\n", b"+OK\r\n", NO),
    ("memcached get", redis.detect, b"get k\r\n", b"END\r\n", NO),
    # DNS
    ("dns query udp", dns.detect, _dns_query(b"example.com"), b"", YES),
    ("dns query tcp", dns.detect, struct.pack("!H", 29) + _dns_query(b"example.com"), b"", YES),
    ("dns response only", dns.detect, b"", _dns_query(b"a.example", flags=0x8180), YES),
    ("dns cut name", dns.detect, _dns_query(b"example.com")[:18], b"", MORE),
    ("dns two questions", dns.detect, _dns_query(b"a.b")[:4] + b"\x00\x02" + _dns_query(b"a.b")[6:], b"", NO),
    ("dns query with rcode", dns.detect, _dns_query(b"a.b", flags=0x0103), b"", NO),
    ("dns label binary", dns.detect, _dns_query(b"a\x01b.c"), b"", NO),
    # TLS
    ("tls client hello", tls_detect, _CLIENT_HELLO, b"", YES),
    ("tls cut", tls_detect, _CLIENT_HELLO[:4], b"", MORE),
    ("tls server hello from client", tls_detect, _CLIENT_HELLO[:5] + b"\x02" + _CLIENT_HELLO[6:], b"", NO),
    ("tls version 3.5", tls_detect, b"\x16\x03\x05" + _CLIENT_HELLO[3:], b"", NO),
]


@pytest.mark.parametrize(("name", "detect", "c2s", "s2c", "verdict"), CASES, ids=[c[0] for c in CASES])
def test_detector(name: str, detect, c2s: bytes, s2c: bytes, verdict: Verdict) -> None:  # type: ignore[no-untyped-def]
    assert detect(c2s, s2c) is verdict


@pytest.mark.parametrize(
    ("name", "detect", "c2s", "s2c"),
    [c[:4] for c in CASES if c[4] is YES],
    ids=[c[0] for c in CASES if c[4] is YES],
)
def test_prefixes_never_say_no(name: str, detect, c2s: bytes, s2c: bytes) -> None:  # type: ignore[no-untyped-def]
    """Every cut of a YES case's deciding direction is MORE or YES (segments may split anywhere): the
    client's bytes when they alone decide, else the server's (the client's kept whole)."""
    if c2s and detect(c2s, b"") is YES:
        for n in range(len(c2s)):
            assert detect(c2s[:n], b"") in (MORE, YES), (n, c2s[:n])
    elif detect(c2s, b"") is not NO:  # (client bytes that say NO alone: a mid-stream case, the stage waits)
        for n in range(len(s2c)):
            assert detect(c2s, s2c[:n]) in (MORE, YES), (n, s2c[:n])


def test_tls_row_from_alpn() -> None:
    """ALPN h2 → the http2 row; none → http (reported as on an HTTP rule's port)."""
    ext = b"\x00\x10" + struct.pack("!H", 5) + struct.pack("!H", 3) + b"\x02h2"  # ALPN extension, ["h2"]
    body = (
        b"\x03\x03"
        + bytes(32)
        + b"\x00"
        + b"\x00\x02\x13\x01"
        + b"\x01\x00"
        + struct.pack("!H", len(ext))
        + ext
    )
    hello = b"\x16\x03\x01" + struct.pack("!H", 4 + len(body)) + b"\x01" + len(body).to_bytes(3, "big") + body
    assert tls_detect(hello, b"") is YES
    assert tls_protocol(hello) == "http2"
    assert tls_protocol(_CLIENT_HELLO) == "http"
