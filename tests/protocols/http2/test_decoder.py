"""HTTP/2 + gRPC decoder table cases, each run whole, byte by byte, and with trailing bytes that must survive.

Frames are built by hand (tests/helpers/h2wire.py) and header blocks by the `hpack` library's encoder, so the
expected sizes are lengths of bytes this file built: `size` is the frames carrying a message (HEADERS,
CONTINUATION, DATA, PUSH_PROMISE; 9-byte frame headers and padding included), `body_bytes` DATA payload
without padding, gRPC counts the messages this file framed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from packetd.protocols.base import DecodeError, DecoderContext, Flag, Message, NoAnswer, SwapRoles, SyncLost
from packetd.protocols.http2 import decoder as h2
from packetd.protocols.http2.decoder import RESET_GRACE_NS, Http2Decoder, Http2Options
from packetd.protocols.http2.messages import GrpcResponse, Http2Request, Http2Response
from packetd.protocols.registry import REGISTRY
from tests.helpers.decoding import C2S, MODES, S2C, Step, feed, open_session, run
from tests.helpers.h2wire import (
    ACK,
    CONTINUATION,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADERS,
    PADDED,
    PING,
    PREFACE,
    PRIO,
    PRIORITY,
    PUSH_PROMISE,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    Conn,
    data,
    frame,
    grpc_msg,
    settings,
)

GRPC_REQ = [
    (":method", "POST"),
    (":scheme", "http"),
    (":path", "/pkg.Svc/Do"),
    (":authority", "svc:50051"),
    ("content-type", "application/grpc"),
    ("te", "trailers"),
    ("grpc-timeout", "1S"),
]
GRPC_RESP = [(":status", "200"), ("content-type", "application/grpc")]


def summary(msgs: list[Message]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for m in msgs:
        if isinstance(m, Http2Request):
            out.append(
                (
                    "req",
                    m.PROTOCOL,
                    m.stream_id,
                    m.operation(),
                    m.path,
                    m.size,
                    m.body_bytes,
                    m.messages,
                    m.reset,
                    m.goaway,
                )
            )
        elif isinstance(m, Http2Response):
            out.append(
                ("resp", m.PROTOCOL, m.stream_id, m.status(), m.size, m.body_bytes, m.messages, m.reset)
            )
        elif isinstance(m, NoAnswer):
            out.append(("no-answer", m.key))
    return out


Case = tuple[list[Step], list[Step], list[tuple[Any, ...]]]


def _opening(conn: Conn) -> tuple[bytes, bytes]:
    return PREFACE + settings(header_table_size=4096), settings(max_concurrent_streams=100) + frame(
        SETTINGS, ACK, 0
    )


def _sentinel(conn: Conn) -> tuple[list[Step], list[tuple[Any, ...]]]:
    c = conn.get(101, "/sentinel")
    s = conn.status(101, 200, end=True)
    return [(C2S, c), (S2C, s)], [
        ("req", "http2", 101, "GET", "/sentinel", len(c), 0, 0, None, None),
        ("resp", "http2", 101, "200", len(s), 0, 0, None),
    ]


def case_get_no_body() -> Case:
    conn = Conn()
    oc, os_ = _opening(conn)
    c1 = conn.get(1, "/a")
    s1 = conn.status(1, 200, [("content-type", "text/plain")])
    d1 = data(1, b"hello", end=True)
    sent, sent_exp = _sentinel(conn)
    return (
        [(C2S, oc + c1), (S2C, os_ + s1 + d1)],
        sent,
        [
            ("req", "http2", 1, "GET", "/a", len(c1), 0, 0, None, None),
            ("resp", "http2", 1, "200", len(s1) + len(d1), 5, 0, None),
            *sent_exp,
        ],
    )


def case_post_padded_204() -> Case:
    conn = Conn()
    oc, os_ = _opening(conn)
    h = conn.headers(
        True, 1, [(":method", "POST"), (":scheme", "http"), (":path", "/up"), (":authority", "a")]
    )
    d_a = data(1, b"abc", pad=4)
    d_b = data(1, b"defg", end=True)
    s = conn.status(1, 204, end=True)
    sent, sent_exp = _sentinel(conn)
    return (
        [(C2S, oc + h + d_a), (C2S, d_b), (S2C, os_ + s)],
        sent,
        [
            ("req", "http2", 1, "POST", "/up", len(h) + len(d_a) + len(d_b), 7, 0, None, None),
            ("resp", "http2", 1, "204", len(s), 0, 0, None),
            *sent_exp,
        ],
    )


def case_continuation_priority_padding() -> Case:
    conn = Conn()
    oc, os_ = _opening(conn)
    block = conn.block(
        True,
        [(":method", "GET"), (":scheme", "http"), (":path", "/long"), (":authority", "a")]
        + [(f"x-h{i}", "v" * 40) for i in range(6)],
    )
    a, b = len(block) // 3, 2 * len(block) // 3
    first = frame(
        HEADERS, END_STREAM | PADDED | PRIO, 1, bytes([3]) + b"\x00\x00\x00\x00\x10" + block[:a] + b"\0\0\0"
    )
    cont1 = frame(CONTINUATION, 0, 1, block[a:b])
    cont2 = frame(CONTINUATION, END_HEADERS, 1, block[b:])
    s = conn.status(1, 304, end=True)
    sent, sent_exp = _sentinel(conn)
    return (
        [(C2S, oc + first + cont1), (C2S, cont2), (S2C, os_ + s)],
        sent,
        [
            ("req", "http2", 1, "GET", "/long", len(first) + len(cont1) + len(cont2), 0, 0, None, None),
            ("resp", "http2", 1, "304", len(s), 0, 0, None),
            *sent_exp,
        ],
    )


def case_grpc_unary_ok() -> Case:
    conn = Conn()
    oc, os_ = _opening(conn)
    h = conn.headers(True, 1, GRPC_REQ)
    d = data(1, grpc_msg(b"x" * 10), end=True)
    rh = conn.headers(False, 1, GRPC_RESP)
    rd = data(1, grpc_msg(b"y" * 20))
    rt = conn.headers(False, 1, [("grpc-status", "0"), ("grpc-message", "")], end_stream=True)
    sent, sent_exp = _sentinel(conn)
    return (
        [(C2S, oc + h + d), (S2C, os_ + rh + rd + rt)],
        sent,
        [
            ("req", "grpc", 1, "pkg.Svc/Do", "/pkg.Svc/Do", len(h) + len(d), 15, 1, None, None),
            ("resp", "grpc", 1, "OK", len(rh) + len(rd) + len(rt), 25, 1, None),
            *sent_exp,
        ],
    )


def case_grpc_trailers_only_not_found() -> Case:
    conn = Conn()
    oc, os_ = _opening(conn)
    h = conn.headers(True, 1, GRPC_REQ)
    d = data(1, grpc_msg(b"k"), end=True)
    r = conn.headers(
        False, 1, [*GRPC_RESP, ("grpc-status", "5"), ("grpc-message", "no%20such%20key")], end_stream=True
    )
    sent, sent_exp = _sentinel(conn)
    return (
        [(C2S, oc + h + d), (S2C, os_ + r)],
        sent,
        [
            ("req", "grpc", 1, "pkg.Svc/Do", "/pkg.Svc/Do", len(h) + len(d), 6, 1, None, None),
            ("resp", "grpc", 1, "NOT_FOUND", len(r), 0, 0, None),
            *sent_exp,
        ],
    )


def case_grpc_streams_with_prefixes_split_across_frames() -> Case:
    conn = Conn()
    oc, os_ = _opening(conn)
    h = conn.headers(True, 3, GRPC_REQ)
    stream = grpc_msg(b"a" * 7) + grpc_msg(b"b" * 300) + grpc_msg(b"")
    # cut the DATA inside the second message's 5-byte prefix and inside its body
    d1 = data(3, stream[:14])
    d2 = data(3, stream[14:100])
    d3 = data(3, stream[100:], end=True)
    rh = conn.headers(False, 3, [*GRPC_RESP, ("grpc-encoding", "gzip")])
    rd = data(3, grpc_msg(b"z" * 3, compressed=True) + grpc_msg(b"w" * 4, compressed=True))
    rt = conn.headers(False, 3, [("grpc-status", "0")], end_stream=True)
    sent, sent_exp = _sentinel(conn)
    return (
        [(C2S, oc + h + d1), (C2S, d2 + d3), (S2C, os_ + rh + rd + rt)],
        sent,
        [
            (
                "req",
                "grpc",
                3,
                "pkg.Svc/Do",
                "/pkg.Svc/Do",
                len(h) + len(d1) + len(d2) + len(d3),
                len(stream),
                3,
                None,
                None,
            ),
            ("resp", "grpc", 3, "OK", len(rh) + len(rd) + len(rt), 17, 2, None),
            *sent_exp,
        ],
    )


def case_interleaved_streams() -> Case:
    conn = Conn()
    oc, os_ = _opening(conn)
    c1, c3, c5 = conn.get(1, "/one"), conn.get(3, "/three"), conn.get(5, "/five")
    s3 = conn.status(3, 404, end=True)
    s1h = conn.status(1, 200)
    s5 = conn.status(5, 500, end=True)
    s1d = data(1, b"x" * 1000, end=True)
    sent, sent_exp = _sentinel(conn)
    return (
        [(C2S, oc + c1 + c3 + c5), (S2C, os_ + s3 + s1h + s5 + s1d)],
        sent,
        [
            ("req", "http2", 3, "GET", "/three", len(c3), 0, 0, None, None),
            ("resp", "http2", 3, "404", len(s3), 0, 0, None),
            ("req", "http2", 5, "GET", "/five", len(c5), 0, 0, None, None),
            ("resp", "http2", 5, "500", len(s5), 0, 0, None),
            ("req", "http2", 1, "GET", "/one", len(c1), 0, 0, None, None),
            ("resp", "http2", 1, "200", len(s1h) + len(s1d), 1000, 0, None),
            *sent_exp,
        ],
    )


def case_interim_100_continue() -> Case:
    conn = Conn()
    oc, os_ = _opening(conn)
    h = conn.headers(
        True,
        1,
        [
            (":method", "PUT"),
            (":scheme", "http"),
            (":path", "/f"),
            (":authority", "a"),
            ("expect", "100-continue"),
        ],
    )
    s100 = conn.status(1, 100)
    d = data(1, b"body", end=True)
    s201 = conn.status(1, 201, end=True)
    sent, sent_exp = _sentinel(conn)
    return (
        [(C2S, oc + h), (S2C, os_ + s100), (C2S, d), (S2C, s201)],
        sent,
        [
            ("req", "http2", 1, "PUT", "/f", len(h) + len(d), 4, 0, None, None),
            ("resp", "http2", 1, "201", len(s100) + len(s201), 0, 0, None),
            *sent_exp,
        ],
    )


def case_rst_before_response() -> Case:
    conn = Conn()
    oc, os_ = _opening(conn)
    c1 = conn.get(1, "/slow")
    rst = frame(RST_STREAM, 0, 1, (8).to_bytes(4, "big"))  # CANCEL
    # the server answers stream 3, opened after the reset: it read the RST, so no answer to 1 is coming
    c3 = conn.get(3, "/after")
    s3 = conn.status(3, 204, end=True)
    sent, sent_exp = _sentinel(conn)
    return (
        [(S2C, os_), (C2S, oc + c1 + rst + c3), (S2C, s3)],
        sent,
        [
            ("req", "http2", 1, "GET", "/slow", len(c1), 0, 0, 8, None),
            ("no-answer", 1),
            ("req", "http2", 3, "GET", "/after", len(c3), 0, 0, None, None),
            ("resp", "http2", 3, "204", len(s3), 0, 0, None),
            *sent_exp,
        ],
    )


def case_response_crossing_the_clients_rst() -> Case:
    # issue 9 item 6: seen near the client, the RST_STREAM goes out before the response the server had
    # already sent comes in; the record keeps the response, reset by the client
    conn = Conn()
    oc, os_ = _opening(conn)
    c1 = conn.get(1, "/slow")
    rst = frame(RST_STREAM, 0, 1, (8).to_bytes(4, "big"))  # CANCEL
    s1 = conn.status(1, 200)
    d1 = data(1, b"z" * 30, end=True)
    sent, sent_exp = _sentinel(conn)
    return (
        [(S2C, os_), (C2S, oc + c1 + rst), (S2C, s1 + d1)],
        sent,
        [
            ("req", "http2", 1, "GET", "/slow", len(c1), 0, 0, 8, None),
            ("resp", "http2", 1, "200", len(s1) + len(d1), 30, 0, 8),
            *sent_exp,
        ],
    )


def case_rst_after_response_headers() -> Case:
    conn = Conn()
    oc, os_ = _opening(conn)
    c1 = conn.get(1, "/big")
    s1 = conn.status(1, 200)
    d1 = data(1, b"q" * 50)
    rst = frame(RST_STREAM, 0, 1, (2).to_bytes(4, "big"))  # INTERNAL_ERROR
    sent, sent_exp = _sentinel(conn)
    return (
        [(C2S, oc + c1), (S2C, os_ + s1 + d1 + rst)],
        sent,
        [
            ("req", "http2", 1, "GET", "/big", len(c1), 0, 0, 2, None),
            ("resp", "http2", 1, "200", len(s1) + len(d1), 50, 0, 2),
            *sent_exp,
        ],
    )


def case_goaway_ends_unprocessed_streams() -> Case:
    conn = Conn()
    oc, os_ = _opening(conn)
    c1, c3 = conn.get(1, "/kept"), conn.get(3, "/refused")
    s1 = conn.status(1, 200, end=True)
    ga = frame(GOAWAY, 0, 0, (1).to_bytes(4, "big") + (0).to_bytes(4, "big") + b"bye")
    sent, sent_exp = _sentinel(conn)
    return (
        [(C2S, oc + c1 + c3), (S2C, os_ + s1 + ga)],
        sent,
        [
            ("req", "http2", 1, "GET", "/kept", len(c1), 0, 0, None, None),
            ("resp", "http2", 1, "200", len(s1), 0, 0, None),
            ("req", "http2", 3, "GET", "/refused", len(c3), 0, 0, None, 0),
            ("no-answer", 3),
            *sent_exp,
        ],
    )


def case_control_and_unknown_frames() -> Case:
    conn = Conn()
    oc, os_ = _opening(conn)
    c1 = conn.get(1, "/c", end=False)
    prio = frame(PRIORITY, 0, 1, b"\x00\x00\x00\x00\x20")
    wu = frame(WINDOW_UPDATE, 0, 1, (1000).to_bytes(4, "big"))
    unknown = frame(0xFA, 0xFF, 1, b"whatever this extension carries")
    end = data(1, b"", end=True)
    ping = frame(PING, 0, 0, b"12345678")
    s1 = conn.status(1, 200, end=True)
    sent, sent_exp = _sentinel(conn)
    return (
        [
            (C2S, oc + c1 + prio + wu + unknown + ping + end),
            (S2C, os_ + frame(PING, ACK, 0, b"12345678") + s1),
        ],
        sent,
        [
            # the message is its HEADERS and the empty DATA; PRIORITY and WINDOW_UPDATE are flow control
            # and priority, unknown frames are skipped
            ("req", "http2", 1, "GET", "/c", len(c1) + len(end), 0, 0, None, None),
            ("resp", "http2", 1, "200", len(s1), 0, 0, None),
            *sent_exp,
        ],
    )


def case_push_promise() -> Case:
    conn = Conn()
    oc, os_ = _opening(conn)
    c1 = conn.get(1, "/page")
    promised = conn.block(
        False, [(":method", "GET"), (":scheme", "http"), (":path", "/style.css"), (":authority", "a")]
    )
    pp = frame(PUSH_PROMISE, END_HEADERS, 1, (2).to_bytes(4, "big") + promised)
    s1 = conn.status(1, 200, end=True)
    s2 = conn.status(2, 200)
    d2 = data(2, b"css", end=True)
    sent, sent_exp = _sentinel(conn)
    return (
        [(C2S, oc + c1), (S2C, os_ + pp + s1 + s2 + d2)],
        sent,
        [
            ("req", "http2", 1, "GET", "/page", len(c1), 0, 0, None, None),
            ("resp", "http2", 1, "200", len(s1), 0, 0, None),
            ("req", "http2", 2, "GET", "/style.css", len(pp), 0, 0, None, None),
            ("resp", "http2", 2, "200", len(s2) + len(d2), 3, 0, None),
            *sent_exp,
        ],
    )


def case_dynamic_table_and_size_updates() -> Case:
    conn = Conn()
    oc, os_ = _opening(conn)
    extra = [("x-tenant", "acme-corporation"), ("user-agent", "table-test/1.0")]
    c1 = conn.get(1, "/t1", extra)
    s1 = conn.status(1, 200, [("x-served-by", "node-17")], end=True)
    conn.s.header_table_size = (
        64  # the server's encoder shrinks its table: a size update opens its next block
    )
    conn.c.header_table_size = 0  # the client's empties it
    c3 = conn.get(3, "/t2", extra)
    s3 = conn.status(3, 200, [("x-served-by", "node-17")], end=True)
    conn.c.header_table_size = 4096
    c5 = conn.get(5, "/t1", extra)
    c7 = conn.get(7, "/t1", extra)  # now fully indexed from the refilled table
    s5 = conn.status(5, 200, end=True)
    s7 = conn.status(7, 200, end=True)
    sent, sent_exp = _sentinel(conn)
    return (
        [(C2S, oc + c1), (S2C, os_ + s1), (C2S, c3), (S2C, s3), (C2S, c5 + c7), (S2C, s5 + s7)],
        sent,
        [
            ("req", "http2", 1, "GET", "/t1", len(c1), 0, 0, None, None),
            ("resp", "http2", 1, "200", len(s1), 0, 0, None),
            ("req", "http2", 3, "GET", "/t2", len(c3), 0, 0, None, None),
            ("resp", "http2", 3, "200", len(s3), 0, 0, None),
            ("req", "http2", 5, "GET", "/t1", len(c5), 0, 0, None, None),
            ("resp", "http2", 5, "200", len(s5), 0, 0, None),
            ("req", "http2", 7, "GET", "/t1", len(c7), 0, 0, None, None),
            ("resp", "http2", 7, "200", len(s7), 0, 0, None),
            *sent_exp,
        ],
    )


CASES: dict[str, Callable[[], Case]] = {
    "get-without-body-200-with-body": case_get_no_body,
    "post-padded-data-then-204": case_post_padded_204,
    "headers-continuation-priority-padding": case_continuation_priority_padding,
    "grpc-unary-ok-with-trailers": case_grpc_unary_ok,
    "grpc-trailers-only-not-found": case_grpc_trailers_only_not_found,
    "grpc-prefixes-split-across-frames": case_grpc_streams_with_prefixes_split_across_frames,
    "interleaved-streams-answered-out-of-order": case_interleaved_streams,
    "interim-100-continue": case_interim_100_continue,
    "rst-stream-before-response": case_rst_before_response,
    "response-crossing-the-clients-rst": case_response_crossing_the_clients_rst,
    "rst-stream-after-response-headers": case_rst_after_response_headers,
    "goaway-ends-unprocessed-streams": case_goaway_ends_unprocessed_streams,
    "control-and-unknown-frames": case_control_and_unknown_frames,
    "push-promise": case_push_promise,
    "dynamic-table-and-size-updates": case_dynamic_table_and_size_updates,
}


def decoder(**opts: Any) -> Http2Decoder:
    return Http2Decoder(DecoderContext(options=Http2Options(**opts)))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(CASES))
def test_table(name: str, mode: str) -> None:
    steps, sentinel, expected = CASES[name]()
    n_sentinel = 2
    out = run(decoder, steps, mode, sentinel)
    got = summary(out)
    if mode == "trailing":
        assert got == expected
    else:
        assert got == expected[:-n_sentinel]
    assert not any(isinstance(m, SwapRoles | SyncLost) for m in out)


def _records(steps: list[Step], **kw: Any) -> list[dict[str, Any]]:
    d = Http2Decoder(DecoderContext(**kw))
    return [m.to_json() for m in feed(d, steps) if isinstance(m, Http2Request | Http2Response)]


def test_grpc_record_fields() -> None:
    steps, _, _ = case_grpc_trailers_only_not_found()
    req, resp = _records(steps)
    assert (req["service"], req["method"], req["timeout_ns"]) == ("pkg.Svc", "Do", 1_000_000_000)
    assert req["metadata"] == {
        "content-type": ["application/grpc"],
        "te": ["trailers"],
        "grpc-timeout": ["1S"],
    }
    assert resp["grpc_status"] == 5 and resp["grpc_status_name"] == "NOT_FOUND"
    assert resp["grpc_message"] == "no such key"  # percent-decoded
    assert resp["trailers_only"] is True and resp["trailers"] is None
    steps, _, _ = case_grpc_streams_with_prefixes_split_across_frames()
    req, resp = _records(steps)
    assert (req["messages"], req["message_bytes"], req["compressed_messages"]) == (3, 307, 0)
    assert (resp["messages"], resp["message_bytes"], resp["compressed_messages"]) == (2, 7, 2)
    assert resp["encoding"] == "gzip" and resp["trailers"] == {"grpc-status": ["0"]}


def test_headers_repeated_values_kept_and_sensitive_ones_redacted() -> None:
    conn = Conn()
    oc, os_ = _opening(conn)
    c = conn.get(
        1,
        "/h",
        [("accept", "a/b"), ("accept", "c/d"), ("authorization", "Bearer s3cr3t"), ("cookie", "id=1")],
    )
    # a never-indexed literal (RFC 7541 §7.1.3) is how an encoder marks a value sensitive
    block = conn.s.encode([(":status", "200"), ("x-api-key", "k-123", True)])  # (name, value, sensitive)
    s = frame(HEADERS, END_HEADERS | END_STREAM, 1, block)
    req, resp = _records([(C2S, oc + c), (S2C, os_ + s)])
    assert req["headers"]["accept"] == ["a/b", "c/d"]
    assert req["headers"]["authorization"] == ["Bearer [REDACTED]"]
    assert req["headers"]["cookie"] == ["[REDACTED]"]
    assert resp["headers"]["x-api-key"] == ["[REDACTED]"]
    assert "s3cr3t" not in repr(req) and "k-123" not in repr(resp)


def test_traceparent_in_request_headers() -> None:
    conn = Conn()
    oc, os_ = _opening(conn)
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    c = conn.headers(True, 1, [*GRPC_REQ, ("traceparent", tp), ("tracestate", "k=v")])
    d = data(1, grpc_msg(b""), end=True)
    s = conn.headers(False, 1, [*GRPC_RESP, ("grpc-status", "0")], end_stream=True)
    msgs = feed(decoder(), [(C2S, oc + c + d), (S2C, os_ + s)])
    trace = msgs[0].trace_context()
    assert trace is not None
    assert (trace.trace_id, trace.parent_span_id, trace.tracestate) == (
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203331",
        "k=v",
    )


def test_status_mapping_without_grpc_status() -> None:
    """grpc/doc/http-grpc-status-mapping.md: an HTTP error without grpc-status maps to a gRPC code."""
    for http, expected in (
        (404, "UNIMPLEMENTED"),
        (503, "UNAVAILABLE"),
        (401, "UNAUTHENTICATED"),
        (500, "UNKNOWN"),
    ):
        conn = Conn()
        oc, os_ = _opening(conn)
        c = conn.headers(True, 1, GRPC_REQ, end_stream=True)
        s = conn.headers(
            False, 1, [(":status", str(http)), ("content-type", "application/grpc")], end_stream=True
        )
        msgs = feed(decoder(), [(C2S, oc + c), (S2C, os_ + s)])
        assert msgs[1].status() == expected and msgs[1].is_error()


def test_reset_without_response_is_unanswered_through_the_session() -> None:
    s, records, stats = open_session(REGISTRY["grpc"], REGISTRY, ("10.0.0.1", 40000), ("10.0.0.2", 50051))
    conn = Conn()
    oc, os_ = _opening(conn)
    c = conn.headers(True, 1, GRPC_REQ) + data(1, grpc_msg(b"q"), end=True)
    s.data(0, memoryview(oc + c), 1)
    s.data(1, memoryview(os_), 2)
    s.data(0, memoryview(frame(RST_STREAM, 0, 1, (8).to_bytes(4, "big"))), 3)
    # held for one grace period (a response may be crossing the RST), then recorded, not at close
    assert records == []
    s.data(1, memoryview(frame(PING, 0, 0, b"\0" * 8)), 3 + RESET_GRACE_NS)
    assert len(records) == 1
    rec = records[0].to_json()
    assert (rec["protocol"], rec["kind"], rec["status"], rec["response"]) == (
        "grpc",
        "unanswered",
        None,
        None,
    )
    assert (rec["request"]["reset"], rec["request"]["reset_by"]) == ("CANCEL", "client")
    assert stats["grpc"].records["unanswered"] == 1


def test_one_connection_carries_grpc_and_http2_records() -> None:
    s, records, stats = open_session(REGISTRY["http2"], REGISTRY, ("10.0.0.1", 40000), ("10.0.0.2", 8080))
    conn = Conn()
    oc, os_ = _opening(conn)
    c = conn.headers(True, 1, GRPC_REQ, end_stream=True) + conn.get(3, "/health")
    r = conn.headers(False, 1, [*GRPC_RESP, ("grpc-status", "0")], end_stream=True) + conn.status(
        3, 200, end=True
    )
    s.data(0, memoryview(oc + c), 1)
    s.data(1, memoryview(os_ + r), 2)
    assert [(x.protocol, x.operation, x.status) for x in records] == [
        ("grpc", "pkg.Svc/Do", "OK"),
        ("http2", "GET", "200"),
    ]
    assert stats["grpc"].records["roundtrip"] == 1 and stats["http2"].records["roundtrip"] == 1


def test_joined_mid_connection_decodes_static_entries_and_never_misattributes() -> None:
    conn = Conn()
    oc, os_ = _opening(conn)
    extra = [("x-tenant", "acme")]
    early = [
        (C2S, oc + conn.get(1, "/first", extra)),
        (S2C, os_ + conn.status(1, 200, [("x-node", "n1")], end=True)),
    ]
    # the same headers again: now dynamic-table references to entries inserted before the join
    later_c = conn.get(3, "/first", extra) + conn.get(5, "/new", [("x-other", "z")])
    later_s = conn.status(3, 200, [("x-node", "n1")], end=True) + conn.status(5, 404, end=True)
    full = feed(decoder(), [*early, (C2S, later_c), (S2C, later_s)])
    joined = feed(Http2Decoder(DecoderContext(midstream=True)), [(C2S, later_c), (S2C, later_s)])
    jr = [m.to_json() for m in joined if isinstance(m, Http2Request | Http2Response)]
    fr = [m.to_json() for m in full if isinstance(m, Http2Request | Http2Response)][2:]
    # stream 3: :method GET (static) decoded, the dynamic :path and x-tenant unknown: dropped, not guessed
    assert jr[0]["method"] == "GET" and jr[0]["path"] is None and "x-tenant" not in jr[0]["headers"]
    assert joined[0].flags & Flag.MIDSTREAM
    # stream 5 was sent with literals (new to the table): decoded exactly as a full capture decodes it
    assert jr[2]["path"] == "/new" and jr[2]["headers"] == fr[2]["headers"] == {"x-other": ["z"]}
    assert jr[3]["status_code"] == 404 and not joined[3].flags & Flag.MIDSTREAM
    for j, f in zip(jr, fr, strict=True):  # whatever was decoded agrees with the full decode
        for key, values in j.get("headers", {}).items():
            assert f["headers"][key] == values


def test_capture_starting_at_a_high_stream_id() -> None:
    conn = Conn()
    c = conn.get(10001, "/late", end=True)
    s = conn.status(10001, 200, end=True)
    msgs = feed(Http2Decoder(DecoderContext(midstream=True)), [(C2S, c), (S2C, s)])
    assert summary(msgs) == [
        ("req", "http2", 10001, "GET", "/late", len(c), 0, 0, None, None),
        ("resp", "http2", 10001, "200", len(s), 0, 0, None),
    ]


def test_joined_mid_frame_finds_the_next_frame_boundary() -> None:
    conn = Conn()
    oc, os_ = _opening(conn)
    body = data(1, b"B" * 3000, end=True)
    c1 = conn.get(1, "/a")
    s1 = conn.status(1, 200)
    c3 = conn.get(3, "/b")
    s3 = conn.status(3, 200, end=True)
    # the capture starts 1000 bytes into stream 1's DATA frame
    msgs = feed(Http2Decoder(DecoderContext(midstream=True)), [(C2S, c3), (S2C, body[1000:] + s3)])
    got = summary(msgs)
    assert got[-2:] == [
        ("req", "http2", 3, "GET", "/b", len(c3), 0, 0, None, None),
        ("resp", "http2", 3, "200", len(s3), 0, 0, None),
    ]
    assert c1 and s1 and oc and os_


def test_roles_swapped_when_the_guessed_client_sends_responses() -> None:
    conn = Conn()
    c = conn.get(1, "/x")
    s = conn.status(1, 200, end=True)
    d = Http2Decoder(DecoderContext(midstream=True))
    out = list(d.receive(S2C, memoryview(c), 1))  # the "server" side sends requests
    assert any(isinstance(m, SwapRoles) for m in out)
    out += d.receive(S2C, memoryview(s), 2)  # the session now labels the real server's bytes S2C
    assert summary(out) == [
        ("req", "http2", 1, "GET", "/x", len(c), 0, 0, None, None),
        ("resp", "http2", 1, "200", len(s), 0, 0, None),
    ]


def test_gap_inside_data_is_absorbed_and_flagged() -> None:
    conn = Conn()
    oc, os_ = _opening(conn)
    c = conn.get(1, "/g")
    s = conn.status(1, 200)
    body = data(1, b"D" * 5000, end=True)
    d = decoder()
    feed(d, [(C2S, oc + c), (S2C, os_ + s + body[:1000])])
    assert not d.receive_gap(S2C, 2000, 5)
    msgs = d.receive(S2C, memoryview(body[3000:]), 6)
    resp = msgs[-1]
    assert isinstance(resp, Http2Response) and resp.body_bytes == 5000 and resp.flags & Flag.GAP


def test_gap_across_frames_resyncs_and_forgets_the_dynamic_table() -> None:
    conn = Conn()
    oc, os_ = _opening(conn)
    d = decoder()
    feed(d, [(C2S, oc + conn.get(1, "/a", [("x-k", "v")])), (S2C, os_ + conn.status(1, 200, end=True))])
    lost = conn.get(3, "/lost", [("x-k2", "v2")])  # a header block lost in the gap changes the table
    out = d.receive_gap(C2S, len(lost), 10)
    assert any(isinstance(m, SyncLost) for m in out)
    c5 = conn.get(5, "/after", [("x-k2", "v2")])  # refers to the entry the lost block inserted
    msgs = feed(d, [(C2S, c5), (S2C, conn.status(3, 200, end=True) + conn.status(5, 200, end=True))])
    req5 = next(m for m in msgs if isinstance(m, Http2Request) and m.stream_id == 5)
    assert req5.flags & Flag.MIDSTREAM and dict(req5.headers).get(b"x-k2") is None  # unknown, not guessed


def test_upgrade_request_becomes_stream_1() -> None:
    from packetd.protocols.http1.decoder import Http1Decoder

    h1 = Http1Decoder()
    up = b"GET /up?x=1 HTTP/1.1\r\nHost: h2.example\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n"
    req = next(iter(h1.receive(C2S, memoryview(up), 1)))
    conn = Conn()
    d = Http2Decoder(DecoderContext(upgrade_request=req))
    s1 = conn.status(1, 200, [("content-type", "text/plain")])
    d1 = data(1, b"upgraded", end=True)
    msgs = feed(d, [(C2S, PREFACE + settings()), (S2C, settings() + s1 + d1)])
    assert summary(msgs) == [
        ("req", "http2", 1, "GET", "/up?x=1", len(up), 0, 0, None, None),
        ("resp", "http2", 1, "200", len(s1) + len(d1), 8, 0, None),
    ]
    assert msgs[0].to_json()["authority"] == "h2.example"


def test_streams_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(h2, "MAX_STREAMS", 4)
    conn = Conn()
    oc, _ = _opening(conn)
    c = b"".join(conn.get(sid, f"/{sid}") for sid in (1, 3, 5, 7, 9, 11))
    d = decoder()
    msgs = feed(d, [(C2S, oc + c)])
    evicted = [m for m in msgs if isinstance(m, Http2Request)]
    assert [m.stream_id for m in evicted] == [1, 3] and all(m.flags & Flag.TRUNCATED for m in evicted)
    assert d.evicted_streams == 2 and len(d._streams) == 4


def test_eof_ends_open_streams_as_truncated() -> None:
    conn = Conn()
    oc, os_ = _opening(conn)
    d = decoder()
    feed(
        d,
        [
            (C2S, oc + conn.get(1, "/a") + conn.get(3, "/b")),
            (S2C, os_ + conn.status(1, 200) + data(1, b"part")),
        ],
    )
    out = list(d.receive_eof(C2S, 50)) + list(d.receive_eof(S2C, 51))
    s = summary(out)
    assert [x[:3] for x in s] == [("req", "http2", 1), ("resp", "http2", 1), ("req", "http2", 3)]
    assert out[1].flags & Flag.TRUNCATED


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (b"GET / HTTP/1.1\r\n\r\n" + b"x" * 10, "bad connection preface"),
        (PREFACE + frame(SETTINGS, 0, 1, b""), "frame on the wrong stream"),
        (PREFACE + frame(PING, 0, 0, b"1234"), "bad frame length"),
        (PREFACE + frame(SETTINGS, 0, 0, b"12345"), "bad frame length"),
        (PREFACE + frame(CONTINUATION, END_HEADERS, 1, b"\x82"), "unexpected CONTINUATION"),
        (
            PREFACE + frame(HEADERS, 0, 1, b"\x82") + frame(PING, 0, 0, b"12345678"),
            "header block interrupted",
        ),
        (PREFACE + frame(HEADERS, END_HEADERS, 1, b"\xff\xff\xff\xff\xff\xff\xff"), "hpack"),
        (PREFACE + frame(HEADERS, END_HEADERS | PADDED, 1, b"\x09\x82"), "padding exceeds frame payload"),
        (PREFACE + frame(0, PADDED, 1, b"\x09ab"), "padding exceeds DATA payload"),
        # a dynamic table size update to 4097, beyond SETTINGS_HEADER_TABLE_SIZE (4096 until raised)
        (PREFACE + frame(HEADERS, END_HEADERS, 1, b"\x3f\xe2\x1f"), "hpack"),
    ],
)
def test_malformed_input_raises_decode_error(wire: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as exc:
        feed(decoder(), [(C2S, wire)])
    assert exc.value.reason == reason


def test_header_block_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(h2, "MAX_HEADER_BLOCK", 1000)
    wire = PREFACE + frame(HEADERS, 0, 1, b"\x82" * 600) + frame(CONTINUATION, 0, 1, b"\x82" * 600)
    for mode in ("whole", "bytewise"):
        with pytest.raises(DecodeError) as exc:
            feed(decoder(), [(C2S, wire)], mode)
        assert exc.value.reason == "header block too large"


def test_settings_header_table_size_is_honoured() -> None:
    """A peer that raises SETTINGS_HEADER_TABLE_SIZE lets the other side's encoder grow its table."""
    for announced, ok in ((8192, True), (None, False)):
        conn = Conn()
        server_settings = settings(header_table_size=announced) if announced else settings()
        conn.c.header_table_size = 8192  # the client's encoder grows its table: a size update to 8192
        c = conn.get(1, "/big-table")
        steps = [(S2C, server_settings), (C2S, PREFACE + settings() + frame(SETTINGS, ACK, 0) + c)]
        if ok:
            assert summary(feed(decoder(), steps))[:1] == []  # complete request held for its response
        else:
            with pytest.raises(DecodeError):
                feed(decoder(), steps)


def test_identical_block_bytes_decode_by_the_current_dynamic_table() -> None:
    """Decoded blocks are reused only while the dynamic table is unchanged (MAX_BLOCK_CACHE)."""
    # RFC 7541 §6.2.1 literal with incremental indexing, new name: 0x40, name, value (no Huffman)
    insert_a = b"\x40\x03x-a\x01A"
    insert_b = b"\x40\x03x-b\x01B"
    same = b"\x82\x86\x84\xbe"  # :method GET, :scheme http, :path /, dynamic index 62 (the newest entry)
    wire = (
        PREFACE
        + frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x82\x86\x84" + insert_a)
        + frame(HEADERS, END_HEADERS | END_STREAM, 3, same)  # index 62 = x-a: A
        + frame(HEADERS, END_HEADERS | END_STREAM, 5, same)  # again, from the cache
        + frame(HEADERS, END_HEADERS | END_STREAM, 7, b"\x82\x86\x84" + insert_b)
        + frame(HEADERS, END_HEADERS | END_STREAM, 9, same)  # same bytes, now index 62 = x-b: B
    )
    d = decoder()
    feed(d, [(C2S, wire)])
    out = d.receive_eof(S2C, 100)
    got = {m.stream_id: m.headers for m in out if isinstance(m, Http2Request)}
    assert got == {
        1: ((b"x-a", b"A"),),
        3: ((b"x-a", b"A"),),
        5: ((b"x-a", b"A"),),
        7: ((b"x-b", b"B"),),
        9: ((b"x-b", b"B"),),
    }


def test_options_from_the_command_line_and_redaction_by_option() -> None:
    from packetd.protocols.options import parse_assignments

    opts = parse_assignments(["grpc.redact=X-Secret", "http2.redact=authorization,x-key"])
    assert opts["grpc"] == Http2Options(redact=frozenset({"x-secret"}))
    assert opts["http2"] == Http2Options(redact=frozenset({"authorization", "x-key"}))
    conn = Conn()
    oc, os_ = _opening(conn)
    c = conn.headers(True, 1, [*GRPC_REQ, ("x-secret", "hunter2"), ("cookie", "kept-now")], end_stream=True)
    s = conn.headers(False, 1, [*GRPC_RESP, ("grpc-status", "0")], end_stream=True)
    req, _ = _records([(C2S, oc + c), (S2C, os_ + s)], options=opts["grpc"])
    assert req["metadata"]["x-secret"] == ["[REDACTED]"] and req["metadata"]["cookie"] == ["kept-now"]


def test_text_lines_name_the_path_for_http2_and_the_method_for_grpc() -> None:
    from packetd.export.text import TextFormatter
    from packetd.pairing.roundtrip import Roundtrip

    steps, _, _ = case_get_no_body()
    req, resp = feed(decoder(), steps)
    line = TextFormatter(color=False).format(Roundtrip("http2", "roundtrip", ("a", 1), ("b", 2), req, resp))
    # the :authority (example.com) is not the server's address (b), so the line names it after the path
    assert " GET /a (example.com) " in line and " 200 " in line
    steps, _, _ = case_grpc_trailers_only_not_found()
    req, resp = feed(decoder(), steps)
    line = TextFormatter(color=False).format(Roundtrip("grpc", "roundtrip", ("a", 1), ("b", 2), req, resp))
    assert " pkg.Svc/Do " in line and " NOT_FOUND " in line


def test_repeated_trailer_blocks_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(h2, "MAX_TRAILER_FIELDS", 2)
    conn = Conn()
    oc, os_ = _opening(conn)
    c = conn.get(1, "/t")
    blocks = b"".join(conn.headers(False, 1, [(f"x-t{i}", "v")]) for i in range(4))
    s = conn.status(1, 200) + blocks + conn.headers(False, 1, [("x-last", "v")], end_stream=True)
    (_req, resp) = feed(decoder(), [(C2S, oc + c), (S2C, os_ + s)])
    assert isinstance(resp, Http2Response)
    assert resp.trailers == ((b"x-t0", b"v"), (b"x-t1", b"v")) and resp.flags & Flag.TRUNCATED


def test_a_gap_flags_only_the_stream_halves_still_in_progress() -> None:
    conn = Conn()
    oc, os_ = _opening(conn)
    d = decoder()
    feed(d, [(C2S, oc + conn.get(1, "/done") + conn.get(3, "/open", end=False)), (S2C, os_)])
    d.receive_gap(C2S, 100, 5)  # lost: whatever stream 3 sent next
    out = list(d.receive_eof(C2S, 6)) + list(d.receive_eof(S2C, 7))
    flags = {m.stream_id: m.flags for m in out if isinstance(m, Http2Request)}
    assert not flags[1] & Flag.GAP and flags[3] & Flag.GAP


def test_a_decode_error_hands_the_held_requests_to_the_session_first() -> None:
    s, records, stats = open_session(REGISTRY["http2"], REGISTRY, ("10.0.0.1", 40000), ("10.0.0.2", 8080))
    conn = Conn()
    oc, os_ = _opening(conn)
    s.data(0, memoryview(oc + conn.get(1, "/held")), 1)
    s.data(0, memoryview(frame(PING, 0, 0, b"1234")), 2)  # malformed: a DecodeError, the decoder is replaced
    assert stats["http2"].decode_errors == {"bad frame length": 1}
    # the fresh decoder joins mid-connection; ':status 200' is a static entry it can read
    s.data(1, memoryview(os_ + frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\x88")), 3)
    assert [(r.kind, r.operation, r.status, r.request.stream_id) for r in records] == [  # type: ignore[union-attr]
        ("roundtrip", "GET", "200", 1)
    ]
    assert records[0].to_json()["request"]["path"] == "/held"


def test_a_grpc_status_the_capture_cannot_read_is_not_a_claim() -> None:
    """Joined late, `grpc-status: 0` is a dynamic-table reference the capture never saw; cut short, the
    trailers never came: the status is unknown (""), not gRPC's UNKNOWN, and not an error."""
    conn = Conn()
    oc, os_ = _opening(conn)
    first = [
        (C2S, oc + conn.headers(True, 1, GRPC_REQ, end_stream=True)),
        (S2C, os_ + conn.headers(False, 1, [*GRPC_RESP, ("grpc-status", "0")], end_stream=True)),
    ]
    feed(decoder(), first)
    c3 = conn.headers(True, 3, GRPC_REQ, end_stream=True)
    s3 = conn.headers(False, 3, GRPC_RESP) + conn.headers(False, 3, [("grpc-status", "0")], end_stream=True)
    # content-type is unreadable too: the `grpc` rule that matched the connection decides
    _, resp = feed(Http2Decoder(DecoderContext(midstream=True), "grpc"), [(C2S, c3), (S2C, s3)])
    assert isinstance(resp, GrpcResponse)
    assert resp.flags & Flag.MIDSTREAM and resp.trailers == ()  # the trailer block was all unknown entries
    assert (resp.status(), resp.is_error(), resp.to_json()["grpc_status"]) == ("", False, None)
    conn = Conn()  # a new connection, from its start
    d = decoder()
    feed(
        d,
        [
            (C2S, oc + conn.headers(True, 5, GRPC_REQ, end_stream=True)),
            (S2C, os_ + conn.headers(False, 5, GRPC_RESP)),
        ],
    )
    _, cut = d.receive_eof(S2C, 9)
    assert cut.flags & Flag.TRUNCATED and (cut.status(), cut.is_error()) == ("", False)
    # a response that really ended without grpc-status is mapped as the gRPC spec says
    conn = Conn()  # a new connection, from its start
    d = decoder()
    _, bare = feed(
        d,
        [
            (C2S, oc + conn.headers(True, 7, GRPC_REQ, end_stream=True)),
            (S2C, os_ + conn.headers(False, 7, GRPC_RESP, end_stream=True)),
        ],
    )
    assert (bare.status(), bare.is_error()) == ("UNKNOWN", True)
