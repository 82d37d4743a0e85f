"""The detection stage in the flow layer: unclaimed connections are detected, replayed, or dropped.

Connections are written segment by segment (tests/flow/util.seg) and fed to a real Engine; the truth for
"the same records as with the rule" is the same segments run through an Engine with the right rule.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence

from packetd.engine import Engine, EngineConfig, Rule
from packetd.flow.detect import DETECT_SEGMENTS, UNDETECTED
from packetd.net.packet import ACK, FIN, SYN, Segment
from packetd.pairing.roundtrip import Roundtrip
from tests.flow.util import SEC, T0, seg, udp

CLIENT = ("10.0.0.1", 41000)

GET = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"


def conversation(
    server: tuple[str, int],
    exchanges: Sequence[tuple[int, bytes]],
    client: tuple[str, int] = CLIENT,
    syn: bool = True,
    cut: int = 0,
) -> list[Segment]:
    """A TCP connection: handshake (if `syn`), then each (direction, bytes) in order (cut into `cut`-byte
    segments when given), then FINs."""
    isn = [1000, 5000]
    off = [0, 0]
    ts = T0
    out = []

    def at(d: int) -> int:
        return isn[d] + 1 + off[d]

    if syn:
        out += [
            seg(ts, 0, isn[0], 0, SYN, client=client, server=server),
            seg(ts + 1, 1, isn[1], at(0), SYN | ACK, client=client, server=server),
            seg(ts + 2, 0, at(0), at(1), ACK, client=client, server=server),
        ]
    for d, data in exchanges:
        step = cut or len(data)
        for i in range(0, len(data), step):
            ts += 1000
            piece = data[i : i + step]
            out.append(seg(ts, d, at(d), at(d ^ 1), ACK, piece, client=client, server=server))
            off[d] += len(piece)
    for d in (0, 1):
        ts += 1000
        out.append(seg(ts, d, at(d), at(d ^ 1), FIN | ACK, client=client, server=server))
    return out


def run(
    segments: Sequence[Segment], rules: tuple[Rule, ...] = (), detect: bool = True
) -> tuple[list[str], Engine]:
    records: list[Roundtrip] = []
    engine = Engine(EngineConfig(rules=rules, detect=detect), records.append)
    for s in segments:
        engine.flows.segment(s)
    engine.finish()
    return [json.dumps(r.to_json(), sort_keys=True) for r in records], engine


def test_http_on_an_odd_port_same_records_as_the_rule() -> None:
    segs = conversation(("10.0.0.2", 8123), [(0, GET), (1, OK), (0, GET), (1, OK)])
    want, _ = run(segs, (Rule(protocol="http", ports=(8123,)),), detect=False)
    got, engine = run(segs)
    assert len(want) == 2
    assert got == want
    assert engine.flows.detection is not None
    assert engine.flows.detection.stats.detected == {"http": 1}


def test_small_segments_lose_nothing() -> None:
    """Every byte of the first messages reaches the decoder: detection waits (MORE) across segments."""
    segs = conversation(("10.0.0.2", 8123), [(0, GET), (1, OK)], cut=3)
    want, _ = run(segs, (Rule(protocol="http", ports=(8123,)),), detect=False)
    got, _ = run(segs)
    assert len(want) == 1
    assert got == want


def test_server_first_protocol_mysql_greeting() -> None:
    body = (
        b"\x0a8.0.36\x00" + struct.pack("<I", 11) + b"abcdefgh\x00" + struct.pack("<H", 0xF7FF)
        + b"\xff\x02\x00\xff\xc1\x15" + b"\x00" * 10 + b"ijklmnopqrst\x00mysql_native_password\x00"
    )  # fmt: skip
    greeting = struct.pack("<I", len(body))[:3] + b"\x00" + body
    segs = conversation(("10.0.0.2", 13306), [(1, greeting)])
    want, _ = run(segs, (Rule(protocol="mysql", ports=(13306,)),), detect=False)
    got, engine = run(segs)
    assert got == want
    assert engine.flows.detection is not None and engine.flows.detection.stats.detected == {"mysql": 1}


def test_nobody_claims_it_then_one_lookup_per_packet() -> None:
    """An SSH-like exchange: both banners say NO everywhere; the flow is dropped from decoding, counted on
    its server port, and its later segments touch nothing but the flow's last-seen time."""
    banner = b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"
    segs = conversation(
        ("10.0.0.2", 2222), [(1, banner), (0, banner), (0, b"\x00" * 300), (1, b"\x01" * 900)]
    )
    before_fin = segs[:-2]
    records: list[Roundtrip] = []
    engine = Engine(EngineConfig(rules=(), detect=True), records.append)
    for s in before_fin[:5]:  # handshake + both banners
        engine.flows.segment(s)
    (flow,) = engine.flows.flows()
    assert flow.protocol is UNDETECTED and flow.handler is None
    stats = engine.flows.detection.stats  # type: ignore[union-attr]
    assert stats.undetected == 1 and stats.undetected_ports == {("tcp", 2222): 1}
    packets = flow.streams[0].packets + flow.streams[1].packets
    for s in before_fin[5:]:
        engine.flows.segment(s)
    assert flow.streams[0].packets + flow.streams[1].packets == packets  # not tracked any further
    assert flow.last_ns == before_fin[-1].ts_ns
    for s in segs[-2:]:
        engine.flows.segment(s)
    assert engine.flows.flows() == []  # its FIN ended it
    engine.finish()
    assert records == []


def test_explicit_rule_wins_on_its_port() -> None:
    """HTTP bytes on a port a Redis rule claims are Redis's to decode (as inline commands), not detected."""
    segs = conversation(("10.0.0.2", 8123), [(0, GET), (1, OK)])
    got, engine = run(segs, (Rule(protocol="redis", ports=(8123,)),), detect=True)
    assert got and {json.loads(r)["protocol"] for r in got} == {"redis"}
    assert engine.flows.detection is not None and engine.flows.detection.stats.detected == {}
    assert "redis" in engine.protocol_stats


def test_midstream_roles_swapped_from_content() -> None:
    """Joined mid-stream with the server on the higher port: the port guess says the client serves; the
    HTTP request in the 'server's' bytes corrects it, and the record is flagged midstream."""
    server = ("10.0.0.2", 45000)
    client = ("10.0.0.1", 1000)
    segs = conversation(server, [(0, GET), (1, OK)], client=client, syn=False)
    got, engine = run(segs)
    (rec,) = [json.loads(r) for r in got]
    assert rec["client"] == {"ip": "10.0.0.1", "port": 1000}
    assert rec["server"] == {"ip": "10.0.0.2", "port": 45000}
    assert rec["flags"] == ["midstream"]
    assert engine.flows.detection is not None and engine.flows.detection.stats.swapped == 1


def test_midstream_first_bytes_inside_a_message() -> None:
    """The capture starts inside a request body: the next segment's request line decides."""
    segs = conversation(
        ("10.0.0.2", 8123), [(0, b"ody of the previous request"), (0, GET), (1, OK)], syn=False
    )
    got, _ = run(segs)
    (rec,) = [json.loads(r) for r in got]
    assert rec["operation"] == "GET" and "midstream" in rec["flags"]


def test_bound_forces_a_decision() -> None:
    """Inline commands with no reply stay MORE; after DETECT_SEGMENTS data segments the flow is given up."""
    exchanges = [(0, b"PING\r\n")] * (DETECT_SEGMENTS + 3)
    segs = conversation(("10.0.0.2", 16379), exchanges)
    got, engine = run(segs)
    assert got == []
    stats = engine.flows.detection.stats  # type: ignore[union-attr]
    assert stats.bound_hits == 1 and stats.undetected == 1


def test_dns_over_udp_on_an_odd_port() -> None:
    q = struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\x01a\x02io\x00" + struct.pack("!HH", 1, 1)
    r = (
        struct.pack("!HHHHHH", 7, 0x8180, 1, 1, 0, 0)
        + q[12:]
        + b"\xc0\x0c"
        + struct.pack("!HHIH", 1, 1, 60, 4)
        + bytes(4)
    )
    server = ("10.0.0.53", 5300)
    segs = [
        udp(T0, 0, q, client=CLIENT, server=server),
        udp(T0 + SEC // 100, 1, r, client=CLIENT, server=server),
    ]
    want, _ = run(segs, (Rule(protocol="dns", ports=(5300,)),), detect=False)
    got, _ = run(segs)
    assert len(want) == 1
    assert got == want


def test_random_udp_is_dropped() -> None:
    server = ("10.0.0.9", 4433)
    segs = [udp(T0 + i, i % 2, bytes([0xC3, i]) * 600, client=CLIENT, server=server) for i in range(6)]
    got, engine = run(segs)
    assert got == []
    assert engine.flows.detection.stats.undetected_ports == {("udp", 4433): 1}  # type: ignore[union-attr]


def test_no_detection_without_the_switch() -> None:
    segs = conversation(("10.0.0.2", 8123), [(0, GET), (1, OK)])
    got, engine = run(segs, (Rule(protocol="http", ports=(80,)),), detect=False)
    assert got == [] and engine.flows.stats.unmatched > 0


def test_what_was_found_where() -> None:
    """The summary line and the first-run hint's `found`: the detected protocol per server port; flows
    still being detected or nobody claimed are not 'connections on a watched port'."""
    http = conversation(("10.0.0.2", 8123), [(0, GET), (1, OK)])
    ssh = conversation(
        ("10.0.0.3", 2222), [(1, b"SSH-2.0-x\r\n"), (0, b"SSH-2.0-y\r\n")], client=("10.0.0.1", 41001)
    )
    _, engine = run(ssh)
    assert engine.connections_decoded() == 0  # so `watch` still prints its first-run hint
    _, engine = run(http + ssh)
    stats = engine.flows.detection.stats  # type: ignore[union-attr]
    assert engine.connections_decoded() == 1
    assert stats.detected_ports == {("tcp", 8123): "http"}
    assert stats.describe() == (
        "packetd: detected by content: http 1 (on tcp/8123 http); 1 connections no protocol claimed (tcp/2222 1)"
    )


def test_a_reload_turning_detection_off_and_on_keeps_its_counts() -> None:
    """The agent exports these counts as counters (agent/selfmetrics.py), which must not go backwards: a
    reload that turns detection off and on again counts on from where it was."""
    first = conversation(("10.0.0.2", 8123), [(0, GET), (1, OK)])
    second = conversation(("10.0.0.3", 8124), [(0, GET), (1, OK)], client=("10.0.0.9", 40000))
    engine = Engine(EngineConfig(rules=(), detect=True), lambda r: None)
    for s in first:
        engine.flows.segment(s)
    engine.reconfigure(EngineConfig(rules=(), detect=False))
    engine.reconfigure(EngineConfig(rules=(), detect=True))
    for s in second:
        engine.flows.segment(s)
    assert engine.flows.detection is not None
    assert engine.flows.detection.stats.detected == {"http": 2}
