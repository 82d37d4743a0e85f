"""Local socket → process, through `/proc`, once per new connection, batched and cached (I/O).

Theory of operation. The capture layer notes every new connection (`note`, called from the engine's
new-connection hook: once per flow, never per packet). Noted connections wait in a bounded pending table;
`resolve` answers all of them in one pass, and is called when a record of a pending connection is about to
be emitted (`processes`) and on the live source's idle ticks, so a batch is whatever arrived since the
last pass. One pass:

1. Network namespaces: every distinct `/proc/<pid>/ns/net` (by inode), one pid each. Sockets of
   containers live in their own namespace; `/proc/<pid>/net/tcp*` shows the namespace of `<pid>`, so
   every namespace's table is read without entering it (netlink sock_diag, what `ss` uses, answers only
   for the namespace its socket lives in: it would need a setns per namespace, and still gives no pid).
2. The socket tables (`tcp`, `tcp6`, or `udp`, `udp6`) of each namespace, looked up by the exact
   (local, remote) of each end (`sockets.scan`): the socket's inode, or 0 when no process holds it yet
   (the kernel's accept queue, SYN_RECV) or any more (TIME_WAIT).
3. inode → pid: the `socket:[inode]` links of `/proc/<pid>/fd/*`, one walk of every process (the walk of
   step 1 is the same loop), skipped when every inode wanted was seen by an earlier walk and its link still
   says so. `comm`, the `exe` link and the cgroup (→ container, `cgroup.parse_cgroup_file`) are read once
   per pid and cached.

Answers, never guesses: a socket held by two processes (after a fork), or found in two namespaces, is
`ambiguous` and reported unknown; a loopback address is looked up only in packetd's own namespace (the
only one whose loopback it can capture). A socket seen but not yet held by a process (a server end before
`accept`) stays pending for `RETRY_NS` and is asked again; every outcome is counted (`ResolverStats`):
short-lived connections that closed before their lookup are `closed`, ends that are no socket of this
host are `not_local`.

Bounds: `MAX_PENDING` connections waiting, `MAX_ENDS` answers cached (oldest evicted, counted), `MAX_PIDS`
process descriptions; answers live `ttl_ns` (a 4-tuple is reused by a later connection: a new connection
with the same 4-tuple drops the old answer at once).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from packetd.attribution import sockets
from packetd.attribution.cgroup import parse_cgroup_file
from packetd.attribution.sockets import Key
from packetd.pairing.roundtrip import Endpoint, Process, Processes, Roundtrip

MAX_PENDING = 4096  # connections noted, not yet resolved: one burst of new connections between two passes
MAX_ENDS = 65536  # cached answers (two per connection): the connections of a busy host within one TTL
MAX_PIDS = 4096  # cached process descriptions
DEFAULT_TTL_NS = 60 * 1_000_000_000  # an answer's life: bounds how stale a reused 4-tuple's answer can be
PID_TTL_NS = 10 * 1_000_000_000  # a pid's comm/exe/cgroup: exec and pid reuse are seen within this
NS_REFRESH_NS = 1_000_000_000  # an end found nowhere re-walks /proc for new namespaces at most this often
RETRY_NS = 2 * 1_000_000_000  # how long an end seen without an owner (not yet accepted) is asked again
_UDP = 17
_CLOSING = frozenset({0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0B})  # FIN_WAIT1 … CLOSING: the owner is gone
_LOOPBACK_PREFIXES = ("127.", "::1", "::ffff:127.")
_Hit = tuple[int, int, int]  # (netns inode, tcp state, socket inode) of one matching table line


@dataclass(slots=True)
class ResolverStats:
    """Counts of what the lookups found (cumulative)."""

    noted: int = 0  # connections noted
    passes: int = 0  # resolve passes that read the socket tables
    walks: int = 0  # full walks of /proc/<pid>/fd
    found: int = 0  # ends attributed to a process
    not_local: int = 0  # ends that are no socket of this host (or vanished without a trace)
    closed: int = 0  # ends found only closing / in TIME_WAIT: a short-lived connection missed
    unowned: int = 0  # a socket no process held in time (never accepted, or closed between reads)
    ambiguous: int = 0  # held by several processes, or found in several namespaces: not guessed
    hits: int = 0  # records answered from the cache
    pending_full: int = 0  # connections not noted: MAX_PENDING were waiting
    cache_full: int = 0  # answers evicted before their TTL: MAX_ENDS reached

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(slots=True)
class _Pending:
    transport: int
    noted_ns: int
    ends: list[tuple[Endpoint, Endpoint]]  # (local, remote) of the ends not answered yet


class ProcessResolver:
    """See the module docstring. `proc` is the procfs mount (a host's, when packetd runs in a container
    with the host's /proc mounted elsewhere)."""

    def __init__(
        self,
        proc: str = "/proc",
        ttl_ns: int = DEFAULT_TTL_NS,
        clock: Callable[[], int] = time.monotonic_ns,
        max_ends: int = MAX_ENDS,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.proc = proc
        self.ttl_ns = ttl_ns
        self.clock = clock
        self.max_ends = max_ends
        self.max_pending = max_pending
        self.stats = ResolverStats()
        self._pending: dict[tuple[Endpoint, Endpoint], _Pending] = {}
        self._ends: dict[tuple[Endpoint, Endpoint], tuple[int, Process | None]] = {}  # → (expiry, answer)
        self._pids: dict[int, tuple[int, Process | None]] = {}  # pid → (expiry, description)
        self._owners: dict[int, tuple[int, int]] = {}  # socket inode → (pid, fd), from the last walk
        self._shared: set[int] = set()  # inodes the last walk saw held by several processes
        self._namespaces: dict[int, int] = {}  # netns inode → one pid in it
        self._own_ns = self._netns_of("self")
        self._walked_ns = 0

    # -- the hook ------------------------------------------------------------------------------------------
    def note(self, client: Endpoint, server: Endpoint, transport: int) -> None:
        """A new connection was seen (engine hook): look its ends up in the next pass."""
        key = (client, server)
        self._ends.pop((client, server), None)  # a new connection on a reused 4-tuple: old answers go
        self._ends.pop((server, client), None)
        if key not in self._pending and len(self._pending) >= self.max_pending:
            self.stats.pending_full += 1
            return
        self.stats.noted += 1
        self._pending[key] = _Pending(transport, self.clock(), [(client, server), (server, client)])

    # -- answers ---------------------------------------------------------------------------------------------
    def processes(self, client: Endpoint, server: Endpoint) -> Processes:
        """(client's process, server's process) of a connection; a pass runs first if it is pending."""
        if (client, server) in self._pending or (server, client) in self._pending:
            self.resolve()
        else:
            self.stats.hits += 1
        now = self.clock()
        return self._cached((client, server), now), self._cached((server, client), now)

    def attach(self, rt: Roundtrip) -> Roundtrip:
        """The record with its processes (the record is a value: a copy with `processes` set)."""
        procs = self.processes(rt.client, rt.server)
        return Roundtrip(rt.protocol, rt.kind, rt.client, rt.server, rt.request, rt.response, rt.flags, procs)

    def _cached(self, end: tuple[Endpoint, Endpoint], now: int) -> Process | None:
        entry = self._ends.get(end)
        if entry is None:
            return None
        if entry[0] < now:
            del self._ends[end]
            return None
        return entry[1]

    def _answer(self, end: tuple[Endpoint, Endpoint], proc: Process | None, now: int) -> None:
        if end not in self._ends and len(self._ends) >= self.max_ends:
            del self._ends[next(iter(self._ends))]  # the oldest answer (dicts keep insertion order)
            self.stats.cache_full += 1
        self._ends[end] = (now + self.ttl_ns, proc)

    # -- one pass ----------------------------------------------------------------------------------------
    def resolve(self) -> None:
        """Answer every pending connection in one pass over the socket tables (module docstring)."""
        if not self._pending:
            return
        now = self.clock()
        self.stats.passes += 1
        if not self._namespaces:
            self._walk()
        wanted: dict[Key, tuple[Endpoint, Endpoint]] = {}
        udp_wanted: dict[Key, list[tuple[Endpoint, Endpoint]]] = {}  # one unconnected socket serves many
        for p in self._pending.values():
            for end in p.ends:
                for k in sockets.socket_keys(*end):
                    wanted[k] = end
                if p.transport == _UDP:
                    for k in sockets.udp_fallback_keys(end[0]):
                        udp_wanted.setdefault(k, []).append(end)
        tables = (("tcp", "tcp6") if any(p.transport != _UDP for p in self._pending.values()) else ()) + (
            ("udp", "udp6") if any(p.transport == _UDP for p in self._pending.values()) else ()
        )
        seen, fallback = self._scan(tables, wanted, udp_wanted)
        if self.clock() - self._walked_ns > NS_REFRESH_NS and any(
            end not in seen and end not in fallback for p in self._pending.values() for end in p.ends
        ):
            self._walk()  # a namespace (container) may have started since the last walk: look again
            seen, fallback = self._scan(tables, wanted, udp_wanted)
        inodes = {i for hits in (*seen.values(), *fallback.values()) for _, _, i in hits if i}
        if any(not self._still_owned(i) for i in inodes):
            self._walk()
        for key, p in list(self._pending.items()):
            left = []
            for end in p.ends:
                hits = seen.get(end) or fallback.get(end) or []
                outcome = self._decide(end, hits)
                if outcome == "retry" and now - p.noted_ns < RETRY_NS:
                    left.append(end)
                    continue
                proc = self._describe(outcome, now) if isinstance(outcome, int) else None
                if proc is None and isinstance(outcome, int):
                    outcome = "unowned"
                if isinstance(outcome, str):
                    self._count(outcome if outcome != "retry" else "unowned")
                else:
                    self.stats.found += 1
                self._answer(end, proc, now)
            if left:
                p.ends = left
            else:
                del self._pending[key]

    def _scan(
        self,
        tables: tuple[str, ...],
        wanted: dict[Key, tuple[Endpoint, Endpoint]],
        udp_wanted: dict[Key, list[tuple[Endpoint, Endpoint]]],
    ) -> tuple[dict[tuple[Endpoint, Endpoint], list[_Hit]], dict[tuple[Endpoint, Endpoint], list[_Hit]]]:
        """end → [(netns, state, inode)] of every table line that matched it exactly; UDP fallbacks apart."""
        seen: dict[tuple[Endpoint, Endpoint], list[_Hit]] = {}
        fallback: dict[tuple[Endpoint, Endpoint], list[_Hit]] = {}
        keys = wanted.keys() | udp_wanted.keys()
        for ns, pid in list(self._namespaces.items()):
            for table in tables:
                data = self._read(f"{self.proc}/{pid}/net/{table}")
                if data is None:
                    continue
                for key, state, inode in sockets.scan(data, keys):
                    if key in wanted:
                        seen.setdefault(wanted[key], []).append((ns, state, inode))
                    elif table.startswith("udp"):
                        for end in udp_wanted[key]:
                            fallback.setdefault(end, []).append((ns, state, inode))
        return seen, fallback

    def _decide(self, end: tuple[Endpoint, Endpoint], hits: list[_Hit]) -> int | str:
        """A pid, or why not: not_local, closed, retry (seen, no owner yet), unowned, ambiguous."""
        if end[0][0].startswith(_LOOPBACK_PREFIXES):
            hits = [h for h in hits if h[0] == self._own_ns]  # only our own loopback is captured
        if not hits:
            return "not_local"
        owned = {inode for _, _, inode in hits if inode}
        if not owned:
            if all(state in _CLOSING for _, state, _ in hits):
                return "closed"
            return "retry"
        if len(owned) > 1 or len({ns for ns, _, inode in hits if inode}) > 1:
            return "ambiguous"
        inode = owned.pop()
        if inode in self._shared:
            return "ambiguous"
        owner = self._owners.get(inode)
        return owner[0] if owner is not None else "unowned"

    def _count(self, outcome: str) -> None:
        setattr(self.stats, outcome, getattr(self.stats, outcome) + 1)

    # -- /proc ---------------------------------------------------------------------------------------------
    def _read(self, path: str) -> bytes | None:
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError:  # the process ended between the walk and this read, or no permission
            return None

    def _netns_of(self, pid: str) -> int:
        try:
            return os.stat(f"{self.proc}/{pid}/ns/net").st_ino
        except OSError:
            return 0

    def _still_owned(self, inode: int) -> bool:
        owner = self._owners.get(inode)
        if owner is None:
            return False
        try:
            return os.readlink(f"{self.proc}/{owner[0]}/fd/{owner[1]}") == f"socket:[{inode}]"
        except OSError:
            return False

    def _walk(self) -> None:
        """Every process: its network namespace and the sockets its descriptors hold."""
        self.stats.walks += 1
        self._walked_ns = self.clock()
        owners: dict[int, tuple[int, int]] = {}
        shared: set[int] = set()
        namespaces: dict[int, int] = {}
        try:
            entries = os.listdir(self.proc)
        except OSError:
            return
        for name in entries:
            if not name.isdigit():
                continue
            pid = int(name)
            fd_dir = f"{self.proc}/{name}/fd"
            try:
                fds = os.listdir(fd_dir)
                ns = os.stat(f"{self.proc}/{name}/ns/net").st_ino
            except OSError:  # gone, or a kernel thread's fds we may not read
                continue
            namespaces.setdefault(ns, pid)
            for fd in fds:
                try:
                    link = os.readlink(f"{fd_dir}/{fd}")
                except OSError:
                    continue
                if link.startswith("socket:["):
                    inode = int(link[8:-1])
                    prev = owners.get(inode)
                    if prev is not None and prev[0] != pid:
                        shared.add(inode)
                    owners[inode] = (pid, int(fd))
        self._owners, self._shared, self._namespaces = owners, shared, namespaces

    def _describe(self, pid: int, now: int) -> Process | None:
        entry = self._pids.get(pid)
        if entry is not None and entry[0] >= now:
            return entry[1]
        comm = self._read(f"{self.proc}/{pid}/comm")
        if comm is None:
            return None
        try:
            exe: str | None = os.readlink(f"{self.proc}/{pid}/exe")
        except OSError:
            exe = None
        cg = self._read(f"{self.proc}/{pid}/cgroup")
        container = parse_cgroup_file(cg.decode(errors="replace") if cg else "")
        proc = Process(
            pid=pid,
            comm=comm.rstrip(b"\n").decode(errors="replace"),
            exe=exe,
            container_id=container.id,
            container_runtime=container.runtime,
            pod_uid=container.pod_uid,
        )
        if pid not in self._pids and len(self._pids) >= MAX_PIDS:
            del self._pids[next(iter(self._pids))]
        self._pids[pid] = (now + PID_TTL_NS, proc)
        return proc
