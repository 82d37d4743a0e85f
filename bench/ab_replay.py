"""Before/after replay on a busy machine: two source trees, alternating, CPU time per run.

    .venv/bin/python bench/ab_replay.py BASE_TREE AFTER_TREE [--rounds 5] [--proto dns,amqp,mongodb,kafka,http1]

The captures are bench/proto_replay.py's and bench/http1_replay.py's (generated once under bench/out/ by
running them). Each run replays one capture through the whole engine of one tree (reader → L2-L4 → flows
→ decoder → pairing → a counting sink: bench/common.timed_replay's path) in a fresh interpreter at nice 19,
and measures the process's CPU time, not the wall clock: with other work on the cores, wall-clock rates of
the same run swing threefold, CPU time by about a fifth. Runs alternate between the trees, so both see the
same machine; the medians of `--rounds` runs are compared, and the record counts must be equal.
(`git archive REV | tar -x -C DIR` makes a tree of a commit.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")
CAPTURES = {  # name → (rule protocol, port, capture under bench/out/)
    "dns": ("dns", 53, "dns-100000.pcap"),
    "amqp": ("amqp", 5672, "amqp-100000.pcap"),
    "mongodb": ("mongodb", 27017, "mongodb-100000.pcap"),
    "kafka": ("kafka", 9092, "kafka-100000.pcap"),
    "http1": ("http", 80, "http1-keepalive-300000.pcap"),
}
RUN = r"""
import sys, time
sys.path.insert(0, sys.argv[1] + "/src")
from packetd.capture.pcapfile import CaptureFile
from packetd.engine import Engine, EngineConfig, Rule
records = [0]
def sink(_r):
    records[0] += 1
engine = Engine(EngineConfig(rules=(Rule(protocol=sys.argv[2], ports=(int(sys.argv[3]),)),)), sink)
frame = engine.frame
cf = CaptureFile(sys.argv[4])
t0 = time.process_time()
packets = 0
for ts, lt, data in cf:
    frame(ts, lt, data)
    packets += 1
engine.finish()
print(packets / (time.process_time() - t0), records[0])
"""


def run(tree: str, proto: str) -> tuple[float, int]:
    rule, port, name = CAPTURES[proto]
    cmd = ["nice", "-n", "19", sys.executable, "-c", RUN, tree, rule, str(port), os.path.join(OUT, name)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), int(out[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("after")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--proto", default=",".join(CAPTURES))
    args = ap.parse_args()
    protos = args.proto.split(",")
    got: dict[tuple[str, str], list[tuple[float, int]]] = {}
    for _ in range(args.rounds):
        for proto in protos:
            for tree in (args.base, args.after):
                got.setdefault((proto, tree), []).append(run(tree, proto))
    for proto in protos:
        base, after = got[(proto, args.base)], got[(proto, args.after)]
        mb, ma = statistics.median(p for p, _ in base), statistics.median(p for p, _ in after)
        same = {r for _, r in base} == {r for _, r in after}
        print(
            f"{proto:8} base {mb:9.0f} pkt/CPU-s  after {ma:9.0f}  {100 * (ma / mb - 1):+6.1f}%  "
            f"records {'equal' if same else 'DIFFER'}  base {[round(p) for p, _ in base]}  after {[round(p) for p, _ in after]}"
        )


if __name__ == "__main__":
    main()
