"""MySQL and MariaDB: decoder, messages, options, semantics and the protocol's `SPEC`."""

from __future__ import annotations

from packetd.protocols.mysql.detect import detect as detect_by_content
from packetd.protocols.mysql.display import DISPLAY
from packetd.protocols.mysql.options import MysqlOptions
from packetd.protocols.mysql.semantics import SEMANTICS
from packetd.protocols.spec import ProtocolSpec, imported_on_first_use

SPEC: ProtocolSpec = ProtocolSpec(
    name="mysql",
    family="mysql",
    factory=imported_on_first_use("packetd.protocols.mysql.decoder", "new_decoder"),
    options_type=MysqlOptions,
    pairing="fifo",
    default_ports=(3306,),
    transports=frozenset({"tcp"}),
    semantics=SEMANTICS,
    description="MySQL and MariaDB client/server protocol",
    display=DISPLAY,
    detect=detect_by_content,
)

__all__ = ["SPEC", "MysqlOptions"]
