"""A bounded shared-memory ring that carries batches of frames from the reader to one worker process.

One producer (the reader, which also owns the bookkeeping) and one consumer. The ring is plain shared
memory (`multiprocessing.shared_memory`); which regions are in use lives only on the reader's side: it
writes a batch at `put`, tells the worker (offset, length) over the worker's pipe, and frees the region
when the worker answers for that batch (`release`, oldest first: batches are answered in order). So the
shared memory itself needs no locks or atomics, and a worker that dies leaves nothing half-locked.

A batch is a run of items, each `seq(8) ts_ns(8) length(4) linktype(4)` then `length` frame bytes, little
endian; linktype `TICK_LINKTYPE` is a tick (packet time moves on), with no bytes.

When the ring is full `put` returns None (the reader counts it, `full`, and waits for the worker).
"""

from __future__ import annotations

import struct
from collections import deque
from multiprocessing import shared_memory

ITEM = struct.Struct("<qqIi")  # seq, ts_ns, length, linktype
TICK_LINKTYPE = -1
# 8 MiB a worker: with batches cut at BATCH_BYTES this is 8 batches in flight, enough that a worker which
# keeps up never waits for the reader and the reader seldom for a worker (measured: no `full` waits on the
# bench replicas at 2 workers), while it bounds how far one worker can run ahead of another, and so how
# many records the merge must hold back (merge window), to a few MiB of frames
RING_BYTES = 8 << 20
BATCH_BYTES = 1 << 20  # a batch is sent once it holds this much (or BATCH_FRAMES frames; see parallel.py)


class Ring:
    """The reader's end: a shared-memory region and the batches in flight in it."""

    def __init__(self, size: int = RING_BYTES) -> None:
        self.shm = shared_memory.SharedMemory(create=True, size=size)
        self.size = size
        self._inflight: deque[tuple[int, int]] = deque()  # (offset, length), oldest first
        self._head = 0
        self.full = 0  # puts refused for lack of room (the reader then waits on the worker)

    @property
    def name(self) -> str:
        return self.shm.name

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def _offset(self, n: int) -> int | None:
        if not self._inflight:
            self._head = 0
            return 0 if n <= self.size else None
        tail = self._inflight[0][0]
        head = self._head
        if head >= tail:  # free: [head, size) and [0, tail)
            if head + n <= self.size:
                return head
            return 0 if n < tail else None
        return head if head + n < tail else None

    def put(self, data: bytes | bytearray) -> int | None:
        """Write one batch; its offset, or None when there is no room now."""
        n = len(data)
        off = self._offset(n)
        if off is None:
            self.full += 1
            return None
        buf = self.shm.buf
        assert buf is not None
        buf[off : off + n] = data
        self._inflight.append((off, n))
        self._head = off + n
        return off

    def release(self) -> None:
        """The oldest batch was answered: its room is free again."""
        self._inflight.popleft()

    def close(self) -> None:
        self.shm.close()
        try:
            self.shm.unlink()
        except FileNotFoundError:
            pass


def read_batch(shm: shared_memory.SharedMemory, off: int, n: int) -> bytes:
    """The worker's end: a copy of one batch (so the ring's room can be reused while it is decoded, and no
    decoder ever holds a view into memory that changes under it)."""
    buf = shm.buf
    assert buf is not None
    return bytes(buf[off : off + n])
