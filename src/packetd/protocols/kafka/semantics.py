"""What Kafka exchanges mean to metrics and traces (protocols/semantics.py says how this is used)."""

from __future__ import annotations

from packetd.protocols.base import Message
from packetd.protocols.kafka.messages import KafkaRequest
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
OPERATION_TYPE = {"Produce": "send", "Fetch": "receive", "OffsetCommit": "settle"}


def _version(q: Message | None, _s: Message | None) -> object:
    return q.api_version if isinstance(q, KafkaRequest) else None  # KafkaOneway is a KafkaRequest too


def _client_id(q: Message | None, _s: Message | None) -> object:
    return q.client_id if isinstance(q, KafkaRequest) else None


def _group_id(q: Message | None, _s: Message | None) -> object:
    return q.group_id if isinstance(q, KafkaRequest) else None


def _span(_q: Message | None, _s: Message | None, rec: Record) -> tuple[str, Attrs]:
    q, _ = halves(rec)
    op: str = rec["operation"]
    a: Attrs = {"messaging.system": "kafka", "messaging.operation.name": op}
    put(a, "messaging.operation.type", OPERATION_TYPE.get(op))
    put(a, "messaging.client.id", q.get("client_id"))
    put(a, "messaging.consumer.group.name", q.get("group_id"))
    names = [t["name"] for t in q.get("topics") or () if isinstance(t, dict) and t.get("name")]
    if len(names) == 1:
        a["messaging.destination.name"] = names[0]
    elif names:
        a["packetd.kafka.topics"] = names
    put(a, "packetd.kafka.api_version", q.get("api_version"))
    error_type(a, rec)
    return op, a


LABELS: dict[str, tuple[str, LabelGetter]] = {
    "request.api": ("api", operation_of),
    "request.version": ("version", _version),
    "request.client_id": ("client_id", _client_id),
    "request.group_id": ("group_id", _group_id),
}

SEMANTICS = Semantics(labels=LABELS, default_labels=(*SERVER, "request.api", *STATUS), span=_span)

__all__ = ["OPERATION_TYPE", "SEMANTICS"]
