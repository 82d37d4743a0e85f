"""Live gRPC: a grpcio server and a grpcio client (both C-core HTTP/2), captured on loopback through the
AF_PACKET engine while tcpdump records the same traffic.

The truth is the client's own log: each call's method, the status code it received, and the number of
messages it sent and received. packetd must report every call once, as a `grpc` record with that service,
method, status and those message counts, and nothing else.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from tests.helpers.live import (
    ROOT,
    capture,
    free_port,
    live_marks,
    replay,
    validate_against_schema,
    wait_port,
    without_times,
)

grpc = pytest.importorskip("grpc")

pytestmark = live_marks()

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
CONCURRENT = 100

Entry = tuple[str, str, int, int]  # operation, status name, messages sent, messages received


class Log:
    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.details: dict[str, str] = {}

    def add(self, method: str, status: Any, sent: int, received: int) -> None:
        self.entries.append((f"demo.Echo/{method}", status.name, sent, received))


def workload(port: int, log: Log) -> None:
    ok = grpc.StatusCode.OK
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        unary = ch.unary_unary("/demo.Echo/Unary")
        unary(b"hello", timeout=30)
        log.add("Unary", ok, 1, 1)
        try:
            unary(b"missing", timeout=30)
        except grpc.RpcError as e:
            log.add("Unary", e.code(), 1, 0)
            log.details["NOT_FOUND"] = e.details()
        try:
            ch.unary_unary("/demo.Echo/Slow")(b"zzz", timeout=0.3)
        except grpc.RpcError as e:
            log.add("Slow", e.code(), 1, 0)
        got = list(ch.unary_stream("/demo.Echo/Count")(b"5", timeout=30))
        log.add("Count", ok, 1, len(got))
        received = 0
        try:
            for _ in ch.unary_stream("/demo.Echo/Count")(b"-1", timeout=30):
                received += 1
        except grpc.RpcError as e:
            log.add("Count", e.code(), 1, received)
        ch.stream_unary("/demo.Echo/Sum")(iter([b"a", b"b", b"c", b"d"]), timeout=30)
        log.add("Sum", ok, 4, 1)
        replies = list(ch.stream_stream("/demo.Echo/Chat")(iter([b"x", b"y", b"z"]), timeout=30))
        log.add("Chat", ok, 3, len(replies))
        unary(b"traced", timeout=30, metadata=(("traceparent", TRACEPARENT), ("tracestate", "vendor=1")))
        log.add("Unary", ok, 1, 1)
        # 100 calls in flight at once on this one channel (one connection, 100 streams)
        futures = [unary.future(b"c%03d" % i, timeout=60) for i in range(CONCURRENT)]
        for f in futures:
            f.result()
            log.add("Unary", ok, 1, 1)


@pytest.fixture(scope="module")
def traffic() -> dict[str, Any]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "tests", "helpers", "grpc_server.py"), str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
    )  # fmt: skip
    log = Log()
    try:
        wait_port(port, timeout=30)
        with capture(
            ["--ifaces", "^lo$", "--proto", f"grpc;{port}", "--block-num", "128"],
            tcpdump_filter=f"tcp port {port}",
        ) as cap:
            workload(port, log)
            records = cap.stop()
            stderr = cap.stderr.decode(errors="replace")
            pcap = cap.pcap_path
    finally:
        server.kill()
        server.wait()
    return {"log": log, "records": records, "stderr": stderr, "pcap": pcap, "port": port}


def _entry(r: dict[str, Any]) -> Entry:
    return (r["operation"], r["status"], r["request"]["messages"], r["response"]["messages"])


def test_the_workload_did_what_it_meant_to(traffic: dict[str, Any]) -> None:
    log: Log = traffic["log"]
    assert len(log.entries) == 8 + CONCURRENT
    assert {s for _, s, _, _ in log.entries} == {"OK", "NOT_FOUND", "DEADLINE_EXCEEDED", "INTERNAL"}


def test_every_call_is_reported_once_with_service_method_status_and_counts(traffic: dict[str, Any]) -> None:
    log: Log = traffic["log"]
    records = traffic["records"]
    assert {r["protocol"] for r in records} == {"grpc"}
    # the deadline's outcome on the wire is a race between the server's deadline and the client's cancel
    slow = [r for r in records if r["operation"] == "demo.Echo/Slow"]
    assert len(slow) == 1
    rest = [r for r in records if r["operation"] != "demo.Echo/Slow"]
    assert {r["kind"] for r in rest} == {"roundtrip"}
    assert sorted(_entry(r) for r in rest) == sorted(e for e in log.entries if e[0] != "demo.Echo/Slow")
    assert all(r["flags"] == [] for r in records), [r["flags"] for r in records if r["flags"]]


def test_deadline_exceeded(traffic: dict[str, Any]) -> None:
    (slow,) = [r for r in traffic["records"] if r["operation"] == "demo.Echo/Slow"]
    # the client sent grpc-timeout for its 0.3 s deadline (C-core rounds the time left up: "301000u")
    assert 200_000_000 < slow["request"]["timeout_ns"] <= 310_000_000
    if slow["kind"] == "roundtrip":  # the server's deadline fired first: its status in a Trailers-Only block
        assert slow["status"] == "DEADLINE_EXCEEDED" and slow["error"] is True
        assert slow["response"]["trailers_only"] is True
    else:  # the client's RST_STREAM(CANCEL) came first: unanswered, with the code
        assert slow["kind"] == "unanswered"
        assert (slow["request"]["reset"], slow["request"]["reset_by"]) == ("CANCEL", "client")


def test_error_statuses_and_messages(traffic: dict[str, Any]) -> None:
    recs = traffic["records"]
    (nf,) = [r for r in recs if r["status"] == "NOT_FOUND"]
    assert nf["response"]["grpc_message"] == traffic["log"].details["NOT_FOUND"]  # percent-decoded UTF-8
    assert nf["response"]["trailers_only"] is True and nf["response"]["grpc_status"] == 5
    assert nf["error"] is True
    (internal,) = [r for r in recs if r["status"] == "INTERNAL"]
    assert internal["response"]["trailers_only"] is False and internal["response"]["messages"] == 2
    assert internal["response"]["grpc_message"] == "failed after two items"


def test_streaming_calls_are_one_record_each(traffic: dict[str, Any]) -> None:
    by_op: dict[str, list[dict[str, Any]]] = {}
    for r in traffic["records"]:
        by_op.setdefault(r["operation"], []).append(r)
    assert len(by_op["demo.Echo/Sum"]) == 1 and len(by_op["demo.Echo/Chat"]) == 1
    assert len(by_op["demo.Echo/Count"]) == 2


def test_concurrent_calls_share_one_connection_and_distinct_streams(traffic: dict[str, Any]) -> None:
    recs = traffic["records"]
    assert len({r["client"]["port"] for r in recs}) == 1  # one channel, one connection
    ids = [r["request"]["stream_id"] for r in recs]
    assert len(set(ids)) == len(ids) and all(i % 2 == 1 for i in ids)
    sizes = [r["request"]["message_bytes"] for r in recs if r["operation"] == "demo.Echo/Unary"]
    assert sorted(sizes) == sorted([4] * CONCURRENT + [5, 7, 6])  # c000..c099, hello, missing, traced


def test_traceparent_metadata(traffic: dict[str, Any]) -> None:
    traced = [r for r in traffic["records"] if r["trace"] is not None]
    assert len(traced) == 1
    assert traced[0]["trace"] == {
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "parent_span_id": "00f067aa0ba902b7",
        "tracestate": "vendor=1",
    }
    assert traced[0]["request"]["metadata"]["traceparent"] == [TRACEPARENT]


def test_summary_reports_no_drops_and_no_resets(traffic: dict[str, Any]) -> None:
    err = traffic["stderr"]
    assert " 0 dropped by the kernel" in err
    assert " 0 decode resets" in err and " 0 gaps" in err


def test_tcpdump_replay_gives_the_same_records(traffic: dict[str, Any]) -> None:
    replayed, _ = replay(traffic["pcap"], ["--proto", f"grpc;{traffic['port']}"])

    # The deadline's two packets (the server's DEADLINE_EXCEEDED, the client's RST_STREAM) leave two
    # processes within microseconds, on two cores: two capture sockets may receive them in either order,
    # so the Slow call may end differently in the two captures (test_deadline_exceeded checks both ends).
    # Everything else is the same, record for record, in the same order.
    def others(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in without_times(recs) if r["operation"] != "demo.Echo/Slow"]

    assert others(replayed) == others(traffic["records"])
    slow = [r for r in replayed if r["operation"] == "demo.Echo/Slow"]
    assert len(slow) == 1 and slow[0]["kind"] in ("roundtrip", "unanswered")


def test_live_records_validate_against_the_schema(traffic: dict[str, Any]) -> None:
    validate_against_schema(traffic["records"])
