"""PostgreSQL messages and their record fields.

A request is what the client asked, as the server saw it: a statement of a simple Query, an Execute of the
extended protocol (with the Parse/Bind/Describe messages that prepared it folded in: their bytes count in
`size`, `messages` says how many there were), a cycle without Execute (named after its first message:
Parse, Describe, Close, Sync), a FunctionCall, or the connection start-up (a `handshake` record). Secrets
never appear: passwords, SASL exchanges and the cancel key are counted, never kept.
"""

from __future__ import annotations

from typing import Any, ClassVar

from packetd._values import value
from packetd.protocols.base import Kind, Message, Role
from packetd.protocols.redact import server_message, statement


@value
class Request(Message):
    """One operation the server will answer (see module docstring)."""

    ROLE: ClassVar[Role] = Role.REQUEST
    op: str  # "Query", "Execute", "Parse", "Bind", "Describe", "Close", "Sync", "FunctionCall"
    statement: bytes | None  # the SQL text as sent, capped (None: not known, e.g. prepared before capture)
    truncated: bool  # the statement was longer than the cap
    statement_name: str | None  # the prepared statement ("" is the unnamed one)
    portal: str | None
    messages: int  # frontend messages folded into this request
    copy_messages: int  # CopyData messages sent by the client (COPY ... FROM STDIN)
    copy_bytes: int
    keep_literals: bool

    def operation(self) -> str:
        return self.op

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "message": self.op,
            "statement": (
                statement(self.statement, self.truncated, self.keep_literals, "postgresql")
                if self.statement is not None
                else None
            ),
            "size": self.size,
            "messages": self.messages,
        }
        if self.truncated:
            out["statement_truncated"] = True
        if self.statement_name:
            out["statement_name"] = self.statement_name
        if self.portal:
            out["portal"] = self.portal
        if self.copy_messages:
            out["copy"] = {"messages": self.copy_messages, "bytes": self.copy_bytes}
        return out


@value
class SkippedRequest(Request):
    """An Execute the server discarded after an earlier error in its cycle: an `unanswered` record."""

    ROLE: ClassVar[Role] = Role.UNANSWERED


@value
class LostRequest(Request):
    """A request that was waiting for its answer when framing was lost (a reset): no later answer can be
    paired with it, so it is an `unanswered` record at once."""

    ROLE: ClassVar[Role] = Role.UNANSWERED


@value
class Response(Message):
    """The result of one request: a command tag, an error, a suspended portal, or the cycle's end."""

    ROLE: ClassVar[Role] = Role.RESPONSE
    tag: str | None  # CommandComplete's tag as sent ("INSERT 0 5", "CREATE TABLE")
    command: str | None  # the tag without its counts ("INSERT")
    rows: int | None  # the tag's row count ("SELECT 3": 3); None when the tag has none
    data_rows: int  # DataRow messages received
    severity: str | None = None  # ErrorResponse: non-localised severity (ERROR, FATAL, PANIC)
    sqlstate: str | None = None
    error_message: str | None = None  # capped
    suspended: bool = False  # PortalSuspended: Execute's row limit reached
    empty: bool = False  # EmptyQueryResponse
    copy_direction: str | None = None  # "in" / "out"
    copy_messages: int = 0  # CopyData messages the server sent (COPY ... TO STDOUT)
    copy_bytes: int = 0

    def status(self) -> str:
        return self.sqlstate if self.sqlstate is not None else "OK"

    def is_error(self) -> bool:
        return self.sqlstate is not None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tag": self.tag,
            "command": self.command,
            "rows": self.rows,
            "data_rows": self.data_rows,
            "size": self.size,
        }
        if self.sqlstate is not None:
            out["error"] = {
                "severity": self.severity,
                "sqlstate": self.sqlstate,
                "message": server_message(self.error_message),
            }
        if self.suspended:
            out["suspended"] = True
        if self.empty:
            out["empty_query"] = True
        if self.copy_direction is not None:
            out["copy"] = {
                "direction": self.copy_direction,
                "messages": self.copy_messages,
                "bytes": self.copy_bytes,
            }
        return out


@value
class Startup(Message):
    """The start-up of a connection: SSL/GSS negotiation, StartupMessage and authentication."""

    ROLE: ClassVar[Role] = Role.REQUEST
    message: str  # "StartupMessage", or the SSLRequest / GSSENCRequest that was all the client sent
    user: str | None
    database: str | None
    application_name: str | None
    protocol: str  # "3.0"
    ssl_request: bool  # the client asked for TLS first (and was refused: else nothing is decoded)
    gssenc_request: bool

    def operation(self) -> str:
        return self.message

    def record_kind(self) -> str:
        return Kind.HANDSHAKE

    def to_json(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "user": self.user,
            "database": self.database,
            "application_name": self.application_name,
            "protocol": self.protocol,
            "ssl_request": self.ssl_request,
            "gssenc_request": self.gssenc_request,
            "size": self.size,
        }


@value
class StartupResult(Message):
    """How the start-up ended: ReadyForQuery after authentication, or an ErrorResponse."""

    ROLE: ClassVar[Role] = Role.RESPONSE
    auth: str | None  # "trust", "password", "md5", "SCRAM-SHA-256", "gss", ...
    server_version: str | None
    backend_pid: int | None
    severity: str | None = None
    sqlstate: str | None = None
    error_message: str | None = None
    encryption: str | None = None  # the answer to an SSLRequest / GSSENCRequest ("N": refused)

    def status(self) -> str:
        return self.sqlstate if self.sqlstate is not None else "OK"

    def is_error(self) -> bool:
        return self.sqlstate is not None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "auth": self.auth,
            "server_version": self.server_version,
            "backend_pid": self.backend_pid,
            "encryption_answer": self.encryption,
            "size": self.size,
        }
        if self.sqlstate is not None:
            out["error"] = {
                "severity": self.severity,
                "sqlstate": self.sqlstate,
                "message": server_message(self.error_message),
            }
        return out


@value
class ClientNotice(Message):
    """A client message that expects no answer: CancelRequest (its own connection), Terminate (`oneway`)."""

    ROLE: ClassVar[Role] = Role.ONEWAY
    op: str
    backend_pid: int | None = None  # CancelRequest: the backend to cancel (the secret key is never kept)

    def operation(self) -> str:
        return self.op

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.op, "size": self.size}
        if self.backend_pid is not None:
            out["backend_pid"] = self.backend_pid
        return out


@value
class ServerNotice(Message):
    """A server message nobody asked for: NoticeResponse, NotificationResponse, or an ErrorResponse with
    no request pending (administrator shutdown, idle timeout) (`oneway`)."""

    ROLE: ClassVar[Role] = Role.ONEWAY
    op: str  # "NoticeResponse", "NotificationResponse", "ErrorResponse"
    severity: str | None = None
    sqlstate: str | None = None
    message: str | None = None  # notice text (capped); not kept for notifications
    channel: str | None = None  # NotificationResponse
    backend_pid: int | None = None  # NotificationResponse: the notifying backend

    def operation(self) -> str:
        return self.op

    def status(self) -> str:
        return self.sqlstate if self.op == "ErrorResponse" and self.sqlstate is not None else "OK"

    def is_error(self) -> bool:
        return self.op == "ErrorResponse"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.op, "size": self.size}
        if self.op == "NotificationResponse":
            out["channel"] = self.channel
            out["backend_pid"] = self.backend_pid
        else:
            out["severity"] = self.severity
            out["sqlstate"] = self.sqlstate
            out["text"] = self.message
        return out
