"""RST acceptance (RFC 5961 §3.2): only a reset whose sequence number lies in the receiver's window ends a
connection; any other is counted (`rst_out_of_window`) and ignored, and the conversation goes on.

The window a passive observer can know: the next sequence number expected from the RST's sender, and the
receiver's last advertised window scaled by its SYN's window-scale shift (RFC 7323: only when both SYNs
offered one); without the handshake, a fixed generous window (UNKNOWN_RST_WINDOW). Every expected value
below is computed by hand from the crafted segments; the capture test compares with tshark.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess

import pytest

from packetd.capture.pcapwrite import PcapWriter, ethernet, ipv4_tcp
from packetd.engine import Rule
from packetd.flow.table import UNKNOWN_RST_WINDOW
from packetd.net.packet import ACK, FIN, PSH, RST, SYN, PacketDecoder
from tests.flow.util import T0, Conn, Harness, seg
from tests.helpers.golden import run_file

REQ = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def _with_window(s: object, window: int, wscale: int = -1) -> object:
    s.window = window  # type: ignore[attr-defined]
    s.wscale = wscale  # type: ignore[attr-defined]
    return s


def _handshake(c: Conn, client_ws: int, server_ws: int, window: int) -> list[object]:
    return [
        _with_window(c.syn(T0), 64240, client_ws),
        _with_window(c.synack(T0 + 1), 65160, server_ws),
        _with_window(seg(T0 + 2, 0, c.at(0, 0), c.at(1, 0)), window),
    ]


def _exchange_with_rst(rst_off: int, client_ws: int = 7, server_ws: int = 7, window: int = 502) -> Harness:
    """Handshake, request, an RST "from the client" `rst_off` bytes past its next sequence number, the
    response, and the client's window advertised as `window` (unscaled) throughout."""
    c = Conn()
    h = Harness()
    h.feed(*_handshake(c, client_ws, server_ws, window))  # type: ignore[arg-type]
    h.feed(_with_window(c.data(T0 + 10, 0, 0, REQ), window))  # type: ignore[arg-type]
    h.feed(_with_window(c.data(T0 + 11, 1, 0, b"", len(REQ)), 509))  # type: ignore[arg-type]
    # the RST claims to come from the server: its sequence number is checked against the client's window
    h.feed(seg(T0 + 12, 1, c.at(1, rst_off), c.at(0, len(REQ)), RST | ACK))
    h.feed(_with_window(c.data(T0 + 13, 1, 0, RESP, len(REQ)), 509))  # type: ignore[arg-type]
    return h


def test_out_of_window_rst_is_ignored_and_the_response_arrives() -> None:
    h = _exchange_with_rst(2**31)  # half the sequence space away: no receiver accepts it
    assert h.only.stream(1) == RESP
    assert not h.only.closed
    assert h.nonzero() == {"created": 1, "rst_out_of_window": 1}


def test_rst_at_the_next_sequence_number_ends_the_connection() -> None:
    h = _exchange_with_rst(0)
    assert h.only.closed and h.only.stream(1) == b""
    assert h.nonzero() == {"created": 1, "closed": 1, "late_segments": 1}  # the response came after it


def test_window_scale_of_both_syns_widens_the_window() -> None:
    # 502 << 7 = 64256 bytes: 60 000 past RCV.NXT is inside, 70 000 is outside
    assert _exchange_with_rst(60_000).only.closed
    h = _exchange_with_rst(70_000)
    assert not h.only.closed and h.stats("rst_out_of_window") == {"rst_out_of_window": 1}


def test_window_scale_offered_by_one_side_only_is_not_used() -> None:
    # RFC 7323 §2.2: without the server's option neither side scales, so the window is 502 bytes
    assert _exchange_with_rst(501, server_ws=-1).only.closed
    h = _exchange_with_rst(600, server_ws=-1)
    assert not h.only.closed and h.stats("rst_out_of_window") == {"rst_out_of_window": 1}


def test_zero_window_accepts_only_the_exact_sequence_number() -> None:
    assert _exchange_with_rst(0, window=0).only.closed
    assert not _exchange_with_rst(1, window=0).only.closed


def test_joined_midstream_uses_the_fixed_window() -> None:
    # no handshake: the server's stream starts where the client's ACK points, and the client's window scale
    # is unknown, so UNKNOWN_RST_WINDOW bytes from there are accepted
    c = Conn()
    h = Harness().feed(c.data(T0, 0, 0, REQ))
    h.feed(seg(T0 + 1, 1, c.at(1, UNKNOWN_RST_WINDOW - 1), c.at(0, len(REQ)), RST | ACK))
    assert h.only.closed
    h = Harness().feed(c.data(T0, 0, 0, REQ))
    h.feed(seg(T0 + 1, 1, c.at(1, UNKNOWN_RST_WINDOW), c.at(0, len(REQ)), RST | ACK))
    h.feed(c.data(T0 + 2, 1, 0, RESP, len(REQ)))
    assert not h.only.closed and h.only.stream(1) == RESP
    assert h.nonzero() == {"created": 1, "midstream": 1, "rst_out_of_window": 1}


def test_rst_answering_a_syn_refuses_the_connection() -> None:
    c = Conn()
    h = Harness().feed(c.syn(T0), seg(T0 + 1, 1, 0, c.at(0, 0), RST | ACK))
    assert h.only.closed
    assert h.nonzero() == {"created": 1, "closed": 1}


def test_rst_after_the_senders_fin() -> None:
    # Linux sends the RST after its FIN with the FIN's sequence number + 1 (some stacks: the FIN's own)
    for after in (0, 1):
        c = Conn()
        h = Harness().feed(*c.handshake(T0), c.data(T0 + 10, 0, 0, REQ))
        h.feed(c.data(T0 + 11, 1, 0, RESP, len(REQ), flags=FIN | ACK))
        h.feed(seg(T0 + 12, 1, c.at(1, len(RESP)) + after, c.at(0, len(REQ)), RST))
        assert h.only.closed, after


# -- through a capture file, compared with tshark -------------------------------------------------------------
def _tcp(
    src: tuple[str, int],
    dst: tuple[str, int],
    seq: int,
    ack: int,
    flags: int,
    payload: bytes = b"",
    wscale: int = -1,
) -> bytes:
    """An IPv4/TCP packet with a window of 502 and, on a SYN, the window scale option."""
    opts = b"\x01\x03\x03" + bytes([wscale]) if wscale >= 0 else b""
    opts += b"\x00" * (-len(opts) % 4)
    tcp = struct.pack(
        "!HHIIBBHHH",
        src[1],
        dst[1],
        seq & 0xFFFFFFFF,
        ack & 0xFFFFFFFF,
        (5 + len(opts) // 4) << 4,
        flags,
        502,
        0,
        0,
    )
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(opts) + len(payload), 1, 0x4000, 64, 6, 0,
        socket.inet_aton(src[0]), socket.inet_aton(dst[0]),
    )  # fmt: skip
    return ip + tcp + opts + payload


def test_packet_decoder_reads_window_and_scale() -> None:
    frame = memoryview(ethernet(_tcp(("10.0.0.1", 1), ("10.0.0.2", 80), 7, 0, SYN, wscale=9)))
    s = PacketDecoder().decode(T0, 1, frame)
    assert s is not None and (s.window, s.wscale) == (502, 9)
    frame = memoryview(ethernet(ipv4_tcp("10.0.0.1", "10.0.0.2", 1, 80, 7, 0, ACK)))  # 65535, no options
    s = PacketDecoder().decode(T0, 1, frame)
    assert s is not None and (s.window, s.wscale) == (65535, -1)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")
def test_capture_with_a_blind_rst_matches_tshark(tmp_path: os.PathLike[str]) -> None:
    cl, sv = ("10.9.0.1", 41000), ("10.9.0.2", 80)
    ci, si = 1_000_000, 7_000_000
    packets = [
        _tcp(cl, sv, ci, 0, SYN, wscale=7),
        _tcp(sv, cl, si, ci + 1, SYN | ACK, wscale=7),
        _tcp(cl, sv, ci + 1, si + 1, ACK),
        _tcp(cl, sv, ci + 1, si + 1, ACK | PSH, REQ),
        # a blind reset "from the server", 1 GiB behind anything either side sent
        _tcp(sv, cl, si + 1 - 2**30, ci + 1 + len(REQ), RST | ACK),
        # and one "from the client" (to the server's window)
        _tcp(cl, sv, ci + 1 + len(REQ) - 2**30, 0, RST),
        _tcp(sv, cl, si + 1, ci + 1 + len(REQ), ACK | PSH, RESP),
        _tcp(cl, sv, ci + 1 + len(REQ), si + 1 + len(RESP), ACK | PSH, REQ),
        _tcp(sv, cl, si + 1 + len(RESP), ci + 1 + 2 * len(REQ), ACK | PSH, RESP),
        _tcp(cl, sv, ci + 1 + 2 * len(REQ), si + 1 + 2 * len(RESP), FIN | ACK),
        _tcp(sv, cl, si + 1 + 2 * len(RESP), ci + 2 + 2 * len(REQ), FIN | ACK),
        _tcp(cl, sv, ci + 2 + 2 * len(REQ), si + 2 + 2 * len(RESP), ACK),
    ]
    path = os.path.join(tmp_path, "blind-rst.pcap")
    with open(path, "wb") as f:
        w = PcapWriter(f)
        for i, p in enumerate(packets):
            w.write(T0 + i * 1000, ethernet(p))
    out = subprocess.run(
        ["tshark", "-r", path, "-Y", "http", "-T", "fields", "-e", "http.request.method", "-e", "http.response.code"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    seen = [tuple(line.split("\t")) for line in out.splitlines()]
    assert seen == [("GET", ""), ("", "200"), ("GET", ""), ("", "200")]  # tshark: the conversation goes on
    records, engine = run_file(path, (Rule(protocol="http", ports=(80,)),))
    ours = [(r.operation, r.status) for r in records]
    tshark_pairs = [(seen[i][0], seen[i + 1][1]) for i in range(0, len(seen), 2)]
    assert ours == tshark_pairs
    assert engine.flows.stats.rst_out_of_window == 2
    assert engine.flows.stats.closed == 1  # by the FINs
