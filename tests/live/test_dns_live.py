"""Live DNS: Debian's unbound serving a local zone, dnspython over UDP and TCP, captured through AF_PACKET.

The truth is dnspython's own log: every query it sent (id, name, type, transport) and what came back
(RCODE, TC, answer count). packetd must report each query once, paired with that answer, and nothing else;
the truncated UDP answer and its TCP retry are two roundtrips, the first flagged `truncated`; the same
query sent twice before its answer is one roundtrip flagged `retransmitted`.
"""

from __future__ import annotations

import signal
import socket
import time

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest

from tests.helpers.live import can_capture, capture
from tests.helpers.servers import Unbound, unbound_available

pytestmark = [
    pytest.mark.root,
    pytest.mark.live,
    pytest.mark.server,
    pytest.mark.skipif(not can_capture(), reason="live capture needs root / CAP_NET_RAW"),
    pytest.mark.skipif(not unbound_available(), reason="unbound is not installed (make test-deps)"),
]

HOST = "127.0.0.1"
Entry = tuple[int, str, str, str, str, bool, int]  # id, name, type, transport, rcode, tc, answers


def _log(q: dns.message.Message, r: dns.message.Message, transport: str, log: list[Entry]) -> None:
    question = q.question[0]
    log.append((q.id, question.name.to_text(), dns.rdatatype.to_text(question.rdtype), transport,
                dns.rcode.to_text(r.rcode()), bool(r.flags & dns.flags.TC),
                sum(len(rrset) for rrset in r.answer)))  # fmt: skip


def workload(port: int, server: Unbound) -> tuple[list[Entry], int]:
    log: list[Entry] = []
    for name, rdtype in [
        ("www.packetd.test.", "A"),
        ("www.packetd.test.", "AAAA"),
        ("alias.packetd.test.", "A"),
        ("packetd.test.", "MX"),
        ("nope.packetd.test.", "A"),
    ]:
        q = dns.message.make_query(name, rdtype, use_edns=0)
        _log(q, dns.query.udp(q, HOST, port=port, timeout=5), "udp", log)
    # an answer too big for 512 bytes without EDNS: TC over UDP, then the retry over TCP
    big = dns.message.make_query("big.packetd.test.", "TXT", use_edns=False)
    r = dns.query.udp(big, HOST, port=port, timeout=5)
    assert r.flags & dns.flags.TC
    _log(big, r, "udp", log)
    _log(big, dns.query.tcp(big, HOST, port=port, timeout=5), "tcp", log)
    # two queries on one TCP connection
    with socket.create_connection((HOST, port), timeout=5) as s:
        for name in ("www.packetd.test.", "alias.packetd.test."):
            q = dns.message.make_query(name, "A")
            _log(q, dns.query.tcp(q, HOST, port=port, sock=s, timeout=5), "tcp", log)
    # the same query sent twice before its answer (a stub resolver's retry while the server is stalled: the
    # test stops unbound with SIGSTOP): one roundtrip, retransmitted; the second answer is an orphan
    retx = dns.message.make_query("www.packetd.test.", "A")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        server.proc.send_signal(signal.SIGSTOP)
        try:
            s.sendto(retx.to_wire(), (HOST, port))
            time.sleep(0.2)
            s.sendto(retx.to_wire(), (HOST, port))
        finally:
            server.proc.send_signal(signal.SIGCONT)
        answers = [dns.message.from_wire(s.recv(65535)) for _ in range(2)]
    _log(retx, answers[0], "udp", log)
    return log, retx.id


@pytest.fixture(scope="module")
def traffic() -> dict:
    server = Unbound()
    try:
        with capture(["--ifaces", "^lo$", "--proto", f"dns;{server.port}", "--block-num", "128"]) as cap:
            log, retx_id = workload(server.port, server)
            records = cap.stop()
    finally:
        server.stop()
    return {"log": log, "records": records, "retx": retx_id}


def test_every_query_once_with_its_answer(traffic: dict) -> None:
    ours = []
    for rec in traffic["records"]:
        assert rec["kind"] == "roundtrip", rec
        q, r = rec["request"], rec["response"]
        qu = q["questions"][0]
        ours.append((q["id"], qu["name"], qu["type"], q["transport"], r["rcode"], "tc" in r["flags"],
                     r["counts"]["answers"]))  # fmt: skip
        assert rec["operation"] == qu["type"] and rec["status"] == r["rcode"]
    assert sorted(ours) == sorted(traffic["log"])


def test_nxdomain_truncation_and_retransmission_flags(traffic: dict) -> None:
    by_key = {(r["request"]["questions"][0]["name"], r["request"]["transport"], r["request"]["id"]): r
              for r in traffic["records"]}  # fmt: skip
    nx = [r for r in traffic["records"] if r["status"] == "NXDOMAIN"]
    assert len(nx) == 1 and nx[0]["error"] is True and nx[0]["response"]["authority"][0]["type"] == "SOA"
    big = [r for r in traffic["records"] if r["request"]["questions"][0]["name"] == "big.packetd.test."]
    assert sorted((r["request"]["transport"], r["flags"]) for r in big) == [
        ("tcp", []),
        ("udp", ["truncated"]),
    ]
    tcp = next(r for r in big if r["request"]["transport"] == "tcp")
    assert len(tcp["response"]["answers"]) == 30
    retx = [
        r
        for r in by_key.values()
        if r["request"]["id"] == traffic["retx"] and r["request"]["transport"] == "udp"
    ]
    assert [r["flags"] for r in retx] == [["retransmitted"]]
    alias = next(
        r for r in traffic["records"] if r["request"]["questions"][0]["name"] == "alias.packetd.test."
    )
    assert alias["response"]["answers"][0]["type"] == "CNAME"  # unbound's local data does not chase it
    assert alias["response"]["answers"][0]["data"] == "www.packetd.test."
