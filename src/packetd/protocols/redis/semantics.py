"""What Redis exchanges mean to metrics and traces (protocols/semantics.py says how this is used)."""

from __future__ import annotations

from packetd.protocols.base import Message
from packetd.protocols.redis.messages import Request
from packetd.protocols.semantics import SERVER, STATUS, Attrs, LabelGetter, Record, Semantics, db_span, halves


def _command(q: Message | None, _s: Message | None) -> object:
    return q.command if isinstance(q, Request) else None  # UnrepliedRequest is a Request too


def _span(_q: Message | None, _s: Message | None, rec: Record) -> tuple[str, Attrs]:
    q, _ = halves(rec)
    return db_span(rec, "redis", rec["operation"], q.get("statement"), q.get("message"))


LABELS: dict[str, tuple[str, LabelGetter]] = {"request.command": ("command", _command)}

SEMANTICS = Semantics(labels=LABELS, default_labels=(*SERVER, "request.command", *STATUS), span=_span)

__all__ = ["SEMANTICS"]
