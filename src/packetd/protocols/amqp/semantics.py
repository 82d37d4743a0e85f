"""What AMQP 0-9-1 exchanges mean to metrics and traces (protocols/semantics.py says how this is used).

A method without a queue (or exchange) argument has `queue_name` "" (the Go implementation crashed,
reference §18.21).
"""

from __future__ import annotations

from packetd.protocols.amqp.messages import AmqpMethod
from packetd.protocols.base import Message
from packetd.protocols.semantics import (
    SERVER,
    STATUS,
    Attrs,
    LabelGetter,
    Record,
    Semantics,
    error_type,
    halves,
    operation_of,
    put,
)

# semconv messaging.operation.type by operation (only where the operation is plainly one of them)
OPERATION_TYPE = {
    "Basic.Publish": "send",
    "Basic.Get": "receive",
    "Basic.Deliver": "process",
    "Basic.Ack": "settle",
    "Basic.Nack": "settle",
    "Basic.Reject": "settle",
}


def _class(q: Message | None, s: Message | None) -> object:
    return operation_of(q, s).split(".", 1)[0]


def _method(q: Message | None, s: Message | None) -> object:
    op = operation_of(q, s)
    return op.split(".", 1)[1] if "." in op else op


def _arg(name: str) -> LabelGetter:
    def get(q: Message | None, s: Message | None) -> object:
        msg = q if q is not None else s
        return msg.args.get(name, "") if isinstance(msg, AmqpMethod) and msg.args else ""

    return get


def _span(_q: Message | None, _s: Message | None, rec: Record) -> tuple[str, Attrs]:
    q, s = halves(rec)
    m = q or s
    op: str = rec["operation"]
    a: Attrs = {"messaging.system": "rabbitmq", "messaging.operation.name": op}
    put(a, "messaging.operation.type", OPERATION_TYPE.get(op))
    exchange, queue = m.get("exchange"), m.get("queue")
    put(a, "messaging.destination.name", exchange or queue)
    put(a, "messaging.rabbitmq.destination.routing_key", m.get("routing_key"))
    put(a, "messaging.message.body.size", m.get("body_size"))
    put(a, "messaging.destination.subscription.name", queue)
    error_type(a, rec)
    return op, a


LABELS: dict[str, tuple[str, LabelGetter]] = {
    "request.class": ("class", _class),
    "request.method": ("method", _method),
    "request.queue_name": ("queue_name", _arg("queue")),
    "request.exchange_name": ("exchange_name", _arg("exchange")),
}

SEMANTICS = Semantics(
    labels=LABELS, default_labels=(*SERVER, "request.class", "request.method", *STATUS), span=_span
)

__all__ = ["OPERATION_TYPE", "SEMANTICS"]
