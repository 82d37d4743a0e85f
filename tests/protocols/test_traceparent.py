"""traceparent parsing against its regular expression (the check it replaced), on generated values.

Truth: `reference`, the regex-based parser as it was, with W3C's grammar as the expression. The values are
Hypothesis's: arbitrary bytes, strings over the characters that matter (hex digits of both cases, '-',
whitespace, a newline, a byte above 0x7F), and valid traceparents with one position changed, cut or
extended; plus edge cases named below.
"""

from __future__ import annotations

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from packetd.protocols.base import TraceContext
from packetd.protocols.traceparent import MAX_TRACESTATE, parse_traceparent

_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-|$)")
VALID = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def reference(raw: bytes | None, tracestate: bytes | None = None) -> TraceContext | None:
    if not raw:
        return None
    m = _TRACEPARENT.match(raw.strip().lower())
    if m is None:
        return None
    version, trace_id, span_id, flags, rest = m.groups()
    if version == b"ff" or trace_id == b"0" * 32 or span_id == b"0" * 16:
        return None
    if version == b"00" and rest:
        return None
    state = None
    if tracestate:
        state = tracestate.strip()[:MAX_TRACESTATE].decode("latin-1")
    return TraceContext(trace_id=trace_id.decode(), parent_span_id=span_id.decode(),
                        sampled=bool(int(flags, 16) & 1), tracestate=state)  # fmt: skip


CHARS = st.sampled_from(list(b"0123456789abcdefABCDEFgz- \t\n\r\x0b\x0c\xff\x00"))
ANY = st.one_of(st.binary(max_size=80), st.lists(CHARS, max_size=70).map(bytes))


@st.composite
def near_valid(draw: st.DrawFn) -> bytes:
    """A valid traceparent (any version, flags, case) with a position changed, and cut or extended."""
    hexd = st.sampled_from(list(b"0123456789abcdefABCDEF"))
    parts = [bytes(draw(st.lists(hexd, min_size=k, max_size=k))) for k in (2, 32, 16, 2)]
    v = bytearray(b"-".join(parts))
    if draw(st.booleans()):
        v[draw(st.integers(0, len(v) - 1))] = draw(CHARS)
    tail = draw(st.sampled_from([b"", b"-", b"-x", b"-abc", b"x", b"0", b"\n", b" ", b"-\n", b"\n-"]))
    cut = draw(st.integers(50, 60))
    pad = draw(st.sampled_from([b"", b" ", b"\t", b"\n", b" \r\n"]))
    return pad + bytes(v + tail)[:cut] + pad


@settings(max_examples=3000, deadline=None)
@given(st.one_of(ANY, near_valid()), st.one_of(st.none(), st.binary(max_size=20)))
@example(VALID, None)
@example(VALID + b"-", None)
@example(VALID + b"-01", None)
@example(b"01" + VALID[2:] + b"-01", b" k=v ")
@example(b"ff" + VALID[2:], None)
@example(VALID.upper(), None)
@example(b"  " + VALID + b"\n", b"")
@example(VALID + b"\n", None)
@example(VALID + b"0", None)
@example(b"00-" + b"0" * 32 + VALID[35:], None)
@example(VALID[:36] + b"0" * 16 + VALID[52:], None)
@example(VALID[:54], None)
@example(b"", None)
@example(None, None)
def test_same_as_the_expression(raw: bytes | None, tracestate: bytes | None) -> None:
    assert parse_traceparent(raw, tracestate) == reference(raw, tracestate)


def test_edge_cases() -> None:
    """What the expression answers, by hand."""
    ok = parse_traceparent(VALID, b"a=1")
    assert ok == TraceContext(trace_id="0af7651916cd43dd8448eb211c80319c", parent_span_id="b7ad6b7169203331",
                              sampled=True, tracestate="a=1")  # fmt: skip
    assert parse_traceparent(VALID + b"-") is None  # version 00 has four fields
    assert parse_traceparent(b"01" + VALID[2:] + b"-more") is not None  # a future version may add fields
    assert parse_traceparent(b"01" + VALID[2:] + b"more") is None  # but only after a '-'
    assert parse_traceparent(b"01" + VALID[2:]) is not None
    assert parse_traceparent(VALID.upper()) == parse_traceparent(VALID)


def test_every_flags_byte() -> None:
    """`sampled` is read from the flags' second hex digit: every byte, in both cases, against the expression."""
    for flags in range(256):
        for text in (b"%02x" % flags, b"%02X" % flags):
            raw = VALID[:53] + text
            got = parse_traceparent(raw)
            assert got is not None and got == reference(raw)
            assert got.sampled is bool(flags & 1)
