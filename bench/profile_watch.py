"""Where one `packetd watch` run spends its time, per protocol: the top cProfile entries of a bench case.

    .venv/bin/python bench/profile_watch.py CASE [--top 25] [--sort tottime|cumulative] [--records N]
        [--python .venv/bin/python] [--save prof.out]
    .venv/bin/python bench/profile_watch.py --all [--top 3] [--markdown BENCHMARKS.md]

CASE is one of bench/vs_tshark.py's cases (http1-small, redis, dns, …). The run is the very command
`make bench` measures (`packetd watch -r FILE --proto NAME;PORT --format json`, records to /dev/null),
under `python -m cProfile` in a fresh process of the chosen interpreter, so start-up, reading, decoding,
pairing and JSON output are all in it. It profiles a replica of the case's real capture of at least
`--records` records (default 30 000; bench/replicate.py, cached under bench/out/ like the bench's own;
the real capture is recorded first if absent). `--records 0` profiles the real capture as recorded, where
start-up (imports, dataclass and pydantic class creation: `builtins.compile`) is a large share.

cProfile's own overhead is per call, so it inflates functions that are called often and do little; the
ranking by tottime (time inside the function itself, callees excluded) is still where to look first, and
py-spy (`py-spy record -o x.svg -- <the command printed>`) gives the unbiased sampling view when installed.
`--all` prints one "where the time goes" line per case (the top functions by tottime, with their share of
the run's total) and, with `--markdown`, writes them into that file between the profile markers.
"""

from __future__ import annotations

import argparse
import datetime
import os
import pstats
import subprocess
import sys
import tempfile
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from bench.vs_tshark import CASES, packetd_command, prepare, real_capture, write_section  # noqa: E402

BEGIN, END = "<!-- bench-profile:begin -->", "<!-- bench-profile:end -->"


def capture_for(case: str, records: int | None, python: str) -> tuple[str, int]:
    """The file to profile and its server port: the real capture, or a replica of ≥ `records` records."""
    if records:
        path, meta = prepare(case, records, (1.0, 650.0), python)
        return path, int(meta["port"])
    path, meta = real_capture(case, python)
    return path, int(meta["port"])


def profile(case: str, python: str, records: int | None, save: str | None) -> tuple[pstats.Stats, list[str]]:
    """One profiled watch run of the case: (its stats, the command that was profiled)."""
    path, port = capture_for(case, records, python)
    command = packetd_command(python, path, CASES[case], port)
    out = save or tempfile.mktemp(prefix="packetd-profile-", suffix=".out")
    try:
        proc = subprocess.run([python, "-m", "cProfile", "-o", out, *command[1:]], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)  # fmt: skip
        if proc.returncode != 0:
            sys.exit(
                f"profile_watch: {' '.join(command)} failed (exit {proc.returncode}): {proc.stderr[-2000:]}"
            )
        stats = pstats.Stats(out)
    finally:
        if save is None and os.path.exists(out):
            os.unlink(out)
    return stats, command


def _name(func: tuple[str, int, str]) -> str:
    """`module.py:function` for a source function, the builtin's name for a builtin."""
    filename, line, name = func
    if filename == "~":
        return name.strip("<>")
    parts = filename.replace("\\", "/").split("/")
    if "packetd" in parts:
        parts = parts[len(parts) - parts[::-1].index("packetd") :]
    else:
        parts = parts[-1:]
    return f"{'/'.join(parts)}:{line}({name})"


def top(
    stats: pstats.Stats, n: int, sort: str = "tottime"
) -> tuple[float, list[tuple[str, int, float, float]]]:
    """(total seconds, [(function, calls, tottime, cumtime)] of the top n by `sort`)."""
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total: float = stats.total_tt  # type: ignore[attr-defined]
    key = 2 if sort == "tottime" else 3
    rows = sorted(((f, v[1], v[2], v[3]) for f, v in raw.items()), key=lambda r: -r[key])[:n]
    return total, [(_name(f), calls, tt, ct) for f, calls, tt, ct in rows]


def one_line(case: str, total: float, rows: list[tuple[str, int, float, float]]) -> str:
    parts = [f"`{name}` {100 * tt / total:.0f} %" for name, _calls, tt, _ct in rows]
    return f"- **{CASES[case].title}** ({total:.2f} s profiled): " + ", ".join(parts)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("case", nargs="?", choices=list(CASES))
    ap.add_argument("--all", action="store_true", help="every case, one line each")
    ap.add_argument("--top", type=int, default=None, help="entries to show (default 25, 3 with --all)")
    ap.add_argument("--sort", choices=("tottime", "cumulative"), default="tottime")
    ap.add_argument("--records", type=int, default=30_000,
                    help="profile a replica of at least N records (default 30000; 0: the real capture as recorded)")  # fmt: skip
    ap.add_argument("--python", default=os.path.join(ROOT, ".venv", "bin", "python"))
    ap.add_argument("--save", default=None, help="keep the cProfile output here (one case)")
    ap.add_argument("--markdown", default=None, help="with --all: write the lines into this file")
    args = ap.parse_args(argv)
    if not args.all and args.case is None:
        ap.error("name a CASE or give --all")
    if not os.path.exists(args.python):
        sys.exit(f"profile_watch: no interpreter at {args.python}")
    if not args.all:
        stats, command = profile(args.case, args.python, args.records, args.save)
        total, rows = top(stats, args.top or 25, args.sort)
        print(f"{' '.join(command)}\n{total:.3f} s in the profiled run; top {len(rows)} by {args.sort}:")
        print(f"{'tottime':>8} {'%':>5} {'cumtime':>8} {'calls':>10}  function")
        for name, calls, tt, ct in rows:
            print(f"{tt:8.3f} {100 * tt / total:5.1f} {ct:8.3f} {calls:10d}  {name}")
        return
    lines = []
    for case in CASES:
        stats, _ = profile(case, args.python, args.records, None)
        total, rows = top(stats, args.top or 3, "tottime")
        lines.append(one_line(case, total, rows))
        print(lines[-1], flush=True)
    if args.markdown:
        date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
        where = f"replicas of ≥ {args.records} records" if args.records else "the real captures as recorded"
        text = "\n".join([BEGIN, "", "```sh", ".venv/bin/python bench/profile_watch.py --all --markdown BENCHMARKS.md",
                          "```", "", f"{date}: the top {args.top or 3} functions by tottime (time in the function "
                          f"itself) of one `packetd watch` run under cProfile on {where}, share of the run's "
                          "total; `bench/profile_watch.py CASE` prints the whole ranking.", "", *lines, "", END])  # fmt: skip
        write_section(args.markdown, text, "Where the time goes, per protocol (issue 15)", BEGIN, END)


if __name__ == "__main__":
    main()
