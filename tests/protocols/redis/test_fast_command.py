"""The Redis decoder's scan of a whole command array, `decoder._fast_command`, and its C twin
(`redis/_resp.c`, in the compiled build): every case runs through both, and they must agree on every input,
the stores into `parts` included.

The truths: the bytes redis-py's own `Connection.pack_command` sends for a command (their length is the end,
the arguments are what was packed); prefixes of those bytes (never whole: (0, 0)); the RESP numbers that
int() reads differently from a plain digit string (the Python function takes what int() takes); and random
token soups, where the two implementations are compared with each other."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
import redis.connection
from hypothesis import given, settings
from hypothesis import strategies as st

from packetd.protocols.redis import decoder
from packetd.protocols.redis.decoder import C_FAST_COMMAND, MAX_CAPTURE, _fast_command

Fast = Callable[[bytes, int, int, list[bytes | None]], tuple[int, int]]
IMPLS = [pytest.param(_fast_command, id="python")]
if C_FAST_COMMAND is not None:
    IMPLS.append(pytest.param(C_FAST_COMMAND, id="c"))


def test_c_twin_in_the_compiled_build() -> None:
    if os.environ.get("PACKETD_EXPECT_BUILD") != "compiled" or os.environ.get("PACKETD_PURE") == "1":
        pytest.skip("only the compiled build must have the C twin")
    assert C_FAST_COMMAND is not None
    assert decoder.FAST_COMMAND is C_FAST_COMMAND


def packed(*args: bytes | str | int) -> bytes:
    return b"".join(redis.connection.Connection().pack_command(*args))


COMMANDS: list[tuple[bytes | str | int, ...]] = [
    ("PING",),
    ("GET", "user:1"),
    ("SET", "k", b"v" * 3, "EX", 60),
    ("HSET", "h", "f1", "a", "f2", "b", "f3", "c"),
    ("SET", "big", b"x" * 10_000),
    ("SET", b"k" * 300, b"v"),  # a key past MAX_CAPTURE: kept capped
    (b"c" * 200, "x"),
    ("SET", "empty", b""),
    ("CLIENT", "SETNAME", "worker-1"),
    ("MSET", *[f"k{i}" for i in range(200)]),
    ("SET", "crlf", b"a\r\nb\r\n"),  # CRLFs inside a bulk string are its bytes
]


def run(fast: Fast, b: bytes, pos: int = 0) -> tuple[tuple[int, int], list[bytes | None]]:
    parts: list[bytes | None] = [None, None, None]
    return fast(b, pos, len(b), parts), parts


def as_bytes(a: bytes | str | int) -> bytes:
    return a if isinstance(a, bytes) else str(a).encode()


@pytest.mark.parametrize("fast", IMPLS)
@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: str(a[0])[:12])
def test_whole_command(fast: Fast, args: tuple[bytes | str | int, ...]) -> None:
    wire = packed(*args)
    want_parts = [as_bytes(a)[:MAX_CAPTURE] for a in args[:3]] + [None] * (3 - len(args[:3]))
    assert run(fast, wire) == ((len(wire), len(args)), want_parts)
    # at an offset, after another command, with a third one behind it
    before, after = packed("PING"), packed("GET", "z")
    assert run(fast, before + wire + after, len(before)) == ((len(before) + len(wire), len(args)), want_parts)


@pytest.mark.parametrize("fast", IMPLS)
def test_every_prefix_is_not_whole(fast: Fast) -> None:
    wire = packed("SET", "key", b"v" * 20, "PX", 1500)
    for cut in range(len(wire)):
        assert run(fast, wire[:cut])[0] == (0, 0), cut


NUMBERS = [
    # (array header / length text, what int() reads, or None: refused)
    (b"2", 2),
    (b"+2", 2),
    (b" 2", 2),
    (b"2 ", 2),
    (b"0_2", 2),
    (b"0002", 2),
    (b"2.0", None),
    (b"", None),
    (b"-", None),
    (b"0x2", None),
    (b"\xd9\xa2", None),  # an Arabic-Indic digit 2 in UTF-8: int() of bytes refuses it
]


@pytest.mark.parametrize("fast", IMPLS)
@pytest.mark.parametrize(("text", "value"), NUMBERS, ids=repr)
def test_numbers_as_int_reads_them(fast: Fast, text: bytes, value: int | None) -> None:
    as_count = b"*" + text + b"\r\n$3\r\nGET\r\n$1\r\nk\r\n"
    assert run(fast, as_count)[0] == ((len(as_count), 2) if value == 2 else (0, 0))
    as_length = b"*1\r\n$" + text + b"\r\nab\r\n"
    assert run(fast, as_length) == (
        ((len(as_length), 1), [b"ab", None, None]) if value == 2 else ((0, 0), [None] * 3)
    )


@pytest.mark.parametrize("fast", IMPLS)
@pytest.mark.parametrize(
    "wire",
    [
        b"*0\r\n",  # no arguments: the general parser skips it
        b"*-1\r\n",
        b"*1025\r\n" + b"$1\r\na\r\n" * 1025,  # past the bound on arguments
        b"*99999999999999999999\r\n$1\r\na\r\n",  # past 64 bits
        b"*1\r\n$99999999999999999999\r\na\r\n",
        b"*1\r\n$-99999999999999999999\r\na\r\n",
        b"*1\r\n$-1\r\n",  # a null bulk string in a command is not plain
        b"*1\r\n$2\r\nabc\r\n",  # the length does not end at the CRLF
        b"*2\r\n$1\r\na\r\n:1\r\n",  # an element that is not a bulk string
        b"*1\n$1\r\na\r\n",  # LF alone does not end the header: int(b"1\n$1") refuses
    ],
)
def test_not_plain(fast: Fast, wire: bytes) -> None:
    assert run(fast, wire)[0] == (0, 0)


@pytest.mark.parametrize("fast", IMPLS)
def test_crlf_at_the_start(fast: Fast) -> None:
    # no number between the start and the CRLF (a hypothesis find: the compiled Python function's slice
    # b[pos + 1 : pos] raised SystemError there)
    assert run(fast, b"**2\r\n", 3)[0] == (0, 0)
    assert run(fast, b"\r\n")[0] == (0, 0)


@pytest.mark.parametrize("fast", IMPLS)
def test_stores_before_giving_up(fast: Fast) -> None:
    # the first two arguments are whole, the third is cut: both implementations have stored the two
    wire = packed("SET", "k", "value")[:-3]
    assert run(fast, wire) == ((0, 0), [b"SET", b"k", None])


@pytest.mark.skipif(C_FAST_COMMAND is None, reason="the C twin is not built (the compiled build)")
def test_bad_arguments_c() -> None:
    assert C_FAST_COMMAND is not None
    with pytest.raises(ValueError):
        C_FAST_COMMAND(b"*1\r\n", 0, 9, [None] * 3)  # n past the buffer
    with pytest.raises(ValueError):
        C_FAST_COMMAND(b"*1\r\n", -1, 4, [None] * 3)
    with pytest.raises(TypeError):
        C_FAST_COMMAND(bytearray(b"*1\r\n"), 0, 4, [None] * 3)  # type: ignore[arg-type]
    with pytest.raises(IndexError):  # as `parts[i] = ...` on a short list
        C_FAST_COMMAND(packed("GET", "k"), 0, len(packed("GET", "k")), [None])
    assert C_FAST_COMMAND(b"x*1\r\n$1\r\na\r\n", 1, 12, [None] * 3) == (12, 1)


TOKENS = st.sampled_from(
    [
        b"*",
        b"$",
        b"\r\n",
        b"\r",
        b"\n",
        b"1",
        b"2",
        b"3",
        b"0",
        b"-",
        b"+",
        b" ",
        b"_",
        b"a",
        b"GET",
        b"*2\r\n",
        b"$3\r\n",
        b"$1\r\n",
        b"abc",
        b"x" * 130,
        b"99999999999999999999",
    ]
)


@pytest.mark.skipif(C_FAST_COMMAND is None, reason="the C twin is not built (the compiled build)")
@settings(max_examples=3000, deadline=None)
@given(st.lists(TOKENS, max_size=24), st.integers(0, 8), st.integers(0, 8))
def test_c_agrees_with_python(tokens: list[bytes], pos: int, short: int) -> None:
    assert C_FAST_COMMAND is not None
    b = b"*" + b"".join(tokens)
    n = max(0, len(b) - short)
    for start in (0, min(pos, len(b))):
        parts_py: list[bytes | None] = [None, None, None]
        parts_c: list[bytes | None] = [None, None, None]
        assert C_FAST_COMMAND(b, start, n, parts_c) == _fast_command(b, start, n, parts_py)
        assert parts_c == parts_py
