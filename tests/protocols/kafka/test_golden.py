"""Kafka golden tests over ../shared/corpus/kafka (deepflow per-API snippets, nDPI's stitched librdkafka and
console-producer sessions).

Truths: tshark's message counts (MANIFEST.tsv; files on port 36333 need `-d tcp.port==36333,kafka`) and
tshark's header fields of every message (api key, version, correlation id, client id), compared with the
messages inside our records; the golden records. tshark 4.0 does not know the newest API versions (it marks
their bodies malformed) but reads their headers, which is what is compared here.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.helpers.golden import RULES_FOR, ManifestRow, as_json, manifest, run_file
from tests.net.truth import TSHARK

ROWS = manifest("kafka")

# file → (roundtrips, unanswered, why they differ from tshark's counts)
EXPLAINED: dict[str, tuple[int, int, str]] = {
    "ntop_nDPI__kafka.pcapng": (
        11,
        3,
        "nDPI stitched 9 sessions together with gaps of 300-600 s between packets of one connection, so the "
        "flow table expires a connection (idle 300 s) and joins it again mid-stream. tshark's 14 responses "
        "include 3 whose requests were never captured (frames 5, 6, 7: correlation ids 131, 140, 141, tshark "
        "'Request missing'); a joined server side can only be framed from a request in flight, so they are "
        "not reported. tshark's 14 requests include 3 whose responses were never captured (correlation ids "
        "212, 4, 15): our 3 unanswered records.",
    ),
}


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_counts_against_tshark(row: ManifestRow) -> None:
    records, engine = run_file(row.path, RULES_FOR["kafka"](row))
    roundtrips = [r for r in records if r.kind in ("roundtrip", "handshake")]
    unanswered = [r for r in records if r.kind == "unanswered"]
    expected, expected_unanswered = EXPLAINED.get(row.name, (row.tshark_responses, 0, ""))[:2]
    assert len(roundtrips) == expected
    assert len(unanswered) == expected_unanswered
    assert len(roundtrips) + len(unanswered) == row.tshark_requests
    stats = engine.protocol_stats["kafka"]
    assert stats.resets == 0, stats.decode_errors
    assert stats.counters.get("body_errors", 0) == 0


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (make test-deps)")
@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_headers_match_tshark(row: ManifestRow) -> None:
    decode_as = re.search(r"needs -d (tcp\.port==\d+,kafka)", row.notes)
    cmd = [TSHARK, "-n", "-r", row.path, *(["-d", decode_as.group(1)] if decode_as else []),
           "-Y", f"kafka && tcp.dstport=={row.ports[0]}", "-T", "fields", "-E", "occurrence=a",
           "-E", "aggregator=,", "-e", "kafka.api_key", "-e", "kafka.api_version", "-e", "kafka.correlation_id",
           "-e", "kafka.client_id"]  # fmt: skip
    theirs = set()
    for line in subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines():
        keys, versions, corrs, clients = line.split("\t")
        for i, key in enumerate(keys.split(",")):
            theirs.add(
                (int(key), int(versions.split(",")[i]), int(corrs.split(",")[i]), clients.split(",")[i])
            )
    records, _ = run_file(row.path, RULES_FOR["kafka"](row))
    ours = set()
    for rec in as_json(records):
        q = rec["request"]
        ours.add((q["api_key"], q["api_version"], q["correlation_id"], q["client_id"] or ""))
    assert ours == theirs
