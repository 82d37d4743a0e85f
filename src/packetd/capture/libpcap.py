"""The system libpcap through ctypes: the BPF filter compiler, the interface list, a portable live engine.

Why ctypes and not a binding from PyPI: the maintained bindings (pcapy-ng, python-libpcap) compile C
extensions against libpcap headers; ctypes needs only the shared library that tcpdump already uses, and
we call five functions. The filter is compiled by libpcap's own `pcap_compile` (ARCHITECTURE.md: we do
not write a filter compiler); the AF_PACKET engine attaches the compiled program to its socket.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import select
import socket
import sys
import time
from collections.abc import Iterator

from packetd.capture.source import TICK, Frame

PCAP_ERRBUF_SIZE = 256
PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF
DLT_RAW = 14 if sys.platform.startswith("openbsd") else 12
DLT_EN10MB = 1
SNAPLEN = 262144  # what tcpdump uses: whole packets, even with TSO/GRO


class LibpcapError(Exception):
    """libpcap is missing or reported an error."""


class BpfInsn(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint32),
    ]


class BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(BpfInsn))]


class PcapPkthdr(ctypes.Structure):
    _fields_ = [
        ("tv_sec", ctypes.c_long),
        ("tv_usec", ctypes.c_long),
        ("caplen", ctypes.c_uint32),
        ("len", ctypes.c_uint32),
    ]


class Sockaddr(ctypes.Structure):
    _fields_ = [("sa_family", ctypes.c_ushort), ("sa_data", ctypes.c_ubyte * 14)]


class PcapAddr(ctypes.Structure):
    pass


PcapAddr._fields_ = [
    ("next", ctypes.POINTER(PcapAddr)),
    ("addr", ctypes.POINTER(Sockaddr)),
    ("netmask", ctypes.POINTER(Sockaddr)),
    ("broadaddr", ctypes.POINTER(Sockaddr)),
    ("dstaddr", ctypes.POINTER(Sockaddr)),
]


class PcapIf(ctypes.Structure):
    pass


PcapIf._fields_ = [
    ("next", ctypes.POINTER(PcapIf)),
    ("name", ctypes.c_char_p),
    ("description", ctypes.c_char_p),
    ("addresses", ctypes.POINTER(PcapAddr)),
    ("flags", ctypes.c_uint),
]

_lib: ctypes.CDLL | None = None


def load() -> ctypes.CDLL:
    """The libpcap shared library (cached)."""
    global _lib
    if _lib is not None:
        return _lib
    names = [
        ctypes.util.find_library("pcap"),
        "libpcap.so.0.8",
        "libpcap.so.1",
        "libpcap.so",
        "libpcap.dylib",
    ]
    for name in names:
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.pcap_open_dead.restype = ctypes.c_void_p
        lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.pcap_compile.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(BpfProgram),
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.c_uint32,
        ]
        lib.pcap_geterr.restype = ctypes.c_char_p
        lib.pcap_geterr.argtypes = [ctypes.c_void_p]
        lib.pcap_freecode.argtypes = [ctypes.POINTER(BpfProgram)]
        lib.pcap_close.argtypes = [ctypes.c_void_p]
        lib.pcap_findalldevs.argtypes = [ctypes.POINTER(ctypes.POINTER(PcapIf)), ctypes.c_char_p]
        lib.pcap_freealldevs.argtypes = [ctypes.POINTER(PcapIf)]
        lib.pcap_create.restype = ctypes.c_void_p
        lib.pcap_create.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        for fn in (
            "pcap_set_snaplen",
            "pcap_set_promisc",
            "pcap_set_timeout",
            "pcap_set_immediate_mode",
            "pcap_set_buffer_size",
        ):
            getattr(lib, fn).argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.pcap_activate.argtypes = [ctypes.c_void_p]
        lib.pcap_setfilter.argtypes = [ctypes.c_void_p, ctypes.POINTER(BpfProgram)]
        lib.pcap_datalink.argtypes = [ctypes.c_void_p]
        lib.pcap_next_ex.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.POINTER(PcapPkthdr)),
            ctypes.POINTER(ctypes.POINTER(ctypes.c_ubyte)),
        ]
        lib.pcap_breakloop.argtypes = [ctypes.c_void_p]
        lib.pcap_stats.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.pcap_setnonblock.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p]
        lib.pcap_get_selectable_fd.argtypes = [ctypes.c_void_p]
        lib.pcap_statustostr.restype = ctypes.c_char_p
        lib.pcap_statustostr.argtypes = [ctypes.c_int]
        lib.pcap_lib_version.restype = ctypes.c_char_p
        _lib = lib
        return lib
    raise LibpcapError("libpcap not found (install libpcap0.8 on Debian/Ubuntu, libpcap elsewhere)")


def compile_filter(
    expression: str, linktype: int = DLT_RAW, snaplen: int = SNAPLEN
) -> list[tuple[int, int, int, int]]:
    """Compile a tcpdump filter expression for `linktype`; returns the BPF instructions."""
    lib = load()
    handle = lib.pcap_open_dead(linktype, snaplen)
    if not handle:
        raise LibpcapError("pcap_open_dead failed")
    prog = BpfProgram()
    try:
        if lib.pcap_compile(handle, ctypes.byref(prog), expression.encode(), 1, PCAP_NETMASK_UNKNOWN) != 0:
            raise LibpcapError(
                f"invalid filter {expression!r}: {lib.pcap_geterr(handle).decode(errors='replace')}"
            )
        insns = [
            (prog.bf_insns[i].code, prog.bf_insns[i].jt, prog.bf_insns[i].jf, prog.bf_insns[i].k)
            for i in range(prog.bf_len)
        ]
        lib.pcap_freecode(ctypes.byref(prog))
        return insns
    finally:
        lib.pcap_close(handle)


def _sockaddr_ip(sa: ctypes._Pointer[Sockaddr]) -> tuple[int, bytes] | None:
    if not sa:
        return None
    raw = ctypes.string_at(ctypes.addressof(sa.contents), 28)
    if sys.platform == "darwin" or "bsd" in sys.platform:
        family = raw[1]
    else:
        family = int.from_bytes(raw[:2], sys.byteorder)
    if family == socket.AF_INET:
        return family, raw[4:8]
    if family == socket.AF_INET6:
        return family, raw[8:24]
    return None


def _prefix(mask: bytes) -> int:
    return sum(bin(b).count("1") for b in mask)


def interfaces() -> list[tuple[str, list[str]]]:
    """(name, ["addr/prefix", ...]) for every interface libpcap can capture on that has an address."""
    lib = load()
    errbuf = ctypes.create_string_buffer(PCAP_ERRBUF_SIZE)
    alldevs = ctypes.POINTER(PcapIf)()
    if lib.pcap_findalldevs(ctypes.byref(alldevs), errbuf) != 0:
        raise LibpcapError(errbuf.value.decode(errors="replace"))
    out: list[tuple[str, list[str]]] = []
    try:
        dev = alldevs
        while dev:
            name = (dev.contents.name or b"").decode(errors="replace")
            addrs: list[str] = []
            a = dev.contents.addresses
            while a:
                ip = _sockaddr_ip(a.contents.addr)
                if ip is not None:
                    family, packed = ip
                    mask = _sockaddr_ip(a.contents.netmask)
                    text = socket.inet_ntop(family, packed)
                    plen = _prefix(mask[1]) if mask is not None else (32 if family == socket.AF_INET else 128)
                    addrs.append(f"{text}/{plen}")
                a = a.contents.next
            if addrs:
                out.append((name, addrs))
            dev = dev.contents.next
    finally:
        lib.pcap_freealldevs(alldevs)
    return out


class PcapLiveSource:
    """Portable live capture through libpcap (non-Linux systems, or `--engine pcap` anywhere).

    One handle per interface, non-blocking, in immediate mode; the loop drains every handle with
    pcap_next_ex, then waits in select() on their descriptors (so it can yield ticks and be interrupted:
    in immediate mode libpcap's own read timeout does not apply). Slower than the AF_PACKET ring (a ctypes call per
    packet), and on Linux it sees the loopback duplicates libpcap itself does not filter on `any`.
    """

    def __init__(self, ifaces: list[str], bpf: str, promisc: bool, buffer_bytes: int = 8 << 20) -> None:
        lib = load()
        self._lib = lib
        self._handles: list[tuple[str, int, int]] = []  # (name, handle, linktype)
        self.name = ",".join(ifaces)
        self._stopped = False
        errbuf = ctypes.create_string_buffer(PCAP_ERRBUF_SIZE)
        for iface in ifaces:
            h = lib.pcap_create(iface.encode(), errbuf)
            if not h:
                raise LibpcapError(f"{iface}: {errbuf.value.decode(errors='replace')}")
            lib.pcap_set_snaplen(h, SNAPLEN)
            lib.pcap_set_promisc(h, 1 if promisc else 0)
            lib.pcap_set_timeout(h, 100)
            lib.pcap_set_immediate_mode(h, 1)
            lib.pcap_set_buffer_size(h, buffer_bytes)
            rc = lib.pcap_activate(h)
            if rc < 0:
                msg = lib.pcap_geterr(h).decode(errors="replace") or lib.pcap_statustostr(rc).decode()
                lib.pcap_close(h)
                if "permission" in msg.lower() or "not permitted" in msg.lower():
                    raise PermissionError(msg)
                raise LibpcapError(f"{iface}: {msg}")
            linktype = lib.pcap_datalink(h)
            if bpf:
                prog = BpfProgram()
                if lib.pcap_compile(h, ctypes.byref(prog), bpf.encode(), 1, PCAP_NETMASK_UNKNOWN) != 0:
                    raise LibpcapError(
                        f"invalid filter {bpf!r}: {lib.pcap_geterr(h).decode(errors='replace')}"
                    )
                if lib.pcap_setfilter(h, ctypes.byref(prog)) != 0:
                    raise LibpcapError(
                        f"{iface}: cannot set filter: {lib.pcap_geterr(h).decode(errors='replace')}"
                    )
                lib.pcap_freecode(ctypes.byref(prog))
            if lib.pcap_setnonblock(h, 1, errbuf) != 0:
                raise LibpcapError(f"{iface}: {errbuf.value.decode(errors='replace')}")
            self._handles.append((iface, h, linktype))

    def __iter__(self) -> Iterator[Frame]:
        lib = self._lib
        hdr = ctypes.POINTER(PcapPkthdr)()
        data = ctypes.POINTER(ctypes.c_ubyte)()
        fds = [lib.pcap_get_selectable_fd(h) for _, h, _ in self._handles]
        while not self._stopped:
            got = False
            for _name, h, linktype in self._handles:
                while True:
                    rc = lib.pcap_next_ex(h, ctypes.byref(hdr), ctypes.byref(data))
                    if rc != 1:
                        break
                    got = True
                    h_ = hdr.contents
                    buf = ctypes.string_at(data, h_.caplen)
                    yield h_.tv_sec * 1_000_000_000 + h_.tv_usec * 1000, linktype, memoryview(buf)
                if rc < 0:
                    return
            if not got:
                ready, _, _ = select.select([fd for fd in fds if fd >= 0], [], [], 0.2)
                if not ready:
                    yield time.time_ns(), TICK, memoryview(b"")

    def stop(self) -> None:
        self._stopped = True

    def stats(self) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        buf = (ctypes.c_uint * 4)()
        for name, h, _ in self._handles:
            if self._lib.pcap_stats(h, buf) == 0:
                out[name] = (buf[0], buf[1] + buf[2])
        return out

    def close(self) -> None:
        for _, h, _ in self._handles:
            self._lib.pcap_close(h)
        self._handles = []


# link types in files whose DLT (what pcap_open_dead takes) differs from the LINKTYPE number written in the
# file (https://www.tcpdump.org/linktypes.html); the others are equal
_DLT_OF_LINKTYPE = {101: DLT_RAW}


class OfflineFilter:
    """A tcpdump filter expression run on frames in user space (capture files: `watch -r FILE EXPR`).

    Compiled by libpcap once per link type met (one file may mix them) and run by libpcap's own BPF
    interpreter, `pcap_offline_filter`: the same answers tcpdump -r gives. A frame of a link type libpcap
    cannot compile the expression for (an expression naming Ethernet fields on a raw-IP interface) does not
    pass, and the reason is kept in `refused` (one line per link type) for the caller to show.
    """

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self._lib = load()
        self._lib.pcap_offline_filter.argtypes = [
            ctypes.POINTER(BpfProgram),
            ctypes.POINTER(PcapPkthdr),
            ctypes.c_char_p,
        ]
        self._programs: dict[int, BpfProgram | None] = {}
        self.refused: dict[int, str] = {}  # link type → libpcap's reason
        self._hdr = PcapPkthdr()
        compile_filter(expression, DLT_EN10MB)  # a syntax error is reported before any frame is read

    def _program(self, linktype: int) -> BpfProgram | None:
        lib = self._lib
        handle = lib.pcap_open_dead(_DLT_OF_LINKTYPE.get(linktype, linktype), SNAPLEN)
        if not handle:
            raise LibpcapError("pcap_open_dead failed")
        prog = BpfProgram()
        try:
            if lib.pcap_compile(
                handle, ctypes.byref(prog), self.expression.encode(), 1, PCAP_NETMASK_UNKNOWN
            ):
                self.refused[linktype] = lib.pcap_geterr(handle).decode(errors="replace")
                return None
            return prog  # kept for the life of the filter (one per link type)
        finally:
            lib.pcap_close(handle)

    def __call__(self, linktype: int, data: memoryview) -> bool:
        try:
            prog = self._programs[linktype]
        except KeyError:
            prog = self._programs[linktype] = self._program(linktype)
        if prog is None:
            return False
        hdr = self._hdr
        hdr.caplen = hdr.len = len(data)
        # a copy: a mapped file's pages are read-only, and ctypes hands out pointers to writable buffers only
        return bool(self._lib.pcap_offline_filter(ctypes.byref(prog), ctypes.byref(hdr), bytes(data)))

    def close(self) -> None:
        for prog in self._programs.values():
            if prog is not None:
                self._lib.pcap_freecode(ctypes.byref(prog))
        self._programs.clear()
