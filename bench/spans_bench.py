"""What a span and a text line cost per record, by protocol, from the corpus captures.

    nice -n 19 .venv/bin/python bench/spans_bench.py            (PACKETD_SRC=/other/src to time another tree)

Spans are built from the record's redacted JSON (`Roundtrip.to_json()`, protocols/redact.py): this measures
what that costs against building them from message fields. Prints CPU µs per record, the fastest of 5 runs.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.environ.get("PACKETD_SRC") or os.path.join(os.path.dirname(__file__), "..", "src"))
sys.path.insert(1, os.path.join(os.path.dirname(__file__), ".."))

from tests.helpers.golden import RULES_FOR, manifest, run_file

from packetd.engine import Rule
from packetd.export.text import TextFormatter
from packetd.pipeline.spans import RoundtripsToTraces

PROTOCOLS = ("http1", "http2", "grpc", "redis", "mysql", "postgresql", "mongodb", "kafka", "amqp", "dns")
REPEAT = 20  # passes over the records per run: enough for ~10 ms per run on the smallest set


def records_for(proto: str) -> list:
    out: list = []
    for row in manifest(proto):
        rules: tuple[Rule, ...] = RULES_FOR[proto](row)
        recs, _ = run_file(row.path, rules)
        out += recs
    return out


def timed(fn, records: list) -> float:  # type: ignore[no-untyped-def]
    runs = []
    for _ in range(5):
        t0 = time.process_time()
        for _ in range(REPEAT):
            for r in records:
                fn(r)
        runs.append((time.process_time() - t0) / (REPEAT * len(records)) * 1e6)
    return min(runs)  # the least disturbed run: the machine is shared


def main() -> None:
    spans = RoundtripsToTraces()
    text = TextFormatter(color=False)
    print(f"{'protocol':<11} {'records':>7} {'span µs':>8} {'text µs':>8}")
    for proto in PROTOCOLS:
        records = records_for(proto)
        if not records:
            continue
        print(
            f"{proto:<11} {len(records):>7} {timed(spans.process, records):>8.2f} {timed(text.format, records):>8.2f}"
        )


if __name__ == "__main__":
    main()
