"""The flow table's bound comes from a memory budget, and half-open connections cost little.

A flood of SYNs (none answered, no payload) through a real engine (flow table + pairing sessions for the
HTTP rule) with a small budget: the table holds exactly `flows_for_memory(budget)` connections, evicts
(and counts) the rest, stays within the budget by tracemalloc, and a connection carrying payload that was
there before the flood survives it. Speed is measured in bench/flow_memory.py, not here.
"""

from __future__ import annotations

import socket
import struct
import tracemalloc

from packetd.engine import Engine, EngineConfig, Rule
from packetd.flow.table import FLOW_BYTES, MIN_FLOWS, FlowConfig, flows_for_memory
from packetd.net.packet import ACK, PROTO_TCP, PSH, SYN, Segment
from tests.flow.util import T0

BUDGET_MB = 8
SERVER = socket.inet_aton("10.255.0.1")


def _seg(
    i: int, flags: int, seq: int = 0, ack: int = 0, payload: bytes = b"", reply: bool = False
) -> Segment:
    client = socket.inet_aton(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
    cport = 1024 + i % 60000
    src, dst, sport, dport = (SERVER, client, 80, cport) if reply else (client, SERVER, cport, 80)
    key = src + dst + struct.pack("!HH", sport, dport)
    return Segment(
        T0 + i, PROTO_TCP, src, dst, sport, dport, seq, ack, flags, memoryview(payload), key, 64240
    )


def test_budget_gives_the_bound() -> None:
    assert flows_for_memory(BUDGET_MB) == BUDGET_MB * 1024 * 1024 // FLOW_BYTES == 1820
    assert flows_for_memory(1) == MIN_FLOWS
    assert FlowConfig().max_flows == flows_for_memory(256)


def test_syn_flood_stays_within_the_budget_and_evictions_are_counted() -> None:
    records: list[object] = []
    bound = flows_for_memory(BUDGET_MB)
    engine = Engine(
        EngineConfig(rules=(Rule(protocol="http", ports=(80,)),), flow=FlowConfig(max_flows=bound)),
        records.append,
    )
    flows = engine.flows
    # one real connection first: handshake and a request (its response is still to come)
    flows.segment(_seg(0, SYN, seq=100))
    flows.segment(_seg(0, SYN | ACK, seq=500, ack=101, reply=True))
    flows.segment(_seg(0, ACK | PSH, seq=101, ack=501, payload=b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
    flood = 5 * bound
    segments = [_seg(i, SYN, seq=i * 7) for i in range(1, flood + 1)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for s in segments:
        flows.segment(s)
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    st = flows.stats
    assert st.active == bound
    assert st.created == flood + 1
    assert st.evicted == flood + 1 - bound  # every flow pushed out was counted
    assert grown < BUDGET_MB * 1024 * 1024
    # half-open connections cost little: the table full of them uses under half the budget
    assert grown / (bound - 1) < FLOW_BYTES / 2, grown / (bound - 1)
    # the connection carrying a request was not pushed out by the flood: its response still pairs
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    flows.segment(_seg(0, ACK | PSH, seq=501, ack=128, payload=resp, reply=True))
    assert len(records) == 1
    assert records[0].status == "200"  # type: ignore[attr-defined]
