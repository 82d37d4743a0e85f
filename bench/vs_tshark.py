"""All ten protocols against tshark in one run, on replicas of real captures: `make bench`.

    .venv/bin/python bench/vs_tshark.py [--cases http1-small,redis,...] [--runs 3] [--records 50000]
        [--builds pure=.venv/bin/python,compiled=.venv-compiled/bin/python] [--python PATH ...]
        [--quick] [--cpu N] [--markdown BENCHMARKS.md] [--json bench/out/vs_tshark.json]

For each case (CASES: HTTP/1 large bodies and small messages, HTTP/2, gRPC, MySQL, PostgreSQL, Redis,
Kafka, MongoDB, AMQP, DNS) the capture a real server and a real client library made
(scripts/record_bench_captures.py, cached under bench/out/real/, recorded now when absent) is replicated into
a large file (bench/replicate.py: distinct addresses and sequence spaces per copy, cached under bench/out/)
of at least `--records` records and `--min-mb` MB, at most `--max-mb` MB. Then, `--runs` rounds, each: one
`packetd watch -r FILE --proto NAME;PORT --format json --workers 1 > /dev/null` per build (a fresh process,
that build's interpreter; `--workers 1`: the measurement is one core, and files of 64 MiB or more would
otherwise start 2 workers, which costs more CPU on one core), then tshark on the same file (`-d`
decode-as for the port, a display filter of the protocol, its fields printed), every process pinned to one core (`taskset -c`). Measured from wait4(): CPU seconds
of the whole process (user + sys: start-up, reading, decoding, JSON output) and its peak RSS (ru_maxrss;
this harness imports nothing heavy so its own RSS, which a vfork-ed child inherits as a floor, stays below
every measured one: checked and reported). Medians of the runs, and the range of the rounds' ratios (the
noise of this shared machine).

A build is an interpreter with packetd installed: `pure` (the editable install in .venv) and `compiled`
(the wheel from `make wheel` in .venv-compiled); which one it really is is read from its packetd package
(any extension module in it: compiled). Absent interpreters are skipped with a note.

Records: packetd's own summary (roundtrips + handshakes + one-way + unanswered). tshark's count: the values
of each case's fields in the frames its filter matched, chosen to be the same unit as the records (one per
response, or per client message that starts or answers a record: see CASES). The harness compares them on
every case and exits non-zero, after writing the table, when they differ.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(HERE, "out")
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
# records per case: 2-5 s of the pure build's CPU per run today (and ≥ 20 MB per file, start-up a small
# share), so that 3 rounds of the pure and compiled builds and tshark over the eleven cases take about
# 5 min of CPU: ≤ 15 min of wall time even when this shared machine gives the bench half a core
# (BENCHMARKS.md says what it took)
DEFAULT_RECORDS = 50_000


@dataclass(frozen=True, slots=True)
class Case:
    """One benchmark case: packetd's rule and tshark's dissection of the same protocol on the same port.

    tshark counts the values of `fields` in the frames its display filter (`filter`, `{port}` replaced by
    the server port) matches, only the values in `values` when that is set. Each case's fields and filter
    are chosen so that the count is of the same unit as packetd's records (one per request that starts a
    record, or one per response): `unit` says what it is, and the harness compares the two."""

    title: str
    rule: str  # packetd's protocol name for --proto
    dissector: str  # tshark's, for -d
    filter: str  # tshark -Y
    fields: tuple[str, ...]  # tshark -e
    unit: str  # what tshark's count is, in words
    values: frozenset[str] = frozenset()  # count only these values of the fields (empty: all)
    udp: bool = False
    # where tshark is not a reliable count of the unit, the client's own count (copies × the requests it
    # made, from the recording's metadata) decides, and `why` says what tshark gets wrong
    client_truth: bool = False
    why: str = ""


_TO_SERVER = "tcp.dstport == {port}"
CASES: dict[str, Case] = {
    "http1-large": Case("HTTP/1 (nginx, large bodies)", "http", "http", "http.response", ("http.response.code",),
                        "HTTP responses"),
    "http1-small": Case("HTTP/1 (nginx, small messages)", "http", "http", "http.response", ("http.response.code",),
                        "HTTP responses"),
    "http2": Case("HTTP/2 (nghttpd, h2load)", "http2", "http2", "http2.headers.status", ("http2.headers.status",),
                  "`:status` headers (responses)"),
    # tshark 4.0's HTTP/2 dissector throws ("Malformed Packet (Exception occurred)") on some frames of grpcio's
    # connections and loses a call's request or response headers now and then (a fresh recording: 7 998
    # :status of 8 000 calls, 3 997 streams of 4 000): the client's count of its calls decides
    "grpc": Case("gRPC (grpcio)", "grpc", "http2", "grpc || http2.headers.status", ("http2.headers.status",),
                 "`:status` headers (responses)", client_truth=True,
                 why="tshark's HTTP/2 dissector reports Malformed Packet on some frames of grpcio's connections"),
    # a client command byte per COM_* request (COM_QUIT included) and the user name once per login request
    "mysql": Case("MySQL (MariaDB, PyMySQL)", "mysql", "mysql", "mysql && " + _TO_SERVER,
                  ("mysql.command", "mysql.user"), "client commands + login requests"),
    # packetd makes one record per Sync-terminated batch (Parse/Bind/Describe/Execute/Sync), per simple
    # Query, per startup and per Terminate
    "postgresql": Case("PostgreSQL (psycopg)", "postgresql", "pgsql", "pgsql && " + _TO_SERVER, ("pgsql.type",),
                       "client Sync + Simple query + Startup + Termination messages",
                       frozenset({"Sync", "Simple query", "Startup message", "Termination"})),
    "redis": Case("Redis (redis-py)", "redis", "resp", "resp && " + _TO_SERVER, ("resp.array.length",),
                  "client command arrays"),
    "kafka": Case("Kafka (Tansu, librdkafka)", "kafka", "kafka", "kafka && " + _TO_SERVER, ("kafka.request_key",),
                  "requests (API key)"),
    "mongodb": Case("MongoDB (SecantusDB, pymongo)", "mongodb", "mongo", "mongo && " + _TO_SERVER,
                    ("mongo.opcode",), "client messages"),
    # every client method starts or answers one record: Publish (the broker's Ack answers it), Ack of a
    # Deliver, StartOk / TuneOk of the handshakes, Open, Declare, Close …
    "amqp": Case("AMQP (RabbitMQ, pika)", "amqp", "amqp", "amqp && " + _TO_SERVER, ("amqp.method.method",),
                 "client methods"),
    "dns": Case("DNS (unbound, dnspython)", "dns", "dns", "dns && dns.flags.response == 0", ("dns.id",), "queries",
                udp=True),
}  # fmt: skip

_SUMMARY = re.compile(
    r"packetd: ([\d,]+) roundtrips?, ([\d,]+) handshakes?, ([\d,]+) one-way, ([\d,]+) unanswered"
)
_PACKETS = re.compile(r"packetd: ([\d,]+) packets? in")


@dataclass(frozen=True, slots=True)
class Run:
    cpu_s: float
    rss_mb: float
    count: int  # packetd: records; tshark: field values
    packets: int  # packetd's packet count (0 for tshark)
    wall_s: float


def _wait(proc: subprocess.Popen[bytes], t0: float) -> tuple[int, Any, float]:
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage, time.perf_counter() - t0


def pin(cpu: int | None) -> list[str]:
    return ["taskset", "-c", str(cpu)] if cpu is not None and shutil.which("taskset") else []


def packetd_command(python: str, path: str, case: Case, port: int) -> list[str]:
    return [
        python,
        "-m",
        "packetd",
        "watch",
        "-r",
        path,
        "--proto",
        f"{case.rule};{port}",
        "--format",
        "json",
        "--workers",
        "1",
    ]


def tshark_command(path: str, case: Case, port: int) -> list[str]:
    decode = ["-d", f"tcp.port=={port},{case.dissector}"]
    if case.udp:
        decode += ["-d", f"udp.port=={port},{case.dissector}"]
    fields = [a for f in case.fields for a in ("-e", f)]
    return ["tshark", "-n", "-r", path, *decode, "-Y", case.filter.format(port=port), "-T", "fields", *fields,
            "-E", "occurrence=a", "-E", "aggregator=,", "-E", "separator=,"]  # fmt: skip


def run_packetd(python: str, path: str, case: Case, port: int, cpu: int | None) -> Run:
    """One fresh `packetd watch` on the file, JSON records to /dev/null: its CPU, peak RSS and counts."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([*pin(cpu), *packetd_command(python, path, case, port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stderr is not None
    with proc.stderr:
        err = proc.stderr.read().decode(errors="replace")
    rc, usage, wall = _wait(proc, t0)
    m, p = _SUMMARY.search(err), _PACKETS.search(err)
    if rc != 0 or m is None or p is None:
        raise RuntimeError(f"packetd watch on {path} failed (exit {rc}): {err[-2000:]}")
    records = sum(int(g.replace(",", "")) for g in m.groups())
    return Run(
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss / 1024,
        records,
        int(p.group(1).replace(",", "")),
        wall,
    )


def run_tshark(path: str, case: Case, port: int, cpu: int | None) -> Run:
    """tshark dissecting the protocol on the file; counts the values of its fields as it prints them (every
    value, or those in `case.values`)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([*pin(cpu), *tshark_command(path, case, port)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    assert proc.stdout is not None
    count = 0
    wanted = {v.encode() for v in case.values}
    with proc.stdout:
        for raw in proc.stdout:
            values = raw.rstrip(b"\r\n").split(b",")  # the fields' values, the fields separated by "," too
            count += sum(1 for v in values if v and (not wanted or v in wanted))
    rc, usage, wall = _wait(proc, t0)
    if rc != 0:
        raise RuntimeError(f"tshark on {path} failed (exit {rc})")
    return Run(usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, count, 0, wall)


_EXTENSIONS = (
    "import os, importlib.machinery as m, packetd; root = os.path.dirname(packetd.__file__); "
    "print(sum(f.endswith(tuple(m.EXTENSION_SUFFIXES)) for _, _, fs in os.walk(root) for f in fs))"
)


def detect_build(python: str) -> str | None:
    """'compiled' if that interpreter's packetd package holds extension modules (Python imports an extension
    before a .py of the same name beside it, so any there is what runs), else 'pure'; None when it cannot
    import packetd at all."""
    try:
        out = subprocess.run([python, "-c", _EXTENSIONS], cwd="/", check=False, capture_output=True, text=True,
                             timeout=60)  # fmt: skip
    except OSError:
        return None
    if out.returncode != 0:
        return None
    return "compiled" if int(out.stdout.split()[-1]) > 0 else "pure"


def builds_from(args: argparse.Namespace) -> tuple[list[tuple[str, str]], list[str]]:
    """[(label, interpreter)] of the builds present, and a note per build skipped."""
    wanted: list[tuple[str | None, str]] = []
    for item in args.builds.split(",") if args.builds else []:
        label, _, path = item.partition("=")
        wanted.append((label, path) if path else (None, label))
    wanted += [(None, p) for p in args.python]
    found: list[tuple[str, str]] = []
    notes: list[str] = []
    for label, path in wanted:
        python = path if os.path.isabs(path) else os.path.join(ROOT, path)
        kind = detect_build(python) if os.path.exists(python) else None
        if kind is None:
            notes.append(f"build {label or path} ({path}) skipped: no interpreter there that imports packetd")
            continue
        if label is not None and label != kind:
            notes.append(f"{path} was named {label} but its packetd is the {kind} build: shown as {kind}")
        if any(k == kind for k, _ in found):
            notes.append(f"{path}: a second {kind} build, skipped")
            continue
        found.append((kind, python))
    return found, notes


def real_capture(case_name: str, record_python: str) -> tuple[str, dict[str, Any]]:
    """The real capture of a case (recorded now by scripts/record_bench_captures.py if absent) and its
    metadata."""
    meta_path = os.path.join(OUT, "real", f"{case_name}.json")
    if not os.path.exists(meta_path):
        subprocess.run([record_python, os.path.join(ROOT, "scripts", "record_bench_captures.py"), case_name],
                       check=True, cwd=ROOT)  # fmt: skip
    with open(meta_path) as f:
        meta: dict[str, Any] = json.load(f)
    return os.path.join(OUT, "real", f"{case_name}.pcap"), meta


def copies_for(per_copy: int, copy_bytes: int, records: int, mb: tuple[float, float]) -> int:
    """How many copies make at least `records` records (tshark's count of one copy: `per_copy`) and at least
    mb[0] MB, but no more than mb[1] MB (at least one copy)."""
    want = max(math.ceil(records / max(per_copy, 1)), math.ceil(mb[0] * 1e6 / copy_bytes))
    return max(1, min(want, int(mb[1] * 1e6 // copy_bytes)))


def prepare(
    case_name: str, records: int, mb: tuple[float, float], record_python: str
) -> tuple[str, dict[str, Any]]:
    """The replicated capture of a case (recorded and replicated now if not cached) and its metadata, with
    "copies" and "per_copy" (tshark's count on the real capture) added."""
    src, meta = real_capture(case_name, record_python)
    port = int(meta["port"])
    per_copy = run_tshark(src, CASES[case_name], port, None).count
    copies = copies_for(per_copy, os.path.getsize(src), records, mb)
    dst = os.path.join(OUT, f"{case_name}-x{copies}.pcap")
    if not os.path.exists(dst) or os.path.getmtime(dst) < os.path.getmtime(src):
        subprocess.run([record_python, os.path.join(HERE, "replicate.py"), src, dst, "--server-port", str(port),
                        "--copies", str(copies)], check=True, cwd=ROOT)  # fmt: skip
    return dst, {**meta, "copies": copies, "per_copy": per_copy}


def measure(case_name: str, path: str, port: int, builds: list[tuple[str, str]], runs: int,
            cpu: int | None, client_count: int | None = None) -> dict[str, Any]:  # fmt: skip
    """`runs` rounds of (each build, then tshark), alternating; the medians, and the per-round ratios.
    `client_count`: what the client sent in all copies, the truth of a `client_truth` case."""
    case = CASES[case_name]
    per: dict[str, list[Run]] = {label: [] for label, _ in builds}
    per["tshark"] = []
    for _ in range(runs):
        for label, python in builds:
            per[label].append(run_packetd(python, path, case, port, cpu))
        per["tshark"].append(run_tshark(path, case, port, cpu))
    result: dict[str, Any] = {"case": case_name, "title": case.title, "file": path, "port": port,
                              "file_mb": os.path.getsize(path) / 1e6, "unit": case.unit,
                              "client_count": client_count}  # fmt: skip
    for label, rs in per.items():
        med = {k: statistics.median(getattr(r, k) for r in rs) for k in ("cpu_s", "rss_mb", "wall_s")}
        counts = sorted({r.count for r in rs})
        result[label] = {**med, "count": counts[0], "counts_differ": len(counts) > 1,
                         "cpu_runs": [round(r.cpu_s, 3) for r in rs]}  # fmt: skip
        if label != "tshark":
            result[label]["packets"] = rs[0].packets
    tshark_runs = per["tshark"]
    for label, _ in builds:
        b = result[label]
        b["pps"] = b["packets"] / b["cpu_s"]
        b["rps"] = b["count"] / b["cpu_s"]
        b["us_per_rt"] = 1e6 * b["cpu_s"] / max(b["count"], 1)
        b["ratio"] = result["tshark"]["cpu_s"] / b["cpu_s"]
        # the noise: the ratio of each round's pair (this build's run and the tshark run right after it)
        b["ratio_runs"] = [round(t.cpu_s / r.cpu_s, 3) for r, t in zip(per[label], tshark_runs, strict=True)]
        b["same_count"] = b["count"] == result["tshark"]["count"] and not b["counts_differ"]
        truth = client_count if case.client_truth and client_count is not None else result["tshark"]["count"]
        b["count_ok"] = b["count"] == truth and not b["counts_differ"]
    return result


# -- the table ---------------------------------------------------------------------------------------------
def _n(x: float) -> str:
    return f"{x:,.0f}".replace(",", " ")


def _count_cell(r: dict[str, Any], builds: list[str]) -> str:
    t = r["tshark"]["count"]
    diffs = {b: r[b]["count"] - t for b in builds}
    if all(r[b]["same_count"] for b in builds):
        return f"same count ({r['unit']})"
    case = CASES[r["case"]]
    if case.client_truth and all(r[b]["count_ok"] for b in builds):
        return (f"same as the client's own count ({_n(r['client_count'])}); tshark {t - r[builds[0]]['count']:+d}: "
                f"{case.why}")  # fmt: skip
    return "**differs**: " + ", ".join(f"{b} {d:+d}" for b, d in diffs.items()) + f" vs tshark's {r['unit']}"


def markdown(results: list[dict[str, Any]], builds: list[str], notes: list[str], command: str,
             header: str) -> str:  # fmt: skip
    lines = [BEGIN, "", "```sh", command, "```", "", header, ""]
    cols = ["protocol", "capture", "records", "tshark CPU s", "tshark peak RSS"]
    for b in builds:
        cols += [f"{b} packets/s", f"{b} roundtrips/s", f"{b} µs/roundtrip", f"{b} peak RSS",
                 f"**{b}: tshark CPU ÷ packetd CPU** (per-round range)"]  # fmt: skip
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in results:
        first, t = r[builds[0]], r["tshark"]
        row = [r["title"], f"{r['file_mb']:.0f} MB, {_n(first['packets'])} packets", _n(first["count"]),
               f"{t['cpu_s']:.2f}", f"{t['rss_mb']:.0f} MB"]  # fmt: skip
        for b in builds:
            x = r[b]
            spread = f"{min(x['ratio_runs']):.2f}–{max(x['ratio_runs']):.2f}"
            row += [_n(x["pps"]), _n(x["rps"]), f"{x['us_per_rt']:.1f}", f"{x['rss_mb']:.0f} MB",
                    f"**{x['ratio']:.2f}×** ({spread})"]  # fmt: skip
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Records against tshark's count on the same file (every build, every run):", ""]
    lines += [f"- {r['title']}: {_n(r[builds[0]]['count'])} records, tshark {_n(r['tshark']['count'])} — "
              f"{_count_cell(r, builds)}" for r in results]  # fmt: skip
    go = {"http1-small": ("HTTP/1", 8.9), "redis": ("Redis", 4.3)}
    vs_go = [f"{go[r['case']][0]} {b} {r[b]['us_per_rt']:.1f} µs/roundtrip vs the Go original's {go[r['case']][1]} µs "
             f"({r[b]['us_per_rt'] / go[r['case']][1]:.1f}×)" for r in results if r["case"] in go for b in builds]  # fmt: skip
    if vs_go:
        lines += [
            "",
            "CPU per roundtrip against the Go original's published figures: " + "; ".join(vs_go) + ".",
        ]
    lines += ["", "The commands, per case (`FILE` the replica, `PORT` the recorded server port):", "",
              "    packetd: PYTHON -m packetd watch -r FILE --proto 'NAME;PORT' --format json --workers 1 > /dev/null",
              "    tshark:  tshark -n -r FILE -d tcp.port==PORT,DISSECTOR -Y FILTER -T fields -e FIELD... "
              "-E occurrence=a (counted by the harness)", "",
              "| case | NAME | DISSECTOR | FILTER | FIELD | counted |", "|---|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        c = CASES[r["case"]]
        counted = "values " + ", ".join(sorted(c.values)) if c.values else "every value"
        shown = c.filter.format(port="PORT").replace("|", "\\|")  # a | in a table cell, code span or not
        lines.append(f"| {r['case']} | {c.rule} | {c.dissector}{' (+ udp)' if c.udp else ''} | "
                     f"`{shown}` | `{' '.join(c.fields)}` | {counted} |")  # fmt: skip
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    lines += ["", END]
    return "\n".join(lines)


def write_section(path: str, section: str, title: str, begin: str = BEGIN, end: str = END) -> None:
    """Replace the text between the markers in `path` (or append a new section with them); nothing else."""
    text = ""
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + f"\n\n## {title}\n\n" + section + "\n"
    with open(path, "w") as f:
        f.write(text)


def tool_version(cmd: list[str]) -> str:
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=30, check=False
        ).stdout.splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "?"


def own_peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        return int(f.read().split("VmHWM:")[1].split()[0]) / 1024


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--records", type=int, default=DEFAULT_RECORDS,
                    help=f"replicate each capture to at least this many records (default {DEFAULT_RECORDS})")  # fmt: skip
    ap.add_argument("--max-mb", type=float, default=450.0, help="... but to no more than this many MB")
    ap.add_argument("--min-mb", type=float, default=20.0, help="... and to at least this many MB")
    ap.add_argument("--builds", default="pure=.venv/bin/python,compiled=.venv-compiled/bin/python")
    ap.add_argument(
        "--python", action="append", default=[], help="another interpreter to measure (repeatable)"
    )
    ap.add_argument(
        "--cpu", type=int, default=(os.cpu_count() or 1) - 1, help="the core every run is pinned to"
    )
    ap.add_argument("--quick", action="store_true", help="a smoke run: 10 000 records, ≤ 40 MB, 1 run")
    ap.add_argument(
        "--markdown", default=None, help="write the table into this file between the bench markers"
    )
    ap.add_argument("--json", default=os.path.join(OUT, "vs_tshark.json"))
    ap.add_argument("--note", default="", help="added to the table's header (e.g. the machine's load)")
    args = ap.parse_args(argv)
    if args.quick:
        args.records, args.runs, args.min_mb, args.max_mb = 10_000, 1, 1.0, 40.0
    return args


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             check=False, timeout=30)  # fmt: skip
        return out.stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    unknown = [c for c in args.cases.split(",") if c not in CASES]
    if unknown:
        sys.exit(f"vs_tshark: unknown case {', '.join(unknown)}; known: {', '.join(CASES)}")
    if not shutil.which("tshark"):
        sys.exit("vs_tshark: tshark is not installed (scripts/test-deps.sh installs it)")
    builds, notes = builds_from(args)
    if not builds:
        sys.exit("vs_tshark: no packetd build to measure; " + "; ".join(notes))
    os.makedirs(OUT, exist_ok=True)
    record_python = builds[0][1] if builds[0][0] == "pure" else sys.executable
    results = []
    t_start = time.perf_counter()
    for name in args.cases.split(","):
        path, meta = prepare(name, args.records, (args.min_mb, args.max_mb), record_python)
        sent = int(meta["requests"]) * int(meta["copies"])
        r = measure(name, path, int(meta["port"]), builds, args.runs, args.cpu, sent)
        r["recorded"] = {k: meta.get(k) for k in ("server", "client", "requests", "tcpdump_drops", "bytes", "copies",
                                                   "per_copy")}  # fmt: skip
        results.append(r)
        short = ", ".join(f"{b}: {r[b]['cpu_s']:.2f} s, {r[b]['us_per_rt']:.1f} µs/rt, {r[b]['ratio']:.2f}×"
                          for b, _ in builds)  # fmt: skip
        print(f"{name}: {r[builds[0][0]]['count']} records, tshark {r['tshark']['count']} "
              f"({meta['copies']} copies × {meta['per_copy']}); tshark {r['tshark']['cpu_s']:.2f} s; {short}",
              flush=True)  # fmt: skip
        with open(args.json, "w") as f:
            json.dump({"results": results, "notes": notes}, f, indent=2)
    rss = own_peak_rss_mb()
    floor = min(min(r[k]["rss_mb"] for k in [b for b, _ in builds] + ["tshark"]) for r in results)
    if rss >= floor:
        notes.append(f"this harness's own peak RSS ({rss:.0f} MB) is not below every measured one ({floor:.0f} MB): "
                     "the smaller peak RSS figures are an upper bound")  # fmt: skip
    command = "nice -n 19 " if os.nice(0) >= 19 else ""
    command += ".venv/bin/python bench/vs_tshark.py " + " ".join(argv if argv is not None else sys.argv[1:])
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = (
        f"{date}, commit {_git_commit()}; {os.cpu_count()} cores, every run pinned to core {args.cpu}, niceness "
        f"{os.nice(0)}; CPython {platform.python_version()}, {tool_version(['tshark', '--version']).rstrip('.')}; medians of "
        f"{args.runs} alternating rounds (each build, then tshark), CPU = user + sys of the whole process from "
        f"wait4() (start-up included), µs/roundtrip = CPU ÷ records, the ratio's range is that of the rounds' "
        f"pairs; {(time.perf_counter() - t_start) / 60:.0f} min in all. Captures: a real server and client "
        f"library recorded by scripts/record_bench_captures.py, replicated by bench/replicate.py to ≥ "
        f"{_n(args.records)} records (≥ {args.min_mb:g} MB) but ≤ {args.max_mb:g} MB. Records = packetd's "
        "roundtrips + handshakes + one-way + unanswered. " + args.note
    )
    text = markdown(results, [b for b, _ in builds], notes, command, header)
    print(text)
    if args.markdown:
        write_section(
            args.markdown, text, "All ten protocols against tshark, one core (issue 15: `make bench`)"
        )
    if not all(r[b]["count_ok"] for r in results for b, _ in builds):
        sys.exit("vs_tshark: packetd's records and tshark's count differ on a case (see the table)")


if __name__ == "__main__":
    main()
