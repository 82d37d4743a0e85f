"""IP fragment reassembly (IPv4 RFC 791 §3.2, IPv6 RFC 8200 §4.5), bounded in count, size and time.

Mostly UDP needs it (large DNS answers over EDNS); TCP rarely fragments because of PMTU discovery. A
datagram is assembled when the fragment with "more fragments" clear has arrived and every byte up to its
end is covered. A datagram is identified by (source, destination, protocol, identification) for IPv4 and
(source, destination, identification) for IPv6, where the header that starts the reassembled payload is the
Next Header of the offset-zero fragment (RFC 8200 §4.5: the others' may differ).

Overlaps: an exact duplicate of a fragment already held (a retransmission) is ignored. Any other overlap
discards the whole datagram, as RFC 5722 requires for IPv6 and as Linux, the BSDs and Windows do for IPv4
too since the fragment-overlap attacks: the receiving endpoint never sees such a datagram, so neither do
we. Likewise a datagram whose fragments disagree on where it ends is discarded.

Bounds: at most `MAX_DATAGRAMS` datagrams in progress, `MAX_FRAGMENTS` fragments each, and
`MAX_PENDING_BYTES` held in all (the oldest datagram goes first); a datagram not complete within
`TIMEOUT_NS` of its first fragment is dropped. Every drop is counted in `ReassemblyStats`.
"""

from __future__ import annotations

from typing import Final

MAX_DATAGRAMS: Final = 256  # datagrams being reassembled at once; beyond this the oldest is dropped
MAX_DATAGRAM: Final = 65535  # largest reassembled payload (IPv4 total length is 16 bits); bigger is an attack
MAX_FRAGMENTS: Final = 256  # per datagram: 64 KiB in 1280-byte IPv6 fragments is 52; more means a flood
MAX_PENDING_BYTES: Final = 4 * 1024 * 1024  # held across all datagrams: Linux's ipfrag_high_thresh
TIMEOUT_NS: Final = 30 * 1_000_000_000  # RFC 8200 §4.5: 60 s; 30 s is Linux's ipfrag_time

_V6: Final = -1  # the protocol part of an IPv6 key (IPv6 fragments are not keyed by next header)


class ReassemblyStats:
    __slots__ = (
        "dropped_overflow",
        "dropped_overlap",
        "dropped_timeout",
        "dropped_too_large",
        "dropped_too_many",
    )

    def __init__(self) -> None:
        self.dropped_overflow = 0  # evicted to make room (MAX_DATAGRAMS or MAX_PENDING_BYTES)
        self.dropped_timeout = 0
        self.dropped_too_large = 0  # would end past MAX_DATAGRAM
        self.dropped_too_many = 0  # more than MAX_FRAGMENTS fragments
        self.dropped_overlap = 0  # overlapping or inconsistent fragments


class _Datagram:
    __slots__ = ("first_ns", "header", "held", "pieces", "total")

    def __init__(self, ts: int) -> None:
        self.first_ns = ts
        self.pieces: dict[int, bytes] = {}  # offset -> bytes
        self.held = 0  # bytes in pieces
        self.total = -1  # known when the last fragment arrives
        self.header = -1  # IPv6: next header of the offset-zero fragment


_Key = tuple[bytes, int, int]


class Reassembler:
    """Collects fragments; `add_*` returns the whole transport payload once complete."""

    def __init__(self) -> None:
        self._pending: dict[_Key, _Datagram] = {}
        self._held = 0
        self.stats = ReassemblyStats()

    def add_v4(
        self, ts: int, addrs: bytes, proto: int, ident: int, offset: int, more: bool, data: memoryview
    ) -> bytes | None:
        """A fragment's payload (`offset` in bytes); the datagram's payload when this completes it."""
        got = self._add(ts, (addrs, proto, ident), offset, more, data, proto)
        return None if got is None else got[1]

    def add_v6(
        self,
        ts: int,
        addrs: bytes,
        ident: int,
        offset: int,
        more: bool,
        data: memoryview,
        next_header: int,
    ) -> tuple[int, bytes] | None:
        """Like `add_v4`; returns (next header of the offset-zero fragment, payload) when complete."""
        return self._add(ts, (addrs, _V6, ident), offset, more, data, next_header)

    @property
    def pending(self) -> int:
        """Datagrams in progress."""
        return len(self._pending)

    def _drop(self, key: _Key) -> None:
        self._held -= self._pending.pop(key).held

    def _add(
        self, ts: int, key: _Key, offset: int, more: bool, data: memoryview, header: int
    ) -> tuple[int, bytes] | None:
        self._expire(ts)
        pending = self._pending
        stats = self.stats
        size = len(data)
        end = offset + size
        dg = pending.get(key)
        if dg is None:
            if len(pending) >= MAX_DATAGRAMS:
                self._drop(next(iter(pending)))
                stats.dropped_overflow += 1
            dg = pending[key] = _Datagram(ts)
        if end > MAX_DATAGRAM:
            self._drop(key)
            stats.dropped_too_large += 1
            return None
        if not more:
            if dg.total >= 0 and dg.total != end:
                self._drop(key)
                stats.dropped_overlap += 1  # two different ends
                return None
            if any(off + len(piece) > end for off, piece in dg.pieces.items()):
                self._drop(key)
                stats.dropped_overlap += 1  # data already held past this end
                return None
            dg.total = end
        elif not size:
            return None  # an empty fragment that is not the last adds nothing
        if 0 <= dg.total < end:
            self._drop(key)
            stats.dropped_overlap += 1  # data past the end
            return None
        pieces = dg.pieces
        same = pieces.get(offset)
        if same is not None:
            if len(same) == size and same == data:
                return None  # a retransmitted fragment
            self._drop(key)
            stats.dropped_overlap += 1
            return None
        for off, piece in pieces.items():
            if off < end and offset < off + len(piece):
                self._drop(key)
                stats.dropped_overlap += 1
                return None
        if len(pieces) >= MAX_FRAGMENTS:
            self._drop(key)
            stats.dropped_too_many += 1
            return None
        pieces[offset] = data.tobytes()
        if offset == 0:
            dg.header = header
        dg.held += size
        self._held += size
        while self._held > MAX_PENDING_BYTES:
            oldest = next(iter(pending))
            self._drop(oldest)
            stats.dropped_overflow += 1
            if oldest == key:
                return None
        # without overlaps, the datagram is complete exactly when the pieces add up to its length
        if dg.total < 0 or dg.held != dg.total:
            return None
        self._drop(key)
        return dg.header, b"".join(pieces[off] for off in sorted(pieces))

    def _expire(self, ts: int) -> None:
        pending = self._pending
        while pending:
            key = next(iter(pending))
            if ts - pending[key].first_ns <= TIMEOUT_NS:
                return
            self._drop(key)
            self.stats.dropped_timeout += 1
