"""Redis messages and their record fields.

`size` is bytes on the wire, RESP framing included (type bytes, length lines, CRLFs): what the connection
really carried. Argument values are never kept, except the first argument of a command (the key of data
commands) when `capture_keys` is on; commands that carry secrets (AUTH, HELLO, ACL, CONFIG, MIGRATE, ...)
never have it kept, whatever the option says.
"""

from __future__ import annotations

from typing import Any, ClassVar

from packetd._values import value
from packetd.protocols.base import Message, Role
from packetd.protocols.redact import server_message

# RESP type byte → the record's `type` name (RESP2 and RESP3, resp3 spec "Types")
TYPE_NAMES: dict[int, str] = {
    ord("+"): "simple_string",
    ord("-"): "error",
    ord(":"): "integer",
    ord("$"): "bulk_string",
    ord("*"): "array",
    ord("_"): "null",
    ord(","): "double",
    ord("#"): "boolean",
    ord("!"): "blob_error",
    ord("="): "verbatim_string",
    ord("("): "big_number",
    ord("%"): "map",
    ord("~"): "set",
    ord(">"): "push",
}


@value
class Request(Message):
    """One command: an array of bulk strings, or an inline command line."""

    ROLE: ClassVar[Role] = Role.REQUEST
    command: str  # upper-cased, with the subcommand of container commands ("CLIENT SETNAME")
    args: int  # arguments after the command name (a subcommand counts as one)
    inline: bool
    key: str | None = None  # first argument, only with capture_keys

    def operation(self) -> str:
        return self.command

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"command": self.command, "args": self.args, "size": self.size}
        if self.inline:
            out["inline"] = True
        if self.key is not None:
            out["key"] = self.key
        return out


@value
class UnrepliedRequest(Request):
    """A command the server will not answer (`CLIENT REPLY OFF` / `SKIP` in force): a `oneway` record."""

    ROLE: ClassVar[Role] = Role.ONEWAY


@value
class Response(Message):
    """The reply to one command (several RESP values for the (P|S)(UN)SUBSCRIBE family: one per channel)."""

    ROLE: ClassVar[Role] = Role.RESPONSE
    type: str  # TYPE_NAMES value of the top-level reply
    elements: int | None  # top-level elements of an aggregate (a map counts its pairs); None otherwise
    error_prefix: str | None = None  # "ERR", "WRONGTYPE", ... for error replies
    error_message: str | None = None  # the rest of the error line, capped
    replies: int = 1  # RESP values that form this reply (subscription confirmations: one per channel)

    def status(self) -> str:
        return self.error_prefix if self.error_prefix is not None else "OK"

    def is_error(self) -> bool:
        return self.error_prefix is not None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "size": self.size}
        if self.elements is not None:
            out["elements"] = self.elements
        if self.error_prefix is not None:
            out["error_prefix"] = self.error_prefix
            out["error_message"] = server_message(self.error_message)
        if self.replies != 1:
            out["replies"] = self.replies
        return out


@value
class Push(Message):
    """A message the server sends unasked: pub/sub deliveries, RESP3 pushes, MONITOR lines (`oneway`)."""

    ROLE: ClassVar[Role] = Role.ONEWAY
    type: str
    kind: str  # "message", "pmessage", "smessage", "invalidate", "monitor", ... (lower-case, as sent)
    elements: int | None

    def operation(self) -> str:
        return self.kind

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "kind": self.kind, "size": self.size}
        if self.elements is not None:
            out["elements"] = self.elements
        return out
