"""What the offline benchmarks share: one timed replay of a capture, and peak RSS from a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src"))

from packetd.capture.pcapfile import CaptureFile  # noqa: E402
from packetd.engine import Engine, EngineConfig, Rule  # noqa: E402


def timed_replay(path: str, rule: Rule, sink: Callable[[Any], None]) -> tuple[Engine, int, float]:
    """The capture through a fresh engine (reader → L2-L4 → flows → decoder → pairing → `sink`), on this
    core: (the engine, for its counters; packets; seconds)."""
    engine = Engine(EngineConfig(rules=(rule,)), sink)
    frame = engine.frame
    cf = CaptureFile(path)
    t0 = time.perf_counter()
    packets = 0
    for ts, lt, data in cf:
        frame(ts, lt, data)
        packets += 1
    engine.finish()
    elapsed = time.perf_counter() - t0
    cf.close()
    return engine, packets, elapsed


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM: ru_maxrss would include the parent's, Linux keeps it across exec)."""
    with open("/proc/self/status") as f:
        return int(f.read().split("VmHWM:")[1].split()[0]) / 1024


def in_fresh_process(module: str, function: str, *args: Any) -> tuple[Any, float]:
    """bench.<module>.<function>(*args) in a new interpreter, so that its peak RSS is that call's alone:
    (the call's result, which must be JSON, and the peak RSS in MB)."""
    code = (
        "import json, sys; sys.path.insert(0, %r); from bench.common import peak_rss_mb; "
        "from bench.%s import %s as f; r = f(*%r); print(json.dumps([r, peak_rss_mb()]))"
    ) % (ROOT, module, function, args)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    result, rss = json.loads(out.stdout.splitlines()[-1])
    return result, rss
