"""Fuzzing decoders with Hypothesis: random bytes, mutated real messages, random segmentation.

The contract under test (ARCHITECTURE.md): whatever arrives, a decoder returns messages or raises
`DecodeError`; any other exception is a bug. Memory stays bounded: the bytes a decoder holds (every
bytes/bytearray reachable from it) never exceed the bound its module declares.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from hypothesis import strategies as st

from packetd.buildinfo import slot_names  # the compiled build: native classes have no __slots__
from packetd.protocols.base import DecodeError, Decoder, Direction, Message

Chunk = tuple[int, bytes]  # (direction, bytes)


def held_bytes(obj: Any, depth: int = 0, seen: set[int] | None = None) -> int:
    """Bytes held in bytes/bytearray objects reachable from `obj` (slots, dicts, lists, tuples, deques)."""
    seen = seen if seen is not None else set()
    if id(obj) in seen or depth > 6:
        return 0
    seen.add(id(obj))
    if isinstance(obj, bytes | bytearray | memoryview):
        return len(obj)
    if isinstance(obj, str | int | float | bool | type(None)):
        return 0
    if isinstance(obj, dict):
        return sum(held_bytes(k, depth + 1, seen) + held_bytes(v, depth + 1, seen) for k, v in obj.items())
    if isinstance(obj, list | tuple | set | frozenset) or type(obj).__name__ == "deque":
        return sum(held_bytes(v, depth + 1, seen) for v in obj)
    total = 0
    for name in slot_names(type(obj)):
        if hasattr(obj, name):
            total += held_bytes(getattr(obj, name), depth + 1, seen)
    for cls in type(obj).__mro__:
        for name in slot_names(cls):
            if hasattr(obj, name):
                total += held_bytes(getattr(obj, name), depth + 1, seen)
    if hasattr(obj, "__dict__"):
        total += held_bytes(vars(obj), depth + 1, seen)
    return total


def mutated(seeds: Sequence[bytes]) -> st.SearchStrategy[bytes]:
    """Real messages with bytes overwritten, cut short, or glued to random bytes."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        base = bytearray(draw(st.sampled_from(list(seeds))))
        for _ in range(draw(st.integers(0, 6))):
            if base:
                i = draw(st.integers(0, len(base) - 1))
                base[i] = draw(st.integers(0, 255))
        if draw(st.booleans()) and base:
            base = base[: draw(st.integers(0, len(base)))]
        if draw(st.booleans()):
            base += draw(st.binary(max_size=64))
        return bytes(base)

    return build()


def chunks(seeds: Sequence[bytes]) -> st.SearchStrategy[list[Chunk]]:
    """A conversation: each item is a direction and some bytes (random, or a mutated real message)."""
    payload = st.one_of(st.binary(max_size=300), mutated(seeds), st.sampled_from(list(seeds)))
    return st.lists(st.tuples(st.integers(0, 1), payload), max_size=12)


def drive(
    factory: Callable[[bool], Decoder], conversation: Sequence[Chunk], bound: int, split: int = 0
) -> list[Message]:
    """Feed the conversation, restarting the decoder on DecodeError as the session does (midstream)."""
    decoder = factory(False)
    out: list[Message] = []
    ts = 1
    for direction, data in conversation:
        pieces = [data] if split <= 0 else [data[i : i + split] for i in range(0, len(data), split)] or [b""]
        for piece in pieces:
            ts += 1
            try:
                out.extend(decoder.receive(Direction(direction), memoryview(piece), ts))
            except DecodeError:
                decoder = factory(True)
            assert held_bytes(decoder) <= bound
    for direction in (Direction.C2S, Direction.S2C):
        try:
            out.extend(decoder.receive_eof(direction, ts + 1))
        except DecodeError:
            decoder = factory(True)
    for m in out:
        m.to_json()  # serialising a record never fails either
    return out
