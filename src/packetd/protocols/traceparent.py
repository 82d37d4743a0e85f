"""W3C Trace Context (`traceparent`, `tracestate`) parsing, shared by every protocol that carries it."""

from __future__ import annotations

import re

from packetd.protocols.base import TraceContext

# version-traceid-parentid-flags; a future version may append fields after a '-' (W3C §3.2.4).
_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-|$)")
_ZERO_TRACE = b"0" * 32
_ZERO_SPAN = b"0" * 16
MAX_TRACESTATE = 512  # W3C allows 32 members of up to 256 chars; we keep a useful prefix, never more


def parse_traceparent(raw: bytes | None, tracestate: bytes | None = None) -> TraceContext | None:
    """Parse a `traceparent` header value; None when absent or invalid (invalid ones are ignored, per spec)."""
    if not raw:
        return None
    m = _TRACEPARENT.match(raw.strip().lower())
    if m is None:
        return None
    version, trace_id, span_id, flags, rest = m.groups()
    if version == b"ff" or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    if version == b"00" and rest:
        return None  # version 00 has exactly four fields
    state = None
    if tracestate:
        state = tracestate.strip()[:MAX_TRACESTATE].decode("latin-1")
    return TraceContext(
        trace_id=trace_id.decode(),
        parent_span_id=span_id.decode(),
        sampled=bool(int(flags, 16) & 1),
        tracestate=state,
    )
