"""The compiled schema walkers (schema.compiled_for) against the reference interpreter (schema.walk).

Truth: `walk`, `collect_errors` and `first_group`, the op-code interpreter and the generic readers of its
output. For every schema in schema_data.py, every version it defines (and the first one past it), both
directions, messages are built here from the schema's field list (not from the plans): random values,
null and empty strings, arrays and records, compact lengths of one and two bytes, tagged-field sections
with and without fields, record batches of kafka-python's builders (v2 with headers, gzip, legacy message
sets) and garbage records. Each message, every prefix of it (a body cut at max_parse_bytes) and mutated
copies are walked both ways: the same fields (keys in the same order), the same end offset or the same
exception, the same errors and group. Then the same on every body of the Kafka corpus and the benchmark's
real capture, as the decoder walks them.
"""

from __future__ import annotations

import json
import os
import random
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kafka.record.default_records import DefaultRecordBatchBuilder
from kafka.record.legacy_records import LegacyRecordBatchBuilder

from packetd.engine import Rule
from packetd.protocols.base import DecodeError
from packetd.protocols.framing import Short, zigzag_varint
from packetd.protocols.kafka import decoder as decoder_mod
from packetd.protocols.kafka import schema
from packetd.protocols.kafka.schema import (
    Compiled,
    Plan,
    Reader,
    collect_errors,
    compile_plan,
    compiled_for,
    first_group,
    plan_for,
    records_summary,
    walk,
)
from packetd.protocols.kafka.schema_data import SCHEMAS
from tests.helpers.golden import ROOT, RULES_FOR, manifest, run_file

TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
REAL = os.path.join(ROOT, "bench", "out", "real", "kafka.pcap")


# -- the messages ----------------------------------------------------------------------------------------------
def uvarint(n: int, wide: bool = False) -> bytes:
    out = bytearray()
    while n >= 0x80 or wide:
        out.append(n & 0x7F | 0x80)
        n >>= 7
        wide = False  # a redundant continuation byte once: a two-byte encoding of a small number
    out.append(n)
    return bytes(out)


def length(n: int | None, flexible: bool, classic: str, rng: random.Random) -> bytes:
    """A length prefix (None: null): compact uvarint n+1, sometimes in two bytes, or int16 / int32."""
    if flexible:
        return uvarint(0 if n is None else n + 1, wide=rng.random() < 0.1)
    return struct.pack(classic, -1 if n is None else n)


def tagged(rng: random.Random) -> bytes:
    if rng.random() < 0.7:
        return b"\x00"
    fields = [
        (rng.randrange(0, 300), rng.randbytes(rng.choice((0, 3, 130)))) for _ in range(rng.randint(1, 2))
    ]
    out = uvarint(len(fields))
    for tag, data in fields:
        out += uvarint(tag) + uvarint(len(data), wide=rng.random() < 0.2) + data
    return out


def text(rng: random.Random) -> bytes:
    return rng.choice((b"", b"orders", b"billing-group", b"caf\xc3\xa9", b"\xff\xfebad", b"t" * 200))


def batch(rng: random.Random) -> bytes:
    """Record data: a v2 batch (headers with a traceparent, uncompressed or gzip), a legacy message set, or
    garbage."""
    kind = rng.randrange(6)
    if kind <= 2:
        b = DefaultRecordBatchBuilder(magic=2, compression_type=1 if kind == 2 else 0,
                                      is_transactional=kind == 1, producer_id=-1, producer_epoch=-1,
                                      base_sequence=-1, batch_size=1 << 20)  # fmt: skip
        headers = [("traceparent", TRACEPARENT), ("tracestate", b"v=1")] if kind != 1 else [("k", b"v")]
        for i in range(rng.randint(1, 3)):
            b.append(i, timestamp=1_700_000_000_000 + i, key=None if i else b"k", value=b"value-%d" % i,
                     headers=headers if i == 0 else [])  # fmt: skip
        data = bytes(b.build())
        return data + data if rng.random() < 0.3 else data  # two batches
    if kind == 3:
        lb = LegacyRecordBatchBuilder(magic=rng.randint(0, 1), compression_type=0, batch_size=1 << 20)
        for i in range(rng.randint(1, 3)):
            lb.append(i, timestamp=1_700_000_000_000, key=None, value=b"legacy-%d" % i)
        return bytes(lb.build())
    if kind == 4:
        return bytes(8) + struct.pack(">i", 5) + bytes(4) + b"\x07" + bytes(4)  # magic 7
    return rng.randbytes(rng.randint(1, 40))


def encode(
    fields: tuple[Any, ...], version: int, flexible: bool, rng: random.Random, depth: int = 0
) -> bytes:
    """One struct of a schema at `version`, with random values (tagged fields in the tagged section)."""
    out = bytearray()
    tags = bytearray()
    for name, kind, lo, hi, nlo, nhi, is_tagged, children in fields:
        if not lo <= version <= hi:
            continue
        nullable = nlo <= version <= nhi or rng.random() < 0.05
        value = _value(name, kind, children, version, flexible, nullable, rng, depth)
        if is_tagged:
            tags += value
        else:
            out += value
    if flexible:
        out += (
            tagged(rng)
            if not tags or rng.random() < 0.5
            else uvarint(1) + uvarint(0) + uvarint(len(tags)) + tags
        )
    return bytes(out)


def _value(name: str, kind: str, children: tuple[Any, ...], version: int, flexible: bool, nullable: bool,
           rng: random.Random, depth: int) -> bytes:  # fmt: skip
    fixed = {"bool": ">b", "int8": ">b", "int16": ">h", "uint16": ">H", "int32": ">i", "int64": ">q",
             "float64": ">d"}  # fmt: skip
    if kind in fixed:
        if name == "ErrorCode":
            return struct.pack(">h", rng.choice((0, 0, 3, 27, -1)))
        if kind == "float64":
            return struct.pack(">d", rng.random())
        bits = struct.calcsize(fixed[kind]) * 8
        if kind in ("bool", "uint16"):
            return struct.pack(fixed[kind], rng.randrange(0, 2 if kind == "bool" else 1 << 16))
        return struct.pack(fixed[kind], rng.randrange(-(1 << (bits - 1)), 1 << (bits - 1)))
    if kind == "uuid":
        return rng.choice((bytes(16), rng.randbytes(16)))
    if kind in ("string", "bytes", "records"):
        if nullable and rng.random() < 0.3:
            return length(None, flexible, ">h" if kind == "string" else ">i", rng)
        data = text(rng) if kind != "records" else batch(rng)
        return length(len(data), flexible, ">h" if kind == "string" else ">i", rng) + data
    if kind == "{}":
        return encode(children, version, flexible, rng, depth + 1)
    if kind.startswith("[]"):
        if nullable and rng.random() < 0.2:
            return length(None, flexible, ">i", rng)
        n = rng.choice((0, 1, 1, 2, 3)) if depth < 3 else rng.randint(0, 1)
        body = b"".join(_value(name, kind[2:] or "{}", children, version, flexible, False, rng, depth)
                        for _ in range(n))  # fmt: skip
        return length(n, flexible, ">i", rng) + body
    return rng.randbytes(2)  # a kind the walker does not know: it raises before reading


def messages(api_key: int, version: int, response: bool) -> Iterator[bytes]:
    """Whole messages, then every prefix of the first ones, then mutated copies."""
    _valid, req_flex, resp_flex, req_fields, resp_fields = SCHEMAS[api_key]
    flexible = version >= (resp_flex if response else req_flex)
    rng = random.Random(f"{api_key}/{version}/{response}")
    whole = [encode(resp_fields if response else req_fields, version, flexible, rng) for _ in range(6)]
    yield from whole
    for msg in whole[:2]:
        step = max(1, len(msg) // 150)
        for cut in range(0, len(msg), step):
            yield msg[:cut]
    for msg in whole:
        for _ in range(8):
            m = bytearray(msg)
            for _ in range(rng.randint(1, 3)):
                if m:
                    m[rng.randrange(len(m))] = rng.choice((0x00, 0x7F, 0x80, 0xFF, rng.randrange(256)))
            yield bytes(m)


# -- the comparison --------------------------------------------------------------------------------------------
def outcome(fn: Callable[[dict[str, Any]], int]) -> tuple[str, str]:
    """(how the walk ended: the end offset or the exception, the fields it stored with their order)."""
    fields: dict[str, Any] = {}
    try:
        end = str(fn(fields))
    except Exception as exc:  # the same exception (type and arguments) is what is compared
        end = f"{type(exc).__name__}{exc.args}"
    return end, repr(fields)


def check(plan: tuple[Plan, bool], compiled: Compiled, body: bytes, pos: int = 0) -> None:
    def reference(out: dict[str, Any]) -> int:
        r = Reader(body, pos)
        walk(plan[0], r, plan[1], out)
        return r.pos

    ref = outcome(reference)
    got = outcome(lambda out: compiled[0](body, pos, len(body), out))
    assert got == ref, body.hex()
    fields: dict[str, Any] = {}
    try:
        compiled[0](body, pos, len(body), fields)
    except Exception:  # what was stored before it is what the decoder reads
        pass
    ref_errors: list[tuple[str, int]] = []
    collect_errors(fields, "", ref_errors)
    got_errors: list[tuple[str, int]] = []
    compiled[1](fields, got_errors)
    assert got_errors == ref_errors
    assert compiled[2](fields) == first_group(fields)
    # walk_errors: the same end, the same errors, the top level's scalars and strings (not its arrays)
    fused_errors: list[tuple[str, int]] = []
    fused = outcome(lambda out: compiled[3](body, pos, len(body), out, fused_errors))
    top = {k: v for k, v in fields.items() if not isinstance(v, (list, dict))}
    assert fused == (ref[0], repr(top)), body.hex()
    assert fused_errors == ref_errors, body.hex()


def versions(api_key: int) -> range:
    lo, hi = SCHEMAS[api_key][0]
    return range(lo, hi + 2)  # the first version past the schema too: its plan is the last one's


@pytest.mark.parametrize("api_key", sorted(SCHEMAS))
def test_every_schema_and_version(api_key: int) -> None:
    for version in versions(api_key):
        for response in (False, True):
            plan = plan_for(api_key, version, response)
            compiled = compiled_for(api_key, version, response)
            assert plan is not None and compiled is not None
            for body in messages(api_key, version, response):
                check(plan, compiled, body)


def test_no_schema() -> None:
    assert compiled_for(4, 0, False) is None  # LeaderAndIsr: broker-internal, not shipped
    assert plan_for(4, 0, False) is None


def _same(a: Any, b: Any) -> bool:
    return a is not None and b is not None and all(x is y for x, y in zip(a, b, strict=True))


def test_compiled_once_and_shared() -> None:
    """A plan is compiled once: versions with the same plan share the functions (the bound's premise)."""
    # the functions themselves are shared (the compiled build reboxes the tuple that holds them)
    assert _same(compiled_for(0, 10, False), compiled_for(0, 10, False))
    _lo, hi = SCHEMAS[0][0]
    assert _same(compiled_for(0, hi + 1, True), compiled_for(0, hi + 5, True))  # past the schema: same fields
    assert not _same(compiled_for(0, 10, False), compiled_for(0, 10, True))  # request and response differ
    plans = {plan_for(k, v, r) for k in SCHEMAS for v in range(65) for r in (False, True)}
    assert len(plans) <= schema.MAX_COMPILED_PLANS
    assert len(SCHEMAS) * 65 * 2 <= schema.MAX_COMPILED_KEYS


@pytest.mark.parametrize("flexible", [False, True])
def test_synthetic_plans(flexible: bool) -> None:
    """What no shipped schema has: nesting past MAX_DEPTH, a kind the walker does not know, every array
    kind, a struct field, ErrorCode and GroupId deep inside structs and arrays."""
    f = 32767

    def field(name: str, kind: str, children: tuple[Any, ...] = ()) -> tuple[Any, ...]:
        return (name, kind, 0, f, 0, f, False, children)

    deep: tuple[Any, ...] = (field("ErrorCode", "int16"),)
    for i in range(schema.MAX_DEPTH + 2):
        deep = (field("GroupId", "string"), field(f"Level{i}", "[]", deep), field("ErrorCode", "int16"))
    shapes = [
        deep,
        (field("Name", "string"), field("What", "weird"), field("ErrorCode", "int16")),
        (field("A", "[]int32"), field("B", "[]string"), field("C", "[]bytes"), field("D", "[]uuid"),
         field("S", "{}", (field("ErrorCode", "int16"), field("GroupId", "string"),
                           field("Topics", "[]", (field("TopicId", "uuid"), field("ErrorCode", "int16"))))),
         field("Index", "int32"), field("ThrottleTimeMs", "int32"), field("TopicId", "uuid"),
         field("Acks", "int16"), field("Skip", "int64"), field("Records", "records")),
    ]  # fmt: skip
    for n, fields in enumerate(shapes):
        plan = (schema._compile(fields, 0), flexible)
        compiled = compile_plan(*plan)
        rng = random.Random(n)
        for _ in range(300):
            body = encode(fields, 0, flexible, rng)
            for cut in (len(body), len(body) // 2, len(body) // 3):
                check(plan, compiled, body[:cut])


# -- the corpus ------------------------------------------------------------------------------------------------
def corpus_walks(monkeypatch: pytest.MonkeyPatch, path: str, rules: tuple[Rule, ...]) -> int:
    """Every body the decoder walks in a capture, walked both ways (and the header's tagged fields: the
    decoder starts the walker after them, the same offset is given to the reference)."""
    seen: list[tuple[int, int, bool, bytes, int]] = []

    def spying(api_key: int, version: int, response: bool, compiled: Compiled) -> Compiled:
        def walker(buf: bytes, pos: int, end: int, out: dict[str, Any]) -> int:
            seen.append((api_key, version, response, bytes(buf[:end]), pos))
            return compiled[0](buf, pos, end, out)

        def walker_errors(buf: bytes, pos: int, end: int, out: dict[str, Any], errs: list[Any]) -> int:
            seen.append((api_key, version, response, bytes(buf[:end]), pos))
            return compiled[3](buf, pos, end, out, errs)

        return walker, compiled[1], compiled[2], walker_errors

    # the spies go into the memo compiled_for reads first, for every key a request header can name (the
    # decoder's call of compiled_for is a native one in the compiled build: patching the name would not do)
    spies: dict[tuple[int, int, bool], Compiled] = {}
    for api_key in SCHEMAS:
        for version in range(decoder_mod.MAX_API_VERSION + 1):
            for response in (False, True):
                compiled = compiled_for(api_key, version, response)
                if compiled is not None:
                    spies[api_key, version, response] = spying(api_key, version, response, compiled)
    monkeypatch.setattr(schema, "_COMPILED", spies)
    run_file(path, rules)
    monkeypatch.undo()
    for api_key, version, response, body, pos in seen:
        plan = plan_for(api_key, version, response)
        compiled = compiled_for(api_key, version, response)
        assert plan is not None and compiled is not None
        check(plan, compiled, body, pos)
    return len(seen)


@pytest.mark.parametrize("row", manifest("kafka"), ids=lambda r: r.name)
def test_corpus(monkeypatch: pytest.MonkeyPatch, row: Any) -> None:
    assert corpus_walks(monkeypatch, row.path, RULES_FOR["kafka"](row)) > 0


@pytest.mark.skipif(not os.path.exists(REAL), reason="bench/out/real/kafka.pcap not recorded here")
def test_real_capture(monkeypatch: pytest.MonkeyPatch) -> None:
    with open(REAL[: -len(".pcap")] + ".json") as f:
        port = int(json.load(f)["port"])
    assert corpus_walks(monkeypatch, REAL, (Rule(protocol="kafka", ports=(port,)),)) > 4000


# -- records ---------------------------------------------------------------------------------------------------
_BATCH = struct.Struct(">qiibIhiqqqhii")


def reference_records_summary(buf: bytes, start: int, end: int, declared: int) -> tuple[int, int, Any]:
    """records_summary as it was: the whole 61-byte batch header unpacked, every varint read by call."""
    count = 0
    headers = None
    p = start
    first = True
    while p + 17 <= end:
        (batch_len,) = struct.unpack_from(">i", buf, p + 8)
        magic = buf[p + 16]
        if batch_len < 0:
            raise DecodeError("bad record batch length")
        if magic == 2:
            if p + 61 > end:
                break
            fields = _BATCH.unpack_from(buf, p)
            attrs, n = fields[5], fields[12]
            if n < 0:
                raise DecodeError("bad record count")
            count += n
            if first and n > 0 and not attrs & 0x20:
                headers = reference_headers(buf, p + 61, min(p + 12 + batch_len, end), attrs & 7)
        elif magic in (0, 1):
            count += 1
        else:
            raise DecodeError("bad record magic", str(magic))
        first = False
        p += 12 + batch_len
    return count, declared, headers


def reference_headers(buf: bytes, p: int, end: int, codec: int) -> dict[str, bytes] | None:
    if codec == 1:
        try:
            data = zlib.decompressobj(wbits=31).decompress(buf[p:end], schema.MAX_TRACE_INFLATE)
        except zlib.error:
            return None
        buf, p, end = data, 0, len(data)
    elif codec != 0:
        return None
    try:
        _length, p = zigzag_varint(buf, p, end)
        p += 1
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


def record_batches(rng: random.Random) -> Iterator[bytes]:
    """Batches of `batch`, and v2 ones with long keys and values, many headers, a 200-byte record, odd
    varint encodings (a redundant continuation byte), timestamps far apart."""
    for _ in range(40):
        yield batch(rng)
    for _ in range(40):
        b = DefaultRecordBatchBuilder(magic=2, compression_type=rng.choice((0, 0, 1)), is_transactional=False,
                                      producer_id=-1, producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)  # fmt: skip
        headers = [(rng.choice(("traceparent", "k", "", "caf\u00e9")), rng.randbytes(rng.choice((0, 5, 70, 200))))
                   for _ in range(rng.choice((0, 1, 3, 70)))]  # fmt: skip
        key = rng.choice((None, b"", b"k" * 100))
        b.append(0, timestamp=rng.choice((0, 1 << 40)), key=key, value=rng.randbytes(rng.choice((0, 10, 300))),
                 headers=headers)  # fmt: skip
        b.append(1, timestamp=5, key=None, value=b"v", headers=[])
        yield bytes(b.build())


def summary_outcome(fn: Callable[[bytes, int, int, int], Any], buf: bytes, end: int) -> str:
    try:
        return repr(fn(buf, 0, end, len(buf)))
    except Exception as exc:  # the same exception is what is compared
        return f"{type(exc).__name__}{exc.args}"


def test_records_summary() -> None:
    """records_summary against the reference on whole batches, batches cut anywhere, and mutated ones."""
    rng = random.Random(7)
    for data in record_batches(rng):
        cases = [data, data + data] + [data[:cut] for cut in range(0, len(data), max(1, len(data) // 120))]
        for _ in range(40):
            m = bytearray(data)
            for _ in range(rng.randint(1, 3)):
                m[rng.randrange(len(m))] = rng.choice((0x00, 0x7F, 0x80, 0xFF, 0x20, rng.randrange(256)))
            cases.append(bytes(m))
        for buf in cases:
            for end in (len(buf), max(0, len(buf) - 3)):
                got = summary_outcome(records_summary, buf, end)
                assert got == summary_outcome(reference_records_summary, buf, end), buf.hex()


@pytest.mark.parametrize("batch_len", [0, 30, 48, 49])
def test_gzip_batch_shorter_than_its_header(batch_len: int) -> None:
    """A gzip v2 batch whose declared length ends inside its own 61-byte header (batch_len < 49): the
    headers start past the batch's end, an empty slice in Python and a SystemError in compiled code if the
    slice were taken; no headers either way (the next batch is then read from inside this one's header)."""
    head = struct.pack(">qiiBiHiqqqhii", 0, batch_len, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 1)
    assert len(head) == 61
    buf = head + b"\x00" * 20
    got = summary_outcome(records_summary, buf, len(buf))
    assert got == summary_outcome(reference_records_summary, buf, len(buf))
    assert got.startswith("(") and got.endswith(", None)"), got
