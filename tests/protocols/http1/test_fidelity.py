"""HTTP/1 on messy real-world traffic (issue 9): lenient request lines, answers that come before the request
body, gaps inside header blocks, captures that cut a response off, CONNECT tunnels that carry a protocol we
decode.

Each case goes through a real Session (decoder + FIFO matcher), as the flow layer drives it, and the
records are compared with what the crafted bytes say by hand.
"""

from __future__ import annotations

import pytest

from packetd.pairing.roundtrip import Roundtrip
from packetd.pairing.session import ProtocolStats, Session
from packetd.protocols.base import DecodeError, Direction, Kind, flag_names
from packetd.protocols.http1.decoder import H2_PREFACE, Http1Decoder
from packetd.protocols.http1.messages import Request
from packetd.protocols.registry import HTTP, HTTP2, Registry
from tests.helpers.h2wire import Conn, settings
from tests.helpers.live import validate_against_schema
from tests.helpers.tlsgen import handshake

BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbad"


def session(reg: Registry | None = None) -> tuple[Session, list[Roundtrip], dict[str, ProtocolStats]]:
    """A Session as the flow layer builds it; every record is checked against the public schema."""
    reg = reg or Registry([HTTP])
    records: list[Roundtrip] = []
    stats: dict[str, ProtocolStats] = {}

    def sink(rt: Roundtrip) -> None:
        validate_against_schema([rt.to_json()])
        records.append(rt)

    s = Session(
        reg["http"], reg, ("10.0.0.1", 5555), ("10.0.0.2", 80), sink,
        lambda name: stats.setdefault(name, ProtocolStats()), lambda name: None, False,
    )  # fmt: skip
    return s, records, stats


def summary(rt: Roundtrip) -> tuple:
    req = rt.request
    assert isinstance(req, Request)
    return rt.kind, req.method, req.target, req.version, rt.status, flag_names(rt.all_flags)


# (request line as sent, method, target, version) — all answered, as nginx answers them (400, 404 ...)
MALFORMED = [
    (b"GET/ HTTP/1.1", "GET", "/", "HTTP/1.1"),  # no blank after the method
    (b"GET /HTTP/1.1", "GET", "/HTTP/1.1", ""),  # none before the version: nginx reads an HTTP/0.9 target
    (b"GET / HTTP/1.", "GET", "/", "HTTP/1."),  # a cut version
    (b"GET  HTTP/1.1", "GET", "", "HTTP/1.1"),  # an empty target
    (b"GET HTTP/1.1", "GET", "", "HTTP/1.1"),
    (b"GET / http/1.1", "GET", "/", "http/1.1"),
    (b"GET / HTTP/1.1 ", "GET", "/", "HTTP/1.1"),  # a trailing blank
    (b" GET / HTTP/1.1", "GET", "/", "HTTP/1.1"),  # a leading blank
    (b"GET\t/ HTTP/1.1", "GET", "/", "HTTP/1.1"),
    (b"GET /a b HTTP/1.1", "GET", "/a b", "HTTP/1.1"),  # a blank inside the target
    (b"GET", "GET", "", ""),
    (b"GET /", "GET", "/", ""),  # HTTP/0.9 style
    (b"OPTIONS * HTTP/1.", "OPTIONS", "*", "HTTP/1."),
]


@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
@pytest.mark.parametrize(("line", "method", "target", "version"), MALFORMED)
@pytest.mark.parametrize("bytewise", [False, True])
def test_malformed_request_line_pairs_with_its_answer(
    line: bytes, method: str, target: str, version: str, eol: bytes, bytewise: bool
) -> None:
    s, records, stats = session()
    req = line + eol + b"Host: x" + eol + eol
    if bytewise:
        for i in range(len(req)):
            s.data(0, memoryview(req[i : i + 1]), 10 + i)
    else:
        s.data(0, memoryview(req), 10)
    s.data(1, memoryview(BAD_REQUEST), 1000)
    s.close(2000)
    assert [summary(r) for r in records] == [(Kind.ROUNDTRIP, method, target, version, "400", ["malformed"])]
    assert records[0].request is not None and records[0].request.size == len(req)
    assert stats["http"].resets == 0 and stats["http"].pairing.orphans == 0


# Request lines with a single blank: the conformant parse's find(" ") and rfind(" ") meet (sp1 == sp2), so
# its target slice line[sp1 + 1 : sp2] starts past its end. Python gives b"" for that; the compiled build's
# bytes slice (mypyc's CPyBytes_GetSlice) raised SystemError "Negative size passed to
# PyBytes_FromStringAndSize" instead, so the decoder only slices once sp1 < sp2 holds. (line, method,
# target, version, the request's size) by hand: size = line + CRLF + "Host: x" CRLF + CRLF = len(line) + 13.
ONE_BLANK = [
    (b"GET/ HTTP/1.1", "GET", "/", "HTTP/1.1"),
    (b"GET /HTTP/1.1", "GET", "/HTTP/1.1", ""),
    (b"GET HTTP/1.1", "GET", "", "HTTP/1.1"),
    (b"GET /x", "GET", "/x", ""),
    (b"GET ", "GET", "", ""),
    (b"POST/upload HTTP/1.0", "POST", "/upload", "HTTP/1.0"),
]


@pytest.mark.parametrize(("line", "method", "target", "version"), ONE_BLANK)
@pytest.mark.parametrize("bytewise", [False, True])
def test_one_blank_request_lines_decode_alike_in_both_builds(
    line: bytes, method: str, target: str, version: str, bytewise: bool
) -> None:
    d = Http1Decoder()
    req = line + b"\r\nHost: x\r\n\r\n"
    chunks = [req[i : i + 1] for i in range(len(req))] if bytewise else [req]
    msgs = [m for i, c in enumerate(chunks) for m in d.receive(Direction.C2S, memoryview(c), 10 + i)]
    assert len(msgs) == 1 and isinstance(msgs[0], Request)
    r = msgs[0]
    assert (r.method, r.target, r.version, r.host, r.size) == (method, target, version, "x", len(line) + 13)
    assert flag_names(r.flags) == ["malformed"]


@pytest.mark.parametrize(
    ("line", "method"),
    [(b"get / HTTP/1.1", "get"), (b"FOO / HTTP/1.1", "FOO"), (b"M-SEARCH * HTTP/1.1", "M-SEARCH")],
)
def test_lower_case_and_unknown_methods_are_requests_not_malformed(line: bytes, method: str) -> None:
    # a method is any token (RFC 9110 §9.1): syntactically these lines conform, so no flag
    s, records, _ = session()
    s.data(0, memoryview(line + b"\r\nHost: x\r\n\r\n"), 10)
    s.data(1, memoryview(BAD_REQUEST), 20)
    assert [summary(r) for r in records] == [
        (Kind.ROUNDTRIP, method, line.split()[1].decode(), "HTTP/1.1", "400", [])
    ]


def test_a_conformant_request_after_a_malformed_one_is_not_flagged() -> None:
    s, records, _ = session()
    s.data(0, memoryview(b"GET/ HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n"), 10)
    s.data(1, memoryview(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n" * 2), 20)
    assert [flag_names(r.all_flags) for r in records] == [["malformed"], []]


def test_empty_lines_before_a_request_line_are_ignored() -> None:
    # RFC 9112 §2.2; old clients send a CRLF after a POST body
    s, records, stats = session()
    post = b"POST /p HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"
    s.data(0, memoryview(post + b"\r\n" + b"GET /next HTTP/1.1\r\n\r\n"), 10)
    s.data(1, memoryview(b"HTTP/1.1 204 No Content\r\n\r\n" * 2), 20)
    assert [(r.operation, flag_names(r.all_flags)) for r in records] == [("POST", []), ("GET", [])]
    assert stats["http"].resets == 0


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", "bad request line"),  # a TLS ClientHello
        (b"\x00\x01\x02\x03 binary\r\n\r\n", "bad method"),
        (b"G\x00T / HTTP/1.1\r\n\r\n", "bad method"),
        (b"<html> / HTTP/1.1\r\n\r\n", "bad method"),
        (b"A" * 65 + b" / HTTP/1.1\r\n\r\n", "bad method"),  # longer than any method
    ],
)
def test_bytes_that_cannot_be_a_request_line_stay_a_decode_error(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as exc:
        Http1Decoder().receive(Direction.C2S, memoryview(data), 1)
    assert exc.value.reason == reason


# -- answers that come before the request body (item 2) ------------------------------------------------------
UPLOAD_HEAD = b"POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n"
CREATED = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 8\r\n\r\ncreated\n"


def records_of(steps: list[tuple[int, bytes | None]]) -> tuple[list[Roundtrip], dict]:
    """Feed (direction, bytes) steps, None bytes meaning that direction's EOF; then close."""
    s, records, stats = session()
    for ts, (d, data) in enumerate(steps, start=1):
        if data is None:
            s.eof(d, ts * 10)
        else:
            s.data(d, memoryview(data), ts * 10)
    s.close(10_000)
    return records, stats


def test_final_answer_before_the_body_pairs_and_the_body_is_counted() -> None:
    records, stats = records_of([(0, UPLOAD_HEAD), (1, CREATED), (0, b"0123456789")])
    (rt,) = records
    assert (rt.kind, rt.operation, rt.status, flag_names(rt.all_flags)) == (Kind.ROUNDTRIP, "POST", "201", [])
    assert rt.request is not None and rt.request.to_json()["body_bytes"] == 10
    assert rt.request.size == len(UPLOAD_HEAD) + 10
    assert rt.response is not None and rt.response.to_json()["interim"] == [100]
    assert stats["http"].pairing.orphans == 0 and stats["http"].pairing.unanswered == 0


def test_answer_in_the_middle_of_the_body_then_the_next_request() -> None:
    nxt = b"GET /next HTTP/1.1\r\n\r\n"
    records, stats = records_of(
        [
            (0, UPLOAD_HEAD + b"0123"),
            (1, b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"),
            (0, b"456789" + nxt),
            (1, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ]
    )
    assert [(r.kind, r.operation, r.status) for r in records] == [
        (Kind.ROUNDTRIP, "POST", "401"),
        (Kind.ROUNDTRIP, "GET", "200"),
    ]
    assert records[0].request is not None and records[0].request.to_json()["body_bytes"] == 10
    assert stats["http"].pairing.orphans == 0


def test_answer_to_a_body_never_sent_pairs_with_the_truncated_request() -> None:
    # nginx refuses a too large upload with 413 at once; curl then sends no body and closes
    records, stats = records_of(
        [
            (0, UPLOAD_HEAD),
            (1, b"HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
            (1, None),
            (0, None),
        ]
    )
    (rt,) = records
    assert (rt.kind, rt.operation, rt.status, flag_names(rt.all_flags)) == (
        Kind.ROUNDTRIP,
        "POST",
        "413",
        ["truncated"],  # the request ended before its declared length
    )
    assert rt.request is not None and rt.request.to_json()["body_bytes"] == 0
    assert stats["http"].pairing.orphans == 0


def test_answer_before_a_chunked_body() -> None:
    head = b"PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
    records, _ = records_of(
        [(0, head), (1, CREATED), (0, b"5\r\nhello\r\n0\r\n\r\n"), (0, b"GET / HTTP/1.1\r\n\r\n")]
    )
    assert [(r.kind, r.operation, r.status) for r in records] == [
        (Kind.ROUNDTRIP, "PUT", "201"),
        (Kind.UNANSWERED, "GET", None),
    ]
    assert records[0].request is not None and records[0].request.to_json()["body_bytes"] == 5


# -- a gap inside a request's header block (item 3), a response the capture cut off (item 4) ---------------
def run_steps(steps: list[tuple[str, int, bytes | int | None]]) -> tuple[list[Roundtrip], dict]:
    """("data", d, bytes) | ("gap", d, nbytes) | ("eof", d, None) steps through a Session, then close."""
    s, records, stats = session()
    for ts, (what, d, arg) in enumerate(steps, start=1):
        if what == "data":
            assert isinstance(arg, bytes)
            s.data(d, memoryview(arg), ts * 10)
        elif what == "gap":
            assert isinstance(arg, int)
            s.gap(d, arg, ts * 10)
        else:
            s.eof(d, ts * 10)
    s.close(10_000)
    return records, stats


def brief(rt: Roundtrip) -> tuple:
    return rt.kind, rt.operation, rt.status, flag_names(rt.all_flags)


def test_gap_inside_a_request_header_block_keeps_the_roundtrip() -> None:
    records, _ = run_steps(
        [
            ("data", 0, b"GET /seen?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Ag"),
            ("gap", 0, 300),
            ("data", 1, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            ("data", 0, b"GET /next HTTP/1.1\r\n\r\n"),
            ("data", 1, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
        ]
    )
    assert [brief(r) for r in records] == [
        (Kind.ROUNDTRIP, "GET", "200", ["gap", "truncated"]),
        (Kind.ROUNDTRIP, "GET", "404", ["gap"]),  # the next message after a gap carries it (unchanged rule)
    ]
    first = records[0].request
    assert first is not None
    j = first.to_json()
    assert (j["target"], j["host"], j["version"], j["headers"], j["size"]) == (
        "/seen?q=1",
        "example.com",
        "HTTP/1.1",
        {"host": ["example.com"]},  # the cut field line is not shown
        len(b"GET /seen?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Ag"),
    )
    assert records[1].request is not None and records[1].request.to_json()["target"] == "/next"


def test_gap_inside_the_request_line_keeps_what_was_seen() -> None:
    records, _ = run_steps(
        [
            ("data", 0, b"POST /api/v1/ite"),
            ("gap", 0, 1000),
            ("data", 1, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"),
        ]
    )
    assert [brief(r) for r in records] == [(Kind.ROUNDTRIP, "POST", "201", ["gap", "truncated"])]
    assert records[0].request is not None and records[0].request.to_json()["target"] == "/api/v1/ite"


@pytest.mark.parametrize(
    ("cut", "status"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nServ", "200"),  # inside the header block
        (b"HTTP/1.1 404 Not Fo", "404"),  # inside the status line
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nsome of the body", "200"),  # inside the body
    ],
)
def test_response_cut_off_by_the_end_of_the_capture_is_a_truncated_roundtrip(cut: bytes, status: str) -> None:
    records, stats = run_steps(
        [("data", 0, b"GET /x HTTP/1.1\r\n\r\n"), ("data", 1, cut), ("eof", 0, None), ("eof", 1, None)]
    )
    assert [brief(r) for r in records] == [(Kind.ROUNDTRIP, "GET", status, ["truncated"])]
    assert records[0].response is not None and records[0].response.size == len(cut)
    assert stats["http"].pairing.unanswered == 0


def test_response_head_cut_by_a_gap_pairs_and_the_next_exchange_too() -> None:
    records, _ = run_steps(
        [
            ("data", 0, b"GET /a HTTP/1.1\r\n\r\n"),
            ("data", 1, b"HTTP/1.1 503 Service Unavailable\r\nRetry-Af"),
            ("gap", 1, 4000),
            ("data", 0, b"GET /b HTTP/1.1\r\n\r\n"),
            ("data", 1, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        ]
    )
    assert [brief(r) for r in records] == [
        (Kind.ROUNDTRIP, "GET", "503", ["gap", "truncated"]),
        (Kind.ROUNDTRIP, "GET", "200", ["gap"]),
    ]
    assert records[0].error  # 503 from what was seen of the status line


def test_bytes_that_do_not_begin_a_message_give_no_record_at_a_gap() -> None:
    records, _ = run_steps(
        [("data", 0, b"GET /a HTTP/1.1\r\n\r\n"), ("data", 1, b"HTTP/1.1 100 Contin"), ("eof", 1, None)]
    )
    assert [brief(r) for r in records] == [(Kind.UNANSWERED, "GET", None, [])]  # an interim is no answer


# -- CONNECT tunnels hand over to what they carry (item 5) -----------------------------------------------------
CONNECT = b"CONNECT shop.example.test:443 HTTP/1.1\r\nHost: shop.example.test:443\r\n\r\n"
ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"


def tunnel_session() -> tuple[Session, list[Roundtrip], dict[str, ProtocolStats]]:
    return session(Registry([HTTP, HTTP2]))


@pytest.mark.parametrize("early", [False, True])  # the ClientHello sent before the 200 arrived, or after
def test_connect_tunnel_carrying_tls_gives_an_encrypted_handshake_record(early: bool) -> None:
    hs = handshake("shop.example.test", ["h2", "http/1.1"], ["h2"])
    s, records, stats = tunnel_session()
    if early:
        s.data(0, memoryview(CONNECT + hs.client_hello), 1)
        s.data(1, memoryview(ESTABLISHED), 2)
    else:
        s.data(0, memoryview(CONNECT), 1)
        s.data(1, memoryview(ESTABLISHED), 2)
        s.data(0, memoryview(hs.client_hello[:4]), 3)  # a ClientHello split after 4 bytes
        s.data(0, memoryview(hs.client_hello[4:]), 4)
    s.data(1, memoryview(hs.server_hello), 5)
    s.data(0, memoryview(b"\x17\x03\x03\x00\x05ciphr"), 6)  # application data: not decoded
    s.close(10)
    got = [(r.kind, r.operation, r.status, flag_names(r.all_flags)) for r in records]
    assert got == [
        (Kind.ROUNDTRIP, "CONNECT", "200", []),
        (Kind.HANDSHAKE, "TLS", "OK", ["encrypted"]),
    ]
    j = records[1].to_json()
    assert j["request"]["tls"]["server_name"] == "shop.example.test"
    assert j["request"]["tls"]["alpn"] == ["h2", "http/1.1"]  # as offered (TLS 1.3 answers it encrypted)
    assert stats["http"].encrypted == 1 and stats["http"].resets == 0


def test_connect_tunnel_carrying_h2c_is_handed_to_http2() -> None:
    conn = Conn()
    s, records, stats = tunnel_session()
    s.data(0, memoryview(CONNECT), 1)
    s.data(1, memoryview(ESTABLISHED), 2)
    preface = H2_PREFACE + settings(header_table_size=4096)
    s.data(0, memoryview(preface[:10]), 3)  # the preface split across segments
    s.data(0, memoryview(preface[10:] + conn.get(1, "/inside")), 4)
    s.data(1, memoryview(settings(max_concurrent_streams=100) + conn.status(1, 200, end=True)), 5)
    s.close(10)
    got = [(r.protocol, r.kind, r.operation, r.status) for r in records]
    assert got == [("http", Kind.ROUNDTRIP, "CONNECT", "200"), ("http2", Kind.ROUNDTRIP, "GET", "200")]
    assert records[1].to_json()["request"]["path"] == "/inside"
    assert stats["http"].handovers == 1


def test_connect_tunnel_carrying_http1_is_decoded() -> None:
    s, records, stats = tunnel_session()
    s.data(0, memoryview(CONNECT + b"GET /a HT"), 1)  # sent before the answer, cut inside the line
    s.data(1, memoryview(ESTABLISHED), 2)
    s.data(0, memoryview(b"TP/1.1\r\nHost: shop\r\n\r\n"), 3)
    s.data(1, memoryview(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), 4)
    s.data(0, memoryview(b"POST /b HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"), 5)
    s.data(1, memoryview(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"), 6)
    s.close(10)
    got = [(r.kind, r.operation, r.status, r.request.to_json()["target"]) for r in records if r.request]
    assert got == [
        (Kind.ROUNDTRIP, "CONNECT", "200", "shop.example.test:443"),
        (Kind.ROUNDTRIP, "GET", "200", "/a"),
        (Kind.ROUNDTRIP, "POST", "201", "/b"),
    ]
    assert stats["http"].resets == 0


def test_connect_refused_is_not_a_tunnel() -> None:
    s, records, _ = tunnel_session()
    s.data(0, memoryview(CONNECT), 1)
    s.data(1, memoryview(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"), 2)
    s.data(0, memoryview(b"GET / HTTP/1.1\r\n\r\n"), 3)
    s.data(1, memoryview(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), 4)
    assert [(r.operation, r.status) for r in records] == [("CONNECT", "407"), ("GET", "200")]


@pytest.mark.parametrize(
    "head",
    [
        b"GET /m HTTP/1.1\nHost: x\r\n\r\n",  # a bare LF after the start line only
        b"GET /m HTTP/1.1\r\nHost: x\n\r\n",
        b"GET /m HTTP/1.1\nHost: x\n\n",
    ],
)
def test_mixed_line_ends_frame_the_same_request(head: bytes) -> None:
    s, records, _ = session()
    s.data(0, memoryview(head), 10)
    s.data(1, memoryview(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"), 20)  # bare LFs from the server too
    assert [summary(r) for r in records] == [(Kind.ROUNDTRIP, "GET", "/m", "HTTP/1.1", "200", [])]
    assert records[0].request is not None and records[0].request.to_json()["headers"] == {"host": ["x"]}


def test_answer_before_the_end_of_the_request_head_pairs() -> None:
    # nginx answers a header line longer than its buffers with 400 before the blank line arrives
    big = b"X-Big: " + b"a" * 9000 + b"\r\n"
    records, stats = records_of(
        [
            (0, b"GET /h HTTP/1.1\r\nHost: x\r\n" + big),
            (1, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
            (1, None),
            (0, None),
        ]
    )
    assert [brief(r) for r in records] == [(Kind.ROUNDTRIP, "GET", "400", ["truncated"])]
    assert stats["http"].pairing.orphans == 0


def test_a_pipelined_request_in_progress_does_not_hold_the_answer_to_an_earlier_one() -> None:
    records, _ = records_of(
        [
            (0, b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\nHo"),
            (1, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
            (0, b"st: x\r\n\r\n"),
            (1, b"HTTP/1.1 204 No Content\r\n\r\n"),
        ]
    )
    assert [(r.operation, r.status, r.request.to_json()["target"]) for r in records if r.request] == [
        ("GET", "200", "/1"),
        ("GET", "204", "/2"),
    ]


def test_a_client_hello_after_a_hand_over_is_not_sniffed_as_the_connection_start() -> None:
    # found by fuzzing the session: the guessed server sends an HTTP/2 preface first (roles swap, the
    # connection is handed to HTTP/2), then a ClientHello as its first "client" bytes: the TLS sniff
    # replaced the HTTP/2 decoder under its stream-id matcher, and the hello escaped as an AttributeError
    hs = handshake("a.test", ["h2"], ["h2"])
    s, records, stats = tunnel_session()
    s.data(1, memoryview(b"GET / HTTP/1.1\r\nHTTP/1.1 100 Continue\r\n\r\n" + H2_PREFACE), 1)
    assert s.protocol == "http2" and stats["http"].handovers == 1
    s.data(1, memoryview(hs.client_hello), 2)  # raised AttributeError out of the session before
    s.close(3)
    assert [(r.kind, r.operation) for r in records] == [(Kind.UNANSWERED, "GET")]
    assert stats["http2"].encrypted == 0
