"""Decoder table cases run three ways (STYLE.md, after h11): whole, one byte at a time, and with trailing
bytes that must survive.

A case is a list of steps `(direction, bytes)`. "whole" feeds each step in one call; "bytewise" feeds every
byte in its own call; "trailing" appends the first half of a sentinel exchange to the last step of each
direction and feeds the second half afterwards: the case's messages must come out unchanged, followed by
the sentinel's, which proves the decoder kept the bytes that followed the case.

`open_session` builds a real Session (decoder + matcher) for the tests that check pairing and its counters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from packetd.pairing.roundtrip import Endpoint, Roundtrip
from packetd.pairing.session import ProtocolStats, Session
from packetd.protocols.base import Decoder, Direction, Message, Role
from packetd.protocols.registry import ProtocolSpec, Registry

C2S = Direction.C2S
S2C = Direction.S2C
Step = tuple[Direction, bytes]
MODES = ("whole", "bytewise", "trailing")


def project(msgs: Sequence[Message]) -> list[tuple[str, dict[str, Any]]]:
    """What a case asserts on: message type and record fields (times vary with segmentation)."""
    return [(type(m).__name__, m.to_json()) for m in msgs if m.ROLE is not Role.CONTROL]


def feed(decoder: Decoder, steps: Sequence[Step], mode: str = "whole", ts: int = 1_000) -> list[Message]:
    out: list[Message] = []
    for direction, data in steps:
        if mode == "bytewise":
            for i in range(len(data)):
                ts += 1
                out.extend(decoder.receive(direction, memoryview(data[i : i + 1]), ts))
        else:
            ts += 1
            out.extend(decoder.receive(direction, memoryview(data), ts))
    return out


def run(
    factory: Callable[[], Decoder],
    steps: Sequence[Step],
    mode: str,
    sentinel: Sequence[Step] = (),
    eof: bool = False,
) -> list[Message]:
    """Feed `steps` in `mode`; in "trailing" mode the sentinel exchange is split around the case's end."""
    decoder = factory()
    if mode != "trailing":
        out = feed(decoder, steps, mode)
    else:
        steps = [(d, b) for d, b in steps]
        rest: list[Step] = []
        for direction, data in sentinel:
            half = len(data) // 2
            last = max((i for i, (d, _) in enumerate(steps) if d == direction), default=-1)
            if last < 0:
                steps.append((direction, data[:half]))
            else:
                steps[last] = (direction, steps[last][1] + data[:half])
            rest.append((direction, data[half:]))
        out = feed(decoder, steps, "whole")
        out.extend(feed(decoder, rest, "whole", ts=10_000))
    if eof:
        out.extend(decoder.receive_eof(C2S, 99_999))
        out.extend(decoder.receive_eof(S2C, 99_999))
    return out


def open_session(
    spec: ProtocolSpec, registry: Registry, client: Endpoint, server: Endpoint, midstream: bool = False
) -> tuple[Session, list[Roundtrip], dict[str, ProtocolStats]]:
    """A Session for one connection, as the flow layer builds it; its records and per-protocol stats kept."""
    records: list[Roundtrip] = []
    stats: dict[str, ProtocolStats] = {}
    s = Session(
        spec, registry, client, server, records.append,
        lambda name: stats.setdefault(name, ProtocolStats()), lambda name: None, midstream,
    )  # fmt: skip
    return s, records, stats
