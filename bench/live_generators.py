"""Live capture at the load generators' maximum: `make bench-live` (root; `make bench` runs it too).

    .venv/bin/python bench/live_generators.py [--quick] [--markdown BENCHMARKS.md] [--json out.json]

Each load runs a real server on a free loopback port (the tests' helpers) and its own load generator as
fast as this machine lets it — `redis-benchmark -t set,get -c 50 -P 1` and `-P 16`, `h2load --h1` against
nginx, `pgbench -S` (simple and prepared) — while `packetd watch --format json` captures loopback through
AF_PACKET (bench/db_bench.py start_capture/stop_capture, without tcpdump beside it). Reported: the
generator's rate and the requests sent (redis-server's own `INFO commandstats` calls of SET and GET;
h2load's succeeded requests; pgbench's processed transactions), the records of exactly those requests packetd wrote
(÷ sent), the kernel's drop count from packetd's summary, and packetd's CPU (user + sys from wait4, the
whole watch process, JSON output to a file included) per 1000 records.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "src"))

from bench.db_bench import count_records, start_capture, stop_capture  # noqa: E402
from bench.vs_tshark import _git_commit, write_section  # noqa: E402

BEGIN, END = "<!-- bench-live:begin -->", "<!-- bench-live:end -->"
Result = dict[str, Any]


def _finish(watch: Any, err: str, out: str, count: Callable[[str], tuple[int, int]]) -> Result:
    cpu, stderr = stop_capture(watch, None, err)
    captured, total = count(out)
    drops = re.search(r"(\d+) dropped by the kernel", stderr)
    return {"captured": captured, "records": total, "cpu_s": cpu,
            "kernel_drops": int(drops.group(1)) if drops else None}  # fmt: skip


def redis_load(pipeline: int, requests: int, workdir: str) -> Result:
    from tests.helpers.dbservers import RedisServer

    server = RedisServer()
    try:
        watch, _, _, out, err = start_capture("redis", server.port, workdir, tcpdump=False)
        t0 = time.perf_counter()
        bench = subprocess.run(
            ["redis-benchmark", "-h", "127.0.0.1", "-p", str(server.port), "-n", str(requests), "-c", "50",
             "-P", str(pipeline), "-t", "set,get", "--csv"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        elapsed = time.perf_counter() - t0
        # the server's own count is the truth: with -P, redis-benchmark rounds each client's share up to
        # whole pipelines and sends more than -n
        stats = subprocess.run(["redis-cli", "-p", str(server.port), "info", "commandstats"], capture_output=True,
                               text=True, check=True).stdout  # fmt: skip
        sent = sum(int(m.group(1)) for m in re.finditer(r"^cmdstat_(?:set|get):calls=(\d+)", stats, re.M))
        r = _finish(watch, err, out, lambda p: count_records(p, {"SET", "GET"}))
    finally:
        server.stop()
    rates = {m.group(1): float(m.group(2)) for m in re.finditer(r'^"(\w+)","([\d.]+)"', bench.stdout, re.M)}
    return {**r, "load": f"redis-benchmark -t set,get -n {requests} -c 50 -P {pipeline}", "sent": sent,
            "rate": f"{rates.get('SET', 0):,.0f} SET/s, {rates.get('GET', 0):,.0f} GET/s", "seconds": elapsed}  # fmt: skip


def _count_http(path: str) -> tuple[int, int]:
    hits = total = 0
    with open(path, "rb") as f:
        for line in f:
            total += 1
            rec = json.loads(line)
            if (
                rec["kind"] == "roundtrip"
                and rec["status"] == "200"
                and (rec["request"] or {}).get("path") == "/index.txt"
            ):
                hits += 1
    return hits, total


def nginx_load(requests: int, workdir: str) -> Result:
    from tests.helpers.live import Nginx

    server = Nginx()
    try:
        watch, _, _, out, err = start_capture("http", server.port, workdir, tcpdump=False)
        load = subprocess.run(
            ["h2load", "--h1", "-n", str(requests), "-c", "16", "-m", "1", f"http://127.0.0.1:{server.port}/index.txt"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        r = _finish(watch, err, out, _count_http)
    finally:
        server.stop()
    rate = float(re.search(r"finished in ([\d.]+)\w+, ([\d.]+) req/s", load).group(2))  # type: ignore[union-attr]
    ok = int(re.search(r"requests: .* (\d+) succeeded", load).group(1))  # type: ignore[union-attr]
    return {**r, "load": f"h2load --h1 -n {requests} -c 16 -m 1 (nginx, GET /index.txt)", "sent": ok,
            "rate": f"{rate:,.0f} requests/s"}  # fmt: skip


def pgbench_load(mode: str, seconds: int, workdir: str) -> Result:
    from tests.helpers.dbservers import PostgresServer

    server = PostgresServer()
    env = {**os.environ, "PGPASSWORD": server.PASSWORD}
    pgbench = shutil.which("pgbench") or "pgbench"
    common = ["-h", "127.0.0.1", "-p", str(server.port), "-U", server.USER]
    try:
        subprocess.run([pgbench, "-i", "-s", "2", "-q", *common, server.DATABASE], env=env, capture_output=True,
                       check=True)  # fmt: skip
        watch, _, _, out, err = start_capture("postgresql", server.port, workdir, tcpdump=False)
        bench = subprocess.run(
            [pgbench, "-S", "-n", "-c", "4", "-j", "2", "-T", str(seconds), "-M", mode, *common, server.DATABASE],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        ops = {"Query"} if mode == "simple" else {"Execute"}
        r = _finish(watch, err, out, lambda p: count_records(p, ops, statement="pgbench_accounts"))
    finally:
        server.stop()
    sent = int(re.search(r"number of transactions actually processed: (\d+)", bench.stdout).group(1))  # type: ignore[union-attr]
    tps = float(re.search(r"tps = ([\d.]+)", bench.stdout).group(1))  # type: ignore[union-attr]
    return {
        **r,
        "load": f"pgbench -S -M {mode} -c 4 -j 2 -T {seconds}",
        "sent": sent,
        "rate": f"{tps:,.0f} tps",
    }


def markdown(results: list[Result], command: str, header: str) -> str:
    lines = [BEGIN, "", "```sh", command, "```", "", header, "",
             "| load | generator rate | requests sent | records of them | share | kernel drops | packetd CPU s | CPU ms per 1000 records |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        share = r["captured"] / r["sent"] if r["sent"] else 0.0
        lines.append(
            f"| `{r['load']}` | {r['rate']} | {r['sent']:,} | {r['captured']:,} | **{100 * share:.2f} %** | "
            f"{r['kernel_drops']} | {r['cpu_s']:.1f} | {1e6 * r['cpu_s'] / max(r['records'], 1):.0f} |"
        )
    lines += ["", END]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small loads (a smoke run)")
    ap.add_argument("--markdown", default=None)
    ap.add_argument("--json", default=os.path.join(HERE, "out", "live_generators.json"))
    ap.add_argument("--note", default="")
    args = ap.parse_args(argv)
    scale = 20 if args.quick else 1
    workdir = tempfile.mkdtemp(prefix="packetd-bench-live-")
    loads: list[Callable[[], Result]] = [
        lambda: redis_load(1, 200_000 // scale, workdir),
        lambda: redis_load(16, 500_000 // scale, workdir),
        lambda: nginx_load(200_000 // scale, workdir),
        lambda: pgbench_load("simple", 10 // (5 if args.quick else 1), workdir),
        lambda: pgbench_load("prepared", 10 // (5 if args.quick else 1), workdir),
    ]
    results = []
    t0 = time.perf_counter()
    try:
        for load in loads:
            r = load()
            results.append(r)
            print(json.dumps(r), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(results, f, indent=2)
    command = (
        ("nice -n 19 " if os.nice(0) >= 19 else "")
        + ".venv/bin/python bench/live_generators.py "
        + " ".join(argv if argv is not None else sys.argv[1:])
    )
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = (f"{date}, commit {_git_commit()}; {os.cpu_count()} cores shared by the server, the generator and "
              f"packetd (niceness {os.nice(0)}, nothing pinned); `packetd watch --engine afpacket --block-num 512` "
              f"(a 256 MB ring) on lo, the pure build ({sys.executable}); {(time.perf_counter() - t0) / 60:.0f} min "
              f"in all. CPU is the watch process's whole run (start-up and the seconds idle around the load "
              f"included). {args.note}")  # fmt: skip
    text = markdown(results, command, header)
    print(text)
    if args.markdown:
        write_section(args.markdown, text, "Live capture at the generators' maximum (issue 15: `make bench-live`)",
                      BEGIN, END)  # fmt: skip


if __name__ == "__main__":
    main()
