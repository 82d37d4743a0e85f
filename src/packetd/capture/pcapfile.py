"""pcap and pcapng readers: memory-mapped and zero-copy for files, incremental for pipes (`-`).

Frames are yielded as `(ts_ns, linktype, memoryview)`; the memoryview is a slice of the mapped file (or of
the chunk read from a pipe) and is valid until the next frame is requested. Timestamps are the capture
times written in the file, converted to integer nanoseconds (never the wall clock: reference §18.1).

A damaged file is read up to the damage: a truncated last record or a corrupt block produces one warning
with its byte offset, and everything before it is analysed. A file that is not a capture at all raises
`CaptureFormatError` before any frame is produced.

pcap (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-04.html):

    file header  magic(4) major(2) minor(2) thiszone(4) sigfigs(4) snaplen(4) linktype(4)   24 bytes
                 magic a1b2c3d4 = microseconds, a1b23c4d = nanoseconds; byte-swapped = other byte order
    record       ts_sec(4) ts_frac(4) incl_len(4) orig_len(4) data(incl_len)

pcapng (draft-ietf-opsawg-pcapng): blocks of  type(4) total_len(4) body total_len(4)

    SHB  0x0A0D0D0A  byte_order_magic(4)=1A2B3C4D major(2) minor(2) section_len(8) options
    IDB  1           linktype(2) reserved(2) snaplen(4) options   (if_tsresol = 9, if_tsoffset = 14)
    EPB  6           interface(4) ts_high(4) ts_low(4) caplen(4) origlen(4) data options
    SPB  3           origlen(4) data            (no timestamp: the previous packet's is reused)
    OPB  2           interface(2) drops(2) ts_high(4) ts_low(4) caplen(4) origlen(4) data
"""

from __future__ import annotations

import mmap
import os
import struct
import sys
from collections.abc import Iterator
from typing import BinaryIO

Frame = tuple[int, int, memoryview]

MAX_RECORD = 256 * 1024  # largest snaplen any capture tool writes (262144); bigger means corruption
MAX_BLOCK = 16 * 1024 * 1024  # pcapng blocks larger than this are corrupt (Wireshark uses the same bound)
READ_CHUNK = 1 << 20  # pipe reads

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000),
    b"\xa1\xb2\xc3\xd4": (">", 1000),
    b"\x4d\x3c\xb2\xa1": ("<", 1),
    b"\xa1\xb2\x3c\x4d": (">", 1),
}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"


class CaptureFormatError(Exception):
    """The input is not a pcap or pcapng capture."""


class _PcapParser:
    """Classic pcap records."""

    def __init__(self, header: bytes) -> None:
        order, self._mult = PCAP_MAGICS[header[:4]]
        snaplen, network = struct.unpack_from(order + "II", header, 16)
        self.linktype = network & 0x03FFFFFF  # upper bits carry the FCS length (pcap draft §4)
        self._max = max(MAX_RECORD, snaplen if snaplen < 0x7FFFFFFF else 0)
        self._rec = struct.Struct(order + "IIII")
        self.header_len = 24
        self.offset = 0
        self.stopped = False

    def frames(
        self, mv: memoryview, off: int, end: int, base: int, final: bool, warn: list[str]
    ) -> Iterator[Frame]:
        unpack = self._rec.unpack_from
        mult = self._mult
        lt = self.linktype
        maxrec = self._max
        while off + 16 <= end:
            sec, frac, incl, _orig = unpack(mv, off)
            nxt = off + 16 + incl
            if incl > maxrec:
                warn.append(
                    f"corrupt pcap record at offset {base + off}: captured length {incl} is impossible; stopped there"
                )
                self.offset = end
                self.stopped = True
                return
            if nxt > end:
                break
            yield sec * 1_000_000_000 + frac * mult, lt, mv[off + 16 : nxt]
            off = nxt
        self.offset = off
        if final and off < end:
            warn.append(
                f"truncated pcap record at offset {base + off}: {end - off} bytes of a record left at end of file"
            )


class _Interface:
    __slots__ = ("linktype", "offset_ns", "snaplen", "to_ns")

    def __init__(self, linktype: int, snaplen: int, tsresol: int, offset_s: int) -> None:
        self.linktype = linktype
        self.snaplen = snaplen or 0x7FFFFFFF
        self.offset_ns = offset_s * 1_000_000_000
        if tsresol & 0x80:  # power of two
            shift = tsresol & 0x7F
            self.to_ns = lambda t: (t * 1_000_000_000) >> shift
        else:
            exp = tsresol
            if exp <= 9:
                mul = 10 ** (9 - exp)
                self.to_ns = lambda t: t * mul
            else:
                div = 10 ** (exp - 9)
                self.to_ns = lambda t: t // div


class _PcapngParser:
    """pcapng blocks (several sections, interfaces with their own link type and resolution)."""

    def __init__(self, header: bytes) -> None:
        self.header_len = 0
        self.order = "<"
        self.interfaces: list[_Interface] = []
        self.offset = 0
        self.stopped = False
        self.last_ts = 0
        self.linktype = -1

    def frames(
        self, mv: memoryview, off: int, end: int, base: int, final: bool, warn: list[str]
    ) -> Iterator[Frame]:
        while off + 12 <= end:
            raw_type = bytes(mv[off : off + 4])
            if raw_type == PCAPNG_SHB:
                magic = bytes(mv[off + 8 : off + 12])
                if magic == b"\x4d\x3c\x2b\x1a":
                    self.order = "<"
                elif magic == b"\x1a\x2b\x3c\x4d":
                    self.order = ">"
                else:
                    warn.append(f"corrupt pcapng section header at offset {base + off}; stopped there")
                    self.stopped = True
                    self.offset = end
                    return
                self.interfaces = []
            order = self.order
            btype, blen = struct.unpack_from(order + "II", mv, off)
            if blen < 12 or blen % 4 or blen > MAX_BLOCK:
                warn.append(f"corrupt pcapng block at offset {base + off}: length {blen}; stopped there")
                self.stopped = True
                self.offset = end
                return
            if off + blen > end:
                break
            if struct.unpack_from(order + "I", mv, off + blen - 4)[0] != blen:
                warn.append(
                    f"corrupt pcapng block at offset {base + off}: trailing length differs; stopped there"
                )
                self.stopped = True
                self.offset = end
                return
            body = off + 8
            if btype == 6:  # enhanced packet block
                iface, hi, lo, caplen = struct.unpack_from(order + "IIII", mv, body)
                if iface >= len(self.interfaces) or 20 + caplen > blen - 12:
                    warn.append(f"corrupt pcapng packet block at offset {base + off}; stopped there")
                    self.stopped = True
                    self.offset = end
                    return
                itf = self.interfaces[iface]
                ts = itf.to_ns(hi << 32 | lo) + itf.offset_ns
                self.last_ts = ts
                yield ts, itf.linktype, mv[body + 20 : body + 20 + caplen]
            elif btype == 3:  # simple packet block: interface 0, no timestamp
                if self.interfaces:
                    itf = self.interfaces[0]
                    origlen = struct.unpack_from(order + "I", mv, body)[0]
                    caplen = min(origlen, itf.snaplen, blen - 16)
                    yield self.last_ts, itf.linktype, mv[body + 4 : body + 4 + caplen]
            elif btype == 2:  # obsolete packet block
                iface, _drops, hi, lo, caplen = struct.unpack_from(order + "HHIII", mv, body)
                if iface < len(self.interfaces) and 20 + caplen <= blen - 12:
                    itf = self.interfaces[iface]
                    ts = itf.to_ns(hi << 32 | lo) + itf.offset_ns
                    self.last_ts = ts
                    yield ts, itf.linktype, mv[body + 20 : body + 20 + caplen]
            elif btype == 1:  # interface description block
                linktype, _res, snaplen = struct.unpack_from(order + "HHI", mv, body)
                tsresol, tsoffset = 6, 0
                opt = body + 8
                opt_end = off + blen - 4
                while opt + 4 <= opt_end:
                    code, olen = struct.unpack_from(order + "HH", mv, opt)
                    if code == 0:
                        break
                    if code == 9 and olen >= 1:
                        tsresol = mv[opt + 4]
                    elif code == 14 and olen >= 8:
                        tsoffset = struct.unpack_from(order + "q", mv, opt + 4)[0]
                    opt += 4 + ((olen + 3) & ~3)
                self.interfaces.append(_Interface(linktype, snaplen, tsresol, tsoffset))
            off += blen
        self.offset = off
        if final and off < end:
            warn.append(
                f"truncated pcapng block at offset {base + off}: {end - off} bytes of a block left at end of file"
            )


def _parser_for(header: bytes, name: str) -> _PcapParser | _PcapngParser:
    if len(header) >= 24 and header[:4] in PCAP_MAGICS:
        return _PcapParser(header)
    if (
        len(header) >= 12
        and header[:4] == PCAPNG_SHB
        and header[8:12] in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d")
    ):
        return _PcapngParser(header)
    raise CaptureFormatError(f"{name}: not a pcap or pcapng capture file")


class CaptureFile:
    """A capture file or stream. Iterate for frames; `warnings` collects what went wrong on the way."""

    def __init__(self, path: str, stream: BinaryIO | None = None) -> None:
        self.path = path
        self.warnings: list[str] = []
        self._stream = stream
        self._mm: mmap.mmap | None = None
        self._fd = -1
        self.name = "stdin" if path == "-" else path
        if path == "-" and stream is None:
            self._stream = sys.stdin.buffer
        if self._stream is not None:
            self._head = self._read_exactly(24)
            self._parser = _parser_for(self._head, self.name)
        else:
            try:
                self._fd = os.open(path, os.O_RDONLY)
            except OSError as exc:
                raise CaptureFormatError(f"{path}: cannot open: {exc.strerror}") from None
            size = os.fstat(self._fd).st_size
            if size == 0:
                os.close(self._fd)
                raise CaptureFormatError(f"{path}: empty file, not a capture")
            self._mm = mmap.mmap(self._fd, 0, access=mmap.ACCESS_READ)
            self._head = bytes(self._mm[:24])
            self._parser = _parser_for(self._head, path)

    @property
    def linktypes(self) -> list[int]:
        if isinstance(self._parser, _PcapParser):
            return [self._parser.linktype]
        return [i.linktype for i in self._parser.interfaces]

    def _read_exactly(self, n: int) -> bytes:
        assert self._stream is not None
        out = b""
        while len(out) < n:
            chunk = self._stream.read(n - len(out))
            if not chunk:
                break
            out += chunk
        return out

    def __iter__(self) -> Iterator[Frame]:
        parser = self._parser
        if self._mm is not None:
            mv = memoryview(self._mm)
            try:
                yield from parser.frames(mv, parser.header_len, len(mv), 0, True, self.warnings)
            finally:
                mv.release()
            return
        yield from self._stream_frames()

    def _stream_frames(self) -> Iterator[Frame]:
        parser = self._parser
        stream = self._stream
        assert stream is not None
        read = getattr(stream, "read1", stream.read)
        buf = self._head[parser.header_len :]
        base = parser.header_len
        while True:
            chunk = read(READ_CHUNK)
            final = not chunk
            if chunk:
                buf = buf + chunk if buf else chunk
            mv = memoryview(buf)
            yield from parser.frames(mv, 0, len(buf), base, final, self.warnings)
            if final or parser.stopped:
                return
            consumed = parser.offset
            base += consumed
            buf = buf[consumed:]

    def close(self) -> None:
        if self._mm is not None:
            try:
                self._mm.close()
            except BufferError:
                pass  # a frame is still referenced somewhere; the mapping goes with the process
            self._mm = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def stats(self) -> dict[str, tuple[int, int]]:
        return {}
