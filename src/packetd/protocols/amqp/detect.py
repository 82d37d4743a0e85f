"""AMQP 0-9-1 detection: the protocol header the client sends first (AMQP 0-9-1 §4.2.2).

    "AMQP" %d0 %d0 %d9 %d1      8 octets

The decoder reads 0-9-1 only; AMQP 1.0 ("AMQP" 0 1 0 0) and 0-9 / 0-8 headers are other protocols
(a 0-9-1 server answers them with its own header and closes), so they are not claimed.
"""

from __future__ import annotations

from packetd.protocols.detection import MORE, NO, YES, Verdict

HEADER = b"AMQP\x00\x00\x09\x01"


def detect(c2s: bytes, s2c: bytes) -> Verdict:
    """The 0-9-1 protocol header from the client."""
    if len(c2s) >= len(HEADER):
        return YES if c2s.startswith(HEADER) else NO
    return MORE if HEADER.startswith(c2s) else NO
