"""The engine: frames in, roundtrip records out — net → flow → protocols → pairing, composed.

Pure and deterministic (ARCHITECTURE.md): no clock, no I/O. `watch` and `agent` feed it frames from a
capture source and hand it a sink for records; the same capture file always gives the same records.

It also owns the protocol rules (`--proto 'name;ports[;host]'`, reference §1.2) and their validation,
since the rules decide which connections are decoded and by which protocol.
"""

from __future__ import annotations

import importlib
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import field
from typing import Any

from packetd._values import value
from packetd.flow.detect import Detection, DetectionStats
from packetd.flow.ports import PortTally
from packetd.flow.table import Endpoint, FlowConfig, FlowTable, StreamHandler
from packetd.net.packet import PROTO_TCP, PacketDecoder
from packetd.pairing.roundtrip import Roundtrip
from packetd.pairing.session import ProtocolStats, Session
from packetd.protocols.classify import classifier
from packetd.protocols.dns import SPEC as DNS_SPEC
from packetd.protocols.registry import REGISTRY, Registry

RULE_EXAMPLE = "'http;80,8080;127.0.0.1'"


class RuleError(ValueError):
    """A protocol rule the user wrote is not valid; the message says what and what is allowed."""


@value
class Rule:
    """Watch `protocol` on `ports` (either end), optionally only to/from `host`."""

    protocol: str
    ports: tuple[int, ...]
    host: str | None = None
    addresses: frozenset[bytes] | None = None  # `host` resolved to packed addresses (None: any host)


# what people call the protocols (case-insensitive), beside the registry's own names
ALIASES = {
    "http1": "http",
    "http/1": "http",
    "http/1.1": "http",
    "h2": "http2",
    "h2c": "http2",
    "http/2": "http2",
    "postgres": "postgresql",
    "pg": "postgresql",
    "pgsql": "postgresql",
    "psql": "postgresql",
    "mariadb": "mysql",
    "mongo": "mongodb",
    "rabbitmq": "amqp",
    "amqp091": "amqp",
}


def protocol_name(name: str, registry: Registry = REGISTRY) -> str | None:
    """The registry's name for `name` (any case, or an alias), None when there is none."""
    low = name.strip().lower()
    if registry.get(low) is not None:
        return low
    alias = ALIASES.get(low)
    return alias if alias is not None and registry.get(alias) is not None else None


def _ports(field: str, text: str) -> list[int]:
    """`80,8080,8000-8099` → the ports, in order."""
    ports: list[int] = []
    for raw in field.split(","):
        p = raw.strip()
        lo, dash, hi = p.partition("-")
        if dash and lo.strip().isdigit() and hi.strip().isdigit():
            a, b = int(lo), int(hi)
            if a > b or b > 65535:
                raise RuleError(
                    f"invalid port range '{p}' in protocol '{text}': write LOW-HIGH with 0 <= LOW <= HIGH <= 65535"
                )
            ports.extend(range(a, b + 1))
            continue
        if not p.isdigit() or int(p) > 65535:
            raise RuleError(f"invalid port '{raw}' in protocol '{text}', port must be between 0-65535")
        ports.append(int(p))
    return ports


def parse_rule(text: str, registry: Registry = REGISTRY) -> Rule:
    """Parse `protocol;ports[;host]` (reference §1.2), or `protocol:ports`; raise RuleError with the
    reference's messages. Names are case-insensitive and may be aliases (`postgres`, `h2c`); ports may be
    ranges (`8000-8099`)."""
    parts = text.split(";")
    if len(parts) == 1 and ":" in text:
        parts = text.split(":", 1)  # `http:80`, as in Kyanos and Wireshark's "decode as"
    if len(parts) < 2:
        name = protocol_name(text, registry)
        spec = registry.get(name) if name is not None else None
        defaults = ",".join(map(str, spec.default_ports)) if spec is not None else "PORTS"
        raise RuleError(
            f"invalid --proto input '{text}', expected 'protocol;ports[;host]' ({RULE_EXAMPLE}); "
            f"quote the rule (an unquoted ';' ends the shell command) or write "
            f"{name or text.strip() or 'NAME'}:{defaults}"
        )
    if len(parts) > 3:
        raise RuleError(
            f"invalid --proto input '{text}': too many ';' parts, expected 'protocol;ports[;host]'"
        )
    name = protocol_name(parts[0], registry) or parts[0].strip()
    if registry.get(name) is None:
        raise RuleError(
            f"unsupported protocol ({name}) in '{text}'; known protocols: {', '.join(registry.names())} "
            f"(aliases: {', '.join(sorted(ALIASES))})"
        )
    ports = _ports(parts[1], text)
    host = parts[2].strip() if len(parts) == 3 and parts[2].strip() else None
    addresses = None
    if host is not None:
        try:
            addresses = frozenset({ipaddress.ip_address(host).packed})
        except ValueError:
            addresses = None  # a host name: the caller resolves it (I/O) with resolve_rule_host
    return Rule(protocol=name, ports=tuple(dict.fromkeys(ports)), host=host, addresses=addresses)


def default_rules(registry: Registry = REGISTRY) -> list[Rule]:
    """Every registered protocol on its default ports (what `watch` does without --proto)."""
    return [Rule(protocol=s.name, ports=s.default_ports) for s in registry.specs() if s.default_ports]


def check_rules(rules: Iterable[Rule], registry: Registry = REGISTRY) -> None:
    """Two protocol families cannot share a port (HTTP/2 and gRPC are one family and may)."""
    owner: dict[tuple[str, int], str] = {}
    for rule in rules:
        spec = registry[rule.protocol]
        for transport in spec.transports:
            for port in rule.ports:
                other = owner.setdefault((transport, port), rule.protocol)
                if registry[other].family != spec.family:
                    raise RuleError(
                        f"port {port}/{transport} is claimed by both {other} and {rule.protocol}; "
                        "give each protocol its own ports"
                    )


@value
class EngineConfig:
    rules: tuple[Rule, ...]
    ip_versions: frozenset[int] = frozenset({4, 6})
    flow: FlowConfig = field(default_factory=FlowConfig)
    options: Mapping[str, Any] = field(default_factory=dict)  # protocol name → its options object
    # detect protocols by content on connections no rule claims (`--proto auto`, `sniffer.protocols.detect`,
    # and `watch` / the agent without rules)
    detect: bool = False


def import_decoders(rules: Iterable[Rule], registry: Registry = REGISTRY) -> None:
    """Import the decoders of the rules' protocols now (a decoder module is imported on first use,
    protocols/spec.py): what a process calls before it forks workers, so that each inherits them imported
    instead of importing them again."""
    for rule in rules:
        importlib.import_module(registry[rule.protocol].factory.__module__)


RecordSink = Callable[[Roundtrip], None]


# told of every new connection (client, server, transport 6/17) once, when its flow is created: the I/O
# layer's process attribution looks the connection's sockets up while they still exist
ConnectionHook = Callable[[Endpoint, Endpoint, int], None]


class Engine:
    """Frames to records (see module docstring)."""

    def __init__(
        self,
        config: EngineConfig,
        sink: RecordSink,
        registry: Registry = REGISTRY,
        on_connection: ConnectionHook | None = None,
        ports: PortTally | None = None,
    ) -> None:
        check_rules(config.rules, registry)
        self._on_connection = on_connection
        self.config = config
        self.registry = registry
        self._sink = sink
        self.protocol_stats: dict[str, ProtocolStats] = {}
        self.net = PacketDecoder(config.ip_versions)
        # bound once: a bound method made per session is 128 bytes more for every connection tracked
        self._stats_for = self.stats_for
        self._options_for = self.options_for
        # one for the engine's life: a reload that turns detection off and on again keeps counting on (the
        # agent exports these as counters, which must not go backwards)
        self.detection_stats = DetectionStats()
        self.flows = FlowTable(
            self._table_rules(config), self._new_session, config.flow, self._detection(config.detect)
        )
        decode = self.net.decode
        segment = self.flows.segment

        def frame(ts_ns: int, linktype: int, data: memoryview) -> None:
            seg = decode(ts_ns, linktype, data)
            if seg is not None:
                segment(seg)

        self.frame: Callable[[int, int, memoryview], None] = frame
        self.ports = ports
        if ports is not None:
            self.frame = self._tallied(ports)

    def _tallied(self, ports: PortTally) -> Callable[[int, int, memoryview], None]:
        """`frame` that also counts server ports until the first connection on a watched port (`watch`'s
        hint, flow/ports.py); the agent and the benchmarks use the plain one."""
        decode = self.net.decode
        segment = self.flows.segment
        stats = self.flows.stats

        def frame(ts_ns: int, linktype: int, data: memoryview) -> None:
            seg = decode(ts_ns, linktype, data)
            if seg is not None:
                if ports.active:
                    ports.add(seg)
                    if stats.created and self.connections_decoded():
                        ports.active = False
                segment(seg)

        return frame

    def connections_decoded(self) -> int:
        """Connections a rule claimed or detection handed to a protocol (not those still being shown to the
        detectors, nor those nobody claimed): the first-run hint's "no connection on a watched port"."""
        created = self.flows.stats.created
        detection = self.flows.detection
        if detection is None:
            return created
        st = detection.stats
        return created - st.started + sum(st.detected.values())

    def reconfigure(self, config: EngineConfig) -> None:
        """New rules and decoder options (a reload): flows the new rules still cover go on, with their
        decoders and pending requests; others end (their pending requests become unanswered); new
        connections use the new options."""
        check_rules(config.rules, self.registry)
        self.config = config
        self.flows.config = config.flow
        if config.detect != (self.flows.detection is not None):
            self.flows.detection = self._detection(config.detect)
        self.flows.set_rules(self._table_rules(config))

    def tick(self, now_ns: int) -> None:
        """Advance packet time without a packet (idle expiry and hole timeouts in live capture)."""
        self.flows.tick(now_ns)

    def finish(self, ts_ns: int | None = None) -> None:
        """End of the capture: flush every flow (close-delimited bodies complete, pending → unanswered)."""
        self.flows.finish(ts_ns)

    def _table_rules(
        self, config: EngineConfig
    ) -> list[tuple[str, str, frozenset[int], frozenset[bytes] | None]]:
        table_rules = []
        for rule in config.rules:
            spec = self.registry[rule.protocol]
            if rule.host is not None and rule.addresses is None:
                raise RuleError(
                    f"host '{rule.host}' in rule for {rule.protocol} was not resolved to an address"
                )
            for transport in sorted(spec.transports):
                table_rules.append((rule.protocol, transport, frozenset(rule.ports), rule.addresses))
        return table_rules

    def _detection(self, on: bool) -> Detection | None:
        if not on:
            return None
        detection = Detection(
            {PROTO_TCP: classifier(self.registry, "tcp"), 17: classifier(self.registry, "udp")},
            self._new_session,
        )
        detection.stats = self.detection_stats
        return detection

    def stats_for(self, protocol: str) -> ProtocolStats:
        stats = self.protocol_stats.get(protocol)
        if stats is None:
            stats = self.protocol_stats[protocol] = ProtocolStats()
        return stats

    def options_for(self, protocol: str) -> Any:
        return self.config.options.get(protocol)

    def _new_session(
        self, protocol: str, client: Endpoint, server: Endpoint, midstream: bool, transport: int
    ) -> StreamHandler:
        if self._on_connection is not None:
            self._on_connection(client, server, transport)
        spec = self.registry[protocol]
        if transport != PROTO_TCP and not midstream and spec is DNS_SPEC:
            # a stub resolver's one query per socket: no decoder, matcher or context (pairing/dns_udp.py)
            from packetd.pairing.dns_udp import DnsUdpSession  # here: the DNS decoder on first use

            return DnsUdpSession(
                spec, self.registry, client, server, self._sink, self._stats_for, self._options_for
            )
        return Session(
            spec,
            self.registry,
            client,
            server,
            self._sink,
            self._stats_for,
            self._options_for,
            midstream,
            "tcp" if transport == PROTO_TCP else "udp",
        )
