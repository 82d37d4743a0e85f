"""How a DNS record reads in `watch`'s text line (see protocols/display.py): the query name and type, and
with an answer, how many records it held. The status is already the RCODE's name (`NXDOMAIN`)."""

from __future__ import annotations

from packetd.protocols.display import Display, Record, join, plural, request, response


def what(rec: Record) -> str:
    questions = request(rec).get("questions") or ()
    first = questions[0] if questions and isinstance(questions[0], dict) else {}
    resp = response(rec)
    answers = ""
    if resp:
        n = (resp.get("counts") or {}).get("answers", len(resp.get("answers") or ()))
        answers = f"→ {plural(int(n), 'answer')}"
    return join(first.get("name"), first.get("type") or rec.get("operation"), answers)


DISPLAY = Display(what=what)
