"""HTTP/2 (RFC 9113) and gRPC over HTTP/2: one decoder, two record protocols (`http2`, `grpc`).

Both specs share the family "http2": each stream's content-type decides whether its record is `grpc` or
`http2`; the spec only decides streams whose content-type could not be read (joined mid-connection).
"""

from __future__ import annotations

from packetd.protocols.http2.detect import detect as detect_by_content
from packetd.protocols.http2.display import DISPLAY, GRPC_DISPLAY
from packetd.protocols.http2.options import Http2Options
from packetd.protocols.http2.semantics import GRPC_SEMANTICS, HTTP2_SEMANTICS
from packetd.protocols.spec import ProtocolSpec, imported_on_first_use

SPEC: ProtocolSpec = ProtocolSpec(
    name="http2",
    family="http2",
    factory=imported_on_first_use("packetd.protocols.http2.decoder", "new_http2_decoder"),
    options_type=Http2Options,
    pairing="keyed",  # by stream id
    default_ports=(50051,),
    transports=frozenset({"tcp"}),
    semantics=HTTP2_SEMANTICS,
    upgrade_tokens=frozenset({"h2c", "h2c-prior-knowledge"}),
    description="HTTP/2 over cleartext (prior knowledge, Upgrade: h2c)",
    display=DISPLAY,
    detect=detect_by_content,
)

GRPC_SPEC: ProtocolSpec = ProtocolSpec(
    name="grpc",
    family="http2",
    factory=imported_on_first_use("packetd.protocols.http2.decoder", "new_grpc_decoder"),
    options_type=Http2Options,
    pairing="keyed",
    default_ports=(50051,),
    transports=frozenset({"tcp"}),
    semantics=GRPC_SEMANTICS,
    description="gRPC over HTTP/2 cleartext",
    display=GRPC_DISPLAY,
    detect=detect_by_content,
)

__all__ = ["GRPC_SPEC", "SPEC", "Http2Options"]
