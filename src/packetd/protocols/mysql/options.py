"""MySQL decoder options (`--decoder mysql.KEY=VALUE`, `decoder.mysql.*` in the agent config).

Each field's `doc` metadata is its documentation: the README's decoder options table is generated from it
(scripts/options_table.py).
"""

from __future__ import annotations

from dataclasses import field

from packetd._values import value


@value
class MysqlOptions:
    """Decoder options (`--decoder mysql.KEY=VALUE`)."""

    max_statement: int = field(
        default=1024,
        metadata={"doc": "bytes of statement text kept (before literals are replaced)"},
    )
    keep_literals: bool = field(
        default=False,
        metadata={"doc": "keep statement text as sent instead of replacing literals with `?`"},
    )


__all__ = ["MysqlOptions"]
