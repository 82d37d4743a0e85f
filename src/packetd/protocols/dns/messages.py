"""DNS messages (queries and responses) and their record fields.

A message keeps what the decoder parsed (header, questions, EDNS) and the resource records as compact
tuples; names and record data are already decoded, so serialising a record never fails. The JSON-ready
form of all that is built once per distinct message (`view`) and shared by the messages parsed from the
same bytes: outputs read what `to_json` returns and never change it.
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
class DnsMessage(Message):
    """One DNS message; `Query` and `Answer` differ only in role."""

    id: int
    bits: int  # the header's second 16-bit word: QR, OPCODE, AA, TC, RD, RA, Z, AD, CD, RCODE
    questions: tuple[Question, ...]
    answers: tuple[Record, ...]
    authority: tuple[Record, ...]
    additional: tuple[Record, ...]
    counts: tuple[int, int, int, int]  # QDCOUNT, ANCOUNT, NSCOUNT, ARCOUNT as sent
    edns: Edns | None
    transport: str  # "udp" | "tcp"
    pair_key: tuple[int, str, int, int]  # (id, lower-cased first question name, type, class)
    # the record fields built from the parsed message, once (to_json); messages parsed from the same bytes
    # (decoder.MAX_PARSED) share it, so the values `to_json` returns are shared too: outputs read them,
    # nothing may change them
    view: list[tuple[Any, ...]] = field(default_factory=list, compare=False, repr=False)

    @property
    def opcode(self) -> int:
        return (self.bits >> 11) & 0xF

    @property
    def rcode(self) -> int:
        rcode = self.bits & 0xF
        if self.edns is not None:
            rcode |= self.edns.ext_rcode << 4  # RFC 6891 §6.1.3: a 12-bit RCODE
        return rcode

    def operation(self) -> str:
        """QUERY: the first question's type (what was asked); any other opcode: its name (UPDATE's zone
        section holds an SOA "question" that says nothing of the update)."""
        opcode = (self.bits >> 11) & 0xF  # (properties and helpers inlined: once per record, per method)
        if opcode == 0 and self.questions:
            qtype = self.questions[0][1]
            return TYPES.get(qtype) or f"TYPE{qtype}"
        return OPCODES.get(opcode) or str(opcode)

    def to_json(self) -> dict[str, Any]:
        v = self.view[0] if self.view else self._view()
        out: dict[str, Any] = {
            "id": self.id,
            "opcode": v[0],
            "flags": v[1],
            "questions": v[2],
            "answers": v[3],
            "authority": v[4],
            "additional": v[5],
            "counts": v[6],
            "edns": v[7],
            "transport": self.transport,
            "size": self.size,
        }
        if v[8] is not None:
            out["rcode"] = v[8]
        return out

    def _view(self) -> tuple[Any, ...]:
        """The record fields that follow from the parsed message alone (not its id, transport, size),
        built once and kept in `view`, which every message parsed from the same bytes shares."""
        qd, an, ns, ar = self.counts
        bits = self.bits
        opcode = (bits >> 11) & 0xF
        types, classes = TYPES, CLASSES
        v = (
            OPCODES.get(opcode) or str(opcode),
            flag_list(bits),
            [
                {
                    "name": name,
                    "type": types.get(qtype) or f"TYPE{qtype}",
                    "class": classes.get(qclass) or f"CLASS{qclass}",
                }
                for name, qtype, qclass in self.questions
            ],
            _records(self.answers) if self.answers else [],
            _records(self.authority) if self.authority else [],
            _records(self.additional) if self.additional else [],
            {"questions": qd, "answers": an, "authority": ns, "additional": ar},
            self.edns.to_json() if self.edns is not None else None,
            rcode_name(self.rcode) if bits & 0x8000 else None,
        )
        self.view.append(v)
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
        rcode = self.bits & 0xF
        if self.edns is not None:
            rcode |= self.edns.ext_rcode << 4  # the 12-bit RCODE, as `rcode`
        return RCODES.get(rcode) or str(rcode)

    def is_error(self) -> bool:
        return bool(self.bits & 0xF) or (self.edns is not None and self.edns.ext_rcode != 0)
