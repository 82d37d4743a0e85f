"""HTTP/1.x decoder table cases, each run whole, byte by byte, and with trailing bytes that must survive.

Expected values are worked out by hand from the bytes in each case (sizes: header block including the
blank line, plus body bytes as sent; body_bytes: payload only, chunk framing excluded).
"""

from __future__ import annotations

import pytest

from packetd.protocols.base import (
    DecodeError,
    DecoderContext,
    Flag,
    HandOver,
    StopDecoding,
    SwapRoles,
    SyncLost,
)
from packetd.protocols.http1.decoder import Http1Decoder
from packetd.protocols.http1.messages import Request, Response
from packetd.protocols.http1.options import HttpOptions
from tests.helpers.decoding import C2S, MODES, S2C, feed, project, run

SENT_REQ = b"GET /sentinel HTTP/1.1\r\nHost: s\r\n\r\n"
SENT_RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
SENTINEL = [(C2S, SENT_REQ), (S2C, SENT_RESP)]


def decoder(**opts: object) -> Http1Decoder:
    return Http1Decoder(DecoderContext(options=HttpOptions(**opts)))  # type: ignore[arg-type]


def summary(msgs: list) -> list[tuple]:
    """(kind, method-or-status, target, size, body_bytes, chunked) per message."""
    out = []
    for m in msgs:
        if isinstance(m, Request):
            out.append(("req", m.method, m.target, m.size, m.body_bytes, m.chunked))
        elif isinstance(m, Response):
            out.append(("resp", m.status_code, m.interim, m.size, m.body_bytes, m.chunked))
    return out


SENTINEL_SUMMARY = [
    ("req", "GET", "/sentinel", len(SENT_REQ), 0, False),
    ("resp", 200, (), len(SENT_RESP), 2, False),
]

GET = b"GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"
CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"7;ext=1\r\nPacketd\r\n9\r\nDeveloper\r\n7\r\nNetwork\r\n0\r\nX-Trailer: yes\r\n\r\n"
)
CHUNKED_HEAD_LEN = len(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")

CASES = {
    "get-200": (
        [(C2S, GET), (S2C, OK)],
        [("req", "GET", "/index.html?q=1", len(GET), 0, False), ("resp", 200, (), len(OK), 5, False)],
    ),
    "pipelined-3-in-one-segment": (
        [(C2S, GET * 3), (S2C, OK * 3)],
        [("req", "GET", "/index.html?q=1", len(GET), 0, False)] * 3
        + [("resp", 200, (), len(OK), 5, False)] * 3,
    ),
    "chunked-with-extension-and-trailer": (
        [(C2S, GET), (S2C, CHUNKED)],
        # body = "Packetd" + "Developer" + "Network" = 7 + 9 + 7 = 23 bytes (the reference counted 27)
        [("req", "GET", "/index.html?q=1", len(GET), 0, False), ("resp", 200, (), len(CHUNKED), 23, True)],
    ),
    "head-response-carries-no-body": (
        [
            (C2S, b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n"),
            (S2C, b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"),
        ],
        [("req", "HEAD", "/", 28, 0, False), ("resp", 200, (), 41, 0, False)],
    ),
    "204-and-304-ignore-content-length": (
        [
            (C2S, b"DELETE /x HTTP/1.1\r\n\r\nGET /y HTTP/1.1\r\n\r\n"),
            (
                S2C,
                b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n",
            ),
        ],
        [
            ("req", "DELETE", "/x", 22, 0, False),
            ("req", "GET", "/y", 19, 0, False),
            ("resp", 204, (), 47, 0, False),
            ("resp", 304, (), 49, 0, False),
        ],
    ),
    "100-continue-does-not-end-the-exchange": (
        [
            (C2S, b"POST /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"),
            (S2C, b"HTTP/1.1 100 Continue\r\n\r\n"),
            (C2S, b"data"),
            (S2C, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"),
        ],
        [("req", "POST", "/up", 62 + 4, 4, False), ("resp", 201, (100,), 43, 0, False)],
    ),
    "post-body-split-and-chunked-request": (
        [
            (C2S, b"POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\n01234"),
            (C2S, b"56789"),
            (C2S, b"PUT /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
            (S2C, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" * 2),
        ],
        [
            ("req", "POST", "/a", 40 + 10, 10, False),
            ("req", "PUT", "/b", 47 + 13, 3, True),
            ("resp", 200, (), 38, 0, False),
            ("resp", 200, (), 38, 0, False),
        ],
    ),
    "every-method-token-and-target-form": (
        [
            (
                C2S,
                b"M-SEARCH * HTTP/1.1\r\n\r\n"
                b"OPTIONS * HTTP/1.1\r\n\r\n"
                b"GET http://example.com:8080/p?x=1 HTTP/1.1\r\n\r\n"
                b"PROPFIND /dav/ HTTP/1.1\r\nContent-Length: 0\r\n\r\n"
                b"X_CUSTOM-1 /c HTTP/1.0\r\n\r\n",
            ),
            (
                S2C,
                b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" * 4
                + b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
            ),
        ],
        [
            ("req", "M-SEARCH", "*", 23, 0, False),
            ("req", "OPTIONS", "*", 22, 0, False),
            ("req", "GET", "http://example.com:8080/p?x=1", 46, 0, False),
            ("req", "PROPFIND", "/dav/", 46, 0, False),
            ("req", "X_CUSTOM-1", "/c", 26, 0, False),
        ]
        + [("resp", 200, (), 38, 0, False)] * 5,
    ),
    "bare-lf-line-endings": (
        [(C2S, b"GET /lf HTTP/1.1\nHost: a\n\n"), (S2C, b"HTTP/1.1 200 OK\nContent-Length: 3\n\nabc")],
        [("req", "GET", "/lf", 26, 0, False), ("resp", 200, (), 35 + 3, 3, False)],
    ),
    "te-gzip-chunked-is-chunked": (
        [
            (C2S, GET),
            (S2C, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n"),
        ],
        [("req", "GET", "/index.html?q=1", len(GET), 0, False), ("resp", 200, (), 53 + 12, 2, True)],
    ),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(CASES))
def test_table(name: str, mode: str) -> None:
    steps, expected = CASES[name]
    msgs = run(decoder, steps, mode, SENTINEL)
    want = expected + (SENTINEL_SUMMARY if mode == "trailing" else [])
    assert summary(msgs) == want


def test_three_modes_give_identical_records() -> None:
    steps, _ = CASES["chunked-with-extension-and-trailer"]
    whole = project(run(decoder, steps, "whole"))
    assert project(run(decoder, steps, "bytewise")) == whole


@pytest.mark.parametrize("mode", ("whole", "bytewise"))
def test_http10_close_delimited_response_ends_at_eof(mode: str) -> None:
    steps = [
        (C2S, b"GET /old HTTP/1.0\r\n\r\n"),
        (S2C, b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html>body</html>"),
    ]
    msgs = run(decoder, steps, mode, eof=False)
    assert summary(msgs) == [("req", "GET", "/old", 21, 0, False)]  # the body has no end yet
    msgs = run(decoder, steps, mode, eof=True)
    resp = msgs[-1]
    assert isinstance(resp, Response)
    assert (resp.body_bytes, resp.close, resp.size) == (17, True, 44 + 17)
    assert not resp.flags & Flag.TRUNCATED


def test_truncated_body_at_eof_is_flagged() -> None:
    msgs = run(
        decoder,
        [(C2S, GET), (S2C, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")],
        "whole",
        eof=True,
    )
    resp = msgs[-1]
    assert isinstance(resp, Response) and resp.body_bytes == 5 and resp.flags & Flag.TRUNCATED


def test_headers_case_insensitive_repeated_in_order_and_redacted() -> None:
    req = (
        b"GET / HTTP/1.1\r\nHOST: h\r\nAccept: a\r\naccept: b\r\nAuthorization: Bearer s3cret\r\n"
        b"Cookie: id=42\r\nX-Folded: one\r\n two\r\n\r\n"
    )
    resp = b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n"
    msgs = feed(decoder(), [(C2S, req), (S2C, resp)])
    r = msgs[0].to_json()
    assert r["host"] == "h"
    assert r["headers"]["accept"] == ["a", "b"]
    assert r["headers"]["authorization"] == ["Bearer [REDACTED]"]
    assert r["headers"]["cookie"] == ["[REDACTED]"]
    assert r["headers"]["x-folded"] == ["one two"]
    assert "s3cret" not in str(r) and "id=42" not in str(r)
    assert msgs[1].to_json()["headers"]["set-cookie"] == ["[REDACTED]", "[REDACTED]"]


def test_redaction_can_be_turned_off() -> None:
    msgs = feed(decoder(redact=frozenset()), [(C2S, b"GET / HTTP/1.1\r\nCookie: id=42\r\n\r\n")])
    assert msgs[0].to_json()["headers"]["cookie"] == ["id=42"]


def test_traceparent_and_tracestate() -> None:
    req = (
        b"GET / HTTP/1.1\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
        b"tracestate: rojo=00f067aa0ba902b7\r\n\r\n"
    )
    (msg,) = feed(decoder(), [(C2S, req)])
    ctx = msg.trace_context()
    assert ctx is not None
    assert (ctx.trace_id, ctx.parent_span_id, ctx.sampled, ctx.tracestate) == (
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "00f067aa0ba902b7",
        True,
        "rojo=00f067aa0ba902b7",
    )


@pytest.mark.parametrize(
    "value",
    [
        b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero span id
        b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
        b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # short trace id
    ],
)
def test_invalid_traceparent_is_ignored(value: bytes) -> None:
    (msg,) = feed(decoder(), [(C2S, b"GET / HTTP/1.1\r\ntraceparent: " + value + b"\r\n\r\n")])
    assert msg.trace_context() is None


def test_upgrade_101_hands_over_with_the_bytes_after_the_switch() -> None:
    req = b"GET /chat HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    early = b"\x81\x05hello"  # a client frame sent before the 101 arrived: held, then handed over
    resp = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x02hi"
    d = decoder()
    msgs = feed(d, [(C2S, req + early), (S2C, resp)])
    assert summary(msgs) == [("req", "GET", "/chat", len(req), 0, False)]
    ho = msgs[-1]
    assert isinstance(ho, HandOver)
    assert (ho.target, ho.client_data, ho.server_data) == ("websocket", early, b"\x81\x02hi")
    assert isinstance(ho.response, Response) and ho.response.status_code == 101


def test_refused_upgrade_resumes_http() -> None:
    req = b"GET /x HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n"
    msgs = feed(decoder(), [(C2S, req + GET), (S2C, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" + OK)])
    # the held request is parsed as soon as the refusal's head is read, so both requests come first
    assert [m[0:2] for m in summary(msgs)] == [("req", "GET"), ("req", "GET"), ("resp", 200), ("resp", 200)]


def test_connect_tunnel_stops_decoding() -> None:
    msgs = feed(
        decoder(),
        [
            # a tunnel carrying what no decoder here reads (TLS, h2c and HTTP/1 are handed over: issue 9)
            (C2S, b"CONNECT example.com:443 HTTP/1.1\r\n\r\nSSH-2.0-OpenSSH_9.2\r\n"),
            (S2C, b"HTTP/1.1 200 Connection established\r\n\r\nSSH-2.0-OpenSSH_9.2\r\n"),
        ],
    )
    assert summary(msgs) == [
        ("req", "CONNECT", "example.com:443", 36, 0, False),
        ("resp", 200, (), 39, 0, False),
    ]
    assert isinstance(msgs[-1], StopDecoding)
    assert msgs[0].to_json()["host"] == "example.com:443"


@pytest.mark.parametrize("split", [3, 10, 24, 30])
def test_http2_prior_knowledge_preface_is_handed_over(split: int) -> None:
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    data = preface + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # + an empty SETTINGS frame
    d = decoder()
    msgs = list(d.receive(C2S, memoryview(data[:split]), 1)) + list(
        d.receive(C2S, memoryview(data[split:]), 2)
    )
    (ho,) = msgs
    # once the whole preface is seen the connection is handed over; later bytes go to the next decoder
    assert isinstance(ho, HandOver) and ho.target == "h2c-prior-knowledge"
    assert ho.client_data == (data if split < len(preface) else data[:split])


def test_joined_mid_body_resyncs_on_next_request_without_inventing() -> None:
    d = Http1Decoder(DecoderContext(midstream=True))
    msgs = feed(
        d,
        [
            (C2S, b"dy of an earlier request, HTTP/1.1 mentioned\r\n\r\n" + GET),
            (S2C, b"tail of an earlier response\r\n" + OK),
        ],
    )
    assert summary(msgs) == [
        ("req", "GET", "/index.html?q=1", len(GET), 0, False),
        ("resp", 200, (), len(OK), 5, False),
    ]
    assert all(m.flags & Flag.MIDSTREAM for m in msgs)


def test_gap_inside_a_known_body_is_absorbed() -> None:
    d = decoder()
    feed(d, [(C2S, GET)])
    out = list(d.receive(S2C, memoryview(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123"), 5))
    out += d.receive_gap(S2C, 4, 6)
    out += d.receive(S2C, memoryview(b"89" + OK), 7)
    assert summary(out) == [("resp", 200, (), 39 + 10, 10, False), ("resp", 200, (), len(OK), 5, False)]
    assert out[0].flags & Flag.GAP and not out[1].flags & Flag.GAP


def test_gap_that_loses_framing_reports_sync_lost_and_resyncs() -> None:
    d = decoder()
    feed(d, [(C2S, GET + GET)])
    out = list(d.receive(S2C, memoryview(b"HTTP/1.1 200 OK\r\nContent-"), 5))
    out += d.receive_gap(S2C, 500, 6)
    out += d.receive(S2C, memoryview(b"garbage\r\n" + OK), 7)
    assert any(isinstance(m, SyncLost) and m.direction is S2C for m in out)
    responses = [m for m in out if isinstance(m, Response)]
    # the head the gap cut is still the first response (issue 9 item 4), then the one found by resync
    assert [(r.status_code, r.size, r.body_bytes) for r in responses] == [(200, 25, 0), (200, len(OK), 5)]
    assert all(r.flags & Flag.GAP for r in responses)
    assert out.index(responses[0]) < next(i for i, m in enumerate(out) if isinstance(m, SyncLost))


def test_roles_swapped_when_the_guessed_client_sends_responses() -> None:
    d = decoder()
    out = list(d.receive(C2S, memoryview(OK), 1))  # the guessed client sends a response
    assert isinstance(out[0], SwapRoles)
    # from now on the session labels the other direction C2S: it carries the requests
    out += d.receive(C2S, memoryview(GET), 2)
    assert [type(m).__name__ for m in out[1:]] == ["Response", "Request"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * 70000, "header block too large"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "bad request line"),
        (b"G\x00T / HTTP/1.1\r\n\r\n", "bad method"),
        (b"GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", "conflicting content-length"),
        (b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "bad content-length"),
        (b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", "unsupported transfer-coding in request"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
    ],
)
def test_garbage_raises_decode_error(data: bytes, reason: str) -> None:
    d = decoder()
    with pytest.raises(DecodeError) as exc:
        d.receive(C2S, memoryview(data), 1)
    assert exc.value.reason == reason


def test_body_capture_is_capped_and_textual_only() -> None:
    body = b'{"status": "ok", "items": [1, 2, 3]}'
    resp = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )
    png = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 4\r\n\r\n\x89PNG"
    msgs = feed(decoder(capture_body=12), [(C2S, GET + GET), (S2C, resp + png)])
    assert msgs[2].to_json()["body"] == '{"status": "'
    assert "body" not in msgs[3].to_json()
    assert "body" not in feed(decoder(), [(C2S, GET), (S2C, resp)])[1].to_json()


def test_record_fields_of_a_request() -> None:
    (msg,) = feed(
        decoder(),
        [(C2S, b"GET http://example.com/p/a%20b?x=1#frag HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")],
    )
    j = msg.to_json()
    assert (j["method"], j["scheme"], j["host"], j["path"], j["query"], j["version"], j["close"]) == (
        "GET",
        "http",
        "example.com",
        "/p/a%20b",
        "x=1",
        "HTTP/1.0",
        False,
    )


def test_endless_garbage_while_resyncing_is_bounded() -> None:
    from packetd.protocols.http1.decoder import MAX_RESYNC_SKIP, MAX_START_LINE

    d = Http1Decoder(DecoderContext(midstream=True))
    chunk = memoryview((b"binary \x00\xff no start line here " * 2048)[:65536])
    fed = 0
    with pytest.raises(DecodeError) as exc:
        while fed <= MAX_RESYNC_SKIP + 65536:
            d.receive(C2S, chunk, fed)
            fed += len(chunk)
            assert len(d._sides[0].buf) <= MAX_START_LINE  # only a possible start-line tail is kept
    assert exc.value.reason == "no message start found"
    assert fed + len(chunk) > MAX_RESYNC_SKIP >= fed - 65536  # raised by the chunk that crossed the bound


def test_pipelining_beyond_the_bound_frames_every_response_by_its_own_request() -> None:
    """The overflow rule (protocols/base.py PendingQueue): past MAX_PENDING unanswered requests a new one is
    not tracked, and the oldest keeps its place. Dropping the oldest instead framed the first response
    with the second request's method: a GET's body read as a HEAD answer's (no body), then as garbage."""
    from packetd.protocols.base import MAX_PENDING

    n = MAX_PENDING + 2
    get, head = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", b"HEAD /b HTTP/1.1\r\nHost: x\r\n\r\n"
    dec = decoder()
    requests = dec.receive(C2S, memoryview(get + head + get * (n - 2)), 1)
    assert sum(isinstance(m, Request) for m in requests) == n
    body = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    no_body = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"  # a HEAD answer: the length, no body
    responses = dec.receive(S2C, memoryview(body + no_body + body * (n - 2)), 2)
    got = [m.body_bytes for m in responses if isinstance(m, Response)]
    # by hand: the GET's 5 body bytes, the HEAD's none, then every GET's 5 (the untracked ones' too: a
    # request without a known method is framed as a GET's answer)
    assert got == [5, 0] + [5] * (n - 2)
