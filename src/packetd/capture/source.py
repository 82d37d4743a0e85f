"""The capture seam: every source yields frames `(ts_ns, linktype, memoryview)`.

A live source also yields ticks — `(now_ns, TICK, empty)` — when no packet arrived for a while, so that
packet time (idle expiry, hole timeouts) moves on while the link is quiet. The memoryview of a frame is
only valid until the next frame is requested: whoever keeps bytes copies them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

Frame = tuple[int, int, memoryview]
TICK = -1  # linktype of a tick


class Source(Protocol):
    name: str

    def __iter__(self) -> Iterator[Frame]: ...

    def stats(self) -> dict[str, tuple[int, int]]:
        """Per interface: (packets received, packets dropped by the kernel)."""
        ...

    def close(self) -> None: ...
