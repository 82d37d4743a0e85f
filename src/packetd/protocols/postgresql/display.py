"""How a PostgreSQL record reads in `watch`'s text line (see protocols/display.py): the statement as the
record has it (literals already `?`), prefixed by the message when that is not a simple Query; the
startup's user and database; a notice's text; the SQLSTATE with its condition name (status.py, generated
from PostgreSQL's errcodes.txt)."""

from __future__ import annotations

from packetd.protocols.display import Display, Record, join, named, plain_status, request
from packetd.protocols.postgresql.status import NAMES


def what(rec: Record) -> str:
    req = request(rec)
    op = str(rec.get("operation") or "")
    statement = req.get("statement")
    if statement:
        return str(statement) if op == "Query" else join(op, statement)
    if req.get("user"):  # StartupMessage
        db = req.get("database")
        return join(op, f"{req['user']}@{db}" if db else req["user"])
    return join(op, req.get("text") or req.get("channel"))


def status(rec: Record) -> str:
    code = rec.get("status")
    return named(code, NAMES) if code in NAMES and code != "00000" else plain_status(rec)


DISPLAY = Display(what=what, status=status)
