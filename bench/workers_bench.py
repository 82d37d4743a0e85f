"""`watch --workers N` on a replica of a real capture: wall and CPU at each N, and the reader's own cost
(what limits the speed-up as N grows).

    .venv/bin/python bench/workers_bench.py [--case redis] [--packets 300000] [--workers 1,2] [--runs 3]

The case's real capture (bench/out/real/CASE.pcap, recorded by scripts/; read-only) is replicated by
bench/replicate.py into bench/out/workers-CASE-PACKETS.pcap (cached). Then `--runs` rounds, each running
`packetd watch -r FILE --proto NAME:PORT --format json --workers N > /dev/null` once per N (alternating, so
a busy neighbour slows every N alike). Measured from wait4(): wall seconds, and CPU seconds (user + sys) of
watch and its workers (they are its children, reaped before it exits). Every run's summary (stderr) must
be the same as the first N's: a speed-up that changes the output is not one. Medians of the runs.

The reader's cost is measured apart, in this process: reading the file, steering every frame
(pipeline/fanout.py Steer: the L2-L4 decode) and packing it into batches, without workers. One reader
feeds every worker, so with W workers the run cannot be faster than the reader alone: projected wall at W
workers = max(reader, CPU(1 worker) / W) + start-up, the figure BENCHMARKS.md gives for 16 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src"))

from packetd.capture.pcapfile import CaptureFile  # noqa: E402
from packetd.capture.shmring import ITEM  # noqa: E402
from packetd.pipeline.fanout import Steer  # noqa: E402

PROTO = {
    "redis": "redis",
    "http1-small": "http",
    "http1-large": "http",
    "dns": "dns",
    "postgresql": "postgresql",
}


def replica(case: str, packets: int) -> tuple[str, str]:
    real = os.path.join(ROOT, "bench", "out", "real", case + ".pcap")
    with open(os.path.join(ROOT, "bench", "out", "real", case + ".json")) as f:
        port = json.load(f)["port"]
    out = os.path.join(ROOT, "bench", "out", f"workers-{case}-{packets}.pcap")
    if not os.path.exists(out):
        subprocess.run(
            [sys.executable, os.path.join(ROOT, "bench", "replicate.py"), real, out, "--server-port", str(port),
             "--packets", str(packets)],
            check=True,
        )  # fmt: skip
    return out, f"{PROTO.get(case, case)}:{port}"


def run_watch(path: str, rule: str, workers: int) -> tuple[float, float, str]:
    """(wall s, CPU s of watch and its workers, stderr)."""
    cmd = [sys.executable, "-m", "packetd", "watch", "-r", path, "--proto", rule, "--format", "json",
           "--workers", str(workers)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.path.join(ROOT, "src")}
    t0 = time.monotonic()
    with open(os.devnull, "wb") as null:
        proc = subprocess.Popen(cmd, stdout=null, stderr=subprocess.PIPE, env=env, cwd=ROOT)
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"watch --workers {workers} failed:\n{err}")
    return wall, usage.ru_utime + usage.ru_stime, err


def reader_cost(path: str, workers: int) -> tuple[float, int]:
    """(CPU s, frames) of reading + steering + packing every frame, no workers."""
    steer = Steer(workers)
    bufs = [bytearray() for _ in range(workers)]
    pack = ITEM.pack
    t0 = time.process_time()
    frames = 0
    src = CaptureFile(path)
    for ts, lt, data in src:
        frames += 1
        w = steer.route(ts, lt, data)
        if w >= 0:
            b = bufs[w]
            b += pack(frames, ts, len(data), lt)
            b += data
            if len(b) > 1 << 20:
                bufs[w] = bytearray()
    src.close()
    return time.process_time() - t0, frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", default="redis")
    ap.add_argument("--packets", type=int, default=300_000)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    path, rule = replica(args.case, args.packets)
    ns = [int(n) for n in args.workers.split(",")]
    walls: dict[int, list[float]] = {n: [] for n in ns}
    cpus: dict[int, list[float]] = {n: [] for n in ns}
    first_err = None
    for _ in range(args.runs):
        for n in ns:
            wall, cpu, err = run_watch(path, rule, n)
            if first_err is None:
                first_err = err
            elif err != first_err:
                raise SystemExit(
                    f"--workers {n}: the summary differs from the first run's:\n{err}\n---\n{first_err}"
                )
            walls[n].append(wall)
            cpus[n].append(cpu)
    rcpu, frames = reader_cost(path, max(ns))
    size = os.path.getsize(path) / 1e6
    print(
        f"{args.case}: {os.path.relpath(path, ROOT)} ({size:.1f} MB, {frames} frames), rule {rule}, {args.runs} runs"
    )
    print("| workers | wall s (median) | speed-up | CPU s (median, all processes) |")
    print("|---|---|---|---|")
    base = statistics.median(walls[ns[0]])
    for n in ns:
        w, c = statistics.median(walls[n]), statistics.median(cpus[n])
        print(f"| {n} | {w:.2f} | {base / w:.2f}× | {c:.2f} |")
    print(f"reader alone (read + steer + pack): {rcpu:.2f} s CPU, {rcpu / frames * 1e6:.2f} µs a frame")
    one = statistics.median(cpus[ns[0]])
    for w in (2, 4, 8, 16):
        print(
            f"projected wall at {w} workers: {max(rcpu, one / w):.2f} s (speed-up ≤ {one / max(rcpu, one / w):.1f}×)"
        )


if __name__ == "__main__":
    main()
