"""TLS detection: a ClientHello on any TCP rule port marks the connection encrypted.

The decoder reads the first handshake message of each side — ClientHello (server name, ALPN, offered
versions) and ServerHello (chosen version and cipher suite) or an alert — pairs them into one `handshake`
record flagged `encrypted`, and then stops: what follows is ciphertext. It never decrypts anything.

Wire format (RFC 8446 §5.1, §4.1.2, §4.1.3; RFC 6066 §3; RFC 7301 §3.1):

    TLSPlaintext  = type(1) legacy_version(2) length(2) fragment       type 22 = handshake, 21 = alert
    Handshake     = msg_type(1) length(3) body                          1 = ClientHello, 2 = ServerHello
    ClientHello   = version(2) random(32) session_id<0..32> cipher_suites<2..2^16-2>
                    compression_methods<1..2^8-1> extensions<8..2^16-1>
    ServerHello   = version(2) random(32) session_id<0..32> cipher_suite(2) compression(1) extensions
    Extension     = type(2) length(2) data       0 = server_name, 16 = ALPN, 43 = supported_versions
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, ClassVar

from packetd._values import value
from packetd.protocols.base import (
    NO_MESSAGES,
    DecodeError,
    DecoderContext,
    Direction,
    Flag,
    Kind,
    Message,
    Role,
    StopDecoding,
)

MAX_HELLO = 64 * 1024  # a ClientHello with post-quantum key shares is ~1.5 KiB; 64 KiB is generous
_U16 = struct.Struct("!H")
_VERSIONS = {0x0300: "SSL 3.0", 0x0301: "TLS 1.0", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2", 0x0304: "TLS 1.3"}
_ALERTS = {
    10: "unexpected_message",
    20: "bad_record_mac",
    40: "handshake_failure",
    42: "bad_certificate",
    43: "unsupported_certificate",
    45: "certificate_expired",
    46: "certificate_unknown",
    47: "illegal_parameter",
    48: "unknown_ca",
    50: "decode_error",
    51: "decrypt_error",
    70: "protocol_version",
    71: "insufficient_security",
    80: "internal_error",
    86: "inappropriate_fallback",
    90: "user_canceled",
    109: "missing_extension",
    110: "unsupported_extension",
    112: "unrecognized_name",
    116: "certificate_required",
    120: "no_application_protocol",
}


def starts_client_hello(data: bytes | memoryview) -> bool:
    """The first bytes of a connection are a TLS handshake record holding a ClientHello."""
    return len(data) >= 6 and data[0] == 22 and data[1] == 3 and data[2] <= 4 and data[5] == 1


def looks_like_record(data: bytes | memoryview) -> bool:
    """A TLS record header (any content type): used to recognise encrypted connections joined mid-stream."""
    if len(data) < 5 or not 20 <= data[0] <= 23 or data[1] != 3 or data[2] > 4:
        return False
    return (data[3] << 8 | data[4]) <= 16384 + 2048


def _version(v: int) -> str:
    return _VERSIONS.get(v, f"0x{v:04x}")


@value
class ClientHello(Message):
    ROLE: ClassVar[Role] = Role.REQUEST
    server_name: str | None
    alpn: tuple[str, ...]
    versions: tuple[str, ...]

    def operation(self) -> str:
        return "TLS"

    def record_kind(self) -> str:
        return Kind.HANDSHAKE

    def to_json(self) -> dict[str, Any]:
        return {
            "tls": {
                "server_name": self.server_name,
                "alpn": list(self.alpn),
                "versions": list(self.versions),
            },
            "size": self.size,
        }


@value
class ServerHello(Message):
    ROLE: ClassVar[Role] = Role.RESPONSE
    version: str | None
    cipher_suite: str | None
    alpn: str | None
    alert: str | None = None

    def status(self) -> str:
        return self.alert or "OK"

    def is_error(self) -> bool:
        return self.alert is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "tls": {
                "version": self.version,
                "cipher_suite": self.cipher_suite,
                "alpn": self.alpn,
                "alert": self.alert,
            },
            "size": self.size,
        }


class _Reader:
    """Bounds-checked reads over a hello body; any overrun is a DecodeError."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.buf):
            raise DecodeError("truncated tls hello")
        out = self.buf[self.pos : end]
        self.pos = end
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        v: int = _U16.unpack(self.take(2))[0]
        return v

    def vec8(self) -> bytes:
        return self.take(self.u8())

    def vec16(self) -> bytes:
        return self.take(self.u16())


def _extensions(r: _Reader) -> dict[int, bytes]:
    exts: dict[int, bytes] = {}
    if r.pos >= len(r.buf):
        return exts
    er = _Reader(r.vec16())
    while er.pos < len(er.buf):
        etype = er.u16()
        exts.setdefault(etype, er.vec16())
    return exts


def parse_client_hello(body: bytes) -> tuple[str | None, tuple[str, ...], tuple[str, ...]]:
    r = _Reader(body)
    legacy = r.u16()
    r.take(32)
    r.vec8()
    r.vec16()
    r.vec8()
    exts = _extensions(r)
    server_name = None
    sni = exts.get(0)
    if sni:
        sr = _Reader(_Reader(sni).vec16())
        while sr.pos < len(sr.buf):
            kind = sr.u8()
            name = sr.vec16()
            if kind == 0:
                server_name = name.decode("ascii", "replace")
                break
    alpn: tuple[str, ...] = ()
    if 16 in exts:
        ar = _Reader(_Reader(exts[16]).vec16())
        protos = []
        while ar.pos < len(ar.buf):
            protos.append(ar.vec8().decode("ascii", "replace"))
        alpn = tuple(protos)
    versions: tuple[str, ...] = (_version(legacy),)
    if 43 in exts:
        vr = _Reader(_Reader(exts[43]).vec8())
        offered = []
        while vr.pos < len(vr.buf):
            v = vr.u16()
            if (v & 0x0F0F) != 0x0A0A:  # skip GREASE values (RFC 8701)
                offered.append(_version(v))
        versions = tuple(offered) or versions
    return server_name, alpn, versions


def parse_server_hello(body: bytes) -> tuple[str, str, str | None]:
    r = _Reader(body)
    version = r.u16()
    r.take(32)
    r.vec8()
    cipher = r.u16()
    r.u8()
    exts = _extensions(r)
    if 43 in exts and len(exts[43]) == 2:
        version = _U16.unpack(exts[43])[0]
    alpn = None
    if 16 in exts:
        ar = _Reader(_Reader(exts[16]).vec16())
        alpn = ar.vec8().decode("ascii", "replace")
    return _version(version), f"0x{cipher:04x}", alpn


class TlsDecoder:
    """Reads the two hellos, then stops (see module docstring)."""

    def __init__(self, ctx: DecoderContext | None = None) -> None:
        self._buf = [bytearray(), bytearray()]  # handshake bytes per direction, records unwrapped
        self._raw = [bytearray(), bytearray()]  # undecoded record bytes per direction
        self._start = [-1, -1]
        self._wire = [0, 0]
        self._done = [False, False]

    def receive(self, direction: Direction, data: memoryview, ts_ns: int) -> Sequence[Message]:
        if self._done[direction]:
            return NO_MESSAGES
        if self._start[direction] < 0:
            self._start[direction] = ts_ns
        raw = self._raw[direction]
        raw += data
        self._wire[direction] += len(data)
        if len(raw) > MAX_HELLO:
            raise DecodeError("tls hello too large")
        hs = self._buf[direction]
        while len(raw) >= 5:
            ctype = raw[0]
            length = raw[3] << 8 | raw[4]
            if raw[1] != 3 or length > 16384 + 2048:
                raise DecodeError("bad tls record")
            if len(raw) < 5 + length:
                break
            fragment = bytes(raw[5 : 5 + length])
            del raw[: 5 + length]
            if ctype == 21 and direction is Direction.S2C and len(fragment) >= 2:
                alert = _ALERTS.get(fragment[1], f"alert_{fragment[1]}")
                return self._server_done(ts_ns, None, None, None, alert)
            if ctype != 22:
                continue  # change_cipher_spec or application data before a hello: nothing to read
            hs += fragment
        if len(hs) < 4:
            return NO_MESSAGES
        mtype = hs[0]
        mlen = hs[1] << 16 | hs[2] << 8 | hs[3]
        if len(hs) < 4 + mlen:
            return NO_MESSAGES
        body = bytes(hs[4 : 4 + mlen])
        if direction is Direction.C2S:
            if mtype != 1:
                raise DecodeError("expected tls client hello")
            self._done[0] = True
            name, alpn, versions = parse_client_hello(body)
            return (
                ClientHello(
                    start_ns=self._start[0],
                    end_ns=ts_ns,
                    size=self._wire[0],
                    flags=Flag.ENCRYPTED,
                    server_name=name,
                    alpn=alpn,
                    versions=versions,
                ),
            )
        if mtype != 2:
            raise DecodeError("expected tls server hello")
        version, cipher, alpn1 = parse_server_hello(body)
        return self._server_done(ts_ns, version, cipher, alpn1, None)

    def _server_done(
        self, ts: int, version: str | None, cipher: str | None, alpn: str | None, alert: str | None
    ) -> Sequence[Message]:
        self._done[1] = True
        hello = ServerHello(
            start_ns=self._start[1],
            end_ns=ts,
            size=self._wire[1],
            flags=Flag.ENCRYPTED,
            version=version,
            cipher_suite=cipher,
            alpn=alpn,
            alert=alert,
        )
        return (hello, StopDecoding(start_ns=ts, end_ns=ts, size=0, flags=0, reason="tls", encrypted=True))

    def receive_gap(self, direction: Direction, nbytes: int, ts_ns: int) -> Sequence[Message]:
        raise DecodeError("gap in tls handshake")

    def receive_eof(self, direction: Direction, ts_ns: int) -> Sequence[Message]:
        return NO_MESSAGES


def display_what(rec: dict[str, Any]) -> str:
    """An encrypted connection's handshake record in `watch`'s text line: `TLS example.com h2` (the server
    name the client asked for; the ALPN protocol the server chose, else the ones the client offered)."""
    hello = (rec.get("request") or {}).get("tls") or {}
    chosen = (rec.get("response") or {}).get("tls") or {}
    alpn = chosen.get("alpn") or ",".join(hello.get("alpn") or ())
    return " ".join(p for p in ("TLS", hello.get("server_name"), alpn) if p)


def is_tls_record(rec: dict[str, Any]) -> bool:
    """A record made of TLS hellos (what display_what reads)."""
    return isinstance((rec.get("request") or rec.get("response") or {}).get("tls"), dict)
