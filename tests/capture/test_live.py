"""Live: `tcpdump -w - | packetd watch --pcap-file -`, in a private network namespace (nothing outside it
is touched; see data/make_fixtures.py for the traffic: HTTP over IPv4 and IPv6, fragmented UDP).

tcpdump's output is teed, byte for byte, to a file, to `packetd watch --pcap-file -` and to a reader that
prints the segments PacketDecoder makes of the pipe. The segments must be what tshark reads from the file;
the roundtrips, the four requests curl made.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import orjson
import pytest

from tests.net.truth import TSHARK, tshark_segments

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_IN_NETNS = """
import os, shutil, signal, subprocess, sys, threading
sys.path.insert(0, sys.argv[2])
import make_fixtures as m
out = sys.argv[1]
subprocess.run(["ip", "link", "set", "lo", "up", "mtu", "1280"], check=True)
td = subprocess.Popen(["tcpdump", "--immediate-mode", "-U", "-i", "lo", "-w", "-"],
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
cli = subprocess.Popen([sys.executable, "-m", "packetd", "watch", "--pcap-file", "-", "--format", "json",
                        "--proto", "http;18080"], stdin=subprocess.PIPE,
                       stdout=open(os.path.join(out, "records.jsonl"), "wb"),
                       stderr=open(os.path.join(out, "cli.err"), "wb"))
dump = subprocess.Popen([sys.executable, "-c", sys.argv[3], "-"], stdin=subprocess.PIPE,
                        stdout=open(os.path.join(out, "segments.txt"), "wb"))
def tee():
    with open(os.path.join(out, "live.pcap"), "wb") as f:
        while chunk := td.stdout.read1(65536):
            for w in (f, cli.stdin, dump.stdin):
                w.write(chunk)
                w.flush()
    cli.stdin.close()
    dump.stdin.close()
t = threading.Thread(target=tee)
t.start()
m.wait_listening(td)
root = m.webroot()
try:
    m.traffic(root)
finally:
    shutil.rmtree(root)
td.send_signal(signal.SIGINT)
td.wait()
t.join()
sys.exit(cli.wait() or dump.wait())
"""

_DUMP_SEGMENTS = """
import ipaddress, sys
from packetd.capture.pcapfile import CaptureFile
from packetd.net.packet import PacketDecoder
dec = PacketDecoder()
for ts, lt, d in CaptureFile("-"):
    s = dec.decode(ts, lt, d)
    if s is not None:
        print(ts, s.transport, ipaddress.ip_address(s.src), ipaddress.ip_address(s.dst), s.sport, s.dport,
              s.seq, bytes(s.payload).hex())
"""


@pytest.mark.root
@pytest.mark.live
@pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("tcpdump", "unshare", "ip", "curl")) or not TSHARK,
    reason="needs root, tcpdump, unshare, ip, curl and tshark",
)
def test_tcpdump_pipe_into_packetd(tmp_path: object) -> None:
    out = str(tmp_path)
    p = subprocess.run(
        ["unshare", "-n", sys.executable, "-c", _IN_NETNS, out, DATA, _DUMP_SEGMENTS],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert p.returncode == 0, p.stderr
    truth = tshark_segments(os.path.join(out, "live.pcap"))
    assert len(truth) > 40
    with open(os.path.join(out, "segments.txt")) as f:
        ours = [line.split() for line in f]
    assert [
        (int(ts), int(tr), src, dst, int(sp), int(dp), int(seq), bytes.fromhex(pl[0]) if pl else b"")
        for ts, tr, src, dst, sp, dp, seq, *pl in ours
    ] == truth
    with open(os.path.join(out, "records.jsonl"), "rb") as f:
        records = [orjson.loads(line) for line in f]
    got = sorted((r["client"]["ip"], r["request"]["path"], r["status"]) for r in records)
    assert got == sorted(
        (ip, path, "200") for ip in ("127.0.0.1", "::1") for path in ("/small.txt", "/large.txt")
    )
