"""pipeline/fanout.py's merges against one engine's own: the summary merged from per-worker parts (endpoint
folding included) is the summary of all the records in order, and the record merger gives one order."""

from __future__ import annotations

import os

import pytest

from packetd.capture.pcapfile import CaptureFile
from packetd.engine import Engine, EngineConfig, default_rules
from packetd.pairing.roundtrip import Roundtrip
from packetd.pairing.session import ProtocolStats
from packetd.pipeline import summary as summary_mod
from packetd.pipeline.fanout import Merger, WorkerSummary, flow_worker, merge_counters, merge_summaries
from packetd.pipeline.summary import Summary
from tests.helpers.golden import CORPUS


def _records(name: str) -> list[Roundtrip]:
    out: list[Roundtrip] = []
    engine = Engine(EngineConfig(rules=tuple(default_rules()), detect=True), out.append)
    src = CaptureFile(os.path.join(CORPUS, name))
    for ts, lt, data in src:
        engine.frame(ts, lt, data)
    engine.finish()
    src.close()
    return out


@pytest.mark.parametrize("max_endpoints", [1000, 3, 1])
def test_merged_summary_is_one_engines(monkeypatch: pytest.MonkeyPatch, max_endpoints: int) -> None:
    """Records split by connection over 3 workers, in order; with a table bound small enough that endpoints
    fold into '(other)', the merged table is line for line the one-engine table."""
    monkeypatch.setattr(summary_mod, "MAX_ENDPOINTS", max_endpoints)
    records = _records("http1/njcx_packetbeat__http_minitwit.pcap") + _records("redis/zeek_zeek__pubsub.pcap")
    one = Summary()
    parts = [WorkerSummary() for _ in range(3)]
    for seq, rt in enumerate(records):
        one.add(rt)
        (cip, cport), (sip, sport) = rt.client, rt.server
        w = flow_worker(cip.encode(), sip.encode(), cport, sport, 3)
        parts[w].add_record(seq, rt)
    keys = {k for k, _ in one.rows()}
    assert len(keys) > max_endpoints or max_endpoints == 1000
    assert sum(1 for p in parts if p.endpoints) >= 2  # really split
    merged = merge_summaries(parts)
    assert merged.table(25) == one.table(25)
    assert merged.kinds == one.kinds


def test_merger_orders_by_sequence_then_worker() -> None:
    m = Merger(2)
    m.add(0, [(1, b"a"), (4, b"d")])
    m.add(1, [(2, b"b"), (3, b"c"), (6, b"f")])
    assert m.release(4) == [b"a", b"b", b"c"]  # 4 may still come from a worker: held
    assert m.release(float("inf")) == [b"d", b"f"]
    assert m.held == 0


def test_flow_worker_is_the_same_both_ways() -> None:
    a, b = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    for n in (2, 3, 8):
        for sp, dp in ((40000, 80), (1, 65535), (53, 53)):
            assert flow_worker(a, b, sp, dp, n) == flow_worker(b, a, dp, sp, n)


def test_counters_add_up_nested_ones_too() -> None:
    """Workers' ProtocolStats merged: ints add, dicts merge by key, the nested PairingStats adds up too (a
    slotted class, or a native one in the compiled build: both are merged); the numbers worked out by hand."""
    a, b = ProtocolStats(), ProtocolStats()
    a.messages, b.messages = 3, 4
    a.records["request"], b.records["request"] = 1, 2
    a.decode_errors["bad frame"], b.decode_errors["bad frame"], b.decode_errors["short"] = 1, 5, 2
    a.pairing.orphans, b.pairing.orphans, b.pairing.unanswered = 2, 3, 1
    merge_counters(a, b)
    assert a.messages == 7 and a.records["request"] == 3
    assert a.decode_errors == {"bad frame": 6, "short": 2}
    assert (a.pairing.orphans, a.pairing.unanswered, a.pairing.evicted) == (5, 1, 0)
