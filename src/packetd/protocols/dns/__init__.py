"""DNS over UDP and TCP: decoder, messages, options, semantics and the protocol's `SPEC`."""

from __future__ import annotations

from packetd.protocols.dns.detect import detect as detect_by_content
from packetd.protocols.dns.display import DISPLAY
from packetd.protocols.dns.options import DnsOptions
from packetd.protocols.dns.semantics import SEMANTICS
from packetd.protocols.spec import ProtocolSpec, imported_on_first_use

SPEC: ProtocolSpec = ProtocolSpec(
    name="dns",
    family="dns",
    factory=imported_on_first_use("packetd.protocols.dns.decoder", "new_decoder"),
    options_type=DnsOptions,
    pairing="keyed",  # (id, first question)
    default_ports=(53,),
    transports=frozenset({"udp", "tcp"}),
    semantics=SEMANTICS,
    description="DNS over UDP and TCP",
    display=DISPLAY,
    detect=detect_by_content,
)

__all__ = ["SPEC", "DnsOptions"]
