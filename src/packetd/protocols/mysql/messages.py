"""MySQL / MariaDB messages and their record fields.

`size` is bytes on the wire (packet headers included) of every packet that forms the message: a result set
counts its column count, column definitions, rows and terminators. The login never shows its auth data;
COM_CHANGE_USER and auth-switch exchanges are counted, never kept.
"""

from __future__ import annotations

from typing import Any, ClassVar

from packetd._values import value
from packetd.protocols.base import Kind, Message, Role
from packetd.protocols.redact import server_message, statement

COMMANDS: dict[int, str] = {
    0x00: "COM_SLEEP", 0x01: "COM_QUIT", 0x02: "COM_INIT_DB", 0x03: "COM_QUERY", 0x04: "COM_FIELD_LIST",
    0x05: "COM_CREATE_DB", 0x06: "COM_DROP_DB", 0x07: "COM_REFRESH", 0x08: "COM_SHUTDOWN",
    0x09: "COM_STATISTICS", 0x0A: "COM_PROCESS_INFO", 0x0B: "COM_CONNECT", 0x0C: "COM_PROCESS_KILL",
    0x0D: "COM_DEBUG", 0x0E: "COM_PING", 0x0F: "COM_TIME", 0x10: "COM_DELAYED_INSERT",
    0x11: "COM_CHANGE_USER", 0x12: "COM_BINLOG_DUMP", 0x13: "COM_TABLE_DUMP", 0x14: "COM_CONNECT_OUT",
    0x15: "COM_REGISTER_SLAVE", 0x16: "COM_STMT_PREPARE", 0x17: "COM_STMT_EXECUTE",
    0x18: "COM_STMT_SEND_LONG_DATA", 0x19: "COM_STMT_CLOSE", 0x1A: "COM_STMT_RESET", 0x1B: "COM_SET_OPTION",
    0x1C: "COM_STMT_FETCH", 0x1D: "COM_DAEMON", 0x1E: "COM_BINLOG_DUMP_GTID", 0x1F: "COM_RESET_CONNECTION",
    0x20: "COM_CLONE", 0xFA: "COM_STMT_BULK_EXECUTE",  # 0xFA: MariaDB
}  # fmt: skip


@value
class Command(Message):
    """One command (a packet with sequence id 0 from the client)."""

    ROLE: ClassVar[Role] = Role.REQUEST
    command: str  # COM_QUERY, COM_STMT_EXECUTE, ... (COM_0xNN for codes without a name)
    statement: bytes | None  # COM_QUERY / COM_STMT_PREPARE text, or the prepared text of a statement id
    truncated: bool
    statement_id: int | None
    schema: str | None  # COM_INIT_DB
    keep_literals: bool

    def operation(self) -> str:
        return self.command

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"command": self.command, "size": self.size}
        if self.statement is not None:
            out["statement"] = statement(self.statement, self.truncated, self.keep_literals, "mysql")
            if self.truncated:
                out["statement_truncated"] = True
        if self.statement_id is not None:
            out["statement_id"] = self.statement_id
        if self.schema is not None:
            out["schema"] = self.schema
        return out


@value
class OnewayCommand(Command):
    """A command the server does not answer: COM_QUIT, COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA (`oneway`)."""

    ROLE: ClassVar[Role] = Role.ONEWAY


@value
class Result(Message):
    """The server's complete answer to one command."""

    ROLE: ClassVar[Role] = Role.RESPONSE
    kind: str  # "ok", "error", "result_set", "prepare_ok", "eof", "data", "stream"
    affected_rows: int | None = None
    last_insert_id: int | None = None
    status_flags: int | None = None
    warnings: int | None = None
    error_code: int | None = None
    sql_state: str | None = None
    error_message: str | None = None
    columns: int | None = None  # result sets: columns of the first; prepare_ok: result columns
    rows: int | None = None  # result sets: rows, all result sets together
    results: int = 1  # results in the answer: a multi-statement or CALL answers with several
    binary: bool = False  # rows in the binary protocol (prepared statements)
    statement_id: int | None = None  # prepare_ok
    params: int | None = None  # prepare_ok
    local_infile_bytes: int | None = None  # LOCAL INFILE: file bytes the client sent

    def status(self) -> str:
        return str(self.error_code) if self.error_code is not None else "OK"

    def is_error(self) -> bool:
        return self.error_code is not None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "size": self.size}
        if self.error_code is not None:
            out["error_code"] = self.error_code
            out["sql_state"] = self.sql_state
            out["error_message"] = server_message(self.error_message)
        if self.affected_rows is not None:
            out["affected_rows"] = self.affected_rows
            out["last_insert_id"] = self.last_insert_id
        if self.status_flags is not None:
            out["status_flags"] = self.status_flags
        if self.warnings is not None:
            out["warnings"] = self.warnings
        if self.columns is not None:
            out["columns"] = self.columns
        if self.rows is not None:
            out["rows"] = self.rows
        if self.results > 1:
            out["results"] = self.results
        if self.binary:
            out["binary"] = True
        if self.statement_id is not None:
            out["statement_id"] = self.statement_id
            out["params"] = self.params
        if self.local_infile_bytes is not None:
            out["local_infile_bytes"] = self.local_infile_bytes
        return out


@value
class Login(Message):
    """The client's handshake response (and any auth continuation it sent): a `handshake` record."""

    ROLE: ClassVar[Role] = Role.REQUEST
    user: str | None
    database: str | None
    auth_plugin: str | None
    client_name: str | None  # the `_client_name` connection attribute
    compress: bool  # the client asked for the compressed protocol
    capabilities: int

    def operation(self) -> str:
        return "Handshake"

    def record_kind(self) -> str:
        return Kind.HANDSHAKE

    def to_json(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "database": self.database,
            "auth_plugin": self.auth_plugin,
            "client_name": self.client_name,
            "compress": self.compress,
            "capabilities": self.capabilities,
            "size": self.size,
        }


@value
class LoginResult(Message):
    """How the login ended (OK or ERR), with what the server greeting said."""

    ROLE: ClassVar[Role] = Role.RESPONSE
    server_version: str | None
    connection_id: int | None
    auth_plugin: str | None  # the method finally used (after an auth switch)
    compression: str | None  # "zlib" / "zstd" when the compressed protocol was negotiated
    error_code: int | None = None
    sql_state: str | None = None
    error_message: str | None = None

    def status(self) -> str:
        return str(self.error_code) if self.error_code is not None else "OK"

    def is_error(self) -> bool:
        return self.error_code is not None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "server_version": self.server_version,
            "connection_id": self.connection_id,
            "auth_plugin": self.auth_plugin,
            "compression": self.compression,
            "size": self.size,
        }
        if self.error_code is not None:
            out["error_code"] = self.error_code
            out["sql_state"] = self.sql_state
            out["error_message"] = server_message(self.error_message)
        return out


@value
class ServerError(Message):
    """An ERR packet nobody asked for: a refused connection's greeting, an idle timeout (`oneway`)."""

    ROLE: ClassVar[Role] = Role.ONEWAY
    error_code: int
    sql_state: str | None
    error_message: str | None

    def operation(self) -> str:
        return "ERR"

    def status(self) -> str:
        return str(self.error_code)

    def is_error(self) -> bool:
        return True

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "error",
            "size": self.size,
            "error_code": self.error_code,
            "sql_state": self.sql_state,
            "error_message": server_message(self.error_message),
        }
