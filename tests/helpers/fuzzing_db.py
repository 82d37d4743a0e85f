"""Hypothesis helpers shared by the Redis, MySQL and PostgreSQL fuzz tests (tests/helpers/fuzzing.py serves the others).

`drive` feeds a decoder what the flow layer would (segments of either direction, gaps, EOFs) and behaves
like the session: a DecodeError replaces the decoder with a fresh mid-stream one. Anything other than a
message list or a DecodeError escaping the decoder fails the test; `bound` is checked after every call to
prove the decoder's buffers stay bounded. `whole_and_segmented` decodes a real exchange in one piece and cut
at random places, for the tests that both give the same records.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from hypothesis import strategies as st

from packetd.protocols.base import DecodeError, Decoder, DecoderContext, Direction, Message

Event = tuple[str, int, bytes]  # ("data" | "gap" | "eof", direction, payload or b"" / gap size)


def split(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    """`data` cut at the given offsets (taken modulo its length, sorted, deduplicated)."""
    if not data:
        return []
    points = sorted({c % len(data) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


def segmented(data: bytes) -> st.SearchStrategy[list[bytes]]:
    """`data` cut into segments at random places."""
    return st.lists(st.integers(min_value=0, max_value=max(len(data), 1)), max_size=24).map(
        lambda cuts: split(data, cuts)
    )


def whole_and_segmented(
    factory: Callable[[], Decoder], steps: Sequence[tuple[Direction, bytes]], data: st.DataObject
) -> tuple[list[Message], list[Message]]:
    """The messages of `steps` fed one step at a time, and those of a fresh decoder fed each step cut into
    segments drawn from `data`."""
    whole = factory()
    expected: list[Message] = []
    for d, b in steps:
        expected.extend(whole.receive(d, memoryview(b), 1))
    cut = factory()
    got: list[Message] = []
    for d, b in steps:
        for seg in data.draw(segmented(b)):
            got.extend(cut.receive(d, memoryview(seg), 1))
    return expected, got


def events() -> st.SearchStrategy[list[Event]]:
    """Random bytes in random directions, with the odd gap and EOF."""
    data = st.tuples(st.just("data"), st.integers(0, 1), st.binary(min_size=1, max_size=300))
    gap = st.tuples(
        st.just("gap"), st.integers(0, 1), st.integers(1, 5000).map(lambda n: n.to_bytes(4, "big"))
    )
    eof = st.tuples(st.just("eof"), st.integers(0, 1), st.just(b""))
    return st.lists(st.one_of(data, data, data, data, gap, eof), max_size=40)


def drive(
    factory: Callable[[DecoderContext], Decoder],
    evs: Sequence[Event],
    bound: Callable[[Any], None] | None = None,
    midstream: bool = False,
) -> tuple[list[Message], int]:
    """Feed `evs`; return (messages, decode errors)."""
    decoder = factory(DecoderContext(midstream=midstream))
    out: list[Message] = []
    errors = 0
    ts = 1_000
    for kind, direction, payload in evs:
        ts += 1
        d = Direction(direction)
        try:
            if kind == "data":
                out.extend(decoder.receive(d, memoryview(payload), ts))
            elif kind == "gap":
                out.extend(decoder.receive_gap(d, int.from_bytes(payload, "big"), ts))
            else:
                out.extend(decoder.receive_eof(d, ts))
        except DecodeError:
            errors += 1
            decoder = factory(DecoderContext(midstream=True))
        if bound is not None:
            bound(decoder)
    return out, errors
