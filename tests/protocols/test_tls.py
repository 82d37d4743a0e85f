"""TLS detection against real OpenSSL hellos (tests/helpers/tlsgen.py): the server name, ALPN and versions
the client offered, and the version, cipher and ALPN the two ends agreed on, as OpenSSL reports them."""

from __future__ import annotations

import ssl

import pytest

from packetd.protocols.base import DecodeError, Direction, Flag, StopDecoding
from packetd.protocols.tls import ClientHello, ServerHello, TlsDecoder, looks_like_record, starts_client_hello
from tests.helpers.tlsgen import IANA_TLS13, handshake


def decode(client: bytes, server: bytes, chunk: int = 0) -> list:
    d = TlsDecoder()
    out: list = []
    for direction, data in ((Direction.C2S, client), (Direction.S2C, server)):
        step = chunk or len(data)
        for i in range(0, len(data), step):
            out.extend(d.receive(direction, memoryview(data[i : i + step]), i))
    return out


@pytest.mark.parametrize("chunk", [0, 1, 7, 100])
def test_tls13_hellos(chunk: int) -> None:
    hs = handshake("api.example.test", ["h2", "http/1.1"], ["http/1.1"])
    assert starts_client_hello(hs.client_hello)
    msgs = decode(hs.client_hello, hs.server_hello, chunk)
    ch, sh, stop = msgs
    assert isinstance(ch, ClientHello) and isinstance(sh, ServerHello) and isinstance(stop, StopDecoding)
    assert ch.server_name == "api.example.test"
    assert ch.alpn == ("h2", "http/1.1")
    assert "TLS 1.3" in ch.versions and "TLS 1.2" in ch.versions
    assert hs.version == "TLSv1.3" and sh.version == "TLS 1.3"
    assert sh.cipher_suite == f"0x{IANA_TLS13[hs.cipher]:04x}"
    assert hs.alpn == "http/1.1"
    assert sh.alpn is None  # TLS 1.3 sends the chosen ALPN in EncryptedExtensions: not visible
    assert ch.flags & Flag.ENCRYPTED and sh.flags & Flag.ENCRYPTED and stop.encrypted
    assert ch.size == len(hs.client_hello)


def test_tls12_server_alpn_is_visible() -> None:
    hs = handshake("a.test", ["h2", "http/1.1"], ["h2"], max_version=ssl.TLSVersion.TLSv1_2)
    _, sh, _ = decode(hs.client_hello, hs.server_hello)
    assert hs.version == "TLSv1.2" and sh.version == "TLS 1.2"
    assert sh.alpn == hs.alpn == "h2"


def test_tls12_without_sni_or_alpn() -> None:
    hs = handshake(None, [], [], max_version=ssl.TLSVersion.TLSv1_2)
    ch, sh, _ = decode(hs.client_hello, hs.server_hello)
    assert ch.server_name is None and ch.alpn == ()
    assert ch.versions[0] == "TLS 1.2"  # offered without supported_versions: the legacy version field
    assert hs.version == "TLSv1.2" and sh.version == "TLS 1.2"


def test_alert_from_server_is_an_error_status() -> None:
    hs = handshake("x.test", [], [])
    alert = bytes([21, 3, 3, 0, 2, 2, 40])  # fatal handshake_failure
    _, sh, _ = decode(hs.client_hello, alert)
    assert sh.alert == "handshake_failure" and sh.is_error() and sh.status() == "handshake_failure"


def test_not_tls_raises() -> None:
    d = TlsDecoder()
    with pytest.raises(DecodeError):
        d.receive(Direction.C2S, memoryview(b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00"), 1)


def test_record_sniffers() -> None:
    assert looks_like_record(bytes([23, 3, 3, 0x40, 0]))
    assert not looks_like_record(b"GET / HTTP/1.1\r\n")
    assert not starts_client_hello(b"GET / HTTP/1.1\r\n")
