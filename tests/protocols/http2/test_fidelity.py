"""HTTP/2 on real-world traffic (issue 9 item 6): a response the server had sent when the client's
RST_STREAM reached it is kept, however the capture orders the two crossing on the wire."""

from __future__ import annotations

from packetd.protocols.base import Kind, NoAnswer
from packetd.protocols.http2.decoder import MAX_HELD_RESETS, RESET_GRACE_NS, Http2Decoder
from packetd.protocols.http2.messages import Http2Request, Http2Response
from packetd.protocols.registry import REGISTRY
from tests.helpers.decoding import C2S, S2C, open_session
from tests.helpers.h2wire import PING, PREFACE, RST_STREAM, Conn, data, frame, settings

CANCEL = (8).to_bytes(4, "big")


def opening() -> tuple[bytes, bytes]:
    return PREFACE + settings(header_table_size=4096), settings(max_concurrent_streams=100)


def reset_before_any_answer(conn: Conn, path: str) -> tuple[Http2Decoder, list]:
    """A decoder that saw GET `path` on stream 1 and the client's RST_STREAM for it, nothing from the server
    on that stream yet."""
    oc, os_ = opening()
    d = Http2Decoder()
    out = list(d.receive(C2S, memoryview(oc + conn.get(1, path)), 1))
    out += d.receive(S2C, memoryview(os_), 2)
    out += d.receive(C2S, memoryview(frame(RST_STREAM, 0, 1, CANCEL)), 3)
    return d, out


def test_crossing_response_is_kept_through_the_session_with_reset_by_client() -> None:
    s, records, stats = open_session(REGISTRY["http2"], REGISTRY, ("10.0.0.1", 40000), ("10.0.0.2", 8080))
    conn = Conn()
    oc, os_ = opening()
    s.data(0, memoryview(oc + conn.get(1, "/report")), 1)
    s.data(1, memoryview(os_), 2)
    s.data(0, memoryview(frame(RST_STREAM, 0, 1, CANCEL)), 3)
    s.data(1, memoryview(conn.status(1, 200) + data(1, b"r" * 40, end=True)), 4)
    (rt,) = records
    j = rt.to_json()
    assert (j["kind"], j["operation"], j["status"]) == (Kind.ROUNDTRIP, "GET", "200")
    assert (j["request"]["reset"], j["request"]["reset_by"]) == ("CANCEL", "client")
    assert (j["response"]["reset"], j["response"]["reset_by"], j["response"]["body_bytes"]) == (
        "CANCEL",
        "client",
        40,
    )
    assert stats["http2"].pairing.orphans == 0 and stats["http2"].pairing.unanswered == 0


def test_a_response_cut_short_by_the_reset_is_kept_when_the_wait_ends() -> None:
    # the server sent HEADERS and part of the body, then read the RST and stopped: no END_STREAM comes
    conn = Conn()
    d, out = reset_before_any_answer(conn, "/big")
    out += d.receive(S2C, memoryview(conn.status(1, 200) + data(1, b"x" * 10)), 4)
    assert [m for m in out if isinstance(m, Http2Request | Http2Response)] == []  # still waiting
    out += d.receive(S2C, memoryview(frame(PING, 0, 0, b"\0" * 8)), 3 + RESET_GRACE_NS)
    req, resp = out
    assert isinstance(req, Http2Request) and isinstance(resp, Http2Response)
    assert (resp.status_code, resp.body_bytes, resp.reset_by) == (200, 10, "client")


def test_no_response_within_the_grace_time_is_unanswered() -> None:
    conn = Conn()
    d, out = reset_before_any_answer(conn, "/x")
    out += d.receive(C2S, memoryview(frame(PING, 0, 0, b"\0" * 8)), 2 + RESET_GRACE_NS)  # not yet
    assert out == []
    out += d.receive(C2S, memoryview(frame(PING, 0, 0, b"\0" * 8)), 3 + RESET_GRACE_NS)
    assert [type(m).__name__ for m in out] == ["Http2Request", "NoAnswer"]
    # a response arriving after the wait is an orphan, never paired late
    out = list(d.receive(S2C, memoryview(conn.status(1, 200, end=True)), 4 + RESET_GRACE_NS))
    assert [type(m).__name__ for m in out] == ["Http2Response"]


def test_held_resets_are_bounded() -> None:
    conn = Conn()
    oc, os_ = opening()
    d = Http2Decoder()
    out = list(d.receive(C2S, memoryview(oc), 1))
    out += d.receive(S2C, memoryview(os_), 2)
    n = MAX_HELD_RESETS + 5
    for i in range(n):
        sid = 1 + 2 * i
        out += d.receive(C2S, memoryview(conn.get(sid, "/c") + frame(RST_STREAM, 0, sid, CANCEL)), 10 + i)
    assert d.held_resets_evicted == 5
    assert [m.key for m in out if isinstance(m, NoAnswer)] == [1, 3, 5, 7, 9]  # the oldest let go first
