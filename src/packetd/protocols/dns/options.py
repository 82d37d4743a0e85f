"""DNS decoder options (`--decoder dns.KEY=VALUE`, `decoder.dns.*` in the agent config).

Each field's `doc` metadata is its documentation: the README's decoder options table is generated from it
(scripts/options_table.py).
"""

from __future__ import annotations

from dataclasses import field

from packetd._values import value


@value
class DnsOptions:
    """Decoder options (`--decoder dns.KEY=VALUE`)."""

    max_records: int = field(
        default=64,
        metadata={
            "doc": "records kept per section in a record (AXFR answers hold thousands; the counts stay exact)"
        },
    )


__all__ = ["DnsOptions"]
