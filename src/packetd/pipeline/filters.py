"""Display filters of `watch`: `--errors`, `--slower-than`, `--kind`, and by process: `--pid`, `--comm`,
`--container` (an id prefix). A process filter passes a record when either end's process matches; a record
without processes (attribution off, or neither end found) never passes one."""

from __future__ import annotations

from packetd._values import value
from packetd.pairing.roundtrip import Process, Roundtrip
from packetd.protocols.base import Kind


@value
class DisplayFilter:
    errors_only: bool = False
    slower_than_ns: int = 0
    kinds: frozenset[str] = frozenset(Kind.ALL)
    pids: frozenset[int] = frozenset()
    comms: frozenset[str] = frozenset()
    containers: tuple[str, ...] = ()  # container id prefixes

    @property
    def by_process(self) -> bool:
        return bool(self.pids or self.comms or self.containers)

    def _process_matches(self, proc: Process | None) -> bool:
        if proc is None:
            return False
        if self.pids and proc.pid not in self.pids:
            return False
        if self.comms and proc.comm not in self.comms:
            return False
        if self.containers:
            cid = proc.container_id
            if cid is None or not cid.startswith(self.containers):
                return False
        return True

    def accept(self, rt: Roundtrip) -> bool:
        if rt.kind not in self.kinds:
            return False
        if self.errors_only and not rt.error:
            return False
        if self.slower_than_ns:
            d = rt.duration_ns
            if d is None or d < self.slower_than_ns:
                return False
        if self.by_process:
            procs = rt.processes
            if procs is None or not (self._process_matches(procs[0]) or self._process_matches(procs[1])):
                return False
        return True
