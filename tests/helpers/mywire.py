"""MySQL wire packets built from their definitions (dev.mysql.com client/server protocol), for tests."""

from __future__ import annotations

import struct
import zlib

PROTOCOL_41 = 1 << 9
SECURE_CONNECTION = 1 << 15
PLUGIN_AUTH = 1 << 19
CONNECT_WITH_DB = 1 << 3
CONNECT_ATTRS = 1 << 20
LENENC_DATA = 1 << 21
DEPRECATE_EOF = 1 << 24
QUERY_ATTRIBUTES = 1 << 27
COMPRESS = 1 << 5
ZSTD = 1 << 26
SSL = 1 << 11
MULTI_RESULTS = 1 << 17
CLASSIC = (
    PROTOCOL_41
    | SECURE_CONNECTION
    | PLUGIN_AUTH
    | CONNECT_WITH_DB
    | CONNECT_ATTRS
    | LENENC_DATA
    | MULTI_RESULTS
)
MODERN = CLASSIC | DEPRECATE_EOF


def packet(seq: int, payload: bytes) -> bytes:
    return struct.pack("<I", len(payload) | (seq << 24)) + payload


def lenenc(n: int) -> bytes:
    if n < 0xFB:
        return bytes([n])
    if n < 1 << 16:
        return b"\xfc" + struct.pack("<H", n)
    if n < 1 << 24:
        return b"\xfd" + struct.pack("<I", n)[:3]
    return b"\xfe" + struct.pack("<Q", n)


def lstr(s: bytes | str) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return lenenc(len(b)) + b


def greeting(
    caps: int, version: str = "8.0.36", conn_id: int = 7, plugin: str = "caching_sha2_password"
) -> bytes:
    salt = b"abcdefghijklmnopqrst"
    payload = (
        b"\x0a" + version.encode() + b"\x00" + struct.pack("<I", conn_id) + salt[:8] + b"\x00"
        + struct.pack("<H", caps & 0xFFFF) + b"\x21" + struct.pack("<H", 2) + struct.pack("<H", caps >> 16)
        + bytes([21]) + b"\x00" * 10 + salt[8:] + b"\x00" + plugin.encode() + b"\x00"
    )  # fmt: skip
    return packet(0, payload)


def login(caps: int, user: str, auth: bytes, db: str | None = None, plugin: str = "caching_sha2_password",
          client_name: str = "pymysql", seq: int = 1) -> bytes:  # fmt: skip
    payload = struct.pack("<IIB", caps, 1 << 24, 33) + b"\x00" * 23 + user.encode() + b"\x00"
    payload += lstr(auth) if caps & LENENC_DATA else bytes([len(auth)]) + auth
    if caps & CONNECT_WITH_DB and db is not None:
        payload += db.encode() + b"\x00"
    if caps & PLUGIN_AUTH:
        payload += plugin.encode() + b"\x00"
    if caps & CONNECT_ATTRS:
        attrs = lstr("_client_name") + lstr(client_name) + lstr("_pid") + lstr("1234")
        payload += lstr(attrs)
    return packet(seq, payload)


def ssl_request(caps: int) -> bytes:
    return packet(1, struct.pack("<IIB", caps | SSL, 1 << 24, 33) + b"\x00" * 23)


def ok(
    seq: int, affected: int = 0, insert_id: int = 0, status: int = 2, warnings: int = 0, header: int = 0
) -> bytes:
    return packet(
        seq, bytes([header]) + lenenc(affected) + lenenc(insert_id) + struct.pack("<HH", status, warnings)
    )


def eof(seq: int, status: int = 2, warnings: int = 0) -> bytes:
    return packet(seq, b"\xfe" + struct.pack("<HH", warnings, status))


def err(seq: int, code: int, state: str, message: str) -> bytes:
    return packet(seq, b"\xff" + struct.pack("<H", code) + b"#" + state.encode() + message.encode())


def command(code: int, arg: bytes = b"") -> bytes:
    return packet(0, bytes([code]) + arg)


def query(sql: str) -> bytes:
    return command(0x03, sql.encode())


def column(seq: int, name: str, table: str = "t") -> bytes:
    payload = (
        lstr("def") + lstr("shop") + lstr(table) + lstr(table) + lstr(name) + lstr(name)
        + lenenc(0x0C) + struct.pack("<HIBHB", 33, 255, 253, 0, 0) + b"\x00\x00"
    )  # fmt: skip
    return packet(seq, payload)


def text_row(seq: int, *values: str | None) -> bytes:
    return packet(seq, b"".join(b"\xfb" if v is None else lstr(v) for v in values))


def binary_row(seq: int, *ints: int) -> bytes:
    nulls = b"\x00" * ((len(ints) + 7 + 2) // 8)
    return packet(seq, b"\x00" + nulls + b"".join(struct.pack("<q", v) for v in ints))


def result_set(columns: list[str], rows: list[tuple[str | None, ...]], deprecate_eof: bool, status: int = 2,
               first_seq: int = 1) -> bytes:  # fmt: skip
    """A complete text result set: count, definitions, [EOF], rows, terminator."""
    seq = first_seq
    out = packet(seq, lenenc(len(columns)))
    for c in columns:
        seq += 1
        out += column(seq, c)
    if not deprecate_eof:
        seq += 1
        out += eof(seq)
    for r in rows:
        seq += 1
        out += text_row(seq, *r)
    seq += 1
    out += ok(seq, status=status, header=0xFE) if deprecate_eof else eof(seq, status=status)
    return out


def compress_frames(data: bytes, seq: int = 0, level: int = 6, stored: bool = False) -> bytes:
    """`data` as one compressed-protocol frame (zlib, or stored when `stored`)."""
    if stored:
        return struct.pack("<I", len(data))[:3] + bytes([seq]) + b"\x00\x00\x00" + data
    z = zlib.compress(data, level)
    return struct.pack("<I", len(z))[:3] + bytes([seq]) + struct.pack("<I", len(data))[:3] + z
