"""PostgreSQL decoder options (`--decoder postgresql.KEY=VALUE`, `decoder.postgresql.*` in the agent config): the
statement text's (protocols/sqltext.py StatementOptions, shared with the other SQL decoder), documented
there; the README's decoder options table is generated from them (scripts/options_table.py).
"""

from __future__ import annotations

from packetd._values import value
from packetd.protocols.sqltext import StatementOptions


@value
class PostgresOptions(StatementOptions):
    """Decoder options (`--decoder postgresql.KEY=VALUE`)."""


__all__ = ["PostgresOptions"]
