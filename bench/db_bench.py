"""Database benchmarks: live capture while a load generator runs on loopback, then offline replay of what
tcpdump recorded of the same traffic, beside tshark on the same file.

    sudo .venv/bin/python bench/db_bench.py redis [--pipeline 1] [--requests 100000] [--clients 50]
    sudo .venv/bin/python bench/db_bench.py postgresql [--seconds 10] [--clients 4] [--mode simple|prepared]
    sudo .venv/bin/python bench/db_bench.py mysql [--requests 20000] [--clients 4]

Live: the server (Debian's redis-server, PostgreSQL 15 or MariaDB, started here on a free port with its own
data directory) runs the load generator (`redis-benchmark -t set,get`, `pgbench -S`, `mariadb-slap` with a
primary-key SELECT) while `packetd watch` captures loopback through AF_PACKET with JSON output to a file.
Reported: the generator's rate, requests it sent, the roundtrips of those commands packetd reported (÷ sent),
packetd's CPU seconds per 1000 roundtrips (its own rusage), and kernel drops.

Offline: tcpdump's file of the same traffic replayed through the whole pipeline in this process (reader →
L2-L4 → flows → decoder → pairing → records, counting sink), median of --runs; packets/s, roundtrips/s,
peak RSS of a fresh process doing the replay; and tshark's time on the same file
(`tshark -r FILE -Y <proto> -T fields -e frame.number`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(__file__), "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "src"))

from bench.common import in_fresh_process, timed_replay  # noqa: E402
from tests.helpers.dbservers import MariaDBServer, PostgresServer, RedisServer  # noqa: E402

from packetd.engine import Rule  # noqa: E402

TSHARK_FILTER = {"redis": "resp", "postgresql": "pgsql", "mysql": "mysql"}
OUT = os.path.join(os.path.dirname(__file__), "out")
ENGINE = ["--engine", "afpacket"]  # --engine sets the live capture engine


def start_capture(
    proto: str, port: int, workdir: str, tcpdump: bool = True
) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes] | None, str, str, str]:
    """`packetd watch` on lo (and tcpdump beside it unless not `tcpdump`): (watch, tcpdump, pcap, out, err)."""
    pcap = os.path.join(workdir, f"{proto}.pcap")
    out = os.path.join(workdir, "records.jsonl")
    err = os.path.join(workdir, "watch.err")
    td = None if not tcpdump else subprocess.Popen(
        ["tcpdump", "-i", "lo", "-U", "-n", "-s", "0", "-B", "262144", "--immediate-mode", "-w", pcap, f"tcp port {port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    with open(out, "wb") as o, open(err, "wb") as e:
        watch = subprocess.Popen(
            [sys.executable, "-m", "packetd", "watch", "--format", "json", "--ifaces", "^lo$", "--proto",
             f"{proto};{port}", "--block-num", "512", *ENGINE],
            stdout=o, stderr=e, cwd=ROOT,
        )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        with open(err, "rb") as f:
            text = f.read()
        if b"capturing on" in text:
            break
        if time.monotonic() > deadline or watch.poll() is not None:
            raise RuntimeError(text.decode(errors="replace"))
        time.sleep(0.1)
    time.sleep(1.0)  # tcpdump is listening by now too
    return watch, td, pcap, out, err


def stop_capture(
    watch: subprocess.Popen[bytes], td: subprocess.Popen[bytes] | None, err: str
) -> tuple[float, str]:
    time.sleep(2.0)  # let the ring drain
    watch.send_signal(signal.SIGINT)
    _, status, usage = os.wait4(watch.pid, 0)
    watch.returncode = status
    if td is not None:
        td.send_signal(signal.SIGINT)
        td.wait(timeout=60)
    with open(err) as f:
        return usage.ru_utime + usage.ru_stime, f.read()


def count_records(path: str, operations: set[str], statement: str | None = None) -> tuple[int, int]:
    """(roundtrips of these operations, all records)."""
    hits = total = 0
    with open(path, "rb") as f:
        for line in f:
            total += 1
            rec = json.loads(line)
            if rec["kind"] != "roundtrip" or rec["operation"] not in operations:
                continue
            if statement is not None and statement not in ((rec["request"] or {}).get("statement") or ""):
                continue
            hits += 1
    return hits, total


def replay(pcap: str, proto: str, port: int) -> tuple[float, int, int]:
    """(seconds, packets, roundtrips) for one replay of the file."""
    count = [0]

    def sink(_rt: object) -> None:
        count[0] += 1

    _, packets, elapsed = timed_replay(pcap, Rule(protocol=proto, ports=(port,)), sink)
    return elapsed, packets, count[0]


def offline(pcap: str, proto: str, port: int, runs: int) -> dict:
    times = []
    packets = roundtrips = 0
    for _ in range(runs):
        t, packets, roundtrips = replay(pcap, proto, port)
        times.append(t)
    t = statistics.median(times)
    _, rss_mb = in_fresh_process("db_bench", "replay", pcap, proto, port)  # peak RSS of one replay
    result = {
        "file_mb": round(os.path.getsize(pcap) / 1e6, 1),
        "packets": packets,
        "roundtrips": roundtrips,
        "seconds": round(t, 2),
        "packets_per_s": round(packets / t),
        "roundtrips_per_s": round(roundtrips / t),
        "peak_rss_mb": round(rss_mb, 1),
    }
    if shutil.which("tshark"):
        t0 = time.perf_counter()
        subprocess.run(
            ["tshark", "-n", "-r", pcap, "-d", f"tcp.port=={port},{TSHARK_FILTER[proto]}", "-Y", TSHARK_FILTER[proto],
             "-T", "fields", "-e", "frame.number"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
        )  # fmt: skip
        result["tshark_seconds"] = round(time.perf_counter() - t0, 2)
        result["faster_than_tshark"] = round(result["tshark_seconds"] / t, 2)
    return result


def run_redis(args: argparse.Namespace, workdir: str) -> dict:
    server = RedisServer()
    try:
        watch, td, pcap, out, err = start_capture("redis", server.port, workdir)
        bench = subprocess.run(
            ["redis-benchmark", "-h", "127.0.0.1", "-p", str(server.port), "-n", str(args.requests), "-c", str(args.clients),
             "-P", str(args.pipeline), "-t", "set,get", "--csv"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        cpu, stderr = stop_capture(watch, td, err)
    finally:
        server.stop()
    rates = {m.group(1): float(m.group(2)) for m in re.finditer(r'^"(\w+)","([\d.]+)"', bench.stdout, re.M)}
    sent = 2 * args.requests
    captured, total = count_records(out, {"SET", "GET"})
    return {"generator": f"redis-benchmark -t set,get -n {args.requests} -c {args.clients} -P {args.pipeline}",
            "rate_per_s": rates, "sent": sent, "captured": captured, "records": total, "cpu_s": round(cpu, 2),
            "stderr": stderr, "pcap": pcap, "port": server.port}  # fmt: skip


def run_postgresql(args: argparse.Namespace, workdir: str) -> dict:
    server = PostgresServer()
    env = {**os.environ, "PGPASSWORD": server.PASSWORD}
    pgbench = shutil.which("pgbench") or "pgbench"
    common = ["-h", "127.0.0.1", "-p", str(server.port), "-U", server.USER]
    try:
        subprocess.run(
            [pgbench, "-i", "-s", "2", "-q", *common, server.DATABASE],
            env=env,
            capture_output=True,
            check=True,
        )
        watch, td, pcap, out, err = start_capture("postgresql", server.port, workdir)
        bench = subprocess.run(
            [pgbench, "-S", "-n", "-c", str(args.clients), "-j", "2", "-T", str(args.seconds), "-M", args.mode, *common,
             server.DATABASE],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        cpu, stderr = stop_capture(watch, td, err)
    finally:
        server.stop()
    sent = int(re.search(r"number of transactions actually processed: (\d+)", bench.stdout).group(1))  # type: ignore[union-attr]
    tps = float(re.search(r"tps = ([\d.]+)", bench.stdout).group(1))  # type: ignore[union-attr]
    ops = {"Query"} if args.mode == "simple" else {"Execute"}
    captured, total = count_records(out, ops, statement="pgbench_accounts")
    return {"generator": f"pgbench -S -M {args.mode} -c {args.clients} -j 2 -T {args.seconds}", "rate_per_s": tps,
            "sent": sent, "captured": captured, "records": total, "cpu_s": round(cpu, 2), "stderr": stderr,
            "pcap": pcap, "port": server.port}  # fmt: skip


def run_mysql(args: argparse.Namespace, workdir: str) -> dict:
    server = MariaDBServer()
    try:
        server.sql(f"CREATE TABLE {server.DATABASE}.kv (id INT PRIMARY KEY, v VARCHAR(64)); "
                   f"USE {server.DATABASE}; INSERT INTO kv SELECT seq, md5(seq) FROM seq_1_to_1000;")  # fmt: skip
        watch, td, pcap, out, err = start_capture("mysql", server.port, workdir)
        t0 = time.perf_counter()
        subprocess.run(
            ["mariadb-slap", "--no-defaults", "-h", "127.0.0.1", "-P", str(server.port), "-u", server.USER,
             f"-p{server.PASSWORD}", f"--create-schema={server.DATABASE}", f"--concurrency={args.clients}",
             "--iterations=1", f"--number-of-queries={args.requests}", "--query=SELECT v FROM kv WHERE id = 42"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        elapsed = time.perf_counter() - t0
        cpu, stderr = stop_capture(watch, td, err)
    finally:
        server.stop()
    captured, total = count_records(out, {"COM_QUERY"}, statement="FROM kv WHERE id")
    return {"generator": f"mariadb-slap --concurrency={args.clients} --number-of-queries={args.requests}",
            "rate_per_s": round(args.requests / elapsed), "sent": args.requests, "captured": captured,
            "records": total, "cpu_s": round(cpu, 2), "stderr": stderr, "pcap": pcap, "port": server.port}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("protocol", choices=["redis", "postgresql", "mysql"])
    p.add_argument("--requests", type=int, default=100_000)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--pipeline", type=int, default=1)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--mode", default="simple", choices=["simple", "extended", "prepared"])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--keep", action="store_true", help="keep the capture under bench/out/")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--engine", default="afpacket", choices=["afpacket", "pcap"], help="live capture engine")
    args = p.parse_args()
    ENGINE[1] = args.engine
    workdir = tempfile.mkdtemp(prefix="packetd-dbbench-")
    live = {"redis": run_redis, "postgresql": run_postgresql, "mysql": run_mysql}[args.protocol](
        args, workdir
    )
    drops = re.search(r"(\d+) dropped by the kernel", live["stderr"])
    live["kernel_drops"] = int(drops.group(1)) if drops else None
    live["captured_ratio"] = round(live["captured"] / live["sent"], 4)
    live["cpu_s_per_1000"] = round(1000 * live["cpu_s"] / max(live["records"], 1), 3)
    summary = [line for line in live.pop("stderr").splitlines() if line.startswith("packetd:")]
    result = {
        "live": live,
        "watch_summary": summary,
        "offline": offline(live["pcap"], args.protocol, live["port"], args.runs),
    }
    if args.keep:
        os.makedirs(OUT, exist_ok=True)
        shutil.copy(live["pcap"], os.path.join(OUT, os.path.basename(live["pcap"])))
    shutil.rmtree(workdir, ignore_errors=True)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    with open("/proc/self/status") as status:
        hwm_kb = int(status.read().split("VmHWM:")[1].split()[0])
    print(
        f"peak RSS of this process: {hwm_kb / 1024:.0f} MB",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
