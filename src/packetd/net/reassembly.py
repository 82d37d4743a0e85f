"""IP fragment reassembly (IPv4 RFC 791 §3.2, IPv6 RFC 8200 §4.5), bounded in count, size and time.

Mostly UDP needs it (large DNS answers over EDNS); TCP rarely fragments because of PMTU discovery. A
datagram is assembled when the fragment with "more fragments" clear has arrived and every byte up to its
end is covered; overlapping fragments are resolved first-come (RFC 5722 says discard the whole datagram
for IPv6; a passive observer cannot make the endpoint do so, and first-come is what most stacks keep).
"""

from __future__ import annotations

MAX_DATAGRAMS = 256  # datagrams being reassembled at once; beyond this the oldest is dropped
MAX_DATAGRAM = 65535 + 8  # largest IPv4 datagram payload; a bigger "datagram" is an attack
TIMEOUT_NS = 30 * 1_000_000_000  # RFC 8200 §4.5: 60 s; 30 s is Linux's ipfrag_time


class ReassemblyStats:
    __slots__ = ("dropped_overflow", "dropped_timeout", "dropped_too_large")

    def __init__(self) -> None:
        self.dropped_overflow = 0
        self.dropped_timeout = 0
        self.dropped_too_large = 0


class _Datagram:
    __slots__ = ("first_ns", "pieces", "total")

    def __init__(self, ts: int) -> None:
        self.first_ns = ts
        self.pieces: list[tuple[int, bytes]] = []
        self.total = -1  # known when the last fragment arrives


class Reassembler:
    """Collects fragments; `add_*` returns the whole transport payload once complete."""

    def __init__(self) -> None:
        self._pending: dict[tuple[bytes, int, int], _Datagram] = {}
        self.stats = ReassemblyStats()

    def add_v4(
        self, ts: int, addrs: bytes, proto: int, ident: int, offset: int, more: bool, data: memoryview
    ) -> bytes | None:
        return self._add(ts, (addrs, proto, ident), offset, more, data)

    def add_v6(
        self, ts: int, addrs: bytes, next_header: int, ident: int, offset: int, more: bool, data: memoryview
    ) -> bytes | None:
        return self._add(ts, (addrs, 256 + next_header, ident), offset, more, data)

    def _add(
        self, ts: int, key: tuple[bytes, int, int], offset: int, more: bool, data: memoryview
    ) -> bytes | None:
        self._expire(ts)
        dg = self._pending.get(key)
        if dg is None:
            if len(self._pending) >= MAX_DATAGRAMS:
                del self._pending[next(iter(self._pending))]
                self.stats.dropped_overflow += 1
            dg = self._pending[key] = _Datagram(ts)
        end = offset + len(data)
        if end > MAX_DATAGRAM:
            del self._pending[key]
            self.stats.dropped_too_large += 1
            return None
        dg.pieces.append((offset, data.tobytes()))
        if not more:
            dg.total = end
        if dg.total < 0:
            return None
        dg.pieces.sort(key=lambda p: p[0])
        out = bytearray()
        for off, piece in dg.pieces:
            have = len(out)
            if off > have:
                return None  # a hole remains
            if off + len(piece) > have:
                out += piece[have - off :]
        if len(out) < dg.total:
            return None
        del self._pending[key]
        return bytes(out[: dg.total])

    def _expire(self, ts: int) -> None:
        pending = self._pending
        while pending:
            key = next(iter(pending))
            if ts - pending[key].first_ns <= TIMEOUT_NS:
                return
            del pending[key]
            self.stats.dropped_timeout += 1
