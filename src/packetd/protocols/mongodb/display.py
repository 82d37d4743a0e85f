"""How a MongoDB record reads in `watch`'s text line (see protocols/display.py): the command and the
`database.collection` it ran on. The status is already the server's codeName (`DuplicateKey`)."""

from __future__ import annotations

from packetd.protocols.display import Display, Record, join, request


def what(rec: Record) -> str:
    req = request(rec)
    db, coll = req.get("database"), req.get("collection")
    where = f"{db}.{coll}" if db and coll else (coll or db or "")
    return join(rec.get("operation"), where)


DISPLAY = Display(what=what)
