"""The record's start_time and end_time against datetime's own RFC 3339 text, across second boundaries.

Roundtrip.to_json formats both times from a cached second (pairing/roundtrip.py); a record whose start
falls in one second and its end in the next, or the next record falling back into an earlier second,
must still give each time its own second.
"""

from __future__ import annotations

import datetime

from packetd.pairing.roundtrip import Roundtrip, rfc3339_ns
from packetd.protocols.redis.messages import Request, Response

S = 1_000_000_000
BASE = 1_764_776_783 * S  # 2025-12-03T15:46:23Z


def truth(ts_ns: int) -> str:
    sec, ns = divmod(ts_ns, S)
    day = datetime.datetime.fromtimestamp(sec, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{day}.{ns:09d}Z"


def record(start: int, end: int) -> Roundtrip:
    req = Request(start_ns=start, end_ns=start + 10, size=14, flags=0, command="PING", args=0, inline=False)
    resp = Response(start_ns=end - 10, end_ns=end, size=7, flags=0, type="simple_string", elements=None)
    return Roundtrip("redis", "roundtrip", ("10.0.0.2", 50000), ("10.0.0.1", 6379), req, resp)


def test_times_across_seconds() -> None:
    spans = [
        (BASE + 999_999_000, BASE + S + 1_000),  # start in one second, end in the next
        (BASE + 5, BASE + S - 1),  # back into the earlier second
        (BASE + 2 * S, BASE + 2 * S + 7),
        (BASE + S - 1, BASE + 3 * S),  # an earlier second, then two on
        (BASE, BASE),
        (BASE + 4 * S, BASE + 4 * S + S - 1),
        # the start moves the cache to the second before and the end falls in the one cached before it
        (BASE + 4 * S - 1, BASE + 4 * S + 500),
    ]
    for start, end in spans:
        rec = record(start, end).to_json()
        assert (rec["start_time"], rec["end_time"]) == (truth(start), truth(end)), (start, end)
        assert rfc3339_ns(start) == truth(start)
        assert rfc3339_ns(end) == truth(end)
