"""`watch --workers N` gives what one worker gives: on every corpus capture, the same records (as sorted
JSON lines: the order may differ only among records several workers emit at one moment) and the same
summary, byte for byte; and a worker that dies is named and fails the run instead of hanging it.

The truth is the one-worker run of the same build (itself checked against tshark and the golden files
elsewhere): a split that loses, duplicates or alters a record, or miscounts the summary, fails here.
Runs are in-process (click's runner; the workers are forked from the test process) so the corpus costs
one fork per worker instead of an interpreter each.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from packetd.cli import main
from tests.helpers.golden import CORPUS, ROOT
from tests.helpers.live import can_capture, free_port, stop_process, wait_port

with open(os.path.join(CORPUS, "MANIFEST.tsv"), newline="") as _f:
    FILES = [row["file"] for row in csv.DictReader(_f, delimiter="\t")]


@pytest.fixture(autouse=True)
def _keep_signals() -> Iterator[None]:
    """watch installs SIGINT/SIGTERM handlers in this process; put pytest's back."""
    saved = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGINT, saved[0])
    signal.signal(signal.SIGTERM, saved[1])


def watch(*args: str) -> tuple[int, bytes, bytes]:
    r = CliRunner().invoke(main, ["watch", *args], catch_exceptions=False)
    return r.exit_code, r.stdout_bytes, r.stderr_bytes


@pytest.mark.parametrize("name", FILES)
def test_same_records_and_summary_as_one_worker(name: str) -> None:
    path = os.path.join(CORPUS, name)
    code1, out1, err1 = watch("-r", path, "--format", "json", "--workers", "1")
    for n in ("2", "3"):
        code, out, err = watch("-r", path, "--format", "json", "--workers", n)
        assert code == code1 == 0
        assert sorted(out.splitlines()) == sorted(out1.splitlines()), f"--workers {n}"
        assert err.decode() == err1.decode(), f"--workers {n}"


def test_text_format_and_display_filters_as_one_worker() -> None:
    path = os.path.join(CORPUS, "http1", "zeek_zeek__pipelined-requests.pcap")
    args = ("-r", path, "--format", "text", "--no-color", "--kind", "roundtrip", "--method", "GET")
    one = watch(*args, "--workers", "1")
    two = watch(*args, "--workers", "2")
    assert one[1] and sorted(two[1].splitlines()) == sorted(one[1].splitlines())
    assert two[2] == one[2]


def test_duration_on_a_file_as_one_worker() -> None:
    path = os.path.join(CORPUS, "http1", "zeek_zeek__bro.org.pcap")
    one = watch("-r", path, "--format", "json", "--duration", "2s", "--workers", "1")
    full = watch("-r", path, "--format", "json", "--workers", "1")
    assert 0 < len(one[1].splitlines()) < len(full[1].splitlines())  # the cut is inside the file
    assert watch("-r", path, "--format", "json", "--duration", "2s", "--workers", "2") == one


def test_options_that_need_one_worker_say_so(tmp_path: object) -> None:
    path = os.path.join(CORPUS, "http1", "zeek_zeek__pipelined-requests.pcap")
    one = watch("-r", path, "--format", "json", "-c", "2")
    code, out, err = watch("-r", path, "--format", "json", "-c", "2", "--workers", "2")
    assert code == 0 and out == one[1] and len(out.splitlines()) == 2
    assert "--workers 2 ignored: -c stops at the Nth record (one worker)" in err.decode()


def _workers(pid: int) -> list[int]:
    """The worker processes of watch `pid` (forked: watch's own command line; not multiprocessing's
    resource tracker, which shared memory starts beside them)."""
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        kids = [int(p) for p in f.read().split()]
    out = []
    for kid in kids:
        with open(f"/proc/{kid}/cmdline", "rb") as f:
            if b"resource_tracker" not in f.read():
                out.append(kid)
    return out


def test_a_worker_that_dies_is_named_and_fails_the_run() -> None:
    """A pipe keeps the run going while a worker is killed (by its PID); then the input ends: watch must
    say which worker died and exit 1, not hang nor print a summary of half the connections."""
    path = os.path.join(CORPUS, "http1", "zeek_zeek__pipelined-requests.pcap")
    with open(path, "rb") as f:
        data = f.read()
    env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "packetd", "watch", "-r", "-", "--format", "json", "--workers", "2"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env,
    )  # fmt: skip
    try:
        assert proc.stdin is not None
        proc.stdin.write(data[:24])  # the file header: the workers start once it is read
        proc.stdin.flush()
        deadline = time.monotonic() + 20
        while len(_workers(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        victim = _workers(proc.pid)[-1]
        os.kill(victim, signal.SIGKILL)
        _, stderr = proc.communicate(data[24:], timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    err = stderr.decode()
    assert proc.returncode == 1
    assert re.search(rf"^packetd: worker [01] \(pid {victim}\) died: killed by signal 9;", err, re.M), err
    assert "roundtrip" not in err  # no summary of a run that lost connections


@pytest.mark.root
@pytest.mark.live
@pytest.mark.skipif(not can_capture(), reason="live capture needs root / CAP_NET_RAW")
def test_live_two_workers_record_every_request_once(tmp_path: object) -> None:
    """`watch -i lo --workers 2`: two AF_PACKET sockets in one PACKET_FANOUT_HASH group. A real HTTP server
    and client on loopback, 40 requests on 40 connections (so both workers get some): each request the
    client sent is one record, none twice, none missing."""
    tmp = str(tmp_path)
    with open(os.path.join(tmp, "a.txt"), "w") as f:
        f.write("hello " * 20)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", tmp],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    err_path = os.path.join(tmp, "stderr")
    env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "src")}
    try:
        wait_port(port)
        with open(err_path, "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "packetd", "watch", "-i", "lo", "--proto", f"http:{port}",
                 "--format", "json", "--workers", "2", "--no-processes"],
                stdout=subprocess.PIPE, stderr=err, cwd=ROOT, env=env,
            )  # fmt: skip
        try:
            deadline = time.monotonic() + 20
            while b"capturing on" not in _read(err_path) and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)  # the second worker's socket joins the group too
            sent = [f"/a.txt?n={i}" for i in range(40)]
            for target in sent:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{target}", timeout=5) as r:
                    r.read()
            time.sleep(1.0)
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                stop_process(proc)  # type: ignore[arg-type]
    finally:
        stop_process(server)  # type: ignore[arg-type]
    err_text = _read(err_path).decode()
    assert proc.returncode == 0, err_text
    got = [json.loads(line)["request"]["target"] for line in out.splitlines()]
    assert sorted(got) == sorted(sent)
    assert "40 roundtrips" in err_text


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


DNS_FILES = ("deepflowio_deepflow__dns.pcap", "njcx_packetbeat__dns_mx.pcap", "zeek_zeek__dns-two-responses.pcap",
             "ntop_nDPI__dns.pcap", "njcx_packetbeat__dns_google_com.pcap")  # fmt: skip


def _fragmented(frame: bytes, ident: int) -> list[bytes]:
    """An Ethernet/IPv4 frame as two fragments, the second first (RFC 791: offsets in 8-byte units)."""
    eth, ip = frame[:14], frame[14:]
    ihl = (ip[0] & 15) * 4
    head, payload = ip[:ihl], ip[ihl:]
    cut = 16  # the UDP header and 8 bytes of DNS in the first fragment

    def frag(part: bytes, offset: int, more: bool) -> bytes:
        hdr = bytearray(head)
        hdr[2:4] = (ihl + len(part)).to_bytes(2, "big")
        hdr[4:6] = ident.to_bytes(2, "big")
        hdr[6:8] = ((0x2000 if more else 0) | offset // 8).to_bytes(2, "big")
        return eth + bytes(hdr) + part

    return [frag(payload[cut:], cut, False), frag(payload[:cut], 0, True)]


def test_ip_fragments_reach_their_connections_worker(tmp_path: object) -> None:
    """DNS responses over UDP, each cut into two IPv4 fragments (arriving out of order): the fragments must
    reach the worker of the reassembled datagram's connection, so the records are those of the same
    traffic unfragmented (the independent truth: the real captures as recorded), on any number of workers."""
    from packetd.capture.pcapfile import CaptureFile
    from packetd.capture.pcapwrite import PcapWriter

    whole_path, frag_path = (
        os.path.join(str(tmp_path), "whole.pcap"),
        os.path.join(str(tmp_path), "frag.pcap"),
    )
    fragmented = written = 0
    with open(whole_path, "wb") as wf, open(frag_path, "wb") as ff:
        whole, frag = PcapWriter(wf), PcapWriter(ff)
        base = 0
        for name in DNS_FILES:
            src = CaptureFile(os.path.join(CORPUS, "dns", name))
            frames = [(ts, data.tobytes()) for ts, _lt, data in src]
            src.close()
            shift = base - frames[0][0]
            for ts, data in frames:
                whole.write(ts + shift, data)
                written += 1
                is_response = data[12:14] == b"\x08\x00" and data[23] == 17 and data[34:36] == b"\x00\x35"
                if is_response and len(data) > 14 + 20 + 24:
                    fragmented += 1
                    for part in _fragmented(data, 0x4000 + fragmented):
                        frag.write(ts + shift, part)
                else:
                    frag.write(ts + shift, data)
            base = frames[-1][0] + shift + 1_000_000_000
    assert fragmented >= 5
    _, truth, _ = watch("-r", whole_path, "--format", "json", "--workers", "1")
    assert len(truth.splitlines()) >= 5
    _, _, err1 = watch("-r", frag_path, "--format", "json", "--workers", "1")
    for n in ("1", "2", "3"):
        code, out, err = watch("-r", frag_path, "--format", "json", "--workers", n)
        assert code == 0
        assert sorted(out.splitlines()) == sorted(truth.splitlines()), f"--workers {n}"
        assert err == err1
    assert f"packetd: {written + fragmented} packets in" in err1.decode()  # each response became two


def _tcp_conversation(cport: int, exchanges: list[tuple[bytes, bytes]], t0: int) -> list[tuple[int, bytes]]:
    """Ethernet/IPv4/TCP frames of one connection 10.0.0.1:cport → 10.0.0.2:9092: the handshake, then
    each (request, response) in one segment each, 1 ms apart."""
    import struct

    def frame(
        src: bytes, dst: bytes, sp: int, dp: int, seq: int, ack: int, flags: int, payload: bytes
    ) -> bytes:
        tcp = struct.pack("!HHIIBBHHH", sp, dp, seq, ack, 0x50, flags, 65535, 0, 0) + payload
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, src, dst)
        return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + tcp

    c, s = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    cs, ss = 1000, 5000
    out = [
        (t0, frame(c, s, cport, 9092, cs, 0, 0x02, b"")),
        (t0 + 1000, frame(s, c, 9092, cport, ss, cs + 1, 0x12, b"")),
        (t0 + 2000, frame(c, s, cport, 9092, cs + 1, ss + 1, 0x10, b"")),
    ]
    cs, ss, t = cs + 1, ss + 1, t0 + 1_000_000
    for req, resp in exchanges:
        out.append((t, frame(c, s, cport, 9092, cs, ss, 0x18, req)))
        cs += len(req)
        out.append((t + 500_000, frame(s, c, 9092, cport, ss, cs, 0x18, resp)))
        ss += len(resp)
        t += 1_000_000
    return out


def test_kafka_topic_ids_learnt_on_another_connection_on_any_number_of_workers(tmp_path: object) -> None:
    """Kafka decoders share topic id → name across connections (Metadata on one names the topics of a
    Fetch v13 on another): with the two connections hashed to different workers, the Fetch would lose the
    name; the Kafka rule ports are pinned to one worker, so the records stay one worker's."""
    from packetd.capture.pcapwrite import PcapWriter
    from packetd.pipeline.fanout import flow_worker
    from tests.protocols.kafka.test_decoder import META_REQ, fetch_request, fetch_response, metadata_response

    a, b = 40000, 40001
    ip1, ip2 = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    assert flow_worker(ip1, ip2, a, 9092, 2) != flow_worker(ip1, ip2, b, 9092, 2)  # apart, unpinned
    frames = _tcp_conversation(a, [(META_REQ, metadata_response(2))], 1_700_000_000_000_000_000)
    frames += _tcp_conversation(b, [(fetch_request(3), fetch_response(3))], 1_700_000_000_100_000_000)
    path = os.path.join(str(tmp_path), "kafka.pcap")
    with open(path, "wb") as f:
        w = PcapWriter(f)
        for ts, data in sorted(frames):
            w.write(ts, data)
    outs = {n: watch("-r", path, "--format", "json", "--workers", n) for n in ("1", "2")}
    fetch = [json.loads(x) for x in outs["1"][1].splitlines() if b'"Fetch"' in x]
    assert fetch and fetch[0]["request"]["topics"][0]["name"] == "orders"  # what Metadata said, elsewhere
    assert sorted(outs["2"][1].splitlines()) == sorted(outs["1"][1].splitlines())
    assert outs["2"][2] == outs["1"][2]
