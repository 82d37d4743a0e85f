"""PostgreSQL (frontend/backend protocol 3): decoder, messages, options, semantics and the protocol's `SPEC`."""

from __future__ import annotations

from packetd.protocols.postgresql.detect import detect as detect_by_content
from packetd.protocols.postgresql.display import DISPLAY
from packetd.protocols.postgresql.options import PostgresOptions
from packetd.protocols.postgresql.semantics import SEMANTICS
from packetd.protocols.spec import ProtocolSpec, imported_on_first_use

SPEC: ProtocolSpec = ProtocolSpec(
    name="postgresql",
    family="postgresql",
    factory=imported_on_first_use("packetd.protocols.postgresql.decoder", "new_decoder"),
    options_type=PostgresOptions,
    pairing="fifo",
    default_ports=(5432,),
    transports=frozenset({"tcp"}),
    semantics=SEMANTICS,
    description="PostgreSQL frontend/backend protocol 3",
    display=DISPLAY,
    detect=detect_by_content,
)

__all__ = ["SPEC", "PostgresOptions"]
