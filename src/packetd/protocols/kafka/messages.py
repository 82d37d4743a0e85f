"""Kafka requests and responses and their record fields."""

from __future__ import annotations

from typing import Any, ClassVar

from packetd._values import value
from packetd.protocols.base import Kind, Message, Role, TraceContext
from packetd.protocols.kafka.schema_data import API_NAMES, ERROR_NAMES

SASL_APIS = frozenset({17, 36})  # SaslHandshake, SaslAuthenticate: the connection's set-up (handshake)
MAX_ERRORS_SHOWN = 16  # non-zero error codes listed in a record (all are counted in `error_count`)


def api_name(key: int) -> str:
    name = API_NAMES.get(key)
    return name if name is not None else f"ApiKey{key}"


def error_name(code: int) -> str:
    name = ERROR_NAMES.get(code)
    return name if name is not None else str(code)


@value
class TopicSummary:
    """A topic a Produce or Fetch touched: partitions, records and record bytes."""

    name: str | None
    topic_id: str | None  # Fetch >= 13 / Produce >= 13: the topic's UUID (hex), resolved to `name` when known
    partitions: tuple[int, ...]
    records: int
    bytes: int

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "partitions": list(self.partitions)}
        if self.topic_id is not None:
            out["topic_id"] = self.topic_id
        if self.records or self.bytes:
            out["records"] = self.records
            out["bytes"] = self.bytes
        return out


@value
class KafkaRequest(Message):
    ROLE: ClassVar[Role] = Role.REQUEST
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    group_id: str | None
    acks: int | None  # Produce
    topics: tuple[TopicSummary, ...]
    trace: TraceContext | None
    parsed: bool  # False: the body was not read whole (no schema, or over kafka.max_parse_bytes)
    pair_key: int

    def operation(self) -> str:
        return api_name(self.api_key)

    def record_kind(self) -> str:
        return Kind.HANDSHAKE if self.api_key in SASL_APIS else Kind.ROUNDTRIP

    def trace_context(self) -> TraceContext | None:
        return self.trace

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "api": api_name(self.api_key),
            "api_key": self.api_key,
            "api_version": self.api_version,
            "correlation_id": self.correlation_id,
            "client_id": self.client_id,
            "size": self.size,
        }
        if self.group_id is not None:
            out["group_id"] = self.group_id
        if self.acks is not None:
            out["acks"] = self.acks
        if self.topics:
            out["topics"] = [t.to_json() for t in self.topics]
        if not self.parsed:
            out["parsed"] = False
        return out


@value
class KafkaOneway(KafkaRequest):
    """A request that expects no response (Produce with acks=0)."""

    ROLE: ClassVar[Role] = Role.ONEWAY


@value
class KafkaResponse(Message):
    ROLE: ClassVar[Role] = Role.RESPONSE
    api_key: int  # -1 when the request was not seen (joined mid-stream)
    correlation_id: int
    error_code: int | None  # the top-level ErrorCode when the API's schema has one
    errors: tuple[tuple[str, int], ...]  # non-zero error codes: (field path, code), top level first
    error_count: int
    throttle_time_ms: int | None
    topics: tuple[TopicSummary, ...]  # Fetch: what came back
    parsed: bool
    pair_key: int

    def status(self) -> str:
        return error_name(self.errors[0][1]) if self.errors else "OK"

    def is_error(self) -> bool:
        return bool(self.errors)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "correlation_id": self.correlation_id,
            "error_code": self.error_code,
            "size": self.size,
        }
        if self.errors:
            out["errors"] = [
                {"field": path, "code": code, "name": error_name(code)}
                for path, code in self.errors[:MAX_ERRORS_SHOWN]
            ]
            out["error_count"] = self.error_count
        if self.throttle_time_ms:
            out["throttle_time_ms"] = self.throttle_time_ms
        if self.topics:
            out["topics"] = [t.to_json() for t in self.topics]
        if not self.parsed:
            out["parsed"] = False
        return out
