"""MySQL decoder options (`--decoder mysql.KEY=VALUE`, `decoder.mysql.*` in the agent config): the
statement text's (protocols/sqltext.py StatementOptions, shared with the other SQL decoder), documented
there; the README's decoder options table is generated from them (scripts/options_table.py).
"""

from __future__ import annotations

from packetd._values import value
from packetd.protocols.sqltext import StatementOptions


@value
class MysqlOptions(StatementOptions):
    """Decoder options (`--decoder mysql.KEY=VALUE`)."""


__all__ = ["MysqlOptions"]
