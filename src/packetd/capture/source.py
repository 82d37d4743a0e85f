"""The capture seam: every source yields frames `(ts_ns, linktype, memoryview)`.

A live source also yields ticks — `(now_ns, TICK, empty)` — when no packet arrived for a while, so that
packet time (idle expiry, hole timeouts) moves on while the link is quiet. The memoryview of a frame is
only valid until the next frame is requested: whoever keeps bytes copies them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Protocol

Frame = tuple[int, int, memoryview]
TICK = -1  # linktype of a tick

# The live engine names `watch --engine` and the agent's `sniffer.engine` share, and what each means:
# "auto" (and "", and "pcap" — the Go implementation's name for its only, default engine) picks the AF_PACKET
# ring on Linux and libpcap elsewhere; "afpacket" and "libpcap" name one engine.
ENGINES = ("auto", "afpacket", "libpcap", "pcap", "")


def resolve_engine(name: str, platform: str = sys.platform) -> str:
    """`afpacket` or `libpcap` for an engine name of ENGINES (an unknown name raises ValueError)."""
    if name not in ENGINES:
        raise ValueError(f"engine '{name}' is not allowed; allowed: auto, afpacket, libpcap, pcap")
    if name in ("afpacket", "libpcap"):
        return name
    return "afpacket" if platform.startswith("linux") else "libpcap"


class Source(Protocol):
    name: str

    def __iter__(self) -> Iterator[Frame]: ...

    def stats(self) -> dict[str, tuple[int, int]]:
        """Per interface: (packets received, packets dropped by the kernel)."""
        ...

    def close(self) -> None: ...
