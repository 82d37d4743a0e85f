"""What detection by content costs on a mixed capture, against `--proto` (rules only) as the fast path.

    nice -n 19 .venv/bin/python bench/detect_cost.py [runs]

The capture is made here (deterministic, seeded): 200 HTTP/1.1 connections on port 8000 (handshake, GET,
a 2 KiB response, FINs) interleaved with 200 bulk connections of random bytes on port 9999 (handshake,
100 segments of 1448 bytes, FIN) — 28 000 packets of which 20 000 carry bytes no detector claims. It is
replayed through the whole engine (L2-L4, flows, decoders, pairing) with:

    rules      --proto 'http;8000'              the bulk flows are unmatched: dropped at the first lookup
    auto       --proto 'http;8000' --proto auto the bulk flows go through detection, then one lookup each
    detect     no rules, detection only          HTTP found by content, bulk flows as in `auto`
    bulk-*     the bulk flows alone, rules vs detection: the per-packet cost of an undetected flow

Prints the median of `runs` runs (CPU ns per packet) and the records each run made (all equal: 200).
"""

from __future__ import annotations

import os
import random
import socket
import statistics
import struct
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src"))

from packetd.capture.pcapfile import CaptureFile  # noqa: E402
from packetd.capture.pcapwrite import PcapWriter  # noqa: E402
from packetd.engine import Engine, EngineConfig, Rule  # noqa: E402

SYN, ACK, FIN, PSH = 0x02, 0x10, 0x01, 0x08


def _frame(
    src: tuple[str, int], dst: tuple[str, int], seq: int, ack: int, flags: int, payload: bytes
) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", src[1], dst[1], seq, ack, 5 << 4, flags, 65535, 0, 0)
    total = 20 + len(tcp) + len(payload)
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, total, 0, 0, 64, 6, 0, socket.inet_aton(src[0]), socket.inet_aton(dst[0])
    )
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + tcp + payload


def _conn(c: tuple[str, int], s: tuple[str, int], exchanges: list[tuple[int, bytes]]) -> list[bytes]:
    seqs = [1000, 9000]
    out = [
        _frame(c, s, 999, 0, SYN, b""),
        _frame(s, c, 8999, 1000, SYN | ACK, b""),
        _frame(c, s, 1000, 9000, ACK, b""),
    ]
    for d, data in exchanges:
        src, dst = (c, s) if d == 0 else (s, c)
        out.append(_frame(src, dst, seqs[d], seqs[d ^ 1], ACK | PSH, data))
        seqs[d] += len(data)
    out.append(_frame(c, s, seqs[0], seqs[1], FIN | ACK, b""))
    out.append(_frame(s, c, seqs[1], seqs[0] + 1, FIN | ACK, b""))
    return out


def make_capture(path: str, http: bool = True, bulk: bool = True) -> int:
    rnd = random.Random(7)
    body = b"x" * 2048
    response = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    conns = []
    for i in range(200):
        client = (f"10.1.{i // 250}.{i % 250 + 1}", 40000 + i)
        if http:
            conns.append(
                _conn(
                    client,
                    ("10.9.0.1", 8000),
                    [(0, b"GET /item/%d HTTP/1.1\r\nHost: shop\r\n\r\n" % i), (1, response)],
                )
            )
        if bulk:
            chunks = [(0, rnd.randbytes(1448)) for _ in range(100)]
            conns.append(_conn((client[0], 50000 + i), ("10.9.0.2", 9999), chunks))
    n = 0
    with open(path, "wb") as f:
        w = PcapWriter(f)
        ts = 1_700_000_000 * 10**9
        pending = [list(reversed(c)) for c in conns]
        while pending:  # round-robin: connections overlap as they do on a busy link
            for c in list(pending):
                ts += 1000
                w.write(ts, c.pop())
                n += 1
                if not c:
                    pending.remove(c)
    return n


def replay(path: str, rules: tuple[Rule, ...], detect: bool) -> tuple[float, int, int]:
    records: list[object] = []
    engine = Engine(EngineConfig(rules=rules, detect=detect), records.append)
    frame = engine.frame
    cf = CaptureFile(path)
    frames = [(ts, lt, bytes(d)) for ts, lt, d in cf]  # read once: the reader is not what is measured
    cf.close()
    t0 = time.process_time()  # CPU time of this process: the machine is shared, wall time is not ours
    for ts, lt, data in frames:
        frame(ts, lt, memoryview(data))
    engine.finish()
    return time.process_time() - t0, len(frames), len(records)


def main(runs: int) -> None:
    d = tempfile.mkdtemp(prefix="packetd-detect-bench-")
    mixed, bulk = os.path.join(d, "mixed.pcap"), os.path.join(d, "bulk.pcap")
    make_capture(mixed)
    make_capture(bulk, http=False)
    http = (Rule(protocol="http", ports=(8000,)),)
    cases = [
        ("rules", mixed, http, False),
        ("auto", mixed, http, True),
        ("detect", mixed, (), True),
        ("bulk-rules", bulk, http, False),
        ("bulk-detect", bulk, (), True),
    ]
    for name, path, rules, detect in cases:
        times = []
        for _ in range(runs):
            elapsed, packets, records = replay(path, rules, detect)
            times.append(elapsed / packets * 1e9)
        print(f"{name:<12} {statistics.median(times):8.0f} ns/packet  ({packets} packets, {records} records)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
