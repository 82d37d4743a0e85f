"""How a MySQL record reads in `watch`'s text line (see protocols/display.py): the statement as the record
has it (literals already `?`), prefixed by the command when that is not a plain COM_QUERY; the login's user
and database; the error number with its ER_ name (status.py, generated from MariaDB's errmsg-utf8.txt)."""

from __future__ import annotations

from packetd.protocols.display import Display, Record, join, named, plain_status, request
from packetd.protocols.mysql.status import NAMES


def what(rec: Record) -> str:
    req = request(rec)
    op = str(rec.get("operation") or "")
    statement = req.get("statement")
    if statement:
        # COM_STMT_EXECUTE → EXECUTE: the statement says the rest
        return str(statement) if op == "COM_QUERY" else join(op.removeprefix("COM_STMT_"), statement)
    if req.get("user"):  # the handshake
        db = req.get("database")
        return join(op, f"{req['user']}@{db}" if db else req["user"])
    return op


def status(rec: Record) -> str:
    code = str(rec.get("status") or "")
    return named(int(code), NAMES) if code.isdigit() else plain_status(rec)


DISPLAY = Display(what=what, status=status)
