"""HTTP/2 detection: the client connection preface of prior knowledge (RFC 9113 §3.4).

    PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n   (24 octets), then a SETTINGS frame

gRPC is HTTP/2: one decoder serves both rows, and each stream's `content-type` (application/grpc...)
decides whether its record is `grpc` or `http2`, as on a rule's port. The gRPC row detects the same
preface; the HTTP/2 row is listed first, so a detected connection is decoded by the family's decoder
under the `http2` row, and its gRPC streams still come out as `grpc`. (HTTP/2 reached by `Upgrade: h2c`
is an HTTP/1 connection first: detected as HTTP/1, handed over at the 101.)
"""

from __future__ import annotations

from packetd.protocols.detection import MORE, NO, YES, Verdict

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def detect(c2s: bytes, s2c: bytes) -> Verdict:
    """The prior-knowledge preface from the client."""
    if len(c2s) >= len(PREFACE):
        return YES if c2s.startswith(PREFACE) else NO
    return MORE if PREFACE.startswith(c2s) else NO
