"""Display filters of `watch`: `--errors`, `--slower-than`, `--kind`."""

from __future__ import annotations

from packetd._values import value
from packetd.pairing.roundtrip import Roundtrip
from packetd.protocols.base import Kind


@value
class DisplayFilter:
    errors_only: bool = False
    slower_than_ns: int = 0
    kinds: frozenset[str] = frozenset(Kind.ALL)

    def accept(self, rt: Roundtrip) -> bool:
        if rt.kind not in self.kinds:
            return False
        if self.errors_only and not rt.error:
            return False
        if self.slower_than_ns:
            d = rt.duration_ns
            if d is None or d < self.slower_than_ns:
                return False
        return True
