"""CaptureFile against tshark: every frame's (ts_ns, link type, bytes), for every format variant.

Variants come from two writers: editcap/mergecap (Wireshark's own, independent of us) and PcapWriter /
PcapngWriter (ours, for what editcap cannot write: big-endian files, odd resolutions, several sections,
OPB/SPB). Either way the truth is tshark's reading of the very file we read. Damage tests work out the byte
offset of the damage by hand (from the lengths written) and compare the frames before it with tshark's.
"""

from __future__ import annotations

import io
import os
import random
import re
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packetd.capture import pcapfile
from packetd.capture.pcapfile import CaptureFile, CaptureFormatError
from packetd.capture.pcapwrite import PcapngWriter
from tests.net import variants as v
from tests.net.fixtures import corpus_file, needs_tshark
from tests.net.truth import CORPUS, WTAP_ENCAP, RawFrame, our_raw_frames, tshark_raw_frames

LINKTYPE_OF_ENCAP = {1: 1, 25: 113, 15: 0, 210: 276, 7: 101}
SMALL = [  # one per link type and format found in the corpus
    "zeek_zeek__get.pcap",  # Ethernet, pcap µs
    "njcx_packetbeat__http_minitwit.pcap",  # Linux cooked, pcap µs
    "njcx_packetbeat__http_get_2k_file.pcap",  # BSD loopback, pcap µs
    "ntop_nDPI__mysql.pcapng",  # pcapng, ns
    "ntop_nDPI__dns.pcap",  # pcapng with a .pcap name, QinQ + PPPoE
]


def _tmp(tmp_path: object, name: str) -> str:
    return os.path.join(str(tmp_path), name)


def assert_reads_like_tshark(path: str) -> list[RawFrame]:
    truth = tshark_raw_frames(path)
    ours, warnings = our_raw_frames(path)
    assert warnings == []
    assert ours == truth
    with open(path, "rb") as f:  # and the same as a stream
        cf = CaptureFile("-", stream=f)
        streamed = [(ts, WTAP_ENCAP.get(lt, -lt), bytes(d)) for ts, lt, d in cf]
    assert streamed == truth
    return truth


# --- formats ---------------------------------------------------------------------------------------------


@needs_tshark
def test_merged_corpus_multi_interface_pcapng(corpus_merged: str, corpus_frames: list[RawFrame]) -> None:
    assert len(corpus_frames) > 5000
    assert {e for _, e, _ in corpus_frames} == {1, 15, 25}
    assert_reads_like_tshark(corpus_merged)


@needs_tshark
@pytest.mark.parametrize("name", SMALL)
@pytest.mark.parametrize("fmt", ["pcap", "nsecpcap", "pcapng"])
def test_editcap_formats(name: str, fmt: str, tmp_path: object) -> None:
    src = corpus_file(name)
    path = v.editcap(src, _tmp(tmp_path, f"{name}.{fmt}"), "-F", fmt)
    truth = assert_reads_like_tshark(path)
    assert [f[2] for f in truth] == [f[2] for f in tshark_raw_frames(src)]


@needs_tshark
@pytest.mark.slow
@pytest.mark.parametrize("path", CORPUS, ids=os.path.basename)
def test_corpus_file(path: str) -> None:
    assert_reads_like_tshark(path)


@needs_tshark
@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nanosecond", [False, True])
def test_pcap_byte_orders_and_resolutions(
    order: str, nanosecond: bool, corpus_frames: list[RawFrame], tmp_path: object
) -> None:
    for encap, linktype in ((1, 1), (25, 113), (15, 0)):
        frames = [(ts, d) for ts, e, d in corpus_frames if e == encap and ts is not None]
        path = v.write_pcap(
            _tmp(tmp_path, f"{linktype}.pcap"), frames, linktype, nanosecond=nanosecond, byteorder=order
        )
        truth = assert_reads_like_tshark(path)
        assert [d for _, _, d in truth] == [d for _, d in frames]
        if nanosecond:
            assert [ts for ts, _, _ in truth] == [ts for ts, _ in frames]


# section layouts: byte order, if_tsresol (10^-n, or 2^-n with bit 7), whether to use if_tsoffset
LAYOUTS = [
    ("<", 6, 0),
    (">", 9, 0),
    ("<", 0x80 | 30, 1),
    (">", 3, 0),
    ("<", 0x80 | 20, 0),
    (">", 10, 1),  # 0.1 ns units: only fit in 64 bits with an offset
    ("<", 0, 0),  # whole seconds
    (">", 9, -1),  # a negative offset
    ("<", 0x80 | 10, 0),
    (">", 0x80 | 0, 0),  # 2^0: whole seconds
]


@needs_tshark
def test_pcapng_sections_byte_orders_resolutions_offsets(
    corpus_frames: list[RawFrame], tmp_path: object
) -> None:
    """One section per corpus file (they alternate byte order), each with its own interface resolution
    and offset; enhanced and obsolete packet blocks alternate."""
    groups = v.split_runs(corpus_frames, LINKTYPE_OF_ENCAP)
    assert len(groups) > 20

    def layout(i: int) -> dict[str, object]:
        order, tsresol, offset = LAYOUTS[i % len(LAYOUTS)]
        first = min(ts for ts, _ in groups[i][1]) // 1_000_000_000
        return {"order": order, "tsresol": tsresol, "tsoffset": offset * (first - 1) if offset else 0}

    path = v.write_pcapng_sections(
        _tmp(tmp_path, "sections.pcapng"), groups, layout, lambda i: "opb" if i % 3 == 2 else "epb"
    )
    truth = assert_reads_like_tshark(path)
    assert [d for _, _, d in truth] == [d for _, _, d in corpus_frames]


@needs_tshark
def test_pcapng_simple_packet_blocks(corpus_frames: list[RawFrame], tmp_path: object) -> None:
    """SPBs carry no timestamp: tshark shows none; we give the previous packet's time (0 before any)."""
    eth = [(ts, d) for ts, e, d in corpus_frames if e == 1 and ts is not None][:300]
    path = _tmp(tmp_path, "spb.pcapng")
    with open(path, "wb") as f:
        w = PcapngWriter(f, ">")
        iface = w.add_interface(1, snaplen=100)  # SPB data is cut to the interface's snaplen
        w.write(iface, 0, eth[0][1][:100], orig_len=len(eth[0][1]), block="spb")
        for i, (ts, data) in enumerate(eth):
            snapped = data[:100]
            w.write(iface, ts, snapped, orig_len=len(data), block="spb" if i % 2 else "epb")
    truth = tshark_raw_frames(path)
    ours, warnings = our_raw_frames(path)
    assert warnings == []
    assert (
        [d for _, _, d in ours] == [d for _, _, d in truth] == [eth[0][1][:100]] + [d[:100] for _, d in eth]
    )
    expected_ts = [0]
    for i, (ts, _) in enumerate(eth):
        expected_ts.append(expected_ts[-1] if i % 2 else ts // 1000 * 1000)  # µs resolution
    assert [ts for ts, _, _ in ours] == expected_ts
    assert [ts for ts, _, _ in truth] == [None if i % 2 == 0 else t for i, t in enumerate(expected_ts)]


@needs_tshark
def test_pcapng_skips_other_blocks(corpus_frames: list[RawFrame], tmp_path: object) -> None:
    """Name resolution, interface statistics, decryption secrets and custom blocks are skipped."""
    eth = [(ts, d) for ts, e, d in corpus_frames if e == 1 and ts is not None][:50]
    path = _tmp(tmp_path, "other.pcapng")
    with open(path, "wb") as f:
        w = PcapngWriter(f)
        iface = w.add_interface(1, tsresol=9)
        for i, (ts, data) in enumerate(eth):
            w.write(iface, ts, data)
            if i % 10 == 3:
                w._block(4, struct.pack("<HH4s", 1, 4 + 8, b"\x7f\0\0\1") + b"lo\0\0\0\0\0\0" + b"\0" * 4)
                w._block(5, struct.pack("<III", 0, 0, 0) + b"\0" * 4)  # ISB with opt_endofopt
                w._block(0x0A, struct.pack("<II", 0x544C534B, 6) + b"secret")  # DSB, TLS key log
                w._block(0x40000BAD, struct.pack("<I", 32473) + b"vendor")  # custom block
    truth = assert_reads_like_tshark(path)
    assert [d for _, _, d in truth] == [d for _, d in eth]


@needs_tshark
def test_pcapng_several_interfaces_per_section(tmp_path: object) -> None:
    """mergecap of files with different link types: one section, an interface per input."""
    srcs = [corpus_file(n) for n in SMALL[:4]]
    path = v.mergecap(_tmp(tmp_path, "m.pcapng"), srcs, "-F", "pcapng")  # merged chronologically
    truth = assert_reads_like_tshark(path)
    assert {e for _, e, _ in truth} == {1, 25, 15}


# --- damage ----------------------------------------------------------------------------------------------


def _read(data: bytes, tmp_path: object, mode: str) -> tuple[list[RawFrame], list[str]]:
    if mode == "mmap":
        path = _tmp(tmp_path, "cut")
        with open(path, "wb") as f:
            f.write(data)
        return our_raw_frames(path)
    stream = ChunkedStream(data, random.Random(len(data)))
    cf = CaptureFile("-", stream=stream)  # type: ignore[arg-type]
    frames = [(ts, WTAP_ENCAP.get(lt, -lt), bytes(d)) for ts, lt, d in cf]
    return frames, cf.warnings


class ChunkedStream:
    """A pipe: read1 returns what has "arrived", a random 1..3000 bytes at a time."""

    def __init__(self, data: bytes, rng: random.Random) -> None:
        self._data = data
        self._pos = 0
        self._rng = rng

    def read(self, n: int = -1) -> bytes:
        return self.read1(n)

    def read1(self, n: int = -1) -> bytes:
        size = self._rng.randint(1, 3000)
        if n >= 0:
            size = min(size, n)
        out = self._data[self._pos : self._pos + size]
        self._pos += len(out)
        return out


def _truncation_cases(tmp_path: object) -> Iterator[tuple[str, bytes, int, list[RawFrame]]]:
    """(name, whole file, offset of the last record worked out by hand, tshark's frames before it)."""
    src = corpus_file("zeek_zeek__get.pcap")
    frames = tshark_raw_frames(src)
    eth = [(ts, d) for ts, _, d in frames if ts is not None]
    variants = {
        "pcap_le_us": src,
        "pcap_be_ns": v.write_pcap(_tmp(tmp_path, "be.pcap"), eth, 1, byteorder=">"),
        "pcapng_editcap": v.editcap(src, _tmp(tmp_path, "e.pcapng"), "-F", "pcapng"),
        "pcapng_be": v.write_pcapng_sections(
            _tmp(tmp_path, "be.pcapng"), [(1, eth)], lambda i: {"order": ">", "tsresol": 9}
        ),
    }
    for name, path in variants.items():
        with open(path, "rb") as f:
            data = f.read()
        truth = tshark_raw_frames(path)
        if name.startswith("pcap_"):
            last = len(data) - 16 - len(truth[-1][2])  # a record is 16 bytes of header and the data
        else:
            order = "<" if data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
            last = len(data) - struct.unpack(order + "I", data[-4:])[0]  # a block ends with its length
            assert struct.unpack_from(order + "I", data, last)[0] == 6  # the last block is an EPB
        yield name, data, last, truth


@needs_tshark
@pytest.mark.parametrize("mode", ["mmap", "stream"])
def test_truncated_last_record_at_every_offset(mode: str, tmp_path: object) -> None:
    for name, data, last, truth in _truncation_cases(tmp_path):
        assert len(data) - last > 60, name
        for cut in range(last, len(data) + 1):
            frames, warnings = _read(data[:cut], tmp_path, mode)
            if cut in (last, len(data)):
                assert warnings == [], (name, cut)
                assert frames == (truth[:-1] if cut == last else truth), (name, cut)
                continue
            assert frames == truth[:-1], (name, cut)
            assert len(warnings) == 1, (name, cut, warnings)
            assert (
                f"truncated pcap{'ng block' if 'ng' in name else ' record'} at offset {last}:" in warnings[0]
            )


def test_truncated_message_names_file_offset_and_sizes(tmp_path: object) -> None:
    path = _tmp(tmp_path, "t.pcap")
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        f.write(struct.pack("<IIII", 1, 2, 60, 60) + b"\0" * 60)
        f.write(struct.pack("<IIII", 1, 3, 60, 60) + b"\0" * 10)
    cf = CaptureFile(path)
    assert len(list(cf)) == 1
    assert cf.warnings == [
        f"{path}: truncated pcap record at offset 100: the file ends 26 bytes into a record of 76 bytes; "
        "stopped there"
    ]


def _pcapng_with_offsets(frames: list[bytes], order: str = "<") -> tuple[bytearray, list[int]]:
    """A pcapng of Ethernet EPBs, and the offset at which each EPB starts (told by the writer)."""
    out = io.BytesIO()
    w = PcapngWriter(out, order)
    iface = w.add_interface(1, tsresol=9)
    offsets = []
    for i, frame in enumerate(frames):
        offsets.append(out.tell())
        w.write(iface, 1_000_000_000 * (i + 1), frame)
    return bytearray(out.getvalue()), offsets


FRAMES = [bytes([i]) * (60 + i) for i in range(8)]


def _corrupt_pcapng(kind: str, order: str) -> tuple[bytes, int, int]:
    """(file, offset of the corrupt block, frames before it)."""
    data, offsets = _pcapng_with_offsets(FRAMES, order)
    k = 5
    at = offsets[k]
    u32 = struct.Struct(order + "I")
    blen = u32.unpack_from(data, at + 4)[0]
    if kind == "length_not_multiple_of_4":
        u32.pack_into(data, at + 4, blen + 1)
    elif kind == "length_too_small":
        u32.pack_into(data, at + 4, 8)
    elif kind == "length_huge":
        u32.pack_into(data, at + 4, 0x7FFFFFF0)
    elif kind == "trailer_differs":
        u32.pack_into(data, at + blen - 4, blen + 4)
    elif kind == "unknown_interface":
        u32.pack_into(data, at + 8, 3)
    elif kind == "caplen_past_block":
        u32.pack_into(data, at + 20, blen)
    elif kind == "epb_too_short":
        data[at : at + blen] = u32.pack(6) + u32.pack(28) + b"\0" * 16 + u32.pack(28)
    elif kind == "section_bad_magic":
        shb_len = u32.unpack_from(data, 4)[0]  # the file starts with a section header: copy it
        bad = bytearray(data[:shb_len])
        bad[8:12] = b"\x12\x34\x56\x78"
        data[at:at] = bad
    elif kind == "section_version_2":
        shb_len = u32.unpack_from(data, 4)[0]
        bad = bytearray(data[:shb_len])
        struct.pack_into(order + "H", bad, 12, 2)
        data[at:at] = bad
    elif kind == "spb_without_interface":
        shb_len = u32.unpack_from(data, 4)[0]
        spb = u32.pack(3) + u32.pack(16 + 4) + u32.pack(4) + b"abcd" + u32.pack(16 + 4)
        data[at:at] = bytes(data[:shb_len]) + spb  # a new section resets the interfaces
        return bytes(data), at + shb_len, k
    else:
        raise AssertionError(kind)
    return bytes(data), at, k


CORRUPTIONS = [
    "length_not_multiple_of_4",
    "length_too_small",
    "length_huge",
    "trailer_differs",
    "unknown_interface",
    "caplen_past_block",
    "epb_too_short",
    "section_bad_magic",
    "section_version_2",
    "spb_without_interface",
]


@pytest.mark.parametrize("kind", CORRUPTIONS)
@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("mode", ["mmap", "stream"])
def test_corrupt_pcapng_block(kind: str, order: str, mode: str, tmp_path: object) -> None:
    data, at, before = _corrupt_pcapng(kind, order)
    frames, warnings = _read(data, tmp_path, mode)
    assert [d for _, _, d in frames] == FRAMES[:before]
    assert [ts for ts, _, _ in frames] == [1_000_000_000 * (i + 1) for i in range(before)]
    assert len(warnings) == 1, warnings
    assert f"corrupt pcapng block at offset {at}:" in warnings[0]
    assert warnings[0].endswith("stopped there")


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("mode", ["mmap", "stream"])
def test_corrupt_pcap_record(order: str, mode: str, tmp_path: object) -> None:
    head = struct.pack(order + "IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1)
    recs = [struct.pack(order + "IIII", 7, i, len(f), len(f)) + f for i, f in enumerate(FRAMES)]
    at = len(head) + sum(len(r) for r in recs[:3])
    bad = bytearray(recs[3])
    struct.pack_into(order + "I", bad, 8, 262145)  # one more than the largest snaplen
    data = head + b"".join(recs[:3]) + bytes(bad) + b"".join(recs[4:])
    frames, warnings = _read(data, tmp_path, mode)
    assert frames == [(7_000_000_000 + i, 1, FRAMES[i]) for i in range(3)]
    assert len(warnings) == 1
    assert f"corrupt pcap record at offset {at}: captured length 262145" in warnings[0]


def test_pcap_snaplen_above_the_default_allows_bigger_records(tmp_path: object) -> None:
    head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 1 << 20, 1)
    big = b"\xab" * 300_000
    data = head + struct.pack("<IIII", 1, 0, len(big), len(big)) + big
    frames, warnings = _read(data, tmp_path, "mmap")
    assert warnings == [] and frames == [(1_000_000_000, 1, big)]


def test_pcap_linktype_field_carries_fcs_bits(tmp_path: object) -> None:
    """pcap draft §4: the upper bits of the link-type field say an FCS of n*16 bits is present."""
    head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1 | 0x04000000 | (2 << 28))
    cf = CaptureFile("-", stream=io.BytesIO(head))  # type: ignore[arg-type]
    assert cf.linktypes == [1]


# --- not a capture ---------------------------------------------------------------------------------------


NOT_CAPTURES = {
    "empty": b"",
    "text": b"GET / HTTP/1.1\r\nHost: example\r\n\r\n",
    "short_pcap_header": b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00",
    "random": bytes(random.Random(3).getrandbits(8) for _ in range(4096)),
    "pcapng_no_byte_order_magic": b"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00" + b"\0" * 20,
    "modified_pcap_magic": b"\x34\xcd\xb2\xa1" + b"\0" * 60,  # Kuznetzov's patched pcap: not read
}


@pytest.mark.parametrize("name", sorted(NOT_CAPTURES))
def test_not_a_capture(name: str, tmp_path: object) -> None:
    path = _tmp(tmp_path, name)
    with open(path, "wb") as f:
        f.write(NOT_CAPTURES[name])
    with pytest.raises(CaptureFormatError, match="^" + re.escape(path) + ": "):
        CaptureFile(path)
    with pytest.raises(CaptureFormatError, match=r"^stdin: "):
        CaptureFile("-", stream=io.BytesIO(NOT_CAPTURES[name]))  # type: ignore[arg-type]


def test_missing_file_and_directory(tmp_path: object) -> None:
    with pytest.raises(CaptureFormatError, match="cannot open"):
        CaptureFile(_tmp(tmp_path, "nope.pcap"))
    with pytest.raises(CaptureFormatError, match="directory"):
        CaptureFile(str(tmp_path))


def test_header_only_files_have_no_frames(tmp_path: object) -> None:
    for data in (
        struct.pack(">IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1),
        b"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\x4d\x3c\x2b\x1a\x01\x00\x00\x00"
        + b"\xff" * 8
        + b"\x1c\x00\x00\x00",
    ):
        for mode in ("mmap", "stream"):
            assert _read(data, tmp_path, mode) == ([], [])


@pytest.mark.parametrize("name", ["text", "empty"])
def test_cli_rejects_a_non_capture_with_one_line_and_exit_2(name: str, tmp_path: object) -> None:
    path = _tmp(tmp_path, name)
    with open(path, "wb") as f:
        f.write(NOT_CAPTURES[name])
    p = subprocess.run(
        [sys.executable, "-m", "packetd", "watch", "--pcap-file", path],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert p.returncode == 2
    assert p.stdout == ""
    assert len(p.stderr.strip().splitlines()) == 1 and path in p.stderr


# --- streams ---------------------------------------------------------------------------------------------


_DUMP = (
    "import sys; from packetd.capture.pcapfile import CaptureFile\n"
    "cf = CaptureFile(sys.argv[1])\n"
    "for ts, lt, d in cf: print(ts, lt, bytes(d).hex())\n"
    "print('W', len(cf.warnings))\n"
)


def _dump_lines(truth: list[RawFrame]) -> list[str]:
    lt = {1: 1, 25: 113, 15: 0}
    return [f"{ts} {lt[e]} {d.hex()}" for ts, e, d in truth] + ["W 0"]


@needs_tshark
def test_stdin_pipe(corpus_merged: str, corpus_frames: list[RawFrame]) -> None:
    """`packetd ... --pcap-file -`: a real pipe on standard input."""
    with open(corpus_merged, "rb") as f:
        p = subprocess.run(
            [sys.executable, "-c", _DUMP, "-"],
            stdin=f,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    assert p.stdout.splitlines() == _dump_lines(corpus_frames)


@needs_tshark
def test_fifo_path_is_read_as_a_stream(tmp_path: object) -> None:
    """A path that is not a regular file (a FIFO, /dev/stdin, `<(tcpdump -w -)`) cannot be mapped."""
    src = corpus_file("ntop_nDPI__mysql.pcapng")
    fifo = _tmp(tmp_path, "fifo")
    os.mkfifo(fifo)
    reader = subprocess.Popen(
        [sys.executable, "-c", _DUMP, fifo], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    with open(src, "rb") as f, open(fifo, "wb") as w:
        w.write(f.read())
    out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    assert out.splitlines() == _dump_lines(tshark_raw_frames(src))


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_stream_yields_frames_before_the_writer_finishes(fmt: str) -> None:
    """`tcpdump -U -w - | packetd`: a frame is produced as soon as its record is complete."""
    rfd, wfd = os.pipe()
    got: list[tuple[int, bytes]] = []
    arrived = threading.Semaphore(0)

    def consume() -> None:
        with os.fdopen(rfd, "rb") as r:
            for ts, _lt, d in CaptureFile("-", stream=r):
                got.append((ts, bytes(d)))
                arrived.release()

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    out = io.BytesIO()
    if fmt == "pcap":
        out.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1))
        records = [struct.pack("<IIII", 5, i, len(f), len(f)) + f for i, f in enumerate(FRAMES[:3])]
        head, records[0] = out.getvalue() + records[0], b""
    else:
        data, offsets = _pcapng_with_offsets(FRAMES[:3])
        bounds = [*offsets, len(data)]
        head = bytes(data[: bounds[1]])
        records = [b"", bytes(data[bounds[1] : bounds[2]]), bytes(data[bounds[2] :])]
    with os.fdopen(wfd, "wb", buffering=0) as w:
        w.write(head)
        for i in range(1, 3):
            assert arrived.acquire(timeout=10), f"frame {i} not produced while the pipe is open"
            assert len(got) == i
            half = len(records[i]) // 2
            w.write(records[i][:half])  # half a record: nothing more may come out
            assert not arrived.acquire(timeout=0.2)
            w.write(records[i][half:])
    t.join(timeout=10)
    assert [d for _, d in got] == FRAMES[:3]


# --- robustness --------------------------------------------------------------------------------------------


def _valid_pcapng() -> bytes:
    out = io.BytesIO()
    w = PcapngWriter(out)
    a = w.add_interface(1, tsresol=9)
    b = w.add_interface(113, tsresol=0x80 | 20, tsoffset=5)
    for i, f in enumerate(FRAMES[:4]):
        w.write(a if i % 2 else b, 10**18 + i, f, block="opb" if i == 2 else "epb")
    w.write(0, 0, FRAMES[4], block="spb")
    w.section(">")
    c = w.add_interface(101, snaplen=64)
    for f in FRAMES[5:]:
        w.write(c, 2 * 10**18, f)
    return out.getvalue()


def _valid_pcap(order: str) -> bytes:
    head = struct.pack(order + "IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    return head + b"".join(
        struct.pack(order + "IIII", 9, i, len(f), len(f)) + f for i, f in enumerate(FRAMES)
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(["pcapng", "pcap<", "pcap>"]),
    edits=st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=4),
    cut=st.integers(0, 2000),
)
def test_damaged_files_never_raise(
    kind: str, edits: list[tuple[int, int]], cut: int, tmp_path: object
) -> None:
    """Bytes changed anywhere and the file cut anywhere: frames and at most one warning, never an
    exception (but CaptureFormatError when the header itself is gone); mmap and stream agree."""
    data = bytearray(_valid_pcapng() if kind == "pcapng" else _valid_pcap(kind[-1]))
    for pos, value in edits:
        data[pos % len(data)] = value
    data = data[: max(cut, 0) if cut < len(data) else len(data)]
    results = []
    for mode in ("mmap", "stream"):
        try:
            frames, warnings = _read(bytes(data), tmp_path, mode)
        except CaptureFormatError:
            results.append(None)
            continue
        # one damage warning at most; a byte changed in a header may add one line per link type it
        # turned into one we do not decode, and one for timestamps out of range (issue 9 #16, issue 14)
        damage = [w for w in warnings if " of link type " not in w and "clamped to that range" not in w]
        assert len(damage) <= 1
        kinds = [w.split(" skipped")[0].split("of link type ")[-1] for w in warnings if " of link type " in w]
        assert len(kinds) == len(set(kinds)) and sum("clamped" in w for w in warnings) <= 1
        results.append((frames, [w.split(": ", 1)[1] for w in warnings]))  # without the file name
    assert results[0] == results[1]


@pytest.mark.parametrize("blen", [12, 16, 20, 24, 28])
@pytest.mark.parametrize("btype", [6, 2])
def test_short_packet_block_at_the_end(btype: int, blen: int, tmp_path: object) -> None:
    data, _ = _pcapng_with_offsets(FRAMES[:2])
    at = len(data)
    data += struct.pack("<II", btype, blen) + b"\0" * (blen - 12) + struct.pack("<I", blen)
    for mode in ("mmap", "stream"):
        frames, warnings = _read(bytes(data), tmp_path, mode)
        assert [d for _, _, d in frames] == FRAMES[:2]
        assert (
            len(warnings) == 1
            and f"corrupt pcapng block at offset {at}: packet block of {blen}" in warnings[0]
        )


def test_frames_stay_valid_after_their_pages_are_released(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    """The reader gives consumed pages back (madvise); a frame kept by a consumer (a reorder buffer) still
    reads its bytes, from the file."""
    monkeypatch.setattr(pcapfile, "RELEASE_EVERY", 8192)
    rng = random.Random(5)
    frames = [bytes(rng.getrandbits(8) for _ in range(3000)) for _ in range(200)]
    path = _tmp(tmp_path, "held.pcap")
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1))
        for i, fr in enumerate(frames):
            f.write(struct.pack("<IIII", 1, i, len(fr), len(fr)) + fr)
    cf = CaptureFile(path)
    released: list[int] = []
    real = cf._release
    monkeypatch.setattr(cf, "_release", lambda upto: (released.append(upto), real(upto)))
    held = [d for _, _, d in cf]
    assert len(released) > 50 and cf._released > len(frames) * 3000 // 2
    assert [bytes(d) for d in held] == frames
    del held
    assert [bytes(d) for _, _, d in cf] == frames  # and a second pass reads the same
    assert cf.warnings == []
    cf.close()
