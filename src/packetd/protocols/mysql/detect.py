"""MySQL detection: the server's greeting, which opens every connection (Protocol::HandshakeV10).

    packet header  int<3> payload_length  int<1> sequence_id = 0
    payload        int<1> protocol_version = 10
                   string<NUL> server_version          printable, e.g. "8.0.36" or "5.5.5-10.11.6-MariaDB"
                   int<4> connection_id
                   string[8] auth_plugin_data_part_1
                   int<1> filler = 0
                   int<2> capability_flags_1            CLIENT_PROTOCOL_41 (0x0200) set by every server since 4.1
                   ...

The client speaks only after the greeting, so client bytes with no greeting yet are not MySQL. Mid-stream
packets (a length, a sequence id and a command byte) are too generic to claim a connection: MySQL is
detected from a connection's start only.
"""

from __future__ import annotations

from packetd.protocols.detection import MORE, NO, YES, Verdict

_MIN_GREETING = 4 + 1 + 2 + 4 + 8 + 1 + 2  # header, version, a 1-char version string + NUL, up to the caps
_MAX_GREETING = 1024  # a HandshakeV10 is ~80 bytes; plugin names and a long version string stay far below


def detect(c2s: bytes, s2c: bytes) -> Verdict:
    """A HandshakeV10 greeting from the server."""
    if not s2c:
        return NO if c2s else MORE
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
