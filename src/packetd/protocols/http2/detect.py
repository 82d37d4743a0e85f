"""HTTP/2 detection: the client connection preface of prior knowledge (RFC 9113 §3.4).

    PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n   (24 octets), then a SETTINGS frame

gRPC is HTTP/2: one decoder serves both rows, and each stream's `content-type` (application/grpc...)
decides whether its record is `grpc` or `http2`, as on a rule's port. The gRPC row detects the same
preface; the HTTP/2 row is listed first, so a detected connection is decoded by the family's decoder
under the `http2` row, and its gRPC streams still come out as `grpc`. (HTTP/2 reached by `Upgrade: h2c`
is an HTTP/1 connection first: detected as HTTP/1, handed over at the 101.)

Mid-stream (RFC 9113 §4.1), a segment that starts with frames is recognised by walking them:

    length (24) ≤ 16384 | type (8) 0-9 | flags (8) | R (1) = 0 | stream id (31)

each frame's type must fit its stream (SETTINGS, PING, GOAWAY on stream 0; DATA, HEADERS, PRIORITY,
RST_STREAM, CONTINUATION on a non-zero one; SETTINGS a multiple of 6 long, PING 8, RST_STREAM 4,
WINDOW_UPDATE 4), the walk must end exactly where the bytes shown end (or run past the window), and it
must include a HEADERS frame (every request and response has one): a run of chance bytes does not chain.
"""

from __future__ import annotations

from packetd.protocols.detection import DETECT_WINDOW, MORE, NO, YES, Verdict, either_side

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


_MAX_FRAME = 16384  # SETTINGS_MAX_FRAME_SIZE's initial value: frames up to it need no negotiation
_STREAM0 = frozenset({4, 6, 7})  # SETTINGS, PING, GOAWAY
_STREAMS = frozenset({0, 1, 2, 3, 9})  # DATA, HEADERS, PRIORITY, RST_STREAM, CONTINUATION
_FIXED = {2: 5, 3: 4, 6: 8, 8: 4}  # PRIORITY, RST_STREAM, PING, WINDOW_UPDATE: exact payload lengths
_HEADERS = 1


def _frames(buf: bytes) -> Verdict:
    """Frames from the first byte to the last (see module docstring); MORE while the walk is cut."""
    pos = 0
    headers = False
    while pos + 9 <= len(buf):
        length = int.from_bytes(buf[pos : pos + 3], "big")
        ftype = buf[pos + 3]
        stream = int.from_bytes(buf[pos + 5 : pos + 9], "big")
        if length > _MAX_FRAME or ftype > 9 or stream & 0x80000000:
            return NO
        if (ftype in _STREAM0 and stream) or (ftype in _STREAMS and not stream):
            return NO
        if _FIXED.get(ftype, length) != length or (ftype == 4 and length % 6):
            return NO
        if ftype == _HEADERS:
            if buf[pos + 4] & ~0x2D:  # END_STREAM, END_HEADERS, PADDED, PRIORITY: no other flag exists
                return NO
            headers = True
        pos += 9 + length
    if pos == len(buf) or len(buf) >= DETECT_WINDOW:  # ended exactly, or ran past what a detector sees
        return YES if headers else MORE
    return MORE


def detect(c2s: bytes, s2c: bytes) -> Verdict:
    """The prior-knowledge preface from the client; mid-stream, frames from either side."""
    if c2s[:1] == b"P" or not c2s:
        if len(c2s) >= len(PREFACE):
            return YES if c2s.startswith(PREFACE) else NO
        if PREFACE.startswith(c2s) and c2s:
            return MORE
    return either_side(c2s, s2c, _frames, _frames)
