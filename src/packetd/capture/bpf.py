"""The kernel filter expression built from the protocol rules (reference §3.1, fixed for DNS).

    (tcp and host example.com and ( port 80 or port 8080 ) ) or (udp and port 53)

Each rule contributes `(<transports> [and host H] and <ports>)`; a protocol carried over both transports
(DNS) matches `(tcp or udp)`. A run of three or more consecutive ports (a range in the rule, `8000-8099`)
becomes one `portrange 8000-8099`, so a wide range stays a short program. Rules with no ports contribute nothing; no contribution at all means no
filter. The expression is compiled by libpcap (capture/libpcap.py), never by us.
"""

from __future__ import annotations

from collections.abc import Iterable


def rule_expression(transports: Iterable[str], ports: Iterable[int], host: str | None) -> str:
    ts = sorted(set(transports))
    plist = list(dict.fromkeys(ports))
    if not plist:
        return ""
    l4 = ts[0] if len(ts) == 1 else "(" + " or ".join(ts) + ")"
    out = "(" + l4
    if host:
        out += f" and host {host}"
    terms = _port_terms(plist)
    if len(terms) == 1:
        out += f" and {terms[0]}"
    else:
        out += " and ( " + " or ".join(terms) + " ) "
    return out + ")"


def _port_terms(ports: list[int]) -> list[str]:
    """`port N` for each port, in the order given, except runs of 3+ consecutive ports: `portrange A-B`."""
    ordered = sorted(set(ports))
    runs: dict[int, int] = {}  # first port of a run of 3+ → its last
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        if j - i >= 2:
            runs[ordered[i]] = ordered[j]
        i = j + 1
    inside = {p for a, b in runs.items() for p in range(a, b + 1)}
    terms = []
    for p in ports:
        if p in runs:
            terms.append(f"portrange {p}-{runs[p]}")
        elif p not in inside:
            terms.append(f"port {p}")
    return terms


# what detection by content needs to see: every connection may be any protocol (`--proto auto`)
ALL_TCP_UDP = "tcp or udp"


def filter_expression(rules: Iterable[tuple[Iterable[str], Iterable[int], str | None]]) -> str:
    parts = [e for e in (rule_expression(t, p, h) for t, p, h in rules) if e]
    return " or ".join(parts)


def payload_only_clause(expression: str) -> str:
    """Drop TCP segments with no payload and no SYN/FIN/RST (pure ACKs) in the kernel.

    The flow layer uses ACK numbers only to detect capture loss early; without pure ACKs it falls back to
    the hole timeout. IPv4 only in the length arithmetic: IPv6 packets always pass.
    """
    pure_ack = (
        "(ip and tcp and (tcp[tcpflags] & (tcp-syn|tcp-fin|tcp-rst)) = 0 "
        "and (ip[2:2] - ((ip[0]&0xf)<<2) - ((tcp[12]&0xf0)>>2)) = 0)"
    )
    if not expression:
        return f"not {pure_ack}"
    return f"({expression}) and not {pure_ack}"
