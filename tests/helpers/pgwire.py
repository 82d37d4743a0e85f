"""PostgreSQL wire messages built from their definitions (PostgreSQL docs §55.7), for decoder tests."""

from __future__ import annotations

import struct


def msg(t: bytes, body: bytes = b"") -> bytes:
    """A typed message: type byte, Int32 length counting itself, body."""
    return t + struct.pack(">i", len(body) + 4) + body


def cstr(s: str | bytes) -> bytes:
    return (s.encode() if isinstance(s, str) else s) + b"\x00"


def startup(**params: str) -> bytes:
    body = struct.pack(">i", 196608) + b"".join(cstr(k) + cstr(v) for k, v in params.items()) + b"\x00"
    return struct.pack(">i", len(body) + 4) + body


SSL_REQUEST = struct.pack(">ii", 8, 80877103)
GSSENC_REQUEST = struct.pack(">ii", 8, 80877104)


def cancel(pid: int, key: int) -> bytes:
    return struct.pack(">iiii", 16, 80877102, pid, key)


def auth(kind: int, extra: bytes = b"") -> bytes:
    return msg(b"R", struct.pack(">i", kind) + extra)


def param(key: str, value: str) -> bytes:
    return msg(b"S", cstr(key) + cstr(value))


def key_data(pid: int, key: int) -> bytes:
    return msg(b"K", struct.pack(">ii", pid, key))


def ready(status: bytes = b"I") -> bytes:
    return msg(b"Z", status)


def query(sql: str) -> bytes:
    return msg(b"Q", cstr(sql))


def parse(name: str, sql: str, types: tuple[int, ...] = ()) -> bytes:
    return msg(
        b"P",
        cstr(name)
        + cstr(sql)
        + struct.pack(">h", len(types))
        + b"".join(struct.pack(">i", t) for t in types),
    )


def bind(portal: str, stmt: str, params: tuple[bytes | None, ...] = ()) -> bytes:
    body = cstr(portal) + cstr(stmt) + struct.pack(">h", 0) + struct.pack(">h", len(params))
    for p in params:
        body += struct.pack(">i", -1) if p is None else struct.pack(">i", len(p)) + p
    return msg(b"B", body + struct.pack(">h", 0))


def describe(kind: bytes, name: str) -> bytes:
    return msg(b"D", kind + cstr(name))


def execute(portal: str = "", max_rows: int = 0) -> bytes:
    return msg(b"E", cstr(portal) + struct.pack(">i", max_rows))


def close(kind: bytes, name: str) -> bytes:
    return msg(b"C", kind + cstr(name))


SYNC = msg(b"S")
FLUSH = msg(b"H")
TERMINATE = msg(b"X")
PARSE_COMPLETE = msg(b"1")
BIND_COMPLETE = msg(b"2")
CLOSE_COMPLETE = msg(b"3")
NO_DATA = msg(b"n")
EMPTY_QUERY = msg(b"I")
PORTAL_SUSPENDED = msg(b"s")
COPY_DONE = msg(b"c")


def row_description(*names: str) -> bytes:
    body = struct.pack(">h", len(names))
    for n in names:
        body += cstr(n) + struct.pack(">ihihih", 0, 0, 23, 4, -1, 0)
    return msg(b"T", body)


def parameter_description(*oids: int) -> bytes:
    return msg(b"t", struct.pack(">h", len(oids)) + b"".join(struct.pack(">i", o) for o in oids))


def data_row(*values: bytes | None) -> bytes:
    body = struct.pack(">h", len(values))
    for v in values:
        body += struct.pack(">i", -1) if v is None else struct.pack(">i", len(v)) + v
    return msg(b"D", body)


def complete(tag: str) -> bytes:
    return msg(b"C", cstr(tag))


def error(sqlstate: str, message: str, severity: str = "ERROR", **extra: str) -> bytes:
    body = b"S" + cstr(severity) + b"V" + cstr(severity) + b"C" + cstr(sqlstate) + b"M" + cstr(message)
    body += b"".join(k.encode() + cstr(v) for k, v in extra.items())
    return msg(b"E", body + b"\x00")


def notice(sqlstate: str, message: str) -> bytes:
    return msg(
        b"N",
        b"S"
        + cstr("NOTICE")
        + b"V"
        + cstr("NOTICE")
        + b"C"
        + cstr(sqlstate)
        + b"M"
        + cstr(message)
        + b"\x00",
    )


def notification(pid: int, channel: str, payload: str) -> bytes:
    return msg(b"A", struct.pack(">i", pid) + cstr(channel) + cstr(payload))


def copy_in(columns: int = 1) -> bytes:
    return msg(b"G", b"\x00" + struct.pack(">h", columns) + b"\x00\x00" * columns)


def copy_out(columns: int = 1) -> bytes:
    return msg(b"H", b"\x00" + struct.pack(">h", columns) + b"\x00\x00" * columns)


def copy_data(data: bytes) -> bytes:
    return msg(b"d", data)


def password(secret: str) -> bytes:
    return msg(b"p", cstr(secret))


def function_call(oid: int) -> bytes:
    return msg(b"F", struct.pack(">ihhhh", oid, 0, 0, 0, 0))


def function_result(value: bytes) -> bytes:
    return msg(b"V", struct.pack(">i", len(value)) + value)
