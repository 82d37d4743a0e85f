"""The pcap/pcapng writers and packet builders, read back by tshark (never by our own reader)."""

from __future__ import annotations

import os
import subprocess

import pytest

from packetd.capture.pcapwrite import (
    PcapngWriter,
    PcapWriter,
    TcpConversation,
    ethernet,
    ipv4_udp,
    write_pcap,
)
from tests.net.truth import TSHARK, tshark_raw_frames, tshark_segments

pytestmark = pytest.mark.skipif(TSHARK is None, reason="needs tshark")

T0 = 1_700_000_000_123_456_789


def _fields(path: str, *fields: str) -> list[list[str]]:
    assert TSHARK is not None
    cmd = [TSHARK, "-n", "-r", path, "-T", "fields", "-E", "occurrence=f"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


@pytest.mark.parametrize("v6", [False, True])
def test_tcp_conversation_is_consistent_for_tshark(v6: bool, tmp_path: object) -> None:
    """Sequence and acknowledgement numbers line up: tshark's TCP analysis flags nothing (no lost
    segment, no ACK of unseen data, no retransmission) and sees the handshake, the data and the close."""
    client = ("2001:db8::1", 40000) if v6 else ("10.0.0.1", 40000)
    server = ("2001:db8::2", 80) if v6 else ("10.0.0.2", 80)
    conv = TcpConversation(client, server, isn_client=0xFFFFFFF0, isn_server=7, mss=1000, v6=v6)
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 2500\r\n\r\n" + b"z" * 2500
    packets = [
        *conv.handshake(),
        *conv.send(0, request),
        *conv.send(1, response),
        conv.ack(0),
        *conv.send(0, request, segment_sizes=[5, 7]),
        *conv.close(),
    ]
    path = os.path.join(str(tmp_path), "c.pcap")
    assert write_pcap(path, [(T0 + i * 1000, ethernet(p)) for i, p in enumerate(packets)]) == len(packets)
    rows = _fields(path, "tcp.flags.str", "tcp.analysis.flags", "tcp.len", "tcp.seq_raw", "tcp.ack_raw")
    assert len(rows) == len(packets)
    assert all(r[1] == "" for r in rows), [r for r in rows if r[1]]
    assert [r[0].replace("·", "").strip() for r in rows[:3]] == ["S", "AS", "A"]
    assert rows[0][3] == str(0xFFFFFFF0) and rows[3][3] == str(0xFFFFFFF1)  # wraps in the request
    assert [int(r[2]) for r in rows[3:]] == [
        len(request),
        1000,
        1000,
        len(response) - 2000,
        0,
        5,
        7,
        len(request) - 12,
        0,
        0,
        0,
    ]
    assert "F" in rows[-3][0] and "F" in rows[-2][0]
    truth = tshark_segments(path)
    assert b"".join(t[7] for t in truth if t[4] == 80) == response


@pytest.mark.parametrize("nanosecond", [True, False])
@pytest.mark.parametrize("order", ["<", ">"])
def test_pcap_writer(nanosecond: bool, order: str, tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "w.pcap")
    frame = ethernet(ipv4_udp("10.0.0.1", "10.0.0.2", 5, 53, b"q"), vlans=[5, 6])
    with open(path, "wb") as f:
        w = PcapWriter(f, linktype=1, nanosecond=nanosecond, byteorder=order)
        w.write(T0, frame)
        w.write(T0 + 1, frame[:30], orig_len=len(frame))
    frames = tshark_raw_frames(path)
    ts = T0 if nanosecond else T0 // 1000 * 1000
    assert frames == [(ts, 1, frame), (ts + (1 if nanosecond else 0), 1, frame[:30])]
    assert _fields(path, "frame.len", "vlan.id")[1] == [str(len(frame)), "5"]


def test_pcapng_writer_resolutions(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "w.pcapng")
    frame = ethernet(ipv4_udp("10.0.0.1", "10.0.0.2", 5, 53, b"q"))
    cases = [
        (6, 0, T0 // 1000 * 1000),
        (9, 0, T0),
        (0x80 | 30, 0, None),
        (9, 1_600_000_000, T0),
        (3, -7, None),
    ]
    with open(path, "wb") as f:
        w = PcapngWriter(f, ">")
        for tsresol, offset, _ in cases:
            w.write(w.add_interface(1, tsresol=tsresol, tsoffset=offset), T0, frame)
        w.write(0, 0, frame, block="spb")
        w.write(1, 0, frame, block="opb", ts_units=T0 + 5)
    frames = tshark_raw_frames(path)
    assert [d for _, _, d in frames] == [frame] * 7
    for (ts, _, _), (_, _, want) in zip(frames, cases, strict=False):
        if want is not None:
            assert ts == want
        else:
            assert ts is not None and 0 <= T0 - ts < 1_000_000  # rounded down to the resolution
    assert frames[5][0] is None  # an SPB carries no time
    assert frames[6][0] == T0 + 5
