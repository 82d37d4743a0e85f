"""Which protocol are these bytes? Every registered detector, run in one order (`classifier`); and the same
question asked inside a connection that is already decoded (`TunnelDetector`: an HTTP CONNECT tunnel).

`classifier(registry, transport)` is what the flow layer's detection stage asks of a new connection
(flow/detect.py): the first detector to say YES names the row, MORE anywhere means wait, else nobody.

`TunnelDetector` stands in for a session's decoder once a CONNECT tunnel turned out to carry something the
HTTP/1 decoder does not follow itself (TLS, HTTP/2 and HTTP/1 it does): it keeps the tunnel's bytes
(bounded like the flow stage: DETECT_SEGMENTS receive calls, DETECT_BUFFER bytes), and hands the
connection to the winner (`HandOver` with target `detected:<row>` and every byte kept) or stops decoding.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

from packetd.protocols.base import NO_MESSAGES, Direction, HandOver, Message, StopDecoding
from packetd.protocols.detection import DETECT_WINDOW, MORE, TLS_DEFAULT_ROW, YES, tls_detect, tls_protocol
from packetd.protocols.registry import Registry

Classify = Callable[[bytes, bytes], str | None]  # the winner's row, None: more bytes needed, "": nobody
DETECTED = "detected:"  # HandOver.target prefix: the row a detector named
TUNNEL_SEGMENTS = 16  # receive calls kept before a last decision (flow/detect.py DETECT_SEGMENTS: why)
TUNNEL_BUFFER = 16 * 1024  # bytes kept for the hand-over (flow/detect.py DETECT_BUFFER: why)


@functools.cache  # one per (registry, transport): sessions ask for it when a tunnel needs it
def classifier(registry: Registry, transport: str) -> Classify:
    """Every detector of the transport's protocols, one per family, in a fixed order: the first YES wins.

    TLS first (a ClientHello is unambiguous, and the row it is reported under is picked from its ALPN);
    then the protocols with exact magic (PostgreSQL codes, AMQP header), HTTP/1, MySQL, the
    length-prefixed binary ones, HTTP/2 (its preface is exact, its mid-stream frame walk the loosest of the
    binary checks), RESP and DNS. The order only matters for bytes two detectors
    both accept, which the detectors' tables show does not happen for what each is built on.
    """
    order = ("postgresql", "amqp", "http", "mysql", "kafka", "mongodb", "http2", "redis", "dns")
    specs = [registry[n] for n in order if registry.get(n) is not None]
    specs += [s for s in registry.specs() if s.name not in order]
    families: set[str] = set()
    detectors = []
    for spec in specs:
        if spec.detect is None or transport not in spec.transports or spec.family in families:
            continue
        families.add(spec.family)
        detectors.append((spec.name, spec.detect))
    tls = transport == "tcp"

    def classify(c2s: bytes, s2c: bytes) -> str | None:
        more = False
        if tls:
            verdict = tls_detect(c2s, s2c)
            if verdict is YES:
                row = tls_protocol(c2s)
                return row if registry.get(row) is not None else TLS_DEFAULT_ROW
            more = verdict is MORE
        for name, detect in detectors:
            verdict = detect(c2s, s2c)
            if verdict is YES:
                return name
            if verdict is MORE:
                more = True
        return None if more else ""

    return classify


class TunnelDetector:
    """A decoder that only watches: what does this tunnel carry? (see module docstring)"""

    def __init__(self, classify: Classify) -> None:
        self._classify = classify
        self._data = (bytearray(), bytearray())
        self._calls = 0

    def receive(self, direction: Direction, data: memoryview, ts_ns: int) -> Sequence[Message]:
        self._data[direction].extend(data)
        self._calls += 1
        return self._decide(
            ts_ns, self._calls >= TUNNEL_SEGMENTS or sum(map(len, self._data)) >= TUNNEL_BUFFER
        )

    def receive_gap(self, direction: Direction, nbytes: int, ts_ns: int) -> Sequence[Message]:
        # the bytes after a gap do not follow the ones kept: nothing to detect from (a DecodeError would
        # reset the session to the connection's own decoder, which the tunnel is not)
        return (StopDecoding(start_ns=ts_ns, end_ns=ts_ns, size=0, flags=0, reason="gap in a tunnel"),)

    def receive_eof(self, direction: Direction, ts_ns: int) -> Sequence[Message]:
        return self._decide(ts_ns, True)

    def _decide(self, ts_ns: int, final: bool) -> Sequence[Message]:
        c2s, s2c = self._data
        winner = self._classify(bytes(c2s[:DETECT_WINDOW]), bytes(s2c[:DETECT_WINDOW]))
        if winner:
            return (
                HandOver(
                    start_ns=ts_ns,
                    end_ns=ts_ns,
                    size=0,
                    flags=0,
                    target=DETECTED + winner,
                    client_data=bytes(c2s),
                    server_data=bytes(s2c),
                ),
            )
        if winner == "" or final:
            return (
                StopDecoding(
                    start_ns=ts_ns, end_ns=ts_ns, size=0, flags=0, reason="tunnel: no protocol detected"
                ),
            )
        return NO_MESSAGES
