"""HTTP/2 through the whole engine (L2-L4 → flows → hand-over → decoder → pairing): TCP segments built with
consistent sequence numbers, cut small, reordered, duplicated and lost. The records of a clean, in-order,
full-size-segment run of the same conversation are the reference; the bytes are this file's own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from packetd.capture.pcapwrite import TcpConversation, ethernet
from packetd.engine import Engine, EngineConfig, Rule
from packetd.pairing.roundtrip import Roundtrip
from tests.helpers.h2wire import PREFACE, Conn, data, settings

GRPC_REQ = [(":method", "POST"), (":scheme", "http"), (":path", "/pkg.Svc/Get"), (":authority", "s"), ("content-type", "application/grpc"), ("te", "trailers")]  # fmt: skip
GRPC_RESP = [(":status", "200"), ("content-type", "application/grpc")]
BIG = bytes(range(256)) * 400  # 102 400 bytes


def conversation() -> list[tuple[int, bytes]]:
    """(side, bytes) in the order the peers send them: an upgrade, then gRPC and HTTP/2 streams."""
    conn = Conn()
    up = (
        b"GET /start HTTP/1.1\r\nHost: s\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n"
    )
    sw = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
    out: list[tuple[int, bytes]] = [
        (0, up),
        (1, sw + settings() + conn.status(1, 200) + data(1, b"started", end=True)),
    ]
    out.append((0, PREFACE + settings()))
    for sid in (3, 5, 7):
        body = b"".join(b"\x00" + len(m).to_bytes(4, "big") + m for m in (b"k%d" % sid, b"x" * 3000))
        out.append(
            (0, conn.headers(True, sid, [*GRPC_REQ, ("x-pad", "p" * 200)]) + data(sid, body, end=True))
        )
    for sid in (5, 3, 7):
        msg = b"\x00" + (10).to_bytes(4, "big") + b"v" * 10
        trailers = [("grpc-status", "0" if sid != 7 else "5"), ("grpc-message", "gone" if sid == 7 else "")]
        out.append(
            (
                1,
                conn.headers(False, sid, GRPC_RESP)
                + data(sid, msg)
                + conn.headers(False, sid, trailers, end_stream=True),
            )
        )
    out.append((0, conn.get(9, "/big")))
    out.append(
        (
            1,
            conn.status(9, 200)
            + b"".join(data(9, BIG[i : i + 16384]) for i in range(0, len(BIG), 16384))
            + data(9, b"", end=True),
        )
    )
    return out


def packets(mss: int, server_first: bytes = b"") -> Iterator[tuple[int, bytes]]:
    """(order key, ethernet frame) of the whole connection, cut at `mss`."""
    tcp = TcpConversation(("10.0.0.1", 40001), ("10.0.0.2", 8080), mss=mss)
    yield from ((0, ethernet(p)) for p in tcp.handshake())
    for side, blob in conversation():
        for p in tcp.send(side, blob):
            yield side, ethernet(p)
    yield from ((0, ethernet(p)) for p in tcp.close())


def run(frames: list[bytes]) -> tuple[list[dict[str, Any]], Engine]:
    records: list[Roundtrip] = []
    engine = Engine(EngineConfig(rules=(Rule(protocol="http", ports=(8080,)),)), records.append)
    ts = 1_700_000_000_000_000_000
    for f in frames:
        ts += 10_000
        engine.frame(ts, 1, memoryview(f))
    engine.finish()
    out = []
    for r in records:
        j = r.to_json()
        for k in ("start_time", "end_time", "duration_ns"):
            j.pop(k)
        out.append(j)
    return out, engine


def reference() -> list[dict[str, Any]]:
    recs, engine = run([f for _, f in packets(1448)])
    assert engine.protocol_stats["http2"].resets == 0
    return recs


def test_the_reference_run_reports_every_stream() -> None:
    recs = reference()
    assert [(r["protocol"], r["operation"], r["status"], r["request"]["stream_id"]) for r in recs] == [
        ("http2", "GET", "200", 1),
        ("grpc", "pkg.Svc/Get", "OK", 5),
        ("grpc", "pkg.Svc/Get", "OK", 3),
        ("grpc", "pkg.Svc/Get", "NOT_FOUND", 7),
        ("http2", "GET", "200", 9),
    ]
    assert recs[0]["request"]["path"] == "/start" and recs[0]["response"]["body_bytes"] == 7
    assert [r["request"]["messages"] for r in recs[1:4]] == [2, 2, 2]
    assert [r["request"]["message_bytes"] for r in recs[1:4]] == [3002, 3002, 3002]
    assert recs[4]["response"]["body_bytes"] == len(BIG)
    assert all(r["flags"] == [] and r["kind"] == "roundtrip" for r in recs)


def test_tiny_segments_give_the_same_records() -> None:
    """Every header block split across many segments (7-byte MSS) is decoded once, in order."""
    recs, engine = run([f for _, f in packets(7)])
    assert recs == reference()
    assert engine.protocol_stats["http2"].resets == 0 and engine.protocol_stats["http"].resets == 0


def test_reordered_and_duplicated_segments_give_the_same_records() -> None:
    """Neighbouring segments of one direction swapped, every fifth sent twice. (Swapping across directions
    would put a 101 before the end of its own request: causally impossible in a capture of one link.)"""
    frames = list(packets(100))
    shuffled: list[bytes] = []
    i = 0
    while i < len(frames):
        if i + 1 < len(frames) and frames[i][0] == frames[i + 1][0]:
            shuffled += [frames[i + 1][1], frames[i][1]]
            if i % 5 == 0:
                shuffled.append(frames[i][1])
            i += 2
        else:
            shuffled.append(frames[i][1])
            i += 1
    recs, engine = run(shuffled)
    assert recs == reference()
    assert engine.flows.stats.out_of_order > 100 and engine.flows.stats.duplicates > 10


def test_a_lost_segment_inside_a_data_frame_is_absorbed_and_flagged() -> None:
    frames = list(packets(1448))
    server = [i for i, (side, _) in enumerate(frames) if side == 1]
    lost = server[-30]  # inside the 100 KB response of stream 9
    recs, _ = run([f for i, (_, f) in enumerate(frames) if i != lost])
    ref = reference()
    assert [r["flags"] for r in recs] == [[], [], [], [], ["gap"]]
    assert recs[:4] == ref[:4]
    assert recs[4]["response"]["body_bytes"] == len(BIG)  # the gap lay inside a DATA frame of known length
