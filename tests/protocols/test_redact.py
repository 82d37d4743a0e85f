"""The redaction rules (protocols/redact.py) on crafted wire bytes: obs-fold, scheme case, name patterns,
query parameters; and the decoder options that configure them."""

from __future__ import annotations

import pytest

from packetd.protocols.base import Direction
from packetd.protocols.http1 import headers as http1_headers
from packetd.protocols.http1.decoder import Http1Decoder
from packetd.protocols.http1.headers import parse_header_block
from packetd.protocols.http1.options import HttpOptions
from packetd.protocols.options import parse_assignments
from packetd.protocols.redact import (
    DEFAULT_HEADERS,
    DEFAULT_QUERY,
    body,
    header_value,
    query,
    server_message,
    target,
)


def _request_json(raw: bytes, options: HttpOptions | None = None) -> dict:
    from packetd.protocols.base import DecoderContext

    dec = Http1Decoder(DecoderContext(options=options or HttpOptions()))
    msgs = dec.receive(Direction.C2S, memoryview(raw), 1_000)
    assert len(msgs) == 1
    return msgs[0].to_json()


def test_an_authorization_continued_on_an_obs_fold_line_is_redacted_whole() -> None:
    # RFC 9112 §5.2: the folded line continues the value; the secret is on the continuation
    raw = b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic\r\n dXNlcjpodW50ZXIy\r\nX: 1\r\n\r\n"
    headers = _request_json(raw)["headers"]
    assert headers["authorization"] == ["Basic [REDACTED]"]
    assert "dXNlcjpodW50ZXIy" not in repr(headers)
    assert headers["x"] == ["1"]


def test_a_header_line_seen_again_reads_the_same_and_a_redacted_value_is_never_remembered() -> None:
    block = b"\r\nHost: u:pw@example.com\r\nAuthorization: Bearer s3cr3t\r\nAccept:  */* \r\nAccept: x\r\n"
    want = {
        "host": ["[REDACTED]@example.com"],
        "authorization": ["Bearer [REDACTED]"],
        "accept": ["*/*", "x"],
    }
    names = frozenset({"authorization", "x-line-memo-test"})  # a set of its own: a fresh memo
    assert parse_header_block(block, names) == want
    assert parse_header_block(block, names) == want  # the second time from the line memo
    memo = http1_headers._LINES[names]
    assert "s3cr3t" not in repr(memo) and "pw@" not in repr(memo)
    assert memo == {"Accept:  */* ": ("accept", "*/*"), "Accept: x": ("accept", "x")}


def test_the_header_line_memo_is_bounded() -> None:
    names = frozenset({"x-line-memo-bound"})
    resets = http1_headers.line_cache_resets
    n = http1_headers.MAX_CACHED_LINES + 1
    block = "".join(f"\r\nX-{i}: {i}" for i in range(n)).encode()
    headers = parse_header_block(block, names)
    assert headers == {f"x-{i}": [str(i)] for i in range(n)}
    assert len(http1_headers._LINES[names]) == 1  # emptied when full, then the last line
    assert http1_headers.line_cache_resets == resets + 1
    long_line = b"\r\nX-Long: " + b"v" * http1_headers.MAX_CACHED_LINE
    assert parse_header_block(long_line, names) == {"x-long": ["v" * http1_headers.MAX_CACHED_LINE]}
    assert len(http1_headers._LINES[names]) == 1  # too long to be remembered


def test_a_folded_value_of_a_kept_header_is_unfolded() -> None:
    block = b"\r\nX-Note: one\r\n\ttwo\r\n"
    assert parse_header_block(block, DEFAULT_HEADERS) == {"x-note": ["one two"]}


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("Bearer abc", "Bearer [REDACTED]"),
        ("bearer abc", "bearer [REDACTED]"),
        ("BEARER abc", "BEARER [REDACTED]"),
        ("bAsIc dXNlcg==", "bAsIc [REDACTED]"),
        ("Digest username=x, response=y", "Digest [REDACTED]"),
        # not a scheme: the first word may be the secret itself
        ("hunter2 more", "[REDACTED]"),
        ("Company s3cr3t", "[REDACTED]"),
        ("justatoken", "[REDACTED]"),
    ],
)
def test_authorization_keeps_only_a_known_scheme_matched_case_insensitively(value: str, want: str) -> None:
    assert header_value("authorization", value, DEFAULT_HEADERS) == want


@pytest.mark.parametrize(
    "name",
    ["x-api-key", "x-auth-token", "proxy-authorization", "x-session-token", "client-secret",
     "x-db-password", "my-api-key", "x-apikey", "x-goog-authuser", "www-authenticate"],
)  # fmt: skip
def test_names_on_the_fixed_list_or_containing_a_sensitive_word_are_redacted(name: str) -> None:
    assert header_value(name, "v4lue", DEFAULT_HEADERS) == "[REDACTED]"


@pytest.mark.parametrize("name", ["content-type", "user-agent", "x-request-id", "accept", "host"])
def test_ordinary_names_are_kept(name: str) -> None:
    assert header_value(name, "v4lue", DEFAULT_HEADERS) == "v4lue"


def test_never_indexed_fields_are_redacted_whatever_their_name() -> None:
    assert header_value("x-plain", "v4lue", DEFAULT_HEADERS, sensitive=True) == "[REDACTED]"


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("a=1&password=hunter2", "a=1&password=[REDACTED]"),
        ("PASSWORD=x&Token=y&b=2", "PASSWORD=[REDACTED]&Token=[REDACTED]&b=2"),
        ("X-Amz-Signature=abc&X-Amz-Date=20240101", "X-Amz-Signature=[REDACTED]&X-Amz-Date=20240101"),
        ("AWSAccessKeyId=AKIA&Expires=1", "AWSAccessKeyId=[REDACTED]&Expires=1"),
        ("api%5Fkey=s&x=1", "api%5Fkey=[REDACTED]&x=1"),  # percent-encoded name
        ("sig=&key", "sig=&key"),  # no value: nothing to hide
        ("keyword=kept&monkey=kept", "keyword=kept&monkey=kept"),  # whole names only
    ],
)
def test_query_parameters_by_name(raw: str, want: str) -> None:
    assert query(raw, DEFAULT_QUERY) == want


def test_target_keeps_path_and_fragment() -> None:
    assert target("/a/b?token=x&c=1#top", DEFAULT_QUERY) == "/a/b?token=[REDACTED]&c=1#top"
    assert target("/a/b", DEFAULT_QUERY) == "/a/b"


def test_the_options_configure_both_rules() -> None:
    opts = parse_assignments(["http.redact=x-only,*private*", "http.redact_query=session"])["http"]
    raw = (
        b"GET /p?session=abc&token=kept HTTP/1.1\r\nHost: x\r\nX-Only: a\r\nMy-Private-Thing: b\r\n"
        b"Authorization: Bearer kept\r\n\r\n"
    )
    j = _request_json(raw, opts)
    assert j["query"] == "session=[REDACTED]&token=kept"
    assert j["target"] == "/p?session=[REDACTED]&token=kept"
    assert j["headers"]["x-only"] == ["[REDACTED]"] and j["headers"]["my-private-thing"] == ["[REDACTED]"]
    assert j["headers"]["authorization"] == ["Bearer kept"]  # the user replaced the default list


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        # MariaDB's 1064 quotes the statement, which quotes the value: one span, no fragment left
        (
            "You have an error in your SQL syntax; check the manual ... near 'SELEC 'hunter2'' at line 1",
            "You have an error in your SQL syntax; check the manual ... near ? at line 1",
        ),
        ('invalid input syntax for type integer: "hunter2"', "invalid input syntax for type integer: ?"),
        ("ERR unknown command 'X', with args beginning with: 'hunter2' ", "ERR unknown command ? "),
        ('E11000 dup key: { email: "a@b.c" }', "E11000 dup key: { email: ? }"),
        ("near 'SELECT ''hunter2", "near ?"),  # odd quotes: cut inside one, the rest is hidden
        ("x" * 240 + " near 'SELECT 'hunt", "x" * 240 + " near ?"),  # at the decoders' cap: the same
        ("WRONGTYPE Operation against a key holding the wrong kind of value", None),
        ("Table 'x.y' doesn't exist", "Table ? doesn't exist"),  # an apostrophe is not a quote
        ("Can't connect", None),
        (None, None),
    ],
)
def test_server_messages_hide_what_they_quote_back(raw: str | None, want: str | None) -> None:
    assert server_message(raw) == (raw if want is None else want)


def test_credentials_in_an_absolute_form_target_and_its_authority() -> None:
    # a request to a proxy (RFC 9112 §3.2.2) may carry userinfo; without a Host header the authority is
    # the record's host
    j = _request_json(b"GET http://bob:hunter2@example.com:8080/a?token=t&x=1 HTTP/1.1\r\n\r\n")
    assert j["target"] == "http://[REDACTED]@example.com:8080/a?token=[REDACTED]&x=1"
    assert j["host"] == "[REDACTED]@example.com:8080"
    assert "hunter2" not in repr(j)
    assert target("http://example.com/p@q?x=1", DEFAULT_QUERY) == "http://example.com/p@q?x=1"  # a path's @


def test_captured_bodies_by_content_type() -> None:
    form = "grant_type=password&password=hunter2"
    assert (
        body(form, "application/x-www-form-urlencoded", DEFAULT_QUERY)
        == "grant_type=password&password=[REDACTED]"
    )
    js = '{"a": {"Token": 12}, "list": [1], "secret": "x\\"y", "ok": true}'
    assert body(js, "application/json", DEFAULT_QUERY) == (
        '{"a": {"Token": "[REDACTED]"}, "list": [1], "secret": "[REDACTED]", "ok": true}'
    )
    assert body("password=hunter2", "text/plain", DEFAULT_QUERY) == "password=hunter2"  # not a form


def test_a_host_header_with_credentials_reaches_no_output() -> None:
    import json

    from packetd.pairing.roundtrip import Roundtrip, dumps
    from packetd.pipeline.metrics import Aggregator, RoundtripsToMetrics
    from packetd.pipeline.spans import RoundtripsToTraces
    from packetd.protocols.base import DecoderContext
    from packetd.protocols.registry import REGISTRY

    dec = Http1Decoder(DecoderContext(options=HttpOptions()))
    (req,) = dec.receive(
        Direction.C2S, memoryview(b"GET /x HTTP/1.1\r\nHost: bob:hunter2@example.com\r\n\r\n"), 1
    )
    (resp,) = dec.receive(Direction.S2C, memoryview(b"HTTP/1.1 204 No Content\r\n\r\n"), 2)
    rt = Roundtrip("http", "roundtrip", ("10.0.0.1", 1), ("10.0.0.2", 80), req, resp)
    metrics = RoundtripsToMetrics(
        {"http": {"requireLabels": list(REGISTRY["http"].semantics.labels)}}, ["http"]
    )
    agg = Aggregator()
    metrics.process(rt, agg)
    span = RoundtripsToTraces().process(rt)
    assert span is not None
    labels = [v for (_n, lab) in agg.take()["counters"] for _k, v in lab]
    assert "[REDACTED]@example.com" in labels
    for out in (dumps(rt).decode(), json.dumps(labels), json.dumps(span.attributes)):
        assert "hunter2" not in out


def test_a_grpc_message_hides_what_it_quotes() -> None:
    from packetd.protocols.http2.messages import GrpcResponse

    trailers = (
        (b"grpc-status", b"5"),
        (b"grpc-message", b"no user 'bob%40example.com' with token 'hunter2'"),
    )
    resp = GrpcResponse(
        start_ns=1, end_ns=2, size=10, flags=0, stream_id=1, status_code=200, headers=(), trailers=trailers,
        interim=(), header_bytes=5, body_bytes=0, reset=None, reset_by=None, messages=0, message_bytes=0,
        compressed=0,
    )  # fmt: skip
    j = resp.to_json()
    assert j["grpc_message"] == "no user ?" and j["grpc_status"] == 5
    assert j["trailers"]["grpc-message"] == ["no user ?"]  # the trailer itself, too
    assert "hunter2" not in repr(j)
