"""gRPC benchmark: live capture of unary calls at the highest rate this machine makes, then an offline replay
of that capture beside tshark.

    sudo .venv/bin/python bench/grpc_bench.py [--calls 100000] [--clients 4] [--streams 16] [--runs 3] [--no-tshark]

Live: the grpcio server of the live tests (tests/helpers/grpc_server.py, C-core HTTP/2, one Python handler
per call) is loaded by `h2load` speaking gRPC (POST, content-type application/grpc, te: trailers, one
length-prefixed message per call) over `--clients` connections with `--streams` calls in flight on each;
`packetd watch` captures loopback through AF_PACKET while tcpdump records the same traffic. Reported:
the call rate h2load achieved, the calls it counted as succeeded, the `grpc` roundtrips packetd reported
for them (the share captured), packetd's CPU time and the kernel's drop count.

Offline: the tcpdump file is replayed through the whole pipeline (reader → L2-L4 → flows → HTTP/2 decoder →
keyed pairing → records, counting sink) in a fresh process per run: packets/s, roundtrips/s, peak RSS; and
tshark's time on the same file (`-d tcp.port==P,http2 -Y http2.headers.status -T fields -e
http2.streamid`), median of `--runs`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(HERE, "out")
sys.path.insert(0, os.path.join(ROOT, "src"))
sys.path.insert(0, ROOT)

from bench.common import in_fresh_process, timed_replay  # noqa: E402
from tests.helpers.live import free_port, wait_port  # noqa: E402

from packetd.engine import Rule  # noqa: E402


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def live(calls: int, clients: int, streams: int, pcap: str) -> dict[str, object]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "tests", "helpers", "grpc_server.py"), str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_port(port, timeout=30)
    msg = os.path.join(OUT, "grpc-msg.bin")
    with open(msg, "wb") as f:
        f.write(b"\x00" + (16).to_bytes(4, "big") + b"0123456789abcdef")  # one 16-byte gRPC message
    td = subprocess.Popen(
        ["tcpdump", "-i", "lo", "-U", "-n", "-s", "0", "-B", "131072", "--time-stamp-precision=nano", "-w", pcap, f"tcp port {port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    out_path = os.path.join(OUT, "grpc-live.jsonl")
    out = open(out_path, "wb")  # noqa: SIM115
    watch = subprocess.Popen(
        [sys.executable, "-m", "packetd", "watch", "--format", "json", "--ifaces", "^lo$", "--proto", f"grpc;{port}", "--block-num", "128"],
        stdout=out, stderr=subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    seen = b""
    assert watch.stderr is not None
    while b"capturing on" not in seen:
        seen += watch.stderr.read1(4096)  # type: ignore[attr-defined]
    time.sleep(1)
    cpu0 = cpu_seconds(watch.pid)
    load = subprocess.run(
        ["h2load", "-n", str(calls), "-c", str(clients), "-m", str(streams), "-H", "content-type: application/grpc",
         "-H", "te: trailers", "-d", msg, f"http://127.0.0.1:{port}/demo.Echo/Unary"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    time.sleep(2)
    cpu1 = cpu_seconds(watch.pid)
    watch.send_signal(signal.SIGINT)
    _, err = watch.communicate(timeout=60)
    out.close()
    td.send_signal(signal.SIGINT)
    td.communicate(timeout=30)
    server.kill()
    server.wait()
    rate = float(re.search(r"finished in [\d.]+s, ([\d.]+) req/s", load).group(1))  # type: ignore[union-attr]
    ok = int(re.search(r"requests: .* (\d+) succeeded", load).group(1))  # type: ignore[union-attr]
    records = 0
    with open(out_path, "rb") as f:
        for line in f:
            r = json.loads(line)
            if r["kind"] == "roundtrip" and r["operation"] == "demo.Echo/Unary" and r["status"] == "OK":
                records += 1
    dropped = re.search(rb"(\d+) dropped by the kernel", (seen + err))
    return {
        "port": port,
        "calls_per_s": rate,
        "succeeded": ok,
        "records": records,
        "captured_share": records / ok if ok else 0.0,
        "packetd_cpu_s": cpu1 - cpu0,
        "kernel_drops": int(dropped.group(1)) if dropped else -1,
    }


def replay(path: str, port: int) -> dict[str, float]:
    count = 0

    def sink(rt: object) -> None:
        nonlocal count
        count += 1

    _, packets, elapsed = timed_replay(path, Rule(protocol="grpc", ports=(port,)), sink)
    return {
        "packets": packets,
        "roundtrips": count,
        "seconds": elapsed,
        "pps": packets / elapsed,
        "rps": count / elapsed,
    }


def run_child(path: str, port: int) -> dict[str, float]:
    result, rss = in_fresh_process("grpc_bench", "replay", path, port)
    return {**result, "peak_rss_mb": rss}


def run_tshark(path: str, port: int) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        ["tshark", "-n", "-r", path, "-d", f"tcp.port=={port},http2", "-Y", "http2.headers.status", "-T", "fields", "-e", "http2.streamid"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
    )  # fmt: skip
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--streams", type=int, default=16)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-tshark", action="store_true")
    ap.add_argument("--json", default=None, help="write results here")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    pcap = os.path.join(OUT, f"grpc-unary-{args.calls}.pcap")
    lv = live(args.calls, args.clients, args.streams, pcap)
    print(
        f"live: {lv['calls_per_s']:.0f} calls/s by h2load, {lv['succeeded']} succeeded, {lv['records']} grpc "
        f"roundtrips reported ({100 * lv['captured_share']:.2f} %), packetd CPU {lv['packetd_cpu_s']:.1f} s, "
        f"{lv['kernel_drops']} kernel drops"
    )
    runs = [run_child(pcap, int(lv["port"])) for _ in range(args.runs)]  # type: ignore[call-overload]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(
        f"replay: {med['packets']:.0f} packets, {med['roundtrips']:.0f} roundtrips in {med['seconds']:.2f} s: "
        f"{med['pps']:.0f} packets/s, {med['rps']:.0f} roundtrips/s, peak RSS {med['peak_rss_mb']:.0f} MB"
    )
    result: dict[str, object] = {"live": lv, "replay": med, "file_mb": os.path.getsize(pcap) / 1e6}
    if not args.no_tshark:
        t = statistics.median(run_tshark(pcap, int(lv["port"])) for _ in range(args.runs))  # type: ignore[call-overload]
        result["tshark_seconds"] = t
        print(
            f"tshark: {t:.2f} s ({med['packets'] / t:.0f} packets/s, {med['roundtrips'] / t:.0f} roundtrips/s); "
            f"packetd is {t / med['seconds']:.2f}x tshark's speed"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
