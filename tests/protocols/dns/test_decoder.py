"""DNS decoder table cases, run whole, byte by byte and with trailing bytes (TCP framing), plus UDP cases.

The independent truth is dnspython: messages are built with it (`to_wire`, with name compression) and every
field we report is compared with what dnspython reads back from the same bytes. Hand-made byte strings
cover what dnspython will not write (pointer loops, forward pointers, bad labels).
"""

from __future__ import annotations

import struct

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.svcbbase
import dns.rrset
import pytest

from packetd.pairing.roundtrip import Roundtrip
from packetd.protocols.base import DecodeError, DecoderContext, Flag, SwapRoles
from packetd.protocols.dns.decoder import DnsDecoder, read_name
from packetd.protocols.dns.messages import Answer, DnsMessage, Query
from packetd.protocols.dns.options import DnsOptions
from tests.helpers.decoding import C2S, MODES, S2C, project, run

ZONE = "example.test."


def query(name: str, rdtype: str = "A", qid: int = 0x1234, **kw: object) -> dns.message.QueryMessage:
    q = dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]
    q.id = qid
    return q


def answer(q: dns.message.Message, *records: str, rcode: int = 0, ttl: int = 300) -> dns.message.Message:
    r = dns.message.make_response(q)
    r.set_rcode(rcode)
    for text in records:
        owner, rdtype, rdata = text.split(" ", 2)
        r.answer.append(dns.rrset.from_text(owner, ttl, "IN", rdtype, rdata))
    return r


def tcp(wire: bytes) -> bytes:
    return struct.pack("!H", len(wire)) + wire


def tcp_decoder() -> DnsDecoder:
    return DnsDecoder(DecoderContext(transport="tcp"))


def udp_decoder(**opts: object) -> DnsDecoder:
    return DnsDecoder(DecoderContext(options=DnsOptions(**opts), transport="udp"))  # type: ignore[arg-type]


def dnspython_view(wire: bytes) -> dict:
    """What dnspython reads from the bytes, in our record's terms (the truth the decoder is held to)."""
    m = dns.message.from_wire(wire)

    def data(rd: dns.rdata.Rdata) -> object:
        t = rd.rdtype
        if t in (dns.rdatatype.A, dns.rdatatype.AAAA):
            return rd.address
        if t in (dns.rdatatype.CNAME, dns.rdatatype.NS, dns.rdatatype.PTR, dns.rdatatype.DNAME):
            return rd.target.to_text()
        if t == dns.rdatatype.MX:
            return {"preference": rd.preference, "exchange": rd.exchange.to_text()}
        if t == dns.rdatatype.SRV:
            return {
                "priority": rd.priority,
                "weight": rd.weight,
                "port": rd.port,
                "target": rd.target.to_text(),
            }
        if t == dns.rdatatype.SOA:
            return {
                "mname": rd.mname.to_text(), "rname": rd.rname.to_text(), "serial": rd.serial,
                "refresh": rd.refresh, "retry": rd.retry, "expire": rd.expire, "minimum": rd.minimum,
            }  # fmt: skip
        if t == dns.rdatatype.TXT:
            return [s.decode() for s in rd.strings]
        if t == dns.rdatatype.CAA:
            return {"flags": rd.flags, "tag": rd.tag.decode(), "value": rd.value.decode()}
        if t in (dns.rdatatype.HTTPS, dns.rdatatype.SVCB):
            params = {}
            for k, v in rd.params.items():
                text = v.to_text().strip('"')
                params[dns.rdtypes.svcbbase.key_to_text(k)] = text
            return {"priority": rd.priority, "target": rd.target.to_text(), "params": params}
        return None

    def section(rrsets: list[dns.rrset.RRset]) -> list[dict]:
        out = []
        for rrset in rrsets:
            for rd in rrset:
                out.append(
                    {
                        "name": rrset.name.to_text(),
                        "type": dns.rdatatype.to_text(rrset.rdtype),
                        "class": dns.rdataclass.to_text(rrset.rdclass),
                        "ttl": rrset.ttl,
                        "data": data(rd),
                    }
                )
        return out

    return {
        "id": m.id,
        "questions": [
            {"name": q.name.to_text(), "type": dns.rdatatype.to_text(q.rdtype), "class": "IN"}
            for q in m.question
        ],
        "answers": section(m.answer),
        "authority": section(m.authority),
        "additional": section(m.additional),
        "rcode": dns.rcode.to_text(m.rcode()) if m.flags & dns.flags.QR else None,
        "edns": None if m.edns < 0 else {"udp_size": m.payload, "do": bool(m.ednsflags & dns.flags.DO)},
    }


def our_view(msg: DnsMessage) -> dict:
    j = msg.to_json()

    def strip(rrs: list[dict]) -> list[dict]:
        return [{k: v for k, v in rr.items() if k != "rdlength"} for rr in rrs]

    return {
        "id": j["id"],
        "questions": j["questions"],
        "answers": strip(j["answers"]),
        "authority": strip(j["authority"]),
        "additional": strip(j["additional"]),
        "rcode": j.get("rcode"),
        "edns": None if j["edns"] is None else {"udp_size": j["edns"]["udp_size"], "do": j["edns"]["do"]},
    }


Q_A = query("www." + ZONE, "A", use_edns=0, payload=1232)
R_A = answer(Q_A, "www.example.test. CNAME web.example.test.", "web.example.test. A 192.0.2.10")
Q_AAAA = query("www." + ZONE, "AAAA", qid=0x1235)
R_AAAA = answer(Q_AAAA, "www.example.test. AAAA 2001:db8::10")
Q_MX = query(ZONE, "MX", qid=7)
R_MX = answer(Q_MX, "example.test. MX 10 mail.example.test.", "example.test. MX 20 mail2.other.test.")
Q_SRV = query("_sip._tcp." + ZONE, "SRV", qid=8)
R_SRV = answer(Q_SRV, "_sip._tcp.example.test. SRV 10 60 5060 sip.example.test.")
Q_TXT = query(ZONE, "TXT", qid=9)
R_TXT = answer(Q_TXT, 'example.test. TXT "v=spf1 -all" "second string"')
Q_CAA = query(ZONE, "CAA", qid=10)
R_CAA = answer(Q_CAA, 'example.test. CAA 0 issue "ca.example.net"')
Q_HTTPS = query(ZONE, "HTTPS", qid=11)
R_HTTPS = answer(
    Q_HTTPS, 'example.test. HTTPS 1 . alpn="h2,h3" port=8443 ipv4hint=192.0.2.1 ipv6hint=2001:db8::1'
)
Q_NX = query("nope." + ZONE, "A", qid=12)
R_NX = dns.message.make_response(Q_NX)
R_NX.set_rcode(dns.rcode.NXDOMAIN)
R_NX.authority.append(
    dns.rrset.from_text(ZONE, 60, "IN", "SOA", "ns.example.test. admin.example.test. 5 3600 600 86400 60")
)
Q_PTR = query("10.2.0.192.in-addr.arpa.", "PTR", qid=13)
R_PTR = answer(Q_PTR, "10.2.0.192.in-addr.arpa. PTR web.example.test.")
Q_NS = query(ZONE, "NS", qid=14)
R_NS = answer(Q_NS, "example.test. NS ns1.example.test.", "example.test. NS ns2.example.test.")

EXCHANGES = {
    "a-with-cname-and-edns": (Q_A, R_A),
    "aaaa": (Q_AAAA, R_AAAA),
    "mx": (Q_MX, R_MX),
    "srv": (Q_SRV, R_SRV),
    "txt": (Q_TXT, R_TXT),
    "caa": (Q_CAA, R_CAA),
    "https": (Q_HTTPS, R_HTTPS),
    "nxdomain-with-soa": (Q_NX, R_NX),
    "ptr": (Q_PTR, R_PTR),
    "ns": (Q_NS, R_NS),
}

SENT_Q = query("sentinel." + ZONE, "A", qid=0x7777)
SENT_R = answer(SENT_Q, "sentinel.example.test. A 198.51.100.7")
SENTINEL = [(C2S, tcp(SENT_Q.to_wire())), (S2C, tcp(SENT_R.to_wire()))]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(EXCHANGES))
def test_tcp_table(name: str, mode: str) -> None:
    q, r = EXCHANGES[name]
    qw, rw = q.to_wire(), r.to_wire()
    msgs = run(tcp_decoder, [(C2S, tcp(qw)), (S2C, tcp(rw))], mode, sentinel=SENTINEL)
    msgs = [m for m in msgs if isinstance(m, DnsMessage)]
    expected = [(Query, qw), (Answer, rw)]
    if mode == "trailing":
        expected += [(Query, SENT_Q.to_wire()), (Answer, SENT_R.to_wire())]
    assert [type(m) for m in msgs] == [t for t, _ in expected]
    for m, (_, wire) in zip(msgs, expected, strict=True):
        assert our_view(m) == dnspython_view(wire)
        assert m.size == len(wire) + 2  # the two-byte length prefix is on the wire too
        assert m.transport == "tcp"


@pytest.mark.parametrize("name", sorted(EXCHANGES))
def test_udp_table(name: str) -> None:
    q, r = EXCHANGES[name]
    d = udp_decoder()
    qw, rw = q.to_wire(), r.to_wire()
    out = list(d.receive(C2S, memoryview(qw), 1)) + list(d.receive(S2C, memoryview(rw), 2))
    assert [type(m) for m in out] == [Query, Answer]
    assert our_view(out[0]) == dnspython_view(qw)  # type: ignore[arg-type]
    assert our_view(out[1]) == dnspython_view(rw)  # type: ignore[arg-type]
    assert out[0].size == len(qw) and out[1].size == len(rw)
    assert out[0].pair_key == out[1].pair_key  # type: ignore[attr-defined]


def test_semantics_operation_status_error() -> None:
    d = udp_decoder()
    q = d.receive(C2S, memoryview(Q_NX.to_wire()), 1)[0]
    r = d.receive(S2C, memoryview(R_NX.to_wire()), 2)[0]
    rt = Roundtrip("dns", "roundtrip", ("192.0.2.1", 5353), ("192.0.2.53", 53), q, r, 0)
    assert rt.operation == "A" and rt.status == "NXDOMAIN" and rt.error is True
    ok = d.receive(S2C, memoryview(R_A.to_wire()), 3)
    assert ok[0].status() == "NOERROR" and not ok[0].is_error()


def test_flags_opcode_and_edns_fields() -> None:
    q = query("x." + ZONE, "A", qid=1, use_edns=0, payload=4096, want_dnssec=True)
    q.flags |= dns.flags.CD
    q.use_edns(0, dns.flags.DO, 4096, options=[dns.edns.GenericOption(10, b"12345678")])
    msg = udp_decoder().receive(C2S, memoryview(q.to_wire()), 1)[0].to_json()
    assert msg["flags"] == ["rd", "cd"]
    assert msg["opcode"] == "QUERY"
    assert msg["edns"] == {
        "udp_size": 4096,
        "version": 0,
        "do": True,
        "options": [{"code": 10, "name": "COOKIE", "length": 8}],
    }
    assert "rcode" not in msg  # a query has no RCODE to report


def test_extended_rcode_badvers() -> None:
    q = query("x." + ZONE, "A", qid=2, use_edns=0)
    r = dns.message.make_response(q)
    r.set_rcode(dns.rcode.BADVERS)  # 16: needs the EDNS extended bits (RFC 6891 §6.1.3)
    msg = udp_decoder().receive(S2C, memoryview(r.to_wire()), 1)[0]
    assert msg.status() == "BADVERS"


def test_several_messages_in_one_segment_and_one_across_three() -> None:
    d = tcp_decoder()
    blob = tcp(Q_A.to_wire()) + tcp(Q_AAAA.to_wire()) + tcp(Q_MX.to_wire())
    out = list(d.receive(C2S, memoryview(blob[:5]), 1))
    out += d.receive(C2S, memoryview(blob[5:40]), 2)
    out += d.receive(C2S, memoryview(blob[40:]), 3)
    assert [m.to_json()["id"] for m in out] == [0x1234, 0x1235, 7]
    assert out[0].start_ns == 1 and out[0].end_ns == 3


def test_no_state_leaks_between_messages_of_one_flow() -> None:
    """The reference accumulated answers across the messages of one 4-tuple (§18 item 14)."""
    d = udp_decoder()
    d.receive(C2S, memoryview(Q_A.to_wire()), 1)
    d.receive(C2S, memoryview(Q_AAAA.to_wire()), 2)
    a = d.receive(S2C, memoryview(R_A.to_wire()), 3)[0].to_json()
    aaaa = d.receive(S2C, memoryview(R_AAAA.to_wire()), 4)[0].to_json()
    assert [rr["data"] for rr in a["answers"]] == ["web.example.test.", "192.0.2.10"]
    assert [rr["data"] for rr in aaaa["answers"]] == ["2001:db8::10"]
    assert aaaa["size"] == len(R_AAAA.to_wire())


def test_retransmitted_query_is_one_request_and_flags_the_answer() -> None:
    d = udp_decoder()
    first = d.receive(C2S, memoryview(Q_A.to_wire()), 1)
    again = d.receive(C2S, memoryview(Q_A.to_wire()), 1_000_000_000)
    resp = d.receive(S2C, memoryview(R_A.to_wire()), 1_000_100_000)
    assert len(first) == 1 and again == []
    assert resp[0].flags & Flag.RETRANSMITTED
    # after the answer, the same id and question is a new query
    assert len(d.receive(C2S, memoryview(Q_A.to_wire()), 2_000_000_000)) == 1


def test_truncated_udp_answer_is_flagged() -> None:
    r = answer(Q_A, "web.example.test. A 192.0.2.10")
    r.flags |= dns.flags.TC
    d = udp_decoder()
    d.receive(C2S, memoryview(Q_A.to_wire()), 1)
    msg = d.receive(S2C, memoryview(r.to_wire()), 2)[0]
    assert msg.flags & Flag.TRUNCATED
    assert "tc" in msg.to_json()["flags"]


def test_query_from_the_guessed_server_swaps_roles() -> None:
    d = udp_decoder()
    out = d.receive(S2C, memoryview(Q_A.to_wire()), 1)
    assert isinstance(out[0], SwapRoles) and isinstance(out[1], Query)


def test_max_records_bounds_a_section_but_counts_stay_exact() -> None:
    r = answer(Q_A, *[f"www.example.test. A 192.0.2.{i}" for i in range(1, 11)])
    msg = udp_decoder(max_records=3).receive(S2C, memoryview(r.to_wire()), 1)[0].to_json()
    assert len(msg["answers"]) == 3 and msg["counts"]["answers"] == 10


def test_gap_inside_a_tcp_message_drops_it_and_keeps_framing() -> None:
    d = tcp_decoder()
    first = tcp(Q_A.to_wire())
    d.receive(C2S, memoryview(first[:10]), 1)
    assert d.receive_gap(C2S, 5, 2) == ()
    out = d.receive(C2S, memoryview(first[15:] + tcp(Q_MX.to_wire())), 3)
    assert [m.to_json()["id"] for m in out] == [7]


def test_unknown_type_keeps_length_only() -> None:
    r = answer(Q_A)
    r.answer.append(dns.rrset.from_text("www.example.test.", 60, "IN", "SSHFP", "1 1 " + "ab" * 20))
    rr = udp_decoder().receive(S2C, memoryview(r.to_wire()), 1)[0].to_json()["answers"][0]
    assert rr["type"] == "SSHFP" and rr["data"] is None and rr["rdlength"] == 2 + 20


HEADER_1Q = struct.pack("!6H", 0xABCD, 0x0100, 1, 0, 0, 0)


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (HEADER_1Q + b"\xc0\x0c\x00\x01\x00\x01", "bad compression pointer"),  # points at itself
        (HEADER_1Q + b"\x01a\xc0\x0c\x00\x01\x00\x01", "bad compression pointer"),  # into its own labels
        (HEADER_1Q + b"\xc0\x20\x00\x01\x00\x01", "bad compression pointer"),  # forward
        (HEADER_1Q + b"\x41" + b"a" * 65 + b"\x00\x00\x01\x00\x01", "bad label type"),
        (HEADER_1Q + b"\x05abc", "name past end"),
        (HEADER_1Q + b"\x00\x00", "question past end"),
        (HEADER_1Q[:10], "short message"),
        (HEADER_1Q + (b"\x3f" + b"a" * 63) * 4 + b"\x00\x00\x01\x00\x01", "name too long"),
    ],
)
def test_malformed_names_raise_decode_error(wire: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as exc:
        udp_decoder().receive(C2S, memoryview(wire), 1)
    assert exc.value.reason == reason


def test_pointer_loop_between_two_names_is_rejected() -> None:
    # question name at 12: label "a" then a pointer to 18; at 18 a pointer back to 12: a cycle 12 → 18 → 12
    buf = HEADER_1Q + b"\x01a\xc0\x12\x00\x01\xc0\x0c"
    with pytest.raises(DecodeError):
        read_name(buf, 12, len(buf))


def test_names_are_escaped_in_presentation_format() -> None:
    buf = HEADER_1Q + b"\x03a.b\x04c\x00 d\x00\x00\x01\x00\x01"
    name, _ = read_name(buf, 12, len(buf))
    assert name == "a\\.b.c\\000\\032d."


def test_tcp_length_below_a_header_is_rejected() -> None:
    with pytest.raises(DecodeError):
        tcp_decoder().receive(C2S, memoryview(b"\x00\x05hello"), 1)


def test_projection_is_identical_across_modes() -> None:
    steps = [(C2S, tcp(Q_HTTPS.to_wire())), (S2C, tcp(R_HTTPS.to_wire()))]
    results = [project(run(tcp_decoder, steps, mode)) for mode in ("whole", "bytewise")]
    assert results[0] == results[1]


def shared_udp_decoders(n: int, **opts: object) -> list[DnsDecoder]:
    """`n` UDP decoders of one engine: they share `DecoderContext.shared`, as the sessions' do."""
    shared: dict[str, object] = {}
    return [
        DnsDecoder(DecoderContext(options=DnsOptions(**opts), transport="udp", shared=shared))  # type: ignore[arg-type]
        for _ in range(n)
    ]


def test_messages_parsed_before_on_another_flow_read_the_same_but_their_own_id() -> None:
    # a resolver asks the same question with a new id on a new socket: the bytes after the id repeat
    first, second, alone = [*shared_udp_decoders(2), udp_decoder()]
    q2 = dns.message.from_wire(Q_A.to_wire())
    q2.id = 0x4321
    r2 = dns.message.make_response(q2)
    r2.answer = R_A.answer
    for wire_q, wire_r, d in ((Q_A.to_wire(), R_A.to_wire(), first), (q2.to_wire(), r2.to_wire(), second)):
        q = d.receive(C2S, memoryview(wire_q), 1)[0]
        r = d.receive(S2C, memoryview(wire_r), 2)[0]
        assert our_view(q) == dnspython_view(wire_q) and our_view(r) == dnspython_view(wire_r)
        assert q.to_json() == alone.receive(C2S, memoryview(wire_q), 1)[0].to_json()
        assert q.pair_key == r.pair_key and q.pair_key[0] == dns.message.from_wire(wire_q).id  # type: ignore[attr-defined]
    with pytest.raises(DecodeError):  # what did not parse is not remembered
        second.receive(S2C, memoryview(R_A.to_wire()[:-3]), 3)


def test_a_name_that_points_into_the_header_is_read_again_for_each_id() -> None:
    # QNAME = a pointer to offset 0: the id bytes 0x01 'A' (then the flags' 0x00) are a one-label name, so
    # the name depends on the id and the message must not be taken from what another id parsed to
    names = []
    for d, ident in zip(shared_udp_decoders(2), (0x0141, 0x0142), strict=True):
        wire = struct.pack("!HHHHHH", ident, 0, 1, 0, 0, 0) + b"\xc0\x00" + struct.pack("!HH", 1, 1)
        names.append(d.receive(C2S, memoryview(wire), 1)[0].to_json()["questions"][0]["name"])
    assert names == ["A.", "B."]
