"""MongoDB wire-protocol messages and their record fields."""

from __future__ import annotations

from typing import Any, ClassVar

from packetd._values import value
from packetd.protocols.base import Kind, Message, Role
from packetd.protocols.redact import server_message

OPCODES = {
    1: "OP_REPLY",
    2001: "OP_UPDATE",
    2002: "OP_INSERT",
    2003: "OP_RESERVED",
    2004: "OP_QUERY",
    2005: "OP_GET_MORE",
    2006: "OP_DELETE",
    2007: "OP_KILL_CURSORS",
    2012: "OP_COMPRESSED",
    2013: "OP_MSG",
}
COMPRESSORS = {0: "noop", 1: "snappy", 2: "zlib", 3: "zstd"}
# the connection's set-up exchange (record kind `handshake`): the first hello/isMaster, authentication
HELLO_COMMANDS = frozenset({"hello", "ismaster", "isMaster"})
AUTH_COMMANDS = frozenset({"saslStart", "saslContinue", "authenticate", "getnonce"})


@value
class MongoRequest(Message):
    """A request (OP_MSG, OP_QUERY, OP_GET_MORE) or a one-way write (moreToCome, legacy OP_INSERT/...)."""

    ROLE: ClassVar[Role] = Role.REQUEST
    opcode: int
    request_id: int
    command: str
    database: str | None
    collection: str | None
    query: str | None  # the command summarised, values replaced by '?' unless mongodb.raw_query
    msg_flags: int  # OP_MSG flag bits (checksumPresent 1, moreToCome 2, exhaustAllowed 65536)
    documents: int  # documents in OP_MSG document sequences (kind 1) or legacy OP_INSERT
    compressor: int  # -1: not compressed
    parsed: (
        bool  # False when the command document was over mongodb.max_parse_bytes (fields from its start only)
    )
    handshake: bool  # the connection's first hello/isMaster, or an authentication command
    pair_key: int

    def operation(self) -> str:
        return self.command

    def record_kind(self) -> str:
        return Kind.HANDSHAKE if self.handshake else Kind.ROUNDTRIP

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "op": OPCODES.get(self.opcode, str(self.opcode)),
            "request_id": self.request_id,
            "command": self.command,
            "database": self.database,
            "collection": self.collection,
            "query": self.query,
            "size": self.size,
        }
        if self.opcode == 2013:
            out["flags"] = _msg_flags(self.msg_flags)
        if self.documents:
            out["documents"] = self.documents
        if self.compressor >= 0:
            out["compressor"] = COMPRESSORS.get(self.compressor, str(self.compressor))
        if not self.parsed:
            out["parsed"] = False
        return out


@value
class MongoOneway(MongoRequest):
    ROLE: ClassVar[Role] = Role.ONEWAY


@value
class MongoReply(Message):
    """A reply (OP_MSG from the server or OP_REPLY) with the fields of its reply document."""

    ROLE: ClassVar[Role] = Role.RESPONSE
    opcode: int
    request_id: int
    response_to: int
    ok: float | None
    code: int | None
    code_name: str | None
    errmsg: str | None
    n: int | None
    n_modified: int | None
    batch_size: int | None  # documents in cursor.firstBatch / nextBatch, or OP_REPLY numberReturned
    cursor_id: int | None
    write_errors: int
    msg_flags: int
    compressor: int
    parsed: bool
    command: str  # the command this continues, for exhaust replies recorded as oneway (else "")
    pair_key: int

    def operation(self) -> str:
        return self.command

    def status(self) -> str:
        if self.ok is not None and self.ok != 1:
            return self.code_name or (str(self.code) if self.code is not None else "Error")
        if self.write_errors:
            return self.code_name or (str(self.code) if self.code is not None else "WriteError")
        return "OK"

    def is_error(self) -> bool:
        return (self.ok is not None and self.ok != 1) or self.write_errors > 0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "op": OPCODES.get(self.opcode, str(self.opcode)),
            "request_id": self.request_id,
            "response_to": self.response_to,
            "ok": self.ok,
            "code": self.code,
            "code_name": self.code_name,
            "errmsg": server_message(self.errmsg),
            "n": self.n,
            "n_modified": self.n_modified,
            "batch_size": self.batch_size,
            "cursor_id": self.cursor_id,
            "write_errors": self.write_errors,
            "size": self.size,
        }
        if self.opcode == 2013:
            out["flags"] = _msg_flags(self.msg_flags)
        if self.compressor >= 0:
            out["compressor"] = COMPRESSORS.get(self.compressor, str(self.compressor))
        if not self.parsed:
            out["parsed"] = False
        return out


@value
class MongoPush(MongoReply):
    """A reply of an exhaust stream after the first (answers the previous reply, not a request): oneway."""

    ROLE: ClassVar[Role] = Role.ONEWAY


def _msg_flags(bits: int) -> list[str]:
    out = []
    if bits & 1:
        out.append("checksumPresent")
    if bits & 2:
        out.append("moreToCome")
    if bits & 0x10000:
        out.append("exhaustAllowed")
    return out
