"""DNS opcodes other than QUERY: UPDATE (RFC 2136), NOTIFY (RFC 1996), IQUERY (RFC 1035 §6.4), STATUS.

Truths: dnspython builds the messages (`dns.update.UpdateMessage`, a NOTIFY, header-only IQUERY/STATUS) and
reads them back; every record we report is compared with dnspython's reading of the same bytes, including
the RDATA-less prerequisites and deletions of class ANY/NONE that made UPDATE a decode error. The same
exchanges written to a pcap are dissected by tshark (opcode, section counts, every record's owner, type,
class, TTL and RDLENGTH) and replayed through the whole engine: each becomes one roundtrip whose
`operation` is the opcode name and whose `status` is the answer's RCODE.
"""

from __future__ import annotations

import os
import struct
import subprocess
import tempfile

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.update
import pytest

from packetd.capture.pcapwrite import TcpConversation, ethernet, ipv4_udp, write_pcap
from packetd.engine import Rule
from packetd.protocols.dns.messages import Answer, DnsMessage, Query
from tests.helpers.decoding import C2S, MODES, S2C, run
from tests.helpers.golden import as_json, run_file
from tests.net.truth import TSHARK
from tests.protocols.dns.test_decoder import tcp, tcp_decoder, udp_decoder

ZONE = "packetd.test."


def update() -> dns.update.UpdateMessage:
    """Every prerequisite and update form of RFC 2136 §2.4 and §2.5."""
    u = dns.update.UpdateMessage(ZONE, id=0x2136)
    u.present("www", "A")  # RRset exists (value independent): class ANY, no RDATA
    u.present("mail", "A", "10.0.0.25")  # RRset exists (value dependent): class IN, RDATA
    u.absent("gone")  # name is not in use: class NONE, type ANY
    u.absent("nope", "AAAA")  # RRset does not exist: class NONE
    u.add("new", 300, "A", "10.0.0.9")  # add to an RRset
    u.add("new", 300, "TXT", '"hello"')
    u.delete("old", "A")  # delete an RRset: class ANY, no RDATA
    u.delete("old2", "A", "10.0.0.1")  # delete one RR: class NONE, RDATA
    u.delete("older")  # delete all RRsets of a name: class ANY, type ANY
    return u


def update_answer(u: dns.message.Message, rcode: int) -> dns.message.Message:
    r = dns.message.make_response(u)
    r.set_rcode(rcode)
    return r


def notify() -> dns.message.Message:
    n = dns.message.make_query(ZONE, "SOA")
    n.id = 0x1996
    n.flags = dns.flags.AA  # (flags hold the opcode bits too: set them first)
    n.set_opcode(dns.opcode.NOTIFY)
    n.answer.append(
        dns.rrset.from_text(ZONE, 3600, "IN", "SOA", "ns.packetd.test. admin.packetd.test. 7 1 2 3 4")
    )
    return n


def header_only(opcode: int, ident: int) -> dns.message.Message:
    m = dns.message.Message(id=ident)
    m.flags = 0
    m.set_opcode(opcode)
    return m


def iquery() -> dns.message.Message:
    """RFC 1035 §6.4.1: no question, one answer record whose owner is unknown."""
    m = header_only(dns.opcode.IQUERY, 0x0101)
    m.answer.append(dns.rrset.from_text(".", 0, "IN", "A", "10.1.2.3"))
    return m


def wire_view(wire: bytes) -> dict:
    """dnspython's reading, section by section, as (owner, type, class as on the wire, ttl, rdata text)."""
    m = dns.message.from_wire(wire)

    def rrs(section: list[dns.rrset.RRset]) -> list[tuple]:
        out = []
        for rrset in section:
            cls = dns.rdataclass.to_text(rrset.deleting if rrset.deleting is not None else rrset.rdclass)
            typ = dns.rdatatype.to_text(rrset.rdtype)
            if len(rrset) == 0:  # a prerequisite or deletion without RDATA
                out.append((rrset.name.to_text(), typ, cls, rrset.ttl, None))
            for rd in rrset:
                out.append((rrset.name.to_text(), typ, cls, rrset.ttl, rd.to_text()))
        return out

    return {
        "id": m.id,
        "opcode": dns.opcode.to_text(m.opcode()),
        "sections": [
            [(q.name.to_text(), dns.rdatatype.to_text(q.rdtype), dns.rdataclass.to_text(q.rdclass)) for q in m.sections[0]],
            rrs(m.sections[1]), rrs(m.sections[2]), rrs(m.sections[3]),
        ],
        "rcode": dns.rcode.to_text(m.rcode()) if m.flags & dns.flags.QR else None,
    }  # fmt: skip


def _data_text(rtype: str, data: object) -> str | None:
    """Our decoded RDATA in dnspython's presentation form, for the types these messages carry."""
    if data is None:
        return None
    if rtype == "TXT":
        return " ".join(f'"{s}"' for s in data)  # type: ignore[attr-defined]
    if rtype == "SOA":
        d = data  # type: ignore[assignment]
        return f"{d['mname']} {d['rname']} {d['serial']} {d['refresh']} {d['retry']} {d['expire']} {d['minimum']}"  # type: ignore[index]
    return str(data)


def our_view(msg: DnsMessage) -> dict:
    j = msg.to_json()

    def rrs(section: list[dict]) -> list[tuple]:
        return [
            (r["name"], r["type"], r["class"], r["ttl"], _data_text(r["type"], r["data"])) for r in section
        ]

    return {
        "id": j["id"],
        "opcode": j["opcode"],
        "sections": [
            [(q["name"], q["type"], q["class"]) for q in j["questions"]],
            rrs(j["answers"]), rrs(j["authority"]), rrs(j["additional"]),
        ],
        "rcode": j.get("rcode"),
    }  # fmt: skip


U = update()
EXCHANGES: dict[str, tuple[dns.message.Message, dns.message.Message, str, str]] = {
    # name → (request, answer, operation, status)
    "update-refused": (U, update_answer(U, dns.rcode.REFUSED), "UPDATE", "REFUSED"),
    "update-notimp": (U, update_answer(U, dns.rcode.NOTIMP), "UPDATE", "NOTIMP"),
    "notify": (notify(), update_answer(notify(), dns.rcode.NOERROR), "NOTIFY", "NOERROR"),
    "iquery": (iquery(), update_answer(header_only(1, 0x0101), dns.rcode.NOTIMP), "IQUERY", "NOTIMP"),
    "status": (header_only(2, 0x0202), update_answer(header_only(2, 0x0202), dns.rcode.NOTIMP), "STATUS", "NOTIMP"),
}  # fmt: skip


def test_update_has_every_prerequisite_and_update_form() -> None:
    """The UPDATE case really carries RDATA-less records of class ANY and NONE (what used to fail)."""
    view = wire_view(U.to_wire())
    assert view["opcode"] == "UPDATE"
    prereq, updates = view["sections"][1], view["sections"][2]
    assert {(c, d is None) for _, _, c, _, d in prereq} == {("ANY", True), ("IN", False), ("NONE", True)}
    assert {(c, d is None) for _, _, c, _, d in updates} == {("IN", False), ("ANY", True), ("NONE", False)}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(EXCHANGES))
def test_every_opcode_decodes_over_tcp_like_dnspython_reads_it(name: str, mode: str) -> None:
    q, r, _, _ = EXCHANGES[name]
    qw, rw = q.to_wire(), r.to_wire()
    sentinel_q = dns.message.make_query("sentinel." + ZONE, "A")
    sentinel = [(C2S, tcp(sentinel_q.to_wire())), (S2C, tcp(update_answer(sentinel_q, 0).to_wire()))]
    msgs = [m for m in run(tcp_decoder, [(C2S, tcp(qw)), (S2C, tcp(rw))], mode, sentinel=sentinel)
            if isinstance(m, DnsMessage)]  # fmt: skip
    assert [type(m) for m in msgs[:2]] == [Query, Answer]
    assert [our_view(m) for m in msgs[:2]] == [wire_view(qw), wire_view(rw)]
    assert len(msgs) == (4 if mode == "trailing" else 2)


@pytest.mark.parametrize("name", sorted(EXCHANGES))
def test_every_opcode_decodes_over_udp_and_names_the_operation(name: str) -> None:
    q, r, operation, status = EXCHANGES[name]
    dec = udp_decoder()
    (query,) = dec.receive(C2S, memoryview(q.to_wire()), 1)
    (answer,) = dec.receive(S2C, memoryview(r.to_wire()), 2)
    assert isinstance(query, Query) and isinstance(answer, Answer)
    assert our_view(query) == wire_view(q.to_wire())
    assert query.operation() == operation and answer.status() == status
    assert query.pair_key == answer.pair_key


def test_a_query_still_names_its_question_type() -> None:
    q = dns.message.make_query("www." + ZONE, "MX")
    (msg,) = udp_decoder().receive(C2S, memoryview(q.to_wire()), 1)
    assert msg.operation() == "MX"  # type: ignore[attr-defined]


# -- the same exchanges in a capture: tshark's dissection and the whole engine ---------------------------
PORT = 53
CLIENT, SERVER = ("10.0.0.1", 40000), ("10.0.0.53", PORT)


def _capture(path: str) -> list[tuple[str, str, str, str]]:
    """Every exchange once over UDP (a client port each) and once over TCP; returns (name, transport,
    operation, status) in capture order."""
    frames: list[tuple[int, bytes]] = []
    expect = []
    ts = 1_700_000_000 * 10**9
    for i, name in enumerate(sorted(EXCHANGES)):
        q, r, operation, status = EXCHANGES[name]
        frames.append((ts, ethernet(ipv4_udp(CLIENT[0], SERVER[0], 41000 + i, PORT, q.to_wire()))))
        frames.append((ts + 1000, ethernet(ipv4_udp(SERVER[0], CLIENT[0], PORT, 41000 + i, r.to_wire()))))
        expect.append((name, "udp", operation, status))
        conv = TcpConversation((CLIENT[0], 42000 + i), SERVER, isn_client=1000, isn_server=5000, mss=1400)
        pkts = [
            *conv.handshake(),
            *conv.send(0, tcp(q.to_wire())),
            *conv.send(1, tcp(r.to_wire())),
            *conv.close(),
        ]
        frames += [(ts + 2000 + k * 1000, ethernet(p)) for k, p in enumerate(pkts)]
        expect.append((name, "tcp", operation, status))
        ts += 10**9
    write_pcap(path, frames)
    return expect


def test_engine_pairs_every_opcode_with_its_answer() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "opcodes.pcap")
        expect = _capture(path)
        records, engine = run_file(path, (Rule(protocol="dns", ports=(PORT,)),))
    got = [(r["request"]["transport"], r["operation"], r["status"], r["kind"]) for r in as_json(records)]
    assert sorted(got) == sorted((t, op, st, "roundtrip") for _, t, op, st in expect)
    assert engine.protocol_stats["dns"].resets == 0


TSHARK_FIELDS = ["dns.id", "dns.flags.response", "dns.flags.opcode", "dns.flags.rcode", "dns.count.queries",
                 "dns.count.answers", "dns.count.auth_rr", "dns.count.add_rr", "dns.resp.name", "dns.resp.type",
                 "dns.resp.class", "dns.resp.ttl", "dns.resp.len"]  # fmt: skip


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (make test-deps)")
def test_records_agree_with_tshark_dissection() -> None:
    """Header fields, section counts and each record's owner/type/class/TTL/RDLENGTH, message by message.
    (tshark reports an UPDATE's counts under its own field names; `dns.count.*` are the same header words.)"""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "opcodes.pcap")
        _capture(path)
        records, _ = run_file(path, (Rule(protocol="dns", ports=(PORT,)),))
        cmd = [
            TSHARK,
            "-n",
            "-r",
            path,
            "-Y",
            "dns",
            "-T",
            "fields",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=;",
        ]
        for f in [*TSHARK_FIELDS, "dns.count.zones", "dns.count.prerequisites", "dns.count.updates"]:
            cmd += ["-e", f]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout  # type: ignore[arg-type]
    theirs = []
    for line in out.splitlines():
        v = line.split("\t")
        ident, qr, opcode = int(v[0], 16), v[1] == "1", int(v[2])
        rcode = int(v[3]) if qr else None
        zo, pr, up = v[13:16]
        counts = tuple(
            int(x or y or 0) for x, y in zip(v[4:8], (zo, pr, up, ""), strict=True)
        )  # queries or zones, ...
        names, types, classes, ttls, lens = (x.split(";") if x else [] for x in v[8:13])
        rrs = [(n + "." if n != "<Root>" else ".", int(t), int(c, 16), int(ttl), int(ln))
               for n, t, c, ttl, ln in zip(names, types, classes, ttls, lens, strict=True)]  # fmt: skip
        theirs.append((ident, qr, opcode, rcode, counts, rrs))
    ours = []
    from packetd.protocols.dns.messages import CLASSES, TYPES

    by_name = {v: k for k, v in TYPES.items()}
    cls = {v: k for k, v in CLASSES.items()}
    for rec in as_json(records):
        for msg in (rec["request"], rec["response"]):
            c = msg["counts"]
            rrs = [(r["name"], by_name[r["type"]], cls[r["class"]], r["ttl"], r["rdlength"])
                   for sec in ("answers", "authority", "additional") for r in msg[sec]]  # fmt: skip
            opcode = {"QUERY": 0, "IQUERY": 1, "STATUS": 2, "NOTIFY": 4, "UPDATE": 5}[msg["opcode"]]
            ours.append((msg["id"], "qr" in msg["flags"], opcode,
                         {"NOERROR": 0, "NOTIMP": 4, "REFUSED": 5}[msg["rcode"]] if "rcode" in msg else None,
                         (c["questions"], c["answers"], c["authority"], c["additional"]), rrs))  # fmt: skip
    assert len(theirs) == 2 * 2 * len(EXCHANGES)
    assert sorted(ours) == sorted(theirs)


def test_update_with_empty_rdata_outside_update_stays_an_error() -> None:
    """RDLENGTH 0 on an A record is legal only in UPDATE's class ANY/NONE forms; a QUERY answer with it is
    still malformed (the strictness the other tests rely on)."""
    from packetd.protocols.base import DecodeError

    q = dns.message.make_query("www." + ZONE, "A")
    r = dns.message.make_response(q)
    wire = bytearray(r.to_wire())
    wire[7] = 1  # ANCOUNT 1
    wire += b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 0)
    with pytest.raises(DecodeError):
        udp_decoder().receive(S2C, memoryview(bytes(wire)), 1)
