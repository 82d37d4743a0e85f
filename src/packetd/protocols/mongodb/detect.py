"""MongoDB detection: a message header with a known opcode and a body that starts as that opcode's does.

    header     int32 messageLength (16 + body, ≤ 48 MB) | int32 requestID | int32 responseTo | int32 opCode
    OP_MSG     uint32 flagBits (only bits 0, 1, 16 defined) | kind 0 | BSON document
    OP_QUERY   int32 flags (bits 1-7) | cstring "db.collection" | int32 skip | int32 return | BSON document
    OP_REPLY   int32 responseFlags (bits 0-3) | int64 cursorID | int32 startingFrom | int32 numberReturned | BSON
    OP_COMPRESSED  int32 originalOpcode | int32 uncompressedSize | uint8 compressorId (0-3)
    BSON       int32 length (≥ 5) | element type (1-19, 127, 255) | cstring name ...

Each message carries its own length, so any message that starts a segment is a starting point: a
connection joined mid-stream is detected from the first message it shows. Either direction decides (the
server's replies alone are enough for a connection whose requests were not captured).
"""

from __future__ import annotations

import struct
from functools import partial

from packetd.protocols.detection import MORE, NO, YES, Verdict, either_side

_HEADER = struct.Struct("<iiii")
_I32 = struct.Struct("<i")
_MAX_MESSAGE = 48_000_000  # maxMessageSizeBytes
_BSON_TYPES = frozenset(range(1, 20)) | {127, 255}
_MSG, _QUERY, _REPLY, _COMPRESSED = 2013, 2004, 1, 2012
_KNOWN = frozenset({1, 2001, 2002, 2004, 2005, 2006, 2007, 2012, 2013})


def _cstring(buf: bytes, pos: int, limit: int = 128) -> int | Verdict:
    """The index after the printable NUL-terminated name at `pos`, or MORE / NO."""
    end = buf.find(b"\x00", pos, pos + limit)
    text = buf[pos:end] if end >= 0 else buf[pos : pos + limit]
    if any(b < 0x20 or b > 0x7E for b in text):
        return NO
    if end < 0:
        return MORE if len(buf) < pos + limit else NO
    return end + 1


def _document(buf: bytes, pos: int, room: int) -> Verdict:
    """A BSON document starts at `pos`: a sane length and a first element with a known type and a name."""
    if len(buf) < pos + 5:
        return MORE
    (length,) = _I32.unpack_from(buf, pos)
    if not 5 <= length <= room:
        return NO
    etype = buf[pos + 4]
    if length == 5:
        return YES if etype == 0 else NO
    if etype not in _BSON_TYPES:
        return NO
    name = _cstring(buf, pos + 5)
    return name if isinstance(name, Verdict) else YES


def _body(buf: bytes, length: int, opcode: int) -> Verdict:
    n = len(buf)
    if opcode == _MSG:
        if n < 21:
            return MORE
        if _I32.unpack_from(buf, 16)[0] & ~0x10003 or buf[20] not in (0, 1):
            return NO
        if buf[20] == 0:
            return _document(buf, 21, length - 21)
        if n < 25:  # kind 1: int32 size | cstring identifier | documents
            return MORE
        if not 5 < _I32.unpack_from(buf, 21)[0] <= length - 21:
            return NO
        name = _cstring(buf, 25)
        return name if isinstance(name, Verdict) else YES
    if opcode == _QUERY:
        if n < 20:
            return MORE
        if _I32.unpack_from(buf, 16)[0] & ~0xFE:
            return NO
        end = _cstring(buf, 20)
        if isinstance(end, Verdict):
            return end
        if b"." not in buf[20:end]:
            return NO
        return _document(buf, end + 8, length - end - 8)
    if opcode == _REPLY:
        if n < 36:
            return MORE
        if _I32.unpack_from(buf, 16)[0] & ~0xF:
            return NO
        return _document(buf, 36, length - 36)
    if opcode == _COMPRESSED:
        if n < 25:
            return MORE
        original, size = struct.unpack_from("<ii", buf, 16)
        return YES if original in _KNOWN and 0 < size <= _MAX_MESSAGE and buf[24] <= 3 else NO
    return NO


def _message(buf: bytes, request: bool) -> Verdict:
    if len(buf) < 16:
        return MORE
    length, _request_id, response_to, opcode = _HEADER.unpack_from(buf)
    if not 16 < length <= _MAX_MESSAGE or opcode not in (_MSG, _QUERY, _REPLY, _COMPRESSED):
        return NO
    if request and (opcode == _REPLY or (opcode == _MSG and response_to != 0)):
        return NO
    if not request and opcode == _QUERY:
        return NO
    return _body(buf, length, opcode)


_request = partial(_message, request=True)  # the client side
_reply = partial(_message, request=False)


def detect(c2s: bytes, s2c: bytes) -> Verdict:
    """A request from the client, or a reply from the server."""
    return either_side(c2s, s2c, _request, _reply)
