"""HTTP/2 and gRPC decoder options (`--decoder http2.KEY=VALUE` or `grpc.KEY=VALUE`; `decoder.grpc.*`).

Each field's `doc` metadata is its documentation: the README's decoder options table is generated from it
(scripts/options_table.py).
"""

from __future__ import annotations

from dataclasses import field

from packetd._values import value
from packetd.protocols.http1.messages import DEFAULT_QUERY_REDACTED, DEFAULT_REDACTED


@value
class Http2Options:
    """Decoder options (`--decoder http2.redact=...`, `decoder.grpc.*` in the agent config)."""

    redact: frozenset[str] = field(
        default=DEFAULT_REDACTED,
        metadata={
            "doc": "header and metadata names (or `*word*` patterns) whose values are `[REDACTED]`, as in "
            "HTTP/1; fields the sender marked never-indexed are redacted whatever their name",
            "default": "see Redaction",
        },
    )
    redact_query: frozenset[str] = field(
        default=DEFAULT_QUERY_REDACTED,
        metadata={
            "doc": "`:path` query parameters whose values are `[REDACTED]`",
            "default": "see Redaction",
        },
    )


__all__ = ["Http2Options"]
