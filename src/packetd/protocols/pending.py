"""The pending queues of in-order pairing: `PendingQueue` and its `Untracked` runs (the one overflow rule).

Every request and every answer of an in-order connection (the FIFO matcher, and the Redis, MySQL,
PostgreSQL, HTTP/1 and AMQP decoders) goes through one of these, so this module is on the compiled build's
list (buildinfo.COMPILED_MODULES), apart from protocols/base.py, which cannot be (its `@value` classes) and
keeps the bound, MAX_PENDING: three interpreted method calls per Redis roundtrip cost the compiled build
~0.3 µs (of ~9).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from packetd.protocols.base import MAX_PENDING

_T = TypeVar("_T")


class Untracked:
    """A run of requests, in the pending order, that were not tracked because the bound was hit.

    `answers` is what is still due to them (a reply each for Redis and MySQL, the ReadyForQuery that ends
    each of their cycles for PostgreSQL); their answers are dropped as they come, so no later request is
    paired with them. `open`: the run ends inside an answer unit (a PostgreSQL cycle not yet ended by its
    Sync): tracking may resume only after it is closed. `codes`: what the decoder needs to frame each
    untracked answer (MySQL: the command byte), one byte per request.
    """

    __slots__ = ("answers", "codes", "open", "requests")

    def __init__(self) -> None:
        self.answers = 0
        self.requests = 0
        self.open = False
        self.codes = bytearray()


class PendingQueue(Generic[_T]):
    """The requests of one connection waiting for their answers, in the order the answers will come.

    Overflow rule (one rule for every in-order pairing): at most `limit` requests are tracked. A request
    that arrives while `limit` are tracked is not tracked — it is counted (`refused`) and never becomes a
    record — but its place in the order is kept in an `Untracked` run (an integer, or a byte per request
    where framing needs one), so that its answer is recognised and dropped (counted: `dropped`) instead of
    being paired with the next tracked request. Dropping the oldest request instead would shift every
    later pairing by one, silently. Tracking resumes as soon as there is room (and no run is open).
    """

    # hot path (every request and response of every in-order connection): while no run is queued, which is
    # always short of the bound, each operation is one deque operation and one integer test
    __slots__ = ("_q", "_runs", "dropped", "limit", "refused")

    def __init__(self, limit: int = MAX_PENDING) -> None:
        self._q: deque[_T | Untracked] = deque()
        self._runs = 0  # Untracked runs in the queue
        self.limit = limit
        self.refused = 0  # requests not tracked because `limit` were
        self.dropped = 0  # answers to untracked requests, dropped

    def push(self, item: _T, answers: int = 1, code: int = -1, open_: bool = False) -> bool:
        """Track `item` (True), or, at the bound, count it into the tail run (False). The keywords say
        what the untracked request is owed: `answers` (0 for a PostgreSQL message inside a cycle), the
        `code` byte its answer is framed by (-1: none needed), whether it leaves its run `open_`."""
        q = self._q
        runs = self._runs
        if not runs:
            if len(q) < self.limit:
                q.append(item)
                return True
            run = None
        else:
            tail = q[-1]
            run = tail if isinstance(tail, Untracked) else None
            if len(q) - runs < self.limit and (run is None or not run.open):
                q.append(item)
                return True
        self.refuse(answers, code, open_)
        return False

    def refuse(self, answers: int = 1, code: int = -1, open_: bool = False) -> None:
        """Count one request into the tail run without tracking it: what `push` does at the bound, for a
        caller whose bound is not this queue's (AMQP bounds the requests of all channels together)."""
        q = self._q
        run = self.tail_run()
        if run is None:
            run = Untracked()
            q.append(run)
            self._runs += 1
        run.requests += 1
        run.answers += answers
        run.open = open_
        if code >= 0:
            run.codes.append(code)
        self.refused += 1

    def tail_run(self) -> Untracked | None:
        """The untracked run at the end of the queue, if the last request was not tracked."""
        if not self._runs:
            return None
        tail = self._q[-1]
        return tail if isinstance(tail, Untracked) else None

    def peek(self) -> _T | None:
        """The oldest request when it is tracked; None when nothing is pending or its answer is owed to an
        untracked run (see `untracked_due`)."""
        q = self._q
        if not q:
            return None
        head = q[0]
        if self._runs and isinstance(head, Untracked):
            return None
        return head  # type: ignore[return-value]  # not an Untracked: no run, or checked

    def untracked_due(self) -> Untracked | None:
        """The untracked run whose answers come next, if any."""
        if not self._runs:
            return None
        head = self._q[0] if self._q else None
        return head if isinstance(head, Untracked) else None

    def drop_answer(self) -> None:
        """One answer owed to the untracked run at the head came: drop it (counted)."""
        run = self._q[0]
        if not isinstance(run, Untracked):
            raise ValueError("drop_answer: the oldest request is tracked")
        self.dropped += 1
        run.answers -= 1
        if run.codes:
            del run.codes[0]
        if run.answers <= 0 and not run.open:
            self._q.popleft()
            self._runs -= 1

    def take_first(self, match: Callable[[_T], bool]) -> _T | None:
        """Remove and return the oldest tracked request `match` accepts among those before the first
        untracked run (a later one is younger than an untracked request: its answer comes after that
        one's); None when there is none. For answers matched by kind, not only by order (AMQP)."""
        for i, item in enumerate(self._q):
            if isinstance(item, Untracked):
                return None
            if match(item):
                del self._q[i]
                return item
        return None

    def popleft(self) -> _T:
        """Remove the oldest request (it must be tracked: check with `peek`)."""
        item = self._q.popleft()
        if self._runs and isinstance(item, Untracked):
            self._q.appendleft(item)
            raise ValueError("popleft: the oldest request is not tracked")
        return item  # type: ignore[return-value]  # not an Untracked: no run, or checked

    def clear(self) -> None:
        self._q.clear()
        self._runs = 0

    @property
    def tracked(self) -> int:
        return len(self._q) - self._runs

    def __len__(self) -> int:
        """Tracked requests plus untracked runs: 0 when nothing more is expected."""
        return len(self._q)

    def __bool__(self) -> bool:
        return bool(self._q)

    def __iter__(self) -> Iterator[_T]:
        """The tracked requests, oldest first."""
        if not self._runs:
            return iter(self._q)  # type: ignore[arg-type]  # no run: only requests
        return (item for item in self._q if not isinstance(item, Untracked))
