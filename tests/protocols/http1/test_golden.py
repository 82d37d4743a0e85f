"""Golden tests (HTTP/1): every capture of the shared corpus, replayed through the whole engine.

The truth: tshark's message counts from MANIFEST.tsv (the counts below equal tshark's unless a difference is
listed with its reason). The checked-in expected records (tests/golden/<protocol>/<file>.jsonl) are compared
by one parametrised test for every protocol: tests/protocols/test_golden_records.py.
"""

from __future__ import annotations

import pytest

from tests.helpers.golden import RULES_FOR, ManifestRow, manifest, run_file

# file → (roundtrip records expected, why it differs from tshark's response count)
EXPLAINED: dict[str, tuple[int, str]] = {
    "njcx_packetbeat__http_post.pcap": (
        1,
        "the second connection is joined mid-stream: its only response (frame 9) was captured 5 ms BEFORE "
        "the only request (frame 10), so it answers an earlier, uncaptured request; tshark does not pair them "
        "either (no http.request_in). We count an orphan response and an unanswered request.",
    ),
    "njcx_packetbeat__http_url_params.pcap": (
        1,
        "same capture pattern as http_post: frame 1 (response) precedes frame 2 (request) on a joined connection",
    ),
    "zeek_zeek__bro.org.pcap": (
        31,
        "stream 2 lost 7240 bytes of a 31 KB response body in capture (tshark: 'previous segment not "
        "captured' at frame 179) and tshark then never sees that response; the gap lies inside a body of "
        "known Content-Length, so we keep the response, flagged 'gap'.",
    ),
}

HTTP1 = manifest("http1")


@pytest.mark.parametrize("row", HTTP1, ids=lambda r: r.name)
def test_http1_counts_against_tshark(row: ManifestRow) -> None:
    records, engine = run_file(row.path, RULES_FOR["http1"](row))
    roundtrips = [r for r in records if r.kind == "roundtrip"]
    if row.name in EXPLAINED:
        expected, _why = EXPLAINED[row.name]
    else:
        expected = row.tshark_responses - row.interim_responses
    assert len(roundtrips) == expected
    # nothing is invented: never more requests reported than tshark saw
    requests = [r for r in records if r.request is not None]
    assert len(requests) <= row.tshark_requests
    stats = engine.protocol_stats["http"]
    assert stats.resets == 0, stats.decode_errors


def test_bro_org_gap_is_flagged_on_the_right_response() -> None:
    row = next(r for r in HTTP1 if r.name == "zeek_zeek__bro.org.pcap")
    records, _ = run_file(row.path, RULES_FOR["http1"](row))
    flagged = [r for r in records if "gap" in r.to_json()["flags"]]
    assert [(r.operation, r.to_json()["request"]["path"]) for r in flagged] == [
        ("GET", "/js/jquery.cycle.all.min.js")
    ]
    # body_bytes is the Content-Length of the captured head (frame 97: "Content-Length: 31052"), gap included
    assert flagged[0].to_json()["response"]["body_bytes"] == 31052
