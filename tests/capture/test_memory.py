"""Peak RSS stays bounded whatever the capture's size (the pages of a mapped file count as they are touched).

A ~320 MB capture is generated; a child process reads it through CaptureFile and PacketDecoder, touching
every byte of every frame (a CRC over them, which must equal the CRC of the bytes written: nothing lost),
and reports its peak RSS. The same child with the page release disabled is the control: it must exceed
the file size, or the measurement proves nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zlib

import pytest

from packetd.capture.pcapwrite import PcapngWriter, PcapWriter, ethernet, ipv4_tcp

FILE_MB = 320
LIMIT_MB = 100

_CHILD = """
import sys, zlib
from packetd.capture import pcapfile
from packetd.net.packet import PacketDecoder
if sys.argv[2] == "off":
    pcapfile.RELEASE_EVERY = 0
dec = PacketDecoder()
crc = frames = payload = 0
for ts, lt, d in pcapfile.CaptureFile(sys.argv[1]):
    crc = zlib.crc32(d, crc)
    seg = dec.decode(ts, lt, d)
    frames += 1
    payload += len(seg.payload)
# VmHWM is this process's own peak: ru_maxrss would include the parent's (Linux carries it across exec,
# and a pytest that has run the whole suite is well past 100 MB)
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(frames, payload, crc, hwm // 1024)
"""


def _generate(path: str, fmt: str) -> tuple[int, int, int]:
    """Frames of 60 KiB TCP payload each; returns (frames, payload bytes, CRC of all frame bytes)."""
    crc = frames = payload = 0
    with open(path, "wb") as f:
        if fmt == "pcap":
            w = PcapWriter(f, snaplen=65535)
            write = w.write
        else:
            ng = PcapngWriter(f)
            iface = ng.add_interface(1, tsresol=9)

            def write(ts: int, frame: bytes | memoryview, orig_len: int | None = None) -> None:
                ng.write(iface, ts, frame)

        body = bytes(range(256)) * 240
        seq = 1
        while f.tell() < FILE_MB << 20:
            chunk = body[frames % 256 :] + body[: frames % 256]  # vary the bytes between frames
            frame = ethernet(ipv4_tcp("10.0.0.1", "10.0.0.2", 40000, 80, seq, 1, 0x18, chunk[:61440]))
            write(1_700_000_000_000_000_000 + frames * 1000, frame)
            crc = zlib.crc32(frame, crc)
            frames += 1
            payload += 61440
            seq += 61440
    return frames, payload, crc


def _child(path: str, release: str, stdin: bool = False) -> tuple[int, int, int, int]:
    if stdin:
        with open(path, "rb") as f:
            p = subprocess.run(
                [sys.executable, "-c", _CHILD, "-", release],
                stdin=f,
                capture_output=True,
                text=True,
                check=True,
                timeout=120,
            )
    else:
        p = subprocess.run(
            [sys.executable, "-c", _CHILD, path, release],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
    frames, payload, crc, rss_mb = map(int, p.stdout.split())
    return frames, payload, crc, rss_mb


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_peak_rss_bounded(fmt: str, tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "big." + fmt)
    try:
        expected = _generate(path, fmt)
        assert os.path.getsize(path) >= FILE_MB << 20
        frames, payload, crc, rss = _child(path, "on")
        assert (frames, payload, crc) == expected
        assert rss < LIMIT_MB, f"peak RSS {rss} MB reading a {FILE_MB} MB {fmt}"
        if fmt == "pcap":
            # control: without giving pages back, the mapped file is resident by the end
            *_, rss_off = _child(path, "off")
            assert rss_off > FILE_MB * 0.8, f"control run peaked at {rss_off} MB only"
            # a pipe never maps the file at all
            frames, payload, crc, rss_pipe = _child(path, "on", stdin=True)
            assert (frames, payload, crc) == expected
            assert rss_pipe < LIMIT_MB
    finally:
        if os.path.exists(path):
            os.unlink(path)
