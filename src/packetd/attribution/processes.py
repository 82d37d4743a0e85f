"""Local socket → process, through `/proc`, once per new connection, batched and cached (I/O).

Theory of operation. The capture layer notes every new connection (`note`, called from the engine's
new-connection hook: once per flow, never per packet). Noted connections wait in a bounded pending table;
`resolve` answers all of them in one pass. `HeldRecords`, the sink in front of the output, holds the
records of pending connections (bounded, up to `HOLD_NS` of packet time) and runs one pass for all of
them, and the live source's idle ticks run one too, so a batch is whatever arrived since the last pass.
One pass:

1. Network namespaces: every distinct `/proc/<pid>/ns/net` (by inode), one pid each (sockets of
   containers live in their own namespace).
2. Each end's socket by its exact (local, remote), in each namespace: a netlink sock_diag request
   (`diag`: a hash lookup in the kernel, ~20 µs) on a socket made once per namespace (entering it needs
   CAP_SYS_ADMIN); without one, that namespace's text tables `/proc/<pid>/net/{tcp,tcp6,udp,udp6}`
   (`sockets.scan`; the kernel walks every hash bucket to print them, milliseconds). The answer is the
   socket's inode, or 0 when no process holds it yet (the accept queue, SYN_RECV) or any more (TIME_WAIT).
3. inode → pid: the `socket:[inode]` links of `/proc/<pid>/fd/*`. An inode an earlier walk saw, whose
   link still says so, is taken as it is; the others are first looked for among the last few owners
   found (`MAX_RECENT_PIDS`: the same servers and clients make most new connections), and only then by
   a walk of every process (the walk of step 1 is the same loop). `comm`, the `exe` link and the cgroup
   (→ container, `cgroup.parse_cgroup_file`) are read once per pid and cached.

Answers, never guesses: a socket held by two processes (after a fork; seen by a walk), or found in two
namespaces, is `ambiguous` and reported unknown; a loopback address is looked up only in packetd's own
namespace (the only one whose loopback it can capture). A socket seen but not yet held by a process (a
server end before `accept`) stays pending for `RETRY_NS` and is asked again; every outcome is counted
(`ResolverStats`): short-lived connections that closed before their lookup are `closed`, ends that are
no socket of this host are `not_local`.

Bounds: `MAX_PENDING` connections waiting, `MAX_ENDS` answers cached (oldest evicted, counted), `MAX_PIDS`
process descriptions. An answer lives `ttl_ns`; the next record of its connection after that asks again
(a long-lived connection keeps its names, a socket handed to another process is seen). A new connection
on a reused 4-tuple drops the old answer at once. An answer evicted by the bound is not asked again: its
connection's later records say null (counted as `cache_full`).
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from packetd.attribution import sockets
from packetd.attribution.cgroup import parse_cgroup_file
from packetd.attribution.diag import DiagSocket
from packetd.attribution.sockets import Key
from packetd.pairing.roundtrip import Endpoint, Process, Processes, Roundtrip

MAX_PENDING = 4096  # connections noted, not yet resolved: one burst of new connections between two passes
MAX_ENDS = 65536  # cached answers (two per connection): the connections of a busy host within one TTL
MAX_PIDS = 4096  # cached process descriptions
MAX_NAMESPACES = 1024  # sock_diag sockets kept, one per network namespace (a file descriptor each)
MAX_RECENT_PIDS = 16  # owners of the last sockets found, searched before a walk of every process
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
        use_netlink: bool = True,
    ) -> None:
        self.proc = proc
        self.ttl_ns = ttl_ns
        self.clock = clock
        self.max_ends = max_ends
        self.max_pending = max_pending
        self.stats = ResolverStats()
        self._pending: dict[tuple[Endpoint, Endpoint], _Pending] = {}
        # end → (expiry, answer, transport); an expired entry stays until its connection is asked again
        self._ends: dict[tuple[Endpoint, Endpoint], tuple[int, Process | None, int]] = {}
        self._pids: dict[int, tuple[int, Process | None]] = {}  # pid → (expiry, description)
        self._owners: dict[int, tuple[int, int]] = {}  # socket inode → (pid, fd), from the last walk
        self._shared: set[int] = set()  # inodes the last walk saw held by several processes
        self._namespaces: dict[int, int] = {}  # netns inode → one pid in it
        self._own_ns = self._netns_of("self")
        self.use_netlink = use_netlink
        self._diags: dict[int, DiagSocket | None] = {}  # netns inode → its sock_diag socket
        self._recent: OrderedDict[int, None] = OrderedDict()  # pids that owned the last sockets found
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
        """(client's process, server's process) of a connection; a pass runs first if it is pending, or
        if an answer outlived the TTL (the connection is asked again: a long-lived one keeps its names)."""
        if self.pending(client, server):
            self.resolve()
        else:
            self.stats.hits += 1
        now = self.clock()
        return self._cached((client, server), now), self._cached((server, client), now)

    def pending(self, client: Endpoint, server: Endpoint) -> bool:
        """The connection waits for a pass (noted, or noted again because an answer expired)."""
        if (client, server) in self._pending or (server, client) in self._pending:
            return True
        now = self.clock()
        for end in ((client, server), (server, client)):
            entry = self._ends.get(end)
            if entry is not None and entry[0] < now:
                self.note(client, server, entry[2])
                return (client, server) in self._pending
        return False

    def attach(self, rt: Roundtrip) -> Roundtrip:
        """The record with its processes (the record is a value: a copy with `processes` set)."""
        procs = self.processes(rt.client, rt.server)
        return rt.attributed(procs, rt.k8s)

    def _cached(self, end: tuple[Endpoint, Endpoint], now: int) -> Process | None:
        entry = self._ends.get(end)
        if entry is None or entry[0] < now:
            return None
        return entry[1]

    def _answer(self, end: tuple[Endpoint, Endpoint], proc: Process | None, now: int, transport: int) -> None:
        if end not in self._ends and len(self._ends) >= self.max_ends:
            del self._ends[next(iter(self._ends))]  # the oldest answer (dicts keep insertion order)
            self.stats.cache_full += 1
        self._ends.pop(end, None)  # re-inserted: the order stays oldest-first
        self._ends[end] = (now + self.ttl_ns, proc, transport)

    # -- one pass ----------------------------------------------------------------------------------------
    def resolve(self) -> None:
        """Answer every pending connection in one pass (module docstring)."""
        if not self._pending:
            return
        now = self.clock()
        self.stats.passes += 1
        if not self._namespaces:
            self._walk()
        found = self._lookup_all()
        if self.clock() - self._walked_ns > NS_REFRESH_NS and any(
            end not in found for p in self._pending.values() for end in p.ends
        ):
            self._walk()  # a namespace (container) may have started since the last walk: look again
            found = self._lookup_all()
        missing = {i for hits in found.values() for _, _, i in hits if i and not self._still_owned(i)}
        if missing and not self._in_recent_pids(missing):
            self._walk()
        for key, p in list(self._pending.items()):
            left = []
            for end in p.ends:
                outcome = self._decide(end, found.get(end, []))
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
                    self._recent[outcome] = None
                    self._recent.move_to_end(outcome)
                    if len(self._recent) > MAX_RECENT_PIDS:
                        self._recent.popitem(last=False)
                self._answer(end, proc, now, p.transport)
            if left:
                p.ends = left
            else:
                del self._pending[key]

    def _lookup_all(self) -> dict[tuple[Endpoint, Endpoint], list[_Hit]]:
        """end → [(netns, state, inode)] of every socket found with that (local, remote): netlink
        sock_diag where a socket could be made in the namespace, its /proc tables otherwise."""
        found: dict[tuple[Endpoint, Endpoint], list[_Hit]] = {}
        by_tables: list[tuple[int, int]] = []
        ends = [(end, p.transport) for p in self._pending.values() for end in p.ends]
        for ns, pid in list(self._namespaces.items()):
            diag = self._diag(ns, pid)
            if diag is None:
                by_tables.append((ns, pid))
                continue
            try:
                for end, transport in ends:
                    if ns != self._own_ns and end[0][0].startswith(_LOOPBACK_PREFIXES):
                        continue  # only our own loopback is captured
                    hit = diag.lookup(transport, *end)
                    if hit is not None:
                        found.setdefault(end, []).append((ns, *hit))
            except OSError:  # the namespace went away, or netlink refused: its tables, this time
                by_tables.append((ns, pid))
        if by_tables:
            wanted: dict[Key, tuple[Endpoint, Endpoint]] = {}
            udp_wanted: dict[Key, list[tuple[Endpoint, Endpoint]]] = {}  # one unconnected socket serves many
            for end, transport in ends:
                for k in sockets.socket_keys(*end):
                    wanted[k] = end
                if transport == _UDP:
                    for k in sockets.udp_fallback_keys(end[0]):
                        udp_wanted.setdefault(k, []).append(end)
            transports = {t for _, t in ends}
            tables = (("tcp", "tcp6") if transports - {_UDP} else ()) + (
                ("udp", "udp6") if _UDP in transports else ()
            )
            seen, fallback = self._scan(by_tables, tables, wanted, udp_wanted)
            for end, hits in seen.items():
                found.setdefault(end, []).extend(hits)
            for end, hits in fallback.items():
                if end not in seen:
                    found.setdefault(end, []).extend(hits)
        return found

    def _diag(self, ns: int, pid: int) -> DiagSocket | None:
        """The sock_diag socket of a namespace (made once; None: not possible, use its tables)."""
        if ns in self._diags:
            return self._diags[ns]
        diag: DiagSocket | None = None
        if self.use_netlink and len(self._diags) < MAX_NAMESPACES:
            try:
                if ns == self._own_ns:
                    diag = DiagSocket.here()
                else:
                    diag = DiagSocket.in_namespace(f"{self.proc}/{pid}/ns/net")
            except OSError:  # no CAP_SYS_ADMIN, or the process (and its namespace) is gone
                diag = None
        self._diags[ns] = diag
        return diag

    def _in_recent_pids(self, inodes: set[int]) -> bool:
        """Look for the owners of `inodes` among the processes that owned the last sockets found (the
        same servers and clients make most new connections): True when all were found, saving a walk."""
        left = set(inodes)
        for pid in reversed(self._recent):
            try:
                fds = os.listdir(f"{self.proc}/{pid}/fd")
            except OSError:
                continue
            for fd, inode in self._sockets_of(pid, fds):
                if inode in left:
                    # this process does hold the socket; a second holder outside the recent set (a fork
                    # that inherited it) is only seen by a walk, as `ambiguous`
                    self._owners[inode] = (pid, fd)
                    left.discard(inode)
            if not left:
                return True
        return False

    def _scan(
        self,
        namespaces: list[tuple[int, int]],
        tables: tuple[str, ...],
        wanted: dict[Key, tuple[Endpoint, Endpoint]],
        udp_wanted: dict[Key, list[tuple[Endpoint, Endpoint]]],
    ) -> tuple[dict[tuple[Endpoint, Endpoint], list[_Hit]], dict[tuple[Endpoint, Endpoint], list[_Hit]]]:
        """end → [(netns, state, inode)] of every table line that matched it exactly; UDP fallbacks apart."""
        seen: dict[tuple[Endpoint, Endpoint], list[_Hit]] = {}
        fallback: dict[tuple[Endpoint, Endpoint], list[_Hit]] = {}
        keys = wanted.keys() | udp_wanted.keys()
        for ns, pid in namespaces:
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

    def _sockets_of(self, pid: int, fds: list[str]) -> Iterator[tuple[int, int]]:
        """(fd, socket inode) of each of `fds` of `pid` that is a socket."""
        fd_dir = f"{self.proc}/{pid}/fd"
        for fd in fds:
            try:
                link = os.readlink(f"{fd_dir}/{fd}")
            except OSError:  # closed since the listing
                continue
            if link.startswith("socket:["):
                yield int(fd), int(link[8:-1])

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
            for fd, inode in self._sockets_of(pid, fds):
                prev = owners.get(inode)
                if prev is not None and prev[0] != pid:
                    shared.add(inode)
                owners[inode] = (pid, fd)
        self._owners, self._shared, self._namespaces = owners, shared, namespaces
        for gone in [ns for ns in self._diags if ns not in namespaces]:
            diag = self._diags.pop(gone)
            if diag is not None:
                diag.close()

    def close(self) -> None:
        """Close the sock_diag sockets."""
        for diag in self._diags.values():
            if diag is not None:
                diag.close()
        self._diags.clear()

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


MAX_HELD = 1024  # records held for one pass: a burst of new connections' first records
HOLD_NS = 20_000_000  # of packet time: how much later than it would have been a held record is shown
_NEVER = 1 << 63


class HeldRecords:
    """The sink in front of the output: records of connections not looked up yet wait (in order, with
    every record behind them) until one pass answers them all — a burst of new connections costs one pass
    instead of one each (the owner search reads every descriptor of the owning processes, per pass).

    Released when `MAX_HELD` wait, when packet time passes `due` (the watch loop compares each frame's
    time: `HOLD_NS` after the first held record), on a tick, and at the end (`flush`).
    """

    __slots__ = ("_emit", "_held", "_resolver", "due")

    def __init__(self, resolver: ProcessResolver, emit: Callable[[Roundtrip], None]) -> None:
        self._resolver = resolver
        self._emit = emit
        self._held: list[Roundtrip] = []
        self.due = _NEVER

    def __call__(self, rt: Roundtrip) -> None:
        if self._held or self._resolver.pending(rt.client, rt.server):
            if not self._held:
                self.due = rt.end_ns + HOLD_NS
            self._held.append(rt)
            if len(self._held) >= MAX_HELD:
                self.flush()
            return
        self._emit(self._resolver.attach(rt))

    def flush(self) -> None:
        """One pass, then every held record, in order."""
        held, self._held = self._held, []
        self.due = _NEVER
        self._resolver.resolve()
        attach, emit = self._resolver.attach, self._emit
        for rt in held:
            emit(attach(rt))
