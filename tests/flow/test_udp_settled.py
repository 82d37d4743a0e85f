"""UDP conversations end when every request was answered, or after the UDP idle timeout.

Frames are written by hand (pcapwrite) around DNS messages built by dnspython; the truth is what was
built: how many queries, on how many client ports, which were answered, and at what packet time.
"""

from __future__ import annotations

import dns.message
import dns.rrset

from packetd.capture.pcapwrite import ethernet, ipv4_udp
from packetd.engine import Engine, EngineConfig, Rule
from packetd.flow.table import FlowConfig
from packetd.pairing.roundtrip import Roundtrip
from packetd.protocols.base import Kind

S = 1_000_000_000
CLIENT, SERVER = "10.0.0.1", "10.0.0.53"


def query(qid: int, name: str) -> bytes:
    q = dns.message.make_query(name, "A")
    q.id = qid
    return q.to_wire()


def answer(wire: bytes) -> bytes:
    q = dns.message.from_wire(wire)
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "A", "192.0.2.7"))
    return r.to_wire()


class Run:
    def __init__(self, **flow: int) -> None:
        self.records: list[Roundtrip] = []
        cfg = EngineConfig(rules=(Rule(protocol="dns", ports=(53,)),), flow=FlowConfig(**flow))
        self.engine = Engine(cfg, self.records.append)

    def send(self, ts: int, sport: int, payload: bytes, to_server: bool = True) -> None:
        if to_server:
            pkt = ipv4_udp(CLIENT, SERVER, sport, 53, payload)
        else:
            pkt = ipv4_udp(SERVER, CLIENT, 53, sport, payload)
        self.engine.frame(ts, 1, memoryview(ethernet(pkt)))


def test_each_answered_query_closes_its_flow() -> None:
    run = Run()
    n = 500
    for i in range(n):
        q = query(i, f"h{i}.example.test.")
        run.send(i * 1000, 20000 + i, q)
        run.send(i * 1000 + 500, 20000 + i, answer(q), to_server=False)
    st = run.engine.flows.stats
    assert (st.created, st.closed, st.active, st.expired, st.evicted) == (n, n, 0, 0, 0)
    assert [r.kind for r in run.records] == [Kind.ROUNDTRIP] * n
    assert [r.request.id for r in run.records] == list(range(n))  # type: ignore[union-attr]


def test_flow_stays_while_a_query_is_pending_then_closes() -> None:
    run = Run()
    q1, q2 = query(1, "a.example.test."), query(2, "b.example.test.")
    run.send(0, 30000, q1)
    run.send(10, 30000, q2)
    run.send(20, 30000, answer(q1), to_server=False)
    st = run.engine.flows.stats
    assert (st.created, st.active) == (1, 1)  # q2 still waits on the same flow
    run.send(30, 30000, answer(q2), to_server=False)
    assert (st.created, st.closed, st.active) == (1, 1, 0)
    assert sorted(r.request.id for r in run.records) == [1, 2]  # type: ignore[union-attr]
    # the socket asks again: a new flow, paired as before
    q3 = query(3, "c.example.test.")
    run.send(40, 30000, q3)
    run.send(50, 30000, answer(q3), to_server=False)
    assert (st.created, st.closed, st.active) == (2, 2, 0)
    assert [r.kind for r in run.records] == [Kind.ROUNDTRIP] * 3


def test_unanswered_query_expires_after_the_udp_timeout_not_the_tcp_one() -> None:
    run = Run(idle_timeout_ns=300 * S, udp_idle_timeout_ns=30 * S)
    run.send(0, 40000, query(7, "lost.example.test."))
    q = query(8, "other.example.test.")
    run.send(20 * S, 40001, q)  # packet time moves on; 20 s is not enough
    run.send(20 * S + 1, 40001, answer(q), to_server=False)
    assert run.engine.flows.stats.expired == 0
    run.send(36 * S, 40002, query(9, "late.example.test."))  # past 30 s idle and a sweep
    st = run.engine.flows.stats
    assert st.expired == 1
    unanswered = [r for r in run.records if r.kind == Kind.UNANSWERED]
    assert [r.request.id for r in unanswered] == [7]  # type: ignore[union-attr]


def test_a_duplicate_answer_after_the_close_is_an_orphan_of_a_new_flow_that_goes_too() -> None:
    run = Run()
    q = query(5, "dup.example.test.")
    run.send(0, 50000, q)
    run.send(10, 50000, answer(q), to_server=False)
    run.send(20, 50000, answer(q), to_server=False)
    st = run.engine.flows.stats
    assert (st.created, st.closed, st.active) == (2, 2, 0)  # nothing pending in the new one either
    assert [r.kind for r in run.records] == [Kind.ROUNDTRIP]
    assert run.engine.stats_for("dns").pairing.orphans == 1


def test_endpoint_texts_are_right_past_the_address_memo_bound() -> None:
    # a client address per query, more of them than the address → text memo holds: every record still
    # names its endpoints as written (the truth: the addresses the frames were built from), and the memo's
    # resets are counted
    from packetd.flow.table import MAX_ADDR_TEXTS

    records: list[Roundtrip] = []
    engine = Engine(EngineConfig(rules=(Rule(protocol="dns", ports=(53,)),)), records.append)
    n = MAX_ADDR_TEXTS + 10
    clients = [f"10.{1 + i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(n)]
    for i, client in enumerate(clients):
        q = query(i % 65536, "a.example.test.")
        engine.frame(i * 1000, 1, memoryview(ethernet(ipv4_udp(client, SERVER, 30000, 53, q))))
        engine.frame(i * 1000 + 500, 1, memoryview(ethernet(ipv4_udp(SERVER, client, 53, 30000, answer(q)))))
    assert [(r.client, r.server) for r in records] == [((c, 30000), (SERVER, 53)) for c in clients]
    assert engine.flows.stats.addr_cache_resets == 1


def test_the_lower_port_serves_when_both_ports_match_a_rule() -> None:
    # both ports are DNS ports by rule (53 and 5353): the lower one is the server's, whichever sent first
    records: list[Roundtrip] = []
    cfg = EngineConfig(rules=(Rule(protocol="dns", ports=(53, 5353)),))
    engine = Engine(cfg, records.append)
    q = query(1, "b.example.test.")
    engine.frame(0, 1, memoryview(ethernet(ipv4_udp(CLIENT, SERVER, 5353, 53, q))))
    engine.frame(500, 1, memoryview(ethernet(ipv4_udp(SERVER, CLIENT, 53, 5353, answer(q)))))
    assert [(r.kind, r.client, r.server) for r in records] == [(Kind.ROUNDTRIP, (CLIENT, 5353), (SERVER, 53))]
