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

from tests.helpers.live import capture, live_marks, live_traffic
from tests.helpers.servers import Unbound, unbound_available

pytestmark = live_marks((unbound_available(), "unbound"))

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
    run = live_traffic(server, f"dns;{server.port}", lambda: workload(server.port, server))
    log, retx_id = run.result
    return {"log": log, "records": run.records, "retx": retx_id}


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


# -- opcodes other than QUERY (issue 9 item 11) ----------------------------------------------------------
OpEntry = tuple[int, str, str, str]  # id, transport, opcode, rcode of the answer


def opcode_workload(port: int) -> list[OpEntry]:
    """An UPDATE over UDP and over TCP, a NOTIFY, an IQUERY and a STATUS request, each answered by unbound
    (NOTIMP for UPDATE, IQUERY and STATUS, which it does not implement; a NOTIFY is answered as a query)."""
    import dns.opcode
    import dns.update

    log: list[OpEntry] = []

    def note(q: dns.message.Message, r: dns.message.Message, transport: str) -> None:
        assert r.id == q.id
        log.append((q.id, transport, dns.opcode.to_text(q.opcode()), dns.rcode.to_text(r.rcode())))

    for transport in ("udp", "tcp"):
        u = dns.update.UpdateMessage("packetd.test.")
        u.present("www", "A")
        u.absent("gone")
        u.add("new", 300, "A", "10.0.0.9")
        u.delete("old", "A")
        u.delete("old2", "A", "10.0.0.1")
        send = dns.query.udp if transport == "udp" else dns.query.tcp
        note(u, send(u, HOST, port=port, timeout=5), transport)
    n = dns.message.make_query("packetd.test.", "SOA")
    n.flags = dns.flags.AA
    n.set_opcode(dns.opcode.NOTIFY)
    note(n, dns.query.udp(n, HOST, port=port, timeout=5), "udp")
    for opcode in (dns.opcode.IQUERY, dns.opcode.STATUS):
        m = dns.message.Message()
        m.flags = 0
        m.set_opcode(opcode)
        note(m, dns.query.udp(m, HOST, port=port, timeout=5), "udp")
    return log


@pytest.fixture(scope="module")
def opcode_traffic() -> dict:
    server = Unbound()
    try:
        with capture(
            ["--ifaces", "^lo$", "--proto", f"dns;{server.port}", "--block-num", "128"],
            tcpdump_filter=f"port {server.port}",
        ) as cap:
            log = opcode_workload(server.port)
            records = cap.stop()
            pcap = cap.pcap_path
            tshark = _tshark_opcodes(pcap, server.port)
    finally:
        server.stop()
    return {"log": log, "records": records, "tshark": tshark}


def _tshark_opcodes(path: str, port: int) -> list[tuple[int, bool, int, int | None]]:
    """tshark's (id, response?, opcode, rcode) for every DNS message of tcpdump's capture (the server's
    port decoded as DNS, as packetd's rule says)."""
    import shutil
    import subprocess

    tshark = shutil.which("tshark")
    assert tshark is not None, "tshark is not installed (make test-deps)"
    out = subprocess.run(
        [tshark, "-n", "-r", path, "-d", f"udp.port=={port},dns", "-d", f"tcp.port=={port},dns", "-Y", "dns",
         "-T", "fields", "-e", "dns.id", "-e", "dns.flags.response",
         "-e", "dns.flags.opcode", "-e", "dns.flags.rcode"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rows = []
    for line in out.splitlines():
        ident, qr, opcode, rcode = line.split("\t")
        rows.append((int(ident, 16), qr == "1", int(opcode), int(rcode) if qr == "1" else None))
    return rows


def test_every_opcode_is_one_roundtrip_named_by_its_opcode(opcode_traffic: dict) -> None:
    ours = [(r["request"]["id"], r["request"]["transport"], r["operation"], r["status"], r["kind"])
            for r in opcode_traffic["records"]]  # fmt: skip
    assert sorted(ours) == sorted((i, t, op, rc, "roundtrip") for i, t, op, rc in opcode_traffic["log"])
    assert {op for _, _, op, _ in opcode_traffic["log"]} == {"UPDATE", "NOTIFY", "IQUERY", "STATUS"}


def test_opcode_records_agree_with_tshark(opcode_traffic: dict) -> None:
    import dns.opcode

    ours = []
    for r in opcode_traffic["records"]:
        for msg in (r["request"], r["response"]):
            rcode = dns.rcode.from_text(msg["rcode"]) if "rcode" in msg else None
            ours.append((msg["id"], "qr" in msg["flags"], dns.opcode.from_text(msg["opcode"]), rcode))
    assert sorted(ours) == sorted(opcode_traffic["tshark"])
