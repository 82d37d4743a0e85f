"""Protocol detection by content: the verdict type, the bound, and TLS (which any TCP protocol may carry).

A detector is a pure function `detect(c2s, s2c) -> Verdict` over the first bytes of each direction of a
connection (at most DETECT_WINDOW of each: the flow layer never shows more). It answers

    YES    these bytes are this protocol (a message start it would frame, with its fields plausible)
    NO     they cannot be (or they may still become it only by bytes the bound will not show)
    MORE   what is there is consistent with the protocol but too short to say: show me more

Detectors never raise and never allocate more than a slice or two; they run on every packet of a
connection until it is decided (a handful of packets), so they test the cheapest discriminating bytes
first. A detector that accepts messages from the middle of a stream (HTTP, RESP, DNS, MongoDB, Kafka)
says YES for them as well: the flow layer knows whether the connection was joined mid-stream and flags
its records `midstream` then.

TLS is not a registry row: the session reads the ClientHello into an `encrypted` handshake record on any
row's connection (pairing/session.py). `tls_detect` lets the flow layer give a TLS connection on an
unclaimed port to a row (`tls_protocol` picks it from the offered ALPN) so that it is reported as on a
rule's port.

    TLSPlaintext = type(1)=22 legacy_version(2)=0x03 0x0N length(2) | Handshake: msg_type(1)=1 length(3)
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum

from packetd.protocols.base import DecodeError
from packetd.protocols.tls import parse_client_hello


class Verdict(IntEnum):
    """What a detector says about the first bytes of a connection."""

    NO = 0
    YES = 1
    MORE = 2  # consistent so far, too short to decide


Detect = Callable[[bytes, bytes], Verdict]

# Bytes of each direction a detector is shown. Every format detected here decides within its first
# message header (HTTP request line, TLS record + handshake header, a MySQL greeting of ~80 bytes, a
# PostgreSQL StartupMessage of ~40-100 bytes, a DNS question ≤ 12 + 255 + 4 bytes): 512 covers them with
# room, and bounds the work of a detector to a small constant.
DETECT_WINDOW = 512

YES, NO, MORE = Verdict.YES, Verdict.NO, Verdict.MORE

_TLS_MAX_RECORD = 16384 + 2048  # RFC 8446 §5.2: TLSCiphertext.length ≤ 2^14 + 2048


def tls_detect(c2s: bytes, s2c: bytes) -> Verdict:
    """A TLS handshake record carrying a ClientHello (RFC 8446 §5.1, §4.1.2), with consistent lengths."""
    n = len(c2s)
    if n == 0:
        return MORE
    if c2s[0] != 22:
        return NO
    if n < 2:
        return MORE
    if c2s[1] != 3:
        return NO
    if n < 3:
        return MORE
    if c2s[2] > 4:
        return NO
    if n < 6:
        return MORE
    length = c2s[3] << 8 | c2s[4]
    if not 4 <= length <= _TLS_MAX_RECORD or c2s[5] != 1:
        return NO
    if n < 11:
        return MORE
    hs_len = c2s[6] << 16 | c2s[7] << 8 | c2s[8]
    # a ClientHello is at least version(2) random(32) + three vector lengths; its body fits 2^24 bytes,
    # and may span records (then it is longer than this one); its legacy_version is 0x0300-0x0304
    if hs_len < 38 or c2s[9] != 3 or c2s[10] > 4:
        return NO
    return YES


def either_side(
    c2s: bytes, s2c: bytes, client: Callable[[bytes], Verdict], server: Callable[[bytes], Verdict]
) -> Verdict:
    """YES when the client's bytes (`client`) or the server's (`server`) are the protocol's; MORE while
    both still may be (an empty side may); NO otherwise. For formats either side's messages show."""
    request = client(c2s) if c2s else MORE
    if request is YES:
        return YES
    reply = server(s2c) if s2c else MORE
    if reply is YES:
        return YES
    return MORE if request is MORE and reply is MORE else NO


# Statement verbs a mid-stream MySQL COM_QUERY or PostgreSQL Query must open with: a length, a type byte
# and printable text are common to many protocols; an SQL verb right after them is not
SQL_VERBS = frozenset(
    b"SELECT INSERT UPDATE DELETE REPLACE SET SHOW BEGIN START COMMIT ROLLBACK SAVEPOINT RELEASE CREATE DROP "
    b"ALTER TRUNCATE USE CALL EXPLAIN DESCRIBE DESC WITH GRANT REVOKE LOCK UNLOCK PREPARE EXECUTE DEALLOCATE "
    b"ANALYZE VACUUM COPY LISTEN NOTIFY FETCH DECLARE CLOSE DISCARD RESET VALUES TABLE KILL FLUSH".split()
)


def sql_start(text: bytes) -> bool:
    """`text` opens with an SQL statement verb (after blanks, a comment or an opening parenthesis)."""
    text = text.lstrip(b" \t\r\n(")
    if text.startswith(b"/*"):
        end = text.find(b"*/")
        if end < 0:
            return False
        text = text[end + 2 :].lstrip(b" \t\r\n(")
    word = text[:12].split(maxsplit=1)[0] if text[:12].split() else b""
    word = word.rstrip(b";")
    return word.upper() in SQL_VERBS


# ALPN protocol ids (IANA "TLS Application-Layer Protocol Negotiation (ALPN) Protocol IDs") → registry row
_ALPN_ROWS = {
    "h2": "http2",
    "http/1.1": "http",
    "http/1.0": "http",
    "postgresql": "postgresql",
    "mongodb": "mongodb",
    "amqp": "amqp",
    "dot": "dns",
}
TLS_DEFAULT_ROW = "http"  # no ALPN: most TLS without one is HTTPS from older clients


def tls_protocol(c2s: bytes) -> str:
    """The registry row a detected TLS connection is reported under: its first known offered ALPN."""
    if len(c2s) < 9:
        return TLS_DEFAULT_ROW
    body = c2s[9 : 9 + (c2s[6] << 16 | c2s[7] << 8 | c2s[8])]
    try:
        _name, alpn, _versions = parse_client_hello(bytes(body))
    except DecodeError:  # a hello cut by the window (or malformed): the default row
        return TLS_DEFAULT_ROW
    for token in alpn:
        row = _ALPN_ROWS.get(token)
        if row is not None:
            return row
    return TLS_DEFAULT_ROW
