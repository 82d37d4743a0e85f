"""DNS golden tests over ../shared/corpus/dns (8 UDP and 5 TCP captures).

Truths: tshark's message counts (MANIFEST.tsv) and tshark's own reading of every DNS message in the same
file (id, QR, first question, RCODE, answer count, A/AAAA addresses and TTLs), compared field by field
with the messages inside our records; and the checked-in golden records.
"""

from __future__ import annotations

import subprocess

import pytest

from packetd.protocols.dns.messages import RCODES, TYPES
from tests.helpers.golden import RULES_FOR, ManifestRow, as_json, manifest, run_file
from tests.net.truth import TSHARK

ROWS = manifest("dns")

# file → (roundtrip records expected, why it differs from tshark's response count)
EXPLAINED: dict[str, tuple[int, str]] = {
    "zeek_zeek__dns-two-responses.pcap": (
        1,
        "one query answered twice (the manifest's 'duplicate response'): the second answer finds no pending "
        "query and is counted as an orphan, not paired again",
    ),
    "ntop_nDPI__dns.pcap": (
        2,
        "the first packet is an answer whose query was not captured (manifest note): an orphan, no record",
    ),
}
# file → (unanswered records, why)
UNANSWERED = {
    "arkime_arkime__dns-udp.pcap": (1, "an ANY query that got no answer in the capture (manifest note)"),
}


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_counts_against_tshark(row: ManifestRow) -> None:
    records, engine = run_file(row.path, RULES_FOR["dns"](row))
    roundtrips = [r for r in records if r.kind == "roundtrip"]
    expected = EXPLAINED[row.name][0] if row.name in EXPLAINED else row.tshark_responses
    assert len(roundtrips) == expected
    unanswered = [r for r in records if r.kind == "unanswered"]
    assert len(unanswered) == UNANSWERED.get(row.name, (0, ""))[0]
    # every query tshark saw is in exactly one record (no retransmissions in this corpus)
    assert sum(1 for r in records if r.request is not None) == row.tshark_requests
    stats = engine.protocol_stats["dns"]
    assert stats.resets == 0, stats.decode_errors
    assert stats.pairing.orphans == row.tshark_responses - expected


def _tshark_messages(path: str) -> tuple[list[tuple], list[str]]:
    """tshark's (id, QR, first question name, type, RCODE, ANCOUNT) per DNS message, and every A/AAAA."""
    assert TSHARK is not None
    fields = ["dns.id", "dns.flags.response", "dns.qry.name", "dns.qry.type", "dns.flags.rcode",
              "dns.count.answers", "dns.a", "dns.aaaa"]  # fmt: skip
    cmd = [TSHARK, "-n", "-r", path, "-Y", "dns", "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    msgs, addrs = [], []
    for line in out.splitlines():
        ids, qr, names, types, rcodes, ancounts, a, aaaa = line.split("\t")
        # a TCP segment may carry several messages: tshark joins their values with commas
        for i, ident in enumerate(ids.split(",")):
            response = qr.split(",")[i] == "1"
            msgs.append(
                (
                    int(ident, 16),
                    response,
                    names.split(",")[i] + ".",
                    int(types.split(",")[i]),
                    int(rcodes.split(",")[i]) if response else None,
                    int(ancounts.split(",")[i]),
                )
            )
        addrs += [x for x in (a.split(",") + aaaa.split(",")) if x]
    return msgs, addrs


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (make test-deps)")
@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_every_message_matches_tshark_fields(row: ManifestRow) -> None:
    records, engine = run_file(row.path, RULES_FOR["dns"](row))
    codes = {v: k for k, v in TYPES.items()}
    rcodes = {v: k for k, v in RCODES.items()}
    ours, our_addrs = [], []
    for rec in as_json(records):
        for side in ("request", "response"):
            m = rec[side]
            if m is None:
                continue
            q = m["questions"][0]
            rcode = rcodes[m["rcode"]] if side == "response" else None
            ours.append(
                (m["id"], side == "response", q["name"], codes[q["type"]], rcode, m["counts"]["answers"])
            )
            for section in ("answers", "authority", "additional"):  # tshark's dns.a spans all sections
                our_addrs += [rr["data"] for rr in m[section] if rr["type"] in ("A", "AAAA")]
    truth, addrs = _tshark_messages(row.path)
    orphans = engine.protocol_stats["dns"].pairing.orphans
    # every message we report is one tshark shows; the only ones missing are the orphan answers
    missing = list(truth)
    for item in ours:
        missing.remove(item)
    assert len(missing) == orphans and all(m[1] for m in missing)
    # addresses: ours are tshark's minus those in the orphan answers
    assert set(our_addrs) <= set(addrs)
    if not missing:
        assert sorted(our_addrs) == sorted(addrs)
