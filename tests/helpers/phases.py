"""Checks shared by the transition-table tests of the decoders (tests/protocols/*/test_phases.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import IntEnum
from typing import Any

from packetd.protocols.base import DecodeError


def check_pair(
    step: Callable[[Any, Any], Any], expected: Mapping[Any, Any], state: IntEnum, event: IntEnum
) -> None:
    """`step(state, event)` is the expected transition, or a DecodeError where the protocol has none."""
    want = expected.get((state, event))
    if want is None:
        try:
            step(state, event)
        except DecodeError:
            return
        raise AssertionError(f"{event.name} in {state.name} is not a transition of the protocol")
    assert step(state, event) is want


def table_pairs(table: Mapping[Any, Mapping[Any, Any]]) -> dict[tuple[Any, Any], Any]:
    """A transition table as {(state, event): next state}."""
    return {(c, e): nxt for c, row in table.items() for e, nxt in row.items()}
