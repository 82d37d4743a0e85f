"""PostgreSQL detection: the client's first message, which has no type byte (protocol 3, "Message Formats").

    SSLRequest       int32 len=8   int32 80877103 (1234.5679)
    GSSENCRequest    int32 len=8   int32 80877104 (1234.5680)
    CancelRequest    int32 len=16  int32 80877102 (1234.5678)  int32 pid  int32 key
    StartupMessage   int32 len     int32 196608 (3.0; 3.2 is 196610)  (cstring name, cstring value)* 0

A StartupMessage must name `user` (the server refuses one that does not) and its parameters must be
printable NUL-terminated strings ending with one more NUL exactly at `len`. The exact codes of the other
three leave no room for chance. Mid-stream, a type byte and a length are too generic to claim a
connection; a Query (`Q` int32 len, statement NUL) or Parse (`P` int32 len, name NUL, statement NUL) whose
statement opens with an SQL verb, ending exactly at `len`, is not.
"""

from __future__ import annotations

import struct

from packetd.protocols.detection import DETECT_WINDOW, MORE, NO, YES, Verdict, sql_start

_II = struct.Struct("!ii")
_SPECIAL = {(8, 80877103), (8, 80877104), (16, 80877102)}
_MAX_STARTUP = 10_000  # the server's own limit on a startup packet (MAX_STARTUP_PACKET_LENGTH)


def _printable(items: list[bytes]) -> bool:
    return all(item.isascii() and not any(b < 0x20 for b in item) for item in items)


def _params(body: bytes, complete: bool) -> Verdict:
    """`name\\0value\\0...\\0`: naming `user` when complete (YES), or a consistent prefix (MORE)."""
    if not complete:
        return MORE if _printable(body.split(b"\x00")) else NO
    if not body.endswith(b"\x00"):
        return NO
    items = body[:-1].split(b"\x00")[:-1]
    if len(items) % 2 or not _printable(items) or b"user" not in items[0::2] or b"" in items[0::2]:
        return NO
    return YES


_MAX_QUERY = 1 << 30  # the server's limit on one message (PQ_LARGE_MESSAGE_LIMIT)


def _statement(c2s: bytes) -> Verdict:
    """A Query or Parse message with an SQL statement (a connection joined mid-stream)."""
    if len(c2s) < 5:
        return MORE
    length = int.from_bytes(c2s[1:5], "big")
    if not 6 <= length <= _MAX_QUERY:
        return NO
    body = c2s[5 : 1 + length]
    if c2s[0] == 0x50:  # 'P': the statement's name first
        nul = body.find(b"\x00", 0, 64)
        if nul < 0:
            return MORE if len(body) < 64 else NO
        body = body[nul + 1 :]
    if len(body) < min(length - 5, 16):
        return MORE
    if c2s[0] == 0x51 and len(c2s) >= 1 + length and c2s[length] != 0:
        return NO  # a Query's statement NUL ends the message exactly (Parse's parameter types follow it)
    return YES if sql_start(body) else NO


def detect(c2s: bytes, s2c: bytes) -> Verdict:
    """SSLRequest, GSSENCRequest, CancelRequest or a StartupMessage naming `user`; mid-stream, a Query
    or Parse carrying an SQL statement."""
    if c2s[:1] in (b"Q", b"P"):
        return _statement(c2s)
    if len(c2s) < 8:
        if len(c2s) >= 4 and not 8 <= int.from_bytes(c2s[:4], "big") <= _MAX_STARTUP:
            return NO
        return MORE
    length, code = _II.unpack_from(c2s)
    if (length, code) in _SPECIAL:
        return YES
    if code not in (196608, 196610) or not 8 < length <= _MAX_STARTUP:
        return NO
    if len(c2s) < length and len(c2s) >= DETECT_WINDOW:
        return NO  # a startup packet longer than the window: not decided here
    return _params(c2s[8:length], len(c2s) >= length)
