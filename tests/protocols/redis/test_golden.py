"""Golden tests (Redis): every capture of the shared corpus, replayed through the whole engine.

The truth: tshark's message counts from MANIFEST.tsv (the counts below equal tshark's unless a difference is
listed with its reason). The checked-in expected records (tests/golden/<protocol>/<file>.jsonl) are compared
by one parametrised test for every protocol: tests/protocols/test_golden_records.py.
"""

from __future__ import annotations

import pytest

from tests.helpers.golden import RULES_FOR, ManifestRow, manifest, run_file

# -- Redis ---------------------------------------------------------------------------------------------------
# file → ({record kind: count expected}, why it differs from tshark's counts); other files: every tshark
# response is the answer to one tshark request: roundtrips == tshark_responses, nothing else.
REDIS_EXPLAINED: dict[str, tuple[dict[str, int], str]] = {
    "zeek_zeek__pubsub.pcap": (
        {"roundtrip": 7, "oneway": 3},
        "tshark counts the 3 pub/sub deliveries (`message` / `pmessage` arrays) among the responses; they "
        "answer no command: one-way records (manifest note: 7 request/response pairs + 3 pushes)",
    ),
    "zeek_zeek__large-requests-responses.pcap": (
        {"roundtrip": 5},
        "tshark 4.0 mis-parses the 239 KB multi-segment COMMAND DOCS reply into 498 responses; the corpus "
        "README's stream parse gives 5 requests / 5 responses",
    ),
    "deepflowio_deepflow__redis.pcap": (
        {"roundtrip": 10},
        "the last reply (a 490 KB bulk string) is cut off by the end of the capture: tshark does not count "
        "it; we report it, flagged `truncated` (its request and the bytes that did arrive are real)",
    ),
}

REDIS = manifest("redis")


@pytest.mark.parametrize("row", REDIS, ids=lambda r: r.name)
def test_redis_counts_against_tshark(row: ManifestRow) -> None:
    records, engine = run_file(row.path, RULES_FOR["redis"](row))
    kinds: dict[str, int] = {}
    for r in records:
        kinds[r.kind] = kinds.get(r.kind, 0) + 1
    expected = (
        REDIS_EXPLAINED[row.name][0] if row.name in REDIS_EXPLAINED else {"roundtrip": row.tshark_responses}
    )
    assert kinds == expected
    assert sum(1 for r in records if r.request is not None) <= row.tshark_requests
    stats = engine.protocol_stats["redis"]
    assert stats.resets == 0, stats.decode_errors
    assert stats.pairing.orphans == 0


def test_redis_truncated_reply_is_the_last_and_only_one_flagged() -> None:
    row = next(r for r in REDIS if r.name == "deepflowio_deepflow__redis.pcap")
    records, _ = run_file(row.path, RULES_FOR["redis"](row))
    flagged = [r.to_json() for r in records if "truncated" in r.to_json()["flags"]]
    # frames 35-49: 7 x 65483 + 32112 payload bytes plus the 9-byte head of frame 33 arrived of the reply
    assert [(f["operation"], f["response"]["size"]) for f in flagged] == [("GET", 9 + 7 * 65483 + 32112)]
