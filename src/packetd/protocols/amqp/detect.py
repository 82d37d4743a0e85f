"""AMQP 0-9-1 detection: the protocol header the client sends first (AMQP 0-9-1 §4.2.2).

    "AMQP" %d0 %d0 %d9 %d1      8 octets

The decoder reads 0-9-1 only; AMQP 1.0 ("AMQP" 0 1 0 0) and 0-9 / 0-8 headers are other protocols
(a 0-9-1 server answers them with its own header and closes), so they are not claimed.

Mid-stream (AMQP 0-9-1 §4.2.3), a method frame that starts a segment of either side is recognised:

    type = 1 (method) | channel (16) | size (32) | class-id (16) | method-id (16) | arguments | frame-end %xCE

with a class of the 0-9-1 spec (connection 10, channel 20, exchange 40, queue 50, basic 60, confirm 85,
tx 90) and the frame-end octet exactly `size` bytes after the header.
"""

from __future__ import annotations

from packetd.protocols.detection import MORE, NO, YES, Verdict, either_side

HEADER = b"AMQP\x00\x00\x09\x01"


_CLASSES = frozenset({10, 20, 40, 50, 60, 85, 90})
_MAX_FRAME = 128 * 1024  # frame_max RabbitMQ negotiates by default (131072)
_FRAME_END = 0xCE


def _method_frame(buf: bytes) -> Verdict:
    if len(buf) < 11:
        return MORE if not buf or buf[0] == 1 else NO
    size = int.from_bytes(buf[3:7], "big")
    if buf[0] != 1 or not 4 <= size <= _MAX_FRAME or int.from_bytes(buf[7:9], "big") not in _CLASSES:
        return NO
    if len(buf) < 8 + size:
        return MORE
    return YES if buf[7 + size] == _FRAME_END else NO


def detect(c2s: bytes, s2c: bytes) -> Verdict:
    """The 0-9-1 protocol header from the client; mid-stream, a method frame from either side."""
    if len(c2s) >= len(HEADER) and c2s.startswith(HEADER):
        return YES
    if c2s[:1] == b"A":
        return MORE if HEADER.startswith(c2s) else NO
    return either_side(c2s, s2c, _method_frame, _method_frame)
