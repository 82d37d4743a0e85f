"""The first-run hint: packets were seen, no connection on a watched port — say where the traffic went and
what to type to decode it.

    packetd: 1523 packets seen, but no connection on a watched port; the busiest server ports:
    packetd:   45855/tcp  1490 packets  try: --proto 'http;45855'     (guessed from the port: unknown)
    packetd:     53/udp     33 packets  try: --proto 'dns;53'

The protocol is guessed from the port: a registered protocol's default port, else a port that protocol
conventionally uses (CONVENTIONAL, below), else a placeholder the user fills in. `found` is where detection
by content (protocols/<name>/detect.py) puts what it recognised on a port; it wins over the port's guess.

`watch` prints the hint at exit, and live after QUIET_S seconds without a connection (QuietHint: the clock
is an argument, as everywhere in the pure layers). Live, the kernel filter passes only the watched ports,
so when it let nothing through the hint names this host's busiest TCP servers instead (host_hint_lines,
from attribution/listening.py).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from packetd.flow.ports import PortTally
from packetd.pipeline.summary import plural
from packetd.protocols.registry import REGISTRY, Registry

HINT_PORTS = 3  # server ports named: the busiest few say enough
QUIET_S = 5.0  # live: seconds with packets and no connection before the hint is printed
PLACEHOLDER = "<protocol>"
# ports a protocol is commonly served on besides its registered defaults (development servers, second
# instances, TLS ports where the ClientHello's server name is still read)
CONVENTIONAL: dict[tuple[str, int], str] = {
    **{("tcp", p): "http" for p in (81, 443, 3000, 5000, 8000, 8008, 8081, 8443, 8888, 9000)},
    ("tcp", 6380): "redis",
    ("tcp", 5433): "postgresql",
    ("tcp", 3307): "mysql",
    ("tcp", 9093): "kafka",
    ("tcp", 9094): "kafka",
    ("tcp", 27018): "mongodb",
    ("tcp", 27019): "mongodb",
    ("tcp", 5673): "amqp",
    ("udp", 5353): "dns",  # mDNS: DNS messages
    ("tcp", 853): "dns",
}


def guess(transport: str, port: int, registry: Registry = REGISTRY) -> str | None:
    """The protocol a server on `port` most likely speaks, from the port alone (None: no idea)."""
    for spec in registry.specs():
        if port in spec.default_ports and transport in spec.transports:
            return spec.name
    return CONVENTIONAL.get((transport, port))


def hint_lines(
    ports: PortTally,
    registry: Registry = REGISTRY,
    found: Mapping[tuple[str, int], str] | None = None,
) -> list[str]:
    """The hint from the packets seen (empty when no TCP/UDP packet was seen)."""
    busiest = ports.busiest(HINT_PORTS)
    if not busiest:
        return []
    head = (
        f"packetd: {plural(ports.packets, 'packet')} seen, but no connection on a watched port; "
        f"the busiest server port{'s' if len(busiest) > 1 else ''}:"
    )
    return [head, *_tries([(t, p, plural(c, "packet")) for t, p, c in busiest], registry, found)]


def host_hint_lines(
    servers: list[tuple[int, int]],
    watched: Collection[tuple[str, int]],
    quiet: str,
    registry: Registry = REGISTRY,
) -> list[str]:
    """Live, when the kernel filter let nothing through: this host's busiest TCP servers (port,
    established connections; attribution/listening.py), those no rule watches."""
    busiest = [(p, n) for p, n in servers if ("tcp", p) not in watched][:HINT_PORTS]
    if not busiest:
        return [f"packetd: no connection on a watched port {quiet}, and no other TCP server on this host"]
    head = (
        f"packetd: no connection on a watched port {quiet}; this host's busiest TCP "
        f"server{'s' if len(busiest) > 1 else ''}:"
    )
    return [head, *_tries([("tcp", p, plural(n, "connection")) for p, n in busiest], registry, None)]


def _tries(
    rows: list[tuple[str, int, str]], registry: Registry, found: Mapping[tuple[str, int], str] | None
) -> list[str]:
    pw = max(len(f"{p}/{t}") for t, p, _ in rows)
    cw = max(len(c) for _, _, c in rows)
    lines = []
    for transport, port, count in rows:
        name = (found or {}).get((transport, port))
        how = "recognised by content" if name else ""
        if name is None:
            name = guess(transport, port, registry)
            how = "guessed from the port" if name else f"replace {PLACEHOLDER}: the port is not a known one"
        rule = f"--proto '{name or PLACEHOLDER};{port}'"
        lines.append(f"packetd:   {f'{port}/{transport}':>{pw}}  {count:>{cw}}  try: {rule}  ({how})")
    return lines


class QuietHint:
    """Live: the hint once, after QUIET_S seconds without a connection on a watched port."""

    __slots__ = ("after_s", "shown", "started_s")

    def __init__(self, started_s: float, after_s: float = QUIET_S) -> None:
        self.started_s = started_s
        self.after_s = after_s
        self.shown = False

    def due(self, now_s: float, connections: int) -> bool:
        if self.shown or connections or now_s - self.started_s < self.after_s:
            return False
        self.shown = True
        return True
