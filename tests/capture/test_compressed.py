"""Compressed captures (.gz, .zst, .xz) are read as the capture inside them, by content, file or pipe.

Compressed by the system's gzip, zstd and xz tools (independent of the decompressors we read with); the
truth is tshark's reading of the uncompressed file. Damage: a compressed file cut short yields a prefix of
those frames and one warning naming the compression.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from packetd.capture.pcapfile import CaptureFile, CaptureFormatError
from tests.helpers.golden import CORPUS
from tests.net.fixtures import needs_tshark
from tests.net.truth import WTAP_ENCAP, tshark_raw_frames

SOURCE = os.path.join(CORPUS, "http1", "zeek_zeek__bro.org.pcap")  # 500 KB: many decompressor reads
TOOLS = {"gzip": ("gzip", "-c"), "zstd": ("zstd", "-q", "-c"), "xz": ("xz", "-c")}


def _compressed(tmp_path: object, kind: str, name: str = "capture.pcap.x") -> str:
    tool = TOOLS[kind]
    if shutil.which(tool[0]) is None:
        pytest.skip(f"{tool[0]} not installed")
    out = os.path.join(str(tmp_path), name)
    with open(SOURCE, "rb") as src, open(out, "wb") as dst:
        subprocess.run([*tool], stdin=src, stdout=dst, check=True)
    return out


def _frames(cf: CaptureFile) -> list[tuple[int, int, bytes]]:
    out = [(ts, WTAP_ENCAP.get(lt, -lt), bytes(d)) for ts, lt, d in cf]
    cf.close()
    return out


@needs_tshark
@pytest.mark.parametrize("kind", sorted(TOOLS))
def test_compressed_file_reads_as_the_capture_inside(tmp_path: object, kind: str) -> None:
    # named without the usual extension: the content decides, not the name
    path = _compressed(tmp_path, kind)
    cf = CaptureFile(path)
    assert cf.compression == kind
    frames = _frames(cf)
    assert frames == tshark_raw_frames(SOURCE)
    assert cf.warnings == []


@needs_tshark
@pytest.mark.parametrize("kind", sorted(TOOLS))
def test_compressed_stream_on_stdin(tmp_path: object, kind: str) -> None:
    path = _compressed(tmp_path, kind)
    with open(path, "rb") as f:
        frames = _frames(CaptureFile("-", stream=f))
    assert frames == tshark_raw_frames(SOURCE)


@needs_tshark
@pytest.mark.parametrize("kind", sorted(TOOLS))
def test_truncated_compressed_file_yields_a_prefix_and_one_warning(tmp_path: object, kind: str) -> None:
    path = _compressed(tmp_path, kind)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    cf = CaptureFile(path)
    frames = _frames(cf)
    truth = tshark_raw_frames(SOURCE)
    assert 0 < len(frames) < len(truth)
    assert frames == truth[: len(frames)]
    assert len(cf.warnings) == 1 and (kind in cf.warnings[0] or "truncated" in cf.warnings[0])


def test_compressed_non_capture_is_a_format_error(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "notes.gz")
    with open(path, "wb") as f:
        subprocess.run(["gzip", "-c"], input=b"hello, not a capture\n" * 10, stdout=f, check=True)
    with pytest.raises(CaptureFormatError, match="not a pcap or pcapng capture file"):
        CaptureFile(path)
