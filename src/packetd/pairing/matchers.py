"""Matchers pair requests with responses on one connection.

* `FifoMatcher` — responses answer requests in order (HTTP/1.x, Redis, MySQL, PostgreSQL): N requests in
  flight pair with N responses, so pipelining works.
* `KeyedMatcher` — a response names its request (HTTP/2 stream id, Kafka correlation id, MongoDB
  responseTo, DNS id).
* `OneWayMatcher` — every message is a record of its own.

One-way messages (`Role.ONEWAY`) never reach a matcher: the session records them at once.

Each matcher is bounded (a request whose answer never comes cannot hold memory forever) by the one
`MAX_PENDING` of protocols/base.py. In order, a request beyond the bound is not tracked (counted under
`evicted`) but keeps its place (pending.PendingQueue): its response is dropped when it comes, so the
pairing never shifts. Keyed, the oldest request is evicted as an `unanswered` record (counted): keys
cannot shift. A response with no request is counted as an orphan and dropped: a record is never
invented.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from packetd.protocols.base import MAX_PENDING, Direction, Flag, Kind, Message
from packetd.protocols.pending import PendingQueue

Emit = Callable[[str, Message | None, Message | None, int], None]  # (kind, request, response, flags)


class PairingStats:
    """Counters a matcher keeps; the session aggregates them per protocol."""

    __slots__ = ("evicted", "orphans", "unanswered", "untracked_answers")

    def __init__(self) -> None:
        # requests beyond the per-connection bound: not tracked (in order) or evicted unanswered (keyed)
        self.evicted = 0
        self.untracked_answers = 0  # responses to requests that were not tracked, dropped
        self.orphans = 0  # responses with no request to answer (joined mid-stream, request lost)
        self.unanswered = 0  # requests that ended without a response (close, end of file, eviction, gap)


class Matcher(Protocol):
    def request(self, msg: Message) -> None: ...
    def response(self, msg: Message) -> None: ...
    def sync_lost(self, direction: Direction) -> None: ...
    def no_answer(self, key: object) -> None: ...
    def pop_oldest(self) -> Message | None: ...
    def close(self) -> None: ...
    def settled(self) -> bool: ...  # every request answered: nothing more is expected


class FifoMatcher:
    """In-order pairing (see module docstring)."""

    __slots__ = ("_emit", "_pending", "_stats")

    def __init__(self, emit: Emit, stats: PairingStats, limit: int = MAX_PENDING) -> None:
        self._emit = emit
        self._stats = stats
        self._pending: PendingQueue[Message] = PendingQueue(limit)

    def request(self, msg: Message) -> None:
        if not self._pending.push(msg):
            self._stats.evicted += 1  # not tracked: its response will be dropped, not paired with a later one

    def response(self, msg: Message) -> None:
        pending = self._pending
        head = pending.peek()
        if head is None:
            if pending.untracked_due() is not None:
                pending.drop_answer()
                self._stats.untracked_answers += 1
                return
            self._stats.orphans += 1  # no request
            return
        if msg.start_ns < head.start_ns:
            # a request sent after this response began: it cannot be the answer
            self._stats.orphans += 1
            return
        pending.popleft()
        self._emit(head.record_kind(), head, msg, 0)

    def sync_lost(self, direction: Direction) -> None:
        # Responses lost with their framing would shift every later pairing by one: what is pending can
        # no longer be answered truthfully. Lost requests heal by themselves (their responses find an
        # empty queue and are orphans) unless requests were pipelined, which the causality check bounds.
        if direction is Direction.S2C:
            pending = self._pending
            for req in pending:
                self._unanswered(req, Flag.GAP)
            pending.clear()

    def no_answer(self, key: object) -> None:
        pass  # in-order protocols have no key to name a request by

    def pop_oldest(self) -> Message | None:
        return self._pending.popleft() if self._pending.peek() is not None else None

    def settled(self) -> bool:
        return not self._pending

    def close(self) -> None:
        for req in self._pending:
            self._unanswered(req, 0)
        self._pending.clear()

    def _unanswered(self, req: Message, flags: int) -> None:
        self._stats.unanswered += 1
        self._emit(Kind.UNANSWERED, req, None, flags)


class KeyedMatcher:
    """Pairing by a key both messages carry (`key_of(msg)`), bounded, oldest evicted first."""

    __slots__ = ("_emit", "_key_of", "_limit", "_pending", "_stats")

    def __init__(
        self, emit: Emit, stats: PairingStats, key_of: Callable[[Message], object], limit: int = MAX_PENDING
    ) -> None:
        self._emit = emit
        self._stats = stats
        self._key_of = key_of
        self._limit = limit
        self._pending: dict[object, Message] = {}

    def request(self, msg: Message) -> None:
        pending = self._pending
        key = self._key_of(msg)
        old = pending.pop(key, None)
        if old is not None:  # the key was reused before an answer came: the old request was not answered
            self._unanswered(old, 0)
        elif len(pending) >= self._limit:
            self._stats.evicted += 1
            self._unanswered(pending.pop(next(iter(pending))), 0)
        pending[key] = msg

    def response(self, msg: Message) -> None:
        req = self._pending.pop(self._key_of(msg), None)
        if req is None:
            self._stats.orphans += 1
            return
        self._emit(req.record_kind(), req, msg, 0)

    def sync_lost(self, direction: Direction) -> None:
        pass  # keys survive lost bytes: a later response still names its request

    def no_answer(self, key: object) -> None:
        req = self._pending.pop(key, None)
        if req is not None:
            self._unanswered(req, 0)

    def pop_oldest(self) -> Message | None:
        if not self._pending:
            return None
        return self._pending.pop(next(iter(self._pending)))

    def settled(self) -> bool:
        return not self._pending

    def close(self) -> None:
        for req in self._pending.values():
            self._unanswered(req, 0)
        self._pending.clear()

    def _unanswered(self, req: Message, flags: int) -> None:
        self._stats.unanswered += 1
        self._emit(Kind.UNANSWERED, req, None, flags)


class OneWayMatcher:
    """Every message is a record of its own (protocols with no request/response structure)."""

    __slots__ = ("_emit",)

    def __init__(self, emit: Emit, stats: PairingStats) -> None:
        self._emit = emit

    def request(self, msg: Message) -> None:
        self._emit(Kind.ONEWAY, msg, None, 0)

    def response(self, msg: Message) -> None:
        self._emit(Kind.ONEWAY, None, msg, 0)

    def sync_lost(self, direction: Direction) -> None:
        pass

    def no_answer(self, key: object) -> None:
        pass

    def pop_oldest(self) -> Message | None:
        return None

    def close(self) -> None:
        pass

    def settled(self) -> bool:
        return False  # no request/response structure: nothing says the conversation is over
