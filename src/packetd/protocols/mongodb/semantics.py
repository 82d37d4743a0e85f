"""What MongoDB exchanges mean to metrics and traces (protocols/semantics.py says how this is used).

The command is the `command` label (the Go implementation called it `service`, reference §18.21); the
span's query text is the command summary with its values replaced (unless `mongodb.raw_query`).
"""

from __future__ import annotations

from packetd.protocols.base import Message
from packetd.protocols.mongodb.messages import MongoReply, MongoRequest
from packetd.protocols.semantics import SERVER, STATUS, Attrs, LabelGetter, Record, Semantics, db_span, halves


def _command(q: Message | None, _s: Message | None) -> object:
    # a MongoPush (MongoReply) delivered alone is recorded as a request too: its command is what it continues
    return q.command if isinstance(q, MongoRequest | MongoReply) else None


def _database(q: Message | None, _s: Message | None) -> object:
    return q.database if isinstance(q, MongoRequest) else None


def _source(q: Message | None, _s: Message | None) -> object:
    if not isinstance(q, MongoRequest):
        return ""
    db, coll = q.database, q.collection
    return f"{db}.{coll}" if db and coll else (db or "")


def _ok(_q: Message | None, s: Message | None) -> object:
    return s.ok if isinstance(s, MongoReply) else None


def _span(_q: Message | None, _s: Message | None, rec: Record) -> tuple[str, Attrs]:
    q, _ = halves(rec)
    return db_span(rec, "mongodb", rec["operation"], q.get("query"), q.get("message"))


LABELS: dict[str, tuple[str, LabelGetter]] = {
    "request.command": ("command", _command),  # label `command` (the reference said `service`)
    "request.source": ("source", _source),
    "request.database": ("database", _database),
    "response.ok": ("ok", _ok),
}

SEMANTICS = Semantics(labels=LABELS, default_labels=(*SERVER, "request.command", *STATUS), span=_span)

__all__ = ["SEMANTICS"]
