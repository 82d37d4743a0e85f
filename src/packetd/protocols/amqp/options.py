"""AMQP decoder options (`--decoder amqp.KEY=VALUE`, `decoder.amqp.*` in the agent config).

Each field's `doc` metadata is its documentation: the README's decoder options table is generated from it
(scripts/options_table.py).
"""

from __future__ import annotations

from dataclasses import field

from packetd._values import value


@value
class AmqpOptions:
    """Decoder options (`--decoder amqp.KEY=VALUE`)."""

    traceparent: bool = field(
        default=True,
        metadata={"doc": "read `traceparent`/`tracestate` from the message headers table"},
    )


__all__ = ["AmqpOptions"]
