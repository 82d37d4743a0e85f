"""Kafka decoder options (`--decoder kafka.KEY=VALUE`, `decoder.kafka.*` in the agent config).

Each field's `doc` metadata is its documentation: the README's decoder options table is generated from it
(scripts/options_table.py).
"""

from __future__ import annotations

from dataclasses import field

from packetd._values import value


@value
class KafkaOptions:
    """Decoder options (`--decoder kafka.KEY=VALUE`)."""

    max_parse_bytes: int = field(
        default=1024 * 1024,
        metadata={
            "doc": "bytes of a Kafka message kept for parsing; the rest is counted",
            "default": "1 MiB",
        },
    )


__all__ = ["KafkaOptions"]
