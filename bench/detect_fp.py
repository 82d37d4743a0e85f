"""False positives of the detectors on uniformly random bytes: how often each says YES.

    nice -n 19 .venv/bin/python bench/detect_fp.py [samples]

For each detector and each input length (16, 64, 512 bytes: short segments to a full window), `samples`
random client byte strings (seeded: the run is reproducible) with an empty server side, then as many
with random bytes on both sides. Prints YES counts; BENCHMARKS.md ("Detection") records a run.
"""

from __future__ import annotations

import random
import sys
import time

from packetd.protocols.detection import YES, tls_detect
from packetd.protocols.registry import REGISTRY


def main(samples: int) -> None:
    rnd = random.Random(12)
    detectors = [(s.name, s.detect) for s in REGISTRY.specs() if s.detect is not None and s.name != "grpc"]
    detectors.append(("tls", tls_detect))
    for name, detect in detectors:
        yes = 0
        started = time.perf_counter()
        for size in (16, 64, 512):
            for _ in range(samples):
                c2s = rnd.randbytes(size)
                if detect(c2s, b"") is YES:
                    yes += 1
                if detect(c2s, rnd.randbytes(size)) is YES:
                    yes += 1
        calls = samples * 6
        per = (time.perf_counter() - started) / calls * 1e6
        print(f"{name:<11} {yes:>3} YES in {calls} random inputs  ({per:.2f} µs a call, incl. random bytes)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
