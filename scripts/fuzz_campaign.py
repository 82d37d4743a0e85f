"""The long fuzz campaign (`make fuzz`): ≥ 1 M mutated inputs per decoder, seeded from the shared corpus.

    .venv/bin/python scripts/fuzz_campaign.py [--inputs N] [--jobs J] [--seed S] [--out DIR] [protocol ...]

Each protocol runs in its own worker process (`--jobs` at a time) through tests/helpers/fuzzing_campaign.py:
seed conversations are the decoder inputs of every corpus capture replayed through the engine, mutated (bit
flips, truncations, splices, length-field tweaks, gaps, EOFs, floods) and fed whole and split. A worker
arms a CPU-time timer per input (an input still running after `--timeout` CPU seconds is a hang) and runs under an address-
space limit (`--memory-mb`), so runaway allocation surfaces as a MemoryError failure instead of taking the
machine down. Failures are anything but messages or DecodeError; each distinct one (protocol, exception,
innermost frame) is written with the input that caused it to DIR/<protocol>.json, which
`--replay FILE` feeds again. The summary table (inputs, rate, failures, peak RSS) goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import signal
import sys
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tests.helpers.fuzzing_campaign import (  # after the path fix above
    Hang,
    corpus_seeds,
    events_from_json,
    factory_for,
    fuzz,
    run_input,
)

CHUNK = 50_000  # inputs between progress lines; each chunk has its own derived seed


def _alarm(signum: int, frame: Any) -> None:
    raise Hang("input ran past the timeout")


def worker(args: tuple[str, int, int, float, int, str]) -> dict[str, Any]:
    protocol, inputs, seed, timeout, memory_mb, out_dir = args
    if memory_mb > 0:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    seeds = corpus_seeds()[protocol]
    # CPU time, not wall-clock time: a campaign run at nice 19 on a busy machine may wait seconds for a
    # core, and that is not a hang; a decoder that loops burns CPU and is caught all the same
    signal.signal(signal.SIGVTALRM, _alarm)

    def arm() -> None:
        signal.setitimer(signal.ITIMER_VIRTUAL, timeout)

    started = time.monotonic()
    totals = {"inputs": 0, "messages": 0, "decode_errors": 0, "floods": 0, "bytes_fed": 0, "max_held": 0}
    failures: dict[str, dict[str, Any]] = {}
    failure_count = 0
    chunk = 0
    while totals["inputs"] < inputs:
        n = min(CHUNK, inputs - totals["inputs"])
        stats = fuzz(protocol, seeds, n, seed * 1_000_003 + chunk, on_input=arm)
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        for key in ("inputs", "messages", "decode_errors", "floods", "bytes_fed"):
            totals[key] += getattr(stats, key)
        totals["max_held"] = max(totals["max_held"], stats.max_held)
        failure_count += len(stats.failures)
        for f in stats.failures:
            sig = " | ".join(f.signature())
            entry = failures.setdefault(sig, {"count": 0, "first": {**f.to_json(), "chunk": chunk}})
            entry["count"] += 1
        chunk += 1
        result = _result(protocol, seed, len(seeds), totals, started, failure_count, failures)
        with open(os.path.join(out_dir, f"{protocol}.json"), "w") as f:  # after every chunk: a stopped
            json.dump(result, f, indent=1)  # campaign keeps its figures so far ("complete": false)
        print(
            f"{protocol}: {totals['inputs']} inputs, {result['rate']}/s, {failure_count} failures "
            f"({len(failures)} distinct)",
            file=sys.stderr,
            flush=True,
        )
    result["complete"] = True
    with open(os.path.join(out_dir, f"{protocol}.json"), "w") as f:
        json.dump(result, f, indent=1)
    return result


def _result(
    protocol: str,
    seed: int,
    seeds: int,
    totals: dict[str, int],
    started: float,
    failure_count: int,
    failures: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    elapsed = time.monotonic() - started
    return {
        "protocol": protocol,
        "seed": seed,
        "seed_conversations": seeds,
        **totals,
        "seconds": round(elapsed, 1),
        "cpu_seconds": round(time.process_time(), 1),
        "rate": round(totals["inputs"] / elapsed),
        "failures": failure_count,
        "distinct_failures": failures,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "complete": False,
    }


def replay(path: str) -> int:
    """Feed the first input of every distinct failure in a result file again; print what happens."""
    with open(path) as f:
        result = json.load(f)
    bad = 0
    for sig, entry in result["distinct_failures"].items():
        first = entry["first"]
        t0 = time.process_time()
        try:
            run_input(
                factory_for(first["protocol"]),
                first["transport"],
                events_from_json(first["events"]),
                first["splits"],
                True,
            )
            print(f"passes: {sig} ({time.process_time() - t0:.2f} CPU s)")
        except Exception as exc:
            bad += 1
            print(f"STILL:  {sig}: {type(exc).__name__}: {exc}")
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("protocols", nargs="*", help="decoders to fuzz (default: all)")
    parser.add_argument("--inputs", type=int, default=1_000_000, help="inputs per decoder")
    parser.add_argument("--jobs", type=int, default=2, help="decoders fuzzed at once (processes)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=10.0, help="CPU seconds one input may take")
    parser.add_argument("--memory-mb", type=int, default=2048, help="address-space limit per worker")
    parser.add_argument("--out", default="fuzz-results", help="folder for the per-decoder result files")
    parser.add_argument("--replay", metavar="FILE", help="re-run the failures saved in a result file")
    args = parser.parse_args()
    if args.replay:
        return replay(args.replay)
    from packetd.protocols.registry import REGISTRY

    # default order: slowest decoders first (measured rates), so the two workers finish close together
    slow_first = ["http", "http2", "postgresql", "mongodb", "mysql", "redis", "amqp", "dns", "grpc", "kafka"]
    protocols = args.protocols or sorted(REGISTRY.names(), key=lambda p: (p not in slow_first, slow_first.index(p)
                                                                         if p in slow_first else 0, p))  # fmt: skip
    unknown = sorted(set(protocols) - set(REGISTRY.names()))
    if unknown:
        parser.error(f"unknown protocol(s) {', '.join(unknown)}; known: {', '.join(REGISTRY.names())}")
    os.makedirs(args.out, exist_ok=True)
    # SIGTERM leaves through the `with` below, whose exit terminates the pool: no orphaned workers
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    jobs = [(p, args.inputs, args.seed, args.timeout, args.memory_mb, args.out) for p in protocols]
    with multiprocessing.get_context("fork").Pool(args.jobs, maxtasksperchild=1) as pool:
        results = pool.map(worker, jobs, chunksize=1)
    print(f"{'decoder':<11} {'inputs':>9} {'rate/s':>7} {'seconds':>8} {'decode errs':>11} {'failures':>8} "
          f"{'distinct':>8} {'peak RSS MB':>11}")  # fmt: skip
    for r in results:
        print(
            f"{r['protocol']:<11} {r['inputs']:>9} {r['rate']:>7} {r['seconds']:>8} {r['decode_errors']:>11} "
            f"{r['failures']:>8} {len(r['distinct_failures']):>8} {r['peak_rss_mb']:>11}"
        )
        for sig, entry in r["distinct_failures"].items():
            print(f"    {entry['count']:>6} x {sig}: {entry['first']['message'][:120]}")
    return 1 if any(r["failures"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
