"""`watch --workers N`: one capture on N processes, the same records and summary as one.

Python threads do not add CPU; processes do (ARCHITECTURE.md, process model). Connections are split
across worker processes by a symmetric hash of the connection, so each connection (both directions) is
decoded by exactly one worker with exactly the flow-table semantics of one engine:

    capture file / stdin              live (Linux AF_PACKET)
    ---------------------------       -------------------------------------------
    reader (this process)             the kernel: PACKET_FANOUT_HASH (+DEFRAG),
      pipeline/fanout.py Steer          one group, as `packetd agent` joins
      frames → per-worker batches     worker i: its own ring in the group,
      in shared memory (shmring.py)     its own engine, records + counters
    worker i: engine, records           back over its pipe
      back over its pipe
    this process: merge records in order (fanout.Merger), write them; merge counters and summary exactly

Records come out in the order one engine emits them (file: the frame that made an engine emit a record
orders it; records emitted at one idle sweep or at the end by several workers come grouped by worker);
live, in end-time order within a window of one tick (200 ms) per worker. The summary is merged exactly
(fanout.merge_summaries): its text is one worker's.

What needs one process is run on one (`workers_for` says which and why): `-w` (the pcap writer follows
the connection table as records are made), `-c` (stop after N records, at once), process attribution
(`--processes` on a file; `--pid/--comm/--container`), and live capture with the libpcap engine (no
fanout). Files smaller than SMALL_FILE_BYTES and pipes run on one by default (start-up costs more than
it saves); `--workers N` asks for N whatever the size.

A worker that dies (killed, or an exception) is named on stderr in one line and watch exits with status 1
(its connections' records are lost); the others are stopped by their PID.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from multiprocessing.shared_memory import SharedMemory
from typing import TYPE_CHECKING, Any

import click

from packetd.capture.pcapfile import CaptureFile
from packetd.capture.shmring import BATCH_BYTES, ITEM, TICK_LINKTYPE, Ring, read_batch
from packetd.engine import Engine, EngineConfig, import_decoders
from packetd.export.progress import for_file
from packetd.flow.ports import PortTally
from packetd.pairing.roundtrip import Roundtrip, dumps
from packetd.pipeline.fanout import Steer, WorkerSummary, merge_counters, merge_ports, merge_summaries
from packetd.pipeline.hint import QuietHint

if TYPE_CHECKING:
    from packetd.cli import WatchOptions
    from packetd.export.text import TextFormatter

# the default: every core, up to 8. Beyond 8 the reader (one process decoding L2-L4 of every frame to
# steer it, ~3 µs a frame) and the merge become the limit (BENCHMARKS.md, "watch --workers"), and each
# worker costs a connection table and a Python interpreter of memory
MAX_DEFAULT_WORKERS = 8
MAX_WORKERS = 64  # --workers' upper bound: more processes than this only add memory
# a file smaller than this is read by one process by default: forking and merging cost ~50 ms, which a
# 64 MiB capture (~1 s of CPU) repays; `--workers N` overrides it
SMALL_FILE_BYTES = 64 << 20
# frames read between two sends of every worker's batch: a batch per worker per this many frames keeps
# messages few (~40 µs each) while bounding the merge window (records held for a slower worker)
BATCH_FRAMES = 2048
EXIT_RUNTIME = 1


# loaded here, before any fork: a worker must not pay for an import (packetd.agent.worker's
# _die_with_parent does the same, but importing the agent costs a worker ~1 s)
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def workers_for(opts: WatchOptions) -> tuple[int, str]:
    """How many workers run this watch, and why not as many as asked ("" when no note is due)."""
    asked = opts.workers
    one = _needs_one(opts)
    if one:
        return 1, (f"--workers {asked} ignored: {one} (one worker)" if asked and asked > 1 else "")
    if asked is not None:
        return asked, ""
    path = opts.pcap_file
    if path is None or path == "-" or not os.path.isfile(path):
        return 1, ""  # live and pipes: one unless asked (see the module docstring)
    if os.path.getsize(path) < SMALL_FILE_BYTES:
        return 1, ""
    return min(_cores(), MAX_DEFAULT_WORKERS), ""


def _needs_one(opts: WatchOptions) -> str:
    if opts.write_file:
        return "-w follows the connection table as records are made"
    if opts.count:
        return "-c stops at the Nth record"
    if opts.pids or opts.comms or opts.containers or (opts.processes and opts.pcap_file is not None):
        return "process attribution looks sockets up in one process"
    if opts.pcap_file is None:
        from packetd.capture.source import resolve_engine

        if resolve_engine(opts.engine) != "afpacket":
            return "live capture with libpcap has no fanout (use --engine afpacket on Linux)"
    return ""


def run(opts: WatchOptions, workers: int) -> int:
    """watch on `workers` processes (workers > 1)."""
    if opts.pcap_file is None:
        return _run_live(opts, workers)
    return _FileRun(opts, workers).run()


# -- formatting (in the workers) --------------------------------------------------------------------------
def _line_maker(fmt: str, text: TextFormatter) -> Callable[[Roundtrip], bytes]:
    if fmt == "json":
        return dumps
    fmt_text = text.format
    return lambda rt: (fmt_text(rt) + "\n").encode()


def _child_setup() -> None:
    """A worker: Ctrl-C (sent to the whole process group) and SIGTERM are the reader's to handle; the
    worker dies with it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if _LIBC is not None:  # PR_SET_PDEATHSIG (<linux/prctl.h> 1): the kernel kills it when the reader goes
        _LIBC.prctl(1, int(signal.SIGKILL), 0, 0, 0)


@dataclass
class _Final:
    """What a worker hands back at the end: its counters and summary."""

    net: Any
    reassembly: Any
    flows: Any
    protocols: dict[str, Any]
    detection: Any
    ports: PortTally
    summary: WorkerSummary
    now_ns: int
    kernel: dict[str, tuple[int, int]]
    resolver: Any = None


def _final(engine: Engine, summary: WorkerSummary, kernel: dict[str, tuple[int, int]]) -> _Final:
    assert engine.ports is not None
    summary._template = None  # type: ignore[assignment]  # compiled patterns: not needed to merge
    return _Final(
        engine.net.stats,
        engine.net.reassembler.stats,
        engine.flows.stats,
        engine.protocol_stats,
        engine.detection_stats,
        engine.ports,
        summary,
        engine.flows.now_ns,
        kernel,
    )


def _file_worker(index: int, conn: Connection, *args: Any) -> None:
    """A file worker process: `_file_worker_loop(conn, shm, config, make_line, accept)`."""
    _child_setup()
    _guarded(conn, lambda: _file_worker_loop(conn, *args))


def _guarded(conn: Connection, body: Callable[[], None]) -> None:
    """Run a worker's body; an exception is reported to the reader in one line (and its traceback, a bug's
    evidence), and the worker exits with status 1."""
    try:
        body()
    except Exception as exc:
        import traceback

        conn.send(("e", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
        sys.exit(EXIT_RUNTIME)


def _file_worker_loop(
    conn: Connection,
    shm: SharedMemory,
    config: EngineConfig,
    make_line: Callable[[Roundtrip], bytes],
    accept: Callable[[Roundtrip], bool],
) -> None:
    records: list[tuple[int, bytes]] = []
    summary = WorkerSummary()
    cur = [0]

    def sink(rt: Roundtrip) -> None:
        seq = cur[0]
        summary.add_record(seq, rt)
        if accept(rt):
            records.append((seq, make_line(rt)))

    engine = Engine(config, sink, ports=PortTally())
    frame, tick = engine.frame, engine.tick
    unpack, head = ITEM.unpack_from, ITEM.size
    while True:
        msg = conn.recv()
        if msg[0] == "b":
            _, off, n = msg
            chunk = memoryview(read_batch(shm, off, n) if off >= 0 else msg[3])
            p = 0
            while p < n:
                seq, ts, ln, lt = unpack(chunk, p)
                p += head
                cur[0] = seq
                if lt == TICK_LINKTYPE:
                    tick(ts)
                else:
                    frame(ts, lt, chunk[p : p + ln])
                    p += ln
            conn.send(("r", records))
            records = []
        else:  # ("f", now_ns, last_seq): the end of the capture
            _, now_ns, last = msg
            cur[0] = last
            engine.finish(now_ns)
            conn.send(("d", records, _final(engine, summary, {})))
            return


class WorkerDied(Exception):
    """A worker ended without its final answer; the message names it."""


class _Pool:
    """The reader's view of its worker processes: their pipes, rings and batches in flight."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.procs: list[Any] = []
        self.conns: list[Connection] = []
        self.rings: list[Ring] = []
        self.inflight: list[deque[int]] = [deque() for _ in range(n)]  # first seq of each batch sent
        self.finals: list[_Final | None] = [None] * n
        self.on_records: Callable[[int, list[tuple[int, bytes]]], None] = lambda w, r: None
        self.on_live: Callable[[int, list[tuple[int, bytes]], int], None] = lambda w, r, m: None
        self.exit_code: int | None = None  # a worker ended on a usage or capture error it already said
        self._exited: set[int] = set()

    def start(self, target: Callable[..., None], args: Callable[[int], tuple[Any, ...]]) -> None:
        # fork: a worker inherits the engine configuration, formatter and display filter as objects (no
        # pickling, no re-import: ~5 ms a worker instead of ~400 ms spawned)
        ctx = mp.get_context("fork")
        for i in range(self.n):
            parent, child = ctx.Pipe(duplex=True)
            proc = ctx.Process(target=target, args=(i, child, *args(i)), name=f"packetd-worker-{i}")
            proc.daemon = True
            proc.start()
            child.close()
            self.procs.append(proc)
            self.conns.append(parent)

    def poll(self, block: bool, timeout: float | None = None) -> None:
        """Read what the workers said (waiting for something, up to `timeout`, when `block`)."""
        waiting = [i for i in range(self.n) if self.finals[i] is None and i not in self._exited]
        sentinels = {self.procs[i].sentinel: i for i in waiting}
        conns = {id(self.conns[i]): i for i in waiting}
        if not sentinels:
            return
        ready = wait([*(self.conns[i] for i in sentinels.values()), *sentinels], timeout if block else 0)
        for r in ready:
            if isinstance(r, Connection):
                self._answer(conns[id(r)])
        for r in ready:
            if not isinstance(r, Connection) and self.finals[sentinels[r]] is None:
                w = sentinels[r]
                while self.finals[w] is None and w not in self._exited and self.conns[w].poll():
                    self._answer(w)  # what it said before it ended
                if self.finals[w] is None and w not in self._exited:
                    self._died(w)

    def _answer(self, w: int) -> None:
        try:
            msg = self.conns[w].recv()
        except (EOFError, OSError):
            self._died(w)
        if msg[0] == "r":
            self.done_batch(w)
            self.on_records(w, msg[1])
        elif msg[0] == "d":
            self.on_records(w, msg[1])
            self.finals[w] = msg[2]
        elif msg[0] == "l":
            self.on_live(w, msg[1], msg[2])
        elif msg[0] == "x":
            self.exit_code = msg[1]
            self._exited.add(w)
        elif msg[0] == "e":
            self._died(w, msg[1])

    def done_batch(self, w: int) -> None:
        self.inflight[w].popleft()
        if self.rings:
            self.rings[w].release()

    def _died(self, w: int, why: str = "") -> None:
        proc = self.procs[w]
        proc.join(1)
        code = proc.exitcode
        if not why:
            why = f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        raise WorkerDied(f"worker {w} (pid {proc.pid}) died: {why}; its connections' records are lost")

    def send(self, w: int, msg: tuple[Any, ...]) -> None:
        try:
            self.conns[w].send(msg)
        except (BrokenPipeError, ConnectionResetError):
            self.poll(True)  # its sentinel says why
            self._died(w)

    def stop(self) -> None:
        """End every worker still running (ours, by their Process objects), free the rings."""
        for p in self.procs:
            if p.is_alive():
                p.kill()
        for p in self.procs:
            p.join(2)
        for r in self.rings:
            r.close()


def _abort(pool: _Pool, exc: Exception) -> int:
    """A worker died (named, status 1) or stdout's reader went away (`| head`: quietly, status 0)."""
    pool.stop()
    from packetd import cli

    if isinstance(exc, BrokenPipeError):
        cli._quiet_stdout()
        return 0
    click.echo(f"packetd: {exc}", err=True)
    return EXIT_RUNTIME


class _FileRun:
    """Reading a capture file (or stdin) on N workers (see the module docstring)."""

    def __init__(self, opts: WatchOptions, n: int) -> None:
        self.opts, self.n = opts, n

    def run(self) -> int:
        from packetd import cli

        opts, n = self.opts, self.n
        display = cli.display_filter(opts)
        rules = cli.build_rules(opts.protos)
        config = cli.engine_config(opts, rules)
        user_filter = cli._offline_filter(opts)
        source = cli.open_source(opts, rules)
        output = cli.Output(opts, False)
        emit = output.emit_line  # batched; flushed before a read from a pipe may wait, and at the end
        if isinstance(source, CaptureFile):
            source.before_read = output.flush
        make_line = _line_maker(output.fmt, output._text)
        frames: Iterable[tuple[int, int, memoryview]] = source
        if user_filter is not None:
            frames = (f for f in source if user_filter(f[1], f[2]))
        progress = None
        if opts.pcap_file != "-" and sys.stderr.isatty() and os.path.isfile(str(opts.pcap_file)):
            progress = for_file(str(opts.pcap_file), sys.stderr, before_draw=output.flush)
            frames = progress.wrap(frames)
        pool = _Pool(n)
        pool.rings = [Ring() for _ in range(n)]
        from packetd.pipeline.fanout import Merger

        merger = Merger(n)
        pool.on_records = merger.add
        import_decoders(config.rules)  # the workers fork with them imported
        pool.start(_file_worker, lambda i: (pool.rings[i].shm, config, make_line, display.accept))
        halt = cli.Halt(at_once=False)  # a flag: the reader stops between frames, the workers finish
        signal.signal(signal.SIGINT, halt.signalled)
        signal.signal(signal.SIGTERM, halt.signalled)
        steer = Steer(n, config.ip_versions, _pinned_ports(config))
        reader = _Reader(pool, merger, emit, progress)
        try:
            try:
                reader.read(_limited(frames, opts.duration_ns), steer, halt)
            except KeyboardInterrupt:
                pass  # a second signal
            reader.finish(steer)
        except (WorkerDied, BrokenPipeError) as exc:
            return _abort(pool, exc)
        pool.stop()
        try:
            output.close()
        except BrokenPipeError:
            cli._quiet_stdout()
        finals = [f for f in pool.finals if f is not None]
        engine, ports = _merged_engine(config, finals, steer.now_ns)
        engine.net.stats.frames += steer.lost_fragments
        engine.net.stats.fragments += steer.lost_fragments
        summary = merge_summaries([f.summary for f in finals])
        cap = cli.Capture(
            opts, rules, source, engine, None, None, ports, QuietHint(time.monotonic()), frames=()
        )
        cap.user_filter = user_filter
        kernel = cap.close()
        elapsed = cap.elapsed(0.0)
        cli._print_summary(engine, summary, kernel, elapsed, halt.signals > 0)
        cli.end_hint(cap, elapsed)
        return 0


# protocols whose decoders share state across the connections of one engine (DecoderContext.shared: Kafka's
# topic id → name from Metadata): their rules' connections all go to one worker (fanout.Steer)
SHARED_STATE_PROTOCOLS = frozenset({"kafka"})


def _pinned_ports(config: EngineConfig) -> frozenset[int]:
    return frozenset(p for r in config.rules if r.protocol in SHARED_STATE_PROTOCOLS for p in r.ports)


def _limited(
    frames: Iterable[tuple[int, int, memoryview]], duration_ns: int
) -> Iterable[tuple[int, int, memoryview]]:
    """--duration on a file: its first D of packet time (as one worker's pump reads it)."""
    return _first(frames, duration_ns) if duration_ns else frames  # no generator a frame without it


def _first(
    frames: Iterable[tuple[int, int, memoryview]], duration_ns: int
) -> Iterator[tuple[int, int, memoryview]]:
    first = -1
    for f in frames:
        if first < 0:
            first = f[0]
        elif f[0] - first > duration_ns:
            return
        yield f


class _Reader:
    """Frames to per-worker batches, the workers' records to the output."""

    def __init__(self, pool: _Pool, merger: Any, emit: Callable[[bytes], Any], progress: Any) -> None:
        self.pool, self.merger, self.emit, self.progress = pool, merger, emit, progress
        n = pool.n
        self.bufs = [bytearray() for _ in range(n)]
        self.first = [-1] * n  # first seq in each unsent batch
        self.seq = 0
        self.full_waits = 0

    def read(self, frames: Iterable[tuple[int, int, memoryview]], steer: Steer, halt: Any) -> None:
        bufs, first, pack, route = self.bufs, self.first, ITEM.pack, steer.route
        n = self.pool.n
        seq = 0
        for ts, lt, data in frames:
            seq += 1
            w = route(ts, lt, data)
            tick = steer.tick
            if tick >= 0:
                item = pack(seq, tick, 0, TICK_LINKTYPE)
                for i in range(n):
                    if first[i] < 0:
                        first[i] = seq
                    bufs[i] += item
            if w >= 0:
                b = bufs[w]
                if first[w] < 0:
                    first[w] = seq
                for fts, flt, fdata in steer.released:  # the fragments this frame completed
                    b += pack(seq, fts, len(fdata), flt)
                    b += fdata
                b += pack(seq, ts, len(data), lt)
                b += data
                if len(b) >= BATCH_BYTES:
                    self.seq = seq
                    self._send(w)
            if not seq % BATCH_FRAMES:
                self.seq = seq
                self.flush()
            if halt.now:
                break
        self.seq = seq

    def _send(self, w: int) -> None:
        pool, data = self.pool, self.bufs[w]
        if not data:
            return
        ring = pool.rings[w]
        if len(data) > ring.size // 2:  # a huge frame (pcapng blocks reach 16 MiB): inline, once idle
            while pool.inflight[w]:
                self._poll(True)
            pool.inflight[w].append(self.first[w])
            pool.rings[w]._inflight.append((0, 0))  # released like any batch
            pool.send(w, ("b", -1, len(data), bytes(data)))
        else:
            off = ring.put(data)
            while off is None:
                self.full_waits += 1
                self._poll(True)
                off = ring.put(data)
            pool.inflight[w].append(self.first[w])
            pool.send(w, ("b", off, len(data)))
        self.bufs[w] = bytearray()
        self.first[w] = -1

    def flush(self) -> None:
        for w in range(self.pool.n):
            self._send(w)
        self._poll(False)

    def _poll(self, block: bool) -> None:
        self.pool.poll(block)
        self._write(self._limit())

    def _limit(self) -> float:
        """The lowest sequence number any worker may still emit records at."""
        low = float("inf")
        for w in range(self.pool.n):
            q = self.pool.inflight[w]
            s = q[0] if q else self.first[w]
            if s >= 0:
                low = min(low, s)
        return low

    def _write(self, limit: float) -> None:
        lines = self.merger.release(limit)
        if lines:
            if self.progress is not None:
                self.progress.clear()
            emit = self.emit
            for line in lines:
                emit(line)

    def finish(self, steer: Steer) -> None:
        """Send what is left, end every worker's capture at the capture's last packet time, merge the rest."""
        for w in range(self.pool.n):
            self._send(w)
        steer.finish()
        last = self.seq + 1  # records made at the end sort after every frame's
        for w in range(self.pool.n):
            self.pool.send(w, ("f", steer.now_ns, last))
        while any(f is None for f in self.pool.finals):
            self._poll(True)
        self._write(float("inf"))


def _merged_engine(config: EngineConfig, finals: list[_Final], now_ns: int) -> tuple[Engine, PortTally]:
    """An engine that saw no frame, holding every worker's counters added up (what the summary reads)."""
    ports = PortTally()
    engine = Engine(config, lambda rt: None, ports=ports)
    for f in finals:
        merge_counters(engine.net.stats, f.net)
        merge_counters(engine.net.reassembler.stats, f.reassembly)
        merge_counters(engine.flows.stats, f.flows)
        merge_counters(engine.detection_stats, f.detection)
        for name, st in f.protocols.items():
            if name in engine.protocol_stats:
                merge_counters(engine.protocol_stats[name], st)
            else:
                engine.protocol_stats[name] = st
        merge_ports(ports, f.ports)
    engine.flows.now_ns = now_ns
    return engine, ports


# -- live ---------------------------------------------------------------------------------------------------
# a live worker sends its records at least this often (and every LIVE_BATCH records): the merge window
LIVE_SEND_S = 0.2
LIVE_BATCH = 256
LIVE_CHECK_FRAMES = 256  # frames between two looks at the clock and the pipe (a syscall each)


def _live_worker(
    index: int, conn: Connection, opts: WatchOptions, make_line: Callable[[Roundtrip], bytes]
) -> None:
    _child_setup()
    try:
        _guarded(conn, lambda: _live_worker_run(index, conn, opts, make_line))
    except SystemExit as exc:  # cli's one-line errors (privileges, interfaces): already said on stderr
        # (after an exception `_guarded` sent "e" first: the reader reports that one)
        conn.send(("x", exc.code if isinstance(exc.code, int) else EXIT_RUNTIME))


def _live_worker_run(
    index: int, conn: Connection, opts: WatchOptions, make_line: Callable[[Roundtrip], bytes]
) -> None:
    from packetd import cli

    records: list[tuple[int, bytes]] = []
    summary = WorkerSummary()
    display = cli.display_filter(opts)
    accept = display.accept
    halt = cli.Halt(at_once=False)
    sent = [time.monotonic(), 0]  # last send, frames since the last look

    def send(mark: int) -> None:
        if conn.poll():  # ("s",): the reader was told to stop
            conn.recv()
            halt.now = True
        conn.send(("l", sorted(records), mark))
        records.clear()
        sent[0] = time.monotonic()

    def sink(rt: Roundtrip) -> None:
        key = rt.end_ns
        summary.add_record(key, rt)
        if accept(rt):
            records.append((key, make_line(rt)))

    cap = cli.open_capture(opts, display, sink)
    inner = cap.frame or cap.engine.frame

    def frame(ts: int, lt: int, data: memoryview) -> None:
        inner(ts, lt, data)
        sent[1] += 1
        if sent[1] >= LIVE_CHECK_FRAMES or len(records) >= LIVE_BATCH:
            sent[1] = 0
            if len(records) >= LIVE_BATCH or time.monotonic() - sent[0] >= LIVE_SEND_S:
                send(ts)

    cap.frame = frame
    if index == 0:
        cli.capturing_banner(cap)
    conn.send(("ready",))
    cap.pump(halt, send, hints=False)
    cap.finish(halt)
    kernel = cap.close()
    final = _final(cap.engine, summary, kernel)
    if cap.resolver is not None:
        cap.resolver.close()
        final.resolver = cap.resolver.stats
    conn.send(("d", sorted(records), final))


def _run_live(opts: WatchOptions, n: int) -> int:
    from packetd import cli
    from packetd.pipeline.fanout import WindowMerger

    rules = cli.build_rules(opts.protos)  # usage errors once, before any worker starts
    cli._check_live_expression(opts)
    output = cli.Output(opts, True)
    emit = output.emit_line  # batched as watch's own records are (flushed after every poll below)
    make_line = _line_maker(output.fmt, output._text)
    # the agent's scheme: a group id of this process (a second watch has its own), a worker per socket
    group = ((os.getpid() << 4) + 1) & 0xFFFF
    wopts = replace(opts, fanout=group, workers=1)
    merger = WindowMerger(n)
    pool = _Pool(n)
    pool.on_live = merger.add
    halt = cli.Halt(at_once=False)
    signal.signal(signal.SIGINT, halt.signalled)
    signal.signal(signal.SIGTERM, halt.signalled)
    started = time.monotonic()
    import_decoders(rules)  # the workers fork with them imported
    pool.start(_live_worker, lambda i: (wopts, make_line))
    stopped = False
    try:
        while any(f is None for f in pool.finals):
            pool.poll(True, LIVE_SEND_S)
            if pool.exit_code is not None:
                pool.stop()
                return pool.exit_code
            for line in merger.release():
                emit(line)
            output.flush()
            if halt.now and not stopped:
                stopped = True
                for w in range(n):
                    if pool.finals[w] is None:
                        pool.send(w, ("s",))
        for line in merger.release(everything=True):
            emit(line)
        output.close()
    except (WorkerDied, BrokenPipeError) as exc:
        return _abort(pool, exc)
    pool.stop()
    finals = [f for f in pool.finals if f is not None]
    engine, _ = _merged_engine(cli.engine_config(opts, rules), finals, max(f.now_ns for f in finals))
    kernel: dict[str, tuple[int, int]] = {}
    for f in finals:
        for iface, (got, dropped) in f.kernel.items():
            was = kernel.get(iface, (0, 0))
            kernel[iface] = (was[0] + got, was[1] + dropped)
    elapsed = f"{time.monotonic() - started:.1f}s"
    cli._print_summary(
        engine, merge_summaries([f.summary for f in finals]), kernel, elapsed, halt.signals > 0
    )
    if merger.overflow:  # only when the bound was hit: the summary is otherwise one worker's
        click.echo(
            f"packetd: {merger.overflow} records written ahead of a slower worker's (merge window full)",
            err=True,
        )
    if not engine.connections_decoded():
        cli._hint(engine, rules, f"in {elapsed}")
    resolvers = [f.resolver for f in finals if f.resolver is not None]
    if resolvers:
        for r in resolvers[1:]:
            merge_counters(resolvers[0], r)
        cli.print_resolver_stats(_Resolved(resolvers[0]))  # type: ignore[arg-type]
    return 0


class _Resolved:
    """The workers' process-attribution counters, added up, as print_resolver_stats reads a resolver."""

    def __init__(self, stats: Any) -> None:
        self.stats = stats

    def close(self) -> None:
        pass
