"""Capture files at the edges: absurd timestamps (issue 14) and link types packetd does not decode (issue 9 #16).

- A pcapng packet stamped at 2^56 s (whole-second resolution), before the epoch (a negative if_tsoffset)
  or at the largest 64-bit value is clamped into 1970..9999, counted, and the file gets one warning; `watch`
  writes its records (RFC 3339 times in range) and exits 0, where it used to exit 1 with a traceback from
  `time.gmtime`. The truth is the crafted file itself (the timestamps we wrote).
- Frames of a link type we do not decode (FDDI, 10; IEEE 802.11, 105) give one warning per link type naming
  it and how many packets were skipped, on stderr, in `watch` (pcap and pcapng) and in the agent reading a
  file; a capture we do decode gives none.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time

import dns.message
import pytest

from packetd.capture.pcapfile import MAX_TS_NS, CaptureFile
from packetd.capture.pcapwrite import PcapngWriter, PcapWriter, ethernet, ipv4_udp
from packetd.pairing.roundtrip import rfc3339_ns

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _query(qid: int) -> bytes:
    q = dns.message.make_query("www.example.test.", "A")
    q.id = qid
    return ethernet(ipv4_udp("10.0.0.1", "10.0.0.53", 40000 + qid, 53, q.to_wire()))


def _absurd_pcapng(path: str) -> list[int]:
    """Four unanswered DNS queries: 2^56 s, 2^64-1 units of seconds, before 1970, and a normal one."""
    with open(path, "wb") as f:
        w = PcapngWriter(f)
        secs = w.add_interface(1, tsresol=0)  # 10^0: whole seconds
        neg = w.add_interface(1, tsresol=9, tsoffset=-(10**12))  # a wild negative offset
        w.write(secs, 0, _query(1), ts_units=1 << 56)
        w.write(secs, 0, _query(2), ts_units=(1 << 64) - 1)
        w.write(neg, 0, _query(3), ts_units=5)
        w.write(secs, 0, _query(4), ts_units=1_700_000_000)
    return [1 << 56, (1 << 64) - 1, -(10**12), 1_700_000_000]


def _watch(path: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "packetd", "watch", "--pcap-file", path, *args],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,  # the test reads the status
    )  # fmt: skip


def test_reader_clamps_absurd_timestamps_and_warns_once() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "absurd.pcapng")
        written = _absurd_pcapng(path)
        cf = CaptureFile(path)
        stamps = [ts for ts, _, _ in cf]
        warnings = cf.warnings
        cf.close()
    assert stamps == [MAX_TS_NS, MAX_TS_NS, 0, written[3] * 10**9]
    assert len(warnings) == 1
    assert "3 packet timestamps outside 1970-01-01..9999-12-31" in warnings[0]
    assert f"{written[0]} s since the epoch" in warnings[0]  # the first offender, as written
    assert rfc3339_ns(MAX_TS_NS) == "9999-12-31T23:59:59.999999999Z"


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_watch_writes_records_with_clamped_times_and_exits_0(fmt: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "absurd.pcapng")
        _absurd_pcapng(path)
        out = _watch(path, "--format", fmt, "--proto", "dns;53")
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    assert out.stderr.count("clamped to that range") == 1
    lines = out.stdout.splitlines()
    assert len(lines) == 4  # four unanswered queries
    if fmt == "json":
        starts = sorted(json.loads(line)["start_time"] for line in lines)
        assert starts == ["1970-01-01T00:00:00.000000000Z", "2023-11-14T22:13:20.000000000Z",
                          "9999-12-31T23:59:59.999999999Z", "9999-12-31T23:59:59.999999999Z"]  # fmt: skip


def test_formatting_a_time_out_of_range_clamps() -> None:
    """Any other source (a live clock gone wrong) cannot make the formatter raise either."""
    assert rfc3339_ns(1 << 80) == "9999-12-31T23:59:59.999999999Z"
    assert rfc3339_ns(-5) == "1970-01-01T00:00:00.000000000Z"


# -- link types we do not decode ------------------------------------------------------------------------
def _pcap(path: str, linktype: int, n: int) -> None:
    with open(path, "wb") as f:
        w = PcapWriter(f, linktype)
        for i in range(n):
            w.write(1_700_000_000 * 10**9 + i, b"\x00" * 40)


def test_pcap_of_an_unsupported_link_type_warns_with_name_and_count() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "fddi.pcap")
        _pcap(path, 10, 7)
        out = _watch(path)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stderr.splitlines() if "link type" in line]
    assert len(lines) == 1
    assert "7 packets of link type 10 (FDDI) skipped" in lines[0]


def test_pcapng_counts_per_interface_link_type_and_not_supported_ones() -> None:
    buf = io.BytesIO()
    w = PcapngWriter(buf)
    eth = w.add_interface(1)
    wifi = w.add_interface(105)
    fddi = w.add_interface(10)
    for i in range(5):
        w.write(eth, i * 1000, _query(i))
    for i in range(3):
        w.write(wifi, i * 1000, b"\x00" * 30)
    w.write(fddi, 0, b"\x00" * 30, block="opb")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "mixed.pcapng")
        with open(path, "wb") as f:
            f.write(buf.getvalue())
        cf = CaptureFile(path)
        assert len(list(cf)) == 9
        warnings = cf.warnings
        cf.close()
    assert len(warnings) == 2
    assert "1 packet of link type 10 (FDDI) skipped" in warnings[0]
    assert "3 packets of link type 105 (IEEE 802.11) skipped" in warnings[1]


def test_supported_link_types_give_no_warning() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "eth.pcap")
        with open(path, "wb") as f:
            w = PcapWriter(f, 1)
            w.write(1, _query(1))
        cf = CaptureFile(path)
        list(cf)
        assert cf.warnings == []
        cf.close()


@pytest.mark.server
def test_agent_reading_a_file_warns_about_the_link_type() -> None:
    from tests.helpers.backends import AgentProcess
    from tests.helpers.live import free_port

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "fddi.pcap")
        _pcap(path, 10, 12)
        api = free_port()
        agent = AgentProcess(
            f"sniffer.file: {path}\nsniffer.protocols.rules: [{{name: d, protocol: dns, ports: [53]}}]\n"
            f'server.address: "127.0.0.1:{api}"\n'
        )
        try:
            agent.wait_ready(api)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and "link type" not in agent.stderr():
                time.sleep(0.2)
            lines = [line for line in agent.stderr().splitlines() if "link type" in line]
        finally:
            assert agent.stop() == 0
    assert len(lines) == 1 and "12 packets of link type 10 (FDDI) skipped" in lines[0]
