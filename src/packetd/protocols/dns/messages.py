"""DNS messages (queries and responses) and their record fields.

A message keeps its id, transport and size, and a `Parsed`: what the decoder parsed from its bytes after
the id (header bits, questions, the resource records as compact tuples, EDNS) and what follows from that
alone (pair key, operation, status), shared by every message parsed from the same bytes. Names and record
data are already decoded, so serialising a record never fails. The JSON-ready form is built once per
distinct message (`Parsed.view`): each message's `to_json` is a copy of that dict with its own id,
transport and size; outputs read the values in it and never change them.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any, ClassVar

from packetd._values import value
from packetd.protocols.base import Message, Role

OPCODES = {0: "QUERY", 1: "IQUERY", 2: "STATUS", 4: "NOTIFY", 5: "UPDATE", 6: "DSO"}

# RCODE names (RFC 1035 §4.1.1, RFC 2136, RFC 6891 §9 for the extended ones; IANA "DNS RCODEs")
RCODES = {
    0: "NOERROR",
    1: "FORMERR",
    2: "SERVFAIL",
    3: "NXDOMAIN",
    4: "NOTIMP",
    5: "REFUSED",
    6: "YXDOMAIN",
    7: "YXRRSET",
    8: "NXRRSET",
    9: "NOTAUTH",
    10: "NOTZONE",
    11: "DSOTYPENI",
    16: "BADVERS",
    17: "BADKEY",
    18: "BADTIME",
    19: "BADMODE",
    20: "BADNAME",
    21: "BADALG",
    22: "BADTRUNC",
    23: "BADCOOKIE",
}

# Resource record TYPEs (IANA "Resource Record (RR) TYPEs"); unknown ones print as TYPEnnn (RFC 3597 §5)
TYPES = {
    1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT", 17: "RP",
    18: "AFSDB", 24: "SIG", 25: "KEY", 28: "AAAA", 29: "LOC", 33: "SRV", 35: "NAPTR", 36: "KX",
    37: "CERT", 39: "DNAME", 41: "OPT", 42: "APL", 43: "DS", 44: "SSHFP", 45: "IPSECKEY", 46: "RRSIG",
    47: "NSEC", 48: "DNSKEY", 49: "DHCID", 50: "NSEC3", 51: "NSEC3PARAM", 52: "TLSA", 53: "SMIMEA",
    55: "HIP", 59: "CDS", 60: "CDNSKEY", 61: "OPENPGPKEY", 62: "CSYNC", 63: "ZONEMD", 64: "SVCB",
    65: "HTTPS", 99: "SPF", 249: "TKEY", 250: "TSIG", 251: "IXFR", 252: "AXFR", 253: "MAILB",
    254: "MAILA", 255: "ANY", 256: "URI", 257: "CAA", 32768: "TA", 32769: "DLV",
}  # fmt: skip
CLASSES = {1: "IN", 3: "CH", 4: "HS", 254: "NONE", 255: "ANY"}

# EDNS option codes (IANA "DNS EDNS0 Option Codes (OPT)")
EDNS_OPTIONS = {
    1: "LLQ", 2: "UL", 3: "NSID", 5: "DAU", 6: "DHU", 7: "N3U", 8: "ECS", 9: "EXPIRE", 10: "COOKIE",
    11: "TCP_KEEPALIVE", 12: "PADDING", 13: "CHAIN", 14: "KEY_TAG", 15: "EDE", 16: "CLIENT_TAG",
    17: "SERVER_TAG", 18: "REPORT_CHANNEL", 19: "ZONEVERSION",
}  # fmt: skip

# header flag bits (RFC 1035 §4.1.1, RFC 4035 §3.1.6 for AD/CD) in the order records list them
FLAG_BITS = (
    (0x8000, "qr"),
    (0x0400, "aa"),
    (0x0200, "tc"),
    (0x0100, "rd"),
    (0x0080, "ra"),
    (0x0020, "ad"),
    (0x0010, "cd"),
)
_FLAG_NAMES: dict[int, list[str]] = {}


def type_name(t: int) -> str:
    name = TYPES.get(t)
    return name if name is not None else f"TYPE{t}"


def class_name(c: int) -> str:
    name = CLASSES.get(c)
    return name if name is not None else f"CLASS{c}"


def rcode_name(rcode: int) -> str:
    name = RCODES.get(rcode)
    return name if name is not None else str(rcode)


def flag_list(bits: int) -> list[str]:
    bits &= 0x87B0
    names = _FLAG_NAMES.get(bits)
    if names is None:
        names = _FLAG_NAMES[bits] = [n for b, n in FLAG_BITS if bits & b]
    return list(names)


# (name, type, class) of one question
Question = tuple[str, int, int]
# (owner name, type, class, ttl, rdlength, decoded data or None when the type is not decoded)
Record = tuple[str, int, int, int, int, Any]


@value
class Edns:
    """The OPT pseudo-record (RFC 6891 §6.1.3): UDP payload size, extended RCODE bits, version, DO, options."""

    udp_size: int
    ext_rcode: int  # upper 8 bits of the 12-bit RCODE
    version: int
    do: bool
    options: tuple[tuple[int, int], ...]  # (code, length)

    def to_json(self) -> dict[str, Any]:
        return {
            "udp_size": self.udp_size,
            "version": self.version,
            "do": self.do,
            "options": [
                {"code": code, "name": EDNS_OPTIONS.get(code, str(code)), "length": length}
                for code, length in self.options
            ],
        }


def _records(rrs: tuple[Record, ...]) -> list[dict[str, Any]]:
    types, classes = TYPES, CLASSES  # type_name / class_name inlined: several calls per record otherwise
    return [
        {
            "name": name,
            "type": types.get(rtype) or f"TYPE{rtype}",
            "class": classes.get(rclass) or f"CLASS{rclass}",
            "ttl": ttl,
            "rdlength": rdlength,
            "data": data,
        }
        for name, rtype, rclass, ttl, rdlength, data in rrs
    ]


@value
class Parsed:
    """What the bytes of one message after its id parse to, and what its record fields and semantics follow
    from alone. One per distinct message: every message parsed from the same bytes (decoder.MAX_PARSED)
    shares it, so `to_json`'s values are shared too: outputs read them, nothing may change them."""

    max_records: int  # the bound it was parsed with (-1: a name read the id, so it is not shared)
    bits: int  # the header's second 16-bit word: QR, OPCODE, AA, TC, RD, RA, Z, AD, CD, RCODE
    questions: tuple[Question, ...]
    answers: tuple[Record, ...]
    authority: tuple[Record, ...]
    additional: tuple[Record, ...]
    counts: tuple[int, int, int, int]  # QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT as sent
    edns: Edns | None
    key: tuple[str, int, int]  # the pair key without the id: (lower-cased first question name, type, class)
    operation: str  # DnsMessage.operation()
    status: str  # Answer.status()
    error: bool  # Answer.is_error()
    # the record fields built once, on the first to_json: a dict in their order, with "id", "transport" and
    # "size" (the message's own) still to be set in each copy
    view: list[dict[str, Any]] = field(default_factory=list, compare=False, repr=False)


def parsed(
    max_records: int,
    bits: int,
    questions: tuple[Question, ...],
    answers: tuple[Record, ...],
    authority: tuple[Record, ...],
    additional: tuple[Record, ...],
    counts: tuple[int, int, int, int],
    edns: Edns | None,
) -> Parsed:
    """A `Parsed` with what follows from the sections computed now (once per distinct message)."""
    key = (questions[0][0].lower(), questions[0][1], questions[0][2]) if questions else ("", 0, 0)
    opcode = (bits >> 11) & 0xF
    # QUERY: the first question's type (what was asked); any other opcode: its name (UPDATE's zone section
    # holds an SOA "question" that says nothing of the update)
    if opcode == 0 and questions:
        operation = type_name(questions[0][1])
    else:
        operation = OPCODES.get(opcode) or str(opcode)
    rcode = bits & 0xF
    if edns is not None:
        rcode |= edns.ext_rcode << 4  # RFC 6891 §6.1.3: a 12-bit RCODE
    return Parsed(
        max_records, bits, questions, answers, authority, additional, counts, edns, key,
        operation, rcode_name(rcode), rcode != 0, [],
    )  # fmt: skip


@value
class DnsMessage(Message):
    """One DNS message; `Query` and `Answer` differ only in role. What follows from its bytes after the id
    is in `parsed`, shared by the messages parsed from the same bytes."""

    id: int
    transport: str  # "udp" | "tcp"
    pair_key: tuple[int, str, int, int]  # (id, lower-cased first question name, type, class)
    parsed: Parsed

    @property
    def bits(self) -> int:
        return self.parsed.bits

    @property
    def questions(self) -> tuple[Question, ...]:
        return self.parsed.questions

    @property
    def answers(self) -> tuple[Record, ...]:
        return self.parsed.answers

    @property
    def authority(self) -> tuple[Record, ...]:
        return self.parsed.authority

    @property
    def additional(self) -> tuple[Record, ...]:
        return self.parsed.additional

    @property
    def counts(self) -> tuple[int, int, int, int]:
        return self.parsed.counts

    @property
    def edns(self) -> Edns | None:
        return self.parsed.edns

    @property
    def opcode(self) -> int:
        return (self.parsed.bits >> 11) & 0xF

    @property
    def rcode(self) -> int:
        rcode = self.parsed.bits & 0xF
        edns = self.parsed.edns
        if edns is not None:
            rcode |= edns.ext_rcode << 4  # RFC 6891 §6.1.3: a 12-bit RCODE
        return rcode

    def operation(self) -> str:
        """QUERY: the first question's type (what was asked); any other opcode: its name."""
        return self.parsed.operation

    def to_json(self) -> dict[str, Any]:
        p = self.parsed
        out = (p.view[0] if p.view else _view(p)).copy()  # a dict copy: a third of building it anew
        out["id"] = self.id
        out["transport"] = self.transport
        out["size"] = self.size
        return out


def _view(p: Parsed) -> dict[str, Any]:
    """The record fields that follow from the parsed message alone, in their order ("id", "transport" and
    "size" are placeholders each message sets in its copy), built once and kept in `p.view`."""
    qd, an, ns, ar = p.counts
    bits = p.bits
    opcode = (bits >> 11) & 0xF
    types, classes = TYPES, CLASSES
    v: dict[str, Any] = {
        "id": 0,
        "opcode": OPCODES.get(opcode) or str(opcode),
        "flags": flag_list(bits),
        "questions": [
            {
                "name": name,
                "type": types.get(qtype) or f"TYPE{qtype}",
                "class": classes.get(qclass) or f"CLASS{qclass}",
            }
            for name, qtype, qclass in p.questions
        ],
        "answers": _records(p.answers) if p.answers else [],
        "authority": _records(p.authority) if p.authority else [],
        "additional": _records(p.additional) if p.additional else [],
        "counts": {"questions": qd, "answers": an, "authority": ns, "additional": ar},
        "edns": p.edns.to_json() if p.edns is not None else None,
        "transport": "",
        "size": 0,
    }
    if bits & 0x8000:
        v["rcode"] = p.status
    p.view.append(v)
    return v


@value
class Query(DnsMessage):
    """A message with QR = 0."""

    ROLE: ClassVar[Role] = Role.REQUEST


@value
class Answer(DnsMessage):
    """A message with QR = 1."""

    ROLE: ClassVar[Role] = Role.RESPONSE

    def status(self) -> str:
        return self.parsed.status

    def is_error(self) -> bool:
        return self.parsed.error
