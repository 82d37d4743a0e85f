"""W3C Trace Context (`traceparent`, `tracestate`) parsing, shared by every protocol that carries it.

A traceparent is version-traceid-parentid-flags, lowercase hex of 2, 32, 16 and 2 digits; a future version
may append fields after a '-' (W3C §3.2.4). The check is the regular expression

    ([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-|$)

matched at the start of the stripped, lowercased value, written out as slicing and one `translate`: the
first 55 bytes are hex digits but for '-' at 2, 35 and 52, and what follows is nothing or a '-' (`$` also
matches before a final newline, which a stripped value never ends with). tests/protocols/test_traceparent.py
keeps the expression as the truth.
"""

from __future__ import annotations

from typing import Final

from packetd.protocols.base import TraceContext

# Final: constants in the compiled build, where a plain module global is a dict lookup at every use
_ZERO_TRACE: Final = b"0" * 32
_ZERO_SPAN: Final = b"0" * 16
_HEX: Final = b"0123456789abcdef"
_DASHES: Final = b"---"
MAX_TRACESTATE: Final = 512  # W3C allows 32 members of up to 256 chars; we keep a useful prefix, never more


def parse_traceparent(raw: bytes | None, tracestate: bytes | None = None) -> TraceContext | None:
    """Parse a `traceparent` header value; None when absent or invalid (invalid ones are ignored, per spec)."""
    if not raw:
        return None
    s = raw.strip().lower()
    n = len(s)
    if n < 55 or (n > 55 and s[55] != 0x2D):
        return None
    if s[2] != 0x2D or s[35] != 0x2D or s[52] != 0x2D or s[:55].translate(None, _HEX) != _DASHES:
        return None  # with the dashes in their places, anything but hex digits leaves more than three
    version = s[0:2]
    trace_id = s[3:35]
    span_id = s[36:52]
    if version == b"ff" or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    if version == b"00" and n > 55:
        return None  # version 00 has exactly four fields
    state = None
    if tracestate:
        state = tracestate.strip()[:MAX_TRACESTATE].decode("latin-1")
    # sampled: the low bit of the flags byte, which is the low bit of its second hex digit ('0'-'9' are
    # 0x30-0x39, of their value's parity; 'a'-'f' are 0x61-0x66, of the other parity), without int(..., 16)
    c = s[54]
    sampled = (c & 1) == 1 if c <= 0x39 else (c & 1) == 0
    # positional (trace_id, parent_span_id, sampled, tracestate): no keyword parsing in the @value __init__
    return TraceContext(trace_id.decode(), span_id.decode(), sampled, state)
