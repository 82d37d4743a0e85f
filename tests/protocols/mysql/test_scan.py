"""The result-set scan (`MysqlDecoder._scan_rows`) is a shortcut, never a second behaviour: every case of
test_decoder.py, and result sets built to make the scan stop at each of its exits, give the same messages
(every field, times and sizes included) and leave the same decoder state with the scan as without it
(`_SCANNED` emptied: the general per-packet path only)."""

from __future__ import annotations

from typing import Any

import pytest

from packetd.buildinfo import compiled_modules
from packetd.protocols.mysql import decoder as mod
from packetd.protocols.mysql.decoder import MysqlDecoder
from tests.helpers import mywire as my
from tests.helpers.decoding import C2S, S2C
from tests.protocols.mysql.test_decoder import CASES, CLASSIC_PRE, MODERN_PRE, Q_USERS

_ANSWER = ("_r", "_r_start", "_r_size", "_r_flags", "_r_seq", "_r_columns", "_r_rows", "_r_sets", "_r_left",
           "_r_results", "_r_end")  # fmt: skip


def _state(d: MysqlDecoder) -> tuple[Any, ...]:
    sides = tuple(
        (
            *(getattr(s, k) for k in ("seq", "first_len", "cont", "size", "start", "flags", "keep", "left")),
            bytes(s.hdr),
            bytes(s.body),
        )
        for s in (d._c, d._s)
    )
    return (*sides, *(getattr(d, k) for k in _ANSWER), len(d._pending))


def _run(steps: list, split: int) -> tuple[list, list]:
    """Messages and the state after each step; server steps cut at `split` bytes (0: whole)."""
    d = MysqlDecoder()
    msgs: list = []
    states: list = []
    ts = 1000
    for direction, data in steps:
        cuts = (
            [data]
            if not split or direction is C2S
            else [data[i : i + split] for i in range(0, len(data), split)]
        )
        for piece in cuts:
            ts += 7
            msgs.extend(d.receive(direction, memoryview(piece), ts))
            states.append(_state(d))
    return msgs, states


ROWS = [(str(i), "x" * (i % 7)) for i in range(40)] + [(None, "")]
EXTRA: dict[str, list] = {
    "classic-many-rows": [*CLASSIC_PRE, (C2S, Q_USERS), (S2C, my.result_set(["id", "name"], ROWS, deprecate_eof=False))],
    "modern-many-rows": [*MODERN_PRE, (C2S, Q_USERS), (S2C, my.result_set(["id", "name"], ROWS, deprecate_eof=True))],
    "empty-row-packets": [*CLASSIC_PRE,
        (C2S, Q_USERS),
        (S2C, my.packet(1, b"\x01") + my.column(2, "a") + my.eof(3) + my.packet(4, b"") + my.text_row(5, "1")
         + my.packet(6, b"") + my.eof(7)),
    ],
    "cursor-after-definitions": [*CLASSIC_PRE,
        (C2S, Q_USERS),
        (S2C, my.packet(1, b"\x02") + my.column(2, "a") + my.column(3, "b") + my.eof(4, status=0x0042)),
        (C2S, my.command(0x0E)), (S2C, my.ok(1)),
    ],
    "error-after-rows": [*CLASSIC_PRE,
        (C2S, Q_USERS),
        (S2C, my.packet(1, b"\x01") + my.column(2, "a") + my.eof(3) + my.text_row(4, "1") + my.text_row(5, "2")
         + my.err(6, 1317, "70100", "interrupted")),
    ],
    "more-results": [*CLASSIC_PRE,
        (C2S, my.query("CALL p()")),
        (S2C, my.result_set(["x"], [("1",), ("2",)], deprecate_eof=False, status=0x000A)
         + my.result_set(["y"], [("3",)], deprecate_eof=False, status=0x000A) + my.ok(9, status=0x0002)),
    ],
    "no-rows-modern": [*MODERN_PRE, (C2S, Q_USERS), (S2C, my.result_set(["a", "b", "c"], [], deprecate_eof=True))],
}  # fmt: skip
ALL = {name: pre + steps for name, (pre, steps, _) in CASES.items()} | EXTRA


@pytest.mark.parametrize("split", [0, 3, 11, 64])
@pytest.mark.parametrize("name", sorted(ALL))
def test_scan_changes_nothing(name: str, split: int, monkeypatch: pytest.MonkeyPatch) -> None:
    steps = ALL[name]
    scanned = _run(steps, split)
    monkeypatch.setattr(mod, "_SCANNED", frozenset())
    general = _run(steps, split)
    assert scanned == general


@pytest.mark.skipif(
    "packetd.protocols.mysql.decoder" in compiled_modules(),
    reason="the spy replaces a method of one decoder instance, which a mypyc-compiled class does not allow",
)
def test_the_scan_is_taken() -> None:
    """A result set in one segment is framed by the scan (else the equality above shows nothing)."""
    calls: list[int] = []
    d = MysqlDecoder()
    original = d._scan_rows

    def spy(*args: Any) -> int:
        pos = original(*args)
        calls.append(pos - args[2])
        return pos

    d._scan_rows = spy  # type: ignore[method-assign]
    for direction, data in EXTRA["classic-many-rows"]:
        d.receive(direction, memoryview(data), 1)
    assert sum(calls) > 40 * 5  # the 41 rows at least were consumed by it
