"""Reassembler: completeness, overlaps and every bound, against datagrams the tests cut themselves."""

from __future__ import annotations

import itertools
import random

import pytest

from packetd.net import reassembly as r
from packetd.net.reassembly import Reassembler

ADDRS = bytes(range(8))
NS = 1_000_000_000


def pieces(data: bytes, sizes: list[int]) -> list[tuple[int, bool, bytes]]:
    """(offset, more, bytes) fragments of `data` cut after each size in `sizes`."""
    out, off = [], 0
    for size in [*sizes, len(data)]:
        chunk = data[off : off + size]
        if not chunk:
            break
        out.append((off, off + len(chunk) < len(data), chunk))
        off += len(chunk)
    return out


def feed(ra: Reassembler, frags: list[tuple[int, bool, bytes]], ident: int = 1, ts: int = 0) -> list[bytes]:
    done = []
    for off, more, chunk in frags:
        got = ra.add_v4(ts, ADDRS, 17, ident, off, more, memoryview(chunk))
        if got is not None:
            done.append(got)
    return done


DATA = bytes(random.Random(1).getrandbits(8) for _ in range(4000))


@pytest.mark.parametrize("perm", list(itertools.permutations(range(4))))
def test_every_order_completes_once(perm: tuple[int, ...]) -> None:
    frags = pieces(DATA, [1480, 1480, 32])
    assert len(frags) == 4
    ra = Reassembler()
    got = feed(ra, [frags[i] for i in perm])
    assert got == [DATA]
    assert ra.pending == 0


def test_incomplete_until_the_hole_is_filled() -> None:
    frags = pieces(DATA, [1000, 1000, 1000])
    ra = Reassembler()
    assert feed(ra, [frags[0], frags[1], frags[3]]) == []
    assert ra.pending == 1
    assert feed(ra, [frags[2]]) == [DATA]


def test_duplicates_are_ignored_but_conflicting_copies_discard() -> None:
    frags = pieces(DATA, [1000])
    ra = Reassembler()
    assert feed(ra, [frags[0], frags[0], frags[1]]) == [DATA]
    assert ra.stats.dropped_overlap == 0
    ra = Reassembler()
    changed = (0, True, b"X" + frags[0][2][1:])
    assert feed(ra, [frags[0], changed, frags[1]]) == []
    assert ra.stats.dropped_overlap == 1


@pytest.mark.parametrize(
    "second",
    [
        (996, True, DATA[996:2000]),  # starts inside the first
        (0, True, DATA[:1004]),  # same start, longer
        (8, True, DATA[8:16]),  # wholly inside
    ],
)
def test_overlaps_discard_the_datagram(second: tuple[int, bool, bytes]) -> None:
    ra = Reassembler()
    first = (0, True, DATA[:1000])
    assert feed(ra, [first, second, (1000, False, DATA[1000:2000])]) == []
    assert ra.stats.dropped_overlap == 1
    assert ra.pending == 1  # the last fragment started a new datagram under the same key


def test_inconsistent_ends_discard() -> None:
    ra = Reassembler()
    assert feed(ra, [(1000, False, DATA[1000:2000]), (1000, False, DATA[1000:1500])]) == []
    assert ra.stats.dropped_overlap == 1
    ra = Reassembler()
    assert feed(ra, [(2000, True, DATA[2000:2100]), (1000, False, DATA[1000:1500])]) == []
    assert ra.stats.dropped_overlap == 1  # data held past the end that the last fragment declares
    ra = Reassembler()
    assert feed(ra, [(100, False, DATA[100:200]), (300, True, DATA[300:400])]) == []
    assert ra.stats.dropped_overlap == 1  # data past the known end


def test_keys_separate_datagrams() -> None:
    ra = Reassembler()
    a, b = pieces(DATA[:2000], [1000]), pieces(DATA[2000:], [1000])
    assert ra.add_v4(0, ADDRS, 17, 1, *a[0][:2], memoryview(a[0][2])) is None
    assert ra.add_v4(0, ADDRS, 17, 2, *b[0][:2], memoryview(b[0][2])) is None
    assert ra.add_v4(0, ADDRS, 6, 1, *b[1][:2], memoryview(b[1][2])) is None  # other protocol
    assert ra.add_v6(0, ADDRS, 1, *b[1][:2], memoryview(b[1][2]), 17) is None  # IPv6 is apart
    assert ra.add_v4(0, ADDRS, 17, 2, *b[1][:2], memoryview(b[1][2])) == DATA[2000:]
    assert ra.add_v4(0, ADDRS, 17, 1, *a[1][:2], memoryview(a[1][2])) == DATA[:2000]


def test_ipv6_takes_the_first_fragments_next_header() -> None:
    ra = Reassembler()
    assert ra.add_v6(0, ADDRS, 9, 1000, False, memoryview(DATA[1000:1100]), 6) is None
    assert ra.add_v6(0, ADDRS, 9, 0, True, memoryview(DATA[:1000]), 60) == (60, DATA[:1100])


def test_timeout() -> None:
    frags = pieces(DATA, [1000])
    ra = Reassembler()
    assert feed(ra, frags[:1], ts=0) == []
    assert feed(ra, frags[1:], ts=r.TIMEOUT_NS + 1) == []  # the first fragment expired before
    assert ra.stats.dropped_timeout == 1
    ra = Reassembler()
    assert feed(ra, frags[:1], ts=0) + feed(ra, frags[1:], ts=r.TIMEOUT_NS) == [DATA]


def test_bounded_number_of_datagrams() -> None:
    ra = Reassembler()
    for ident in range(r.MAX_DATAGRAMS + 10):
        ra.add_v4(0, ADDRS, 17, ident, 0, True, memoryview(b"x" * 8))
    assert ra.pending == r.MAX_DATAGRAMS
    assert ra.stats.dropped_overflow == 10
    # the oldest went first: datagram 0 no longer completes, the newest does
    assert ra.add_v4(0, ADDRS, 17, 0, 8, False, memoryview(b"y")) is None
    assert ra.add_v4(0, ADDRS, 17, r.MAX_DATAGRAMS + 9, 8, False, memoryview(b"y")) == b"x" * 8 + b"y"


def test_bounded_fragments_per_datagram() -> None:
    ra = Reassembler()
    for i in range(r.MAX_FRAGMENTS):
        assert ra.add_v4(0, ADDRS, 17, 1, 8 * i, True, memoryview(b"z" * 8)) is None
    assert ra.add_v4(0, ADDRS, 17, 1, 8 * r.MAX_FRAGMENTS, True, memoryview(b"z" * 8)) is None
    assert ra.stats.dropped_too_many == 1
    assert ra.pending == 0


def test_bounded_size() -> None:
    ra = Reassembler()
    assert ra.add_v4(0, ADDRS, 17, 1, 65528, False, memoryview(b"w" * 8)) is None  # ends at 65536
    assert ra.stats.dropped_too_large == 1
    assert ra.add_v4(0, ADDRS, 17, 2, 65528, False, memoryview(b"w" * 7)) is None  # ends at 65535
    assert ra.stats.dropped_too_large == 1 and ra.pending == 1


def test_bounded_bytes_held() -> None:
    ra = Reassembler()
    chunk = memoryview(b"v" * 60000)
    count = r.MAX_PENDING_BYTES // 60000 + 5
    for ident in range(count):
        ra.add_v4(0, ADDRS, 17, ident, 0, True, chunk)
    assert ra.pending == r.MAX_PENDING_BYTES // 60000
    assert ra.stats.dropped_overflow == count - ra.pending


def test_empty_non_final_fragment_adds_nothing() -> None:
    ra = Reassembler()
    assert ra.add_v4(0, ADDRS, 17, 1, 0, True, memoryview(b"")) is None
    assert ra.add_v4(0, ADDRS, 17, 1, 0, False, memoryview(b"abc")) == b"abc"
