"""MongoDB wire protocol: decoder, messages, options, semantics and the protocol's `SPEC`."""

from __future__ import annotations

from packetd.protocols.mongodb.detect import detect as detect_by_content
from packetd.protocols.mongodb.display import DISPLAY
from packetd.protocols.mongodb.options import MongoOptions
from packetd.protocols.mongodb.semantics import SEMANTICS
from packetd.protocols.spec import ProtocolSpec, imported_on_first_use

SPEC: ProtocolSpec = ProtocolSpec(
    name="mongodb",
    family="mongodb",
    factory=imported_on_first_use("packetd.protocols.mongodb.decoder", "new_decoder"),
    options_type=MongoOptions,
    pairing="keyed",  # responseTo = requestID
    default_ports=(27017,),
    transports=frozenset({"tcp"}),
    semantics=SEMANTICS,
    description="MongoDB wire protocol (OP_MSG, OP_COMPRESSED, legacy opcodes)",
    display=DISPLAY,
    detect=detect_by_content,
)

__all__ = ["SPEC", "MongoOptions"]
