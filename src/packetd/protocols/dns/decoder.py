"""DNS decoder (RFC 1035, RFC 6891 EDNS, RFC 7766 DNS over TCP), over UDP and TCP.

Theory of operation
-------------------
Every DNS message is parsed on its own into a fresh `Query` or `Answer` (QR bit): nothing of one message
survives into the next, unlike the reference (§18 item 14), whose answer lists grew across the messages of
one 4-tuple. Over UDP each `receive()` is exactly one datagram (`DecoderContext.transport == "udp"`); over
TCP each message is preceded by a two-byte length (RFC 1035 §4.2.2), several messages may share a segment
and one message may span many, so each direction keeps a buffer bounded by the largest length a prefix can
state (65535 bytes).

A message is parsed once per engine: what the bytes after the id parse to is remembered (MAX_PARSED, in
`DecoderContext.shared`, as a shared `messages.Parsed`), since resolvers repeat the same questions with new
ids and get the same answers: a message parsed before costs one copy of its bytes after the id (the key),
one lookup and one small object. Names are read once per message (a compression pointer to a name already read takes it from there).

Pairing is by (id, first question) through the keyed matcher (`pair_key`). The decoder remembers the keys
of queries it has seen and not yet seen answered (bounded): a second query with the same key before the
answer is a retransmission (a stub resolver's retry after a timeout): it is not a new request, and the
answer is flagged `retransmitted`. An answer with the TC bit (RFC 1035 §4.1.1, RFC 7766 §5) is flagged
`truncated`; the client's retry over TCP is another connection and so another roundtrip.

Names are read with compression pointers (RFC 1035 §4.1.4). Every pointer must point strictly before the
start of the label run that led to it (as dnspython requires), so a chain of pointers strictly decreases
and cannot loop; a pointer that does not is a `DecodeError`, as are labels past the end, names over 255
bytes, the reserved label types 0x40/0x80, and record data that ends early or runs past its RDLENGTH.

Every opcode is decoded with the same header and four sections (RFC 1035 §4.1.1): QUERY, IQUERY (1,
RFC 1035 §6.4: an answer record and no question), STATUS (2), NOTIFY (4, RFC 1996: the zone's SOA as the
question), UPDATE (5, RFC 2136 §2: the sections are zone, prerequisite, update and additional, kept in
`questions`, `answers`, `authority`, `additional`; their class ANY/NONE records have empty RDATA) and DSO
(6, RFC 8490: TLVs after the header, not kept). A record's `operation` is the opcode name for anything but
QUERY, the first question's type for QUERY. Pairing is the same for all: the server echoes id and the zone
or question (unbound answers UPDATE, IQUERY and STATUS with NOTIMP and keeps the zone section).

Record data is decoded for A, AAAA, CNAME, NS, PTR, DNAME, MX, SRV, SOA, TXT, SPF, CAA, HTTPS and SVCB;
other types keep only their length. The OPT pseudo-record becomes the message's `edns` (UDP size, DO bit,
version, option codes and lengths; option values are not kept).

Joining mid-stream: UDP needs no synchronisation. Over TCP a capture that starts inside a message cannot
find the next length prefix by content alone; the decoder assumes the first byte it sees starts a message
(stream starts nearly always coincide with segment starts for DNS) and a message that does not parse is a
`DecodeError`, after which the session starts a fresh decoder on the next segment. A gap inside a message of
known length drops that message and keeps the framing; a gap elsewhere waits for the next segment.

Wire format (RFC 1035 §4.1):

    +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
    |                      ID                       |
    |QR|   Opcode  |AA|TC|RD|RA| Z|AD|CD|   RCODE   |
    |                    QDCOUNT                    |   then QDCOUNT questions: QNAME QTYPE QCLASS
    |                    ANCOUNT                    |   and ANCOUNT + NSCOUNT + ARCOUNT records:
    |                    NSCOUNT                    |   NAME TYPE CLASS TTL(32) RDLENGTH RDATA
    |                    ARCOUNT                    |
    +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
    over TCP: | length (16) | message |
"""

from __future__ import annotations

import dataclasses
import socket
import struct
from collections.abc import Callable, Sequence
from typing import Any, Final

from packetd.protocols.base import (
    NO_MESSAGES,
    DecodeError,
    DecoderContext,
    Direction,
    Flag,
    Message,
    SwapRoles,
)
from packetd.protocols.dns.messages import Answer, DnsMessage, Edns, Parsed, Query, Question, Record, parsed
from packetd.protocols.dns.options import DnsOptions

_C2S = Direction.C2S  # a module constant: reading an enum member from its class costs ~0.25 us (3.11)
# a TCP length prefix cannot state more (RFC 1035 §4.2.2); UDP datagrams are smaller
MAX_MESSAGE: Final = 65535
MAX_NAME: Final = 255  # RFC 1035 §2.3.4: a name is at most 255 octets on the wire
# unanswered (id, question) keys remembered per flow to spot retransmissions
MAX_PENDING_QUERIES: Final = 1024
HEADER_SIZE: Final = 12
OPCODE_UPDATE: Final = 5

_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
_Q = struct.Struct("!HH")
_U16 = struct.Struct("!H")
_MX = struct.Struct("!H")
_SRV = struct.Struct("!HHH")
_SOA = struct.Struct("!IIIII")
# names read so far in one message: start offset → (name with its trailing dot, wire length)
_Memo = dict[int, tuple[str, int]]
_SAFE = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_*/"  # need no escaping


def _label_text(label: bytes) -> str:
    """A label in presentation format (RFC 1035 §5.1): '.', '\\' and non-printables escaped."""
    if not label.translate(None, _SAFE):
        return label.decode("ascii")
    out = []
    for b in label:
        if b in (0x2E, 0x5C) or b <= 0x20 or b >= 0x7F:
            out.append(f"\\{b:03d}" if b <= 0x20 or b >= 0x7F else "\\" + chr(b))
        else:
            out.append(chr(b))
    return "".join(out)


def _labels_text(raw: list[bytes]) -> str:
    """Labels in presentation format joined by '.' (no trailing dot); one check for the common case."""
    if not b"".join(raw).translate(None, _SAFE):
        return b".".join(raw).decode("ascii")
    return ".".join([_label_text(label) for label in raw])


def read_name(buf: bytes, pos: int, end: int, memo: _Memo | None = None) -> tuple[str, int]:
    """The name at `pos` (presentation form, trailing dot) and the offset after it; it must end by `end`.

    `memo` (one per message): start offset → (name, wire length) of the names read so far. A compression pointer to one of them takes it from there instead of reading it again: the
    labels at an offset read the same whatever led to them (the pointer rule's limit is the target itself
    either way, and a pointer's labels may run to the end of the message), so only the 255-byte bound is
    checked again, on the whole name.
    """
    first = pos
    raw: list[bytes] = []
    after = -1
    limit = pos  # the next pointer must point before this offset (see the module docstring)
    total = 0
    n = end
    suffix: str | None = None
    while True:
        if pos >= n:
            raise DecodeError("name past end")
        length = buf[pos]
        if length == 0:
            pos += 1
            break
        if length >= 0xC0:
            if pos + 1 >= n:
                raise DecodeError("name past end")
            target = ((length & 0x3F) << 8) | buf[pos + 1]
            if target >= limit:
                raise DecodeError("bad compression pointer")
            if target < HEADER_SIZE and memo is not None:
                memo[_POINTS_INTO_HEADER] = ("", 0)  # the name reads the header: parse_message must know
            if after < 0:
                after = pos + 2
                n = len(buf)  # the pointed-to labels lie earlier in the message, outside [pos, end)
            if memo is not None:
                known = memo.get(target)
                if known is not None:
                    suffix, wire = known
                    total += wire
                    if total >= MAX_NAME:
                        raise DecodeError("name too long")
                    break
            pos = limit = target
            continue
        if length > 63:
            raise DecodeError("bad label type")
        total += length + 1
        if total >= MAX_NAME:
            raise DecodeError("name too long")
        start = pos + 1
        pos = start + length
        if pos > n:
            raise DecodeError("name past end")
        raw.append(buf[start:pos])
    text = _labels_text(raw) if raw else ""
    if suffix is not None and suffix != ".":
        full = f"{text}.{suffix}" if text else suffix
    else:
        full = text + "." if text else "."
    if memo is not None:
        memo[first] = (full, total)
    return full, (after if after >= 0 else pos)


def _strings(buf: bytes, pos: int, end: int) -> list[str]:
    """<character-string>s (RFC 1035 §3.3) from pos to end."""
    out = []
    while pos < end:
        length = buf[pos]
        pos += 1
        if pos + length > end:
            raise DecodeError("bad character-string")
        out.append(buf[pos : pos + length].decode("utf-8", "backslashreplace"))
        pos += length
    return out


def _rd_a(buf: bytes, pos: int, end: int, memo: _Memo) -> Any:
    if end - pos != 4:
        raise DecodeError("bad A rdata")
    return socket.inet_ntop(socket.AF_INET, buf[pos:end])


def _rd_aaaa(buf: bytes, pos: int, end: int, memo: _Memo) -> Any:
    if end - pos != 16:
        raise DecodeError("bad AAAA rdata")
    return socket.inet_ntop(socket.AF_INET6, buf[pos:end])


def _rd_name(buf: bytes, pos: int, end: int, memo: _Memo) -> Any:
    name, after = read_name(buf, pos, end, memo)
    if after != end:
        raise DecodeError("bad name rdata")
    return name


def _rd_mx(buf: bytes, pos: int, end: int, memo: _Memo) -> Any:
    if end - pos < 3:
        raise DecodeError("bad MX rdata")
    (pref,) = _MX.unpack_from(buf, pos)
    return {"preference": pref, "exchange": _rd_name(buf, pos + 2, end, memo)}


def _rd_srv(buf: bytes, pos: int, end: int, memo: _Memo) -> Any:
    if end - pos < 7:
        raise DecodeError("bad SRV rdata")
    prio, weight, port = _SRV.unpack_from(buf, pos)
    return {"priority": prio, "weight": weight, "port": port, "target": _rd_name(buf, pos + 6, end, memo)}


def _rd_soa(buf: bytes, pos: int, end: int, memo: _Memo) -> Any:
    mname, pos = read_name(buf, pos, end, memo)
    rname, pos = read_name(buf, pos, end, memo)
    if end - pos != 20:
        raise DecodeError("bad SOA rdata")
    serial, refresh, retry, expire, minimum = _SOA.unpack_from(buf, pos)
    return {
        "mname": mname,
        "rname": rname,
        "serial": serial,
        "refresh": refresh,
        "retry": retry,
        "expire": expire,
        "minimum": minimum,
    }


def _rd_txt(buf: bytes, pos: int, end: int, memo: _Memo) -> Any:
    return _strings(buf, pos, end)


def _rd_caa(buf: bytes, pos: int, end: int, memo: _Memo) -> Any:
    if end - pos < 2 or pos + 2 + buf[pos + 1] > end:
        raise DecodeError("bad CAA rdata")
    taglen = buf[pos + 1]
    return {
        "flags": buf[pos],
        "tag": buf[pos + 2 : pos + 2 + taglen].decode("ascii", "backslashreplace"),
        "value": buf[pos + 2 + taglen : end].decode("utf-8", "backslashreplace"),
    }


_SVC_KEYS = {0: "mandatory", 1: "alpn", 2: "no-default-alpn", 3: "port", 4: "ipv4hint", 5: "ech", 6: "ipv6hint",
             7: "dohpath", 8: "ohttp"}  # fmt: skip


def _svc_value(key: int, v: bytes) -> str:
    """A SvcParam value in presentation form (RFC 9460 §7); opaque ones by length."""
    if key == 1:
        return ",".join(_strings(v, 0, len(v)))
    if key == 3 and len(v) == 2:
        return str(_U16.unpack(v)[0])
    if key == 4 and len(v) % 4 == 0:
        return ",".join(socket.inet_ntop(socket.AF_INET, v[i : i + 4]) for i in range(0, len(v), 4))
    if key == 6 and len(v) % 16 == 0:
        return ",".join(socket.inet_ntop(socket.AF_INET6, v[i : i + 16]) for i in range(0, len(v), 16))
    if key == 0 and len(v) % 2 == 0:
        return ",".join(
            _SVC_KEYS.get(k, f"key{k}") for (k,) in (_U16.unpack_from(v, i) for i in range(0, len(v), 2))
        )
    if key == 2 or key == 8:
        return ""
    if key == 7:
        return v.decode("utf-8", "backslashreplace")
    return f"<{len(v)} bytes>"


def _rd_svcb(buf: bytes, pos: int, end: int, memo: _Memo) -> Any:
    """SVCB / HTTPS (RFC 9460 §2.2): priority, target (uncompressed), key=value parameters."""
    if end - pos < 3:
        raise DecodeError("bad SVCB rdata")
    (prio,) = _U16.unpack_from(buf, pos)
    target, pos = read_name(buf, pos + 2, end, memo)
    params: dict[str, str] = {}
    while pos < end:
        if end - pos < 4:
            raise DecodeError("bad SVCB rdata")
        key, length = _RR_KEYLEN.unpack_from(buf, pos)
        pos += 4
        if pos + length > end:
            raise DecodeError("bad SVCB rdata")
        params[_SVC_KEYS.get(key, f"key{key}")] = _svc_value(key, buf[pos : pos + length])
        pos += length
    return {"priority": prio, "target": target, "params": params}


_RR_KEYLEN = struct.Struct("!HH")
_RDATA: dict[int, Callable[[bytes, int, int, _Memo], Any]] = {
    1: _rd_a,
    28: _rd_aaaa,
    2: _rd_name,
    5: _rd_name,
    12: _rd_name,
    39: _rd_name,
    15: _rd_mx,
    33: _rd_srv,
    6: _rd_soa,
    16: _rd_txt,
    99: _rd_txt,
    257: _rd_caa,
    64: _rd_svcb,
    65: _rd_svcb,
}


# messages remembered by their bytes after the id, per engine (`DecoderContext.shared`): a resolver asks the
# same questions again and again (a new id, the same bytes otherwise) and gets the same answers, so most
# messages are parsed once, and a message parsed before costs one copy of its bytes (the key) and one
# lookup. Values are immutable (tuples, strings) but for the dicts of a few record types' data and the
# JSON view, which no output changes. The oldest go first beyond the bound; that loses no data, only the
# saving, so it is not counted.
MAX_PARSED: Final = 4096
SHARED_PARSED = "dns_parsed"  # the store's key in the engine's per-protocol `shared` dict
_POINTS_INTO_HEADER: Final = -1  # memo key set when a compression pointer pointed into the header (the id)


def parse_message(
    buf: memoryview,
    start_ns: int,
    end_ns: int,
    size: int,
    flags: int,
    transport: str,
    max_records: int,
    store: dict[bytes, Parsed] | None = None,
) -> DnsMessage:
    """One whole DNS message → `Query` or `Answer`; DecodeError when it does not parse. `store`: the
    messages parsed before, by their bytes after the id (MAX_PARSED); the message's bytes are copied once
    for its key, and again, whole, only when they were not parsed before."""
    if len(buf) < HEADER_SIZE:
        raise DecodeError("short message")
    (ident,) = _U16.unpack_from(buf, 0)
    if store is None:
        p = _parse(buf.tobytes(), max_records)
    else:
        rest = buf[2:].tobytes()
        hit = store.get(rest)
        if hit is not None and hit.max_records == max_records:
            p = hit
        else:
            p = _parse(buf.tobytes(), max_records)
            # not when a name read the id (a pointer into the header): the result depends on it
            if p.max_records >= 0:
                if len(store) >= MAX_PARSED and rest not in store:
                    del store[next(iter(store))]
                store[rest] = p
    bits = p.bits
    if bits & 0x8200 == 0x8200:
        flags |= Flag.TRUNCATED  # TC: the answer did not fit (the client retries over TCP)
    key = p.key
    pair_key = (ident, key[0], key[1], key[2])
    if bits & 0x8000:
        return Answer(start_ns, end_ns, size, flags, ident, transport, pair_key, p)
    return Query(start_ns, end_ns, size, flags, ident, transport, pair_key, p)


def _parse(buf: bytes, max_records: int) -> Parsed:
    """Everything but the id of one whole message (its `max_records`: -1 when a name read the id)."""
    n = len(buf)
    _ident, bits, qd, an, ns, ar = _HEADER.unpack_from(buf, 0)
    if qd > 255:
        raise DecodeError("too many questions")  # real messages carry one (RFC 9619); bound the loop
    pos = HEADER_SIZE
    memo: _Memo = {}
    questions: list[Question] = []
    for _ in range(qd):
        name, pos = read_name(buf, pos, n, memo)
        if pos + 4 > n:
            raise DecodeError("question past end")
        qtype, qclass = _Q.unpack_from(buf, pos)
        pos += 4
        questions.append((name, qtype, qclass))
    # UPDATE (RFC 2136 §2.4, §2.5): prerequisites and updates of class ANY or NONE carry no RDATA
    # ("RRset exists", "delete an RRset", ...), whatever their type: RDLENGTH 0 is then legal, not short
    empty_rdata_ok = (bits >> 11) & 0xF == OPCODE_UPDATE
    answers: tuple[Record, ...] = ()
    authority: tuple[Record, ...] = ()
    additional: tuple[Record, ...] = ()
    edns: Edns | None = None
    if an:
        answers, pos, _ = _section(buf, pos, an, False, memo, max_records, empty_rdata_ok)
    if ns:
        authority, pos, _ = _section(buf, pos, ns, False, memo, max_records, empty_rdata_ok)
    if ar:
        additional, pos, edns = _section(buf, pos, ar, True, memo, max_records, empty_rdata_ok)
    return parsed(
        -1 if _POINTS_INTO_HEADER in memo else max_records, bits, tuple(questions), answers, authority,
        additional, (qd, an, ns, ar), edns,
    )  # fmt: skip


def _section(
    buf: bytes, pos: int, count: int, is_additional: bool, memo: _Memo, max_records: int, empty_ok: bool
) -> tuple[tuple[Record, ...], int, Edns | None]:
    """`count` records from `pos`: (the first `max_records` of them, the offset after, the OPT record's
    EDNS, legal only in the additional section); `empty_ok`: RDLENGTH 0 is legal for every type."""
    n = len(buf)
    kept: list[Record] = []
    edns: Edns | None = None
    rdata = _RDATA
    for _ in range(count):
        # the common owner name, a pointer to a name read before (the question's): no call
        known = None
        if pos + 1 < n and buf[pos] >= 0xC0:
            target = ((buf[pos] & 0x3F) << 8) | buf[pos + 1]
            if target < pos:
                known = memo.get(target)
        if known is not None:
            name = known[0]
            pos += 2
        else:
            name, pos = read_name(buf, pos, n, memo)
        if pos + 10 > n:
            raise DecodeError("record past end")
        rtype, rclass, ttl, rdlength = _RR.unpack_from(buf, pos)
        pos += 10
        end = pos + rdlength
        if end > n:
            raise DecodeError("rdata past end")
        if rtype == 41:
            if edns is not None or not is_additional or name != ".":
                raise DecodeError("bad OPT record")  # RFC 6891 §6.1.1: one, in additional, root owner
            edns = _edns(buf, pos, end, rclass, ttl)
        elif len(kept) < max_records:
            decode = rdata.get(rtype) if rdlength or not empty_ok else None
            kept.append((name, rtype, rclass, ttl, rdlength, decode(buf, pos, end, memo) if decode else None))
        pos = end
    return tuple(kept), pos, edns


def _edns(buf: bytes, pos: int, end: int, udp_size: int, ttl: int) -> Edns:
    ext_rcode, version, z = ttl >> 24, (ttl >> 16) & 0xFF, ttl & 0xFFFF  # RFC 6891 §6.1.3
    options: list[tuple[int, int]] = []
    while pos < end:
        if end - pos < 4:
            raise DecodeError("bad EDNS option")
        code, length = _RR_KEYLEN.unpack_from(buf, pos)
        pos += 4 + length
        if pos > end:
            raise DecodeError("bad EDNS option")
        options.append((code, length))
    return Edns(udp_size, ext_rcode, version, bool(z & 0x8000), tuple(options))


class _Side:
    """One direction of a TCP connection: the partial message being collected."""

    __slots__ = ("buf", "flags", "need", "skip", "start_ns")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.need = -1  # message length once the prefix is read, -1 before
        self.skip = 0  # bytes of a message lost in a gap still to discard
        self.start_ns = -1
        self.flags = 0


_DEFAULT_OPTIONS = DnsOptions()
_NO_SIDES: tuple[_Side, _Side] = (_Side(), _Side())  # placeholders for UDP: never written


class DnsDecoder:
    """Decoder for one DNS flow (a UDP 4-tuple or a TCP connection); see the module docstring."""

    def __init__(self, ctx: DecoderContext | None = None) -> None:
        ctx = ctx or DecoderContext()
        opts = ctx.options if isinstance(ctx.options, DnsOptions) else _DEFAULT_OPTIONS
        self._max_records = opts.max_records
        # messages parsed before on any flow of this engine (MAX_PARSED); a decoder on its own keeps its own
        self._parsed: dict[bytes, Parsed] = (
            ctx.shared.setdefault(SHARED_PARSED, {}) if ctx.shared is not None else {}
        )
        self._udp = ctx.transport == "udp"
        self._transport = "udp" if self._udp else "tcp"
        # per-direction TCP framing state; a UDP flow (one per query, for most stub resolvers) has none
        self._sides = (_Side(), _Side()) if not self._udp else _NO_SIDES
        self._pending: dict[tuple[int, str, int, int], bool] = {}  # query key → retransmitted
        self._produced = False
        self._midstream = ctx.midstream

    # -- the Decoder interface ---------------------------------------------------------------------------
    def receive(self, direction: Direction, data: memoryview, ts_ns: int) -> Sequence[Message]:
        if self._udp:
            msg = parse_message(data, ts_ns, ts_ns, len(data), 0, "udp", self._max_records, self._parsed)
            out: list[Message] = []
            self._track(direction, msg, out)
            return out
        return self._receive_tcp(direction, data, ts_ns)

    def receive_gap(self, direction: Direction, nbytes: int, ts_ns: int) -> Sequence[Message]:
        if self._udp:
            return NO_MESSAGES
        side = self._sides[direction]
        if side.need >= 0 and len(side.buf) + nbytes <= side.need:
            # the hole lies inside a message of known length: that message is lost, framing is not
            side.skip = side.need - len(side.buf) - nbytes
            side.buf.clear()
            side.need = -1
            return NO_MESSAGES
        if side.skip >= nbytes:
            side.skip -= nbytes
            return NO_MESSAGES
        # the hole covers a length prefix: assume the next segment starts a message (module docstring)
        side.buf.clear()
        side.need = -1
        side.skip = 0
        side.flags = Flag.GAP
        return NO_MESSAGES

    def receive_eof(self, direction: Direction, ts_ns: int) -> Sequence[Message]:
        if self._udp:
            return NO_MESSAGES
        side = self._sides[direction]
        side.buf.clear()
        side.need = -1
        return NO_MESSAGES

    def resume(self, key: tuple[int, str, int, int] | None) -> None:
        """Go on from a conversation begun without a decoder (pairing/dns_udp.py): a message was produced,
        and the query under `key` (if any) is pending, not retransmitted."""
        self._produced = True
        if key is not None:
            self._pending[key] = False

    # -- TCP framing ---------------------------------------------------------------------------------------
    def _receive_tcp(self, direction: Direction, data: memoryview, ts_ns: int) -> Sequence[Message]:
        side = self._sides[direction]
        out: list[Message] = []
        pos = 0
        n = len(data)
        if side.skip:
            take = min(side.skip, n)
            side.skip -= take
            pos = take
        while pos < n:
            buf = side.buf
            if side.need < 0:  # the two-byte length prefix, possibly split across segments
                if side.start_ns < 0:
                    side.start_ns = ts_ns
                if not buf and n - pos >= 2:
                    (need,) = _U16.unpack_from(data, pos)
                    pos += 2
                else:
                    buf.append(data[pos])
                    pos += 1
                    if len(buf) < 2:
                        continue
                    (need,) = _U16.unpack_from(buf, 0)
                    buf.clear()
                if need < HEADER_SIZE:
                    raise DecodeError("bad tcp length", str(need))
                side.need = need
            need = side.need
            if not buf and n - pos >= need:
                body = data[pos : pos + need]  # parse_message copies what it keeps
                pos += need
            else:
                take = min(need - len(buf), n - pos)
                buf += data[pos : pos + take]
                pos += take
                if len(buf) < need:
                    break
                body = memoryview(bytes(buf))  # a copy: buf is cleared and refilled
                buf.clear()
            start = side.start_ns if side.start_ns >= 0 else ts_ns
            msg = parse_message(
                body, start, ts_ns, need + 2, side.flags, "tcp", self._max_records, self._parsed
            )
            side.need = -1
            side.start_ns = -1
            side.flags = 0
            self._track(direction, msg, out)
        return out

    # -- retransmissions and roles -------------------------------------------------------------------------
    def _track(self, direction: Direction, msg: DnsMessage, out: list[Message]) -> None:
        pending = self._pending
        if not self._produced:
            self._produced = True
            if (msg.ROLE is Answer.ROLE) == (direction is _C2S):
                # a query sent by the guessed server (both ports matched a rule): the roles were wrong
                if not self._udp:
                    self._sides = (self._sides[1], self._sides[0])
                out.append(SwapRoles(start_ns=0, end_ns=0, size=0, flags=0))
        key = msg.pair_key
        if isinstance(msg, Query):
            if key in pending:
                pending[key] = True  # a retransmission: the matcher keeps the first query
                return
            if len(pending) >= MAX_PENDING_QUERIES:
                del pending[next(iter(pending))]
            pending[key] = False
            out.append(msg)
            return
        retransmitted = pending.pop(key, False)
        if retransmitted:
            msg = dataclasses.replace(msg, flags=msg.flags | Flag.RETRANSMITTED)
        out.append(msg)


def new_decoder(ctx: DecoderContext) -> DnsDecoder:
    """Registry factory."""
    return DnsDecoder(ctx)
