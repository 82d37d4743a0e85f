"""A server (or client) address condition: `10.0.0.0/8`, `10.1.2.3`, `:443`, `10.1.2.3:8080`, `[::1]:80`.

Its own module so that `watch`'s display filters (pipeline/filters.py) use it without importing the
agent's `roundtripsfilter` (pipeline/filter.py) and what that imports (hashlib, spans): start-up of
`watch` imports only what it uses (tests/test_startup.py).
"""

from __future__ import annotations

import ipaddress


class ServerMatch:
    """`10.0.0.0/8`, `10.1.2.3`, `:443`, `10.1.2.3:8080`, `[::1]:80`."""

    def __init__(self, text: str) -> None:
        self.net: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
        self.port: int | None = None
        host = text
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            if rest.startswith(":"):
                self.port = int(rest[1:])
        elif text.count(":") == 1:
            host, _, port = text.partition(":")
            self.port = int(port)
        if host:
            self.net = ipaddress.ip_network(host, strict=False)

    def __call__(self, addr: str, port: int) -> bool:
        if self.port is not None and port != self.port:
            return False
        return self.net is None or ipaddress.ip_address(addr) in self.net
