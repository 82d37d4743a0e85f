"""AF_PACKET: a consumer that stops in the middle of a ring block and then drains sees every packet once.

The truth is the sender's own count: N numbered UDP datagrams to a loopback port. They are sent before the
first read, so they sit in a few ring blocks, many to a block; the consumer reads k of them (k in the
middle of the first block), stops, then drains. Before the fix the drain restarted the current block at
its first packet and handed out the first k again (watch then counted them as TCP retransmissions).
"""

from __future__ import annotations

import socket
import time

import pytest

from packetd.capture.source import TICK
from packetd.net.packet import PacketDecoder
from tests.helpers.live import free_port, live_marks

pytestmark = live_marks(server=False)

N = 400


def _numbers(frames: list[tuple[int, int, bytes]]) -> list[int]:
    dec = PacketDecoder()
    out = []
    for ts, lt, data in frames:
        seg = dec.decode(ts, lt, memoryview(data))
        assert seg is not None
        out.append(int(bytes(seg.payload)))
    return out


@pytest.mark.parametrize("first", [1, 37])
def test_stop_in_mid_block_then_drain(first: int) -> None:
    from packetd.capture.afpacket import AfPacketSource

    port = free_port()
    src = AfPacketSource("^lo$", f"udp dst port {port}", block_num=16)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for i in range(N):
                tx.sendto(str(i).encode(), ("127.0.0.1", port))
        time.sleep(0.3)  # the kernel retires a block when it fills or its timer expires
        got: list[tuple[int, int, bytes]] = []
        for ts, lt, data in src:
            if lt == TICK:
                continue
            got.append((ts, lt, bytes(data)))
            if len(got) == first:
                break
        got += [(ts, lt, bytes(data)) for ts, lt, data in src.drain()]
        numbers = _numbers(got)
        # nothing twice, nothing lost, in the order sent (one socket, one ring: the kernel keeps the order)
        assert numbers == list(range(N))
    finally:
        src.close()
