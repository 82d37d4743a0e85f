"""What PostgreSQL exchanges mean to metrics and traces (protocols/semantics.py says how this is used).

semconv `db.operation.name` is what the statement does (SELECT), not the wire message (Query, Execute);
an Execute of a statement prepared before the capture has no known operation and leaves it unset. Rows a
write changed come from the command tag (`INSERT 0 5`).
"""

from __future__ import annotations

from packetd.protocols.base import Message
from packetd.protocols.postgresql.messages import ClientNotice, Request, Response, ServerNotice
from packetd.protocols.semantics import SERVER, STATUS, Attrs, LabelGetter, Record, Semantics, db_span, halves
from packetd.protocols.sqltext import statement_operation

_WRITES = ("INSERT", "UPDATE", "DELETE", "MERGE")  # command tags whose count is rows changed


def _command(q: Message | None, _s: Message | None) -> object:
    # the frontend message (Query, Execute, ...; Skipped/LostRequest are Requests too), or the one-way one
    return q.op if isinstance(q, Request | ClientNotice | ServerNotice) else None


def _span(_q: Message | None, _s: Message | None, rec: Record) -> tuple[str, Attrs]:
    q, _ = halves(rec)
    text = q.get("statement")
    return db_span(rec, "postgresql", statement_operation(text), text, q.get("message"))


def _affected_rows(s: Message) -> int | None:
    if isinstance(s, Response) and s.command in _WRITES:
        return s.rows
    return None


def _rows(s: Message) -> int | None:
    return s.rows if isinstance(s, Response) else None


LABELS: dict[str, tuple[str, LabelGetter]] = {"request.command": ("command", _command)}

SEMANTICS = Semantics(
    labels=LABELS,
    default_labels=(*SERVER, "request.command", *STATUS),
    span=_span,
    affected_rows=_affected_rows,
    rows=_rows,
    rows_metric="postgresql_response_rows",
)

__all__ = ["SEMANTICS"]
