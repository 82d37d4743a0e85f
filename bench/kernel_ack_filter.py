"""What the kernel clause that drops pure TCP ACKs (`--kernel-drop-acks`) saves, measured live.

    sudo .venv/bin/python bench/kernel_ack_filter.py [--requests 3000] [--bulk-mb 200] [--runs 3] [--netns]

Two workloads against Debian's nginx, each captured twice by `packetd watch` (with and without the
clause): many small keep-alive requests, and bulk downloads. On loopback the kernel moves 64 KiB GSO
segments and few ACKs; with --netns nginx runs in a network namespace behind a veth pair with GSO limited
to one segment (`gso_max_segs 1`), so the capture sees wire-sized 1448-byte segments and the ACKs a real
NIC would carry. Reported per workload: packets packetd
received (from its summary), CPU seconds of the packetd process, and roundtrips (which must not change).
Medians of --runs.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tests.helpers.live import ROOT, Nginx, _wait_stderr


def small(host: str, port: int, n: int) -> None:
    c = http.client.HTTPConnection(host, port)
    for i in range(n):
        c.request("GET", f"/index.txt?i={i}")
        c.getresponse().read()
    c.close()


def bulk(host: str, port: int, mb: int) -> None:
    c = http.client.HTTPConnection(host, port)
    for _ in range(max(1, mb // 5)):
        c.request("GET", "/big.bin")
        r = c.getresponse()
        while r.read(1 << 20):
            pass
    c.close()


NS, HOST_IF, NS_IF, HOST_IP, NS_IP = "pdbench", "pdb0", "pdb1", "10.77.0.1", "10.77.0.2"


def netns_up() -> None:
    run = lambda *a: subprocess.run(list(a), check=True)  # noqa: E731
    run("ip", "netns", "add", NS)
    run("ip", "link", "add", HOST_IF, "type", "veth", "peer", "name", NS_IF)
    run("ip", "link", "set", NS_IF, "netns", NS)
    run("ip", "addr", "add", f"{HOST_IP}/24", "dev", HOST_IF)
    run("ip", "netns", "exec", NS, "ip", "addr", "add", f"{NS_IP}/24", "dev", NS_IF)
    run("ip", "link", "set", HOST_IF, "gso_max_segs", "1", "up")
    run("ip", "netns", "exec", NS, "ip", "link", "set", NS_IF, "gso_max_segs", "1", "up")
    run("ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up")


def netns_down() -> None:
    subprocess.run(["ip", "netns", "del", NS], check=False)


def measure(port: int, drop_acks: bool, work: str, amount: int, host: str, iface: str) -> dict[str, float]:
    args = [
        sys.executable,
        "-m",
        "packetd",
        "watch",
        "--format",
        "json",
        "--ifaces",
        f"^{iface}$",
        "--proto",
        f"http;{port}",
        "--block-num",
        "256",
    ]
    if drop_acks:
        args.append("--kernel-drop-acks")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    _wait_stderr(proc, b"capturing on")
    if work == "small":
        small(host, port, amount)
    else:
        bulk(host, port, amount)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    text = err.decode()
    packets = int(re.search(r"(\d+) packets in", text).group(1))  # type: ignore[union-attr]
    drops = int(re.search(r"(\d+) dropped by the kernel", text).group(1))  # type: ignore[union-attr]
    rts = int(re.search(r"(\d+) roundtrips", text).group(1))  # type: ignore[union-attr]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"packets": packets, "kernel_drops": drops, "roundtrips": rts, "cpu_seconds": cpu}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--bulk-mb", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--netns", action="store_true")
    a = ap.parse_args()
    if a.netns:
        netns_up()
        nginx = Nginx(host=NS_IP, netns=NS, port=8080)
        host, iface = NS_IP, HOST_IF
    else:
        nginx = Nginx()
        host, iface = "127.0.0.1", "lo"
    try:
        for work, amount in (("small", a.requests), ("bulk", a.bulk_mb)):
            for drop in (False, True):
                runs = [measure(nginx.port, drop, work, amount, host, iface) for _ in range(a.runs)]
                med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                print(f"{work:5s} drop_acks={drop!s:5s} " + " ".join(f"{k}={v:g}" for k, v in med.items()))
    finally:
        nginx.stop()
        if a.netns:
            netns_down()


if __name__ == "__main__":
    main()
