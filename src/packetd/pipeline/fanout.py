"""Splitting one capture across N engines and merging what they say back into what one engine says.

Pure (no processes, no I/O): `parallel.py` runs the processes, this module decides and merges.

**Steering.** `Steer` sees every frame of a capture file in order and names the worker that gets it. It runs
the real L2-L4 decoder (`net/packet.py`) on each frame, so it agrees with the workers on what is a segment
and on every segment's flow key, whatever the link type, VLAN tags or tunnels:

    segment (TCP or UDP)      crc32(lower IP + higher IP) + sport + dport   (mod N): both directions alike
    IP fragment               held until its datagram completes, then sent with the completing fragment to
                              the worker of the reassembled segment's flow (the workers reassemble it again
                              from the same fragments); a datagram that never completes reaches no worker,
                              its fragments are counted here (`lost_fragments`) as one engine counts them
    anything else             worker 0 (ARP, ICMP, malformed, loopback duplicates: only counted there)

Connections of a protocol whose decoders share state across connections (Kafka: topic ids learnt from
Metadata on one connection name the topics of Fetch on another) all go to one worker, by the ports of its
rules (`pinned_ports`); found by content on another port they are hashed like the rest.

So every connection, fragmented or not, is on exactly one worker and sees exactly the segments, in the
order, that one engine would give it. The flow table's idle sweep runs on packet time (every
`SWEEP_INTERVAL_NS`, triggered by the first segment past the interval): `Steer` keeps that clock for the
whole capture and broadcasts a tick to every worker just before the segment that would sweep one engine,
so idle connections expire at the same packet, with the same timestamps, as with one worker.

**Merging records.** Each record is tagged with the sequence number of the frame (or tick) that made its
engine emit it. A worker's records come in sequence order; `Merger` releases, across workers, the records
below the lowest sequence number a worker may still emit for (its oldest unfinished batch), ordered by
(sequence, worker): exactly one engine's order, except that records emitted at the same tick or at the end
of the capture by several workers come grouped by worker rather than interleaved by connection age.

**Merging the summary.** Counters add up. The endpoint table keeps the first `MAX_ENDPOINTS` endpoints
*seen* and folds the rest, so each worker keeps its endpoints unfolded (up to `worker_max_keys()`) with the
sequence number each was first seen at, and `merge_summaries` redoes the folding in global first-seen
order. Latency histograms merge bucket by bucket, so the percentiles are those one engine computes.
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import Any, Final
from zlib import crc32

from packetd.flow.ports import MAX_PORTS, PortTally
from packetd.flow.table import SWEEP_INTERVAL_NS
from packetd.net.packet import PacketDecoder
from packetd.net.reassembly import MAX_DATAGRAMS, Reassembler
from packetd.pairing.roundtrip import Roundtrip
from packetd.pipeline import summary as _summary
from packetd.pipeline.summary import OTHER, EndpointStats, LatencyHistogram, Summary

# a frame that is not a segment (counted only) goes to this worker
OTHER_WORKER: Final = 0
# datagrams whose fragments are held: the reassembler keeps at most MAX_DATAGRAMS in progress (oldest
# dropped first), so any datagram older than that many newer ones can no longer complete; twice is slack
MAX_HELD_DATAGRAMS: Final = 2 * MAX_DATAGRAMS


def worker_max_keys() -> int:
    """Endpoints a worker keeps unfolded: enough to redo one engine's folding (the first MAX_ENDPOINTS
    kept, MAX_FOLDED_KEYS distinct folded ones counted) exactly whichever worker saw them first."""
    return _summary.MAX_ENDPOINTS + _summary.MAX_FOLDED_KEYS


Frame = tuple[int, int, memoryview]


def flow_worker(src: bytes, dst: bytes, sport: int, dport: int, workers: int) -> int:
    """The worker of a connection: the same for both directions (symmetric in the two ends)."""
    pair = src + dst if src <= dst else dst + src
    return (crc32(pair) + sport + dport) % workers  # as Steer.route computes it inline


class _KeyedReassembler(Reassembler):
    """The reassembler, noting which datagram the last fragment belonged to."""

    last: tuple[bytes, int, int] = (b"", 0, 0)

    def add_v4(
        self, ts: int, addrs: bytes, proto: int, ident: int, offset: int, more: bool, data: memoryview
    ) -> bytes | None:
        self.last = (addrs, proto, ident)
        return super().add_v4(ts, addrs, proto, ident, offset, more, data)

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
        self.last = (addrs, -1, ident)
        return super().add_v6(ts, addrs, ident, offset, more, data, next_header)


class Steer:
    """Names the worker of each frame of a capture, in order (see the module docstring).

    `route(ts, lt, data)` names the frame's worker and sets `tick` to the packet time every worker must
    tick to first (or -1)."""

    def __init__(
        self,
        workers: int,
        ip_versions: frozenset[int] = frozenset({4, 6}),
        pinned_ports: frozenset[int] = frozenset(),
    ) -> None:
        self.workers = workers
        # connections on these ports all go to the last worker: their protocol's decoders share state
        # across connections (DecoderContext.shared), which one engine holds once
        self.pinned = pinned_ports
        self.pin_worker = workers - 1
        self.decoder = PacketDecoder(ip_versions)
        self.reassembler = _KeyedReassembler()
        self.decoder.reassembler = self.reassembler
        self._decode = self.decoder.decode
        self._stats = self.decoder.stats
        self.released: list[tuple[int, int, memoryview]] = []  # see `route`
        self.now_ns = 0  # the flow table's packet clock: the latest segment time
        self._next_sweep = -1
        self.tick = -1
        # datagram → its fragments so far (copied: the reader's buffer may move on), oldest first
        self._held: dict[tuple[bytes, int, int], list[tuple[int, int, bytes]]] = {}
        self.lost_fragments = 0  # fragments of datagrams that never completed: counted, sent nowhere
        self.first_ns = -1

    def route(self, ts: int, lt: int, data: memoryview) -> int:
        """The worker of this frame, or -1 (a fragment, held). When `released` is not empty, the held
        fragments in it go to that worker first (this frame completed their datagram)."""
        stats = self._stats
        fragments, reassembled = stats.fragments, stats.reassembled
        seg = self._decode(ts, lt, data)
        self.tick = -1
        if seg is None:
            if stats.fragments != fragments:  # a fragment that did not complete its datagram
                self._hold(self.reassembler.last, ts, lt, data)
                return -1
            return OTHER_WORKER
        t = seg.ts_ns
        if t > self.now_ns:
            self.now_ns = t
            if t >= self._next_sweep:
                self._next_sweep = t + SWEEP_INTERVAL_NS
                self.tick = t
        sport, dport = seg.sport, seg.dport
        pinned = self.pinned
        if pinned and (sport in pinned or dport in pinned):
            w = self.pin_worker
        else:
            src, dst = seg.src, seg.dst
            w = (crc32(src + dst if src <= dst else dst + src) + sport + dport) % self.workers
        if stats.reassembled != reassembled:
            self.released = [
                (fts, flt, memoryview(fdata)) for fts, flt, fdata in self._held.pop(self.reassembler.last, [])
            ]
        elif self.released:
            self.released = []
        return w

    def _hold(self, key: tuple[bytes, int, int], ts: int, lt: int, data: memoryview) -> None:
        held = self._held.get(key)
        if held is None:
            if len(self._held) >= MAX_HELD_DATAGRAMS:
                self.lost_fragments += len(self._held.pop(next(iter(self._held))))
            held = self._held[key] = []
        held.append((ts, lt, data.tobytes()))

    def finish(self) -> int:
        """Fragments held for datagrams that never completed (they reach no worker)."""
        self.lost_fragments += sum(len(v) for v in self._held.values())
        self._held.clear()
        return self.lost_fragments


# -- merging records ------------------------------------------------------------------------------------------
class Merger:
    """Releases the workers' records in one engine's order (see the module docstring).

    Records of one worker are added in sequence order; `release(limit)` yields, merged across workers by
    (sequence, worker), those below `limit`: the lowest sequence number any worker may still emit at."""

    def __init__(self, workers: int) -> None:
        self._records: list[deque[tuple[int, bytes]]] = [deque() for _ in range(workers)]
        self.held = 0  # records waiting for a slower worker (bounded by the rings: see capture/shmring.py)

    def add(self, w: int, records: list[tuple[int, bytes]]) -> None:
        self._records[w].extend(records)
        self.held += len(records)

    def release(self, limit: float) -> list[bytes]:
        ready: list[list[tuple[int, int, bytes]]] = []
        for w, q in enumerate(self._records):
            out = []
            while q and q[0][0] < limit:
                seq, line = q.popleft()
                out.append((seq, w, line))
            if out:
                ready.append(out)
        if not ready:
            return []
        self.held -= sum(len(r) for r in ready)
        if len(ready) == 1:
            return [line for _, _, line in ready[0]]
        return [line for _, _, line in heapq.merge(*ready)]


# live: records held for the slowest worker at most; beyond, the oldest go out anyway (`overflow`): a
# worker that falls a window behind must not grow the reader's memory
MAX_LIVE_HELD: Final = 100_000


class WindowMerger:
    """Live: records in end-time order within a window. Each worker says how far its packet clock got
    (`mark`, sent at least every 200 ms, idle or not); records older than every worker's mark go out, in
    end-time order (a record that ends before one already written, such as a request that stayed
    unanswered, goes out at the next release: order is by end time within the window, not absolute)."""

    def __init__(self, workers: int, max_held: int = MAX_LIVE_HELD) -> None:
        self._heap: list[tuple[int, int, int, bytes]] = []
        self._marks = [-1] * workers
        self._n = 0
        self.max_held = max_held
        self.overflow = 0  # records released before every worker's mark passed them (window full)

    def add(self, w: int, records: list[tuple[int, bytes]], mark: int) -> None:
        heap = self._heap
        for key, line in records:
            self._n += 1
            heapq.heappush(heap, (key, w, self._n, line))
        self._marks[w] = max(self._marks[w], mark)

    def release(self, everything: bool = False) -> list[bytes]:
        heap, out = self._heap, []
        limit = float("inf") if everything else min(self._marks)
        while heap and (heap[0][0] < limit or len(heap) > self.max_held):
            if heap[0][0] >= limit:
                self.overflow += 1
            out.append(heapq.heappop(heap)[3])
        return out


# -- merging the summary --------------------------------------------------------------------------------------
class WorkerSummary(Summary):
    """A worker's summary: endpoints unfolded (up to worker_max_keys()), each with the sequence number it was
    first seen at (`seq`, set by the worker before `add`)."""

    def __init__(self) -> None:
        super().__init__()
        self.seq = 0
        self.first_seen: dict[tuple[str, str, str, str], int] = {}

    def _new_endpoint(self, key: tuple[str, str, str, str]) -> EndpointStats:
        if len(self.endpoints) >= worker_max_keys():
            return super()._new_endpoint(key)  # folds, as one engine would long before
        self.first_seen[key] = self.seq
        ep = self.endpoints[key] = EndpointStats()
        return ep

    def add_record(self, seq: int, rt: Roundtrip) -> None:
        self.seq = seq
        self.add(rt)


def _merge_latency(into: LatencyHistogram, other: LatencyHistogram) -> None:
    if not other.count:
        return
    for b, n in other.buckets.items():
        into.buckets[b] = into.buckets.get(b, 0) + n
    into.min = other.min if not into.count else min(into.min, other.min)
    into.max = max(into.max, other.max)
    into.count += other.count


def _merge_endpoint(into: EndpointStats, other: EndpointStats) -> None:
    into.count += other.count
    into.errors += other.errors
    _merge_latency(into.latency, other.latency)


def merge_summaries(parts: list[WorkerSummary]) -> Summary:
    """One summary, as one engine would have built it from all the records (see the module docstring)."""
    out = Summary()
    merged: dict[tuple[str, str, str, str], EndpointStats] = {}
    first: dict[tuple[str, str, str, str], tuple[int, int]] = {}
    other = EndpointStats()
    for w, part in enumerate(parts):
        for kind, n in part.kinds.items():
            out.kinds[kind] = out.kinds.get(kind, 0) + n
        for key, ep in part.endpoints.items():
            if key == OTHER and key not in part.first_seen:  # folded in the worker (beyond worker_max_keys())
                _merge_endpoint(other, ep)
                continue
            seen = (part.first_seen[key], w)
            if key in merged:
                _merge_endpoint(merged[key], ep)
                first[key] = min(first[key], seen)
            else:
                merged[key] = EndpointStats()
                _merge_endpoint(merged[key], ep)
                first[key] = seen
        out.folded += part.folded
        out.folded_keys |= part.folded_keys
    for i, key in enumerate(sorted(merged, key=first.__getitem__)):
        if i < _summary.MAX_ENDPOINTS:
            out.endpoints[key] = merged[key]
        else:
            out.folded += merged[key].count
            out.folded_keys.add(key)
            _merge_endpoint(other, merged[key])
    if len(out.folded_keys) > _summary.MAX_FOLDED_KEYS:
        out.folded_keys = set(sorted(out.folded_keys)[: _summary.MAX_FOLDED_KEYS])
    if other.count:
        out.endpoints[OTHER] = other
    return out


# -- merging engine counters ----------------------------------------------------------------------------------
def _fields(obj: Any) -> list[str]:
    """A counters object's attribute names: the `__slots__` of its classes (the pure build); for a class mypyc
    compiled, which keeps no `__slots__`, its `__mypyc_attrs__` (the inherited ones included); else the
    instance's `__dict__`."""
    native = getattr(type(obj), "__mypyc_attrs__", None)
    if native is not None:
        return [name for name in native if name != "__dict__"]
    slots: list[str] = []
    for cls in type(obj).__mro__:
        slots.extend(getattr(cls, "__slots__", ()))
    return slots or list(vars(obj))


def _is_counters(obj: object) -> bool:
    """A nested counters object (ProtocolStats.pairing): an instance of a slotted class, or of a compiled one
    (the counters classes of the compiled modules are all slotted in the sources)."""
    return hasattr(obj, "__slots__") or hasattr(type(obj), "__mypyc_attrs__")


def merge_counters(into: Any, other: Any) -> None:
    """Adds `other`'s counters to `into` (objects of one class): ints add, dicts merge by key, sets join,
    nested counter objects merge alike. What is not a counter (a protocol's shared decoder state) is left."""
    for name in _fields(other):
        a, b = getattr(into, name), getattr(other, name)
        if isinstance(b, bool):
            setattr(into, name, a or b)
        elif isinstance(b, int):
            setattr(into, name, a + b)
        elif isinstance(b, set):
            a |= b
        elif isinstance(b, dict):
            _merge_dict(a, b)
        elif _is_counters(b) and type(a) is type(b):
            merge_counters(a, b)


def _merge_dict(into: dict[Any, Any], other: dict[Any, Any]) -> None:
    for k, v in other.items():
        if k not in into:
            into[k] = v
        elif isinstance(v, int) and not isinstance(v, bool):
            into[k] += v
        elif _is_counters(v) and type(into[k]) is type(v):
            merge_counters(into[k], v)
        # else (a protocol name a detection port last went to, shared state): the first worker's stays


def merge_ports(into: PortTally, other: PortTally) -> None:
    """The first-run hint's tally: packets per server port add up (within MAX_PORTS), times widen."""
    if other.first_ns >= 0 and (into.first_ns < 0 or other.first_ns < into.first_ns):
        into.first_ns = other.first_ns
    into.last_ns = max(into.last_ns, other.last_ns)
    into.packets += other.packets
    into.overflow += other.overflow
    for key, n in other.counts.items():
        if key in into.counts:
            into.counts[key] += n
        elif len(into.counts) < MAX_PORTS:
            into.counts[key] = n
        else:
            into.overflow += n
    into.listening |= other.listening
    into.active = into.active and other.active
