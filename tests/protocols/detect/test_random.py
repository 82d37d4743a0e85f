"""Random bytes are not a protocol: no detector says YES for them (Hypothesis), and detectors never raise.

The measured rate over uniformly random inputs is in BENCHMARKS.md ("Detection"): 0 in 10^6 per detector
(bench/detect_fp.py); Hypothesis adds the structured corners uniform sampling misses (runs of zeros,
repeated bytes, short inputs).
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from packetd.protocols.detection import DETECT_WINDOW, YES, Verdict, tls_detect
from packetd.protocols.registry import REGISTRY

DETECTORS = [(spec.name, spec.detect) for spec in REGISTRY.specs() if spec.detect is not None]
DETECTORS.append(("tls", tls_detect))


# truly random bytes (of Hypothesis-chosen lengths), not st.binary(): st.binary() also tries the literals
# it finds in the code under test (the AMQP header itself), and a Hypothesis-driven Random is steered to
# whatever makes a branch go — both are the protocol, not noise; the claim here is about noise
@settings(max_examples=3000, deadline=None)
@given(rnd=st.randoms(use_true_random=True), n=st.integers(0, DETECT_WINDOW), m=st.integers(0, DETECT_WINDOW))
def test_random_bytes_are_not_a_protocol(rnd: random.Random, n: int, m: int) -> None:
    c2s, s2c = rnd.randbytes(n), rnd.randbytes(m)
    for name, detect in DETECTORS:
        verdict = detect(c2s, s2c)
        assert isinstance(verdict, Verdict)
        assert verdict is not YES, name
