"""MongoDB decoder table cases, run whole, byte by byte and with trailing bytes that must survive.

Messages are built by pymongo's own wire encoder (`pymongo.message._op_msg`, `_compress`) or, for the
legacy opcodes pymongo no longer writes, by hand from `bson.encode` and the wire spec's struct layouts.
OP_COMPRESSED is tested on real OP_MSG bytes from a capture (deepflow mongo-msg.pcap, read by tshark)
compressed with zlib (pymongo's ZlibContext), snappy (python-snappy through pymongo's SnappyContext) and
zstd (the zstandard package).
"""

from __future__ import annotations

import struct
import subprocess

import bson
import pymongo.compression_support as compression
import pymongo.message
import pytest
import zstandard
from bson.codec_options import CodecOptions

from packetd.protocols.base import DecodeError, DecoderContext, Flag
from packetd.protocols.framing import MAX_RESYNC_SCAN
from packetd.protocols.mongodb.decoder import MongoDecoder
from packetd.protocols.mongodb.messages import MongoOneway, MongoPush, MongoReply, MongoRequest
from packetd.protocols.mongodb.options import MongoOptions
from tests.helpers.decoding import C2S, MODES, S2C, Step, run
from tests.helpers.golden import CORPUS
from tests.net.truth import TSHARK

OPTS = CodecOptions()
MORE_TO_COME, EXHAUST = 2, 1 << 16


def op_msg(command: dict, db: str = "app", flags: int = 0) -> tuple[int, bytes]:
    rid, msg, _size, _max = pymongo.message._op_msg(flags, dict(command), db, None, OPTS)
    return rid, msg


def reply(to: int, doc: dict, rid: int = 9000, flags: int = 0) -> bytes:
    """A server OP_MSG reply, laid out per the wire spec (pymongo has no server-side encoder)."""
    body = struct.pack("<IB", flags, 0) + bson.encode(doc)
    return struct.pack("<iiii", 16 + len(body), rid, to, 2013) + body


def legacy(opcode: int, rid: int, body: bytes) -> bytes:
    return struct.pack("<iiii", 16 + len(body), rid, 0, opcode) + body


def op_query(rid: int, ns: str, query: dict) -> bytes:
    return legacy(
        2004, rid, struct.pack("<i", 0) + ns.encode() + b"\0" + struct.pack("<ii", 0, -1) + bson.encode(query)
    )


def op_reply(rid: int, to: int, docs: list[dict], flags: int = 0, cursor: int = 0) -> bytes:
    body = struct.pack("<iqii", flags, cursor, 0, len(docs)) + b"".join(bson.encode(d) for d in docs)
    return struct.pack("<iiii", 16 + len(body), rid, to, 1) + body


FIND_ID, FIND = op_msg({"find": "users", "filter": {"name": "ann", "age": {"$gt": 30}}, "limit": 5})
FIND_OK = reply(
    FIND_ID, {"cursor": {"firstBatch": [{"a": 1}, {"a": 2}], "id": 0, "ns": "app.users"}, "ok": 1.0}
)
INS_ID, INSERT = op_msg({"insert": "users", "documents": [{"name": "ann"}, {"name": "bob"}, {"name": "cy"}]})
INS_OK = reply(INS_ID, {"n": 3, "ok": 1.0})
ERR_ID, BAD = op_msg({"find": "users", "filter": {"$bad": 1}})
ERR = reply(
    ERR_ID, {"ok": 0.0, "errmsg": "unknown top level operator: $bad", "code": 2, "codeName": "BadValue"}
)
DUP_ID, DUP = op_msg({"insert": "users", "documents": [{"_id": 1}]})
DUP_ERR = reply(
    DUP_ID,
    {"n": 0, "writeErrors": [{"index": 0, "code": 11000, "errmsg": "E11000 duplicate key"}], "ok": 1.0},
)
UPD_ID, UPDATE = op_msg({"update": "users", "updates": [{"q": {"a": 1}, "u": {"$set": {"b": 2}}}]})
UPD_OK = reply(UPD_ID, {"n": 1, "nModified": 1, "ok": 1.0})
W0_ID, W0 = op_msg({"insert": "users", "documents": [{"x": 1}], "writeConcern": {"w": 0}}, flags=MORE_TO_COME)
HELLO_ID, HELLO = op_msg({"hello": 1, "client": {"driver": {"name": "pymongo"}}})
HELLO_OK = reply(HELLO_ID, {"isWritablePrimary": True, "maxWireVersion": 21, "ok": 1.0})

SENT_ID, SENT = op_msg({"ping": 1}, db="admin")
SENTINEL: list[Step] = [(C2S, SENT), (S2C, reply(SENT_ID, {"ok": 1.0}, rid=9999))]

# name → (steps, expected (type, operation/command, status, key fields))
CASES: dict[str, tuple[list[Step], list[tuple]]] = {
    "find": (
        [(C2S, FIND), (S2C, FIND_OK)],
        [(MongoRequest, "find", "app", "users"), (MongoReply, "OK", 2, None)],
    ),
    "insert-with-document-sequence": (
        [(C2S, INSERT), (S2C, INS_OK)],
        [(MongoRequest, "insert", "app", "users"), (MongoReply, "OK", None, 3)],
    ),
    "error-reply": (
        [(C2S, BAD), (S2C, ERR)],
        [(MongoRequest, "find", "app", "users"), (MongoReply, "BadValue", None, None)],
    ),
    "write-error": (
        [(C2S, DUP), (S2C, DUP_ERR)],
        [(MongoRequest, "insert", "app", "users"), (MongoReply, "11000", None, 0)],
    ),
    "update": (
        [(C2S, UPDATE), (S2C, UPD_OK)],
        [(MongoRequest, "update", "app", "users"), (MongoReply, "OK", None, 1)],
    ),
    "unacknowledged-write-is-oneway": (
        [(C2S, W0)],
        [(MongoOneway, "insert", "app", "users")],
    ),
    "pipelined-in-one-segment": (
        [(C2S, FIND + INSERT), (S2C, INS_OK + FIND_OK)],
        [
            (MongoRequest, "find", "app", "users"),
            (MongoRequest, "insert", "app", "users"),
            (MongoReply, "OK", None, 3),
            (MongoReply, "OK", 2, None),
        ],
    ),
    "legacy-query-reply-and-writes": (
        [
            (C2S, op_query(1, "admin.$cmd", {"isMaster": 1})),
            (S2C, op_reply(50, 1, [{"ismaster": True, "ok": 1.0}])),
            (C2S, op_query(2, "shop.items", {"price": {"$lt": 10}})),
            (S2C, op_reply(51, 2, [{"ok": 0, "n": 7}] * 4, cursor=77)),  # user documents: not a reply doc
            (C2S, legacy(2005, 3, struct.pack("<i", 0) + b"shop.items\0" + struct.pack("<iq", 10, 77))),
            (S2C, op_reply(52, 3, [{"x": 1}])),
            (C2S, legacy(2002, 4, struct.pack("<i", 0) + b"shop.items\0" + bson.encode({"a": 1}) * 2)),
            (C2S, legacy(2007, 5, struct.pack("<iiq", 0, 1, 77))),
        ],
        [
            (MongoRequest, "isMaster", "admin", None),
            (MongoReply, "OK", 1, None),
            (MongoRequest, "find", "shop", "items"),
            (MongoReply, "OK", 4, None),
            (MongoRequest, "getMore", "shop", "items"),
            (MongoReply, "OK", 1, None),
            (MongoOneway, "insert", "shop", "items"),
            (MongoOneway, "killCursors", None, None),
        ],
    ),
}


def summary(msgs: list) -> list[tuple]:
    out = []
    for m in msgs:
        if isinstance(m, MongoRequest):
            out.append((type(m), m.command, m.database, m.collection))
        elif isinstance(m, MongoReply):
            out.append((type(m), m.status(), m.batch_size, m.n))
    return out


def decoder(**opts: object) -> MongoDecoder:
    return MongoDecoder(DecoderContext(options=MongoOptions(**opts)))  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(CASES))
def test_table(name: str, mode: str) -> None:
    steps, expected = CASES[name]
    msgs = run(decoder, steps, mode, sentinel=SENTINEL)
    if mode == "trailing":
        expected = [*expected, (MongoRequest, "ping", "admin", None), (MongoReply, "OK", None, None)]
        got = summary(msgs)
        # the sentinel's request comes after the case's last request, its reply after the last reply
        assert sorted(got, key=repr) == sorted(expected, key=repr)
    else:
        assert summary(msgs) == expected


def test_pairing_keys_and_fields() -> None:
    d = decoder()
    req = d.receive(C2S, memoryview(FIND), 1)[0]
    resp = d.receive(S2C, memoryview(FIND_OK), 2)[0]
    assert req.pair_key == resp.pair_key == FIND_ID  # type: ignore[attr-defined]
    j = req.to_json()
    assert (
        j["query"]
        == '{"find": "users", "filter": {"name": "?", "age": {"$gt": "?"}}, "limit": "?", "$db": "app"}'
    )
    assert j["size"] == len(FIND) and j["flags"] == []
    r = resp.to_json()
    assert r["ok"] == 1.0 and r["batch_size"] == 2 and r["cursor_id"] == 0 and r["size"] == len(FIND_OK)


def test_raw_query_keeps_values_but_never_auth_payloads() -> None:
    d = decoder(raw_query=True)
    _, sasl = op_msg(
        {"saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": b"n,,n=user,r=secretnonce"}, db="admin"
    )
    j = d.receive(C2S, memoryview(sasl), 1)[0].to_json()
    assert "secretnonce" not in j["query"] and '"payload": "?"' in j["query"]
    j = d.receive(C2S, memoryview(FIND), 2)[0].to_json()
    assert '"name": "ann"' in j["query"] and '"$gt": 30' in j["query"]


def test_document_sequence_counts_documents() -> None:
    msg = decoder().receive(C2S, memoryview(INSERT), 1)[0]
    assert msg.to_json()["documents"] == 3


def test_error_and_write_error_fields() -> None:
    d = decoder()
    d.receive(C2S, memoryview(BAD), 1)
    r = d.receive(S2C, memoryview(ERR), 2)[0]
    assert r.is_error() and r.to_json()["code"] == 2 and r.to_json()["errmsg"].startswith("unknown top level")
    d.receive(C2S, memoryview(DUP), 3)
    w = d.receive(S2C, memoryview(DUP_ERR), 4)[0]
    assert w.is_error() and w.to_json()["write_errors"] == 1 and w.to_json()["code"] == 11000


def test_first_hello_is_the_handshake() -> None:
    d = decoder()
    first = d.receive(C2S, memoryview(HELLO), 1)[0]
    d.receive(S2C, memoryview(HELLO_OK), 2)
    _, again = op_msg({"hello": 1})
    second = d.receive(C2S, memoryview(again), 3)[0]
    assert first.record_kind() == "handshake" and second.record_kind() == "roundtrip"
    joined = MongoDecoder(DecoderContext(midstream=True)).receive(C2S, memoryview(HELLO), 1)[0]
    assert joined.record_kind() == "roundtrip"


def test_exhaust_stream_first_reply_pairs_later_ones_are_oneway() -> None:
    d = decoder()
    rid, get_more = op_msg({"getMore": 5, "collection": "users"}, flags=EXHAUST)
    req = d.receive(C2S, memoryview(get_more), 1)[0]
    r1 = d.receive(
        S2C, memoryview(reply(rid, {"cursor": {"nextBatch": [{}], "id": 5}, "ok": 1}, 100, MORE_TO_COME)), 2
    )[0]
    r2 = d.receive(
        S2C,
        memoryview(reply(100, {"cursor": {"nextBatch": [{}, {}], "id": 5}, "ok": 1}, 101, MORE_TO_COME)),
        3,
    )[0]
    r3 = d.receive(S2C, memoryview(reply(101, {"cursor": {"nextBatch": [], "id": 0}, "ok": 1}, 102)), 4)[0]
    assert type(req) is MongoRequest and req.collection == "users"  # type: ignore[attr-defined]
    assert type(r1) is MongoReply and r1.pair_key == rid  # type: ignore[attr-defined]
    assert type(r2) is MongoPush and type(r3) is MongoPush
    assert r2.operation() == "getMore" and r3.to_json()["batch_size"] == 0


def _captured_op_msgs() -> list[bytes]:
    """The OP_MSG request and reply of a real capture, as tshark reads their TCP payloads."""
    assert TSHARK is not None
    path = f"{CORPUS}/mongodb/deepflowio_deepflow__mongo-msg.pcap"
    out = subprocess.run([TSHARK, "-n", "-r", path, "-T", "fields", "-e", "tcp.payload"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return [bytes.fromhex(line) for line in out.split() if line]


class _Zstd:
    compressor_id = 3

    def compress(self, data: bytes) -> bytes:
        return zstandard.ZstdCompressor().compress(data)


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (make test-deps)")
@pytest.mark.parametrize(
    ("name", "ctx"),
    [("zlib", compression.ZlibContext(6)), ("snappy", compression.SnappyContext()), ("zstd", _Zstd())],
)
@pytest.mark.parametrize("mode", ("whole", "bytewise"))
def test_op_compressed_real_messages(name: str, ctx: object, mode: str) -> None:
    request, response = _captured_op_msgs()
    plain = [m for m in run(decoder, [(C2S, request), (S2C, response)], "whole")]
    compressed = []
    for msg in (request, response):
        rid, rto = struct.unpack_from("<ii", msg, 4)
        _new_id, body = pymongo.message._compress(2013, msg[16:], ctx)  # type: ignore[arg-type]
        # keep the captured ids so that the pair still pairs (pymongo assigns a fresh requestID)
        compressed.append(body[:4] + struct.pack("<ii", rid, rto) + body[12:])
    assert compressed[0][12:16] == struct.pack("<i", 2012)
    msgs = run(decoder, [(C2S, compressed[0]), (S2C, compressed[1])], mode)
    assert len(msgs) == 2
    for p, c in zip(plain, msgs, strict=True):
        pj, cj = p.to_json(), c.to_json()
        assert cj.pop("compressor") == name
        assert cj.pop("size") < pj.pop("size") or name == "snappy"
        assert cj == pj
    assert msgs[0].to_json()["command"] == "find" and msgs[0].to_json()["collection"] == "query"
    assert msgs[1].to_json()["batch_size"] == 1


def test_compressed_over_the_bound_is_recorded_from_its_header() -> None:
    _rid, msg = op_msg({"insert": "big", "documents": [{"x": "y" * 5000}]})
    _id, body = pymongo.message._compress(2013, msg[16:], compression.ZlibContext(6))
    counters: dict[str, int] = {}
    d = MongoDecoder(DecoderContext(options=MongoOptions(max_decompress=1000), counters=counters))
    m = d.receive(C2S, memoryview(body), 1)[0]
    assert m.to_json() == {
        "op": "OP_MSG", "request_id": _id, "command": "OP_MSG", "database": None, "collection": None,
        "query": None, "size": len(body), "flags": [], "compressor": "zlib", "parsed": False,
    }  # fmt: skip
    assert counters == {"compressed_too_large": 1}


def test_large_document_is_not_parsed_but_named() -> None:
    _rid, msg = op_msg({"find": "big", "filter": {"x": "y" * 5000}}, db="app")
    counters: dict[str, int] = {}
    d = MongoDecoder(DecoderContext(options=MongoOptions(max_parse_bytes=64), counters=counters))
    m = d.receive(C2S, memoryview(msg), 1)[0]
    assert m.to_json()["command"] == "find" and m.to_json()["parsed"] is False
    assert m.to_json()["database"] is None  # $db comes after the filter: not read
    assert m.size == len(msg) and counters["large_documents"] == 1


def test_joined_mid_message_resyncs_on_the_next_header() -> None:
    d = MongoDecoder(DecoderContext(midstream=True))
    out = d.receive(C2S, memoryview(FIND[30:] + INSERT), 1)
    assert summary(out) == [(MongoRequest, "insert", "app", "users")]
    assert out[0].flags & Flag.MIDSTREAM


def test_gap_in_a_counted_tail_keeps_framing() -> None:
    _, big = op_msg({"insert": "big", "documents": [{"x": "y" * 5000}]})
    d = decoder(max_parse_bytes=100)
    d.receive(C2S, memoryview(big[:200]), 1)
    assert d.receive_gap(C2S, 1000, 2) == ()
    out = d.receive(C2S, memoryview(big[1200:] + FIND), 3)
    assert [m.to_json()["command"] for m in out] == ["insert", "find"]
    assert out[0].flags & Flag.GAP


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (struct.pack("<iiii", 8, 1, 0, 2013), "bad message length"),
        (struct.pack("<iiii", 20, 1, 0, 42) + b"\0" * 4, "unknown opcode"),
        (
            struct.pack("<iiii", 26, 1, 0, 2013) + struct.pack("<IB", 4, 0) + b"\x05\0\0\0\0",
            "unknown required OP_MSG flag",
        ),
        (
            struct.pack("<iiii", 26, 1, 0, 2013) + struct.pack("<IB", 0, 7) + b"\x05\0\0\0\0",
            "bad section kind",
        ),
        (struct.pack("<iiii", 28, 1, 0, 2013) + struct.pack("<IB", 0, 0) + b"\x07\0\0\0\x10a\0", "bad BSON"),
    ],
)
def test_garbage_raises_decode_error(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as exc:
        decoder().receive(C2S, memoryview(data), 1)
    assert exc.value.reason == reason


def test_resync_search_is_bounded() -> None:
    d = MongoDecoder(DecoderContext(midstream=True))
    junk = memoryview(b"\x00" * (1024 * 1024))
    with pytest.raises(DecodeError):
        for i in range(MAX_RESYNC_SCAN // len(junk) + 2):
            d.receive(C2S, junk, i)
