"""Legacy MongoDB opcodes (OP_QUERY / OP_REPLY) as old drivers and tools still send them (issue 9 items 9, 10).

pymongo 4.x no longer writes OP_QUERY nor reads OP_REPLY, so the messages are laid out by hand from the wire
spec ("Legacy Opcodes") with `bson.encode` for the documents, and the independent truth is tshark's MongoDB
dissector over a capture of them (opcode, requestID, responseTo, numberReturned, the command document's
element names), plus the requestIDs the test itself chose.

- An OP_REPLY with no documents (an exhausted cursor, a find that matched nothing: 36 bytes) pairs with its
  OP_QUERY, also when the capture joins the connection without its handshake (the decoder must find that
  reply as a message start).
- A command on `db.$cmd` is named by the first key of the command document (`findandmodify`), whatever its
  arguments hold (`query` is one of them); a mongos-wrapped `{$query: {...}, $readPreference}` is unwrapped.
"""

from __future__ import annotations

import os
import struct
import subprocess
import tempfile

import bson
import pytest
from bson.son import SON

from packetd.capture.pcapwrite import TcpConversation, ethernet, write_pcap
from packetd.engine import Rule
from packetd.protocols.base import DecoderContext
from packetd.protocols.mongodb.decoder import MongoDecoder
from packetd.protocols.mongodb.messages import MongoReply, MongoRequest
from tests.helpers.decoding import C2S, MODES, S2C, run
from tests.helpers.golden import as_json, run_file
from tests.net.truth import TSHARK

PORT = 27017


def op_query(rid: int, ns: str, query: dict | SON, number_to_return: int = 0) -> bytes:
    body = (
        struct.pack("<i", 0)
        + ns.encode()
        + b"\0"
        + struct.pack("<ii", 0, number_to_return)
        + bson.encode(query)
    )
    return struct.pack("<iiii", 16 + len(body), rid, 0, 2004) + body


def op_reply(rid: int, to: int, docs: list[dict], cursor: int = 0) -> bytes:
    body = struct.pack("<iqii", 0, cursor, 0, len(docs)) + b"".join(bson.encode(d) for d in docs)
    return struct.pack("<iiii", 16 + len(body), rid, to, 1) + body


EMPTY_FIND = op_query(101, "shop.orders", {"status": "lost"})
EMPTY_REPLY = op_reply(9101, 101, [])  # nothing matched: numberReturned 0, no documents
FAM = SON([("findandmodify", "a"), ("query", SON([("a", 1)])), ("update", {"$set": {"b": 2}}), ("new", True)])
FAM_QUERY = op_query(102, "shop.$cmd", FAM, -1)
FAM_REPLY = op_reply(9102, 102, [{"ok": 1.0, "value": None}])
COUNT = SON([("count", "orders"), ("query", SON([("status", "x")]))])
COUNT_QUERY = op_query(103, "shop.$cmd", COUNT, -1)
COUNT_REPLY = op_reply(9103, 103, [{"ok": 1.0, "n": 0}])
WRAPPED = SON(
    [("$query", SON([("findandmodify", "b"), ("query", {})])), ("$readPreference", {"mode": "primary"})]
)
WRAPPED_QUERY = op_query(104, "shop.$cmd", WRAPPED, -1)
WRAPPED_REPLY = op_reply(9104, 104, [{"ok": 1.0}])
EXCHANGES = [
    (EMPTY_FIND, EMPTY_REPLY),
    (FAM_QUERY, FAM_REPLY),
    (COUNT_QUERY, COUNT_REPLY),
    (WRAPPED_QUERY, WRAPPED_REPLY),
]
# requestID → (command, collection) the test sent
SENT = {
    101: ("find", "orders"),
    102: ("findandmodify", "a"),
    103: ("count", "orders"),
    104: ("findandmodify", "b"),
}


@pytest.mark.parametrize("midstream", [False, True], ids=["from-start", "midstream"])
@pytest.mark.parametrize("mode", MODES)
def test_empty_reply_and_commands_named_by_their_first_key(mode: str, midstream: bool) -> None:
    steps = [step for q, r in EXCHANGES for step in ((C2S, q), (S2C, r))]
    sentinel = [(C2S, op_query(200, "shop.orders", {})), (S2C, op_reply(9200, 200, [{"_id": 1}]))]
    msgs = run(lambda: MongoDecoder(DecoderContext(midstream=midstream)), steps, mode, sentinel=sentinel)
    requests = [m for m in msgs if isinstance(m, MongoRequest)]
    replies = [m for m in msgs if isinstance(m, MongoReply)]
    assert {m.pair_key: (m.command, m.collection) for m in requests if m.pair_key in SENT} == SENT
    assert [m.pair_key for m in replies][:4] == [101, 102, 103, 104]
    empty = replies[0]
    assert (empty.batch_size, empty.size, empty.status(), empty.parsed) == (0, 36, "OK", True)
    assert len(requests) == len(replies) == (5 if mode == "trailing" else 4)


def _pcap(path: str, handshake: bool) -> None:
    conv = TcpConversation(("10.0.0.1", 45000), ("10.0.0.2", PORT), isn_client=7, isn_server=9000, mss=1400)
    pkts = list(conv.handshake()) if handshake else []
    for q, r in EXCHANGES:
        pkts += [*conv.send(0, q), *conv.send(1, r)]
    pkts += list(conv.close())
    write_pcap(path, [(1_700_000_000 * 10**9 + i * 1000, ethernet(p)) for i, p in enumerate(pkts)])


@pytest.mark.parametrize("handshake", [True, False], ids=["handshake", "no-handshake"])
def test_engine_pairs_every_legacy_exchange(handshake: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "legacy.pcap")
        _pcap(path, handshake)
        records, _ = run_file(path, (Rule(protocol="mongodb", ports=(PORT,)),))
    got = {r["request"]["request_id"]: (r["kind"], r["operation"], r["request"]["collection"], r["status"],
                                        r["response"]["response_to"], r["response"]["batch_size"])
           for r in as_json(records)}  # fmt: skip
    batch = {101: 0, 102: 1, 103: 1, 104: 1}
    assert got == {rid: ("roundtrip", cmd, coll, "OK", rid, batch[rid]) for rid, (cmd, coll) in SENT.items()}


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (make test-deps)")
def test_capture_agrees_with_tshark() -> None:
    """tshark reads the same capture: the reply to 101 returns 0 documents, and the first element of each
    $cmd query document is the command name we report."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "legacy.pcap")
        _pcap(path, True)
        records, _ = run_file(path, (Rule(protocol="mongodb", ports=(PORT,)),))
        out = subprocess.run(
            [TSHARK, "-n", "-r", path, "-d", f"tcp.port=={PORT},mongo", "-Y", "mongo", "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=;",
             "-e", "mongo.opcode", "-e", "mongo.request_id", "-e", "mongo.response_to", "-e", "mongo.number_returned",
             "-e", "mongo.full_collection_name", "-e", "mongo.element.name"],  # type: ignore[list-item]
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    replies, commands = {}, {}
    for line in out.splitlines():
        opcode, rid, rto, returned, ns, names = line.split("\t")
        if opcode == "1":
            replies[int(rto, 0)] = int(returned, 0)  # tshark prints the ids in hex
        elif ns.endswith(".$cmd"):
            first = names.split(";")[0]
            commands[int(rid, 0)] = names.split(";")[1] if first == "$query" else first
    assert replies == {101: 0, 102: 1, 103: 1, 104: 1}
    ours = as_json(records)
    assert {r["request"]["request_id"]: r["response"]["batch_size"] for r in ours} == replies
    assert {
        r["request"]["request_id"]: r["operation"] for r in ours if r["request"]["request_id"] in commands
    } == commands
