"""Where the replay time goes, layer by layer: read → +L2-L4 → +flows → the whole pipeline.

    .venv/bin/python bench/layers.py [capture]   (default: bench/out/http1-keepalive-200000.pcap)

Each line adds one layer to the previous one and prints µs per packet (median of 3 runs); the difference
between two lines is the cost of the layer added.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

# after site-packages: an interpreter with packetd installed (the compiled wheel in .venv-compiled) measures
# that build, not src/
sys.path.append(os.path.join(os.path.dirname(__file__), "..", "src"))

from packetd.capture.pcapfile import CaptureFile
from packetd.engine import Engine, EngineConfig, Rule
from packetd.flow.table import FlowTable
from packetd.net.packet import PacketDecoder


class Null:
    def data(self, *a: object) -> None: ...
    def gap(self, *a: object) -> None: ...
    def eof(self, *a: object) -> None: ...
    def close(self, *a: object) -> None: ...
    def settled(self) -> bool:
        return False


def main() -> None:
    path = (
        sys.argv[1]
        if len(sys.argv) > 1
        else os.path.join(os.path.dirname(__file__), "out", "http1-keepalive-200000.pcap")
    )
    n = sum(1 for _ in CaptureFile(path))

    def read() -> None:
        for _ in CaptureFile(path):
            pass

    def net() -> None:
        dec = PacketDecoder().decode
        for ts, lt, d in CaptureFile(path):
            dec(ts, lt, d)

    def flow() -> None:
        dec = PacketDecoder().decode
        seg = FlowTable([("http", "tcp", frozenset({80}), None)], lambda *a: Null()).segment
        for ts, lt, d in CaptureFile(path):
            s = dec(ts, lt, d)
            if s is not None:
                seg(s)

    def full() -> None:
        engine = Engine(EngineConfig(rules=(Rule(protocol="http", ports=(80,)),)), lambda r: None)
        frame = engine.frame
        for ts, lt, d in CaptureFile(path):
            frame(ts, lt, d)
        engine.finish()

    prev = 0.0
    for label, fn in (
        ("read pcap", read),
        ("+ L2-L4 decode", net),
        ("+ flow table, TCP", flow),
        ("+ HTTP decode, pairing, records", full),
    ):
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        us = statistics.median(times) / n * 1e6
        print(f"{label:34s} {us:6.2f} µs/packet  (layer: {us - prev:5.2f})")
        prev = us


if __name__ == "__main__":
    main()
