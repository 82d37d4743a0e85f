"""HTTP/1.1 offline replay benchmark: packetd vs tshark on the same large keep-alive capture.

    .venv/bin/python bench/http1_replay.py [--packets 1000000] [--runs 3] [--no-tshark] [--json out.json]

Generates (once, cached under bench/out/, not committed) a pcap of HTTP/1.1 keep-alive traffic: 256
concurrent connections to 4 servers, each exchange one request segment and one response segment, a
delayed pure ACK after every second exchange (as Linux does), realistic header sets and 200-4000 byte
bodies, some chunked. Then it replays the file through the whole pipeline (capture reader → L2-L4 → flows →
HTTP decoder → pairing → records, with a counting sink) on one core and reports the median of `--runs`
runs: packets/s, roundtrips/s, peak RSS; and tshark's time on the same file with
`tshark -r FILE -Y http.response -T fields -e http.time`, measured in the same run, as a ratio.

Records are not serialised here (the JSON writer is measured separately with --json-output).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench.common import in_fresh_process, timed_replay

from packetd.capture.pcapwrite import PcapWriter, TcpConversation, ethernet
from packetd.engine import Rule
from packetd.pairing.roundtrip import dumps

OUT = os.path.join(os.path.dirname(__file__), "out")

PATHS = [
    "/",
    "/api/v1/users/{}",
    "/api/v1/orders/{}/items",
    "/static/app.{}.js",
    "/health",
    "/search?q=term{}&page=2",
]
UAS = [
    b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    b"curl/8.5.0",
    b"python-requests/2.32.3",
    b"Go-http-client/1.1",
]


def request(rng: random.Random, host: bytes) -> bytes:
    path = rng.choice(PATHS).format(rng.randint(1, 99999)).encode()
    method = b"POST" if rng.random() < 0.1 else b"GET"
    body = b'{"name":"x","value":%d}' % rng.randint(0, 10**6) if method == b"POST" else b""
    head = [
        method + b" " + path + b" HTTP/1.1",
        b"Host: " + host,
        b"User-Agent: " + rng.choice(UAS),
        b"Accept: application/json, text/plain, */*",
        b"Accept-Encoding: gzip, deflate",
        b"Connection: keep-alive",
    ]
    if rng.random() < 0.3:
        head.append(b"traceparent: 00-%032x-%016x-01" % (rng.getrandbits(128) | 1, rng.getrandbits(64) | 1))
    if body:
        head += [b"Content-Type: application/json", b"Content-Length: %d" % len(body)]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def response(rng: random.Random) -> bytes:
    status = rng.choices(
        [b"200 OK", b"404 Not Found", b"500 Internal Server Error", b"304 Not Modified"], [90, 5, 2, 3]
    )[0]
    size = 0 if status.startswith(b"304") else rng.randint(200, 4000)
    body = bytes(rng.getrandbits(8) % 26 + 97 for _ in range(min(size, 64))) * (size // 64 + 1)
    body = body[:size]
    head = [
        b"HTTP/1.1 " + status,
        b"Server: nginx/1.22.1",
        b"Date: Tue, 24 Nov 2026 12:00:00 GMT",
        b"Content-Type: application/json",
        b"Connection: keep-alive",
    ]
    if size and rng.random() < 0.2:
        head.append(b"Transfer-Encoding: chunked")
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    else:
        head.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def generate(path: str, packets: int, seed: int = 7) -> tuple[int, int]:
    rng = random.Random(seed)
    conns = []
    for i in range(256):
        server = (f"10.0.{i % 4}.1", 80)
        client = (f"10.1.{i // 200}.{i % 200 + 2}", 40000 + i)
        conns.append(
            (
                TcpConversation(
                    client, server, isn_client=rng.getrandbits(32), isn_server=rng.getrandbits(32), mss=65000
                ),
                f"svc{i % 4}.example".encode(),
            )
        )
    ts = 1_700_000_000_000_000_000
    n = exchanges = 0
    with open(path, "wb") as f:
        w = PcapWriter(f)
        for conv, _ in conns:
            for pkt in conv.handshake():
                ts += 1000
                w.write(ts, ethernet(pkt))
                n += 1
        while n < packets:
            conv, host = rng.choice(conns)
            ts += rng.randint(2_000, 20_000)
            for pkt in conv.send(0, request(rng, host)):
                w.write(ts, ethernet(pkt))
                n += 1
            ts += rng.randint(50_000, 2_000_000)
            for pkt in conv.send(1, response(rng)):
                w.write(ts, ethernet(pkt))
                n += 1
            exchanges += 1
            if exchanges % 2 == 0:
                ts += 40_000
                w.write(ts, ethernet(conv.ack(0)))
                n += 1
    return n, exchanges


def replay(path: str, serialise: bool) -> dict[str, float]:
    count = 0
    out_bytes = 0

    def sink(rt: object) -> None:
        nonlocal count, out_bytes
        count += 1
        if serialise:
            out_bytes += len(dumps(rt))  # type: ignore[arg-type]

    _, packets, elapsed = timed_replay(path, Rule(protocol="http", ports=(80,)), sink)
    return {
        "packets": packets,
        "roundtrips": count,
        "seconds": elapsed,
        "pps": packets / elapsed,
        "rps": count / elapsed,
    }


def run_child(path: str, serialise: bool) -> dict[str, float]:
    """One replay in a fresh process, so peak RSS is this run's alone."""
    result, rss = in_fresh_process("http1_replay", "replay", path, serialise)
    return {**result, "peak_rss_mb": rss}


def run_tshark(path: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        ["tshark", "-n", "-r", path, "-Y", "http.response", "-T", "fields", "-e", "http.time"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-tshark", action="store_true")
    ap.add_argument("--json-output", action="store_true", help="also serialise every record to JSON")
    ap.add_argument("--json", default=None, help="write results here")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, f"http1-keepalive-{args.packets}.pcap")
    if not os.path.exists(path):
        t0 = time.perf_counter()
        n, ex = generate(path, args.packets)
        print(
            f"generated {path}: {n} packets, {ex} exchanges, {os.path.getsize(path) / 1e6:.0f} MB in {time.perf_counter() - t0:.0f}s",
            file=sys.stderr,
        )
    runs = [run_child(path, args.json_output) for _ in range(args.runs)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    result = {"file": path, "runs": args.runs, "packetd": med}
    if not args.no_tshark and shutil.which("tshark"):
        t = [run_tshark(path) for _ in range(args.runs)]
        result["tshark_seconds"] = statistics.median(t)
        result["speedup_vs_tshark"] = result["tshark_seconds"] / med["seconds"]
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
