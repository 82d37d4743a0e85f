"""What a record says in one short phrase, for a person: the pieces protocols share.

Each protocol's package has a `display.py` whose `DISPLAY` tells `watch`'s text line what happened
(`what`: `GET /index.html`, the SQL statement, `google.com. A → 2 answers`) and how the status reads
(`status`: `1146 ER_NO_SUCH_TABLE`). Both are functions of the record's JSON object (Roundtrip.to_json()),
never of the messages: that object is the redacted view, the one place where secrets and literals were
taken out, so nothing a record would not show reaches the terminal either.

Functions here are pure and small; they never raise on a record of the contract's shape (fields may be
null or absent: a response-only record, a connection joined mid-stream).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Record = dict[str, Any]
Describe = Callable[[Record], str]


def plain_status(rec: Record) -> str:
    """The record's status as it is (names already: NXDOMAIN, WRONGTYPE, NOT_FOUND); without a response the
    record's kind (`unanswered`); `?` when a response came whose status could not be read (joined late)."""
    status = rec.get("status")
    if status is None:
        return str(rec.get("kind", ""))
    return str(status) or "?"


def plain_what(rec: Record) -> str:
    return str(rec.get("operation") or "")


@dataclass(frozen=True, slots=True)  # frozen, hence hashable: a default of ProtocolSpec's `display`
class Display:
    """How one protocol's records read in the text line."""

    what: Describe = plain_what
    status: Describe = plain_status


DEFAULT = Display()


def request(rec: Record) -> Record:
    """The request's fields, else the response's (a one-way message from the server), else {}."""
    return rec.get("request") or rec.get("response") or {}


def response(rec: Record) -> Record:
    return rec.get("response") or {}


def join(*parts: object) -> str:
    """The non-empty parts, space separated."""
    return " ".join(str(p) for p in parts if p is not None and p != "")


def plural(n: int, word: str) -> str:
    """`1 answer`, `2 answers`."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def other_host(host: object, rec: Record) -> str:
    """The Host/:authority a client asked for, or "" when it only repeats the server's address."""
    if not isinstance(host, str) or not host:
        return ""
    server = rec.get("server") or {}
    ip, port = str(server.get("ip", "")), server.get("port")
    if host in (ip, f"{ip}:{port}", f"[{ip}]", f"[{ip}]:{port}"):
        return ""
    return host


def named(code: object, names: dict[Any, str]) -> str:
    """`code name` when the table knows the code, else the code alone."""
    name = names.get(code)
    return f"{code} {name}" if name else str(code)
