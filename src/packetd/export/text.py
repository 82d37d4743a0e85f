"""Aligned, optionally coloured text lines for a person at a terminal.

12:00:01.234567 http  10.0.0.2:51234 → 10.0.0.1:80     GET /index.html              200   1.23ms  312B/4.1K

The request summary's target is redacted by the rule the record uses (a `?token=` value is `[REDACTED]`).

With process attribution, each end that is a socket on this host is followed by `comm[pid]`:

12:00:01.234567 http  127.0.0.1:51234 curl[812] → 127.0.0.1:80 nginx[77]  GET /index.html  200 ...
"""

from __future__ import annotations

import time

from packetd.pairing.roundtrip import MAX_TIME_S, Process, Roundtrip, endpoint_text
from packetd.protocols import redact as policy
from packetd.protocols.base import Flag, Kind, flag_names
from packetd.units import format_duration, format_size

_RESET = "\x1b[0m"
_DIM = "\x1b[2m"
_RED = "\x1b[31m"
_YELLOW = "\x1b[33m"
_GREEN = "\x1b[32m"
_CYAN = "\x1b[36m"
MAX_SUMMARY = 60  # characters of the request summary


def _request_summary(rt: Roundtrip) -> str:
    msg = rt.request if rt.request is not None else rt.response
    if msg is None:
        return ""
    target = getattr(msg, "target", None)
    if target:
        # the record's (redacted) form of the target, by the rule the record uses (protocols/redact.py)
        target = policy.target(target, getattr(msg, "redact_query", policy.DEFAULT_QUERY))
    text = f"{rt.operation} {target}" if target else rt.operation
    if len(text) > MAX_SUMMARY:
        text = text[: MAX_SUMMARY - 1] + "…"
    return text


def _owner(proc: Process | None) -> str:
    return f" {proc.comm}[{proc.pid}]" if proc is not None else ""


class TextFormatter:
    def __init__(self, color: bool) -> None:
        self.color = color

    def format(self, rt: Roundtrip) -> str:
        ts = min(max(rt.start_ns, 0), MAX_TIME_S * 1_000_000_000)  # gmtime fails near 2^55 s
        clock = (
            time.strftime("%H:%M:%S", time.gmtime(ts // 1_000_000_000)) + f".{ts % 1_000_000_000 // 1000:06d}"
        )
        procs = rt.processes
        if procs is None:
            peers = f"{endpoint_text(rt.client)} → {endpoint_text(rt.server)}"
        else:
            peers = (
                f"{endpoint_text(rt.client)}{_owner(procs[0])} → {endpoint_text(rt.server)}{_owner(procs[1])}"
            )
        status = rt.status if rt.status is not None else rt.kind
        dur = rt.duration_ns
        latency = format_duration(dur) if dur is not None else "-"
        req_size = format_size(rt.request.size) if rt.request is not None else "-"
        resp_size = format_size(rt.response.size) if rt.response is not None else "-"
        flags = rt.all_flags
        extra = f" [{','.join(flag_names(flags))}]" if flags else ""
        if rt.kind not in (Kind.ROUNDTRIP,):
            extra = f" ({rt.kind}){extra}"
        summary = _request_summary(rt)
        if self.color:
            if rt.error:
                status_c = _RED
            elif rt.kind == Kind.UNANSWERED or (status.isdigit() and int(status) >= 400):
                status_c = _YELLOW
            else:
                status_c = _GREEN
            flag_c = _YELLOW if flags & (Flag.GAP | Flag.TRUNCATED) else _DIM
            return (
                f"{_DIM}{clock}{_RESET} {_CYAN}{rt.protocol:<5}{_RESET} {peers:<44} {summary:<40} "
                f"{status_c}{status:>5}{_RESET} {latency:>9} {req_size:>6}/{resp_size:<6}{flag_c}{extra}{_RESET}"
            )
        return (
            f"{clock} {rt.protocol:<5} {peers:<44} {summary:<40} {status:>5} {latency:>9} "
            f"{req_size:>6}/{resp_size:<6}{extra}"
        )
