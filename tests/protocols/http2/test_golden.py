"""Golden tests (HTTP/2 and gRPC): every capture of the shared corpus, replayed through the whole engine.

The truth: tshark's message counts from MANIFEST.tsv (the counts below equal tshark's unless a difference is
listed with its reason). The checked-in expected records (tests/golden/<protocol>/<file>.jsonl) are compared
by one parametrised test for every protocol: tests/protocols/test_golden_records.py.
"""

from __future__ import annotations

import pytest

from tests.helpers.golden import RULES_FOR, ManifestRow, manifest, run_file

# -- HTTP/2 and gRPC -----------------------------------------------------------------------------------------
# tshark counts requests as `:method` header fields plus h2c upgrade requests, responses as `:status` fields
# (README of the corpus). Every file matches without an exception to explain; the notes that matter:
H2_NOTES: dict[str, str] = {
    "OISF_suricata-verify__http2-long-frame__input.pcap": (
        "2nd request (stream 3) has no response in the capture: 1 roundtrip + 1 unanswered"
    ),
    "OISF_suricata-verify__http2-range__http2-range.pcap": (
        "2 of its 5 connections stay HTTP/1.1: 2 `http` records tshark does not count as HTTP/2"
    ),
    "OISF_suricata-verify__bug-5929-02__http2_multiple_headers.pcap": (
        "the server's SETTINGS (frame 4) precede the client's preface on port 80: held by the HTTP/1 "
        "decoder and handed over with the preface, no decode error"
    ),
    "deepflowio_deepflow__http2-multi.pcap": (
        "joined mid-connection: :path and most fields are dynamic-table references made before the "
        "capture (tshark shows <unknown> too): records flagged midstream with path null. The client's "
        "ACK says the server sent 47 bytes before its captured segment: a gap just before the responses"
    ),
    "deepflowio_deepflow__grpc-unary.pcap": (
        "the response's DATA and trailers are cut off by the capture (frame 2 ends after the HEADERS): "
        'flagged truncated, its status unknown ("", grpc_status null: not gRPC\'s UNKNOWN, which would be a '
        "claim); 54 server bytes before it were never captured (gap)"
    ),
}

H2_ROWS = manifest("http2") + manifest("grpc")


@pytest.mark.parametrize("row", H2_ROWS, ids=lambda r: r.name)
def test_http2_grpc_counts_against_tshark(row: ManifestRow) -> None:
    records, engine = run_file(row.path, RULES_FOR[row.protocol](row))
    h2 = [r for r in records if r.protocol in ("http2", "grpc")]
    roundtrips = [r for r in h2 if r.kind == "roundtrip"]
    assert len(roundtrips) == row.tshark_responses
    requests = [r for r in h2 if r.request is not None]
    assert len(requests) == row.tshark_requests
    # the directory names the protocol: every gRPC file's records are grpc, every HTTP/2 file's http2
    assert {r.protocol for r in h2} == {"grpc" if row.protocol == "grpc" else "http2"}
    for name, stats in engine.protocol_stats.items():
        assert stats.resets == 0, (name, stats.decode_errors)
        assert stats.pairing.orphans == 0, name
