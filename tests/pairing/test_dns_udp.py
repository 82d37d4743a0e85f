"""DnsUdpSession (pairing/dns_udp.py) against the truth it stands in for: the plain Session on the same input.

Two engines take the same hand-built frames (pcapwrite around DNS messages built by dnspython, and bytes
that are not DNS): one as it runs, the other with every connection given a plain `Session` (the path
before DnsUdpSession). Records (their JSON lines, in order), the protocol counters and the flow counters
(as values: the ordinal too) must be equal after every frame, and after the end of the capture. The inputs are the edge cases the
stand-in hands over on (retransmission, second query, answer without query, mismatched or duplicate
answers, role swap, truncation, malformed datagrams up to the decoder's give-up, expiry, eviction, end of
capture), and seeded random mixes of them over a few client ports.
"""

from __future__ import annotations

import random
from typing import Any

import dns.flags
import dns.message
import dns.rrset
import pytest

from packetd.buildinfo import slot_names
from packetd.capture.pcapwrite import ethernet, ipv4_udp
from packetd.engine import Engine, EngineConfig, Rule
from packetd.flow.table import FlowConfig
from packetd.net.packet import PROTO_TCP
from packetd.pairing.dns_udp import DnsUdpSession
from packetd.pairing.roundtrip import Roundtrip, dumps
from packetd.pairing.session import Session

S = 1_000_000_000
CLIENT, SERVER = "10.0.0.1", "10.0.0.53"


def query(qid: int, name: str, rdtype: str = "A") -> bytes:
    q = dns.message.make_query(name, rdtype)
    q.id = qid
    return q.to_wire()


def answer(wire: bytes, truncated: bool = False, qid: int | None = None) -> bytes:
    q = dns.message.from_wire(wire)
    r = dns.message.make_response(q)
    r.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "A", "192.0.2.7"))
    if truncated:
        r.flags |= dns.flags.TC
    if qid is not None:
        r.id = qid
    return r.to_wire()


GARBAGE = b"\x00\x01\x02"  # shorter than a header: "short message"
BAD_NAME = bytes.fromhex("abcd0100000100000000000005") + b"abc"  # a label running past the end


class Pair:
    """The same frames into the engine as it is and into one whose sessions are all plain Sessions."""

    def __init__(self, **flow: int) -> None:
        cfg = EngineConfig(rules=(Rule(protocol="dns", ports=(53,)),), flow=FlowConfig(**flow))
        self.new: list[Roundtrip] = []
        self.old: list[Roundtrip] = []
        self.fast = Engine(cfg, self.new.append)
        self.ref = Engine(cfg, self.old.append)
        ref = self.ref

        def plain(protocol: str, client: Any, server: Any, midstream: bool, transport: int) -> Session:
            return Session(
                ref.registry[protocol],
                ref.registry,
                client,
                server,
                ref._sink,
                ref.stats_for,
                ref.options_for,
                midstream,
                "tcp" if transport == PROTO_TCP else "udp",
            )

        ref.flows._new_handler = plain  # type: ignore[assignment]

    def send(self, ts: int, sport: int, payload: bytes, to_server: bool = True, dport: int = 53) -> None:
        if to_server:
            pkt = ipv4_udp(CLIENT, SERVER, sport, dport, payload)
        else:
            pkt = ipv4_udp(SERVER, CLIENT, dport, sport, payload)
        for engine in (self.fast, self.ref):
            engine.frame(ts, 1, memoryview(ethernet(pkt)))
        self.check()

    def finish(self) -> None:
        self.fast.finish()
        self.ref.finish()
        self.check()

    def check(self) -> None:
        assert [dumps(r) for r in self.new] == [dumps(r) for r in self.old]
        assert self.new == self.old  # the ordinal (`seq`, span ids) too, which the JSON does not carry
        assert _stats(self.fast) == _stats(self.ref)


def _stats(engine: Engine) -> dict[str, Any]:
    out: dict[str, Any] = {
        "flows": {k: getattr(engine.flows.stats, k) for k in slot_names(type(engine.flows.stats))},
    }
    for name, st in engine.protocol_stats.items():
        out[name] = {
            "messages": st.messages,
            "records": dict(st.records),
            "decode_errors": dict(st.decode_errors),
            "gaps": st.gaps,
            "sync_lost": st.sync_lost,
            "gave_up": st.gave_up,
            "counters": dict(st.counters),
            "pairing": {k: getattr(st.pairing, k) for k in slot_names(type(st.pairing))},
        }
    return out


def test_the_fast_path_is_the_one_taken() -> None:
    pair = Pair()
    q = query(1, "a.example.test.")
    pair.send(0, 20000, q)
    handlers = [f.handler for f in pair.fast.flows.flows()]
    assert len(handlers) == 1 and isinstance(handlers[0], DnsUdpSession)
    pair.send(10, 20000, answer(q), to_server=False)
    assert len(pair.new) == 1 and pair.new[0].response is not None
    assert not pair.fast.flows.flows()  # answered: settled, the flow went


def test_one_query_per_port_answered() -> None:
    pair = Pair()
    for i in range(50):
        q = query(i, f"h{i}.example.test.", "AAAA" if i % 3 else "A")
        pair.send(i * 1000, 20000 + i, q)
        pair.send(i * 1000 + 500, 20000 + i, answer(q, truncated=i % 7 == 0), to_server=False)
    pair.finish()
    assert len(pair.new) == 50


@pytest.mark.parametrize(
    "script",
    [
        # (time, client port, what, to_server); what: ("q", id, name) | ("a", id, name[, tc, answer id]) | bytes
        [(0, 1, ("q", 1, "a")), (10, 1, ("q", 1, "a")), (20, 1, ("a", 1, "a"))],  # retransmission
        [(0, 1, ("q", 1, "a")), (10, 1, ("q", 2, "b")), (20, 1, ("a", 2, "b")), (30, 1, ("a", 1, "a"))],
        [(0, 1, ("a", 1, "a"), False)],  # an answer without its query
        [(0, 1, ("q", 1, "a")), (10, 1, ("a", 1, "a", False, 9))],  # wrong id: orphan, query unanswered
        [(0, 1, ("q", 1, "a")), (10, 1, ("a", 1, "a")), (20, 1, ("a", 1, "a"))],  # the answer twice
        [(0, 1, ("q", 1, "a"), False)],  # a query from the server side: roles swapped
        [(0, 1, ("q", 1, "a")), (10, 1, ("q", 5, "x"), False)],  # then one from the server side
        [(0, 1, ("a", 1, "a"), True)],  # an answer from the client side
        [(0, 1, ("q", 1, "a")), (10, 1, ("a", 1, "a", True))],  # truncated
        [(0, 1, GARBAGE)],
        [(0, 1, BAD_NAME), (10, 1, ("q", 1, "a")), (20, 1, ("a", 1, "a"))],
        [(0, 1, ("q", 1, "a")), (10, 1, GARBAGE, False), (20, 1, ("a", 1, "a"))],
        [
            (0, 1, ("q", 1, "a")),
            *[(10 + i, 1, GARBAGE, i % 2 == 0) for i in range(9)],
            (40, 1, ("a", 1, "a")),
        ],
        [(0, 1, ("q", 1, "a")), (10, 1, b"", False), (20, 1, ("a", 1, "a"))],  # an empty datagram
        [(0, 1, ("q", 1, "a")), (60 * S, 2, ("q", 2, "b"))],  # the first expires (udp idle timeout)
        [(0, 1, ("q", 1, "a")), (60 * S, 1, ("a", 1, "a"), False)],  # its answer after expiry: orphan
    ],
)
def test_edge_cases(script: list[tuple[Any, ...]]) -> None:
    pair = Pair()
    for step in script:
        ts, port, what = step[:3]
        to_server = step[3] if len(step) > 3 else not (isinstance(what, tuple) and what[0] == "a")
        pair.send(ts, 30000 + port, _wire(what), to_server=to_server)
    pair.finish()


def _wire(what: Any) -> bytes:
    if isinstance(what, bytes):
        return what
    kind, qid, name, *rest = what
    q = query(qid, f"{name}.example.test.")
    if kind == "q":
        return q
    tc = bool(rest[0]) if rest else False
    return answer(q, truncated=tc, qid=rest[1] if len(rest) > 1 else None)


def test_both_ports_53() -> None:
    pair = Pair()
    q = query(7, "a.example.test.")
    pair.send(0, 53, q)
    pair.send(10, 53, answer(q), to_server=False)
    pair.send(20, 53, answer(q), to_server=True)  # the "server" (lower port, the same) asks nothing
    pair.finish()


def test_eviction_and_end_of_capture_make_the_same_unanswered_records() -> None:
    pair = Pair(max_flows=8)
    for i in range(40):
        pair.send(i, 40000 + i, query(i, f"u{i}.example.test."))
    pair.finish()
    assert sum(r.kind == "unanswered" for r in pair.new) == 40


@pytest.mark.parametrize("seed", range(12))
def test_random_mixes(seed: int) -> None:
    rng = random.Random(seed)
    pair = Pair(max_flows=rng.choice([4, 1024]))
    ts = 0
    names = ["a", "b", "c"]
    for _ in range(300):
        ts += rng.choice([1, 1000, 10 * S])
        port = 30000 + rng.randrange(6)
        r = rng.random()
        if r < 0.08:
            what: Any = rng.choice([GARBAGE, BAD_NAME, b""])
            to_server = rng.random() < 0.5
        else:
            kind = "q" if r < 0.55 else "a"
            what = (kind, rng.randrange(3), rng.choice(names), rng.random() < 0.1)
            if rng.random() < 0.05:
                what = (*what, rng.randrange(3))
            to_server = (kind == "q") != (rng.random() < 0.05)
        pair.send(ts, port, _wire(what), to_server=to_server)
    pair.finish()
