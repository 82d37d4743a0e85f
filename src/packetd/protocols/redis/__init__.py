"""Redis (RESP2 and RESP3): decoder, messages, options, semantics and the protocol's `SPEC`."""

from __future__ import annotations

from packetd.protocols.redis.detect import detect as detect_by_content
from packetd.protocols.redis.display import DISPLAY
from packetd.protocols.redis.options import RedisOptions
from packetd.protocols.redis.semantics import SEMANTICS
from packetd.protocols.spec import ProtocolSpec, imported_on_first_use

SPEC: ProtocolSpec = ProtocolSpec(
    name="redis",
    family="redis",
    factory=imported_on_first_use("packetd.protocols.redis.decoder", "new_decoder"),
    options_type=RedisOptions,
    pairing="fifo",
    default_ports=(6379,),
    transports=frozenset({"tcp"}),
    semantics=SEMANTICS,
    description="Redis RESP2 and RESP3",
    display=DISPLAY,
    detect=detect_by_content,
)

__all__ = ["SPEC", "RedisOptions"]
