"""MongoDB decoder options (`--decoder mongodb.KEY=VALUE`, `decoder.mongodb.*` in the agent config).

Each field's `doc` metadata is its documentation: the README's decoder options table is generated from it
(scripts/options_table.py).
"""

from __future__ import annotations

from dataclasses import field

from packetd._values import value


@value
class MongoOptions:
    """Decoder options (`--decoder mongodb.KEY=VALUE`)."""

    raw_query: bool = field(
        default=False,
        metadata={"doc": "keep values in the command summary (authentication payloads stay hidden)"},
    )
    max_parse_bytes: int = field(
        default=4 * 1024 * 1024,
        metadata={
            "doc": "documents up to this size are parsed (larger: command name only, `parsed: false`); also the body kept",
            "default": "4 MiB",
        },
    )
    max_decompress: int = field(
        default=4 * 1024 * 1024,
        metadata={
            "doc": "OP_COMPRESSED bodies decompressed up to this (uncompressed) size",
            "default": "4 MiB",
        },
    )


__all__ = ["MongoOptions"]
