"""Process attribution's cost: µs per connection looked up (uncached, batched, cached) on real local
sockets, and the effect on live capture (watch's CPU per packet → packets/s one core sustains) with
`--processes` against `--no-processes` under a load of new connections.

    sudo nice -n 19 .venv/bin/python bench/processes.py [--conns 200] [--live-conns 1000] [--requests 5]

Part 1 makes `--conns` loopback connections in this process and asks the resolver about them three ways:
one connection per pass (every connection its own /proc pass: the worst case, a quiet host), all at once
(one pass for the batch: a burst), and again (cache hits). The cost of a pass grows with the host's
processes and sockets, printed beside the numbers.

Part 2 runs nginx and a client that opens `--live-conns` connections of `--requests` requests each, in
waves of 50 that stay open `--hold` seconds (0 for connections that close at once: watch reads packets
when the kernel retires a ring block, up to RETIRE_TOV_MS later, so such connections are gone by then),
captured live on loopback by `packetd watch`, once with and once without attribution; watch's own CPU
time after start-up (utime + stime of its process) divided by the packets it read.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "src"))

from tests.helpers.live import Nginx, capture  # noqa: E402

from packetd.attribution.processes import ProcessResolver  # noqa: E402

TCP = 6


def _host() -> str:
    pids = [p for p in os.listdir("/proc") if p.isdigit()]
    socks = 0
    for t in ("tcp", "tcp6"):
        with open(f"/proc/net/{t}") as f:
            socks += sum(1 for _ in f) - 1
    return f"{len(pids)} processes, {socks} TCP sockets in this namespace"


def _connections(lst: socket.socket, n: int) -> list[tuple[socket.socket, socket.socket]]:
    pairs = []
    for _ in range(n):
        c = socket.create_connection(lst.getsockname())
        s, _ = lst.accept()
        pairs.append((c, s))
    return pairs


def lookups(n: int) -> None:
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(n)
    r = ProcessResolver()
    # warm: the first connection's pass walks every process (namespaces, owners); this process is then
    # among the recent owners, as a server or client that keeps making connections is
    (warm,) = _connections(lst, 1)
    r.note(warm[0].getsockname(), warm[0].getpeername(), TCP)
    r.processes(warm[0].getsockname(), warm[0].getpeername())
    pairs = _connections(lst, n)  # made after the walk: new inodes, as new connections are
    conns = [(c.getsockname(), c.getpeername()) for c, _ in pairs]
    print(f"host: {_host()} (+{2 * n} sockets of this benchmark)")

    t0 = time.perf_counter()
    for c, s in conns:
        r.note(c, s, TCP)
        r.processes(c, s)
    one = (time.perf_counter() - t0) / n
    assert r.stats.found == 2 * (n + 1), r.stats
    print(f"uncached, one connection per pass:  {one * 1e6:9.1f} µs per connection (walks: {r.stats.walks})")

    more = _connections(lst, n)
    conns2 = [(c.getsockname(), c.getpeername()) for c, _ in more]
    passes = r.stats.passes
    t0 = time.perf_counter()
    for c, s in conns2:
        r.note(c, s, TCP)
    for c, s in conns2:
        r.processes(c, s)
    batch = (time.perf_counter() - t0) / n
    assert r.stats.found == 2 * (2 * n + 1) and r.stats.passes == passes + 1, r.stats
    print(
        f"uncached, {n} connections in one pass: {batch * 1e6:6.1f} µs per connection (walks: {r.stats.walks})"
    )

    rounds = 20
    t0 = time.perf_counter()
    for _ in range(rounds):
        for c, s in conns:
            r.processes(c, s)
    cached = (time.perf_counter() - t0) / (n * rounds)
    print(f"cached:                             {cached * 1e6:9.2f} µs per record (both ends)")

    t0 = time.perf_counter()
    for _ in range(5):
        r._walk()
    print(f"one walk of every process's fds:    {(time.perf_counter() - t0) / 5 * 1e3:9.2f} ms "
          "(a connection of a process not among the recent owners)")  # fmt: skip
    tables = ProcessResolver(use_netlink=False)
    t0 = time.perf_counter()
    for c, s in conns[:20]:
        tables.note(c, s, TCP)
        tables.processes(c, s)
    print(
        f"without netlink (/proc/net/tcp*):   {(time.perf_counter() - t0) / 20 * 1e6:9.1f} µs per connection"
    )
    for p in (warm, *pairs, *more):
        p[0].close()
        p[1].close()
    lst.close()
    r.close()
    tables.close()


_CLIENT = """
import http.client, sys, time
conns, reqs, port, hold = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
WAVE = 50
for _ in range(0, conns, WAVE):
    wave = [http.client.HTTPConnection("127.0.0.1", port) for _ in range(WAVE)]
    for _ in range(reqs):
        for c in wave:
            c.request("GET", "/index.txt"); c.getresponse().read()
    time.sleep(hold)
    for c in wave:
        c.close()
"""


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def live(conns: int, reqs: int, hold: float) -> None:
    nginx = Nginx()
    try:
        for flag in ("--no-processes", "--processes"):
            args = ["--ifaces", "^lo$", "--proto", f"http;{nginx.port}", "--block-num", "64", flag]
            with capture(args) as cap:
                base = _cpu_s(cap.proc.pid)  # start-up (imports, ring set-up) is not per packet
                t0 = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-c", _CLIENT, str(conns), str(reqs), str(nginx.port), str(hold)],
                    check=True,
                )
                wall = time.perf_counter() - t0
                time.sleep(1.0)
                cpu = _cpu_s(cap.proc.pid) - base
                records = cap.stop()
            err = cap.stderr.decode()
            packets = int(re.search(r"packetd: (\d+) packets in", err).group(1))  # type: ignore[union-attr]
            drops = int(re.search(r"(\d+) dropped by the kernel", err).group(1))  # type: ignore[union-attr]
            found = sum(1 for r in records if r["client"].get("process") and r["server"].get("process"))
            print(
                f"{flag:>15}: {len(records)} records, {packets} packets, {drops} dropped, load {wall:.1f} s; "
                f"watch CPU {cpu:.2f} s = {cpu / packets * 1e6:.1f} µs/packet "
                f"(≈ {packets / cpu:,.0f} packets/s on one core); both ends named in {found} records"
            )
            m = re.search(r"packetd: processes: .*", err)
            if m:
                print("                 " + m.group(0))
    finally:
        nginx.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=200)
    ap.add_argument("--live-conns", type=int, default=1000)
    ap.add_argument("--requests", type=int, default=5)
    ap.add_argument("--hold", type=float, default=0.3, help="seconds each wave of 50 connections stays open")
    ap.add_argument("--no-live", action="store_true")
    a = ap.parse_args()
    lookups(a.conns)
    if not a.no_live:
        live(a.live_conns, a.requests, a.hold)


if __name__ == "__main__":
    main()
