"""Decoder-only cost: µs of one protocol's decoder (and its messages' record methods) per message.

    .venv/bin/python bench/decoder_feed.py CAPTURE PROTOCOL PORT [--rounds 5] [--src DIR]

The capture runs once through the whole engine with the protocol's decoder factory wrapped, which records
every call the sessions make (receive / receive_gap / receive_eof with their bytes, and each decoder's
context). Those calls are then replayed `--rounds` times into fresh decoders, and every message they return
has the methods a record calls (operation, status, is_error, record_kind, trace_context, to_json) called
once, as `watch --format json` does; the median CPU time per message is printed. Nothing but the
protocol's package runs in the timed loop: flows, pairing and output are not in it.

`--src DIR` imports packetd from DIR/src instead (a frozen copy of another commit, for before/after).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Any


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("capture")
    ap.add_argument("protocol")
    ap.add_argument("port", type=int)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--src", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(args.src, "src"))

    from packetd.capture.pcapfile import CaptureFile
    from packetd.engine import Engine, EngineConfig, Rule
    from packetd.protocols.base import DecoderContext, Message
    from packetd.protocols.registry import REGISTRY

    spec = REGISTRY.get(args.protocol)
    factory = spec.factory
    recorded: list[tuple[DecoderContext, list[tuple[int, int, bytes, int]]]] = []

    class Recorder:
        def __init__(self, ctx: DecoderContext) -> None:
            self.inner = factory(ctx)
            self.calls: list[tuple[int, int, bytes, int]] = []
            recorded.append((ctx, self.calls))
            self.counters = getattr(self.inner, "counters", {})

        def receive(self, d: Any, data: memoryview, ts: int) -> Any:
            self.calls.append((0, d, bytes(data), ts))
            return self.inner.receive(d, data, ts)

        def receive_gap(self, d: Any, n: int, ts: int) -> Any:
            self.calls.append((1, d, n.to_bytes(8, "big"), ts))
            return self.inner.receive_gap(d, n, ts)

        def receive_eof(self, d: Any, ts: int) -> Any:
            self.calls.append((2, d, b"", ts))
            return self.inner.receive_eof(d, ts)

    object.__setattr__(spec, "factory", Recorder)
    engine = Engine(EngineConfig(rules=(Rule(protocol=args.protocol, ports=(args.port,)),)), lambda _r: None)
    for ts, lt, data in CaptureFile(args.capture):
        engine.frame(ts, lt, data)
    engine.finish()
    object.__setattr__(spec, "factory", factory)

    def replay() -> tuple[float, int]:
        shared: dict[str, Any] = {}
        msgs = 0
        t0 = time.process_time()
        for ctx, calls in recorded:
            dec = factory(
                DecoderContext(
                    options=ctx.options,
                    midstream=ctx.midstream,
                    transport=ctx.transport,
                    counters={},
                    shared=shared,
                )
            )
            for kind, d, data, ts in calls:
                try:
                    if kind == 0:
                        out = dec.receive(d, memoryview(data), ts)
                    elif kind == 1:
                        out = dec.receive_gap(d, int.from_bytes(data, "big"), ts)
                    else:
                        out = dec.receive_eof(d, ts)
                except Exception:  # DecodeError: the session would start a fresh decoder
                    dec = factory(
                        DecoderContext(options=ctx.options, midstream=True, transport=ctx.transport)
                    )
                    continue
                for m in out:
                    if not isinstance(m, Message) or type(m).__name__ in ("SwapRoles",):
                        continue
                    msgs += 1
                    m.operation()
                    m.status()
                    m.is_error()
                    m.record_kind()
                    m.trace_context()
                    m.to_json()
        return time.process_time() - t0, msgs

    times = []
    count = 0
    for _ in range(args.rounds):
        t, count = replay()
        times.append(t)
    med = statistics.median(times)
    best = min(times)
    print(f"{args.protocol}: {count} messages, {len(recorded)} decoders, {med * 1e6 / count:.2f} µs/message "
          f"(median of {args.rounds}: {med:.3f} s; best {best * 1e6 / count:.2f} µs/message)")  # fmt: skip


if __name__ == "__main__":
    main()
