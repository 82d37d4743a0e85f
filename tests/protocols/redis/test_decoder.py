"""Redis decoder table cases, each run whole, byte by byte, and with trailing bytes that must survive.

Expected values are worked out from the bytes of each case: sizes are the wire bytes of each RESP value
(type bytes, length lines and CRLFs included), written as `len()` of the literal message that carries them;
element counts are the declared aggregate lengths; statuses are the error prefixes as sent.
"""

from __future__ import annotations

import pytest

from packetd.capture.pcapwrite import ethernet, ipv4_tcp
from packetd.engine import Engine, EngineConfig, Rule
from packetd.protocols.base import DecodeError, DecoderContext, Flag, SyncLost
from packetd.protocols.redis.decoder import MAX_LINE, RedisDecoder
from packetd.protocols.redis.messages import Push, Request, Response, UnrepliedRequest
from packetd.protocols.redis.options import RedisOptions
from packetd.protocols.registry import REDIS, Registry
from tests.helpers.decoding import C2S, MODES, S2C, feed, open_session, project, run


def cmd(*words: bytes | str) -> bytes:
    """A command as every client library frames it: an array of bulk strings."""
    bs = [w.encode() if isinstance(w, str) else w for w in words]
    return b"*%d\r\n" % len(bs) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in bs)


SENT_REQ = cmd("GET", "sentinel")
SENT_RESP = b"$2\r\nok\r\n"
SENTINEL = [(C2S, SENT_REQ), (S2C, SENT_RESP)]
SENTINEL_SUMMARY = [("req", "GET", 1, len(SENT_REQ)), ("resp", "bulk_string", None, "OK", len(SENT_RESP), 1)]


def decoder(**opts: object) -> RedisDecoder:
    return RedisDecoder(DecoderContext(options=RedisOptions(**opts)))  # type: ignore[arg-type]


def summary(msgs: list) -> list[tuple]:
    out: list[tuple] = []
    for m in msgs:
        if isinstance(m, UnrepliedRequest):
            out.append(("noreply", m.command, m.args, m.size))
        elif isinstance(m, Request):
            out.append(("req", m.command, m.args, m.size))
        elif isinstance(m, Response):
            out.append(("resp", m.type, m.elements, m.status(), m.size, m.replies))
        elif isinstance(m, Push):
            out.append(("push", m.kind, m.type, m.elements, m.size))
    return out


BIG = bytes(range(256)) * 80  # 20 480 binary-safe bytes, CRLFs included
SUB_A = b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"
SUB_B = b"*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n"
MSG_A = b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$5\r\nhello\r\n"
PSUB = b"*3\r\n$10\r\npsubscribe\r\n$2\r\nh*\r\n:3\r\n"
PMSG = b"*4\r\n$8\r\npmessage\r\n$2\r\nh*\r\n$2\r\nhi\r\n$1\r\nx\r\n"
PONG2 = b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
UNSUB_A = b"*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:2\r\n"
UNSUB_B = b"*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:1\r\n"
PUNSUB = b"*3\r\n$12\r\npunsubscribe\r\n$2\r\nh*\r\n:0\r\n"
HELLO_MAP = b"%2\r\n+server\r\n+redis\r\n+proto\r\n:3\r\n"
ATTR_THEN_ARRAY = b"|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*1\r\n:1\r\n"
STREAMED_STR = b"$?\r\n;4\r\nHell\r\n;5\r\no wor\r\n;1\r\nd\r\n;0\r\n"
STREAMED_ARR = b"*?\r\n:1\r\n*?\r\n:2\r\n.\r\n:3\r\n.\r\n"
PUSH_MSG = b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n"
RESP3_REPLIES = [
    (b"_\r\n", "null", None, "OK"),
    (b",3.14\r\n", "double", None, "OK"),
    (b"#t\r\n", "boolean", None, "OK"),
    (b"!21\r\nSYNTAX invalid syntax\r\n", "blob_error", None, "SYNTAX"),
    (b"=15\r\ntxt:Some string\r\n", "verbatim_string", None, "OK"),
    (b"(3492890328409238509324850943850943825024385\r\n", "big_number", None, "OK"),
    (b"~2\r\n:1\r\n:2\r\n", "set", 2, "OK"),
    (ATTR_THEN_ARRAY, "array", 1, "OK"),
    (STREAMED_STR, "bulk_string", None, "OK"),
    (STREAMED_ARR, "array", 3, "OK"),
]
MONITOR_LINE = b'+1700000000.123456 [0 127.0.0.1:5555] "get" "k"\r\n'

CASES: dict[str, tuple[list, list]] = {
    "set-get-pipelined-in-one-segment": (
        [(C2S, cmd("SET", "k", "hello") + cmd("GET", "k")), (S2C, b"+OK\r\n$5\r\nhello\r\n")],
        [
            ("req", "SET", 2, len(cmd("SET", "k", "hello"))),
            ("req", "GET", 1, len(cmd("GET", "k"))),
            ("resp", "simple_string", None, "OK", 5, 1),
            ("resp", "bulk_string", None, "OK", 11, 1),
        ],
    ),
    "inline-commands-pipelined-and-bare-lf": (
        [(C2S, b"PING\r\nPING\r\nset a b\n\r\n"), (S2C, b"+PONG\r\n+PONG\r\n+OK\r\n")],
        # the empty line is skipped by the server, without a reply
        [("req", "PING", 0, 6), ("req", "PING", 0, 6), ("req", "SET", 2, 8)]
        + [("resp", "simple_string", None, "OK", 7, 1)] * 2
        + [("resp", "simple_string", None, "OK", 5, 1)],
    ),
    "error-prefix-is-the-status": (
        [
            (C2S, cmd("LLEN", "k")),
            (S2C, b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"),
        ],
        [("req", "LLEN", 1, len(cmd("LLEN", "k"))), ("resp", "error", None, "WRONGTYPE", 68, 1)],
    ),
    "nested-arrays-and-nulls": (
        [
            (C2S, cmd("EXEC") + cmd("GET", "missing") + cmd("BLPOP", "q", "1")),
            (S2C, b"*3\r\n*2\r\n:1\r\n$-1\r\n*-1\r\n+OK\r\n" + b"$-1\r\n" + b"*-1\r\n"),
        ],
        [
            ("req", "EXEC", 0, len(cmd("EXEC"))),
            ("req", "GET", 1, len(cmd("GET", "missing"))),
            ("req", "BLPOP", 2, len(cmd("BLPOP", "q", "1"))),
            ("resp", "array", 3, "OK", len(b"*3\r\n*2\r\n:1\r\n$-1\r\n*-1\r\n+OK\r\n"), 1),
            ("resp", "null", None, "OK", 5, 1),
            ("resp", "null", None, "OK", 5, 1),
        ],
    ),
    "resp3-every-type-and-a-push-between-replies": (
        [
            (C2S, cmd("HELLO", "3") + b"".join(cmd(f"CMD{i}") for i in range(len(RESP3_REPLIES)))),
            (S2C, HELLO_MAP + RESP3_REPLIES[0][0] + PUSH_MSG + b"".join(r[0] for r in RESP3_REPLIES[1:])),
        ],
        [("req", "HELLO", 1, len(cmd("HELLO", "3")))]
        + [("req", f"CMD{i}", 0, len(cmd(f"CMD{i}"))) for i in range(len(RESP3_REPLIES))]
        + [("resp", "map", 2, "OK", len(HELLO_MAP), 1)]
        + [("resp", "null", None, "OK", 3, 1), ("push", "message", "push", 3, len(PUSH_MSG))]
        + [("resp", t, e, st, len(raw), 1) for raw, t, e, st in RESP3_REPLIES[1:]],
    ),
    "pubsub-confirmations-pair-deliveries-are-pushes": (
        [
            (C2S, cmd("SUBSCRIBE", "a", "b")),
            (S2C, SUB_A + SUB_B + MSG_A),
            (C2S, cmd("PSUBSCRIBE", "h*")),
            (S2C, PSUB + PMSG),
            (C2S, cmd("PING")),
            (S2C, PONG2),
            (C2S, cmd("UNSUBSCRIBE")),
            (S2C, MSG_A + UNSUB_A + UNSUB_B),
            (C2S, cmd("PUNSUBSCRIBE")),
            (S2C, PUNSUB),
        ],
        [
            ("req", "SUBSCRIBE", 2, len(cmd("SUBSCRIBE", "a", "b"))),
            ("resp", "array", 3, "OK", len(SUB_A) + len(SUB_B), 2),
            ("push", "message", "array", 3, len(MSG_A)),
            ("req", "PSUBSCRIBE", 1, len(cmd("PSUBSCRIBE", "h*"))),
            ("resp", "array", 3, "OK", len(PSUB), 1),
            ("push", "pmessage", "array", 4, len(PMSG)),
            ("req", "PING", 0, len(cmd("PING"))),
            ("resp", "array", 2, "OK", len(PONG2), 1),
            ("req", "UNSUBSCRIBE", 0, len(cmd("UNSUBSCRIBE"))),
            ("push", "message", "array", 3, len(MSG_A)),
            ("resp", "array", 3, "OK", len(UNSUB_A) + len(UNSUB_B), 2),
            ("req", "PUNSUBSCRIBE", 0, len(cmd("PUNSUBSCRIBE"))),
            ("resp", "array", 3, "OK", len(PUNSUB), 1),
        ],
    ),
    "client-reply-off-and-skip-keep-pairing-aligned": (
        [
            (
                C2S,
                cmd("CLIENT", "REPLY", "SKIP")
                + cmd("SET", "a", "1")
                + cmd("GET", "a")
                + cmd("CLIENT", "REPLY", "OFF")
                + cmd("SET", "b", "2")
                + cmd("CLIENT", "REPLY", "ON"),
            ),
            (S2C, b"$1\r\n1\r\n+OK\r\n"),
        ],
        [
            ("noreply", "CLIENT REPLY", 2, len(cmd("CLIENT", "REPLY", "SKIP"))),
            ("noreply", "SET", 2, len(cmd("SET", "a", "1"))),
            ("req", "GET", 1, len(cmd("GET", "a"))),
            ("noreply", "CLIENT REPLY", 2, len(cmd("CLIENT", "REPLY", "OFF"))),
            ("noreply", "SET", 2, len(cmd("SET", "b", "2"))),
            ("req", "CLIENT REPLY", 2, len(cmd("CLIENT", "REPLY", "ON"))),
            ("resp", "bulk_string", None, "OK", 7, 1),
            ("resp", "simple_string", None, "OK", 5, 1),
        ],
    ),
    "multi-exec-and-an-aborted-transaction": (
        [
            (C2S, cmd("MULTI") + cmd("SET", "a", "1") + cmd("INCR", "a") + cmd("EXEC")),
            (S2C, b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n:2\r\n"),
            (C2S, cmd("MULTI") + cmd("NOSUCH") + cmd("EXEC")),
            (S2C, b"+OK\r\n-ERR unknown command 'NOSUCH'\r\n-EXECABORT Transaction discarded.\r\n"),
        ],
        [
            ("req", "MULTI", 0, len(cmd("MULTI"))),
            ("req", "SET", 2, len(cmd("SET", "a", "1"))),
            ("req", "INCR", 1, len(cmd("INCR", "a"))),
            ("req", "EXEC", 0, len(cmd("EXEC"))),
            ("resp", "simple_string", None, "OK", 5, 1),
            ("resp", "simple_string", None, "OK", 9, 1),
            ("resp", "simple_string", None, "OK", 9, 1),
            ("resp", "array", 2, "OK", len(b"*2\r\n+OK\r\n:2\r\n"), 1),
            ("req", "MULTI", 0, len(cmd("MULTI"))),
            ("req", "NOSUCH", 0, len(cmd("NOSUCH"))),
            ("req", "EXEC", 0, len(cmd("EXEC"))),
            ("resp", "simple_string", None, "OK", 5, 1),
            ("resp", "error", None, "ERR", len(b"-ERR unknown command 'NOSUCH'\r\n"), 1),
            ("resp", "error", None, "EXECABORT", len(b"-EXECABORT Transaction discarded.\r\n"), 1),
        ],
    ),
    "container-commands-get-their-subcommand-by-shape": (
        [
            (
                C2S,
                cmd("CLIENT", "SETNAME", "x")
                + cmd("config", "get", "maxmemory")
                + cmd("XINFO", "STREAM", "s")
                + cmd("CLIENT", b"\x00\x01")
                + cmd("FT.SEARCH", "idx", "q"),
            ),
            (S2C, b"+OK\r\n*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n%1\r\n+length\r\n:0\r\n-ERR x\r\n*0\r\n"),
        ],
        [
            ("req", "CLIENT SETNAME", 2, len(cmd("CLIENT", "SETNAME", "x"))),
            ("req", "CONFIG GET", 2, len(cmd("config", "get", "maxmemory"))),
            ("req", "XINFO STREAM", 2, len(cmd("XINFO", "STREAM", "s"))),
            ("req", "CLIENT", 1, len(cmd("CLIENT", b"\x00\x01"))),
            ("req", "FT.SEARCH", 2, len(cmd("FT.SEARCH", "idx", "q"))),
            ("resp", "simple_string", None, "OK", 5, 1),
            ("resp", "array", 2, "OK", len(b"*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n"), 1),
            ("resp", "map", 1, "OK", len(b"%1\r\n+length\r\n:0\r\n"), 1),
            ("resp", "error", None, "ERR", 8, 1),
            ("resp", "array", 0, "OK", 4, 1),
        ],
    ),
    "binary-value-split-anywhere": (
        [
            (C2S, cmd("SET", "k", BIG)),
            (S2C, b"+OK\r\n"),
            (C2S, cmd("GET", "k")),
            (S2C, b"$20480\r\n" + BIG + b"\r\n"),
        ],
        [
            ("req", "SET", 2, len(cmd("SET", "k", BIG))),
            ("resp", "simple_string", None, "OK", 5, 1),
            ("req", "GET", 1, len(cmd("GET", "k"))),
            ("resp", "bulk_string", None, "OK", 8 + 20480 + 2, 1),
        ],
    ),
    "monitor-feed-lines-are-pushes": (
        [(C2S, cmd("MONITOR")), (S2C, b"+OK\r\n" + MONITOR_LINE + MONITOR_LINE)],
        [("req", "MONITOR", 0, len(cmd("MONITOR"))), ("resp", "simple_string", None, "OK", 5, 1)]
        + [("push", "monitor", "simple_string", None, len(MONITOR_LINE))] * 2,
    ),
    "resp3-invalidation-push-between-replies": (
        [
            (C2S, cmd("CLIENT", "TRACKING", "ON") + cmd("GET", "k")),
            (S2C, b"+OK\r\n>2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n$1\r\nv\r\n"),
        ],
        [
            ("req", "CLIENT TRACKING", 2, len(cmd("CLIENT", "TRACKING", "ON"))),
            ("req", "GET", 1, len(cmd("GET", "k"))),
            ("resp", "simple_string", None, "OK", 5, 1),
            ("push", "invalidate", "push", 2, len(b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n")),
            ("resp", "bulk_string", None, "OK", 7, 1),
        ],
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
    steps, _ = CASES["resp3-every-type-and-a-push-between-replies"]
    whole = project(run(decoder, steps, "whole"))
    assert project(run(decoder, steps, "bytewise")) == whole


def test_error_message_and_record_fields() -> None:
    msgs = feed(decoder(), [(C2S, cmd("LLEN", "k")), (S2C, b"-WRONGTYPE Operation against a key\r\n")])
    assert msgs[1].to_json() == {
        "type": "error",
        "size": 36,
        "error_prefix": "WRONGTYPE",
        "error_message": "Operation against a key",
    }
    assert msgs[1].is_error() and msgs[0].to_json() == {
        "command": "LLEN",
        "args": 1,
        "size": len(cmd("LLEN", "k")),
    }


def test_keys_are_kept_only_with_the_option_and_never_for_secret_commands() -> None:
    steps = [
        (C2S, cmd("SET", "user:42", "v") + cmd("CLIENT", "SETNAME", "app") + cmd("AUTH", "alice", "s3cret")),
        (C2S, cmd("HELLO", "3", "AUTH", "alice", "s3cret") + cmd("CONFIG", "SET", "requirepass", "s3cret")),
    ]
    plain = feed(decoder(), steps)
    assert all("key" not in m.to_json() for m in plain)
    keyed = feed(decoder(capture_keys=True), steps)
    assert [m.to_json().get("key") for m in keyed] == ["user:42", "app", None, None, None]
    assert "s3cret" not in repr([m.to_json() for m in keyed]) and "alice" not in repr(keyed)


def test_pushes_with_nothing_pending_after_joining_mid_stream() -> None:
    d = RedisDecoder(DecoderContext(midstream=True))
    # the capture starts inside a subscribed connection: a delivery arrives before any command is seen
    out = list(d.receive(S2C, memoryview(MSG_A), 1))
    assert out == []  # unsynced: the server side waits for a command
    out += d.receive(C2S, memoryview(b"lo world\r\n" + cmd("PING")), 2)
    out += d.receive(S2C, memoryview(PONG2 + MSG_A), 3)
    assert summary(out) == [
        ("req", "PING", 0, len(cmd("PING"))),
        ("resp", "array", 2, "OK", len(PONG2), 1),
        ("push", "message", "array", 3, len(MSG_A)),
    ]
    assert out[0].flags & Flag.MIDSTREAM and out[1].flags & Flag.MIDSTREAM


def test_joined_mid_stream_finds_the_next_command_and_invents_nothing() -> None:
    d = RedisDecoder(DecoderContext(midstream=True))
    out = list(d.receive(C2S, memoryview(b"$5\r\nhello\r\n" + cmd("GET", "k")), 1))
    # the tail of an earlier reply arrives in the same segment as the answer: skipped (segment started
    # before the command was seen), then the answer in its own segment
    out += d.receive(S2C, memoryview(b"xyz\r\n:1\r\n"), 0)
    out += d.receive(S2C, memoryview(b"$1\r\nv\r\n"), 2)
    assert summary(out) == [
        ("req", "GET", 1, len(cmd("GET", "k"))),
        ("resp", "bulk_string", None, "OK", 7, 1),
    ]


def test_gap_inside_a_bulk_payload_is_absorbed() -> None:
    d = decoder()
    feed(d, [(C2S, cmd("GET", "k"))])
    out = list(d.receive(S2C, memoryview(b"$10\r\n0123"), 5))
    out += d.receive_gap(S2C, 4, 6)
    out += d.receive(S2C, memoryview(b"89\r\n+OK\r\n"), 7)
    # "$10\r\n" + 10 payload bytes (4 of them lost) + CRLF; then "+OK" has no command: an orphan for the matcher
    assert summary(out) == [
        ("resp", "bulk_string", None, "OK", 5 + 10 + 2, 1),
        ("resp", "simple_string", None, "OK", 5, 1),
    ]
    assert out[0].flags & Flag.GAP


def test_gap_that_loses_framing_gives_up_pending_replies_and_resyncs() -> None:
    d = decoder()
    out = list(feed(d, [(C2S, cmd("GET", "a") + cmd("GET", "b"))]))
    out += d.receive(S2C, memoryview(b"*3\r\n:1\r\n"), 5)
    out += d.receive_gap(S2C, 100, 6)
    out += d.receive(S2C, memoryview(b":2\r\n$1\r\nx\r\n"), 7)  # unsynced: no command sent since
    out += d.receive(C2S, memoryview(cmd("GET", "c")), 8)
    out += d.receive(S2C, memoryview(b"$1\r\nc\r\n"), 9)
    assert any(isinstance(m, SyncLost) and m.direction is S2C for m in out)
    assert summary(out)[-2:] == [("req", "GET", 1, 20), ("resp", "bulk_string", None, "OK", 7, 1)]
    assert len([m for m in out if isinstance(m, Response)]) == 1


def test_truncated_reply_at_end_of_capture_is_flagged() -> None:
    d = decoder()
    out = feed(d, [(C2S, cmd("GET", "k")), (S2C, b"$1000\r\n" + b"x" * 300)])
    out += d.receive_eof(S2C, 99)
    assert summary(out)[-1] == ("resp", "bulk_string", None, "OK", 7 + 300, 1)
    assert out[-1].flags & Flag.TRUNCATED


def tcp(src: int, dst: int, seq: int, ack: int, flags: int, payload: bytes = b"") -> bytes:
    a, b = ("10.0.0.1", "10.0.0.2") if src != 6379 else ("10.0.0.2", "10.0.0.1")
    return ethernet(ipv4_tcp(a, b, src, dst, seq, ack, flags, payload))


def engine_records(frames: list[bytes]) -> list:
    records: list = []
    eng = Engine(EngineConfig(rules=(Rule("redis", (6379,)),)), records.append)
    for i, f in enumerate(frames):
        eng.frame(1_000 + i, 1, memoryview(f))
    eng.finish()
    return records


def test_roles_come_from_the_handshake_not_from_what_the_client_sends() -> None:
    # issue 9 item 14: a client line starting with "-" or "+" is an inline command (Redis's rule); the
    # decoder used to take it for a reply and swap the roles, so the -ERR became a record from port 6379
    ask, answer = b"-ERR\r\n", b"-ERR unknown command '-ERR', with args beginning with: \r\n"
    syn, ack, psh = 0x02, 0x10, 0x18
    frames = [
        tcp(40000, 6379, 100, 0, syn),
        tcp(6379, 40000, 500, 101, syn | ack),
        tcp(40000, 6379, 101, 501, ack),
        tcp(40000, 6379, 101, 501, psh, ask),
        tcp(6379, 40000, 501, 101 + len(ask), psh, answer),
    ]
    (r,) = engine_records(frames)
    assert (r.kind, r.client[1], r.server[1], r.operation, r.status) == (
        "roundtrip",
        40000,
        6379,
        "-ERR",
        "ERR",
    )
    assert r.request.inline and r.response.size == len(answer)
    # joined without the handshake: the rule's port names the server, even when the first bytes seen are
    # a reply shaped like a command (an array of bulk strings, here the end of an earlier LRANGE's)
    reply = b"*1\r\n$3\r\nGET\r\n"
    lrange = cmd("LRANGE", "l", "0", "-1")
    frames = [
        tcp(6379, 40000, 900, 300, psh, reply),
        tcp(40000, 6379, 300, 900 + len(reply), psh, lrange),
        tcp(6379, 40000, 900 + len(reply), 300 + len(lrange), psh, reply),
    ]
    (r,) = engine_records(frames)
    assert (r.client[1], r.server[1], r.operation, r.response.elements) == (40000, 6379, "LRANGE", 1)


def test_the_syn_sender_is_the_client_even_from_the_rule_port() -> None:
    # a client bound to port 6379 connecting out to 7000: the SYN says who asks, not the port
    syn, ack, psh = 0x02, 0x10, 0x18
    ask, answer = cmd("PING"), b"+PONG\r\n"
    frames = [
        tcp(6379, 7000, 100, 0, syn),
        ethernet(ipv4_tcp("10.0.0.1", "10.0.0.2", 7000, 6379, 500, 101, syn | ack)),
        tcp(6379, 7000, 101, 501, psh, ask),
        ethernet(ipv4_tcp("10.0.0.1", "10.0.0.2", 7000, 6379, 501, 101 + len(ask), psh, answer)),
    ]
    (r,) = engine_records(frames)
    assert (r.client[1], r.server[1], r.operation, r.status) == (6379, 7000, "PING", "OK")


def test_anything_a_client_sends_not_starting_with_a_star_is_an_inline_command() -> None:
    for line in (b"+OK\r\n", b":1\r\n", b"$3\r\n", b"%2\r\n", b"GET k\n"):
        out = decoder().receive(C2S, memoryview(line), 1)
        assert summary(list(out)) == [
            ("req", line.split()[0].decode().upper(), len(line.split()) - 1, len(line))
        ]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"*2\r\n:1\r\n", "command element is not a bulk string"),
        (b"*1\r\n$3\r\nGETX\r\n", "bulk string not followed by CRLF"),
        (b"*x\r\n", "bad array length"),
        (b"*1\n", "bad array header"),
        (b"*1\r\n$-5\r\n", "bad bulk length"),
        (b"*1\r\n$999999999999\r\n", "bad bulk length"),
        (b"GET " + b"k" * (MAX_LINE + 10), "line too long"),
    ],
)
def test_client_garbage_raises_decode_error(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as exc:
        decoder().receive(C2S, memoryview(data), 1)
    assert exc.value.reason == reason


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"?what\r\n", "bad type byte"),
        (b"+OK\n", "line without CRLF"),
        (b"*-2\r\n", "bad aggregate length"),
        (b"*" + b"*1\r\n" * 70, "aggregates nested too deep"),
    ],
)
def test_server_garbage_raises_decode_error(data: bytes, reason: str) -> None:
    d = decoder()
    d.receive(C2S, memoryview(cmd("GET", "k")), 1)
    with pytest.raises(DecodeError) as exc:
        d.receive(S2C, memoryview(data if not data.startswith(b"**") else data[1:]), 2)
    assert exc.value.reason == reason


def redis_session() -> tuple:
    reg = Registry([REDIS])
    return open_session(reg["redis"], reg, ("10.0.0.1", 5555), ("10.0.0.2", 6379))


def test_replies_complete_before_garbage_in_the_same_segment_are_kept() -> None:
    # issue 9 item 12: the reset used to throw away the two +OK replies decoded before the garbage
    s, records, stats = redis_session()
    s.data(0, memoryview(cmd("SET", "a", "1") + cmd("SET", "b", "2") + cmd("SET", "c", "3")), 1)
    s.data(1, memoryview(b"+OK\r\n+OK\r\n?garbage\r\n"), 2)
    s.close(3)
    assert [(r.kind, r.operation, r.status) for r in records] == [
        ("roundtrip", "SET", "OK"),
        ("roundtrip", "SET", "OK"),
        ("unanswered", "SET", None),  # its reply was the garbage: framing lost, never paired
    ]
    assert stats["redis"].decode_errors == {"bad type byte": 1}
    # and on the client side: the commands before the garbage are requests
    with pytest.raises(DecodeError) as exc:
        decoder().receive(C2S, memoryview(cmd("GET", "a") + b"*x\r\n"), 1)
    assert summary(list(exc.value.messages)) == [("req", "GET", 1, len(cmd("GET", "a")))]


ATTR = b"|1\r\n+ttl\r\n:3600\r\n"
SPEC_ATTR = b"|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n"


@pytest.mark.parametrize(
    ("reply", "kind", "elements"),
    [
        (SPEC_ATTR + b"*2\r\n:2039123\r\n:9543892\r\n", "array", 2),  # the RESP3 spec's example
        (ATTR + b"+OK\r\n", "simple_string", None),
        (ATTR + b"$3\r\nfoo\r\n", "bulk_string", None),
        (ATTR + b"_\r\n", "null", None),
        (b"*3\r\n:1\r\n:2\r\n" + ATTR + b":3\r\n", "array", 3),  # on an element: not an element itself
        (b"|1\r\n$3\r\nkey\r\n%1\r\n+a\r\n*1\r\n:1\r\n+OK\r\n", "simple_string", None),  # aggregate values
        (b"|0\r\n+OK\r\n", "simple_string", None),
        (b"|1\r\n+k\r\n$?\r\n;1\r\nx\r\n;0\r\n+OK\r\n", "simple_string", None),  # a streamed value
    ],
)
def test_resp3_attributes_are_parsed_and_skipped(reply: bytes, kind: str, elements: int | None) -> None:
    # issue 9 item 13: the attribute belongs to the reply it precedes (its bytes counted in its size) and
    # pairing goes on with the next reply
    for mode in MODES[:2]:
        out = feed(decoder(), [(C2S, cmd("GET", "a") + cmd("GET", "b")), (S2C, reply + b"+OK\r\n")], mode)
        assert [m for m in summary(out) if m[0] == "resp"] == [
            ("resp", kind, elements, "OK", len(reply), 1),
            ("resp", "simple_string", None, "OK", 5, 1),
        ]
