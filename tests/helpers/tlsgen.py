"""Real TLS hellos from Python's ssl module (OpenSSL), made in memory: no network, no fixtures.

A client and a server (self-signed certificate made with the openssl CLI) talk through memory BIOs; the
bytes each side writes are exactly what would cross the wire. What they negotiated (version, cipher,
ALPN) comes from the ssl objects themselves: the independent truth for the TLS decoder.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import tempfile
from dataclasses import dataclass

IANA_TLS13 = {
    "TLS_AES_128_GCM_SHA256": 0x1301,
    "TLS_AES_256_GCM_SHA384": 0x1302,
    "TLS_CHACHA20_POLY1305_SHA256": 0x1303,
}


@dataclass
class Handshake:
    client_hello: bytes  # the client's first flight
    server_hello: bytes  # the server's first flight (ServerHello and, in TLS 1.3, encrypted records)
    version: str  # as ssl reports it, e.g. "TLSv1.3"
    cipher: str
    alpn: str | None


_CERT: tuple[str, str] | None = None


def cert() -> tuple[str, str]:
    global _CERT
    if _CERT is None:
        d = tempfile.mkdtemp(prefix="packetd-tls-")
        key, crt = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-subj", "/CN=example.test", "-keyout", key, "-out", crt, "-days", "2"],
            check=True, capture_output=True,
        )  # fmt: skip
        _CERT = (crt, key)
    return _CERT


def handshake(
    sni: str | None, client_alpn: list[str], server_alpn: list[str], max_version: ssl.TLSVersion | None = None
) -> Handshake:
    crt, key = cert()
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.check_hostname = False
    cctx.verify_mode = ssl.CERT_NONE
    if client_alpn:
        cctx.set_alpn_protocols(client_alpn)
    if max_version is not None:
        cctx.maximum_version = max_version
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(crt, key)
    if server_alpn:
        sctx.set_alpn_protocols(server_alpn)
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = cctx.wrap_bio(c_in, c_out, server_hostname=sni)
    server = sctx.wrap_bio(s_in, s_out, server_side=True)
    try:
        client.do_handshake()
    except ssl.SSLWantReadError:
        pass
    client_hello = c_out.read()
    s_in.write(client_hello)
    try:
        server.do_handshake()
    except ssl.SSLWantReadError:
        pass
    server_hello = s_out.read()
    c_in.write(server_hello)
    done = [False, False]
    for _ in range(10):  # finish the handshake so that the negotiated parameters are known
        for i, (obj, out, peer_in) in enumerate(((client, c_out, s_in), (server, s_out, c_in))):
            if not done[i]:
                try:
                    obj.do_handshake()
                    done[i] = True
                except ssl.SSLWantReadError:
                    pass
            peer_in.write(out.read())
        if all(done):
            break
    cipher = client.cipher()
    assert cipher is not None
    return Handshake(
        client_hello, server_hello, str(client.version()), cipher[0], client.selected_alpn_protocol()
    )
