"""Per-connection memory and a SYN flood against normal traffic (issue 14).

    python bench/flow_memory.py [--syn 1000000] [--conns 20000] [--max-memory-mb 256]

1. Bytes per tracked connection (tracemalloc, in this process): N half-open connections (a SYN each) and
   N established HTTP/1 connections (handshake, one request answered, still open), each through a fresh
   engine, divided by N.
2. Three crafted captures, each replayed in a fresh interpreter (peak RSS from VmHWM, as bench/common.py
   does) with the HTTP rule on port 80: a SYN flood (`--syn` SYNs from distinct source addresses, none
   answered), normal traffic (`--conns` complete HTTP/1 exchanges: handshake, request, response, FIN), and
   open connections (`--open`, default the budget's bound: each answered once and left open, so the table
   ends full of decoded connections: its peak RSS is the budget's check).
   Packets per CPU-second is the packet loop alone (reader → L2-L4 → flows → decoder → pairing), by this
   process's CPU time (on a shared machine wall time measures the neighbours; it is shown beside); "end"
   is the end of the capture (every flow still open ended: a full table after the flood), timed apart.
   Normal traffic and the flood are replayed in alternation, `--repeat` pairs; medians are shown, and the
   median of the pairs' flood / normal ratios (the target: at least 1).
The table's bound comes from the memory budget (`--max-memory-mb`, as `sniffer.maxMemoryMB`).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import struct
import sys
import tempfile
import time
import tracemalloc
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import in_fresh_process

from packetd.capture.pcapfile import CaptureFile
from packetd.capture.pcapwrite import PcapWriter, TcpConversation, ethernet
from packetd.engine import Engine, EngineConfig, Rule
from packetd.flow.table import FlowConfig

try:
    from packetd.flow.table import flows_for_memory
except ImportError:  # the code before the memory budget (to measure it with this same script)

    def flows_for_memory(max_memory_mb: int) -> int:
        return 65536


from packetd.net.packet import SYN

RULE = Rule(protocol="http", ports=(80,))
SERVER = "10.255.0.1"
REQ = b"GET /index.html HTTP/1.1\r\nHost: bench\r\nUser-Agent: flow-memory\r\n\r\n"
RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 512\r\nContent-Type: text/html\r\n\r\n" + b"x" * 512
T0 = 1_700_000_000 * 1_000_000_000


def _client(i: int) -> tuple[str, int]:
    return f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 1024 + (i * 7) % 60000


def _syn_frame(i: int) -> bytes:
    """A SYN from client `i` to the server's port 80 (Ethernet/IPv4/TCP, checksums zero as in pcapwrite)."""
    ip, port = _client(i)
    tcp = struct.pack("!HHIIBBHHH", port, 80, (i * 2654435761) & 0xFFFFFFFF, 0, 5 << 4, SYN, 64240, 0, 0)
    iph = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        40,
        i & 0xFFFF,
        0x4000,
        64,
        6,
        0,
        socket.inet_aton(ip),
        socket.inet_aton(SERVER),
    )
    return ethernet(iph + tcp)


def write_syn_flood(path: str, n: int) -> int:
    with open(path, "wb") as f:
        w = PcapWriter(f)
        for i in range(n):
            w.write(T0 + i * 1000, _syn_frame(i))  # 1 M SYNs/s of capture time
    return n


def _conversation(i: int) -> list[bytes]:
    c = TcpConversation(_client(i), (SERVER, 80), isn_client=i * 977, isn_server=i * 1931)
    return [*c.handshake(), *c.send(0, REQ), *c.send(1, RESP), *c.close()]


def write_open(path: str, n: int) -> int:
    """`n` HTTP/1 connections, each answered once and left open: a table full of decoded connections."""
    packets = 0
    with open(path, "wb") as f:
        w = PcapWriter(f)
        for i in range(n):
            c = TcpConversation(_client(i), (SERVER, 80), isn_client=i * 977, isn_server=i * 1931)
            for p in (*c.handshake(), *c.send(0, REQ), *c.send(1, RESP)):
                packets += 1
                w.write(T0 + packets * 10_000, ethernet(p))
    return packets


def write_normal(path: str, n: int) -> int:
    """`n` HTTP/1 exchanges, 50 of them interleaved at a time (as concurrent clients would be)."""
    packets = 0
    ts = T0
    with open(path, "wb") as f:
        w = PcapWriter(f)
        for base in range(0, n, 50):
            convs = [_conversation(i) for i in range(base, min(n, base + 50))]
            for step in range(max(len(c) for c in convs)):
                for conv in convs:
                    if step < len(conv):
                        ts += 10_000
                        w.write(ts, ethernet(conv[step]))
                        packets += 1
    return packets


def replay(path: str, max_memory_mb: int) -> dict[str, Any]:
    """One replay (run in a fresh interpreter by `in_fresh_process`): the packet loop and the end of the
    capture (every flow still open is ended: for the flood, a full table) timed apart."""
    records: list[object] = []
    flow = FlowConfig(max_flows=flows_for_memory(max_memory_mb))
    engine = Engine(EngineConfig(rules=(RULE,), flow=flow), records.append)
    frame = engine.frame
    cf = CaptureFile(path)
    # CPU time of this process: on a shared machine wall time measures the neighbours too
    t0 = time.process_time()
    w0 = time.perf_counter()
    packets = 0
    for ts, lt, data in cf:
        frame(ts, lt, data)
        packets += 1
    t1 = time.process_time()
    w1 = time.perf_counter()
    engine.finish()
    t2 = time.process_time()
    cf.close()
    st = engine.flows.stats
    return {
        "packets": packets,
        "pps": packets / (t1 - t0),
        "wall_pps": packets / (w1 - w0),
        "finish_s": t2 - t1,
        "records": len(records),
        "created": st.created,
        "evicted": st.evicted,
        "max_flows": engine.flows.config.max_flows,
    }


def per_flow_bytes(n: int) -> dict[str, float]:
    out = {}
    for kind in ("half_open", "established"):
        engine = Engine(EngineConfig(rules=(RULE,), flow=FlowConfig(max_flows=2 * n)), lambda r: None)
        frames: list[bytes] = []
        for i in range(n):
            if kind == "half_open":
                frames.append(_syn_frame(i))
            else:
                c = TcpConversation(_client(i), (SERVER, 80), isn_client=i * 977, isn_server=i * 1931)
                frames += [ethernet(p) for p in (*c.handshake(), *c.send(0, REQ), *c.send(1, RESP))]
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for j, fr in enumerate(frames):
            engine.frame(T0 + j, 1, memoryview(fr))
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        assert engine.flows.stats.active == n
        out[kind] = (after - before) / n
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--syn", type=int, default=1_000_000)
    ap.add_argument("--conns", type=int, default=20_000)
    ap.add_argument("--max-memory-mb", type=int, default=256)
    ap.add_argument(
        "--open", type=int, default=0, help="open connections (default: the budget's bound; -1: skip)"
    )
    ap.add_argument("--per-flow", type=int, default=20_000, help="connections measured with tracemalloc")
    ap.add_argument("--repeat", type=int, default=5, help="replays of each capture; the median is shown")
    args = ap.parse_args()
    sizes = per_flow_bytes(args.per_flow)
    print(f"bytes per connection: half-open {sizes['half_open']:.0f}, established {sizes['established']:.0f}")
    with tempfile.TemporaryDirectory() as tmp:
        syn = os.path.join(tmp, "syn-flood.pcap")
        normal = os.path.join(tmp, "normal.pcap")
        held = os.path.join(tmp, "open.pcap")
        write_syn_flood(syn, args.syn)
        write_normal(normal, args.conns)
        if args.open >= 0:
            write_open(held, args.open or flows_for_memory(args.max_memory_mb))
        # normal traffic and the flood alternate within each repeat (a shared machine's load drifts: a pair
        # run back to back sees the same neighbours), and the medians are shown with the median of the
        # per-pair ratios; the table full of open connections is for its peak RSS, replayed once
        pairs = []
        for _ in range(args.repeat):
            pairs.append(
                tuple(
                    in_fresh_process("flow_memory", "replay", path, args.max_memory_mb)
                    for path in (normal, syn)
                )
            )
        for i, name in enumerate(("normal traffic", "SYN flood")):
            _show(name, [pair[i] for pair in pairs])
        ratios = [s[0]["pps"] / n[0]["pps"] for n, s in pairs]
        print(
            f"SYN flood / normal traffic, packets/CPU-s: median {statistics.median(ratios):.2f}x"
            f" (runs: {', '.join(f'{r:.2f}' for r in ratios)})"
        )
        if args.open >= 0:
            _show("open conns", [in_fresh_process("flow_memory", "replay", held, args.max_memory_mb)])


def _show(name: str, runs: list[tuple[dict[str, Any], float]]) -> None:
    """The median of the runs' packets per CPU-second (and wall), the largest peak RSS."""
    r = runs[0][0]
    pps = statistics.median(run[0]["pps"] for run in runs)
    wall = statistics.median(run[0]["wall_pps"] for run in runs)
    finish = statistics.median(run[0]["finish_s"] for run in runs)
    rss = max(run[1] for run in runs)
    each = ", ".join(f"{run[0]['pps']:.0f}" for run in runs)
    print(
        f"{name:15} {r['packets']:>9} packets  {pps:>7.0f} packets/CPU-s ({wall:.0f}/s wall)"
        f"  end {finish:4.1f} s  "
        f"peak RSS {rss:6.1f} MB  flows {r['created']} (evicted {r['evicted']}, bound {r['max_flows']})"
        f"  records {r['records']}  [median of {len(runs)}: {each}]"
    )


if __name__ == "__main__":
    main()
