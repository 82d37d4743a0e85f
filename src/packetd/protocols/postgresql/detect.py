"""PostgreSQL detection: the client's first message, which has no type byte (protocol 3, "Message Formats").

    SSLRequest       int32 len=8   int32 80877103 (1234.5679)
    GSSENCRequest    int32 len=8   int32 80877104 (1234.5680)
    CancelRequest    int32 len=16  int32 80877102 (1234.5678)  int32 pid  int32 key
    StartupMessage   int32 len     int32 196608 (3.0; 3.2 is 196610)  (cstring name, cstring value)* 0

A StartupMessage must name `user` (the server refuses one that does not) and its parameters must be
printable NUL-terminated strings ending with one more NUL exactly at `len`. The exact codes of the other
three leave no room for chance. Mid-stream messages (a 1-byte type and a length) are too generic to claim
a connection: a PostgreSQL connection is detected from its start only.
"""

from __future__ import annotations

import struct

from packetd.protocols.detection import DETECT_WINDOW, MORE, NO, YES, Verdict

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


def detect(c2s: bytes, s2c: bytes) -> Verdict:
    """SSLRequest, GSSENCRequest, CancelRequest or a StartupMessage naming `user`."""
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
