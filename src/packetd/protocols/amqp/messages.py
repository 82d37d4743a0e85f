"""AMQP 0-9-1 messages: one method (with its content, for Publish/Deliver/Return/Get-Ok), by role."""

from __future__ import annotations

from typing import Any, ClassVar

from packetd._values import value
from packetd.protocols.amqp.spec import HANDSHAKE, NAMES, REPLY_CODES
from packetd.protocols.base import Kind, Message, Role, TraceContext

# method arguments a record shows (others, such as declare flags and tables, stay out of the record)
SHOWN = (
    "exchange", "routing_key", "queue", "consumer_tag", "delivery_tag", "multiple", "requeue", "redelivered",
    "mandatory", "type", "source", "destination", "message_count", "consumer_count", "passive", "durable",
    "exclusive", "auto_delete", "no_ack", "no_wait", "prefetch_count", "prefetch_size", "global",
    "virtual_host", "channel_max", "frame_max", "heartbeat", "mechanisms", "mechanism", "locale", "reason",
    "active", "class_id", "method_id",
)  # fmt: skip
_SHOWN = frozenset(SHOWN)


@value
class Content:
    """A message's content: body size from the content header, the properties a record shows."""

    body_size: int
    content_type: str | None
    delivery_mode: int | None
    message_id: str | None
    correlation_id: str | None


@value
class AmqpMethod(Message):
    """One method frame (and its content). `Request`, `Response` and `Oneway` differ only in role."""

    channel: int
    method: tuple[int, int]  # (class id, method id)
    args: dict[str, Any]
    content: Content | None
    trace: TraceContext | None
    pair_key: object
    reply_code: int = 0  # Connection.Close / Channel.Close / Basic.Return
    reply_text: str = ""

    @property
    def name(self) -> str:
        return NAMES[self.method]

    def operation(self) -> str:
        return NAMES[self.method]

    def trace_context(self) -> TraceContext | None:
        return self.trace

    def record_kind(self) -> str:
        return Kind.HANDSHAKE if self.method in HANDSHAKE else Kind.ROUNDTRIP

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"channel": self.channel, "method": NAMES[self.method]}
        for key, v in self.args.items():
            if key in _SHOWN:
                out[key] = v
        if self.reply_code:
            out["reply_code"] = self.reply_code
            out["reply_name"] = REPLY_CODES.get(self.reply_code, str(self.reply_code))
            out["reply_text"] = self.reply_text
        c = self.content
        if c is not None:
            out["body_size"] = c.body_size
            out["content_type"] = c.content_type
            if c.delivery_mode is not None:
                out["delivery_mode"] = c.delivery_mode
            if c.message_id is not None:
                out["message_id"] = c.message_id
            if c.correlation_id is not None:
                out["correlation_id"] = c.correlation_id
        out["size"] = self.size
        return out


@value
class Request(AmqpMethod):
    ROLE: ClassVar[Role] = Role.REQUEST


@value
class Response(AmqpMethod):
    """A reply: an `-Ok` method, Get-Empty, a Close answering a request, a broker Ack/Nack of a publish."""

    ROLE: ClassVar[Role] = Role.RESPONSE

    def status(self) -> str:
        if self.reply_code:
            return str(self.reply_code)
        if self.method == (60, 120):
            return "NACK"  # the broker could not take the message (publisher confirms)
        return "OK"

    def is_error(self) -> bool:
        return self.reply_code >= 300 or self.method == (60, 120)


@value
class Oneway(AmqpMethod):
    ROLE: ClassVar[Role] = Role.ONEWAY

    def status(self) -> str:
        return str(self.reply_code) if self.reply_code else "OK"

    def is_error(self) -> bool:
        return self.reply_code >= 300
