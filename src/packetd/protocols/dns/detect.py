"""DNS detection: a well-formed header and first question (RFC 1035 §4.1.1, §4.1.2), over UDP or TCP.

    [length (16), over TCP only] | id (16) | QR opcode(4) AA TC RD RA Z AD CD rcode(4) |
    qdcount = 1 | ancount | nscount | arcount | QNAME (labels 1-63, ≤ 255 bytes) | qtype (16) | qclass (16)

A query (QR = 0, opcode QUERY/IQUERY/STATUS/NOTIFY/UPDATE) has one question and no answers; its labels
are host-name bytes (letters, digits, `-`, `_`, `*`, `/`; RFC 2181 allows any, resolvers are asked for
these); the class is IN, CH, HS, NONE, ANY (mDNS sets the top bit). A response (QR = 1) to one is the server's side of a
conversation joined mid-stream. The same check runs on the message after a TCP length prefix; detectors are
not told the transport, and the header's fixed fields leave a chance reading about 2^-40.
"""

from __future__ import annotations

import struct
from functools import partial

from packetd.protocols.detection import MORE, NO, YES, Verdict, either_side

_HEADER = struct.Struct("!HHHHHH")
_LABEL = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_*/")
_CLASSES = frozenset({1, 3, 4, 254, 255})
_OPCODES = frozenset({0, 1, 2, 4, 5})


def _question(msg: bytes, pos: int) -> int | Verdict:
    """The index after the question at `pos` (a name of host-name labels, type, class), or MORE / NO."""
    start = pos
    while True:
        if pos >= len(msg):
            return MORE
        n = msg[pos]
        if n == 0:
            break
        if n > 63 or pos + 1 + n - start > 255:
            return NO
        label = msg[pos + 1 : pos + 1 + n]
        if any(b not in _LABEL for b in label):
            return NO
        if len(label) < n:
            return MORE
        pos += 1 + n
    if len(msg) < pos + 5:
        return MORE
    qtype, qclass = struct.unpack_from("!HH", msg, pos + 1)
    if qtype == 0 or (qclass & 0x7FFF) not in _CLASSES:
        return NO
    return pos + 5


def _message(msg: bytes, response: bool) -> Verdict:
    """A query (`response` False) or a response to one, at the start of `msg`."""
    if len(msg) < 12:
        return MORE
    _id, flags, qd, an, ns, ar = _HEADER.unpack_from(msg)
    if bool(flags & 0x8000) != response or (flags >> 11) & 0xF not in _OPCODES or qd != 1 or flags & 0x0040:
        return NO  # 0x0040: the Z bit, zero in every query and response (RFC 1035 §4.1.1, RFC 6840 §5.7)
    if not response and (an or ns > 1 or ar > 2 or flags & 0x000F):
        return NO  # a query carries no answers, no rcode; UPDATE uses ns, EDNS and TSIG use ar
    end = _question(msg, 12)
    return end if isinstance(end, Verdict) else YES


def _either(buf: bytes, response: bool) -> Verdict:
    """The message read as a datagram, or after a TCP length prefix (a message is at least 17 bytes)."""
    datagram = _message(buf, response)
    if datagram is YES:
        return YES
    if len(buf) < 2:
        return MORE
    framed = _message(buf[2:], response) if int.from_bytes(buf[:2], "big") >= 17 else NO
    if framed is YES:
        return YES
    return MORE if MORE in (datagram, framed) else NO


_query = partial(_either, response=False)  # the client side
_answer = partial(_either, response=True)


def detect(c2s: bytes, s2c: bytes) -> Verdict:
    """A query from the client, or a response from the server (a conversation joined mid-stream)."""
    return either_side(c2s, s2c, _query, _answer)
