"""A mutation fuzzer for every decoder, seeded from real captures: the engine behind `make fuzz` and the
CI-sized fuzz test in tests/test_fuzz.py.

Theory of operation. Hypothesis (tests/helpers/fuzzing.py) explores small structured inputs well but runs a
few hundred examples a second; a campaign of millions needs a plain loop. So:

1. Seeds. Each capture of the shared corpus is replayed through the real engine with every protocol's
   decoder factory wrapped by a recorder: what the flow layer hands each decoder (ordered bytes per
   direction, gaps, EOFs) is one seed conversation. These are real streams, already reassembled, so
   mutations start from messages that reach deep states of the decoders.
2. Mutations (`Mutator`), several per input, on a copy of a seed: bit flips, interesting bytes, length
   fields (1/2/4/8 bytes, either byte order) set to boundary values or nudged by ±1, truncations, splices
   with another seed of the same protocol, inserted/deleted/duplicated ranges, dropped/duplicated/re-
   directed events, inserted gaps and EOFs. Now and then a flood: one event repeated up to ~1 MiB, to show
   the buffers stay bounded.
3. Feeding (`run_input`): whole (one receive per event) or split at random sizes; a DecodeError replaces
   the decoder with a fresh mid-stream one, as the session does, and the rest is fed to it. Every message
   is serialised (`to_json` + orjson).
4. Verdict: any exception other than DecodeError is a failure, reported with the input that caused it; an
   input that runs longer than `timeout` seconds is a hang (SIGALRM, checked only in the campaign); on a
   sample of inputs (and after every flood) the bytes the decoder holds are checked against a bound.

Everything is driven by one `random.Random(seed)`, so a failure is reproduced by its (protocol, seed, index)
or by the saved input itself.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import random
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from packetd.capture.pcapfile import CaptureFile
from packetd.engine import Engine, EngineConfig, Rule
from packetd.protocols.base import DecodeError, Decoder, DecoderContext, Direction, Message
from packetd.protocols.registry import REGISTRY, Registry
from tests.helpers.fuzzing import held_bytes
from tests.helpers.golden import CORPUS, RULES_FOR, manifest

Event = tuple[
    str, int, Any
]  # ("data", direction, bytes) | ("gap", direction, nbytes) | ("eof", direction, 0)


@dataclass
class Conversation:
    """What one decoder instance saw: its transport and its calls in order."""

    protocol: str
    transport: str
    events: list[Event] = field(default_factory=list)


MAX_SEED_BYTES = 16 * 1024  # of one seed conversation: longer streams only repeat what their start shows
MAX_SEED_EVENTS = 200
MAX_SEEDS = 400  # per protocol, to keep seed extraction quick
FLOOD_BYTES = 1 << 20  # bytes of a flood input: above every per-message buffer bound below but one
FLOOD_RATE = 0.0005  # inputs that are floods (one costs as much as ~500 ordinary inputs)
HELD_BOUND = 24 * 1024 * 1024  # bytes a decoder may hold after any input (MongoDB keeps up to 4 MiB bodies
# per side, HTTP/2 a 1 MiB HPACK table per side, AMQP a 1 MiB frame per side; a leak shows far above)
MAX_PIECES = (
    128  # segments one event is cut into at most (one-byte splits of big events cost as much as 100 inputs)
)
CHECK_EVERY = 50  # inputs between two held-bytes checks (the walk costs ~ as much as an input)


class _Recorder:
    """Wraps a decoder and notes every call into `conv` (the seed extractor's probe)."""

    def __init__(self, inner: Decoder, conv: Conversation) -> None:
        self._inner = inner
        self._conv = conv

    def _room(self) -> bool:
        c = self._conv
        return len(c.events) < MAX_SEED_EVENTS and sum(len(e[2]) for e in c.events if e[0] == "data") < (
            MAX_SEED_BYTES
        )

    def receive(self, direction: Direction, data: memoryview, ts_ns: int) -> Sequence[Message]:
        if self._room():
            self._conv.events.append(("data", int(direction), bytes(data)))
        return self._inner.receive(direction, data, ts_ns)

    def receive_gap(self, direction: Direction, nbytes: int, ts_ns: int) -> Sequence[Message]:
        if self._room():
            self._conv.events.append(("gap", int(direction), nbytes))
        return self._inner.receive_gap(direction, nbytes, ts_ns)

    def receive_eof(self, direction: Direction, ts_ns: int) -> Sequence[Message]:
        if self._room():
            self._conv.events.append(("eof", int(direction), 0))
        return self._inner.receive_eof(direction, ts_ns)

    def __getattr__(self, name: str) -> Any:  # counters, handover hooks: the session asks the real decoder
        return getattr(self._inner, name)


def _recording_registry(out: list[Conversation]) -> Registry:
    specs = []
    for spec in REGISTRY.specs():

        def factory(ctx: DecoderContext, real: Callable[[DecoderContext], Decoder] = spec.factory,
                    name: str = spec.name) -> Decoder:  # fmt: skip
            conv = Conversation(name, ctx.transport)
            out.append(conv)
            return _Recorder(real(ctx), conv)  # type: ignore[return-value]

        specs.append(dataclasses.replace(spec, factory=factory))
    return Registry(specs)


def capture_seeds(paths: Sequence[tuple[str, tuple[Rule, ...]]]) -> dict[str, list[Conversation]]:
    """Seed conversations per protocol from captures replayed with their rules."""
    convs: list[Conversation] = []
    registry = _recording_registry(convs)
    for path, rules in paths:
        engine = Engine(EngineConfig(rules=rules), lambda r: None, registry)
        cf = CaptureFile(path)
        try:
            for ts, lt, data in cf:
                engine.frame(ts, lt, data)
        finally:
            engine.finish()
            cf.close()
    seeds: dict[str, list[Conversation]] = {}
    seen: set[bytes] = set()
    for conv in convs:
        if not any(e[0] == "data" and e[2] for e in conv.events):
            continue
        key = orjson.dumps([conv.protocol, conv.transport, [[k, d, v.hex() if isinstance(v, bytes) else v]
                                                           for k, d, v in conv.events]])  # fmt: skip
        if key in seen:
            continue
        seen.add(key)
        bucket = seeds.setdefault(conv.protocol, [])
        if len(bucket) < MAX_SEEDS:
            bucket.append(conv)
    return seeds


def corpus_seeds() -> dict[str, list[Conversation]]:
    """Seeds from every capture of the shared corpus (the golden captures), replayed as the golden tests do;
    a capture folder without a manifest row is replayed with the default rules."""
    paths: list[tuple[str, tuple[Rule, ...]]] = []
    for folder in sorted(RULES_FOR):
        rows = manifest(folder)
        paths += [(row.path, RULES_FOR[folder](row)) for row in rows if os.path.isfile(row.path)]
    listed = {p for p, _ in paths}
    for extra in sorted(glob.glob(os.path.join(CORPUS, "*", "*.pcap*"))):
        if extra not in listed:
            paths.append(
                (extra, tuple(Rule(protocol=s.name, ports=s.default_ports) for s in REGISTRY.specs()))
            )
    return capture_seeds(paths)


# -- mutations ------------------------------------------------------------------------------------------
INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0x0A, 0x0D, 0x20, 0x2A, 0x24, 0x3A)
INTERESTING = (0, 1, 2, 3, 4, 5, 7, 8, 15, 16, 0x7F, 0x80, 0xFF, 0x100, 0x3FFF, 0x4000, 0x7FFF, 0x8000,
               0xFFFF, 0x10000, 0xFFFFFF, 0x1000000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
               0x7FFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF)  # fmt: skip


class Mutator:
    """Draws mutated conversations from the seeds of one protocol."""

    def __init__(self, seeds: Sequence[Conversation], rng: random.Random) -> None:
        self.seeds = list(seeds)
        self.rng = rng
        self.pool = [e[2] for s in self.seeds for e in s.events if e[0] == "data" and e[2]]

    def conversation(self) -> tuple[str, list[Event], bool]:
        """(transport, events, flood?) for one input."""
        r = self.rng
        seed = r.choice(self.seeds)
        events = list(seed.events)
        if r.random() < 0.1:  # splice two conversations
            other = r.choice(self.seeds).events
            events = events[: r.randint(0, len(events))] + other[r.randint(0, len(other)) :]
        for _ in range(r.choice((1, 1, 2, 2, 3, 4, 6, 10))):
            self._mutate(events)
        flood = r.random() < FLOOD_RATE
        data = [i for i, e in enumerate(events) if e[0] == "data" and e[2]]
        if flood and data:  # one event's bytes repeated to FLOOD_BYTES, in 64 KiB segments
            i = r.choice(data)
            kind, d, b = events[i]
            chunk = b * max(1, 65536 // len(b))
            events[i + 1 : i + 1] = [(kind, d, chunk)] * max(1, FLOOD_BYTES // len(chunk))
        return seed.transport, events, flood

    def _mutate(self, events: list[Event]) -> None:
        r = self.rng
        op = r.random()
        data_idx = [i for i, e in enumerate(events) if e[0] == "data" and e[2]]
        if op < 0.70 and data_idx:
            i = r.choice(data_idx)
            kind, d, b = events[i]
            events[i] = (kind, d, self._bytes(bytearray(b)))
        elif op < 0.76 and events:  # drop an event
            del events[r.randrange(len(events))]
        elif op < 0.82 and events:  # duplicate an event (a retransmission the flow layer let through)
            i = r.randrange(len(events))
            events.insert(i, events[i])
        elif op < 0.86 and events:  # the other direction
            i = r.randrange(len(events))
            k, d, v = events[i]
            events[i] = (k, 1 - d, v)
        elif op < 0.91:  # a gap
            events.insert(r.randint(0, len(events)), ("gap", r.randint(0, 1), r.choice((1, 2, 4, 100, 1460,
                                                                                      r.randint(1, 10**6)))))  # fmt: skip
        elif op < 0.94:  # an EOF
            events.insert(r.randint(0, len(events)), ("eof", r.randint(0, 1), 0))
        elif op < 0.97:  # truncate the conversation
            del events[r.randint(0, len(events)) :]
        elif self.pool:  # a message from another seed inserted
            events.insert(r.randint(0, len(events)), ("data", r.randint(0, 1), r.choice(self.pool)))

    def _bytes(self, b: bytearray) -> bytes:
        r = self.rng
        n = len(b)
        op = r.random()
        if op < 0.2:  # bit flips
            for _ in range(r.randint(1, 8)):
                i = r.randrange(n)
                b[i] ^= 1 << r.randrange(8)
        elif op < 0.32:  # interesting bytes
            for _ in range(r.randint(1, 4)):
                b[r.randrange(n)] = r.choice(INTERESTING_BYTES) if r.random() < 0.7 else r.randrange(256)
        elif op < 0.55:  # a length field: set to a boundary value, or nudged
            width = r.choice((1, 2, 2, 4, 4, 4, 8))
            if n >= width:
                # offsets near the start of a message are where lengths live; anywhere else sometimes
                i = r.randrange(min(n - width + 1, 64)) if r.random() < 0.7 else r.randrange(n - width + 1)
                order = "big" if r.random() < 0.5 else "little"
                cur = int.from_bytes(b[i : i + width], order)
                mask = (1 << (8 * width)) - 1
                choice = r.random()
                if choice < 0.5:
                    v = r.choice(INTERESTING)
                elif choice < 0.85:
                    v = cur + r.choice((-2, -1, 1, 2, 4, -4, 8))
                else:
                    v = r.getrandbits(8 * width)
                b[i : i + width] = (v & mask).to_bytes(width, order)
        elif op < 0.68:  # truncate
            del b[r.randint(0, n - 1) :]
        elif op < 0.78 and self.pool:  # splice: our head, another message's tail
            other = r.choice(self.pool)
            b[r.randint(0, n) :] = other[r.randint(0, len(other)) :]
        elif op < 0.86:  # insert random or repeated bytes
            i = r.randint(0, n)
            ins = (
                bytes(r.getrandbits(8) for _ in range(r.randint(1, 16)))
                if r.random() < 0.5
                else b[i : i + 64]
            )
            b[i:i] = ins
        elif op < 0.93:  # delete a range
            i = r.randrange(n)
            del b[i : i + r.randint(1, 32)]
        else:  # duplicate a range
            i = r.randrange(n)
            j = min(n, i + r.randint(1, 256))
            b[j:j] = b[i:j]
        return bytes(b)

    def splits(self) -> list[int] | None:
        """Segment sizes to cut every data event into (cycled), or None to feed whole."""
        r = self.rng
        if r.random() < 0.5:
            return None
        return [
            r.choice((1, 2, 3, 5, 7, 13, 64, 536, 1448, r.randint(1, 4096))) for _ in range(r.randint(1, 4))
        ]


# -- running one input ----------------------------------------------------------------------------------
Factory = Callable[[DecoderContext], Decoder]


def factory_for(protocol: str) -> Factory:
    return REGISTRY[protocol].factory


def run_input(
    factory: Factory, transport: str, events: Sequence[Event], splits: list[int] | None, check_held: bool
) -> tuple[int, int, int]:
    """Feed one input; return (messages, decode errors, bytes held at the end or -1 when not checked).
    Any exception other than DecodeError propagates: that is the failure the campaign looks for."""
    decoder = factory(DecoderContext(transport=transport))
    msgs = errors = 0
    ts = 1_700_000_000_000_000_000
    for kind, d, v in events:
        direction = Direction(d)
        if kind == "data":
            if splits is None or transport == "udp":
                pieces = [v]
            else:
                pieces, pos, k = [], 0, 0
                floor = len(v) // MAX_PIECES + 1
                while pos < len(v):
                    size = max(splits[k % len(splits)], floor)
                    pieces.append(v[pos : pos + size])
                    pos += size
                    k += 1
        else:
            pieces = [v]
        for piece in pieces:
            ts += 1000
            try:
                if kind == "data":
                    out = decoder.receive(direction, memoryview(piece), ts)
                elif kind == "gap":
                    out = decoder.receive_gap(direction, piece, ts)
                else:
                    out = decoder.receive_eof(direction, ts)
            except DecodeError as exc:
                if not isinstance(exc.reason, str) or not exc.reason:
                    raise AssertionError(f"DecodeError without a reason: {exc!r}") from exc
                errors += 1
                decoder = factory(DecoderContext(transport=transport, midstream=True))
                continue
            for m in out:
                if not isinstance(m, Message):
                    raise AssertionError(f"decoder returned a non-message {m!r}")
                orjson.dumps(m.to_json())
                msgs += 1
    for direction in (Direction.C2S, Direction.S2C):
        try:
            for m in decoder.receive_eof(direction, ts + 1):
                orjson.dumps(m.to_json())
                msgs += 1
        except DecodeError:
            errors += 1
            decoder = factory(DecoderContext(transport=transport, midstream=True))
    held = held_bytes(decoder) if check_held else -1
    if held > HELD_BOUND:
        raise AssertionError(f"decoder holds {held} bytes after the input (bound {HELD_BOUND})")
    return msgs, errors, held


class Hang(BaseException):
    """Raised by the campaign's timer inside an input that runs too long (BaseException: a decoder's own
    `except Exception` cannot swallow it)."""


@dataclass
class Failure:
    protocol: str
    index: int
    kind: str  # exception type name
    where: str  # innermost frame in src/packetd
    message: str
    transport: str
    events: list[Event]
    splits: list[int] | None

    def signature(self) -> tuple[str, str, str]:
        return (self.protocol, self.kind, self.where)

    def to_json(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "index": self.index,
            "kind": self.kind,
            "where": self.where,
            "message": self.message[:500],
            "transport": self.transport,
            "splits": self.splits,
            "events": [[k, d, v.hex() if isinstance(v, bytes) else v] for k, d, v in self.events],
        }


def events_from_json(raw: list[list[Any]]) -> list[Event]:
    return [(k, d, bytes.fromhex(v) if k == "data" else v) for k, d, v in raw]


def _where(exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/packetd/" in f.filename]
    if not frames:
        return "?"
    f = frames[-1]
    return f"{f.filename.split('/src/')[-1]}:{f.lineno} {f.name}"


@dataclass
class Stats:
    protocol: str
    inputs: int = 0
    messages: int = 0
    decode_errors: int = 0
    floods: int = 0
    max_held: int = 0
    bytes_fed: int = 0
    failures: list[Failure] = field(default_factory=list)


def fuzz(
    protocol: str,
    seeds: Sequence[Conversation],
    inputs: int,
    seed: int,
    *,
    on_input: Callable[[], None] | None = None,
    keep_failures: int = 50,
) -> Stats:
    """Run `inputs` mutated inputs through the protocol's decoder. Failures are collected, not raised;
    `on_input` is called before each input (the campaign arms its hang timer there)."""
    rng = random.Random(seed)
    mut = Mutator(seeds, rng)
    factory = factory_for(protocol)
    stats = Stats(protocol)
    for index in range(inputs):
        transport, events, flood = mut.conversation()
        splits = mut.splits()
        if on_input is not None:
            on_input()
        try:
            msgs, errors, held = run_input(
                factory, transport, events, splits, flood or index % CHECK_EVERY == 0
            )
        except (Exception, Hang) as exc:  # the failure being hunted: anything but DecodeError
            if len(stats.failures) < keep_failures:
                stats.failures.append(
                    Failure(
                        protocol, index, type(exc).__name__, _where(exc), str(exc), transport, events, splits
                    )
                )
            continue
        finally:
            stats.inputs += 1
            stats.floods += flood
            stats.bytes_fed += sum(len(e[2]) for e in events if e[0] == "data")
        stats.messages += msgs
        stats.decode_errors += errors
        stats.max_held = max(stats.max_held, held)
    return stats
