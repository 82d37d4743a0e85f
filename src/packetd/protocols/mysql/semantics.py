"""What MySQL exchanges mean to metrics and traces (protocols/semantics.py says how this is used).

semconv `db.operation.name` is what the statement does (SELECT), not the wire command (COM_QUERY); commands
that are operations themselves (COM_PING) go by their name; an execute of a statement prepared before the
capture has no known operation and leaves it unset.
"""

from __future__ import annotations

from packetd.protocols.base import Message
from packetd.protocols.mysql.messages import Command, Result
from packetd.protocols.semantics import SERVER, STATUS, Attrs, LabelGetter, Record, Semantics, db_span, halves
from packetd.protocols.sqltext import statement_operation

# commands whose operation is the statement's, not their own name
_STATEMENT_COMMANDS = ("QUERY", "STMT_PREPARE", "STMT_EXECUTE")


def _command(q: Message | None, _s: Message | None) -> object:
    return q.command if isinstance(q, Command) else None  # OnewayCommand is a Command too


def _span(_q: Message | None, _s: Message | None, rec: Record) -> tuple[str, Attrs]:
    q, _ = halves(rec)
    text = q.get("statement")
    op = statement_operation(text)
    operation: str = rec["operation"]
    if op is None and operation.startswith("COM_"):
        cmd = operation[4:]
        op = None if cmd in _STATEMENT_COMMANDS else cmd
    return db_span(rec, "mysql", op, text, q.get("command"))


def _affected_rows(s: Message) -> int | None:
    return s.affected_rows if isinstance(s, Result) and isinstance(s.affected_rows, int) else None


def _rows(s: Message) -> int | None:
    return s.rows if isinstance(s, Result) else None


LABELS: dict[str, tuple[str, LabelGetter]] = {"request.command": ("command", _command)}

SEMANTICS = Semantics(
    labels=LABELS,
    default_labels=(*SERVER, "request.command", *STATUS),
    span=_span,
    affected_rows=_affected_rows,
    rows=_rows,
    rows_metric="mysql_response_resultset_rows",
)

__all__ = ["SEMANTICS"]
