"""MongoDB golden tests over ../shared/corpus/mongodb (OP_MSG with an OP_QUERY handshake, legacy sessions).

Truths: tshark's message counts (MANIFEST.tsv; every file needs `-d tcp.port==P,mongo`, given by the
manifest notes) and tshark's reading of every message header (opcode, requestID, responseTo, length, and
the legacy full collection name), compared with the messages inside our records; the golden records.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from packetd.protocols.mongodb.messages import OPCODES
from tests.helpers.golden import RULES_FOR, ManifestRow, as_json, manifest, run_file
from tests.net.truth import TSHARK

ROWS = manifest("mongodb")
HANDSHAKES = {
    "deepflowio_deepflow__mongo.pcap": (
        3,
        "the only file with the TCP handshake: the driver's first isMaster (OP_QUERY) and two saslContinue",
    ),
}


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_counts_against_tshark(row: ManifestRow) -> None:
    records, engine = run_file(row.path, RULES_FOR["mongodb"](row))
    paired = [r for r in records if r.kind in ("roundtrip", "handshake")]
    assert len(paired) == row.tshark_responses  # no differences in this corpus
    assert len(paired) == row.tshark_requests
    assert sum(1 for r in records if r.kind == "handshake") == HANDSHAKES.get(row.name, (0, ""))[0]
    assert not [r for r in records if r.kind in ("oneway", "unanswered")]
    stats = engine.protocol_stats["mongodb"]
    assert stats.resets == 0, stats.decode_errors
    assert stats.pairing.orphans == 0


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (make test-deps)")
@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_headers_match_tshark(row: ManifestRow) -> None:
    port = re.search(r"needs -d tcp\.port==(\d+),mongo", row.notes)
    assert port is not None
    cmd = [TSHARK, "-n", "-r", row.path, "-d", f"tcp.port=={port.group(1)},mongo", "-Y", "mongo", "-T", "fields",
           "-E", "occurrence=a", "-E", "aggregator=,", "-e", "mongo.opcode", "-e", "mongo.request_id",
           "-e", "mongo.response_to", "-e", "mongo.message_length", "-e", "mongo.full_collection_name"]  # fmt: skip
    theirs = []
    for line in subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines():
        ops, rids, rtos, lengths, _names = line.split("\t")
        for i, op in enumerate(ops.split(",")):
            rto = int(rtos.split(",")[i], 16)
            if op != "1" and not (op == "2013" and rto):
                rto = 0  # a request's responseTo is unused (legacy drivers send -1); records do not show it
            theirs.append((OPCODES[int(op)], int(rids.split(",")[i], 16), rto, int(lengths.split(",")[i])))
    records, _ = run_file(row.path, RULES_FOR["mongodb"](row))
    ours = []
    for rec in as_json(records):
        q, r = rec["request"], rec["response"]
        ours.append((q["op"], q["request_id"], 0, q["size"]))
        ours.append((r["op"], r["request_id"], r["response_to"], r["size"]))
        if q["op"] == "OP_QUERY":  # the legacy namespace: database.collection (or database.$cmd)
            assert q["database"] is not None
    assert sorted(ours) == sorted(theirs)
