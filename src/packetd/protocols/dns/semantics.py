"""What DNS exchanges mean to metrics and traces (protocols/semantics.py says how this is used)."""

from __future__ import annotations

from packetd.protocols.base import Message
from packetd.protocols.dns.messages import DnsMessage
from packetd.protocols.semantics import (
    SERVER,
    STATUS,
    Attrs,
    LabelGetter,
    Record,
    Semantics,
    halves,
    operation_of,
    put,
)


def _question(q: Message | None, s: Message | None) -> object:
    msg = q if q is not None else s
    qs = msg.questions if isinstance(msg, DnsMessage) else ()
    return qs[0][0] if qs else ""  # (name, type, class)


def _span(_q: Message | None, s: Message | None, rec: Record) -> tuple[str, Attrs]:
    q, sj = halves(rec)
    qs = (q or sj).get("questions") or ()
    op: str = rec["operation"]
    a: Attrs = {"network.protocol.name": "dns"}
    if qs:
        put(a, "dns.question.name", qs[0].get("name"))
    put(a, "packetd.dns.question.type", op)  # not a semconv attribute: ours
    if s is not None:
        a["packetd.dns.response_code"] = str(rec["status"])
        if rec["error"]:
            a["error.type"] = str(rec["status"])
    return op, a


LABELS: dict[str, tuple[str, LabelGetter]] = {
    "request.question": ("question", _question),
    "request.qtype": ("qtype", operation_of),
}

SEMANTICS = Semantics(labels=LABELS, default_labels=(*SERVER, "request.qtype", *STATUS), span=_span)

__all__ = ["SEMANTICS"]
