"""Synthetic captures through the whole path (pcap writer → capture reader → L2-L4 → flow table → HTTP/1
decoder → pairing): the flow layer's behaviour as records. Expected records are written out by hand.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable

import pytest

from packetd.capture.pcapwrite import PcapWriter, TcpConversation, ethernet
from packetd.engine import Rule
from packetd.pairing.roundtrip import Roundtrip
from packetd.protocols.base import Flag
from tests.helpers.golden import run_file

REQ = b"GET /wrap HTTP/1.1\r\nHost: example\r\nUser-Agent: t\r\n\r\n"  # 20 + 15 + 15 + 2 = 52 bytes
BODY = bytes(range(48, 48 + 70))
RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 70\r\n\r\n" + BODY  # 39 + 70 bytes
RULES = (Rule(protocol="http", ports=(80,)),)
SEC = 1_000_000_000


def write(path: str, packets: Iterable[bytes], t0: int = 1_700_000_000 * SEC, step: int = 1000) -> str:
    with open(path, "wb") as f:
        w = PcapWriter(f)
        for i, p in enumerate(packets):
            w.write(t0 + i * step, ethernet(p))
    return path


def summary(records: list[Roundtrip]) -> list[tuple[object, ...]]:
    out = []
    for r in records:
        req = r.request.to_json() if r.request is not None else None
        resp = r.response.to_json() if r.response is not None else None
        out.append(
            (
                r.kind,
                req and (req["method"], req["target"], req["size"]),
                resp and (resp["status_code"], resp["body_bytes"], resp["size"]),
                r.all_flags,
            )
        )
    return out


WANT = [("roundtrip", ("GET", "/wrap", 52), (200, 70, 109), 0)]


def conversation() -> tuple[TcpConversation, list[bytes], list[bytes], list[bytes], list[bytes]]:
    # both ISNs just below 2**32: every stream crosses the wrap within its first segments
    c = TcpConversation(
        ("10.1.0.1", 50000), ("10.1.0.2", 80), isn_client=2**32 - 10, isn_server=2**32 - 3, mss=16
    )
    hs = list(c.handshake())
    req = list(c.send(0, REQ))
    resp = list(c.send(1, RESP, [20] * 10))
    close = list(c.close())
    return c, hs, req, resp, close


def test_wraparound_exchange(tmp_path: os.PathLike[str]) -> None:
    _, hs, req, resp, close = conversation()
    assert len(req) == 4 and len(resp) == 6
    records, engine = run_file(write(os.path.join(tmp_path, "w.pcap"), hs + req + resp + close), RULES)
    assert summary(records) == WANT
    assert engine.flows.stats.gaps == 0 and engine.flows.stats.closed == 1


@pytest.mark.parametrize("order", list(itertools.permutations(range(4)))[::3])
def test_wraparound_exchange_reordered(tmp_path: os.PathLike[str], order: tuple[int, ...]) -> None:
    _, hs, req, resp, close = conversation()
    packets = hs + [req[i] for i in order] + [resp[i] for i in (5, *order, 4)] + close
    records, engine = run_file(write(os.path.join(tmp_path, "r.pcap"), packets), RULES)
    assert summary(records) == WANT
    assert engine.flows.stats.gaps == 0


def test_wraparound_exchange_duplicated(tmp_path: os.PathLike[str]) -> None:
    _, hs, req, resp, close = conversation()
    packets = hs + [p for p in req for _ in range(2)] + resp + resp[2:4] + close + close[:1]
    records, engine = run_file(write(os.path.join(tmp_path, "d.pcap"), packets), RULES)
    assert summary(records) == WANT
    assert engine.flows.stats.duplicates == 6  # 4 request copies, 2 response segments (the late FIN: no data)


def test_lost_body_segment_gives_a_flagged_record(tmp_path: os.PathLike[str]) -> None:
    _, hs, req, resp, close = conversation()
    packets = hs + req + resp[:2] + resp[3:] + close  # bytes 40..59 of the response (body 1..20) lost
    records, engine = run_file(write(os.path.join(tmp_path, "l.pcap"), packets), RULES)
    assert summary(records) == [("roundtrip", ("GET", "/wrap", 52), (200, 70, 109), Flag.GAP)]
    assert (engine.flows.stats.gaps, engine.flows.stats.gap_bytes) == (1, 20)


@pytest.mark.parametrize("ending", ["rst", "fin", "expiry", "end"])
def test_request_without_response_is_unanswered(tmp_path: os.PathLike[str], ending: str) -> None:
    from packetd.capture.pcapwrite import ipv4_tcp
    from packetd.net.packet import RST

    c = TcpConversation(
        ("10.1.0.1", 50000), ("10.1.0.2", 80), isn_client=2**32 - 10, isn_server=2**32 - 3, mss=16
    )
    packets = [*c.handshake(), *c.send(0, REQ)]
    if ending == "rst":
        packets.append(ipv4_tcp("10.1.0.2", "10.1.0.1", 80, 50000, c.seq[1], c.seq[0], RST))
    elif ending == "fin":
        packets += list(c.close())
    path = write(os.path.join(tmp_path, "u.pcap"), packets)
    if ending == "expiry":  # another connection's SYN six minutes later moves packet time on
        other = next(TcpConversation(("10.1.0.9", 50001), ("10.1.0.2", 80)).handshake())
        with open(path, "ab") as f:
            import struct

            frame = ethernet(other)
            f.write(struct.pack("<IIII", 1_700_000_360, 0, len(frame), len(frame)) + frame)
    records, engine = run_file(path, RULES)
    assert summary(records) == [("unanswered", ("GET", "/wrap", 52), None, 0)]
    stats = engine.flows.stats
    assert (stats.closed, stats.expired) == {"rst": (1, 0), "fin": (1, 0), "expiry": (0, 1), "end": (0, 0)}[
        ending
    ]


def test_late_retransmission_after_close_adds_nothing(tmp_path: os.PathLike[str]) -> None:
    _, hs, req, resp, close = conversation()
    packets = hs + req + resp + close + [resp[-1], req[0]]
    records, engine = run_file(write(os.path.join(tmp_path, "late.pcap"), packets), RULES)
    assert summary(records) == WANT
    assert (engine.flows.stats.created, engine.flows.stats.late_segments) == (1, 2)


def test_port_reuse_gives_two_connections(tmp_path: os.PathLike[str]) -> None:
    _, hs, req, resp, close = conversation()
    c2 = TcpConversation(("10.1.0.1", 50000), ("10.1.0.2", 80), isn_client=123_456, isn_server=654_321)
    again = [*c2.handshake(), *c2.send(0, REQ), *c2.send(1, RESP), *c2.close()]
    records, engine = run_file(
        write(os.path.join(tmp_path, "reuse.pcap"), hs + req + resp + close + again), RULES
    )
    assert summary(records) == WANT * 2
    assert (engine.flows.stats.created, engine.flows.stats.closed, engine.flows.stats.midstream) == (2, 2, 0)
