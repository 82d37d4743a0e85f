"""`decoder._structure_error`: no document reaches the bson package's C reader unless every element lies
inside its container. That reader (pymongo 4.20.1) bounds an array element by what is left from the array's
start, so an element near an array's end that claims a size past the array makes it read the bytes after
the document (valgrind: "Invalid read of size 1" in get_value); the same bytes then gave different errors
from one call to the next, depending on what lay after them in memory.

The truths here: documents the bson package itself encodes (all well-formed); the pymongo pure-Python
reader, run in a child process without the C extension, which reads through Python slices and indexing and
so can never leave the buffer: whatever it accepts the check must accept, and for every document the check
passes, the C reader must give that reader's result (same values, or both refuse); and crafted documents
whose extents are computed by hand."""

from __future__ import annotations

import datetime
import json
import os
import pickle
import random
import struct
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import bson
import pytest
from bson.code import Code
from bson.int64 import Int64
from bson.objectid import ObjectId
from bson.regex import Regex
from hypothesis import given, settings

from packetd.protocols.base import DecodeError, DecoderContext
from packetd.protocols.mongodb.decoder import FAST_STRUCTURE, MongoDecoder, _structure_error
from tests.helpers.decoding import C2S
from tests.protocols.mongodb.test_fastread import DOCS, RICH, command_bytes

# the check in Python (the reference) and its C twin (mongodb/_extent.c, present in the compiled build):
# every case runs through both
IMPLS = [pytest.param(_structure_error, id="python")]
if FAST_STRUCTURE is not None:
    IMPLS.append(pytest.param(FAST_STRUCTURE, id="c"))
Check = Callable[[bytes], str]

# the pure-Python reader: bson imported with its C extension blocked; reads pickled documents from stdin,
# writes one verdict per document: ["ok", the decoded value encoded again, in hex] or ["error", ""] (encoded
# again: the two readers' values print differently, Regex flags as an int or a RegexFlag, but encode the same)
PURE_READER = r"""
import pickle, sys, json
sys.modules["bson._cbson"] = None
import bson
assert not bson.has_c()
out = []
for doc in pickle.load(sys.stdin.buffer):
    try:
        out.append(["ok", bson.encode(bson.decode(doc)).hex()])
    except Exception:
        out.append(["error", ""])
json.dump(out, sys.stdout)
"""


def pure_verdicts(docs: list[bytes]) -> list[tuple[str, str]]:
    run = subprocess.run(
        [sys.executable, "-c", PURE_READER], input=pickle.dumps(docs), capture_output=True, check=True
    )
    return [(a, b) for a, b in json.loads(run.stdout)]


def c_verdict(doc: bytes) -> tuple[str, str]:
    try:
        return ("ok", bson.encode(bson.decode(doc)).hex())
    except Exception:
        return ("error", "")


EXTRA = {"code": Code("f(x)", {"x": [1, "two", {"three": 3}]}), "re": Regex("^a.*", "im"),
         "bin2": bson.Binary(b"abcd", 2), "u": bson.Binary(b"0123456789abcdef", 4), "n": None,
         "t": datetime.datetime(2024, 1, 2), "l": Int64(-5), "o": ObjectId(b"abcdefghijkl"),
         "nested": [[[[]]], {"": {"": [None, True, 1.5]}}]}  # fmt: skip


def test_the_compiled_build_checks_in_c() -> None:
    """As tests/test_build.py judges net/_packet.c: in the compiled run the C twin is in use (unless
    PACKETD_PURE=1 turned it off), in the pure run it is absent (so its comparison below runs, un-skipped,
    in the compiled pass)."""
    expected = os.environ.get("PACKETD_EXPECT_BUILD")
    if expected == "compiled":
        if os.environ.get("PACKETD_PURE") != "1":
            assert FAST_STRUCTURE is not None
    elif expected == "pure":
        assert FAST_STRUCTURE is None


@pytest.mark.parametrize("check", IMPLS)
@settings(max_examples=300, deadline=None)
@given(doc=DOCS)
def test_every_document_bson_encodes_passes(check: Check, doc: dict[str, Any]) -> None:
    assert check(bson.encode(doc)) == ""


@pytest.mark.parametrize("check", IMPLS)
def test_every_bson_type_passes(check: Check) -> None:
    assert check(bson.encode({**RICH, **EXTRA})) == ""


def _mutants() -> list[bytes]:
    """Each byte of two rich documents set to boundary values, and each length field off by one or two."""
    out = []
    for base in (bson.encode(RICH), bson.encode(EXTRA), command_bytes("find", dict(RICH))[21:]):
        for i in range(len(base)):
            for value in (0, 1, 2, 4, 5, 0x0D, 0x7F, 0x80, 0xC3, 0xFF):
                if base[i] != value:
                    out.append(base[:i] + bytes([value]) + base[i + 1 :])
            if i + 4 <= len(base):
                (n,) = struct.unpack_from("<i", base, i)
                for delta in (-2, -1, 1, 2):
                    out.append(base[:i] + struct.pack("<i", n + delta) + base[i + 4 :])
    return out


@pytest.mark.parametrize("check", IMPLS)
def test_the_check_agrees_with_the_memory_safe_reader(check: Check) -> None:
    docs = _mutants()
    pure = pure_verdicts(docs)
    passed = refused = 0
    for doc, (verdict, value) in zip(docs, pure, strict=True):
        why = check(doc)
        if verdict == "ok":  # the pure reader accepts it: so must the check, and C must read the same
            assert why == "", (doc, why)
        if why == "":
            passed += 1
            assert c_verdict(doc) == (verdict, value), doc
        else:
            refused += 1
    assert passed > 1000 and refused > 1000  # both sides of the check were exercised


def _array_overrun(pad: int) -> bytes:
    """{"arr": ["x" * pad, {}]} with the second element's size set to reach `pad` + 2 bytes past the
    array and the document: inside what pymongo's C reader allows (what is left from the array's start,
    less the key), outside the array."""
    d = bytearray(bson.encode({"find": "c", "arr": ["x" * pad, {}]}))
    at = d.rfind(b"\x031\x00\x05\x00\x00\x00") + 3  # the embedded document's int32 size
    arr_value = d.find(b"\x04arr\x00") + 5
    d[at : at + 4] = struct.pack("<I", len(d) - 1 - arr_value - 2)
    assert at + struct.unpack_from("<I", d, at)[0] > len(d)  # by hand: past the end of the buffer
    return bytes(d)


@pytest.mark.parametrize("pad", [0, 100, 100_000])
def test_an_array_element_past_its_array_never_reaches_bson(pad: int) -> None:
    doc = _array_overrun(pad)
    assert _structure_error(doc) == "bad nested document length"
    assert FAST_STRUCTURE is None or FAST_STRUCTURE(doc) == "bad nested document length"
    body = struct.pack("<IB", 0, 0) + doc
    msg = struct.pack("<iiii", 16 + len(body), 7, 0, 2013) + body
    for _ in range(3):  # the same outcome every time (pymongo's own text varied with memory contents)
        with pytest.raises(DecodeError) as exc:
            MongoDecoder(DecoderContext()).receive(C2S, memoryview(msg), 1)
        assert exc.value.args[0] == "bad BSON: bad nested document length"


def _doc(elements: bytes) -> bytes:
    return struct.pack("<i", len(elements) + 5) + elements + b"\x00"


def _arr(element: bytes) -> bytes:
    """A document {"a": [element]}: the check walks arrays (and what holds them), so the element is put in one."""
    return _doc(b"\x04a\x00" + _doc(element))


I32 = struct.Struct("<i").pack
CRAFTED = [
    (b"", "bad document length"),  # too short
    (I32(6) + b"\x00", "bad document length"),  # length says 6, 5 bytes
    (I32(5) + b"\x01", "bad document length"),  # no terminating NUL
    (_doc(b"\x10a\x00\x01\x00\x00"), ""),  # no array (no 0x04 byte): left to bson, whose document bounds hold
    (_arr(b"\x100\x00" + I32(1)), ""),  # [1]
    (_arr(b"\x100\x00\x01\x00\x00"), "bad element length"),  # int32 with 3 bytes, then the array's NUL
    (_arr(b"\x100"), "bad element name"),  # a name that runs into the array's NUL
    (_arr(b"\x020\x00" + I32(2) + b"x\x00"), ""),  # "x": length 2 counts the NUL
    (_arr(b"\x020\x00" + I32(3) + b"x\x00"), "bad element length"),  # one past the array: its NUL
    (_arr(b"\x020\x00" + I32(0) + b"x\x00"), "bad element length"),  # zero: not even the NUL
    (_arr(b"\x020\x00" + I32(2) + b"xy"), "bad element length"),  # no NUL at its end
    (_arr(b"\x030\x00" + _doc(b"")), ""),  # [{}]
    (_arr(b"\x030\x00" + I32(4) + b"\x00"), "bad nested document length"),  # shorter than 5
    (_arr(b"\x030\x00" + I32(6) + b"\x00"), "bad nested document length"),  # past the array
    (_arr(b"\x040\x00" + _doc(b"\x100\x00" + I32(7))), ""),  # [[7]]
    (_arr(b"\x040\x00" + _doc(b"\x020\x00" + I32(9) + b"x\x00")), "bad element length"),
    (_arr(b"\x050\x00" + I32(3) + b"\x00abc"), ""),  # binary, subtype 0, 3 bytes
    (_arr(b"\x050\x00" + I32(4) + b"\x00abc"), "bad element length"),
    (_arr(b"\x050\x00" + I32(3) + b"\x02abc"), "bad element length"),  # subtype 2 holds an int32 first
    (_arr(b"\x0b0\x00a\x00i\x00"), ""),  # regex /a/i
    (_arr(b"\x0b0\x00a\x00i"), "bad element length"),  # options not terminated inside the array
    (_arr(b"\x0c0\x00" + I32(2) + b"c\x00" + b"o" * 12), ""),  # DBPointer
    (_arr(b"\x0c0\x00" + I32(2) + b"c\x00" + b"o" * 11), "bad element length"),
    (_arr(b"\x0f0\x00" + I32(4 + 6 + 5) + I32(2) + b"f\x00" + _doc(b"")), ""),  # code with scope
    (_arr(b"\x0f0\x00" + I32(4 + 6 + 6) + I32(2) + b"f\x00" + _doc(b"") + b"\x00"),
     "bad code-with-scope length"),  # its total counts a byte after the scope
    (_arr(b"\x140\x00"), "unknown element type 20"),
    (_arr(b"\x0a0\x00\x7f1\x00\xff2\x00\x063\x00\x014\x00" + b"\x00" * 8), ""),  # null, max, min, undefined, 0.0
]  # fmt: skip


@pytest.mark.parametrize("check", IMPLS)
@pytest.mark.parametrize(("doc", "why"), CRAFTED)
def test_crafted_documents(check: Check, doc: bytes, why: str) -> None:
    assert check(doc) == why
    if why == "":  # what the check passes, the C reader reads inside the document as the pure one does
        assert c_verdict(doc) == pure_verdicts([doc])[0]


@pytest.mark.skipif(FAST_STRUCTURE is None, reason="the C twin is built only by the compiled build")
def test_the_c_twin_answers_as_python_does() -> None:
    """The mutants, the crafted documents, truncations and random byte changes of them: the same text."""
    assert FAST_STRUCTURE is not None
    base = _mutants() + [doc for doc, _ in CRAFTED] + [_array_overrun(p) for p in (0, 100, 5000)]
    rng = random.Random(15)
    docs = list(base)
    for _ in range(50_000):
        d = bytearray(rng.choice(base))
        for _ in range(rng.randint(1, 3)):
            if d:
                d[rng.randrange(len(d))] = rng.randrange(256)
        if rng.random() < 0.3 and len(d) > 4:
            d = d[: rng.randrange(len(d))]
        docs.append(bytes(d))
    differ = [d for d in docs if FAST_STRUCTURE(d) != _structure_error(d)]
    assert differ == []
    assert sum(_structure_error(d) == "" for d in docs) > 5000  # both outcomes were exercised
