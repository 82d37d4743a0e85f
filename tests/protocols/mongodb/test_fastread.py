"""Whole-document decoding (`decoder._decoded`) is a shortcut, never a second reading: commands and replies
of every BSON type and shape, DBRefs among them, and the same bytes mutated, give the same messages — or
the same DecodeError — with the shortcut as with RawBSONDocument alone (the decoder's reading before it,
reached by disabling the shortcut).

The shortcut is switched off (and watched) through `bson.decode`, the one call it makes: the decoder looks
that attribute up on the bson module at run time in either build, where replacing `_decoded` itself would
not reach the compiled decoder (mypyc calls a module's own functions directly). RawBSONDocument never goes
through `bson.decode` (it imports bson's private readers by name), so its reading is unchanged."""

from __future__ import annotations

import datetime
import struct
from typing import Any

import bson
import pytest
from bson.binary import Binary
from bson.code import Code
from bson.dbref import DBRef
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from packetd.protocols.base import DecodeError, DecoderContext
from packetd.protocols.mongodb import decoder as mod
from packetd.protocols.mongodb.decoder import MongoDecoder
from packetd.protocols.mongodb.options import MongoOptions
from tests.helpers.decoding import C2S, S2C
from tests.protocols.mongodb.test_decoder import reply

NAMES = ["ok", "code", "codeName", "errmsg", "$err", "n", "nModified", "cursor", "firstBatch", "nextBatch",
         "id", "writeErrors", "$db", "collection", "find", "insert", "getMore", "lsid", "payload", "filter",
         "a", "é", ""]  # fmt: skip
SCALARS = st.one_of(
    st.text(max_size=8),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(-(2**63), 2**63 - 1).map(Int64),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
    st.binary(max_size=6),
    st.sampled_from([ObjectId(b"0123456789ab"), datetime.datetime(2024, 5, 1), Decimal128("1.5"),
                     Timestamp(5, 1), MinKey(), MaxKey(), Regex("^a", "i"), Code("f()"), Binary(b"x", 4),
                     DBRef("coll", 1), Binary(b"ab", 2)]),
)  # fmt: skip
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(NAMES), inner, max_size=5)
    ),
    max_leaves=12,
)
DOCS = st.dictionaries(st.sampled_from(NAMES), VALUES, min_size=1, max_size=7)


def command_bytes(first: str, doc: dict[str, Any]) -> bytes:
    body = struct.pack("<IB", 0, 0) + bson.encode({first: doc.pop(first, "users"), **doc})
    return struct.pack("<iiii", 16 + len(body), 7, 0, 2013) + body


def _refuse(doc: bytes, opts: object = None) -> Any:
    raise bson.InvalidBSON("the shortcut is off")  # what _decoded takes for a document to read raw


def outcome(steps: list[tuple[Any, bytes]], raw: bool, fast: bool, monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as m:
        if not fast:
            m.setattr(bson, "decode", _refuse)
        d = MongoDecoder(DecoderContext(options=MongoOptions(raw_query=raw)))
        got: list[Any] = []
        for direction, data in steps:
            try:
                got.extend(d.receive(direction, memoryview(data), 1))
            except DecodeError as exc:
                got.append(("DecodeError", exc.args[0]))
                break
        return got


def same(steps: list[tuple[Any, bytes]], monkeypatch: pytest.MonkeyPatch) -> None:
    fast, reference = outcome(steps, False, True, monkeypatch), outcome(steps, False, False, monkeypatch)
    assert fast == reference  # the same records, or the same DecodeError with the same text


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["find", "insert", "getMore", "hello", "aggregate"]), DOCS, DOCS)
def test_generated_documents(first: str, cmd: dict, rep: dict) -> None:
    with pytest.MonkeyPatch.context() as mp:
        same([(C2S, command_bytes(first, dict(cmd))), (S2C, reply(7, rep))], mp)


# bytes that sit on a boundary of some check: booleans, type codes, UTF-8 lead / continuation, sign bits
EDGES = st.one_of(
    st.sampled_from([0, 1, 2, 3, 4, 5, 0x0D, 0x0E, 0x7F, 0x80, 0xC3, 0xED, 0xFE, 0xFF]), st.integers(0, 255)
)


@settings(max_examples=600, deadline=None)
@given(DOCS, DOCS, st.lists(st.tuples(st.integers(0, 10**6), EDGES), min_size=1, max_size=3))
def test_mutated_documents(cmd: dict, rep: dict, flips: list[tuple[int, int]]) -> None:
    request = bytearray(command_bytes("find", dict(cmd)))
    answer = bytearray(reply(7, rep))
    for at, value in flips:  # inside the documents only: the message framing stays as it was
        for buf in (request, answer):
            i = 21 + at % (len(buf) - 21)
            buf[i] = value
    with pytest.MonkeyPatch.context() as mp:
        same([(C2S, bytes(request)), (S2C, bytes(answer))], mp)


REPLIES = [
    {"cursor": {"firstBatch": [{"_id": i, "v": "x" * i} for i in range(5)], "id": Int64(0), "ns": "a.b"}, "ok": 1.0},
    {"cursor": {"nextBatch": [], "id": Int64(77)}, "ok": 1},
    {"n": 3, "nModified": 2, "ok": 1.0},
    {"n": 0, "writeErrors": [{"index": 0, "code": 11000, "codeName": "DuplicateKey", "errmsg": "dup"}], "ok": 1.0},
    {"ok": 0.0, "errmsg": "no such cmd", "code": 59, "codeName": "CommandNotFound"},
    {"ok": 0.0, "errmsg": "", "$err": "legacy"},
    {"ok": True},
]  # fmt: skip


@pytest.mark.parametrize("rep", REPLIES)
def test_the_shortcut_reads_common_replies(rep: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """Common replies are read by the shortcut (else the equalities here show nothing) and as before."""
    calls: list[object] = []
    original = bson.decode

    def watched(doc: bytes, opts: Any = None) -> Any:
        calls.append(original(doc, opts))  # raises as the original does: then nothing is appended
        return calls[-1]

    monkeypatch.setattr(bson, "decode", watched)
    got = MongoDecoder()._reply_fields(bson.encode(rep))
    assert calls and calls[0] is not None
    monkeypatch.undo()
    monkeypatch.setattr(bson, "decode", _refuse)
    assert mod._decoded(bson.encode(rep)) is None  # the shortcut really is off for the second reading
    assert got == MongoDecoder()._reply_fields(bson.encode(rep))


def test_the_shortcut_reads_common_commands() -> None:
    cmd = {"find": "users", "filter": {"age": {"$gt": 3}}, "lsid": {"id": Binary(b"0" * 16, 4)}, "$db": "app"}
    assert mod._decoded(bson.encode(cmd)) is not None
    got = MongoDecoder()._command_fields(bson.encode(cmd), "find")
    assert got == ("app", "users", '{"find": "users", "filter": {"age": {"$gt": "?"}}, "$db": "app"}')


RICH = {
    "s": "é", "i": 5, "l": Int64(-3), "f": 1.5, "t": True, "z": None, "b": b"ab", "u": Binary(b"0" * 16, 4), "old": Binary(b"ab", 2),
    "o": ObjectId(b"0123456789ab"), "d": datetime.datetime(2024, 5, 1), "m": Decimal128("2"),
    "ts": Timestamp(1, 2), "lo": MinKey(), "hi": MaxKey(), "arr": [1, "x", {"k": False}, [2]],
    "doc": {"k": "v", "n": {"deep": [True]}}, "ref": DBRef("c", 5), "re": Regex("^a", "i"), "js": Code("f()"),
}  # fmt: skip


@pytest.mark.parametrize(
    "steps",
    [
        [(C2S, command_bytes("find", dict(RICH)))],
        [(C2S, command_bytes("find", {})), (S2C, reply(7, {"ok": 1.0, "cursor": {"firstBatch": [RICH], "id": Int64(1)}, "n": 1}))],
        [(C2S, command_bytes("find", {})), (S2C, reply(7, {"writeErrors": [{"code": 1, "errmsg": "é", "x": RICH}], "ok": True}))],
    ],
    ids=["command", "cursor", "write-errors"],
)  # fmt: skip
def test_every_byte_mutated(steps: list, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each byte of the documents set to each boundary value in turn: the same outcome either way."""
    last = steps[-1][1]
    for i in range(21, len(last)):
        for value in (0, 1, 2, 0x0D, 0x7F, 0x80, 0xC3, 0xFF):
            if last[i] == value:
                continue
            mutated = bytearray(last)
            mutated[i] = value
            same([*steps[:-1], (steps[-1][0], bytes(mutated))], monkeypatch)
