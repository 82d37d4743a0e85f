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
from collections.abc import Callable
from typing import Any, Final

from packetd.protocols.base import DecodeError
from packetd.protocols.framing import Short, uvarint, zigzag_varint
from packetd.protocols.kafka.schema_data import SCHEMAS

MAX_ARRAY: Final = 1_000_000  # elements in one array: more than any real message carries in 100 MB
MAX_DEPTH: Final = 8  # struct nesting in the schemas is at most 4 deep
MAX_TRACE_INFLATE: Final = 64 * 1024  # bytes of a gzip batch inflated to read its first record's headers

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_U16 = struct.Struct(">H")
_FIXED = {"bool": 1, "int8": 1, "int16": 2, "uint16": 2, "int32": 4, "int64": 8, "float64": 8, "uuid": 16}
# fields a record shows (by schema name); everything else is skipped by length
_STRINGS = frozenset({"Name", "Topic", "TopicName", "GroupId", "TransactionalId", "Mechanism"})
_INTS = frozenset({"PartitionIndex", "Index", "Partition", "ThrottleTimeMs"})


# plan steps: what the walker does with one field, decided once when the plan is compiled
OP_SKIP: Final = 0  # fixed-size and not shown (consecutive ones merged): `arg` bytes
OP_I16: Final = 1  # an int16 shown (ErrorCode, Acks)
OP_I32: Final = 2  # an int32 shown (partition indexes, ThrottleTimeMs)
OP_UUID: Final = 3  # a uuid shown (TopicId), as hex
OP_STRING: Final = 4  # a string; shown when `interesting`
OP_BYTES: Final = 5  # bytes: skipped by length
OP_RECORDS: Final = 6  # records: summarised (records_summary)
OP_STRUCT: Final = 7  # `{}`: one child struct
OP_ARRAY: Final = 8  # `[]`: an array of structs
OP_FIXED_ARRAY: Final = 9  # `[]int32`...: an array of a fixed-size primitive of `arg` bytes, skipped
OP_STRING_ARRAY: Final = 10  # `[]string`, skipped
OP_BYTES_ARRAY: Final = 11  # any other `[]kind`: length-prefixed elements, skipped
OP_UNKNOWN: Final = 12  # a kind this walker does not know (name: the kind): DecodeError when reached
_SHOWN_FIXED = {"int16": OP_I16, "int32": OP_I32, "uuid": OP_UUID}
_KIND_OPS = {"string": OP_STRING, "bytes": OP_BYTES, "records": OP_RECORDS, "{}": OP_STRUCT, "[]": OP_ARRAY}

# a compiled field: (name, op, arg, children plan or None, interesting)
Plan = tuple[tuple[str, int, int, Any, bool], ...]
_PLANS: dict[tuple[int, int, bool], tuple[Plan, bool]] = {}


def _interesting(name: str, kind: str, sub: Plan | None) -> bool:
    return (
        name == "ErrorCode"
        or (kind == "string" and name in _STRINGS)
        or (kind == "int32" and name in _INTS)
        or (kind == "int16" and name == "Acks")
        or (kind == "uuid" and name == "TopicId")
        or kind == "records"
        or (sub is not None and any(f[4] for f in sub))
    )


def _step(name: str, kind: str, sub: Plan | None, interesting: bool) -> tuple[str, int, int, Any, bool]:
    size = _FIXED.get(kind)
    if size is not None:
        op = _SHOWN_FIXED.get(kind, OP_SKIP) if interesting else OP_SKIP
        return (name, op, size, None, interesting)
    op = _KIND_OPS.get(kind, -1)
    if op >= 0:
        return (name, op, 0, sub, interesting)
    if kind.startswith("[]"):
        inner = kind[2:]
        fixed = _FIXED.get(inner)
        if fixed is not None:
            return (name, OP_FIXED_ARRAY, fixed, None, interesting)
        return (name, OP_STRING_ARRAY if inner == "string" else OP_BYTES_ARRAY, 0, None, interesting)
    return (kind, OP_UNKNOWN, 0, None, interesting)


def _compile(fields: tuple[Any, ...], version: int) -> Plan:
    out: list[tuple[str, int, int, Any, bool]] = []
    for name, kind, lo, hi, _nlo, _nhi, tagged, children in fields:
        if not lo <= version <= hi or tagged:
            continue  # tagged fields are skipped with the tagged-field section
        sub = _compile(children, version) if children else None
        step = _step(name, kind, sub, _interesting(name, kind, sub))
        if step[1] == OP_SKIP and out and out[-1][1] == OP_SKIP:
            # fixed-size fields in a row are one skip (a body cut inside them is short either way)
            prev = out.pop()
            step = (prev[0], OP_SKIP, prev[2] + step[2], None, prev[4] or step[4])
        out.append(step)
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

    def tagged(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            size = self.uvarint()
            self.take(size)


def walk(plan: Plan, r: Reader, flexible: bool, out: dict[str, Any], depth: int = 0) -> None:
    """Read one struct with `plan`, storing the interesting fields in `out` (children as lists of dicts)."""
    r.pos = _walk(plan, r.buf, r.pos, r.end, flexible, out, depth)


def _walk(plan: Plan, buf: bytes, pos: int, end: int, flexible: bool, out: dict[str, Any], depth: int) -> int:
    """`walk` on a buffer and an offset: the offset after the struct. Fixed-size fields and strings are read
    here; the rest through `_other`. A body that ends inside a field raises Short (what was stored stays)."""
    if depth > MAX_DEPTH:
        raise DecodeError("schema nesting too deep")
    for step in plan:
        op = step[1]
        if op == OP_SKIP:
            pos += step[2]
            if pos > end:
                raise Short
        elif op == OP_STRING:
            if flexible and pos < end and buf[pos] < 0x80:
                n = buf[pos] - 1  # one-byte compact length: nearly every string
                pos += 1
            else:
                n, pos = _string_length(buf, pos, end, flexible)
            if n < 0:
                if step[4]:
                    out[step[0]] = None
            else:
                if pos + n > end:
                    raise Short
                if step[4]:
                    out[step[0]] = buf[pos : pos + n].decode("utf-8", "replace")
                pos += n
        elif op <= OP_UUID:
            p = pos
            pos += step[2]
            if pos > end:
                raise Short
            if op == OP_I16:
                out[step[0]] = _I16.unpack_from(buf, p)[0]
            elif op == OP_I32:
                out[step[0]] = _I32.unpack_from(buf, p)[0]
            else:
                out[step[0]] = buf[p:pos].hex()
        else:
            pos = _other(step, buf, pos, end, flexible, out, depth)
    if flexible:
        if pos < end and buf[pos] == 0:
            return pos + 1  # no tagged fields: the common case
        pos = skip_tagged(buf, pos, end)
    return pos


def _uvarint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    if pos < end and buf[pos] < 0x80:
        return buf[pos], pos + 1
    return uvarint(buf, pos, end)


def _string_length(buf: bytes, pos: int, end: int, flexible: bool) -> tuple[int, int]:
    """A string's length (-1: null) and the offset after it: compact (uvarint + 1) or int16."""
    n, pos = _length(buf, pos, end, flexible, _I16)
    if n < -1:
        raise DecodeError("bad string length")
    return n, pos


def _length(buf: bytes, pos: int, end: int, flexible: bool, classic: struct.Struct = _I32) -> tuple[int, int]:
    """Length of bytes / records / an array / a string (-1: null): compact (uvarint + 1) or `classic`."""
    if flexible:
        v, pos = _uvarint(buf, pos, end)
        return v - 1, pos
    if pos + classic.size > end:
        raise Short
    return classic.unpack_from(buf, pos)[0], pos + classic.size


def _count(buf: bytes, pos: int, end: int, flexible: bool) -> tuple[int, int]:
    n, pos = _length(buf, pos, end, flexible)
    if n < -1 or n > MAX_ARRAY:
        raise DecodeError("bad array length")
    return n, pos


def skip_tagged(buf: bytes, pos: int, end: int) -> int:
    """Past a tagged-field section (KIP-482): count, then (tag, size, data) each."""
    n, pos = _uvarint(buf, pos, end)
    for _ in range(n):
        _tag, pos = _uvarint(buf, pos, end)
        size, pos = _uvarint(buf, pos, end)
        pos += size
        if pos > end:
            raise Short
    return pos


def _other(
    step: tuple[str, int, int, Any, bool],
    buf: bytes,
    pos: int,
    end: int,
    flexible: bool,
    out: dict[str, Any],
    depth: int,
) -> int:
    """Every step but fixed-size fields and strings; the offset after it."""
    name, op, arg, sub, interesting = step
    if op == OP_ARRAY:
        n, pos = _count(buf, pos, end, flexible)
        items: list[dict[str, Any]] = []
        if interesting:
            out[name] = items
        for _ in range(n if n > 0 else 0):
            child: dict[str, Any] = {}
            if interesting:
                items.append(child)
            pos = _walk(sub, buf, pos, end, flexible, child, depth + 1)
        return pos
    if op == OP_STRUCT:
        child = {}
        if interesting:
            out[name] = child
        return _walk(sub, buf, pos, end, flexible, child, depth + 1)
    if op == OP_BYTES:
        return _skip_bytes(buf, pos, end, flexible)
    if op == OP_RECORDS:
        return _records(buf, pos, end, flexible, name, out)
    if op == OP_UNKNOWN:
        raise DecodeError("unknown schema kind", name)
    return _skip_array(op, arg, buf, pos, end, flexible)


def _records(buf: bytes, pos: int, end: int, flexible: bool, name: str, out: dict[str, Any]) -> int:
    """A records field: its summary (records_summary) stored once the field is there whole."""
    n, pos = _length(buf, pos, end, flexible)
    if n < -1:
        raise DecodeError("bad bytes length")
    if n <= 0:
        out[name] = (0, 0, None)
        return pos
    avail = min(n, end - pos)
    summary = records_summary(buf, pos, pos + avail, n)
    if pos + n > end:
        raise Short
    out[name] = summary
    return pos + n


def _skip_array(op: int, size: int, buf: bytes, pos: int, end: int, flexible: bool) -> int:
    """An array of a primitive kind (`[]int32`, `[]string`, ...): never interesting, skipped."""
    n, pos = _count(buf, pos, end, flexible)
    if op == OP_FIXED_ARRAY:
        pos += size * (n if n > 0 else 0)
        if pos > end:
            raise Short
        return pos
    for _ in range(n if n > 0 else 0):
        if op == OP_STRING_ARRAY:
            m, pos = _string_length(buf, pos, end, flexible)
            if m > 0:
                pos += m
                if pos > end:
                    raise Short
        else:
            pos = _skip_bytes(buf, pos, end, flexible)
    return pos


def _skip_bytes(buf: bytes, pos: int, end: int, flexible: bool) -> int:
    """Past a bytes field (length-prefixed, -1: null)."""
    n, pos = _length(buf, pos, end, flexible)
    if n < -1:
        raise DecodeError("bad bytes length")
    if n > 0:
        pos += n
        if pos > end:
            raise Short
    return pos


def first_group(fields: dict[str, Any]) -> str | None:
    """The request's group id: top level, or the first of its Groups (OffsetFetch >= 8, DescribeGroups...).
    The reference of a compiled plan's `group`."""
    group = fields.get("GroupId")
    if group is not None:
        return str(group)
    for v in fields.values():
        if isinstance(v, list):
            for item in v:
                found = first_group(item)
                if found is not None:
                    return found
    return None


def collect_errors(fields: dict[str, Any], path: str, out: list[tuple[str, int]]) -> None:
    """Non-zero ErrorCode values, top level first, then nested in schema order. The reference of a compiled
    plan's `errors`."""
    code = fields.get("ErrorCode")
    if code:
        out.append((path + "ErrorCode", code))
    for key, v in fields.items():
        if isinstance(v, list):
            for item in v:
                collect_errors(item, f"{path}{key}.", out)
        elif isinstance(v, dict):
            collect_errors(v, f"{path}{key}.", out)


# -- compiled walkers -------------------------------------------------------------------------------------
# `walk` interprets a plan step by step: the reference. The hot path runs the same plan compiled into Python
# source once (`compiled_for`): one function per (plan, encoding) with every step unrolled, the encoding
# (classic or flexible) decided at compile time, consecutive fixed-size fields read by one precompiled
# struct, and subtrees that store nothing walked without their dicts. It stores the same keys in the same
# order, ends at the same offset and raises the same Short / DecodeError at the same field as `walk`
# (tests/protocols/kafka/test_schema.py checks it for every schema and version). With it, the two readers of
# the walked fields: `errors` (non-zero ErrorCode values as (path, code), top level first, then nested in
# schema order) and `group` (the first GroupId, top level or in the arrays, depth first), unrolled likewise.
# And `walk_errors`, for a response whose record needs only its top-level fields and its errors (all but
# Fetch's and Metadata's): the walk and `errors` in one pass, with no dict or list below the top level and
# no nested string decoded. It stores the top level's scalars and strings as `walk` does (not its arrays
# and structs), appends to `errs` what
# `errors` would find in what `walk` had stored by then (the same list after a whole walk, a Short or a
# DecodeError), and ends or raises as `walk` does.
# every (api key, version, direction) a request header can name: 52 schemas x versions 0-64 (the decoder's
# MAX_API_VERSION) x 2 directions = 6760 keys, so nothing is ever evicted
MAX_COMPILED_KEYS: Final = 8192
# distinct (plan, flexible) pairs over all of those keys: 306 (the functions are shared between the keys)
MAX_COMPILED_PLANS: Final = 1024

Walker = Callable[[bytes, int, int, dict[str, Any]], int]
Errors = Callable[[dict[str, Any], list[tuple[str, int]]], None]
Group = Callable[[dict[str, Any]], str | None]
WalkErrors = Callable[[bytes, int, int, dict[str, Any], list[tuple[str, int]]], int]
Compiled = tuple[Walker, Errors, Group, WalkErrors]
_COMPILED: dict[tuple[int, int, bool], Compiled] = {}
_BY_PLAN: dict[tuple[Plan, bool], Compiled] = {}
_FIXED_OPS = (OP_SKIP, OP_I16, OP_I32, OP_UUID)
_FORMAT = {OP_I16: "h", OP_I32: "i", OP_UUID: "16s"}


def compiled_for(api_key: int, version: int, response: bool) -> Compiled | None:
    """The compiled (walk, errors, group) of an API version's plan; None when no schema is known."""
    key = (api_key, version, response)
    found = _COMPILED.get(key)
    if found is not None:
        return found
    plan = plan_for(api_key, version, response)
    if plan is None:
        return None
    found = _BY_PLAN.get(plan)
    if found is None:
        found = compile_plan(plan[0], plan[1])
        if len(_BY_PLAN) < MAX_COMPILED_PLANS:
            _BY_PLAN[plan] = found
    if len(_COMPILED) < MAX_COMPILED_KEYS:
        _COMPILED[key] = found
    return found


def compile_plan(plan: Plan, flexible: bool) -> Compiled:
    """The plan's walker, errors, group and walk_errors functions, from generated source (see above)."""
    gen = _Source(flexible)
    gen.line(0, "def walk(buf, pos, end, o0):")
    gen.struct(plan, 0, "o0", 1)
    gen.line(1, "return pos")
    gen.line(0, "def errors(o0, out):")
    if not gen.errors(plan, "o0", "", 1):
        gen.line(1, "return")
    gen.line(0, "def group(o0):")
    gen.group(plan, "o0", 1)
    gen.line(1, "return None")
    gen.line(0, "def walk_errors(buf, pos, end, o0, errs):")
    gen.e_struct(plan, 0, "o0", "", 1)
    gen.line(1, "return pos")
    names: dict[str, Any] = {
        "Short": Short, "DecodeError": DecodeError, "MAX_ARRAY": MAX_ARRAY, "_I16": _I16.unpack_from,
        "_I32": _I32.unpack_from, "_string_length": _string_length, "_count": _count, "skip_tagged": skip_tagged,
        "_records": _records, "_skip_bytes": _skip_bytes, "_skip_array": _skip_array, "str": str,
    }  # fmt: skip
    names.update(gen.structs)
    # the source is built here from schema_data.py alone, never from captured bytes
    exec(compile("\n".join(gen.lines), "<kafka schema walker>", "exec"), names)
    return names["walk"], names["errors"], names["group"], names["walk_errors"]


def _has(plan: Plan | None, name: str, struct_too: bool) -> bool:
    """Whether a field `name` is stored anywhere in the plan (through arrays, and structs if `struct_too`)."""
    if plan is None:
        return False
    for step in plan:
        if step[0] == name and step[4]:
            return True
        if step[4] and (step[1] == OP_ARRAY or (struct_too and step[1] == OP_STRUCT)):
            if _has(step[3], name, struct_too):
                return True
    return False


def _holds_errors(step: tuple[str, int, int, Any, bool]) -> bool:
    """Whether a step is an array or struct whose stored fields hold an ErrorCode (what `errors` visits)."""
    return step[4] and step[1] in (OP_ARRAY, OP_STRUCT) and _has(step[3], "ErrorCode", True)


class _Source:
    """Python source of one plan's functions; `o<depth>` is the dict of the struct at that depth (None: the
    subtree stores nothing and is only walked past)."""

    def __init__(self, flexible: bool) -> None:
        self.flexible = flexible
        self.lines: list[str] = []
        self.structs: dict[str, Any] = {}

    def line(self, ind: int, text: str) -> None:
        self.lines.append("    " * ind + text)

    # -- walk ----------------------------------------------------------------------------------------------
    def struct(self, plan: Plan, depth: int, out: str | None, ind: int) -> None:
        """One struct's fields (as `_walk`), then its tagged fields when flexible."""
        if depth > MAX_DEPTH:
            self.line(ind, 'raise DecodeError("schema nesting too deep")')
            return
        i = 0
        while i < len(plan):
            j = i
            while j < len(plan) and plan[j][1] in _FIXED_OPS:
                j += 1
            if j - i >= 2:
                self.fixed_run(plan[i:j], out, ind)
                i = j
                continue
            self.step(plan[i], depth, out, ind)
            i += 1
        if self.flexible:
            self.line(ind, "if pos < end and buf[pos] == 0:")
            self.line(ind + 1, "pos += 1")
            self.line(ind, "else:")
            self.line(ind + 1, "pos = skip_tagged(buf, pos, end)")

    def fixed_run(self, steps: Plan, out: str | None, ind: int) -> None:
        """Fixed-size fields in a row: one struct read when all are there, else field by field."""
        fmt = ">" + "".join(_FORMAT.get(s[1], f"{s[2]}x") for s in steps)
        name = f"_S{len(self.structs)}"
        self.structs[name] = struct.Struct(fmt).unpack_from
        total = sum(s[2] for s in steps)
        shown = [s for s in steps if s[1] != OP_SKIP]
        assert out is not None  # a run of two or more holds a shown field (skips are merged)
        self.line(ind, f"if pos + {total} <= end:")
        if any(s[1] == OP_UUID for s in shown):  # a uuid is stored as hex: all through locals, in order
            self.line(ind + 1, f"{', '.join(f'u{k}' for k in range(len(shown)))}, = {name}(buf, pos)")
            for k, s in enumerate(shown):
                self.line(ind + 1, f"{out}[{s[0]!r}] = u{k}{'.hex()' if s[1] == OP_UUID else ''}")
        else:
            self.line(ind + 1, f"{', '.join(f'{out}[{s[0]!r}]' for s in shown)}, = {name}(buf, pos)")
        self.line(ind + 1, f"pos += {total}")
        self.line(ind, "else:")
        for s in steps:
            self.step(s, 0, out, ind + 1)

    def step(self, step: tuple[str, int, int, Any, bool], depth: int, out: str | None, ind: int) -> None:
        name, op, arg, sub, interesting = step
        store = out if interesting else None
        if op == OP_SKIP:
            self.line(ind, f"pos += {arg}")
            self.line(ind, "if pos > end:")
            self.line(ind + 1, "raise Short")
        elif op in (OP_I16, OP_I32, OP_UUID):
            assert out is not None
            self.line(ind, f"if pos + {arg} > end:")
            self.line(ind + 1, "raise Short")
            if op == OP_UUID:
                self.line(ind, f"{out}[{name!r}] = buf[pos : pos + 16].hex()")
            else:
                self.line(ind, f"{out}[{name!r}] = {'_I16' if op == OP_I16 else '_I32'}(buf, pos)[0]")
            self.line(ind, f"pos += {arg}")
        elif op == OP_STRING:
            self.string(name, store, ind)
        elif op == OP_ARRAY:
            self.array(name, sub, depth, store, ind)
        elif op == OP_STRUCT:
            child = f"o{depth + 1}" if store is not None else None
            if child is not None:
                self.line(ind, f"{child} = {store}[{name!r}] = {{}}")
            self.struct(sub, depth + 1, child, ind)
        elif op == OP_BYTES:
            self.line(ind, f"pos = _skip_bytes(buf, pos, end, {self.flexible})")
        elif op == OP_RECORDS:
            assert out is not None
            self.line(ind, f"pos = _records(buf, pos, end, {self.flexible}, {name!r}, {out})")
        elif op == OP_UNKNOWN:
            self.line(ind, f"raise DecodeError('unknown schema kind', {name!r})")
        else:
            self.line(ind, f"pos = _skip_array({op}, {arg}, buf, pos, end, {self.flexible})")

    def string(self, name: str, out: str | None, ind: int) -> None:
        """A string (as `_walk`): stored in `out` when given, else skipped."""
        if self.flexible:
            self.line(ind, "if pos < end and buf[pos] < 0x80:")  # one-byte compact length: nearly all
            self.line(ind + 1, "k = buf[pos] - 1")
            self.line(ind + 1, "pos += 1")
            self.line(ind, "else:")
            self.line(ind + 1, "k, pos = _string_length(buf, pos, end, True)")
        else:
            self.line(ind, "if pos + 2 > end:")
            self.line(ind + 1, "raise Short")
            self.line(ind, "k = _I16(buf, pos)[0]")
            self.line(ind, "pos += 2")
            self.line(ind, "if k < -1:")
            self.line(ind + 1, 'raise DecodeError("bad string length")')
        if out is None:
            self.line(ind, "if k > 0:")
            self.line(ind + 1, "pos += k")
            self.line(ind + 1, "if pos > end:")
            self.line(ind + 2, "raise Short")
            return
        self.line(ind, "if k < 0:")
        self.line(ind + 1, f"{out}[{name!r}] = None")
        self.line(ind, "else:")
        self.line(ind + 1, "if pos + k > end:")
        self.line(ind + 2, "raise Short")
        self.line(ind + 1, f"{out}[{name!r}] = buf[pos : pos + k].decode('utf-8', 'replace')")
        self.line(ind + 1, "pos += k")

    def array(self, name: str, sub: Plan, depth: int, out: str | None, ind: int) -> None:
        """An array of structs (as `_other`): a list of dicts in `out` when given, else walked past."""
        n = self.count(depth, ind)
        items = f"l{depth}"
        child = f"o{depth + 1}"
        if out is not None:
            self.line(ind, f"{items} = {out}[{name!r}] = []")
        body = len(self.lines)
        self.line(ind, f"for _ in range({n}):")
        if out is not None:
            self.line(ind + 1, f"{child} = {{}}")
            self.line(ind + 1, f"{items}.append({child})")
        self.struct(sub, depth + 1, child if out is not None else None, ind + 1)
        if len(self.lines) == body + 1:
            del self.lines[body:]  # nothing to read or store per element

    def count(self, depth: int, ind: int) -> str:
        """An array's element count (as `_count`), into the variable it returns."""
        n = f"n{depth}"
        if self.flexible:
            self.line(ind, "if pos < end and buf[pos] < 0x80:")
            self.line(ind + 1, f"{n} = buf[pos] - 1")
            self.line(ind + 1, "pos += 1")
            self.line(ind, "else:")
            self.line(ind + 1, f"{n}, pos = _count(buf, pos, end, True)")
        else:
            self.line(ind, "if pos + 4 > end:")
            self.line(ind + 1, "raise Short")
            self.line(ind, f"{n} = _I32(buf, pos)[0]")
            self.line(ind, "pos += 4")
            self.line(ind, f"if {n} < -1 or {n} > MAX_ARRAY:")
            self.line(ind + 1, 'raise DecodeError("bad array length")')
        return n

    # -- walk_errors: the walk of a struct that keeps only its errors (and the top level's own fields) -------
    def e_struct(self, plan: Plan, depth: int, out: str | None, path: str | None, ind: int) -> None:
        """As `struct`, storing in `out` (the top level) or nothing (below), each non-zero ErrorCode in
        `errs` where `errors` puts it: a struct's own before its children's, so when the struct's
        ErrorCode comes after a field that holds errors, it goes in at the length `errs` had on entry.
        `path` None: a subtree `errors` does not visit (walked past, its ErrorCode fields too)."""
        if depth > MAX_DEPTH:
            self.line(ind, 'raise DecodeError("schema nesting too deep")')
            return
        code_at = next(
            (k for k, s in enumerate(plan) if s[0] == "ErrorCode" and s[4] and path is not None), None
        )
        mark = None
        if code_at is not None and any(_holds_errors(s) for s in plan[:code_at]):
            mark = f"m{depth}"
            self.line(ind, f"{mark} = len(errs)")
        i = 0
        while i < len(plan):
            j = i
            while j < len(plan) and plan[j][1] in _FIXED_OPS:
                j += 1
            if j - i >= 2:
                self.e_fixed_run(plan[i:j], depth, out, path, mark, ind)
                i = j
                continue
            self.e_step(plan[i], depth, out, path, mark, ind)
            i += 1
        if self.flexible:
            self.line(ind, "if pos < end and buf[pos] == 0:")
            self.line(ind + 1, "pos += 1")
            self.line(ind, "else:")
            self.line(ind + 1, "pos = skip_tagged(buf, pos, end)")

    def e_error(self, var: str, path: str, mark: str | None, ind: int) -> None:
        self.line(ind, f"if {var}:")
        if mark is None:
            self.line(ind + 1, f"errs.append(({path + 'ErrorCode'!r}, {var}))")
        else:
            self.line(ind + 1, f"errs.insert({mark}, ({path + 'ErrorCode'!r}, {var}))")

    def e_fixed_run(
        self, steps: Plan, depth: int, out: str | None, path: str | None, mark: str | None, ind: int
    ) -> None:
        """As `fixed_run`: one struct read when all are there (only the fields kept), else field by field."""
        keep_code = path is not None
        kept = [
            s for s in steps if s[1] != OP_SKIP and (out is not None or (keep_code and s[0] == "ErrorCode"))
        ]
        total = sum(s[2] for s in steps)
        if not kept:
            self.line(ind, f"pos += {total}")
            self.line(ind, "if pos > end:")
            self.line(ind + 1, "raise Short")
            return
        fmt = ">" + "".join(_FORMAT[s[1]] if s in kept else f"{s[2]}x" for s in steps)
        name = f"_S{len(self.structs)}"
        self.structs[name] = struct.Struct(fmt).unpack_from
        self.line(ind, f"if pos + {total} <= end:")
        self.line(ind + 1, f"{', '.join(f'u{k}' for k in range(len(kept)))}, = {name}(buf, pos)")
        for k, s in enumerate(kept):
            if out is not None:
                self.line(ind + 1, f"{out}[{s[0]!r}] = u{k}{'.hex()' if s[1] == OP_UUID else ''}")
            if s[0] == "ErrorCode" and path is not None:
                self.e_error(f"u{k}", path, mark, ind + 1)
        self.line(ind + 1, f"pos += {total}")
        self.line(ind, "else:")
        for s in steps:
            self.e_step(s, depth, out, path, mark, ind + 1)

    def e_step(
        self, step: tuple[str, int, int, Any, bool], depth: int, out: str | None, path: str | None,
        mark: str | None, ind: int,
    ) -> None:  # fmt: skip
        name, op, arg, sub, interesting = step
        if op in (OP_I16, OP_I32, OP_UUID) and name == "ErrorCode" and path is not None:
            self.line(ind, f"if pos + {arg} > end:")
            self.line(ind + 1, "raise Short")
            self.line(ind, f"code = {'_I16' if op == OP_I16 else '_I32'}(buf, pos)[0]")
            if out is not None:
                self.line(ind, f"{out}['ErrorCode'] = code")
            self.e_error("code", path, mark, ind)
            self.line(ind, f"pos += {arg}")
        elif op in (OP_I16, OP_I32, OP_UUID) and out is None:
            self.line(ind, f"pos += {arg}")
            self.line(ind, "if pos > end:")
            self.line(ind + 1, "raise Short")
        elif op == OP_ARRAY or op == OP_STRUCT:  # walked with no dict (errors kept where `errors` looks)
            errors = path is not None and interesting and _has(sub, "ErrorCode", True)
            body = len(self.lines)
            if op == OP_ARRAY:
                n = self.count(depth, ind)
                body = len(self.lines)
                self.line(ind, f"for _ in range({n}):")
                ind += 1
            self.e_struct(sub, depth + 1, None, f"{path}{name}." if errors else None, ind)
            if op == OP_ARRAY and len(self.lines) == body + 1:
                del self.lines[body:]  # nothing to read per element
        elif op == OP_STRING and out is None:
            self.string(name, None, ind)
        elif op == OP_RECORDS and out is None:
            self.line(ind, f"pos = _records(buf, pos, end, {self.flexible}, {name!r}, {{}})")
        else:
            self.step(step, depth, out, ind)

    # -- readers of the walked fields ------------------------------------------------------------------------
    def errors(self, plan: Plan, out: str, path: str, ind: int) -> bool:
        """As `_collect_errors`: this struct's ErrorCode, then its arrays' and structs' in schema order."""
        wrote = False
        if any(s[0] == "ErrorCode" and s[4] for s in plan):
            self.line(ind, f"code = {out}.get('ErrorCode')")
            self.line(ind, "if code:")
            self.line(ind + 1, f"out.append(({path + 'ErrorCode'!r}, code))")
            wrote = True
        depth = int(out[1:])
        child = f"o{depth + 1}"
        for name, op, _arg, sub, interesting in plan:
            if not interesting or not _has(sub, "ErrorCode", True):
                continue
            if op == OP_ARRAY:
                self.line(ind, f"for {child} in {out}.get({name!r}, ()):")
            elif op == OP_STRUCT:
                self.line(ind, f"{child} = {out}.get({name!r})")
                self.line(ind, f"if {child} is not None:")
            else:
                continue
            self.errors(sub, child, f"{path}{name}.", ind + 1)
            wrote = True
        return wrote

    def group(self, plan: Plan, out: str, ind: int) -> None:
        """As `_first_group`: this struct's GroupId, then depth first through its arrays (not structs)."""
        if any(s[0] == "GroupId" and s[4] for s in plan):
            self.line(ind, f"g = {out}.get('GroupId')")
            self.line(ind, "if g is not None:")
            self.line(ind + 1, "return str(g)")
        child = f"o{int(out[1:]) + 1}"
        for name, op, _arg, sub, interesting in plan:
            if interesting and op == OP_ARRAY and _has(sub, "GroupId", False):
                self.line(ind, f"for {child} in {out}.get({name!r}, ()):")
                self.group(sub, child, ind + 1)


# -- records ---------------------------------------------------------------------------------------------------
# RecordBatch v2 header, 61 bytes (KIP-98): base offset q, batch length i, leader epoch i, magic b, crc I,
# attributes h, last offset delta i, first / max timestamp q q, producer id q, epoch h, base sequence i,
# record count i. Read: the length and magic (first 17 bytes), then the attributes and the count.
_BATCH_HEAD = struct.Struct(">8xi4xB")
_BATCH_V2 = struct.Struct(">21xh34xi")


def records_summary(buf: bytes, start: int, end: int, declared: int) -> tuple[int, int, Any]:
    """(record count, declared bytes, first record's headers or None) of a records field.

    `end` may fall short of start + declared when the body was not kept whole: batches past it are not
    counted (the count is a lower bound then; the record says `parsed: false`). Batches are read only as far
    as their headers (and the first one's first record's headers): the records are not walked.
    """
    count = 0
    headers = None
    p = start
    first = True
    while p + 17 <= end:
        batch_len, magic = _BATCH_HEAD.unpack_from(buf, p)
        if batch_len < 0:
            raise DecodeError("bad record batch length")
        if magic == 2:
            if p + 61 > end:
                break
            attrs, n = _BATCH_V2.unpack_from(buf, p)
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
    """Header keys and values of the first record of a batch (none: compression we do not inflate).

    Record v2: length, attributes (int8), timestamp delta, offset delta, key length, key, value length,
    value, header count, then (key length, key, value length, value) each; lengths and deltas are zig-zag
    varints, read here inline when they are one byte (two for the record's length): nearly always."""
    if codec == 1:  # gzip
        if p >= end:
            return None  # a batch shorter than its header (compiled, buf[p:end] with p > end raises)
        try:
            data = zlib.decompressobj(wbits=31).decompress(buf[p:end], MAX_TRACE_INFLATE)
        except zlib.error:
            return None
        buf, p, end = data, 0, len(data)
    elif codec != 0:
        return None  # snappy, lz4, zstd: not inflated for a header (bounded work per batch)
    try:
        if p + 1 < end and buf[p] >= 0x80 and buf[p + 1] < 0x80:
            p += 2  # the record's length, 64-8191 bytes
        else:
            _length, p = zigzag_varint(buf, p, end)
        p += 1  # attributes
        if p + 1 < end and buf[p] < 0x80 and buf[p + 1] < 0x80:
            p += 2  # the deltas of the first record (0 and 0, mostly)
        else:
            _ts, p = zigzag_varint(buf, p, end)
            _od, p = zigzag_varint(buf, p, end)
        if p < end and buf[p] < 0x80:
            klen = buf[p]
            klen = (klen >> 1) ^ -(klen & 1)
            p += 1
        else:
            klen, p = zigzag_varint(buf, p, end)
        if klen > 0:
            p += klen
        if p < end and buf[p] < 0x80:
            vlen = buf[p]
            vlen = (vlen >> 1) ^ -(vlen & 1)
            p += 1
        else:
            vlen, p = zigzag_varint(buf, p, end)
        if vlen > 0:
            p += vlen
        n, p = zigzag_varint(buf, p, end)
        return _record_headers(buf, p, end, n)
    except Short:
        return None


def _record_headers(buf: bytes, p: int, end: int, n: int) -> dict[str, bytes]:
    """`n` headers (at most 64) from `p`: those read whole before the bytes end (Short inside a length)."""
    headers: dict[str, bytes] = {}
    for _ in range(min(n, 64)):
        if p < end and buf[p] < 0x80:
            hk = buf[p]
            hk = (hk >> 1) ^ -(hk & 1)
            p += 1
        else:
            hk, p = zigzag_varint(buf, p, end)
        if hk < 0 or p + hk > end:
            return headers
        key = buf[p : p + hk].decode("utf-8", "replace")
        p += hk
        if p < end and buf[p] < 0x80:
            hv = buf[p]
            hv = (hv >> 1) ^ -(hv & 1)
            p += 1
        else:
            hv, p = zigzag_varint(buf, p, end)
        if hv >= 0:
            if p + hv > end:
                return headers
            headers[key] = bytes(buf[p : p + hv])
            p += hv
    return headers
