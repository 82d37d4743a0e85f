"""pcap and pcapng readers: memory-mapped and zero-copy for files, incremental for pipes (`-`).

Frames are yielded as `(ts_ns, linktype, memoryview)`; the memoryview is a slice of the mapped file (or of
the chunk read from a pipe) and is valid until the next frame is requested. Timestamps are the capture
times written in the file, converted to integer nanoseconds (never the wall clock: reference §18.1).

A damaged file is read up to the damage: a truncated last record or a corrupt block produces one warning
with its byte offset, and everything before it is analysed. A file that is not a capture at all raises
`CaptureFormatError` before any frame is produced.

Memory: the pages of a mapped file count toward the process's resident set as they are touched, so a
multi-gigabyte file would be resident by the end of the run. Every `RELEASE_EVERY` bytes the reader
gives the pages it has passed back to the kernel (`madvise(MADV_DONTNEED)`); on a read-only file mapping
that only drops them from our page tables (they stay in the page cache, and a frame still referenced
after that faults its page back in from the file), so peak RSS stays bounded whatever the file size.
Pipes are read in chunks and only the unfinished record is carried over.

Compressed captures (`.gz`, `.zst`, `.xz`, as tcpdump rotations and archives leave them) are recognised by
their magic bytes, not their name, and decompressed as a stream (gzip and xz from the standard library,
zstd by the `zstandard` package), file or pipe alike: memory stays one read chunk, never the whole file.
Damage inside the compressed data ends the read there with one warning, like damage in the capture.

pcap (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-04.html):

    file header  magic(4) major(2) minor(2) thiszone(4) sigfigs(4) snaplen(4) linktype(4)   24 bytes
                 magic a1b2c3d4 = microseconds, a1b23c4d = nanoseconds; byte-swapped = other byte order;
                 linktype: low 16 bits; the upper bits carry the FCS length (which IP lengths cut off)
    record       ts_sec(4) ts_frac(4) incl_len(4) orig_len(4) data(incl_len)

pcapng (draft-ietf-opsawg-pcapng): blocks of  type(4) total_len(4) body total_len(4), in the byte order of
the section header that opens their section; a file may hold several sections, each with its own
interfaces (link type, if_tsresol, if_tsoffset):

    SHB  0x0A0D0D0A  byte_order_magic(4)=1A2B3C4D major(2)=1 minor(2) section_len(8) options
    IDB  1           linktype(2) reserved(2) snaplen(4) options   (if_tsresol = 9, if_tsoffset = 14)
    EPB  6           interface(4) ts_high(4) ts_low(4) caplen(4) origlen(4) data options
    SPB  3           origlen(4) data            (no timestamp: the previous packet's is reused)
    OPB  2           interface(2) drops(2) ts_high(4) ts_low(4) caplen(4) origlen(4) data
    other blocks (NRB, ISB, DSB, custom, ...) are skipped.

if_tsresol: bit 7 clear = 10^-n seconds per unit, set = 2^-n (a timestamp is then converted exactly, rounded
down, as Wireshark does); absent = microseconds. if_tsoffset: seconds added to every timestamp.
"""

from __future__ import annotations

import gzip
import io
import lzma
import mmap
import os
import stat
import struct
import sys
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from packetd.net.packet import SUPPORTED_LINKTYPES
from packetd.pairing.roundtrip import MAX_TIME_S

Frame = tuple[int, int, memoryview]
Release = Callable[[int], None]

MAX_RECORD = 256 * 1024  # largest snaplen any capture tool writes (262144); bigger means corruption
MAX_BLOCK = 16 * 1024 * 1024  # pcapng blocks larger than this are corrupt (Wireshark uses the same bound)
READ_CHUNK = 1 << 20  # pipe reads
RELEASE_EVERY = 16 << 20  # mapped bytes read between two madvise calls: bounds RSS at ~16 MiB of file
# timestamps a record can show: RFC 3339 has four-digit years, so 1970-01-01 .. 9999-12-31T23:59:59.999999999Z;
# a pcapng packet stamped outside (64-bit units in whole seconds, a wild if_tsoffset) is clamped to the range
# and counted, and the file gets one warning (time.gmtime itself fails near 2^55 s)
MIN_TS_NS = 0
MAX_TS_NS = (MAX_TIME_S + 1) * 1_000_000_000 - 1
# names of link types people meet in captures we do not decode (https://www.tcpdump.org/linktypes.html)
LINKTYPE_NAMES = {6: "IEEE 802.5 Token Ring", 7: "ARCNET", 8: "SLIP", 9: "PPP", 10: "FDDI", 50: "PPP-HDLC",
                  51: "PPPoE", 104: "Cisco HDLC", 105: "IEEE 802.11", 107: "Frame Relay", 127: "802.11 radiotap",
                  147: "user 0", 187: "Bluetooth HCI H4", 192: "PPI", 195: "IEEE 802.15.4", 197: "ERF",
                  201: "Bluetooth HCI H4 with PHDR", 220: "USB Linux mmapped", 249: "NETLINK", 253: "NFLOG",
                  263: "USBPcap"}  # fmt: skip
_PAGE = mmap.PAGESIZE
_MADV_DONTNEED = getattr(mmap, "MADV_DONTNEED", None)  # absent on Windows: nothing is released there

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000),
    b"\xa1\xb2\xc3\xd4": (">", 1000),
    b"\x4d\x3c\xb2\xa1": ("<", 1),
    b"\xa1\xb2\x3c\x4d": (">", 1),
}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
_SHB_TYPE = 0x0A0D0D0A  # a palindrome: the same in both byte orders
_BYTE_ORDER_MAGIC = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}

_PCAP_REC = {o: struct.Struct(o + "IIII") for o in "<>"}  # ts_sec ts_frac incl_len orig_len
_NG_HDR = {o: struct.Struct(o + "II") for o in "<>"}  # block type, total length
_NG_U32 = {o: struct.Struct(o + "I") for o in "<>"}
_NG_EPB = {o: struct.Struct(o + "IIII") for o in "<>"}  # interface ts_high ts_low caplen
_NG_OPB = {o: struct.Struct(o + "HHIII") for o in "<>"}  # interface drops ts_high ts_low caplen
_NG_IDB = {o: struct.Struct(o + "HHI") for o in "<>"}  # linktype reserved snaplen
_NG_OPT = {o: struct.Struct(o + "HH") for o in "<>"}  # option code, length
_NG_I64 = {o: struct.Struct(o + "q") for o in "<>"}

# minimum total lengths: header and trailer (12) plus each block's fixed fields
_MIN_SHB = 28
_MIN_IDB = 20
_MIN_EPB = 32
_MIN_OPB = 32
_MIN_SPB = 16


class CaptureFormatError(Exception):
    """The input is not a pcap or pcapng capture."""


# magic bytes of the compressed formats we read (RFC 1952 §2.3.1, RFC 8878 §3.1.1, the xz file format §2.1.1)
COMPRESSED = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd", b"\xfd7zXZ\x00": "xz"}
_MAGIC_LEN = 6


def compression(head: bytes) -> str | None:
    """The compression `head` (the first bytes of a file) announces, or None."""
    for magic, kind in COMPRESSED.items():
        if head.startswith(magic):
            return kind
    return None


class _Prefixed(io.RawIOBase):
    """A stream whose first bytes were already read (to look at the magic): those, then the rest."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        super().__init__()
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        read = getattr(self._rest, "read1", self._rest.read)
        chunk = read(len(b))
        b[: len(chunk)] = chunk
        return len(chunk)


def _decompressing(kind: str, raw: BinaryIO, name: str) -> BinaryIO:
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if kind == "xz":
        return lzma.LZMAFile(raw)  # type: ignore[return-value]
    try:
        import zstandard
    except ImportError:
        raise CaptureFormatError(
            f"{name}: zstd-compressed; reading it needs the zstandard package (pip install zstandard), "
            f"or decompress it first: zstd -d {name}"
        ) from None
    return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)


# what the decompressors raise on damaged or truncated input
_DECOMPRESS_ERRORS: tuple[type[BaseException], ...] = (EOFError, gzip.BadGzipFile, lzma.LZMAError, OSError)


class _PcapParser:
    """Classic pcap records."""

    def __init__(self, header: bytes, name: str) -> None:
        order, self._mult = PCAP_MAGICS[header[:4]]
        snaplen, network = struct.unpack_from(order + "II", header, 16)
        self.name = name
        self.linktype = network & 0xFFFF  # the upper bits carry the FCS length (pcap draft §4)
        self.skipped: dict[int, int] = {}  # unsupported link type → frames (all of them, in a pcap)
        self._unsupported = self.linktype not in SUPPORTED_LINKTYPES
        self._max = max(MAX_RECORD, snaplen if snaplen < 0x7FFFFFFF else 0)
        self._rec = _PCAP_REC[order]
        self.header_len = 24
        self.offset = 0  # where the first unconsumed record starts, after `frames` returns
        self.need = 16  # bytes from `offset` needed before the next record can be produced
        self.stopped = False

    def frames(
        self,
        mv: memoryview,
        off: int,
        end: int,
        base: int,
        final: bool,
        warn: list[str],
        release: Release | None = None,
    ) -> Iterator[Frame]:
        """Frames of the records in mv[off:end]; `base` is mv's offset in the file (for warnings)."""
        unpack = self._rec.unpack_from
        mult = self._mult
        lt = self.linktype
        maxrec = self._max
        last = end - 16  # the last offset at which a whole record header fits
        incl = 0
        count = self._unsupported
        skipped = self.skipped
        while off <= last:
            stop = last if release is None else min(last, off + RELEASE_EVERY)
            while off <= stop:
                sec, frac, incl, _orig = unpack(mv, off)
                nxt = off + 16 + incl
                if nxt > end or incl > maxrec:
                    break
                if count:
                    skipped[lt] = skipped.get(lt, 0) + 1
                yield sec * 1_000_000_000 + frac * mult, lt, mv[off + 16 : nxt]
                off = nxt
            else:
                if release is not None:
                    release(off)
                continue
            break
        self.offset = off
        if off <= last and incl > maxrec:
            warn.append(
                f"{self.name}: corrupt pcap record at offset {base + off}: captured length {incl} "
                f"exceeds the largest possible ({maxrec}); stopped there"
            )
            self.stopped = True
            return
        self.need = 16 + incl if off <= last else 16
        if final and off < end:
            what = f"a record of {self.need} bytes" if off <= last else "a record header"
            warn.append(
                f"{self.name}: truncated pcap record at offset {base + off}: the file ends "
                f"{end - off} bytes into {what}; stopped there"
            )


class _Interface:
    """One pcapng interface: its link type and how its timestamps become nanoseconds."""

    __slots__ = ("div", "linktype", "mul", "offset_ns", "shift", "snaplen", "unsupported")

    def __init__(self, linktype: int, snaplen: int, tsresol: int, offset_s: int) -> None:
        self.linktype = linktype
        self.unsupported = linktype not in SUPPORTED_LINKTYPES
        self.snaplen = snaplen or 0x7FFFFFFF
        self.offset_ns = offset_s * 1_000_000_000
        self.mul = 0  # ns = units * mul             (10^-n, n <= 9)
        self.div = 0  # ns = units // div            (10^-n, n > 9)
        self.shift = 0  # ns = units * 10^9 >> shift  (2^-n)
        exp = tsresol & 0x7F
        if tsresol & 0x80 and exp:
            self.shift = exp
        elif tsresol & 0x80:
            self.mul = 1_000_000_000  # 2^0: whole seconds
        elif exp <= 9:
            self.mul = 10 ** (9 - exp)
        else:
            self.div = 10 ** (exp - 9)

    def ts_ns(self, units: int) -> int:
        if self.mul:
            return units * self.mul + self.offset_ns
        if self.shift:
            return ((units * 1_000_000_000) >> self.shift) + self.offset_ns
        return units // self.div + self.offset_ns


class _PcapngParser:
    """pcapng blocks (several sections, interfaces with their own link type and resolution)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.header_len = 0
        self.order = "<"
        self.interfaces: list[_Interface] = []
        self.offset = 0
        self.need = 12
        self.stopped = False
        self.last_ts = 0
        self.linktype = -1
        self.skipped: dict[int, int] = {}  # unsupported link type → frames
        self.clamped = 0  # packets whose timestamp was outside [MIN_TS_NS, MAX_TS_NS]
        self.first_clamped: tuple[int, int] = (0, 0)  # (file offset, timestamp as written, in ns)

    def _clamp(self, ts: int, at: int) -> int:
        if not self.clamped:
            self.first_clamped = (at, ts)
        self.clamped += 1
        return MIN_TS_NS if ts < MIN_TS_NS else MAX_TS_NS

    def _corrupt(self, warn: list[str], at: int, what: str) -> None:
        warn.append(f"{self.name}: corrupt pcapng block at offset {at}: {what}; stopped there")
        self.stopped = True

    def frames(
        self,
        mv: memoryview,
        off: int,
        end: int,
        base: int,
        final: bool,
        warn: list[str],
        release: Release | None = None,
    ) -> Iterator[Frame]:
        """Frames of the blocks in mv[off:end]; `base` is mv's offset in the file (for warnings)."""
        order = self.order
        hdr = _NG_HDR[order].unpack_from
        u32 = _NG_U32[order].unpack_from
        epb = _NG_EPB[order].unpack_from
        interfaces = self.interfaces
        wend = off + RELEASE_EVERY
        while off + 12 <= end:
            if release is not None and off >= wend:
                release(off)
                wend = off + RELEASE_EVERY
            btype, blen = hdr(mv, off)
            if btype == _SHB_TYPE:
                blen = self._section_order(mv, off, base, warn)
                if blen < 0:
                    return
                order = self.order
                hdr = _NG_HDR[order].unpack_from
                u32 = _NG_U32[order].unpack_from
                epb = _NG_EPB[order].unpack_from
            if blen < 12 or blen & 3 or blen > MAX_BLOCK:
                self._corrupt(warn, base + off, f"block length {blen}")
                return
            nxt = off + blen
            if nxt > end:
                self.need = blen
                break
            if u32(mv, nxt - 4)[0] != blen:
                self._corrupt(warn, base + off, "the trailing length differs from the leading one")
                return
            if btype == 6:  # enhanced packet block: the hot path, inline
                if blen < _MIN_EPB:
                    self._corrupt(warn, base + off, f"packet block of {blen} bytes")
                    return
                iface, hi, lo, caplen = epb(mv, off + 8)
                if iface >= len(interfaces) or caplen > blen - _MIN_EPB:
                    self._corrupt(warn, base + off, f"packet block for interface {iface}, {caplen} bytes")
                    return
                itf = interfaces[iface]
                mul = itf.mul  # the common resolutions (µs, ns) inline; the others call ts_ns
                ts = (hi << 32 | lo) * mul + itf.offset_ns if mul else itf.ts_ns(hi << 32 | lo)
                if not MIN_TS_NS <= ts <= MAX_TS_NS:
                    ts = self._clamp(ts, base + off)
                if itf.unsupported:
                    self.skipped[itf.linktype] = self.skipped.get(itf.linktype, 0) + 1
                self.last_ts = ts
                yield ts, itf.linktype, mv[off + 28 : off + 28 + caplen]
            else:
                frame = self._other_block(btype, mv, off, blen, base, warn)
                if self.stopped:
                    return
                if frame is not None:
                    yield frame
                interfaces = self.interfaces  # a new section starts a new list
            off = nxt
        else:
            self.need = 12
        self.offset = off
        if final and off < end:
            what = "a block header" if off + 12 > end else f"a block of {self.need} bytes"
            warn.append(
                f"{self.name}: truncated pcapng block at offset {base + off}: the file ends "
                f"{end - off} bytes into {what}; stopped there"
            )

    def _section_order(self, mv: memoryview, off: int, base: int, warn: list[str]) -> int:
        """A section header at `off`: take its byte order; its length, or -1 when it is corrupt."""
        new_order = _BYTE_ORDER_MAGIC.get(bytes(mv[off + 8 : off + 12]))
        if new_order is None:
            self._corrupt(warn, base + off, "section header with an unknown byte-order magic")
            return -1
        self.order = new_order
        blen: int = _NG_HDR[new_order].unpack_from(mv, off)[1]
        if blen < _MIN_SHB:
            self._corrupt(warn, base + off, f"section header of {blen} bytes")
            return -1
        return blen

    def _other_block(
        self, btype: int, mv: memoryview, off: int, blen: int, base: int, warn: list[str]
    ) -> Frame | None:
        """Every block but an EPB (rare): a packet (SPB, OPB), an interface, a section header; the rest is
        skipped. Sets `stopped` (with a warning) when the block is corrupt."""
        order = self.order
        interfaces = self.interfaces
        if btype == 3:  # simple packet block: interface 0, no timestamp
            if blen < _MIN_SPB or not interfaces:
                self._corrupt(warn, base + off, "simple packet block without an interface")
                return None
            itf = interfaces[0]
            caplen = min(_NG_U32[order].unpack_from(mv, off + 8)[0], itf.snaplen, blen - _MIN_SPB)
            if itf.unsupported:
                self.skipped[itf.linktype] = self.skipped.get(itf.linktype, 0) + 1
            return self.last_ts, itf.linktype, mv[off + 12 : off + 12 + caplen]
        if btype == 2:  # obsolete packet block
            if blen < _MIN_OPB:
                self._corrupt(warn, base + off, f"packet block of {blen} bytes")
                return None
            iface, _drops, hi, lo, caplen = _NG_OPB[order].unpack_from(mv, off + 8)
            if iface >= len(interfaces) or caplen > blen - _MIN_OPB:
                self._corrupt(warn, base + off, f"packet block for interface {iface}, {caplen} bytes")
                return None
            itf = interfaces[iface]
            ts = itf.ts_ns(hi << 32 | lo)
            if not MIN_TS_NS <= ts <= MAX_TS_NS:
                ts = self._clamp(ts, base + off)
            if itf.unsupported:
                self.skipped[itf.linktype] = self.skipped.get(itf.linktype, 0) + 1
            self.last_ts = ts
            return ts, itf.linktype, mv[off + 28 : off + 28 + caplen]
        if btype == 1:  # interface description block
            if blen < _MIN_IDB:
                self._corrupt(warn, base + off, f"interface block of {blen} bytes")
                return None
            interfaces.append(self._interface(mv, off, blen))
        elif btype == _SHB_TYPE:
            major = _NG_OPT[order].unpack_from(mv, off + 12)[0]
            if major != 1:
                self._corrupt(warn, base + off, f"section header version {major}")
                return None
            self.interfaces = []
        return None

    def _interface(self, mv: memoryview, off: int, blen: int) -> _Interface:
        order = self.order
        linktype, _res, snaplen = _NG_IDB[order].unpack_from(mv, off + 8)
        opt_hdr = _NG_OPT[order].unpack_from
        tsresol, tsoffset = 6, 0
        opt = off + 16
        opt_end = off + blen - 4
        while opt + 4 <= opt_end:
            code, olen = opt_hdr(mv, opt)
            if code == 0 or opt + 4 + olen > opt_end:
                break  # end of options (or an option running past the block: ignore the rest)
            if code == 9 and olen >= 1:
                tsresol = mv[opt + 4]
            elif code == 14 and olen >= 8:
                tsoffset = _NG_I64[order].unpack_from(mv, opt + 4)[0]
            opt += 4 + ((olen + 3) & ~3)
        return _Interface(linktype, snaplen, tsresol, tsoffset)


def _parser_for(header: bytes, name: str) -> _PcapParser | _PcapngParser:
    if header[:4] in PCAP_MAGICS:
        if len(header) < 24:
            raise CaptureFormatError(f"{name}: truncated pcap file header ({len(header)} bytes)")
        return _PcapParser(header, name)
    if header[:4] == PCAPNG_SHB and header[8:12] in _BYTE_ORDER_MAGIC:
        return _PcapngParser(name)
    if not header:
        raise CaptureFormatError(f"{name}: empty, not a capture")
    raise CaptureFormatError(f"{name}: not a pcap or pcapng capture file")


class CaptureFile:
    """A capture file or stream. Iterate for frames; `warnings` collects what went wrong on the way.

    `path` "-" reads standard input (or `stream` when given); a path that is not a regular file (a FIFO,
    `/dev/stdin`, a process substitution) is read as a stream too. Regular files are memory-mapped.
    """

    def __init__(self, path: str, stream: BinaryIO | None = None) -> None:
        self.path = path
        self._warnings: list[str] = []
        self._stream = stream
        self._owned_stream: BinaryIO | None = None
        self._mm: mmap.mmap | None = None
        self._released = 0
        self._fd = -1
        self._closers: list[BinaryIO] = []  # decompressors, closed before the stream they read
        self.name = "stdin" if path == "-" else path
        # called before each read of a stream, which may wait for its writer: `watch` flushes the records
        # it batched, so a pipe from `tcpdump -U` shows them as they come (a mapped file never waits)
        self.before_read: Callable[[], None] | None = None
        if path == "-" and stream is None:
            self._stream = sys.stdin.buffer
        if self._stream is None:
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError as exc:
                raise CaptureFormatError(f"{path}: cannot open: {exc.strerror}") from None
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                os.close(fd)
                raise CaptureFormatError(f"{path}: is a directory, not a capture")
            if stat.S_ISREG(st.st_mode) and compression(os.pread(fd, _MAGIC_LEN, 0)) is None:
                self._fd = fd
                if st.st_size == 0:
                    self.close()
                    raise CaptureFormatError(f"{path}: empty, not a capture")
                self._mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
            else:
                self._stream = self._owned_stream = os.fdopen(fd, "rb")
        self.compression: str | None = None
        if self._stream is not None:
            self._open_stream()
        try:
            if self._mm is not None:
                self._head = bytes(self._mm[:24])
            else:
                self._head = self._read_exactly(24)
            self._parser = _parser_for(self._head, self.name)
        except CaptureFormatError:
            self.close()
            raise

    def _open_stream(self) -> None:
        """Look at the stream's first bytes; a compressed stream is read through its decompressor."""
        raw = self._stream
        assert raw is not None
        head = b""
        while len(head) < _MAGIC_LEN:
            chunk = raw.read(_MAGIC_LEN - len(head))
            if not chunk:
                break
            head += chunk
        prefixed: BinaryIO = io.BufferedReader(_Prefixed(head, raw), READ_CHUNK)
        self.compression = compression(head)
        if self.compression is None:
            self._stream = prefixed
            return
        try:
            self._stream = _decompressing(self.compression, prefixed, self.name)
        except CaptureFormatError:
            self.close()
            raise
        self._closers.append(self._stream)

    @property
    def warnings(self) -> list[str]:
        """What went wrong so far: damage (with its offset), frames of link types we do not decode (one line
        per link type, with the count), timestamps clamped into the representable range (one line)."""
        out = list(self._warnings)
        parser = self._parser
        for lt, n in sorted(parser.skipped.items()):
            name = LINKTYPE_NAMES.get(lt)
            out.append(
                f"{self.name}: {n} packet{'s' if n != 1 else ''} of link type {lt}"
                f"{f' ({name})' if name else ''} skipped: not a link type packetd decodes "
                f"({', '.join(str(t) for t in sorted(SUPPORTED_LINKTYPES))})"
            )
        if isinstance(parser, _PcapngParser) and parser.clamped:
            at, ts = parser.first_clamped
            out.append(
                f"{self.name}: {parser.clamped} packet timestamp{'s' if parser.clamped != 1 else ''} outside "
                f"1970-01-01..9999-12-31 (the first at offset {at}: {ts // 1_000_000_000} s since the epoch) "
                "clamped to that range"
            )
        return out

    @property
    def linktypes(self) -> list[int]:
        """The link types seen so far (pcapng declares interfaces as it goes)."""
        if isinstance(self._parser, _PcapParser):
            return [self._parser.linktype]
        return [i.linktype for i in self._parser.interfaces]

    def _read_exactly(self, n: int) -> bytes:
        assert self._stream is not None
        out = b""
        while len(out) < n:
            try:
                chunk = self._stream.read(n - len(out))
            except _DECOMPRESS_ERRORS as exc:
                raise CaptureFormatError(f"{self.name}: {self.compression} data is damaged: {exc}") from None
            if not chunk:
                break
            out += chunk
        return out

    def _release(self, upto: int) -> None:
        """Give the mapped pages before `upto` back to the kernel (see the module docstring)."""
        aligned = upto - upto % _PAGE
        if self._mm is not None and _MADV_DONTNEED is not None and aligned > self._released:
            self._mm.madvise(_MADV_DONTNEED, self._released, aligned - self._released)
            self._released = aligned

    def __iter__(self) -> Iterator[Frame]:
        if self._mm is not None:
            # a mapped file can be read again: start afresh, so a second pass gives the same frames
            parser = self._parser = _parser_for(self._head, self.name)
            self._warnings.clear()
            mv = memoryview(self._mm)
            self._released = 0
            release = self._release if RELEASE_EVERY and _MADV_DONTNEED is not None else None
            try:
                yield from parser.frames(mv, parser.header_len, len(mv), 0, True, self._warnings, release)
            finally:
                mv.release()
            return
        yield from self._stream_frames()

    def _stream_frames(self) -> Iterator[Frame]:
        parser = self._parser
        buf = self._head[parser.header_len :]
        base = parser.header_len
        while True:
            buf, final, damage = self._fill(buf, base)
            # damaged compressed data: its one warning says why the capture ends early, not the parser's
            # "truncated record" that follows from it
            warn = self._warnings if damage is None else []
            yield from parser.frames(memoryview(buf), 0, len(buf), base, final, warn)
            if damage is not None:
                self._warnings.append(damage)
            if final or parser.stopped:
                return
            consumed = parser.offset
            base += consumed
            buf = buf[consumed:]

    def _fill(self, buf: bytes, base: int) -> tuple[bytes, bool, str | None]:
        """Read at least once, then until the unfinished record is complete (one join per round, so a large
        record arriving in small pipe reads is copied once, not once per read): (bytes, at the end, the
        damage found in compressed data or None)."""
        stream = self._stream
        assert stream is not None
        read = getattr(stream, "read1", stream.read)
        parts = [buf]
        have = len(buf)
        need = self._parser.need
        while True:
            if self.before_read is not None:
                self.before_read()
            try:
                chunk = read(READ_CHUNK)
            except _DECOMPRESS_ERRORS as exc:
                # the frames before the damage are analysed, as with a damaged capture
                damage = (
                    f"{self.name}: {self.compression} data damaged after {base + have} bytes of capture: "
                    f"{exc}; stopped there"
                )
                return b"".join(parts), True, damage
            if not chunk:
                return b"".join(parts), True, None
            parts.append(chunk)
            have += len(chunk)
            if have >= need:
                return (b"".join(parts) if len(parts) > 1 else buf), False, None

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
        for closer in self._closers:
            closer.close()
        self._closers = []
        if self._owned_stream is not None:
            self._owned_stream.close()
            self._owned_stream = None

    def stats(self) -> dict[str, tuple[int, int]]:
        return {}
