"""Connection lifetimes and the table: roles, EOF order, RST, idle expiry by packet time, the bounded table,
late segments of closed connections, tuple reuse, and UDP conversations.
"""

from __future__ import annotations

import pytest

from packetd.flow.table import CLOSED_LINGER_NS, SWEEP_INTERVAL_NS, FlowConfig
from packetd.net.packet import ACK, FIN, PSH, RST, SYN, Segment

from .util import SEC, T0, Conn, Harness, seg, udp

IDLE = 300 * SEC  # the default idle timeout (reference §2.2: 5 minutes)


# -- roles -----------------------------------------------------------------------------------------------------
CL, SV = ("10.0.0.1", 40000), ("10.0.0.2", 80)


@pytest.mark.parametrize(
    ("first", "client", "server", "midstream"),
    [
        pytest.param(seg(T0, 0, 1, 0, SYN), CL, SV, False, id="syn"),
        pytest.param(seg(T0, 1, 1, 2, SYN | ACK), CL, SV, False, id="syn-ack-only"),
        # the SYN decides even against the rule port: the host on port 80 opened this connection
        pytest.param(seg(T0, 1, 1, 0, SYN), SV, CL, False, id="syn-from-the-rule-port"),
        pytest.param(seg(T0, 0, 1, 2, ACK, b"GET"), CL, SV, True, id="no-syn-data-to-rule-port"),
        pytest.param(seg(T0, 1, 1, 2, ACK, b"HTTP"), CL, SV, True, id="no-syn-data-from-rule-port"),
    ],
)
def test_roles(first: Segment, client: tuple[str, int], server: tuple[str, int], midstream: bool) -> None:
    h = Harness().feed(first)
    (flow,) = h.table.flows()
    assert (flow.client, flow.server, flow.midstream, flow.transport) == (client, server, midstream, 6)
    if first.flags == SYN:
        # a bare SYN is a half-open connection: its handler is made by its next segment (the answer)
        assert h.handlers == []
        h.feed(_answer(first))
    r = h.only
    assert (r.client, r.server, r.midstream, r.transport) == (client, server, midstream, 6)
    assert h.nonzero() == ({"created": 1, "midstream": 1} if midstream else {"created": 1})


def _answer(syn: Segment) -> Segment:
    """The SYN-ACK answering a bare SYN."""
    return Segment(
        syn.ts_ns + 1,
        6,
        syn.dst,
        syn.src,
        syn.dport,
        syn.sport,
        777,
        syn.seq + 1,
        SYN | ACK,
        memoryview(b""),
        syn.dst + syn.src + syn.key[-2:] + syn.key[-4:-2],
    )


@pytest.mark.parametrize("frm", [0, 1])
def test_both_ports_rule_ports_the_lower_is_the_server(frm: int) -> None:
    h = Harness(rules=(("http", "tcp", (80, 8080)),))
    h.feed(seg(T0, frm, 1, 2, ACK, b"x", client=("10.0.0.1", 8080), server=("10.0.0.2", 80)))
    assert (h.only.client, h.only.server) == (("10.0.0.1", 8080), ("10.0.0.2", 80))


def test_both_ports_rule_ports_the_syn_decides() -> None:
    h = Harness(rules=(("http", "tcp", (80, 8080)),))
    first = seg(T0, 1, 1, 0, SYN, client=("10.0.0.1", 8080), server=("10.0.0.2", 80))  # from port 80
    h.feed(first, _answer(first))
    assert (h.only.client, h.only.server) == (("10.0.0.2", 80), ("10.0.0.1", 8080))


def test_no_rule_port_no_flow() -> None:
    h = Harness().feed(
        seg(T0, 0, 1, 2, ACK, b"x", server=("10.0.0.2", 81)),
        seg(T0 + 1, 0, 1, 0, SYN, server=("10.0.0.2", 81)),
    )
    assert h.handlers == []
    assert h.nonzero() == {"unmatched": 2}


def test_empty_segment_of_an_unknown_connection_starts_nothing() -> None:
    h = Harness().feed(seg(T0, 0, 1, 2, ACK), seg(T0 + 1, 0, 1, 2, FIN | ACK), seg(T0 + 2, 1, 2, 1, RST))
    assert h.handlers == []
    assert h.nonzero() == {"no_flow": 3}


def test_protocol_by_rule() -> None:
    h = Harness(rules=(("http", "tcp", (80,)), ("redis", "tcp", (6379,))))
    syns = seg(T0, 0, 1, 0, SYN, server=("10.0.0.3", 6379)), seg(T0, 0, 1, 0, SYN)
    assert [f.protocol for f in h.feed(*syns).table.flows()] == ["redis", "http"]
    h.feed(*map(_answer, syns))
    assert [r.protocol for r in h.handlers] == ["redis", "http"]


# -- EOF order, FIN, RST ---------------------------------------------------------------------------------------
def test_server_fin_first() -> None:
    c = Conn()
    h = Harness().feed(*c.handshake(T0), c.data(T0 + 10, 0, 0, b"req"), c.data(T0 + 11, 1, 0, b"resp", 3))
    h.feed(c.data(T0 + 12, 1, 4, b"", 3, FIN | ACK))
    assert h.only.script()[-1] == ("eof", 1)
    h.feed(c.data(T0 + 13, 0, 3, b"more", 5))  # a half-closed connection still carries the client's bytes
    h.feed(c.data(T0 + 14, 0, 7, b"", 5, FIN | ACK))
    assert h.only.script() == [
        ("data", 0, b"req"),
        ("data", 1, b"resp"),
        ("eof", 1),
        ("data", 0, b"more"),
        ("eof", 0),
        ("close",),
    ]
    assert h.nonzero() == {"created": 1, "closed": 1}
    assert h.stats("active") == {"active": 0}


def test_fin_carrying_data() -> None:
    c = Conn()
    h = Harness().feed(*c.handshake(T0), c.data(T0 + 10, 0, 0, b"last words", flags=FIN | PSH | ACK))
    assert h.only.script() == [("data", 0, b"last words"), ("eof", 0)]


def test_retransmitted_fin_is_harmless() -> None:
    c = Conn()
    h = Harness().feed(*c.handshake(T0), c.data(T0 + 10, 0, 0, b"bye", flags=FIN | ACK))
    h.feed(c.data(T0 + 11, 0, 0, b"bye", flags=FIN | ACK), c.data(T0 + 12, 0, 3, b"", flags=FIN | ACK))
    assert h.only.script() == [("data", 0, b"bye"), ("eof", 0)]
    assert h.nonzero() == {"created": 1, "duplicates": 1}


@pytest.mark.parametrize("frm", [0, 1])
def test_rst_ends_both_directions(frm: int) -> None:
    c = Conn()
    h = Harness().feed(*c.handshake(T0), c.data(T0 + 10, 0, 0, b"req"))
    h.feed(c.data(T0 + 11, frm, 3 if frm == 0 else 0, b"", flags=RST))
    assert h.only.script() == [("data", 0, b"req"), ("eof", 0), ("eof", 1), ("close",)]
    assert h.nonzero() == {"created": 1, "closed": 1}


def test_fin_then_rst() -> None:
    c = Conn()
    h = Harness().feed(*c.handshake(T0), c.data(T0 + 10, 0, 0, b"req", flags=FIN | ACK))
    h.feed(c.data(T0 + 11, 1, 0, b"", 4, RST | ACK))
    assert h.only.script() == [("data", 0, b"req"), ("eof", 0), ("eof", 1), ("close",)]
    assert h.nonzero() == {"created": 1, "closed": 1}


# -- idle expiry: packet time ----------------------------------------------------------------------------------
def other(ts: int, port: int = 41000) -> object:
    """A segment of another connection: it only moves packet time on."""
    return seg(ts, 0, 1, 2, ACK, b"x", client=("10.0.0.7", port))


def test_idle_expiry_by_packet_time() -> None:
    c = Conn()
    h = Harness().feed(*c.handshake(T0), c.data(T0 + 10, 0, 0, b"req"))
    first = h.handlers[0]
    h.feed(other(T0 + 10 + IDLE))  # idle exactly the timeout: not expired
    assert first.script() == [("data", 0, b"req")]
    h.feed(other(T0 + 10 + IDLE + SWEEP_INTERVAL_NS + 1, 41001))  # past it, and a sweep is due
    assert first.script() == [("data", 0, b"req"), ("eof", 0), ("eof", 1), ("close",)]
    assert h.nonzero() == {"created": 3, "midstream": 2, "expired": 1}
    assert h.stats("active") == {"active": 2}


def test_no_expiry_while_packets_keep_coming_whatever_the_wall_clock() -> None:
    """Timestamps from 1970: a wall-clock implementation would expire everything at once."""
    c = Conn()
    h = Harness()
    h.feed(*c.handshake(SEC))
    for i in range(20):  # one packet a minute for 20 minutes
        h.feed(c.data(SEC + 10 + i * 60 * SEC, 0, i, b"k"))
    assert h.only.script() == [("data", 0, b"k" * 20)]
    assert h.nonzero() == {"created": 1}


def test_tick_expires_idle_flows() -> None:
    c = Conn()
    h = Harness().feed(*c.handshake(T0))
    h.table.tick(T0 + IDLE + SWEEP_INTERVAL_NS + 1)
    assert h.only.script() == [("eof", 0), ("eof", 1), ("close",)]
    assert h.nonzero() == {"created": 1, "expired": 1}


def test_configured_idle_timeout() -> None:
    c = Conn()
    h = Harness(config=FlowConfig(idle_timeout_ns=2 * SEC)).feed(*c.handshake(T0))
    h.table.tick(T0 + SWEEP_INTERVAL_NS)
    assert h.nonzero() == {"created": 1, "expired": 1}


def test_timestamps_going_backwards_do_not_expire_anything() -> None:
    c = Conn()
    h = Harness().feed(*c.handshake(T0 + 1000 * SEC), c.data(T0, 0, 0, b"req"), other(T0 - 500 * SEC))
    assert h.handlers[0].script() == [("data", 0, b"req")]
    assert h.nonzero() == {"created": 2, "midstream": 1}


def test_an_expired_connection_that_speaks_again_is_joined_midstream() -> None:
    """Expiry is not a close: the next segment is not "late", it starts a flow mid-stream."""
    c = Conn()
    h = Harness().feed(*c.handshake(T0), c.data(T0 + 10, 0, 0, b"req1"))
    later = T0 + IDLE + SWEEP_INTERVAL_NS + 1
    h.feed(c.data(later, 0, 4, b"req2"))
    assert [r.script() for r in h.handlers] == [
        [("data", 0, b"req1"), ("eof", 0), ("eof", 1), ("close",)],
        [("data", 0, b"req2")],
    ]
    assert h.handlers[1].midstream
    assert h.nonzero() == {"created": 2, "midstream": 1, "expired": 1}


# -- the bounded table -----------------------------------------------------------------------------------------
def client(port: int) -> tuple[str, int]:
    return ("10.0.0.1", port)


def test_table_full_evicts_the_least_recently_active() -> None:
    h = Harness(config=FlowConfig(max_flows=2))
    h.feed(seg(T0, 0, 100, 1, ACK, b"a1", client=client(1)))
    h.feed(seg(T0 + 1, 0, 100, 1, ACK, b"b1", client=client(2)))
    h.feed(seg(T0 + 2, 0, 102, 1, ACK, b"a2", client=client(1)))  # A is now more recent than B
    h.feed(seg(T0 + 3, 0, 100, 1, ACK, b"c1", client=client(3)))  # full: B goes
    a, b, c = h.handlers
    assert b.script() == [("data", 0, b"b1"), ("eof", 0), ("eof", 1), ("close",)]
    assert a.script() == [("data", 0, b"a1a2")]
    assert c.script() == [("data", 0, b"c1")]
    assert h.nonzero() == {"created": 3, "midstream": 3, "evicted": 1}
    assert h.stats("active") == {"active": 2}
    # B speaks again: it was evicted, not closed, so it is joined again (and A, now the stalest, goes)
    h.feed(seg(T0 + 4, 0, 102, 1, ACK, b"b2", client=client(2)))
    assert h.handlers[3].script() == [("data", 0, b"b2")]
    assert a.script()[-1] == ("close",)
    assert h.nonzero() == {"created": 4, "midstream": 4, "evicted": 2}


def test_table_never_exceeds_its_bound() -> None:
    h = Harness(config=FlowConfig(max_flows=8))
    for i in range(100):
        h.feed(seg(T0 + i, 0, 100, 1, ACK, b"x", client=client(1000 + i)))
        assert len(h.table.flows()) <= 8
    assert h.nonzero() == {"created": 100, "midstream": 100, "evicted": 92}


# -- late segments and tuple reuse -----------------------------------------------------------------------------
def closed_conn(c: Conn, h: Harness, ts: int) -> None:
    h.feed(*c.handshake(ts), c.data(ts + 10, 0, 0, b"req"), c.data(ts + 11, 1, 0, b"resp", 3))
    h.feed(c.data(ts + 12, 0, 3, b"", 4, FIN | ACK), c.data(ts + 13, 1, 4, b"", 4, FIN | ACK))
    h.feed(c.data(ts + 14, 0, 4, b"", 5))


def test_late_segment_after_fin_close_starts_nothing() -> None:
    c = Conn()
    h = Harness()
    closed_conn(c, h, T0)
    h.feed(c.data(T0 + SEC, 1, 0, b"resp", 3))  # a retransmission captured after the close
    h.feed(c.data(T0 + 2 * SEC, 0, 0, b"req"))
    assert len(h.handlers) == 1
    assert h.nonzero() == {"created": 1, "closed": 1, "no_flow": 1, "late_segments": 2}


def test_late_segment_after_rst_starts_nothing() -> None:
    c = Conn()
    h = Harness().feed(
        *c.handshake(T0), c.data(T0 + 10, 0, 0, b"req"), c.data(T0 + 11, 1, 0, b"", 3, RST | ACK)
    )
    h.feed(c.data(T0 + 12, 1, 0, b"in flight", 3))
    assert len(h.handlers) == 1
    assert h.nonzero() == {"created": 1, "closed": 1, "late_segments": 1}


def test_closed_tuples_are_forgotten_after_the_linger_time() -> None:
    c = Conn()
    h = Harness()
    closed_conn(c, h, T0)
    h.feed(c.data(T0 + 14 + CLOSED_LINGER_NS + SWEEP_INTERVAL_NS + 1, 0, 3, b"again"))
    assert len(h.handlers) == 2
    assert h.handlers[1].midstream
    assert h.handlers[1].script() == [("data", 0, b"again")]


def test_syn_on_a_closed_tuple_starts_a_new_connection() -> None:
    h = Harness()
    closed_conn(Conn(isn=(1000, 5000)), h, T0)
    c2 = Conn(isn=(777_000, 888_000))
    h.feed(*c2.handshake(T0 + SEC), c2.data(T0 + SEC + 10, 0, 0, b"second"))
    assert len(h.handlers) == 2
    assert not h.handlers[1].midstream
    assert h.handlers[1].script() == [("data", 0, b"second")]
    assert h.nonzero() == {"created": 2, "closed": 1, "no_flow": 1}


def test_syn_with_a_new_isn_on_an_open_tuple_restarts() -> None:
    """The old connection ended unseen (lost FIN, or a middlebox reset): a new SYN starts a new one."""
    c1 = Conn(isn=(1000, 5000))
    h = Harness().feed(*c1.handshake(T0), c1.data(T0 + 10, 0, 0, b"old"))
    c2 = Conn(isn=(9000, 7000))
    h.feed(
        *c2.handshake(T0 + SEC), c2.data(T0 + SEC + 10, 0, 0, b"new"), c2.data(T0 + SEC + 11, 1, 0, b"ok", 3)
    )
    assert [r.script() for r in h.handlers] == [
        [("data", 0, b"old"), ("eof", 0), ("eof", 1), ("close",)],
        [("data", 0, b"new"), ("data", 1, b"ok")],
    ]
    assert h.nonzero() == {"created": 2, "closed": 1}


def test_syn_retransmission_does_not_restart() -> None:
    c = Conn()
    h = Harness().feed(*c.handshake(T0), c.data(T0 + 10, 0, 0, b"req"), c.syn(T0 + 11), c.synack(T0 + 12))
    assert h.only.script() == [("data", 0, b"req")]


def test_new_connection_forgets_the_closed_one_on_its_tuple() -> None:
    """A reused tuple's connection that expires must not inherit the old one's late-segment guard."""
    h = Harness(config=FlowConfig(idle_timeout_ns=2 * SEC))
    closed_conn(Conn(isn=(1000, 5000)), h, T0)
    c2 = Conn(isn=(777_000, 888_000))
    h.feed(*c2.handshake(T0 + 100), c2.data(T0 + 110, 0, 0, b"a"))
    h.table.tick(T0 + SWEEP_INTERVAL_NS)  # the second connection expires (idle > 2 s)
    assert h.handlers[1].script()[-1] == ("close",)
    h.feed(c2.data(T0 + SWEEP_INTERVAL_NS + 1, 0, 1, b"b"))  # within the first one's linger time
    assert len(h.handlers) == 3
    assert h.handlers[2].script() == [("data", 0, b"b")]


def test_syn_on_a_midstream_flow_restarts_with_the_syn_roles() -> None:
    """Both ports are rule ports: the guess (lower port is the server) was wrong; the SYN corrects it."""
    h = Harness(rules=(("http", "tcp", (80, 8080)),))
    a, b = ("10.0.0.1", 80), ("10.0.0.2", 8080)  # a's port is lower, but a is the client
    h.feed(seg(T0, 0, 100, 1, ACK, b"old", client=b, server=a))  # from b:8080 to a:80, guessed b→a
    assert (h.handlers[0].client, h.handlers[0].server) == (b, a)
    h.feed(seg(T0 + SEC, 1, 5000, 0, SYN, client=b, server=a))  # a opens a new connection to b
    h.feed(seg(T0 + SEC + 1, 0, 9000, 5001, SYN | ACK, client=b, server=a))
    h.feed(seg(T0 + SEC + 2, 1, 5001, 9001, ACK, b"GET", client=b, server=a))
    assert len(h.handlers) == 2
    second = h.handlers[1]
    assert (second.client, second.server, second.midstream) == (a, b, False)
    assert second.script() == [("data", 0, b"GET")]


def test_syn_ack_on_a_midstream_flow_restarts() -> None:
    h = Harness()
    h.feed(seg(T0, 1, 100, 1, ACK, b"old response"))
    h.feed(seg(T0 + SEC, 1, 5000, 9001, SYN | ACK))  # the client's SYN was not captured
    h.feed(seg(T0 + SEC + 1, 1, 5001, 9001, ACK, b"new"))
    assert [r.script() for r in h.handlers] == [
        [("data", 1, b"old response"), ("eof", 0), ("eof", 1), ("close",)],
        [("data", 1, b"new")],
    ]
    assert not h.handlers[1].midstream


# -- UDP -------------------------------------------------------------------------------------------------------
DNS = (("dns", "udp", (53,)),)
RESOLVER = ("10.0.0.53", 53)


def test_udp_datagrams_both_ways() -> None:
    h = Harness(rules=DNS)
    h.feed(
        udp(T0, 0, b"query", server=RESOLVER),
        udp(T0 + 1, 1, b"answer", server=RESOLVER),
        udp(T0 + 2, 0, b"", server=RESOLVER),
    )
    r = h.only
    assert (r.client, r.server, r.transport, r.midstream) == (CL, RESOLVER, 17, False)
    assert r.events == [("data", 0, b"query"), ("data", 1, b"answer")]  # each datagram whole, none empty
    h.table.finish()
    assert r.events[2:] == [("eof", 0), ("eof", 1), ("close",)]
    assert h.nonzero() == {"created": 1}


def test_udp_first_datagram_from_the_server() -> None:
    h = Harness(rules=DNS).feed(udp(T0, 1, b"answer", server=RESOLVER))
    assert (h.only.client, h.only.server) == (CL, RESOLVER)
    assert h.only.events == [("data", 1, b"answer")]


def test_udp_datagrams_are_never_merged_or_deduplicated() -> None:
    h = Harness(rules=DNS).feed(*(udp(T0 + i, 0, b"same", server=RESOLVER) for i in range(3)))
    assert h.only.events == [("data", 0, b"same")] * 3


def test_udp_unmatched_and_separate_from_tcp() -> None:
    h = Harness(rules=(*DNS, ("http", "tcp", (80,))))
    h.feed(
        udp(T0, 0, b"x", server=("10.0.0.2", 80)),
        udp(T0, 0, b"q", server=RESOLVER),
        seg(T0, 0, 1, 0, SYN, server=RESOLVER),
    )
    assert [r.transport for r in h.handlers] == [17]
    assert h.nonzero() == {"created": 1, "unmatched": 2}


def test_udp_idle_expiry() -> None:
    h = Harness(rules=DNS).feed(udp(T0, 0, b"q", server=RESOLVER))
    h.table.tick(T0 + IDLE + SWEEP_INTERVAL_NS + 1)
    assert h.only.events == [("data", 0, b"q"), ("eof", 0), ("eof", 1), ("close",)]
    h.feed(udp(T0 + IDLE + SWEEP_INTERVAL_NS + 2, 0, b"q2", server=RESOLVER))
    assert len(h.handlers) == 2
    assert h.nonzero() == {"created": 2, "expired": 1}


def test_finish_ends_everything_once() -> None:
    c = Conn()
    h = Harness(rules=(*DNS, ("http", "tcp", (80,))))
    h.feed(*c.handshake(T0), udp(T0, 0, b"q", server=RESOLVER))
    h.table.finish()
    h.table.finish()
    assert [r.events[-3:] for r in h.handlers] == [[("eof", 0), ("eof", 1), ("close",)]] * 2
    assert h.table.flows() == []
    assert h.stats("active") == {"active": 0}


def test_rules_reload_ends_flows_it_changes_and_their_tuples_start_afresh() -> None:
    c = Conn()
    h = Harness().feed(*c.handshake(T0), c.data(T0 + 10, 0, 0, b"req"))
    h.table.set_rules([("other", "tcp", frozenset({80}), None)])
    assert h.handlers[0].script() == [("data", 0, b"req"), ("eof", 0), ("eof", 1), ("close",)]
    h.feed(c.data(T0 + 11, 0, 3, b"more"))  # not a late segment of a closed connection: joined anew
    assert [(r.protocol, r.midstream, r.script()) for r in h.handlers[1:]] == [
        ("other", True, [("data", 0, b"more")])
    ]
    assert h.nonzero() == {"created": 2, "midstream": 1, "closed": 1}


def test_rules_reload_keeps_flows_it_does_not_change() -> None:
    c = Conn()
    h = Harness().feed(*c.handshake(T0), c.data(T0 + 10, 0, 0, b"req"))
    h.table.set_rules([("http", "tcp", frozenset({80, 8080}), None)])
    h.feed(c.data(T0 + 11, 0, 3, b"more"))
    assert h.only.script() == [("data", 0, b"reqmore")]


def test_closed_tuples_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from packetd.flow import table

    monkeypatch.setattr(table, "MAX_CLOSED", 4)  # two connections' worth
    h = Harness()
    for port in (1, 2, 3):  # three connections reset: the first one's tuples are forgotten first
        h.feed(
            seg(T0 + port, 0, 100, 0, SYN, client=client(port)),
            seg(T0 + port, 1, 0, 0, RST, client=client(port)),
        )
    assert h.nonzero() == {"created": 3, "closed": 3, "linger_overflows": 2}
    assert len(h.table._closed) == 4
    h.feed(seg(T0 + 10, 0, 101, 1, ACK, b"late", client=client(3)))  # remembered: swallowed
    h.feed(seg(T0 + 11, 0, 101, 1, ACK, b"late", client=client(1)))  # forgotten: joined mid-stream
    assert len(h.handlers) == 4
    assert h.stats("late_segments") == {"late_segments": 1}


def test_nothing_is_delivered_after_a_fin() -> None:
    c = Conn()
    h = Harness().feed(*c.handshake(T0), c.data(T0 + 10, 0, 0, b"req", flags=FIN | ACK))
    h.feed(c.data(T0 + 11, 0, 4, b"after the FIN"))  # bogus: the FIN took sequence number 3
    h.feed(c.data(T0 + 12, 0, 0, b"req", flags=FIN | ACK))  # a retransmission of the FIN segment
    h.feed(c.data(T0 + 13, 1, 0, b"resp", ack_off=4))
    assert h.only.script() == [("data", 0, b"req"), ("eof", 0), ("data", 1, b"resp")]
    assert h.nonzero() == {"created": 1, "duplicates": 2}


def test_syn_with_data() -> None:
    """TCP Fast Open: the SYN carries data, after the SYN's own sequence number."""
    h = Harness().feed(
        seg(T0, 0, 1000, 0, SYN, b"GET / HTTP/1.1\r\n\r\n"), seg(T0 + 1, 1, 5000, 1019, SYN | ACK)
    )
    h.feed(seg(T0 + 2, 1, 5001, 1019, ACK, b"HTTP/1.1 204 No Content\r\n\r\n"))
    assert h.only.script() == [
        ("data", 0, b"GET / HTTP/1.1\r\n\r\n"),
        ("data", 1, b"HTTP/1.1 204 No Content\r\n\r\n"),
    ]
    assert h.nonzero() == {"created": 1}
