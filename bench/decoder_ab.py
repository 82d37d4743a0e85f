"""Decoder-only A/B of two source trees on one capture, in one process: CPU µs per message, and to_json.

    .venv/bin/python bench/decoder_ab.py BASE_TREE NEW_TREE PCAP PROTO PORT [--rounds 10]

(`git archive REV | tar -x -C DIR` makes a tree of a commit.) The capture is run once through NEW_TREE's
whole engine with every connection's decoder calls recorded (direction, bytes, timestamp, gaps, EOFs).
Then, `--rounds` times and alternating between the trees, fresh decoders of each tree (its registry's
factory, the same options and mid-stream flag) replay exactly those calls, and the messages' `to_json`
is timed apart. Both trees live in this one process (their `packetd` modules loaded in turn), so a busy
machine slows both alike; the cyclic GC is off while timing (a collection lands on whichever run happens
to cross its threshold). Reported: the minimum over the rounds, per message, and whether both trees gave
the same messages (repr) and the same to_json dicts — a speed change must leave both unchanged.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
import time
from types import ModuleType
from typing import Any

Log = list[tuple[int, int, Any, int]]  # (0 data | 1 gap | 2 eof, direction, bytes or gap size, ts)


def load(src: str) -> dict[str, ModuleType]:
    """The tree's packetd modules (any other tree's are dropped from sys.modules first)."""
    for name in [m for m in sys.modules if m == "packetd" or m.startswith("packetd.")]:
        del sys.modules[name]
    sys.path.insert(0, src)
    names = ("packetd.capture.pcapfile", "packetd.engine", "packetd.pairing.session",
             "packetd.protocols.base", "packetd.protocols.registry")  # fmt: skip
    mods = {n: importlib.import_module(n) for n in names}
    # a spec's factory imports its decoder module on the first decoder made (protocols/spec.py): make one
    # of each now, while this tree's modules are the ones in sys.modules, or it would import the other's
    ctx = mods["packetd.protocols.base"].DecoderContext
    for spec in specs(mods).values():
        if not isinstance(spec, type):
            spec.factory(ctx())
    sys.path.remove(src)
    return mods


def record(mods: dict[str, ModuleType], pcap: str, proto: str, port: int) -> list[tuple[str, Any, bool, Log]]:
    """Every connection's decoder calls when the capture runs through this tree's engine."""
    session = mods["packetd.pairing.session"].Session
    engine_mod = mods["packetd.engine"]
    calls: list[tuple[str, Any, bool, Log]] = []
    birth = session._birth

    class Recorder:
        def __init__(self, inner: Any, log: Log) -> None:
            self.inner, self.log = inner, log

        def receive(self, d: Any, data: memoryview, ts: int) -> Any:
            self.log.append((0, int(d), bytes(data), ts))
            return self.inner.receive(d, data, ts)

        def receive_gap(self, d: Any, n: int, ts: int) -> Any:
            self.log.append((1, int(d), n, ts))
            return self.inner.receive_gap(d, n, ts)

        def receive_eof(self, d: Any, ts: int) -> Any:
            self.log.append((2, int(d), None, ts))
            return self.inner.receive_eof(d, ts)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    def recording_birth(self: Any) -> None:
        birth(self)
        log: Log = []
        calls.append((self._spec.name, self._options_for(self._spec.name), self._midstream, log))
        self._decoder = Recorder(self._decoder, log)

    session._birth = recording_birth
    rule = engine_mod.Rule(protocol=proto, ports=(port,))
    engine = engine_mod.Engine(engine_mod.EngineConfig(rules=(rule,)), lambda _r: None)
    for ts, lt, data in mods["packetd.capture.pcapfile"].CaptureFile(pcap):
        engine.frame(ts, lt, data)
    engine.finish()
    session._birth = birth
    return calls


def specs(mods: dict[str, ModuleType]) -> dict[str, Any]:
    reg = mods["packetd.protocols.registry"]
    return {v.name: v for v in vars(reg).values() if hasattr(v, "factory") and hasattr(v, "family")}


def replay(mods: dict[str, ModuleType], calls: list[tuple[str, Any, bool, Log]]) -> tuple[float, list[Any]]:
    base = mods["packetd.protocols.base"]
    by_name = specs(mods)
    direction = base.Direction
    msgs: list[Any] = []
    gc.collect()
    gc.disable()
    t0 = time.process_time()
    for name, opts, midstream, log in calls:
        ctx = base.DecoderContext(options=opts, midstream=midstream, counters={}, shared={})
        dec = by_name[name].factory(ctx)
        for kind, d, data, ts in log:
            dd = direction(d)
            if kind == 0:
                msgs.extend(dec.receive(dd, memoryview(data), ts))
            elif kind == 1:
                msgs.extend(dec.receive_gap(dd, data, ts))
            else:
                msgs.extend(dec.receive_eof(dd, ts))
    t = time.process_time() - t0
    gc.enable()
    return t, msgs


def to_json(msgs: list[Any]) -> tuple[float, list[Any]]:
    records = [m for m in msgs if m.ROLE.name != "CONTROL"]
    gc.collect()
    gc.disable()
    t0 = time.process_time()
    out = [m.to_json() for m in records]
    t = time.process_time() - t0
    gc.enable()
    return t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base")
    ap.add_argument("new")
    ap.add_argument("pcap")
    ap.add_argument("proto")
    ap.add_argument("port", type=int)
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    trees = {"base": load(f"{args.base}/src"), "new": load(f"{args.new}/src")}
    calls = record(trees["new"], args.pcap, args.proto, args.port)
    best = {k: float("inf") for k in trees}
    jbest = dict(best)
    seen: dict[str, tuple[list[str], str]] = {}
    n = 0
    for r in range(args.rounds):
        for k, mods in trees.items():
            t, msgs = replay(mods, calls)
            tj, js = to_json(msgs)
            best[k], jbest[k], n = min(best[k], t), min(jbest[k], tj), len(msgs)
            if r == 0:
                seen[k] = ([repr(m) for m in msgs], repr(js))
    for k in trees:
        print(f"{args.proto} {k}: {n} messages; decoder {best[k] * 1e6 / n:.2f} µs/message, "
              f"to_json {jbest[k] * 1e6 / n:.2f} µs/message")  # fmt: skip
    print(f"{args.proto}: new/base decoder {best['new'] / best['base']:.3f}, to_json "
          f"{jbest['new'] / jbest['base']:.3f}; same messages: {seen['base'][0] == seen['new'][0]}, "
          f"same to_json: {seen['base'][1] == seen['new'][1]}")  # fmt: skip


if __name__ == "__main__":
    main()
