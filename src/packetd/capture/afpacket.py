"""Linux live capture: an AF_PACKET socket with a TPACKET_V3 memory-mapped ring, read block by block.

    socket(AF_PACKET, SOCK_DGRAM, ETH_P_ALL)    network-layer frames from every link type (Ethernet, tun, ...)
    setsockopt(PACKET_VERSION, TPACKET_V3)
    setsockopt(PACKET_RX_RING, tpacket_req3)   blockNum blocks of 512 KiB (default 16: an 8 MiB ring)
    SO_ATTACH_FILTER                           the rules' filter, compiled by libpcap for DLT_RAW
    mmap                                       the ring; the kernel fills blocks, we hand them back

The kernel retires a block when it is full or after RETIRE_TOV_MS; we walk every packet of a retired
block (no system call per packet) and return the block by writing TP_STATUS_KERNEL into its header.

Block and packet headers (linux/if_packet.h):

    tpacket_block_desc   version(4) offset_to_priv(4) block_status(4) num_pkts(4) offset_to_first_pkt(4)
                         blk_len(4) seq_num(8) ts_first(8) ts_last(8)
    tpacket3_hdr         next_offset(4) sec(4) nsec(4) snaplen(4) len(4) status(4) mac(2) net(2) ...  48 B
    sockaddr_ll (at 48)  family(2) protocol(2) ifindex(4) hatype(2) pkttype(1) halen(1) addr(8)

Loopback: an unbound socket (and one bound to `lo`) sees every loopback packet twice, as PACKET_OUTGOING
and as PACKET_HOST. Outgoing copies on ARPHRD_LOOPBACK devices are skipped here, so each packet, TCP or
UDP, is decoded once (libpcap does the same).
"""

from __future__ import annotations

import ctypes
import mmap
import re
import select
import socket
import struct
import time
from collections.abc import Iterator

from packetd.capture.libpcap import DLT_RAW, compile_filter
from packetd.capture.source import TICK, Frame

SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
PACKET_FANOUT = 18
PACKET_FANOUT_HASH = 0
PACKET_FANOUT_FLAG_DEFRAG = 0x8000
PACKET_MR_PROMISC = 1
TPACKET_V3 = 2
SO_ATTACH_FILTER = 26
ETH_P_ALL = 0x0003
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
PACKET_OUTGOING = 4
ARPHRD_LOOPBACK = 772
LINKTYPE_RAW = 101

BLOCK_SIZE = 512 * 1024  # reference §3.2: 512 KiB blocks, blockNum of them
FRAME_SIZE = 2048  # nominal (TPACKET_V3 packs variable-size frames); must divide BLOCK_SIZE
RETIRE_TOV_MS = 50  # a partly filled block is handed to us after at most this long: display latency bound
POLL_MS = 200  # how long to wait for a block before yielding a tick

_BLOCK = struct.Struct("<III")  # block_status, num_pkts, offset_to_first_pkt (at +8)
_PKT = struct.Struct("<IIIIIIHH")  # next_offset sec nsec snaplen len status mac net
_SLL = struct.Struct("<HBB")  # hatype, pkttype, halen (at +56)
_STATUS = struct.Struct("<I")


class SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint32),
    ]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]


def normalise_block_num(n: int) -> int:
    """Reference §2.2 bounds, without its surprises: clamp to [16, 1024] (no silent reset to 16)."""
    return max(16, min(1024, n))


def select_interfaces(pattern: str) -> list[str]:
    """`any` → ["any"]; otherwise interface names matching the regex (search, not anchored)."""
    if pattern in ("", "any"):
        return ["any"]
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid --ifaces regex '{pattern}': {exc}") from None
    names = [name for _, name in socket.if_nameindex() if rx.search(name)]
    if not names:
        known = ", ".join(name for _, name in socket.if_nameindex())
        raise ValueError(f"no interface matches --ifaces '{pattern}' (interfaces: {known})")
    return names


class _Ring:
    __slots__ = ("blocks", "cur", "done", "dropped", "iface", "mm", "mv", "received", "sock")

    def __init__(self, iface: str, sock: socket.socket, mm: mmap.mmap, blocks: int) -> None:
        self.iface = iface
        self.sock = sock
        self.mm = mm
        self.mv = memoryview(mm)
        self.blocks = blocks
        self.cur = 0
        self.done = 0  # packets of block `cur` already handed out (a consumer may stop in mid-block)
        self.received = 0
        self.dropped = 0


class AfPacketSource:
    """TPACKET_V3 rings on the selected interfaces (see module docstring)."""

    def __init__(
        self,
        iface_pattern: str,
        bpf: str,
        promisc: bool = True,
        block_num: int = 16,
        fanout_group: int | None = None,
    ) -> None:
        self.name = iface_pattern or "any"
        self._stopped = False
        self._rings: list[_Ring] = []
        self._filter_keepalive: list[object] = []
        self.filter = bpf
        insns = compile_filter(bpf, DLT_RAW) if bpf else []
        blocks = normalise_block_num(block_num)
        try:
            for iface in select_interfaces(iface_pattern):
                self._rings.append(self._open(iface, insns, promisc, blocks, fanout_group))
        except BaseException:
            self.close()
            raise

    def _open(
        self,
        iface: str,
        insns: list[tuple[int, int, int, int]],
        promisc: bool,
        blocks: int,
        fanout: int | None,
    ) -> _Ring:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        try:
            if insns:
                self._attach(sock, insns)
            if iface != "any":
                sock.bind((iface, ETH_P_ALL))
                if promisc:
                    ifindex = socket.if_nametoindex(iface)
                    sock.setsockopt(
                        SOL_PACKET,
                        PACKET_ADD_MEMBERSHIP,
                        struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b""),
                    )
            sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
            req = struct.pack(
                "IIIIIII",
                BLOCK_SIZE,
                blocks,
                FRAME_SIZE,
                BLOCK_SIZE * blocks // FRAME_SIZE,
                RETIRE_TOV_MS,
                0,
                0,
            )
            sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
            mm = mmap.mmap(
                sock.fileno(), BLOCK_SIZE * blocks, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE
            )
            if fanout is not None:
                # fanout_arg: id in the low 16 bits, mode and flags above (an unsigned int: pack it)
                arg = (fanout & 0xFFFF) | ((PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG) << 16)
                sock.setsockopt(SOL_PACKET, PACKET_FANOUT, struct.pack("I", arg))
        except BaseException:
            sock.close()
            raise
        return _Ring(iface, sock, mm, blocks)

    def _attach(self, sock: socket.socket, insns: list[tuple[int, int, int, int]]) -> None:
        arr = (SockFilter * len(insns))(*[SockFilter(c, jt, jf, k) for c, jt, jf, k in insns])
        prog = SockFprog(len(insns), ctypes.cast(arr, ctypes.POINTER(SockFilter)))
        self._filter_keepalive.extend((arr, prog))
        sock.setsockopt(
            socket.SOL_SOCKET,
            SO_ATTACH_FILTER,
            bytes(ctypes.string_at(ctypes.addressof(prog), ctypes.sizeof(prog))),
        )

    def set_filter(self, bpf: str) -> None:
        """Replace the kernel filter on every ring (reload)."""
        insns = compile_filter(bpf, DLT_RAW) if bpf else [(0x06, 0, 0, 0x40000)]  # "ret #262144": accept all
        for ring in self._rings:
            self._attach(ring.sock, insns)
        self.filter = bpf

    def __iter__(self) -> Iterator[Frame]:
        return self._frames(drain=False)

    def drain(self) -> Iterator[Frame]:
        """Frames of blocks already handed to us (stop without losing what the kernel delivered).

        It resumes where the last iteration stopped, in mid-block if need be: a packet is handed out once.
        """
        self._stopped = False
        yield from self._frames(drain=True)
        self._stopped = True

    def _frames(self, drain: bool) -> Iterator[Frame]:
        rings = self._rings
        poller = select.poll()
        for ring in rings:
            poller.register(ring.sock.fileno(), select.POLLIN | select.POLLERR)
        block_unpack = _BLOCK.unpack_from
        pkt_unpack = _PKT.unpack_from
        sll_unpack = _SLL.unpack_from
        pack_status = _STATUS.pack_into
        while not self._stopped:
            progressed = False
            for ring in rings:
                mm = ring.mm
                mv = ring.mv
                # draining reads at most one ring's worth: traffic that keeps coming must not hold it up
                budget = ring.blocks if drain else -1
                while budget:
                    boff = ring.cur * BLOCK_SIZE
                    status, num, first = block_unpack(mm, boff + 8)
                    if not status & TP_STATUS_USER:
                        break
                    progressed = True
                    budget -= 1
                    pkt = boff + first
                    done = ring.done
                    for _ in range(done):
                        pkt += pkt_unpack(mm, pkt)[0]
                    for i in range(done, num):
                        nxt, sec, nsec, snaplen, _len, _st, mac, _net = pkt_unpack(mm, pkt)
                        hatype, pkttype, _halen = sll_unpack(mm, pkt + 56)
                        if pkttype != PACKET_OUTGOING or hatype != ARPHRD_LOOPBACK:
                            ring.done = i + 1
                            yield (
                                sec * 1_000_000_000 + nsec,
                                LINKTYPE_RAW,
                                mv[pkt + mac : pkt + mac + snaplen],
                            )
                        pkt += nxt
                    ring.done = 0
                    pack_status(mm, boff + 8, TP_STATUS_KERNEL)
                    ring.cur = (ring.cur + 1) % ring.blocks
            if drain:
                return
            if not progressed and not poller.poll(POLL_MS):
                yield time.time_ns(), TICK, memoryview(b"")

    def stop(self) -> None:
        self._stopped = True

    def stats(self) -> dict[str, tuple[int, int]]:
        """Kernel counters per interface: (packets seen by the socket, packets dropped for lack of room)."""
        out: dict[str, tuple[int, int]] = {}
        for ring in self._rings:
            try:
                packets, drops, _freeze = struct.unpack(
                    "III", ring.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 12)
                )
            except OSError:
                packets = drops = 0
            ring.received += packets  # the kernel resets the counters on every read
            ring.dropped += drops
            out[ring.iface] = (ring.received, ring.dropped)
        return out

    def fileno(self) -> int:
        return self._rings[0].sock.fileno() if self._rings else -1

    def close(self) -> None:
        for ring in self._rings:
            try:
                ring.mv.release()
                ring.mm.close()
            except BufferError:
                pass  # a frame is still referenced; the mapping goes with the socket
            ring.sock.close()
        self._rings = []
