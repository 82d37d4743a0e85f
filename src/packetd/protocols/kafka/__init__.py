"""Apache Kafka: decoder, messages, options, semantics and the protocol's `SPEC`."""

from __future__ import annotations

from packetd.protocols.kafka.detect import detect as detect_by_content
from packetd.protocols.kafka.display import DISPLAY
from packetd.protocols.kafka.options import KafkaOptions
from packetd.protocols.kafka.semantics import SEMANTICS
from packetd.protocols.spec import ProtocolSpec, imported_on_first_use

SPEC: ProtocolSpec = ProtocolSpec(
    name="kafka",
    family="kafka",
    factory=imported_on_first_use("packetd.protocols.kafka.decoder", "new_decoder"),
    options_type=KafkaOptions,
    pairing="keyed",  # correlation id
    default_ports=(9092,),
    transports=frozenset({"tcp"}),
    semantics=SEMANTICS,
    description="Apache Kafka protocol (all API keys; flexible versions from the official schemas)",
    display=DISPLAY,
    detect=detect_by_content,
)

__all__ = ["SPEC", "KafkaOptions"]
