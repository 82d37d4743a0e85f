"""AMQP 0-9-1: decoder, messages, options, semantics and the protocol's `SPEC`."""

from __future__ import annotations

from packetd.protocols.amqp.detect import detect as detect_by_content
from packetd.protocols.amqp.display import DISPLAY
from packetd.protocols.amqp.options import AmqpOptions
from packetd.protocols.amqp.semantics import SEMANTICS
from packetd.protocols.spec import ProtocolSpec, imported_on_first_use

SPEC: ProtocolSpec = ProtocolSpec(
    name="amqp",
    family="amqp",
    factory=imported_on_first_use("packetd.protocols.amqp.decoder", "new_decoder"),
    options_type=AmqpOptions,
    pairing="keyed",  # the decoder pairs by channel and method (or delivery tag) and names each pair
    default_ports=(5672,),
    transports=frozenset({"tcp"}),
    semantics=SEMANTICS,
    description="AMQP 0-9-1 (RabbitMQ)",
    display=DISPLAY,
    detect=detect_by_content,
)

__all__ = ["SPEC", "AmqpOptions"]
