"""Loss and reordering on real captures: each HTTP/1 capture of the shared corpus, modified by
tests/helpers/lossy.py (a segment removed, segments swapped or reversed), replayed through the whole engine.

The truth is the records of the unmodified capture, themselves checked against tshark's view of it
(`-Y http.request` / `http.response`). What must hold:

* reordering a direction's segments (as a capture point can see them) changes nothing: the same records;
* removing a segment never invents a pairing (every request/response pair reported was in the original),
  leaves other connections and the exchanges completed before the loss identical, and is noticed (a gap
  of the segment's size, unless the capture also holds a retransmission of its bytes);
* every record that differs from the original carries the `gap` flag, and the exchanges that started
  after the damaged message still appear (the decoder resynchronises).
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from dataclasses import dataclass

import pytest

from packetd.engine import Rule
from packetd.net.packet import ACK, FIN, SYN
from packetd.pairing.roundtrip import Roundtrip
from packetd.protocols.base import Flag
from tests.helpers.golden import ManifestRow, manifest, run_file
from tests.helpers.lossy import (
    Conn,
    Seg,
    by_conn,
    conn_of,
    pairing,
    project,
    read_frames,
    swapped,
    tcp_segments,
    tshark_http,
    write_modified,
)

ROWS = {row.name: row for row in manifest("http1")}
NAMES = sorted(ROWS)


@dataclass(frozen=True)
class Original:
    row: ManifestRow
    frames: int
    segs: list[Seg]
    records: list[Roundtrip]
    flow_gap_bytes: int
    orphans: int  # responses the engine could not pair (counted, not recorded)

    @property
    def rules(self) -> tuple[Rule, ...]:
        return (Rule(protocol="http", ports=self.row.ports),)


@functools.cache
def original(name: str) -> Original:
    row = ROWS[name]
    records, engine = run_file(row.path, (Rule(protocol="http", ports=row.ports),))
    return Original(
        row,
        len(read_frames(row.path)[1]),
        tcp_segments(row.path, row.ports),
        records,
        engine.flows.stats.gap_bytes,
        engine.protocol_stats["http"].pairing.orphans,
    )


def replay(
    orig: Original, path: str, drop: list[int] | None = None, order: list[int] | None = None
) -> tuple[list[Roundtrip], int]:
    write_modified(orig.row.path, path, drop=drop or (), order=order)
    records, engine = run_file(path, orig.rules)
    return records, engine.flows.stats.gap_bytes


_DROPPED: dict[tuple[str, int], tuple[list[Roundtrip], int]] = {}


def without(orig: Original, path: str, s: Seg) -> tuple[list[Roundtrip], int]:
    """The capture without segment `s`, replayed (once: two tests look at each result)."""
    key = (orig.row.name, s.index)
    if key not in _DROPPED:
        _DROPPED[key] = replay(orig, path, drop=[s.index])
    return _DROPPED[key]


def data_segments(orig: Original) -> list[Seg]:
    return [s for s in orig.segs if s.length]


# -- the truth itself: the unmodified capture against tshark --------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_original_records_agree_with_tshark(name: str) -> None:
    orig = original(name)
    view = tshark_http(orig.row.path, orig.row.ports)
    if view is None:
        pytest.skip("tshark is not installed")
    t_requests, t_codes = view
    ours = [r for r in orig.records if r.request is not None]
    assert Counter((r.operation, r.request.to_json()["target"]) for r in ours) == Counter(t_requests)  # type: ignore[union-attr]
    # every final response tshark saw is in a record, or was counted as an orphan (a response captured
    # before its request: see tests/protocols/http1/test_golden.py); a response we have beyond tshark's is one tshark lost
    # to a gap in the capture, and says so
    codes = Counter(r.status for r in orig.records if r.response is not None)
    assert (Counter(t_codes) - codes).total() == orig.orphans
    extra = codes - Counter(t_codes)
    flagged = Counter(r.status for r in orig.records if r.response is not None and r.all_flags & Flag.GAP)
    assert not extra - flagged


# -- reordering ---------------------------------------------------------------------------------------------
def causal_pairs(segs: list[Seg]) -> list[tuple[Seg, Seg]]:
    """Consecutive data segments of one direction of a connection, with no data of the other direction
    between them (a response between two requests may depend on the first: no capture point on the path
    can show it before that request). Bare ACKs between them stay: a mirror port can show an ACK early."""
    per: dict[Conn, list[Seg]] = {}
    for s in segs:
        per.setdefault(s.conn, []).append(s)
    pairs = []
    for conn_segs in per.values():
        for i, a in enumerate(conn_segs):
            if not a.length:
                continue
            for b in conn_segs[i + 1 :]:
                if b.length and b.direction == a.direction:
                    pairs.append((a, b))
                    break
                if b.length:
                    break
    return pairs


def back_to_back_runs(orig: Original, k: int) -> list[list[Seg]]:
    """Runs of k data segments of one direction with nothing else of their connection between them."""
    per: dict[Conn, list[Seg]] = {}
    for s in orig.segs:
        per.setdefault(s.conn, []).append(s)
    runs = []
    for conn_segs in per.values():
        for i in range(len(conn_segs) - k + 1):
            run = conn_segs[i : i + k]
            if all(s.length and s.direction == run[0].direction for s in run):
                runs.append(run)
    return runs


@pytest.mark.parametrize("name", NAMES)
def test_swapped_segments_give_the_same_records(name: str, tmp_path: object) -> None:
    orig = original(name)
    want = by_conn(orig.records)
    path = os.path.join(str(tmp_path), "swapped.pcap")
    pairs = causal_pairs(orig.segs)
    for a, b in pairs:
        records, _ = replay(orig, path, order=swapped(orig.frames, [(a.index, b.index)]))
        assert by_conn(records) == want, f"frames {a.index} and {b.index} swapped"
    if name in (
        "zeek_zeek__bro.org.pcap",
        "zeek_zeek__pipelined-requests.pcap",
        "njcx_packetbeat__http_minitwit.pcap",
    ):
        assert len(pairs) >= 20  # the test did something


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("k", [3, 4])
def test_reversed_runs_give_the_same_records(name: str, k: int, tmp_path: object) -> None:
    orig = original(name)
    want = by_conn(orig.records)
    path = os.path.join(str(tmp_path), "reversed.pcap")
    for run in back_to_back_runs(orig, k):
        order = list(range(orig.frames))
        idx = [s.index for s in run]
        for slot, i in zip(idx, reversed(idx), strict=True):
            order[slot] = i
        records, _ = replay(orig, path, order=order)
        assert by_conn(records) == want, f"frames {idx} reversed"


def test_reordering_is_exercised() -> None:
    assert len(back_to_back_runs(original("zeek_zeek__bro.org.pcap"), 4)) >= 50


# -- loss -----------------------------------------------------------------------------------------------------
def covered_elsewhere(orig: Original, s: Seg) -> bool:
    """Whether another captured segment (a retransmission) carries any byte of `s`."""
    end = s.seq + s.length
    for o in orig.segs:
        if o is not s and o.conn == s.conn and o.direction == s.direction and o.length:
            # sequence numbers of one direction of these captures do not wrap: plain comparison is exact
            if o.seq < end and s.seq < o.seq + o.length:
                return True
    return False


def knowable(orig: Original, s: Seg) -> bool:
    """Whether the capture, without `s`, still proves that its bytes were sent: something of its direction
    is seen before it (a SYN, or data) and something after it (data or a FIN beyond it, or the peer
    acknowledging its end)."""
    end = s.seq + s.length
    same = [o for o in orig.segs if o is not s and o.conn == s.conn]
    before = any(o.direction == s.direction and (o.flags & SYN or (o.length and o.seq < s.seq)) for o in same)
    after = any(
        (o.direction == s.direction and (o.length or o.flags & FIN) and o.seq >= end)
        or (o.direction != s.direction and o.flags & ACK and o.ack >= end)
        for o in same
    )
    return before and after


def completed_before(orig: Original, conn: Conn, ts: int) -> list[dict]:
    """The original exchanges of `conn` whose messages had all ended before `ts`."""
    out = []
    for r in orig.records:
        if conn_of(r) != conn:
            continue
        ends = [m.end_ns for m in (r.request, r.response) if m is not None]
        if max(ends) < ts and r.kind == "roundtrip":
            out.append(project(r))
    return out


@pytest.mark.parametrize("name", NAMES)
def test_removed_segment_invents_nothing_and_is_noticed(name: str, tmp_path: object) -> None:
    orig = original(name)
    path = os.path.join(str(tmp_path), "lossy.pcap")
    pairs_before = Counter(
        pairing(r) for r in orig.records if r.request is not None and r.response is not None
    )
    want = by_conn(orig.records)
    for s in data_segments(orig):
        records, gap_bytes = without(orig, path, s)
        where = f"frame {s.index} removed"
        # no invented pairing: every (connection, method, target, status) reported was reported before
        pairs_after = Counter(pairing(r) for r in records if r.request is not None and r.response is not None)
        assert not pairs_after - pairs_before, where
        got = by_conn(records)
        # other connections are untouched
        for conn, recs in want.items():
            if conn != s.conn:
                assert got.get(conn) == recs, where
        # exchanges completed before the loss are reported as before
        mine = list(got.get(s.conn, []))
        for rec in completed_before(orig, s.conn, s.ts_ns):
            assert rec in mine, where
            mine.remove(rec)
        # the loss is noticed: a gap of exactly the segment's size when the capture proves it was sent and
        # holds no retransmission of it (a lost FIN's sequence number may count as one more byte: the
        # peer's ACK of a FIN is indistinguishable from the ACK of one more byte)
        grown = gap_bytes - orig.flow_gap_bytes
        fin = 1 if s.flags & FIN else 0
        if knowable(orig, s) and not covered_elsewhere(orig, s):
            assert s.length <= grown <= s.length + fin, where
        else:
            assert 0 <= grown <= s.length + fin, where


def damaged_message_end(orig: Original, s: Seg) -> int:
    """The end time of the original message the removed segment was part of (its own time if none)."""
    for r in orig.records:
        if conn_of(r) != s.conn:
            continue
        m = r.request if s.direction == 0 else r.response
        if m is not None and m.start_ns <= s.ts_ns <= m.end_ns:
            return m.end_ns
    return s.ts_ns


@pytest.mark.parametrize("name", NAMES)
def test_removed_segment_flags_what_changed_and_decoding_resynchronises(name: str, tmp_path: object) -> None:
    orig = original(name)
    path = os.path.join(str(tmp_path), "lossy.pcap")
    before = [project(r) for r in orig.records]
    for s in data_segments(orig):
        records, _ = without(orig, path, s)
        where = f"frame {s.index} removed"
        unmatched = list(before)
        known = knowable(orig, s)
        for r in records:
            p = project(r)
            if p in unmatched:
                unmatched.remove(p)
            elif known:
                assert r.all_flags & Flag.GAP, (
                    f"{where}: {p['kind']} {p['operation']} {p['status']} differs, no gap flag"
                )
            else:
                # a loss nothing in the capture reveals: a message cut short, or an answer never seen
                assert r.all_flags & (Flag.GAP | Flag.TRUNCATED) or r.kind == "unanswered", where
        after = Counter(pairing(r) for r in records if r.response is not None)
        end = damaged_message_end(orig, s)
        for r in orig.records:
            if (
                conn_of(r) == s.conn
                and r.request is not None
                and r.request.start_ns > end
                and r.response is not None
            ):
                assert after[pairing(r)] > 0, f"{where}: {r.operation} {r.request.to_json()['target']} lost"


def test_decoder_resyncs_on_a_start_line_after_a_body_without_newline() -> None:
    """After a gap, a start line that begins a segment right after bytes not ending a line is found."""
    from packetd.protocols.base import Direction
    from packetd.protocols.http1.decoder import Http1Decoder
    from packetd.protocols.http1.messages import Response

    dec = Http1Decoder()
    out = list(dec.receive(Direction.C2S, memoryview(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"), 1))
    out += dec.receive_gap(Direction.S2C, 100, 2)  # the response to /a lost its head in capture
    out += dec.receive(Direction.S2C, memoryview(b"...rest of /a's body, no newline at its end"), 3)
    out += dec.receive(Direction.C2S, memoryview(b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"), 4)
    out += dec.receive(Direction.S2C, memoryview(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), 5)
    assert [m.status_code for m in out if isinstance(m, Response)] == [200]
