"""The hot path's bounded memos on /metrics: `packetd_memo_resets_total{memo}` counts how often one was
emptied because it was full. Frames are written by hand (pcapwrite) and run through a real Engine; the
agent's snapshot of it (worker.stats_snapshot) goes through the agent's collector (SelfMetrics) into the
Prometheus text format. The truth is counted from what was built: distinct addresses and header lines
against the memos' bounds."""

from __future__ import annotations

from typing import Any

import dns.message
from prometheus_client import CollectorRegistry, generate_latest

from packetd.agent.selfmetrics import SelfMetrics
from packetd.agent.worker import stats_snapshot
from packetd.capture.pcapwrite import ethernet, ipv4_tcp, ipv4_udp
from packetd.engine import Engine, EngineConfig, Rule
from packetd.flow.table import MAX_ADDR_TEXTS
from packetd.pairing.roundtrip import Roundtrip
from packetd.protocols.http1 import headers
from tests.agent.test_e2e import counter_sum

SERVER = "10.0.0.53"
SYN, ACK, PSH = 0x02, 0x10, 0x08


class _Source:
    def stats(self) -> dict[str, Any]:
        return {}


def _scrape(engine: Engine) -> str:
    snapshot = stats_snapshot(engine, _Source(), {})
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SelfMetrics(lambda: {"workers": snapshot}, "test"))
    return generate_latest(registry).decode()


def test_address_memo_resets_are_exported() -> None:
    # one client address per DNS query, MAX_ADDR_TEXTS + 10 of them (and the server's): the memo of address
    # texts fills once and is emptied once
    records: list[Roundtrip] = []
    engine = Engine(EngineConfig(rules=(Rule(protocol="dns", ports=(53,)),)), records.append)
    n = MAX_ADDR_TEXTS + 10
    for i in range(n):
        client = f"10.{1 + i // 65536}.{i // 256 % 256}.{i % 256}"
        q = dns.message.make_query("a.example.test.", "A")
        q.id = i % 65536
        engine.frame(i * 1000, 1, memoryview(ethernet(ipv4_udp(client, SERVER, 30000, 53, q.to_wire()))))
    text = _scrape(engine)
    assert counter_sum(text, "packetd_memo_resets_total", memo="addr_texts") == 1
    assert counter_sum(text, "packetd_memo_resets_total", memo="http1_header_lines") == (
        headers.line_cache_resets
    )


def _http_connection(cport: int) -> tuple[Engine, list[Roundtrip]]:
    """An Engine with HTTP on port 80 and one handshaken connection from 10.0.0.1:`cport` (ISNs 1000/5000)."""
    records: list[Roundtrip] = []
    engine = Engine(EngineConfig(rules=(Rule(protocol="http", ports=(80,)),)), records.append)
    client = "10.0.0.1"
    engine.frame(0, 1, memoryview(ethernet(ipv4_tcp(client, SERVER, cport, 80, 1000, 0, SYN))))
    engine.frame(1, 1, memoryview(ethernet(ipv4_tcp(SERVER, client, 80, cport, 5000, 1001, SYN | ACK))))
    return engine, records


def test_http1_header_line_memo_resets_are_exported() -> None:
    # requests of one distinct header line each, 2 * MAX_CACHED_LINES + 1 of them, into an emptied memo:
    # it is full after request 2 048 and after request 4 096, and emptied by the next request each time
    headers._LINES.clear()
    headers._DECISIONS.clear()
    before = headers.line_cache_resets
    client, cport = "10.0.0.1", 40000
    engine, records = _http_connection(cport)
    seq, sseq = 1001, 5001
    n = 2 * headers.MAX_CACHED_LINES + 1
    resp = b"HTTP/1.1 204 No Content\r\n\r\n"  # no header line: only the requests' lines are memoised
    for i in range(n):
        req = b"GET /r HTTP/1.1\r\nX-Request-Number: %d\r\n\r\n" % i
        engine.frame(
            10 + 2 * i,
            1,
            memoryview(ethernet(ipv4_tcp(client, SERVER, cport, 80, seq, sseq, PSH | ACK, req))),
        )
        seq += len(req)
        engine.frame(
            11 + 2 * i,
            1,
            memoryview(ethernet(ipv4_tcp(SERVER, client, 80, cport, sseq, seq, PSH | ACK, resp))),
        )
        sseq += len(resp)
    assert len(records) == n
    for i, r in enumerate(records):  # header fields are parsed when the record is written, as outputs do
        assert r.to_json()["request"]["headers"]["x-request-number"] == [str(i)]
    assert headers.line_cache_resets - before == 2
    text = _scrape(engine)
    assert counter_sum(text, "packetd_memo_resets_total", memo="http1_header_lines") == (
        headers.line_cache_resets
    )
    assert counter_sum(text, "packetd_memo_resets_total", memo="addr_texts") == 0


def test_http1_header_name_decisions_resets_are_exported() -> None:
    # one request whose header block holds MAX_DECISION_NAMES + 1 distinct names into emptied tables: the
    # name table of the redact set is full at the last name and emptied for it, once
    headers._LINES.clear()
    headers._DECISIONS.clear()
    before = headers.decision_resets
    client, cport = "10.0.0.1", 40001
    engine, records = _http_connection(cport)
    n = headers.MAX_DECISION_NAMES + 1
    req = b"GET /r HTTP/1.1\r\n" + b"".join(b"X-N%d: v\r\n" % i for i in range(n)) + b"\r\n"
    resp = b"HTTP/1.1 204 No Content\r\n\r\n"
    seq, sseq, ts = 1001, 5001, 10
    for at in range(0, len(req), 1400):  # in segments of an Ethernet MTU
        chunk = req[at : at + 1400]
        engine.frame(ts, 1, memoryview(ethernet(ipv4_tcp(client, SERVER, cport, 80, seq, sseq, ACK, chunk))))
        seq += len(chunk)
        ts += 1
    engine.frame(ts, 1, memoryview(ethernet(ipv4_tcp(SERVER, client, 80, cport, sseq, seq, PSH | ACK, resp))))
    assert len(records) == 1
    fields = records[0].to_json()["request"]["headers"]  # parsed when written, as outputs do
    assert len(fields) == n and fields[f"x-n{n - 1}"] == ["v"]
    assert headers.decision_resets - before == 1
    text = _scrape(engine)
    assert (
        counter_sum(text, "packetd_memo_resets_total", memo="http1_header_names") == headers.decision_resets
    )
