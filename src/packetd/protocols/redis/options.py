"""Redis decoder options (`--decoder redis.KEY=VALUE`, `decoder.redis.*` in the agent config).

Each field's `doc` metadata is its documentation: the README's decoder options table is generated from it
(scripts/options_table.py).
"""

from __future__ import annotations

from dataclasses import field

from packetd._values import value


@value
class RedisOptions:
    """Decoder options (`--decoder redis.KEY=VALUE`)."""

    capture_keys: bool = field(
        default=False,
        metadata={
            "doc": "keep the first argument of commands (the key of data commands), capped; never for AUTH, HELLO, ACL, CONFIG, MIGRATE, CLUSTER, SENTINEL, MODULE"
        },
    )


__all__ = ["RedisOptions"]
