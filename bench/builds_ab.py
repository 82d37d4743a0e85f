"""Whole-process CPU of `packetd watch -r FILE` under several builds, alternating, pinned: `make wheel` A/B.

    .venv/bin/python bench/builds_ab.py FILE 'PROTO;PORT' [--rounds 5] [--cpu 1]
        [--build pure=.venv/bin/python,PACKETD_PURE=1] [--build mypyc=.venv-compiled/bin/python,PACKETD_PURE=1]
        [--build mypyc+C=.venv-compiled/bin/python]

A build is an interpreter with packetd installed and optional environment settings (PACKETD_PURE=1 turns
off the C accelerator of net/_packet.c, leaving the mypyc modules). Each round runs every build once, in
turn, as `python -m packetd watch -r FILE --proto RULE --format json --workers 1` (stdout into a pipe that
is hashed), pinned with `taskset -c CPU`; CPU is user + sys of the process from wait4(). Prints the median
CPU seconds per build and µs per packet, and fails when the builds' records (stdout bytes) differ.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_BUILDS = [
    "pure=.venv/bin/python,PACKETD_PURE=1",  # PACKETD_PURE=1: an in-place build of _packet.c in src/ not used
    "mypyc=.venv-compiled/bin/python,PACKETD_PURE=1",
    "mypyc+C=.venv-compiled/bin/python",
]


def run(python: str, env: dict[str, str], path: str, rule: str, cpu: int) -> tuple[float, str]:
    cmd = ["taskset", "-c", str(cpu), python, "-m", "packetd", "watch", "-r", path, "--proto", rule,
           "--format", "json", "--workers", "1"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd="/",
                            env={**os.environ, **env})  # fmt: skip
    assert proc.stdout is not None
    digest = hashlib.sha256()
    for chunk in iter(lambda: proc.stdout.read(1 << 20), b""):  # type: ignore[union-attr]
        digest.update(chunk)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd} failed")
    return usage.ru_utime + usage.ru_stime, digest.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("rule")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cpu", type=int, default=1)
    ap.add_argument("--packets", type=int, default=0, help="packets in FILE, for µs per packet")
    ap.add_argument("--build", action="append", default=[])
    args = ap.parse_args()
    builds = []
    for item in args.build or DEFAULT_BUILDS:
        label, _, rest = item.partition("=")
        python, *settings = rest.split(",")
        env = dict(s.split("=", 1) for s in settings)
        builds.append((label, python if os.path.isabs(python) else os.path.join(ROOT, python), env))
    path = os.path.abspath(args.file)
    cpu: dict[str, list[float]] = {label: [] for label, _, _ in builds}
    digests: dict[str, set[str]] = {label: set() for label, _, _ in builds}
    for _ in range(args.rounds):
        for label, python, env in builds:
            seconds, digest = run(python, env, path, args.rule, args.cpu)
            cpu[label].append(seconds)
            digests[label].add(digest)
    for label, times in cpu.items():
        med = statistics.median(times)
        per = f"  {med / args.packets * 1e6:6.2f} µs/packet" if args.packets else ""
        print(
            f"{label:10s} {med:7.3f} s CPU (median of {len(times)}: {min(times):.3f}-{max(times):.3f}){per}"
        )
    every = set().union(*digests.values())
    print("records: identical in every build and round" if len(every) == 1 else f"records DIFFER: {digests}")
    if len(every) != 1:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
