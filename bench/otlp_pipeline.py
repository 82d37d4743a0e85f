"""What the OpenTelemetry-native outputs cost the capture worker, per roundtrip.

    .venv/bin/python bench/otlp_pipeline.py [--repeat 20] [--runs 5]

Records decoded from the shared corpus (two captures per protocol, every protocol) run through the
agent's `Pipelines` on one core: the default metrics pipeline alone, then with OTLP metrics (semconv
histogram deltas), with OTLP log entries (the record's JSON line and its span ids), and, for comparison,
with the roundtrip file's lines. Reports the best of `--runs` in µs per roundtrip. The exporters' own
threads (protobuf encoding, sending) run in the agent's main process and are not measured here.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "src"))
sys.path.insert(0, ROOT)

from tests.export.test_otlp import corpus_records  # noqa: E402

from packetd.pipeline.pipelines import Pipelines  # noqa: E402

CASES: list[tuple[str, dict[str, Any]]] = [
    ("metrics pipeline only", {}),
    ("+ OTLP metrics", {"otlp_metrics_bounds": ()}),
    ("+ OTLP logs", {"otlp_logs": True}),
    ("+ roundtrip file lines", {"roundtrips_enabled": True}),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    records = corpus_records()
    print(f"{len(records)} records from the corpus")
    for label, kw in CASES:
        best = float("inf")
        for _ in range(args.runs):
            p = Pipelines([], [], traces_enabled=False, **({"roundtrips_enabled": False} | kw))
            t0 = time.perf_counter()
            for _ in range(args.repeat):
                for rt in records:
                    p.process(rt)
                if p.otlp is not None:
                    p.otlp.take()
                p.logs.clear()
                p.lines.clear()
            best = min(best, time.perf_counter() - t0)
        print(f"{label:28s} {best / (args.repeat * len(records)) * 1e6:6.2f} µs/roundtrip")


if __name__ == "__main__":
    main()
