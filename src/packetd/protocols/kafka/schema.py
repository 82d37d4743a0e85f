"""Walking Kafka request and response bodies with Apache Kafka's own message schemas (schema_data.py).

A schema lists every field of an API with the versions it exists in; for one (api key, version, direction)
it compiles once into a plan: the fields present in that version, in wire order, with their encoding
(classic or flexible: compact lengths and tagged-field sections, KIP-482). Walking a body with its plan
reads only what the record needs — error codes (wherever the schema puts them), group ids, topic names
and ids, partition indexes, acks and record data — and skips everything else by its length. A body that
ends before the walk does (the decoder keeps at most `max_parse_bytes`) yields what was read so far.

Records (`records` fields) are counted without being decoded: RecordBatch v2 headers give the record
count; legacy message sets (magic 0/1) count one per message. The first record of the first batch is read
for a `traceparent` header when the batch is uncompressed or gzip (bounded inflate).

Wire encodings (Kafka protocol guide, "Protocol Primitive Types"; KIP-482 for the compact ones):

    classic   string: int16 length (-1 null) | bytes, records: int32 length (-1 null) | array: int32 count
    flexible  compact string/bytes/records: uvarint length+1 (0 null) | compact array: uvarint count+1
              each struct ends with tagged fields: uvarint count, then (uvarint tag, uvarint size, data)
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

from packetd.protocols.base import DecodeError
from packetd.protocols.framing import Short, uvarint, zigzag_varint
from packetd.protocols.kafka.schema_data import SCHEMAS

MAX_ARRAY = 1_000_000  # elements in one array: more than any real message carries in 100 MB
MAX_DEPTH = 8  # struct nesting in the schemas is at most 4 deep
MAX_TRACE_INFLATE = 64 * 1024  # bytes of a gzip batch inflated to read its first record's headers

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_U16 = struct.Struct(">H")
_FIXED = {"bool": 1, "int8": 1, "int16": 2, "uint16": 2, "int32": 4, "int64": 8, "float64": 8, "uuid": 16}
# fields a record shows (by schema name); everything else is skipped by length
_STRINGS = frozenset({"Name", "Topic", "TopicName", "GroupId", "TransactionalId", "Mechanism"})
_INTS = frozenset({"PartitionIndex", "Index", "Partition", "ThrottleTimeMs"})


# a compiled field: (name, kind, nullable, children plan or None, interesting)
Plan = tuple[tuple[str, str, bool, Any, bool], ...]
_PLANS: dict[tuple[int, int, bool], tuple[Plan, bool]] = {}


def _compile(fields: tuple[Any, ...], version: int) -> Plan:
    out = []
    for name, kind, lo, hi, nlo, nhi, tagged, children in fields:
        if not lo <= version <= hi or tagged:
            continue  # tagged fields are skipped with the tagged-field section
        sub = _compile(children, version) if children else None
        interesting = (
            name == "ErrorCode"
            or (kind == "string" and name in _STRINGS)
            or (kind == "int32" and name in _INTS)
            or (kind == "int16" and name == "Acks")
            or (kind == "uuid" and name == "TopicId")
            or kind == "records"
            or (sub is not None and any(f[4] for f in sub))
        )
        out.append((name, kind, nlo <= version <= nhi, sub, interesting))
    return tuple(out)


def plan_for(api_key: int, version: int, response: bool) -> tuple[Plan, bool] | None:
    """(plan, flexible) for an API version, or None when no schema is known for the API."""
    key = (api_key, version, response)
    cached = _PLANS.get(key)
    if cached is not None:
        return cached
    schema = SCHEMAS.get(api_key)
    if schema is None:
        return None
    _valid, req_flex, resp_flex, req_fields, resp_fields = schema
    flexible = version >= (resp_flex if response else req_flex)
    compiled = (_compile(resp_fields if response else req_fields, version), flexible)
    if len(_PLANS) < 4096:  # bounded: 93 APIs x ~20 versions x 2 directions
        _PLANS[key] = compiled
    return compiled


def flexible_request(api_key: int, version: int) -> bool | None:
    """Request header v2 (flexible) or v1; None when the API's schema is not known."""
    schema = SCHEMAS.get(api_key)
    return None if schema is None else version >= schema[1]


def flexible_response(api_key: int, version: int) -> bool | None:
    """Response header v1 (flexible) or v0; ApiVersions answers with v0 always (KIP-511)."""
    schema = SCHEMAS.get(api_key)
    if schema is None:
        return None
    return api_key != 18 and version >= schema[2]


class Reader:
    """A cursor over the kept bytes of one message body."""

    __slots__ = ("buf", "end", "pos")

    def __init__(self, buf: bytes, pos: int = 0) -> None:
        self.buf = buf
        self.pos = pos
        self.end = len(buf)

    def take(self, n: int) -> int:
        p = self.pos
        if p + n > self.end:
            raise Short
        self.pos = p + n
        return p

    def uvarint(self) -> int:
        p = self.pos
        if p < self.end:
            b = self.buf[p]
            if b < 0x80:  # one byte: nearly every compact length and tag count (hot: no call)
                self.pos = p + 1
                return b
        value, self.pos = uvarint(self.buf, p, self.end)
        return value

    def int16(self) -> int:
        return int(_I16.unpack_from(self.buf, self.take(2))[0])

    def int32(self) -> int:
        return int(_I32.unpack_from(self.buf, self.take(4))[0])

    def string(self, flexible: bool) -> str | None:
        n = self.uvarint() - 1 if flexible else self.int16()
        if n < 0:
            if n == -1:
                return None
            raise DecodeError("bad string length")
        p = self.take(n)
        return self.buf[p : p + n].decode("utf-8", "replace")

    def length(self, flexible: bool) -> int:
        """Length of bytes/records (-1: null)."""
        n = self.uvarint() - 1 if flexible else self.int32()
        if n < -1:
            raise DecodeError("bad bytes length")
        return n

    def count(self, flexible: bool) -> int:
        n = self.uvarint() - 1 if flexible else self.int32()
        if n < -1 or n > MAX_ARRAY:
            raise DecodeError("bad array length")
        return n

    def tagged(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            size = self.uvarint()
            self.take(size)


def walk(plan: Plan, r: Reader, flexible: bool, out: dict[str, Any], depth: int = 0) -> None:
    """Read one struct with `plan`, storing the interesting fields in `out` (children as lists of dicts)."""
    if depth > MAX_DEPTH:
        raise DecodeError("schema nesting too deep")
    for name, kind, _nullable, sub, interesting in plan:
        size = _FIXED.get(kind)
        if size is not None:
            p = r.take(size)
            if interesting:
                if kind == "int16":
                    out[name] = _I16.unpack_from(r.buf, p)[0]
                elif kind == "int32":
                    out[name] = _I32.unpack_from(r.buf, p)[0]
                elif kind == "uuid":
                    out[name] = r.buf[p : p + 16].hex()
            continue
        if kind == "string":
            s = r.string(flexible)
            if interesting:
                out[name] = s
        elif kind == "bytes":
            n = r.length(flexible)
            if n > 0:
                r.take(n)
        elif kind == "records":
            out[name] = _records(r, flexible)
        elif kind == "[]" or kind == "{}":
            assert sub is not None
            _children(name, kind, sub, interesting, r, flexible, out, depth)
        elif kind.startswith("[]"):
            _skip_array(kind[2:], r, flexible)
        else:
            raise DecodeError("unknown schema kind", kind)
    if flexible:
        r.tagged()


def _records(r: Reader, flexible: bool) -> tuple[int, int, Any]:
    """A records field: its summary (records_summary), the reader moved past it."""
    n = r.length(flexible)
    if n <= 0:
        return (0, 0, None)
    start = r.pos
    avail = min(n, r.end - start)
    summary = records_summary(r.buf, start, start + avail, n)
    r.take(n)
    return summary


def _children(
    name: str,
    kind: str,
    sub: Plan,
    interesting: bool,
    r: Reader,
    flexible: bool,
    out: dict[str, Any],
    depth: int,
) -> None:
    """A struct field (`{}`: one child) or an array of structs (`[]`: a list of children)."""
    if kind == "{}":
        child: dict[str, Any] = {}
        if interesting:
            out[name] = child
        walk(sub, r, flexible, child, depth + 1)
        return
    n = r.count(flexible)
    items: list[dict[str, Any]] = []
    if interesting:
        out[name] = items
    for _ in range(max(n, 0)):
        child = {}
        if interesting:
            items.append(child)
        walk(sub, r, flexible, child, depth + 1)


def _skip_array(inner: str, r: Reader, flexible: bool) -> None:
    """An array of a primitive kind (`[]int32`, `[]string`, ...): never interesting, skipped."""
    n = r.count(flexible)
    fixed = _FIXED.get(inner)
    if fixed is not None:
        r.take(fixed * max(n, 0))
        return
    for _ in range(max(n, 0)):
        if inner == "string":
            r.string(flexible)
        else:
            m = r.length(flexible)
            if m > 0:
                r.take(m)


# -- records ---------------------------------------------------------------------------------------------------
_BATCH = struct.Struct(">qiibIhiqqqhii")  # RecordBatch v2 header, 61 bytes (KIP-98)


def records_summary(buf: bytes, start: int, end: int, declared: int) -> tuple[int, int, Any]:
    """(record count, declared bytes, first record's headers or None) of a records field.

    `end` may fall short of start + declared when the body was not kept whole: batches past it are not
    counted (the count is a lower bound then; the record says `parsed: false`).
    """
    count = 0
    headers = None
    p = start
    first = True
    while p + 17 <= end:
        (batch_len,) = _I32.unpack_from(buf, p + 8)
        magic = buf[p + 16]
        if batch_len < 0:
            raise DecodeError("bad record batch length")
        if magic == 2:
            if p + 61 > end:
                break
            _base, _blen, _epoch, _magic, _crc, attrs, _lod, _bts, _mts, _pid, _pep, _bseq, n = (
                _BATCH.unpack_from(buf, p)
            )
            if n < 0:
                raise DecodeError("bad record count")
            count += n
            if first and n > 0 and not attrs & 0x20:  # not a control batch
                headers = _first_record_headers(buf, p + 61, min(p + 12 + batch_len, end), attrs & 7)
        elif magic in (0, 1):
            count += 1  # one message (a compressed wrapper counts once: its inner messages stay unread)
        else:
            raise DecodeError("bad record magic", str(magic))
        first = False
        p += 12 + batch_len
    return count, declared, headers


def _first_record_headers(buf: bytes, p: int, end: int, codec: int) -> dict[str, bytes] | None:
    """Header keys and values of the first record of a batch (none: compression we do not inflate)."""
    if codec == 1:  # gzip
        try:
            data = zlib.decompressobj(wbits=31).decompress(buf[p:end], MAX_TRACE_INFLATE)
        except zlib.error:
            return None
        buf, p, end = data, 0, len(data)
    elif codec != 0:
        return None  # snappy, lz4, zstd: not inflated for a header (bounded work per batch)
    try:
        _length, p = zigzag_varint(buf, p, end)
        p += 1  # attributes
        _ts, p = zigzag_varint(buf, p, end)
        _od, p = zigzag_varint(buf, p, end)
        klen, p = zigzag_varint(buf, p, end)
        p += max(klen, 0)
        vlen, p = zigzag_varint(buf, p, end)
        p += max(vlen, 0)
        n, p = zigzag_varint(buf, p, end)
        headers: dict[str, bytes] = {}
        for _ in range(min(n, 64)):
            hk, p = zigzag_varint(buf, p, end)
            if hk < 0 or p + hk > end:
                return headers
            key = buf[p : p + hk].decode("utf-8", "replace")
            p += hk
            hv, p = zigzag_varint(buf, p, end)
            if hv >= 0:
                if p + hv > end:
                    return headers
                headers[key] = bytes(buf[p : p + hv])
                p += hv
        return headers
    except Short:
        return None
