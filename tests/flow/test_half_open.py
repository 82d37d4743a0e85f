"""Connections that are one SYN so far (half-open) are kept as a small tuple, not a Flow, until their second
segment: everything the table shows of them must be what a Flow made by the SYN would show.

The truths are written by hand from the segments: which counters move, what `flows()` lists (roles,
protocol, the SYN's packets and sequence number), which connection `on_remove` is told of and why, and that
the connection made by the second segment continues exactly where its SYN left it (its id, its creation
order at the end of the capture).
"""

from __future__ import annotations

import socket
import struct

from packetd.flow.table import SWEEP_INTERVAL_NS, Flow, FlowConfig
from packetd.net.packet import ACK, PROTO_TCP, RST, SYN, Segment

from .util import SEC, T0, Conn, Harness, seg

IDLE = 300 * SEC


def _removals(h: Harness) -> list[tuple[int, tuple[str, int], str, int]]:
    """Record every on_remove as (flow id, client, reason, client→server packets)."""
    out: list[tuple[int, tuple[str, int], str, int]] = []

    def removed(flow: Flow, reason: str) -> None:
        out.append((flow.id, flow.client, reason, flow.streams[0].packets))

    h.table.on_remove = removed
    return out


def test_a_bare_syn_is_counted_and_listed_without_a_handler() -> None:
    h = Harness()
    removed = _removals(h)
    h.feed(seg(T0, 0, 1000, 0, SYN), seg(T0 + SEC, 0, 1000, 0, SYN))  # and its retransmission
    assert h.handlers == []
    assert h.nonzero() == {"created": 1}
    assert h.stats("active") == {"active": 1}
    (flow,) = h.table.flows()
    assert (flow.client, flow.server, flow.protocol, flow.midstream) == (
        ("10.0.0.1", 40000),
        ("10.0.0.2", 80),
        "http",
        False,
    )
    assert (flow.streams[0].packets, flow.streams[0].syn_seq, flow.streams[0].next_seq) == (2, 1000, 1001)
    assert (flow.first_ns, flow.last_ns) == (T0, T0 + SEC)
    assert flow.streams[1].packets == 0
    h.table.finish()
    assert removed == [(flow.id, ("10.0.0.1", 40000), "", 2)]  # the same id as listed: counted once
    assert h.stats("active") == {"active": 0}
    assert h.table.flows() == []


def test_the_second_segment_makes_the_flow_where_the_syn_left_it() -> None:
    c = Conn(isn=(1000, 5000))
    h = Harness()
    removed = _removals(h)
    h.feed(c.syn(T0))
    (half,) = h.table.flows()
    h.feed(c.synack(T0 + 1), c.data(T0 + 2, 0, 0, b"GET"), c.data(T0 + 3, 1, 0, b"200", 3))
    assert h.only.script() == [("data", 0, b"GET"), ("data", 1, b"200")]
    assert not h.only.midstream
    (flow,) = h.table.flows()
    assert flow.id == half.id
    assert (flow.first_ns, flow.streams[0].packets, flow.streams[1].packets) == (T0, 2, 2)
    assert h.nonzero() == {"created": 1}
    h.table.finish()
    assert removed == [(flow.id, ("10.0.0.1", 40000), "", 2)]


def test_rst_answering_a_bare_syn_closes_it_and_its_tuple_lingers() -> None:
    c = Conn(isn=(1000, 5000))
    h = Harness()
    removed = _removals(h)
    h.feed(c.syn(T0), seg(T0 + 1, 1, 0, c.at(0, 0), RST | ACK))
    assert h.only.script() == [("eof", 0), ("eof", 1), ("close",)]
    h.feed(c.data(T0 + 2, 0, 0, b"late"))
    assert h.nonzero() == {"created": 1, "closed": 1, "late_segments": 1}
    assert [r[2] for r in removed] == ["closed"]


def test_a_new_isn_on_a_half_open_tuple_restarts_it() -> None:
    h = Harness()
    removed = _removals(h)
    h.feed(seg(T0, 0, 1000, 0, SYN), seg(T0 + 1, 0, 9000, 0, SYN))
    (flow,) = h.table.flows()
    assert flow.streams[0].syn_seq == 9000
    assert h.nonzero() == {"created": 2, "closed": 1}
    # the restarting SYN is a packet of the new connection only (layer-4 metrics count it once)
    assert [(r[2], r[3]) for r in removed] == [("closed", 1)]
    assert flow.streams[0].packets == 1


def test_simultaneous_open_is_one_connection() -> None:
    h = Harness()
    h.feed(seg(T0, 0, 1000, 0, SYN), seg(T0 + 1, 1, 5000, 0, SYN))
    assert h.nonzero() == {"created": 1}
    (flow,) = h.table.flows()
    assert (flow.streams[0].syn_seq, flow.streams[1].syn_seq) == (1000, 5000)
    assert h.only.client == ("10.0.0.1", 40000)


def test_half_open_connections_expire_and_are_evicted_first() -> None:
    h = Harness(config=FlowConfig(max_flows=2))
    removed = _removals(h)
    h.feed(seg(T0, 0, 100, 1, ACK, b"a", client=("10.0.0.1", 1)))  # a flow carrying payload, the oldest
    h.feed(seg(T0 + 1, 0, 7, 0, SYN, client=("10.0.0.1", 2)))
    h.feed(seg(T0 + 2, 0, 7, 0, SYN, client=("10.0.0.1", 3)))  # full: the half-open one goes
    assert [(r[1][1], r[2]) for r in removed] == [(2, "evicted")]
    assert h.nonzero() == {"created": 3, "midstream": 1, "evicted": 1}
    h.table.tick(T0 + IDLE + SWEEP_INTERVAL_NS)
    assert [(r[1][1], r[2]) for r in removed[1:]] == [(1, "expired"), (3, "expired")]
    assert h.nonzero() == {"created": 3, "midstream": 1, "evicted": 1, "expired": 2}
    assert h.stats("active") == {"active": 0}


def test_a_reload_ends_half_open_connections_it_no_longer_covers() -> None:
    h = Harness(rules=(("http", "tcp", (80, 8080)),))
    removed = _removals(h)
    h.feed(seg(T0, 0, 1, 0, SYN), seg(T0, 0, 1, 0, SYN, server=("10.0.0.3", 8080)))
    h.table.set_rules([("http", "tcp", frozenset({8080}), None)])
    assert [(r[1], r[2]) for r in removed] == [(("10.0.0.1", 40000), "closed")]
    assert [f.server for f in h.table.flows()] == [("10.0.0.3", 8080)]
    assert h.nonzero() == {"created": 2, "closed": 1}


def test_flows_end_in_the_order_of_their_syns() -> None:
    """B's SYN-ACK before A's makes B's flow first; the end of the capture still ends A first (records of
    connections ended together come out in creation order, as when every SYN made its flow)."""
    a = Conn(isn=(1000, 5000))
    h = Harness()
    removed = _removals(h)
    b_client = ("10.0.0.1", 40001)
    h.feed(a.syn(T0), seg(T0 + 1, 0, 1, 0, SYN, client=b_client))
    h.feed(seg(T0 + 2, 1, 9, 2, SYN | ACK, client=b_client), a.synack(T0 + 3))
    assert [f.client for f in h.table.flows()] == [("10.0.0.1", 40000), b_client]
    h.table.finish()
    assert [r[1] for r in removed] == [("10.0.0.1", 40000), b_client]


def test_ipv6_half_open_endpoints() -> None:
    src, dst = socket.inet_pton(socket.AF_INET6, "fd00::1"), socket.inet_pton(socket.AF_INET6, "fd00::2")
    key = src + dst + struct.pack("!HH", 50000, 80)
    h = Harness()
    h.feed(Segment(T0, PROTO_TCP, src, dst, 50000, 80, 1, 0, SYN, memoryview(b""), key))
    (flow,) = h.table.flows()
    assert (flow.client, flow.server) == (("fd00::1", 50000), ("fd00::2", 80))
    assert flow.keys == (key, dst + src + struct.pack("!HH", 80, 50000))


def test_the_syn_restarting_an_open_tuple_is_counted_in_the_new_connection_only() -> None:
    c1, c2 = Conn(isn=(1000, 5000)), Conn(isn=(9000, 7000))
    h = Harness()
    removed = _removals(h)
    h.feed(*c1.handshake(T0), c1.data(T0 + 10, 0, 0, b"old"))  # 3 packets from the client
    h.feed(c2.syn(T0 + SEC))
    assert [(r[2], r[3]) for r in removed] == [("closed", 3)]
    (flow,) = h.table.flows()
    assert flow.streams[0].packets == 1
