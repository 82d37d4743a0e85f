"""HTTP/1.0 and HTTP/1.1: decoder, messages, options, semantics and the protocol's `SPEC`.

Naming: the package is `http1` (the wire version it decodes, next to `http2`), in every tree —
`protocols/http1/`, `tests/protocols/http1/`, `tests/golden/http1/`; the protocol's name in records, rules
and config is `http`, as in the Go implementation's configs and the record contract (ARCHITECTURE.md), so
`SPEC.name` is "http".
"""

from __future__ import annotations

from packetd.protocols.http1.detect import detect as detect_by_content
from packetd.protocols.http1.display import DISPLAY
from packetd.protocols.http1.options import HttpOptions, reference_keys
from packetd.protocols.http1.semantics import SEMANTICS
from packetd.protocols.spec import ProtocolSpec, imported_on_first_use

SPEC: ProtocolSpec = ProtocolSpec(
    name="http",
    family="http",
    factory=imported_on_first_use("packetd.protocols.http1.decoder", "new_decoder"),
    options_type=HttpOptions,
    pairing="fifo",
    default_ports=(80, 8080),
    transports=frozenset({"tcp"}),
    semantics=SEMANTICS,
    description="HTTP/1.0 and HTTP/1.1",
    reference_keys=reference_keys,
    display=DISPLAY,
    detect=detect_by_content,
)

__all__ = ["SPEC", "HttpOptions"]
