"""The protocol registry: one explicit list of every protocol packetd decodes.

Importing a protocol package registers nothing (STYLE.md); this file lists their `SPEC`s. Each package
(`protocols/<name>/`) owns its protocol's story — decoder, messages, options, semantics — and builds its
`ProtocolSpec` (protocols/spec.py) in its `__init__.py`. Protocols sharing a `family` share one decoder
(HTTP/2 and gRPC): a port may be claimed by several protocols of one family, never by two families.

Naming: a spec's `name` is the protocol's name in records, rules and config (the record contract); the
package is named after the same protocol, except HTTP/1, whose package is `http1` (next to `http2`) while
its records say `http` (see protocols/http1/__init__.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from packetd.protocols import amqp, dns, http1, http2, kafka, mongodb, mysql, postgresql, redis
from packetd.protocols.spec import Pairing, ProtocolSpec


class Registry:
    """Lookup over the list; immutable once built."""

    def __init__(self, specs: Iterable[ProtocolSpec]) -> None:
        self._specs: dict[str, ProtocolSpec] = {}
        self._upgrades: dict[str, ProtocolSpec] = {}
        for spec in specs:
            if spec.name in self._specs:
                raise ValueError(f"protocol {spec.name!r} registered twice")
            self._specs[spec.name] = spec
            for token in spec.upgrade_tokens:
                self._upgrades.setdefault(token, spec)

    def get(self, name: str) -> ProtocolSpec | None:
        return self._specs.get(name)

    def __getitem__(self, name: str) -> ProtocolSpec:
        return self._specs[name]

    def names(self) -> list[str]:
        return sorted(self._specs)

    def specs(self) -> list[ProtocolSpec]:
        return [self._specs[n] for n in self.names()]

    def upgrade_target(self, token: str) -> ProtocolSpec | None:
        """The protocol an HTTP/1.1 upgrade token (or prior-knowledge hint) hands a connection to."""
        return self._upgrades.get(token)


HTTP = http1.SPEC
HTTP2 = http2.SPEC
GRPC = http2.GRPC_SPEC
REDIS = redis.SPEC
MYSQL = mysql.SPEC
POSTGRESQL = postgresql.SPEC
KAFKA = kafka.SPEC
MONGODB = mongodb.SPEC
AMQP = amqp.SPEC
DNS = dns.SPEC

REGISTRY = Registry([HTTP, HTTP2, GRPC, REDIS, MYSQL, POSTGRESQL, KAFKA, MONGODB, AMQP, DNS])

__all__ = ["REGISTRY", "Pairing", "ProtocolSpec", "Registry"]
