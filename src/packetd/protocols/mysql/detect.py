"""MySQL detection: the server's greeting, which opens every connection (Protocol::HandshakeV10).

    packet header  int<3> payload_length  int<1> sequence_id = 0
    payload        int<1> protocol_version = 10
                   string<NUL> server_version          printable, e.g. "8.0.36" or "5.5.5-10.11.6-MariaDB"
                   int<4> connection_id
                   string[8] auth_plugin_data_part_1
                   int<1> filler = 0
                   int<2> capability_flags_1            CLIENT_PROTOCOL_41 (0x0200) set by every server since 4.1
                   ...

The client speaks only after the greeting, so client bytes with no greeting yet are not MySQL, with two
exceptions. A server that refuses the client at once sends an ERR packet instead of the greeting
(`ff` errno `#`? message: 1040 Too many connections, 1130 Host not allowed). And a connection joined
mid-stream is recognised by a command that starts a client segment with sequence id 0: COM_QUERY (0x03)
or COM_STMT_PREPARE (0x16) whose text opens with an SQL verb, or COM_STMT_EXECUTE (0x17) with a cursor
flag of the protocol's and an iteration count of 1, as every client sends (a length, a sequence id and a
command byte alone are too generic).
"""

from __future__ import annotations

from packetd.protocols.detection import MORE, NO, YES, Verdict, sql_start

_MIN_GREETING = 4 + 1 + 2 + 4 + 8 + 1 + 2  # header, version, a 1-char version string + NUL, up to the caps
_MAX_GREETING = 1024  # a HandshakeV10 is ~80 bytes; plugin names and a long version string stay far below


_COM_QUERY, _COM_STMT_PREPARE, _COM_STMT_EXECUTE = 0x03, 0x16, 0x17
_MAX_QUERY = 16 * 1024 * 1024  # one packet's payload (a longer statement spans packets: not a start)


def _query(c2s: bytes) -> Verdict:
    """A COM_QUERY packet with an SQL statement (a connection joined mid-stream)."""
    if len(c2s) < 5:
        return MORE
    length = int.from_bytes(c2s[:3], "little")
    if c2s[3] != 0 or not 2 <= length < _MAX_QUERY:
        return NO
    if c2s[4] == _COM_STMT_EXECUTE:  # stmt id (4) | flags (1): 0-3, 8 | iteration count (4) = 1
        if len(c2s) < 14:
            return MORE
        return YES if length >= 10 and c2s[9] in (0, 1, 2, 3, 8) and c2s[10:14] == b"\x01\x00\x00\x00" else NO
    if c2s[4] not in (_COM_QUERY, _COM_STMT_PREPARE):
        return NO
    text = c2s[5 : 4 + length]
    if len(text) < min(length - 1, 16):
        return MORE
    return YES if sql_start(text) else NO


def _refusal(s2c: bytes) -> Verdict:
    """An ERR packet in place of the greeting: ff, errno (1000-1999 are the server's), printable text."""
    if len(s2c) < 9:
        return MORE
    length = int.from_bytes(s2c[:3], "little")
    errno = int.from_bytes(s2c[5:7], "little")
    text = s2c[7 : 4 + length]
    if s2c[3] != 0 or not 3 < length <= 512 or not 1000 <= errno < 2000:
        return NO
    if not text.isascii() or any(b < 0x20 or b >= 0x7F for b in text):
        return NO
    return YES if len(text) >= length - 3 else MORE


def detect(c2s: bytes, s2c: bytes) -> Verdict:
    """A HandshakeV10 greeting (or a refusal) from the server; a COM_QUERY from the client mid-stream."""
    if c2s:
        query = _query(c2s)
        if query is YES or not s2c:
            return query
    elif len(s2c) >= 5 and s2c[4] == 0xFF:
        return _refusal(s2c)
    if not s2c:
        return MORE
    n = len(s2c)
    if n >= 4 and (
        s2c[3] != 0 or not _MIN_GREETING - 4 <= int.from_bytes(s2c[:3], "little") <= _MAX_GREETING
    ):
        return NO
    if n >= 5 and s2c[4] != 10:
        return NO
    if n < 6:
        return MORE
    nul = s2c.find(b"\x00", 5, 5 + 64)
    version = s2c[5:nul] if nul >= 0 else s2c[5 : 5 + 64]
    if not version.isascii() or any(b < 0x20 or b > 0x7E for b in version):
        return NO
    if nul < 0:
        return NO if n >= 5 + 64 else MORE
    if not version[:1].isdigit():
        return NO  # every server version starts with its major number
    filler = nul + 1 + 4 + 8
    if n <= filler + 2:
        return MORE
    if s2c[filler] != 0 or not s2c[filler + 2] & 0x02:  # the caps' high byte holds CLIENT_PROTOCOL_41
        return NO
    return YES
