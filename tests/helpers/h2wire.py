"""Build HTTP/2 wire bytes for tests: frames by hand (RFC 9113 §4.1), header blocks with the `hpack`
library's *encoder* (one per direction, as the peers keep them), so expected sizes are the lengths of the
bytes the test itself built."""

from __future__ import annotations

import struct

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    range(10)
)
END_STREAM, ACK, END_HEADERS, PADDED, PRIO = 0x1, 0x1, 0x4, 0x8, 0x20


def frame(ftype: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def grpc_msg(body: bytes, compressed: bool = False) -> bytes:
    """A gRPC length-prefixed message (PROTOCOL-HTTP2.md)."""
    return bytes([1 if compressed else 0]) + struct.pack(">I", len(body)) + body


def settings(**values: int) -> bytes:
    ids = {"header_table_size": 1, "max_concurrent_streams": 3, "initial_window_size": 4, "max_frame_size": 5}
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", ids[k], v) for k, v in values.items()))


class Conn:
    """One connection's two HPACK encoders; every method returns frame bytes."""

    def __init__(self) -> None:
        self.c = hpack.Encoder()
        self.s = hpack.Encoder()

    def block(self, client: bool, headers: list[tuple[str, str]], **kw: object) -> bytes:
        enc = self.c if client else self.s
        return enc.encode(headers, **kw)  # type: ignore[arg-type]

    def headers(
        self,
        client: bool,
        sid: int,
        headers: list[tuple[str, str]],
        end_stream: bool = False,
        flags: int = 0,
        **kw: object,
    ) -> bytes:
        return frame(
            HEADERS,
            END_HEADERS | (END_STREAM if end_stream else 0) | flags,
            sid,
            self.block(client, headers, **kw),
        )

    def get(
        self, sid: int, path: str = "/", extra: list[tuple[str, str]] | None = None, end: bool = True
    ) -> bytes:
        h = [(":method", "GET"), (":scheme", "http"), (":path", path), (":authority", "example.com")]
        return self.headers(True, sid, h + (extra or []), end_stream=end)

    def status(
        self, sid: int, code: int = 200, extra: list[tuple[str, str]] | None = None, end: bool = False
    ) -> bytes:
        return self.headers(False, sid, [(":status", str(code))] + (extra or []), end_stream=end)


def data(sid: int, body: bytes, end: bool = False, pad: int = -1) -> bytes:
    if pad >= 0:
        return frame(DATA, PADDED | (END_STREAM if end else 0), sid, bytes([pad]) + body + b"\0" * pad)
    return frame(DATA, END_STREAM if end else 0, sid, body)
