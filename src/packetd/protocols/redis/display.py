"""How a Redis record reads in `watch`'s text line (see protocols/display.py): the command and, when
`capture_keys` kept it, the key; a push's kind and channel count. The status is the error prefix itself
(`WRONGTYPE`, `NOAUTH`): Redis has no numbers to name."""

from __future__ import annotations

from packetd.protocols.display import Display, Record, join, request


def what(rec: Record) -> str:
    req = request(rec)
    return join(rec.get("operation"), req.get("key"))


DISPLAY = Display(what=what)
