"""Roundtrip records as JSON lines, one compact object per line (the record contract)."""

from __future__ import annotations

import orjson

from packetd.pairing.roundtrip import Roundtrip


def dumps(rt: Roundtrip) -> bytes:
    """One record as a JSON line, newline included."""
    return orjson.dumps(rt.to_json(), option=orjson.OPT_APPEND_NEWLINE)
