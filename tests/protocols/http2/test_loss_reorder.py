"""Loss and reordering on the real HTTP/2 and gRPC captures of the shared corpus (tests/helpers/lossy.py
modifies them: a segment removed, neighbouring segments of one direction swapped), replayed through the
whole engine. The truth is the records of the unmodified capture, whose counts tests/protocols/http2/test_golden.py checks
against tshark.

* Swapping two consecutive data segments of one direction changes nothing.
* Removing a data segment never invents a pairing (no stream is reported answered with a status it was not
  answered with), leaves other connections and the streams that ended before the loss as they were, and
  every record that differs from the original says why: `gap` (bytes lost in or before it), `midstream`
  (its header block referred to table entries the lost bytes held), `truncated` or `unanswered`.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections import Counter

import pytest

from packetd.engine import Rule
from packetd.net.packet import SYN
from packetd.pairing.roundtrip import Roundtrip
from packetd.protocols.base import Flag
from tests.helpers.golden import RULES_FOR, ManifestRow, manifest, run_file
from tests.helpers.lossy import (
    Conn,
    Seg,
    by_conn,
    conn_of,
    project,
    read_frames,
    swapped,
    tcp_segments,
    write_modified,
)

# tests/helpers/lossy.py rewrites pcap files only
ROWS = {row.name: row for row in manifest("http2") + manifest("grpc") if not row.name.endswith(".pcapng")}
NAMES = sorted(ROWS)
EXPLAINED_FLAGS = Flag.GAP | Flag.MIDSTREAM | Flag.TRUNCATED


def rules(row: ManifestRow) -> tuple[Rule, ...]:
    return RULES_FOR[row.protocol](row)


@functools.cache
def original(name: str) -> tuple[int, list[Seg], list[Roundtrip]]:
    row = ROWS[name]
    records, _ = run_file(row.path, rules(row))
    return len(read_frames(row.path)[1]), tcp_segments(row.path, row.ports), records


def replay(
    row: ManifestRow, path: str, drop: list[int] | None = None, order: list[int] | None = None
) -> list[Roundtrip]:
    write_modified(row.path, path, drop=drop or (), order=order)
    return run_file(path, rules(row))[0]


def claims(records: list[Roundtrip]) -> Counter[tuple[Conn, int, str, str | None, str | None]]:
    """What records claim: on this connection, stream N (this operation and path) ended with this status.
    A status the capture could not read ("") claims nothing."""
    return Counter(claim(r) for r in records if r.request is not None and r.response is not None and r.status)


def claim(r: Roundtrip) -> tuple[Conn, int, str, str | None, str | None]:
    req = r.request
    assert req is not None
    return (conn_of(r), getattr(req, "stream_id", 0), r.operation, getattr(req, "path", None), r.status)


def one_direction_pairs(segs: list[Seg]) -> list[tuple[Seg, Seg]]:
    """Consecutive data segments of one direction with no data of the other direction between them. On a
    connection captured without its handshake, the first segment of a direction is where the capture
    joined it: a capture point cannot show bytes before the point where it joined, so it is not swapped."""
    per: dict[Conn, list[Seg]] = {}
    for s in segs:
        per.setdefault(s.conn, []).append(s)
    pairs = []
    for conn_segs in per.values():
        joined = not any(s.flags & SYN for s in conn_segs)
        data = [s for s in conn_segs if s.length]
        firsts = {next((s.index for s in data if s.direction == d), -1) for d in (0, 1)} if joined else set()
        for a, b in itertools.pairwise(data):
            if a.direction == b.direction and a.index not in firsts:
                pairs.append((a, b))
    return pairs


@pytest.mark.parametrize("name", NAMES)
def test_swapped_segments_give_the_same_records(name: str, tmp_path: object) -> None:
    frames, segs, records = original(name)
    want = by_conn(records)
    path = os.path.join(str(tmp_path), "swapped.pcap")
    for a, b in one_direction_pairs(segs):
        got = replay(ROWS[name], path, order=swapped(frames, [(a.index, b.index)]))
        assert by_conn(got) == want, f"frames {a.index} and {b.index} swapped"


def test_swapping_is_exercised() -> None:
    assert sum(len(one_direction_pairs(original(n)[1])) for n in NAMES) >= 30


@pytest.mark.parametrize("name", NAMES)
def test_removed_segment_invents_nothing_and_explains_every_difference(name: str, tmp_path: object) -> None:
    _, segs, records = original(name)
    path = os.path.join(str(tmp_path), "lossy.pcap")
    answered = claims(records)
    want = by_conn(records)
    for s in [s for s in segs if s.length]:
        where = f"frame {s.index} removed"
        got_records = replay(ROWS[name], path, drop=[s.index])
        after = claims(got_records)
        assert not after - answered, where  # no stream answered with what it was not answered with
        got = by_conn(got_records)
        for conn, recs in want.items():
            if conn != s.conn:
                assert got.get(conn) == recs, where
        before = [project(r) for r in records]
        ended_before = [
            project(r)
            for r in records
            if conn_of(r) == s.conn
            and max(m.end_ns for m in (r.request, r.response) if m is not None) < s.ts_ns
        ]
        mine = [project(r) for r in got_records if conn_of(r) == s.conn]
        for rec in ended_before:
            assert rec in mine, where
        for r in got_records:
            p = project(r)
            if p in before:
                before.remove(p)
            else:
                assert r.all_flags & EXPLAINED_FLAGS or r.kind == "unanswered", (
                    f"{where}: {p} differs, unflagged"
                )
