"""AMQP 0-9-1 classes, methods and their arguments (amqp0-9-1.xml, with RabbitMQ's extensions).

Each method is listed once with its arguments in wire order; the decoder reads them with one generic
reader (`read_args`). Argument names are the spec's, snake_case; `reserved` arguments are read and dropped.
Secrets (Connection.Start-Ok `response`, Secure-Ok `response`, Secure `challenge`, UpdateSecret
`new_secret`) are read past and never kept: their type is `secret`.

Wire types (spec §4.2.5): octet, short (16), long (32), longlong (64), shortstr (octet length), longstr
(32-bit length), table (field table, 32-bit length), bit (packed, consecutive bits share an octet).
"""

from __future__ import annotations

import struct
from typing import Any, Final

from packetd.protocols.base import DecodeError

CLASSES = {10: "Connection", 20: "Channel", 40: "Exchange", 50: "Queue", 60: "Basic", 85: "Confirm", 90: "Tx"}

_CLOSE = (("reply_code", "short"), ("reply_text", "shortstr"), ("class_id", "short"), ("method_id", "short"))
_BIND = (("reserved", "short"), ("destination", "shortstr"), ("source", "shortstr"),
         ("routing_key", "shortstr"), ("no_wait", "bit"), ("arguments", "table"))  # fmt: skip

# (class id, method id) → (method name, arguments)
METHODS: dict[tuple[int, int], tuple[str, tuple[tuple[str, str], ...]]] = {
    (10, 10): ("Start", (("version_major", "octet"), ("version_minor", "octet"),
                         ("server_properties", "table"), ("mechanisms", "longstr"), ("locales", "longstr"))),
    (10, 11): ("Start-Ok", (("client_properties", "table"), ("mechanism", "shortstr"),
                            ("response", "secret"), ("locale", "shortstr"))),
    (10, 20): ("Secure", (("challenge", "secret"),)),
    (10, 21): ("Secure-Ok", (("response", "secret"),)),
    (10, 30): ("Tune", (("channel_max", "short"), ("frame_max", "long"), ("heartbeat", "short"))),
    (10, 31): ("Tune-Ok", (("channel_max", "short"), ("frame_max", "long"), ("heartbeat", "short"))),
    (10, 40): ("Open", (("virtual_host", "shortstr"), ("reserved", "shortstr"), ("reserved", "bit"))),
    (10, 41): ("Open-Ok", (("reserved", "shortstr"),)),
    (10, 50): ("Close", _CLOSE),
    (10, 51): ("Close-Ok", ()),
    (10, 60): ("Blocked", (("reason", "shortstr"),)),  # RabbitMQ extension
    (10, 61): ("Unblocked", ()),
    (10, 70): ("Update-Secret", (("new_secret", "secret"), ("reason", "shortstr"))),
    (10, 71): ("Update-Secret-Ok", ()),
    (20, 10): ("Open", (("reserved", "shortstr"),)),
    (20, 11): ("Open-Ok", (("reserved", "longstr"),)),
    (20, 20): ("Flow", (("active", "bit"),)),
    (20, 21): ("Flow-Ok", (("active", "bit"),)),
    (20, 40): ("Close", _CLOSE),
    (20, 41): ("Close-Ok", ()),
    (40, 10): ("Declare", (("reserved", "short"), ("exchange", "shortstr"), ("type", "shortstr"),
                           ("passive", "bit"), ("durable", "bit"), ("auto_delete", "bit"), ("internal", "bit"),
                           ("no_wait", "bit"), ("arguments", "table"))),
    (40, 11): ("Declare-Ok", ()),
    (40, 20): ("Delete", (("reserved", "short"), ("exchange", "shortstr"), ("if_unused", "bit"),
                          ("no_wait", "bit"))),
    (40, 21): ("Delete-Ok", ()),
    (40, 30): ("Bind", _BIND),  # RabbitMQ extension (exchange-to-exchange bindings)
    (40, 31): ("Bind-Ok", ()),
    (40, 40): ("Unbind", _BIND),
    (40, 51): ("Unbind-Ok", ()),
    (50, 10): ("Declare", (("reserved", "short"), ("queue", "shortstr"), ("passive", "bit"), ("durable", "bit"),
                           ("exclusive", "bit"), ("auto_delete", "bit"), ("no_wait", "bit"),
                           ("arguments", "table"))),
    (50, 11): ("Declare-Ok", (("queue", "shortstr"), ("message_count", "long"), ("consumer_count", "long"))),
    (50, 20): ("Bind", (("reserved", "short"), ("queue", "shortstr"), ("exchange", "shortstr"),
                        ("routing_key", "shortstr"), ("no_wait", "bit"), ("arguments", "table"))),
    (50, 21): ("Bind-Ok", ()),
    (50, 30): ("Purge", (("reserved", "short"), ("queue", "shortstr"), ("no_wait", "bit"))),
    (50, 31): ("Purge-Ok", (("message_count", "long"),)),
    (50, 40): ("Delete", (("reserved", "short"), ("queue", "shortstr"), ("if_unused", "bit"),
                          ("if_empty", "bit"), ("no_wait", "bit"))),
    (50, 41): ("Delete-Ok", (("message_count", "long"),)),
    (50, 50): ("Unbind", (("reserved", "short"), ("queue", "shortstr"), ("exchange", "shortstr"),
                          ("routing_key", "shortstr"), ("arguments", "table"))),
    (50, 51): ("Unbind-Ok", ()),
    (60, 10): ("Qos", (("prefetch_size", "long"), ("prefetch_count", "short"), ("global", "bit"))),
    (60, 11): ("Qos-Ok", ()),
    (60, 20): ("Consume", (("reserved", "short"), ("queue", "shortstr"), ("consumer_tag", "shortstr"),
                           ("no_local", "bit"), ("no_ack", "bit"), ("exclusive", "bit"), ("no_wait", "bit"),
                           ("arguments", "table"))),
    (60, 21): ("Consume-Ok", (("consumer_tag", "shortstr"),)),
    (60, 30): ("Cancel", (("consumer_tag", "shortstr"), ("no_wait", "bit"))),
    (60, 31): ("Cancel-Ok", (("consumer_tag", "shortstr"),)),
    (60, 40): ("Publish", (("reserved", "short"), ("exchange", "shortstr"), ("routing_key", "shortstr"),
                           ("mandatory", "bit"), ("immediate", "bit"))),
    (60, 50): ("Return", (("reply_code", "short"), ("reply_text", "shortstr"), ("exchange", "shortstr"),
                          ("routing_key", "shortstr"))),
    (60, 60): ("Deliver", (("consumer_tag", "shortstr"), ("delivery_tag", "longlong"), ("redelivered", "bit"),
                           ("exchange", "shortstr"), ("routing_key", "shortstr"))),
    (60, 70): ("Get", (("reserved", "short"), ("queue", "shortstr"), ("no_ack", "bit"))),
    (60, 71): ("Get-Ok", (("delivery_tag", "longlong"), ("redelivered", "bit"), ("exchange", "shortstr"),
                          ("routing_key", "shortstr"), ("message_count", "long"))),
    (60, 72): ("Get-Empty", (("reserved", "shortstr"),)),
    (60, 80): ("Ack", (("delivery_tag", "longlong"), ("multiple", "bit"))),
    (60, 90): ("Reject", (("delivery_tag", "longlong"), ("requeue", "bit"))),
    (60, 100): ("Recover-Async", (("requeue", "bit"),)),
    (60, 110): ("Recover", (("requeue", "bit"),)),
    (60, 111): ("Recover-Ok", ()),
    (60, 120): ("Nack", (("delivery_tag", "longlong"), ("multiple", "bit"), ("requeue", "bit"))),  # RabbitMQ
    (85, 10): ("Select", (("no_wait", "bit"),)),  # RabbitMQ publisher confirms
    (85, 11): ("Select-Ok", ()),
    (90, 10): ("Select", ()),
    (90, 11): ("Select-Ok", ()),
    (90, 20): ("Commit", ()),
    (90, 21): ("Commit-Ok", ()),
    (90, 30): ("Rollback", ()),
    (90, 31): ("Rollback-Ok", ()),
}  # fmt: skip

# "Class.Method" for every known method
NAMES = {key: f"{CLASSES[key[0]]}.{name}" for key, (name, _args) in METHODS.items()}

# synchronous requests → the methods that answer them (spec: "synchronous" requests and their "response")
REPLIES: dict[tuple[int, int], tuple[tuple[int, int], ...]] = {
    (10, 10): ((10, 11),), (10, 20): ((10, 21),), (10, 30): ((10, 31),), (10, 40): ((10, 41),),
    (10, 50): ((10, 51),), (10, 70): ((10, 71),),
    (20, 10): ((20, 11),), (20, 20): ((20, 21),), (20, 40): ((20, 41),),
    (40, 10): ((40, 11),), (40, 20): ((40, 21),), (40, 30): ((40, 31),), (40, 40): ((40, 51),),
    (50, 10): ((50, 11),), (50, 20): ((50, 21),), (50, 30): ((50, 31),), (50, 40): ((50, 41),),
    (50, 50): ((50, 51),),
    (60, 10): ((60, 11),), (60, 20): ((60, 21),), (60, 30): ((60, 31),), (60, 70): ((60, 71), (60, 72)),
    (60, 110): ((60, 111),),
    (85, 10): ((85, 11),), (90, 10): ((90, 11),), (90, 20): ((90, 21),), (90, 30): ((90, 31),),
}  # fmt: skip
REPLY_TO = {reply: request for request, replies in REPLIES.items() for reply in replies}
HANDSHAKE = frozenset({(10, 10), (10, 20), (10, 30), (10, 40)})  # Connection.Start/Secure/Tune/Open
CONTENT = frozenset({(60, 40), (60, 50), (60, 60), (60, 71)})  # followed by a content header and body

# reply codes (spec §1.9 "constants"; RabbitMQ uses 530 NOT_ALLOWED for a missing vhost)
REPLY_CODES = {
    200: "REPLY_SUCCESS", 311: "CONTENT_TOO_LARGE", 312: "NO_ROUTE", 313: "NO_CONSUMERS",
    320: "CONNECTION_FORCED", 402: "INVALID_PATH", 403: "ACCESS_REFUSED", 404: "NOT_FOUND",
    405: "RESOURCE_LOCKED", 406: "PRECONDITION_FAILED", 501: "FRAME_ERROR", 502: "SYNTAX_ERROR",
    503: "COMMAND_INVALID", 504: "CHANNEL_ERROR", 505: "UNEXPECTED_FRAME", 506: "RESOURCE_ERROR",
    530: "NOT_ALLOWED", 540: "NOT_IMPLEMENTED", 541: "INTERNAL_ERROR",
}  # fmt: skip

# Basic content properties in property-flag order (bit 15 first), spec §4.2.6.1 and the Basic class
BASIC_PROPERTIES = (
    ("content_type", "shortstr"), ("content_encoding", "shortstr"), ("headers", "table"),
    ("delivery_mode", "octet"), ("priority", "octet"), ("correlation_id", "shortstr"),
    ("reply_to", "shortstr"), ("expiration", "shortstr"), ("message_id", "shortstr"),
    ("timestamp", "longlong"), ("type", "shortstr"), ("user_id", "shortstr"), ("app_id", "shortstr"),
    ("cluster_id", "shortstr"),
)  # fmt: skip

MAX_TABLE_DEPTH: Final = 8  # nested tables/arrays deeper than this are not real messages
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")
_I8 = struct.Struct("!b")
_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")
_I64 = struct.Struct("!q")
_F32 = struct.Struct("!f")
_F64 = struct.Struct("!d")


def _need(buf: bytes, pos: int, n: int, end: int) -> None:
    if pos + n > end:
        raise DecodeError("method arguments past frame end")


def read_args(buf: bytes, pos: int, end: int, args: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """The arguments of one method, by name (reserved ones dropped, secrets skipped unread)."""
    out: dict[str, Any] = {}
    bit = 8  # bits left in the current octet (8: none started)
    octet = 0
    for name, kind in args:
        if kind == "bit":
            if bit == 8:
                _need(buf, pos, 1, end)
                octet = buf[pos]
                pos += 1
                bit = 0
            value: Any = bool(octet >> bit & 1)
            bit += 1
        else:
            bit = 8
            if kind == "shortstr":
                _need(buf, pos, 1, end)
                n = buf[pos]
                _need(buf, pos + 1, n, end)
                value = buf[pos + 1 : pos + 1 + n].decode("utf-8", "replace")
                pos += 1 + n
            elif kind == "short":
                _need(buf, pos, 2, end)
                (value,) = _U16.unpack_from(buf, pos)
                pos += 2
            elif kind == "long":
                _need(buf, pos, 4, end)
                (value,) = _U32.unpack_from(buf, pos)
                pos += 4
            elif kind == "longlong":
                _need(buf, pos, 8, end)
                (value,) = _U64.unpack_from(buf, pos)
                pos += 8
            elif kind == "octet":
                _need(buf, pos, 1, end)
                value = buf[pos]
                pos += 1
            elif kind in ("longstr", "secret"):
                _need(buf, pos, 4, end)
                (n,) = _U32.unpack_from(buf, pos)
                _need(buf, pos + 4, n, end)
                value = None if kind == "secret" else buf[pos + 4 : pos + 4 + n].decode("utf-8", "replace")
                pos += 4 + n
            else:  # table
                _need(buf, pos, 4, end)
                (n,) = _U32.unpack_from(buf, pos)
                _need(buf, pos + 4, n, end)
                value = read_table(buf, pos + 4, pos + 4 + n, 0)
                pos += 4 + n
        if name != "reserved" and value is not None:
            out[name] = value
    return out


def read_table(buf: bytes, pos: int, end: int, depth: int) -> dict[str, Any]:
    """A field table (spec §4.2.5.5, with RabbitMQ's type letters: errata of 0-9-1)."""
    if depth > MAX_TABLE_DEPTH:
        raise DecodeError("field table too deep")
    out: dict[str, Any] = {}
    while pos < end:
        n = buf[pos]
        _need(buf, pos + 1, n + 1, end)
        key = buf[pos + 1 : pos + 1 + n].decode("utf-8", "replace")
        value, pos = _read_value(buf, pos + 1 + n, end, depth)
        out[key] = value
    return out


def _read_value(buf: bytes, pos: int, end: int, depth: int) -> tuple[Any, int]:
    _need(buf, pos, 1, end)
    t = buf[pos]
    pos += 1
    if t == 0x53 or t == 0x78:  # 'S' long string, 'x' byte array
        _need(buf, pos, 4, end)
        (n,) = _U32.unpack_from(buf, pos)
        _need(buf, pos + 4, n, end)
        raw = buf[pos + 4 : pos + 4 + n]
        return (raw.decode("utf-8", "replace") if t == 0x53 else f"<{n} bytes>"), pos + 4 + n
    if t == 0x46:  # 'F' nested table
        _need(buf, pos, 4, end)
        (n,) = _U32.unpack_from(buf, pos)
        _need(buf, pos + 4, n, end)
        return read_table(buf, pos + 4, pos + 4 + n, depth + 1), pos + 4 + n
    if t == 0x41:  # 'A' array
        _need(buf, pos, 4, end)
        (n,) = _U32.unpack_from(buf, pos)
        _need(buf, pos + 4, n, end)
        items = []
        p, stop = pos + 4, pos + 4 + n
        while p < stop:
            item, p = _read_value(buf, p, stop, depth + 1)
            items.append(item)
        return items, stop
    fixed = _FIXED.get(t)
    if fixed is None:
        raise DecodeError("bad field type", chr(t) if 32 < t < 127 else str(t))
    size, reader = fixed
    _need(buf, pos, size, end)
    return reader(buf, pos), pos + size


_FIXED: dict[int, tuple[int, Any]] = {
    0x74: (1, lambda b, p: bool(b[p])),  # 't' boolean
    0x62: (1, lambda b, p: _I8.unpack_from(b, p)[0]),  # 'b' int8
    0x42: (1, lambda b, p: b[p]),  # 'B' uint8
    0x73: (2, lambda b, p: _I16.unpack_from(b, p)[0]),  # 's' int16 (RabbitMQ)
    0x75: (2, lambda b, p: _U16.unpack_from(b, p)[0]),  # 'u' uint16
    0x49: (4, lambda b, p: _I32.unpack_from(b, p)[0]),  # 'I' int32
    0x69: (4, lambda b, p: _U32.unpack_from(b, p)[0]),  # 'i' uint32
    0x6C: (8, lambda b, p: _I64.unpack_from(b, p)[0]),  # 'l' int64
    0x4C: (8, lambda b, p: _I64.unpack_from(b, p)[0]),  # 'L' int64 (0-9-1 spec letter)
    0x66: (4, lambda b, p: _F32.unpack_from(b, p)[0]),  # 'f' float
    0x64: (8, lambda b, p: _F64.unpack_from(b, p)[0]),  # 'd' double
    0x44: (5, lambda b, p: _I32.unpack_from(b, p + 1)[0] / 10 ** b[p]),  # 'D' decimal
    0x54: (8, lambda b, p: _U64.unpack_from(b, p)[0]),  # 'T' timestamp
    0x56: (0, lambda b, p: None),  # 'V' void
}
