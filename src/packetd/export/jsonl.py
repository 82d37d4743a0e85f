"""Roundtrip records as JSON lines, one compact object per line (the record contract)."""

from __future__ import annotations

from typing import BinaryIO

import orjson

from packetd.pairing.roundtrip import Roundtrip


def dumps(rt: Roundtrip) -> bytes:
    """One record as a JSON line, newline included."""
    return orjson.dumps(rt.to_json(), option=orjson.OPT_APPEND_NEWLINE)


class JsonLinesWriter:
    """Writes whole lines to a binary stream (one write per record: lines never interleave)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def write(self, rt: Roundtrip) -> None:
        self._stream.write(dumps(rt))

    def flush(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        self.flush()
