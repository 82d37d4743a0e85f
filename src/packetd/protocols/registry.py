"""The protocol registry: one explicit table of every protocol packetd decodes.

Importing a protocol module registers nothing (STYLE.md); this file lists them. A row says how to build the
protocol's decoder (`factory`), which options type configures it, how its messages pair (`pairing`), which
ports it is watched on by default, over which transports, and which upgrade tokens hand a connection to it.
Protocols sharing a `family` share one decoder (HTTP/2 and gRPC): a port may be claimed by several
protocols of one family, never by two families.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal

from packetd._values import value
from packetd.protocols.amqp import detect as amqp_detect
from packetd.protocols.amqp.decoder import AmqpOptions
from packetd.protocols.amqp.decoder import new_decoder as amqp_decoder
from packetd.protocols.amqp.display import DISPLAY as amqp_display
from packetd.protocols.base import Decoder, DecoderContext
from packetd.protocols.detection import Detect
from packetd.protocols.display import DEFAULT as DEFAULT_DISPLAY
from packetd.protocols.display import Display
from packetd.protocols.dns import detect as dns_detect
from packetd.protocols.dns.decoder import DnsOptions
from packetd.protocols.dns.decoder import new_decoder as dns_decoder
from packetd.protocols.dns.display import DISPLAY as dns_display
from packetd.protocols.http1 import detect as http1_detect
from packetd.protocols.http1.decoder import HttpOptions
from packetd.protocols.http1.decoder import new_decoder as http1_decoder
from packetd.protocols.http1.display import DISPLAY as http1_display
from packetd.protocols.http2 import detect as http2_detect
from packetd.protocols.http2.decoder import Http2Options, new_grpc_decoder, new_http2_decoder
from packetd.protocols.http2.display import DISPLAY as http2_display
from packetd.protocols.http2.display import GRPC_DISPLAY as grpc_display
from packetd.protocols.kafka import detect as kafka_detect
from packetd.protocols.kafka.decoder import KafkaOptions
from packetd.protocols.kafka.decoder import new_decoder as kafka_decoder
from packetd.protocols.kafka.display import DISPLAY as kafka_display
from packetd.protocols.mongodb import detect as mongodb_detect
from packetd.protocols.mongodb.decoder import MongoOptions
from packetd.protocols.mongodb.decoder import new_decoder as mongodb_decoder
from packetd.protocols.mongodb.display import DISPLAY as mongodb_display
from packetd.protocols.mysql import detect as mysql_detect
from packetd.protocols.mysql.decoder import MysqlOptions
from packetd.protocols.mysql.decoder import new_decoder as mysql_decoder
from packetd.protocols.mysql.display import DISPLAY as mysql_display
from packetd.protocols.postgresql import detect as postgresql_detect
from packetd.protocols.postgresql.decoder import PostgresOptions
from packetd.protocols.postgresql.decoder import new_decoder as postgresql_decoder
from packetd.protocols.postgresql.display import DISPLAY as postgresql_display
from packetd.protocols.redis import detect as redis_detect
from packetd.protocols.redis.decoder import RedisOptions
from packetd.protocols.redis.decoder import new_decoder as redis_decoder
from packetd.protocols.redis.display import DISPLAY as redis_display

Pairing = Literal["fifo", "keyed", "oneway"]


@value
class ProtocolSpec:
    """One row of the registry."""

    name: str
    family: str
    factory: Callable[[DecoderContext], Decoder]
    options_type: type[Any] | None
    pairing: Pairing
    default_ports: tuple[int, ...]
    transports: frozenset[str]  # "tcp", "udp"
    upgrade_tokens: frozenset[str] = frozenset()  # HTTP/1.1 upgrade tokens this protocol takes over
    description: str = ""
    detect: Detect | None = None  # detection by content (protocols/<name>/detect.py); None: by port only
    display: Display = DEFAULT_DISPLAY  # how its records read in `watch`'s text line (<package>/display.py)


class Registry:
    """Lookup over the table; immutable once built."""

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


HTTP = ProtocolSpec(
    name="http",
    family="http",
    factory=http1_decoder,
    options_type=HttpOptions,
    pairing="fifo",
    default_ports=(80, 8080),
    transports=frozenset({"tcp"}),
    description="HTTP/1.0 and HTTP/1.1",
    detect=http1_detect.detect,
    display=http1_display,
)

# One decoder serves both rows (family "http2"): each stream's content-type decides whether its record is
# `grpc` or `http2`; the row only decides streams whose content-type could not be read (joined mid-connection).
HTTP2 = ProtocolSpec(
    name="http2",
    family="http2",
    factory=new_http2_decoder,
    options_type=Http2Options,
    pairing="keyed",  # by stream id
    default_ports=(50051,),
    transports=frozenset({"tcp"}),
    upgrade_tokens=frozenset({"h2c", "h2c-prior-knowledge"}),
    description="HTTP/2 over cleartext (prior knowledge, Upgrade: h2c)",
    detect=http2_detect.detect,
    display=http2_display,
)

GRPC = ProtocolSpec(
    name="grpc",
    family="http2",
    factory=new_grpc_decoder,
    options_type=Http2Options,
    pairing="keyed",
    default_ports=(50051,),
    transports=frozenset({"tcp"}),
    description="gRPC over HTTP/2 cleartext",
    detect=http2_detect.detect,
    display=grpc_display,
)

DNS = ProtocolSpec(
    name="dns",
    family="dns",
    factory=dns_decoder,
    options_type=DnsOptions,
    pairing="keyed",  # (id, first question)
    default_ports=(53,),
    transports=frozenset({"udp", "tcp"}),
    description="DNS over UDP and TCP",
    detect=dns_detect.detect,
    display=dns_display,
)

AMQP = ProtocolSpec(
    name="amqp",
    family="amqp",
    factory=amqp_decoder,
    options_type=AmqpOptions,
    pairing="keyed",  # the decoder pairs by channel and method (or delivery tag) and names each pair
    default_ports=(5672,),
    transports=frozenset({"tcp"}),
    description="AMQP 0-9-1 (RabbitMQ)",
    detect=amqp_detect.detect,
    display=amqp_display,
)

MONGODB = ProtocolSpec(
    name="mongodb",
    family="mongodb",
    factory=mongodb_decoder,
    options_type=MongoOptions,
    pairing="keyed",  # responseTo = requestID
    default_ports=(27017,),
    transports=frozenset({"tcp"}),
    description="MongoDB wire protocol (OP_MSG, OP_COMPRESSED, legacy opcodes)",
    detect=mongodb_detect.detect,
    display=mongodb_display,
)

KAFKA = ProtocolSpec(
    name="kafka",
    family="kafka",
    factory=kafka_decoder,
    options_type=KafkaOptions,
    pairing="keyed",  # correlation id
    default_ports=(9092,),
    transports=frozenset({"tcp"}),
    description="Apache Kafka protocol (all API keys; flexible versions from the official schemas)",
    detect=kafka_detect.detect,
    display=kafka_display,
)

REDIS = ProtocolSpec(
    name="redis",
    family="redis",
    factory=redis_decoder,
    options_type=RedisOptions,
    pairing="fifo",
    default_ports=(6379,),
    transports=frozenset({"tcp"}),
    description="Redis RESP2 and RESP3",
    detect=redis_detect.detect,
    display=redis_display,
)

POSTGRESQL = ProtocolSpec(
    name="postgresql",
    family="postgresql",
    factory=postgresql_decoder,
    options_type=PostgresOptions,
    pairing="fifo",
    default_ports=(5432,),
    transports=frozenset({"tcp"}),
    description="PostgreSQL frontend/backend protocol 3",
    detect=postgresql_detect.detect,
    display=postgresql_display,
)

MYSQL = ProtocolSpec(
    name="mysql",
    family="mysql",
    factory=mysql_decoder,
    options_type=MysqlOptions,
    pairing="fifo",
    default_ports=(3306,),
    transports=frozenset({"tcp"}),
    description="MySQL and MariaDB client/server protocol",
    detect=mysql_detect.detect,
    display=mysql_display,
)

REGISTRY = Registry([HTTP, HTTP2, GRPC, REDIS, MYSQL, POSTGRESQL, KAFKA, MONGODB, AMQP, DNS])
