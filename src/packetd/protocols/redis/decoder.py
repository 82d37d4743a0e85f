"""Redis decoder (RESP2 and RESP3), both directions of one connection.

Theory of operation
-------------------
Each direction has its own parser; neither ever buffers more than one protocol line (MAX_LINE): bulk
payloads are counted straight off the segments, so a 5 MB value costs no copy, and only the first bytes of
the few elements the record needs (command, subcommand, key; pub/sub kind and count; error text) are kept.

* Client side: a command is an array of bulk strings (`*N`, then N times `$L` + L bytes), or an inline
  command: by Redis's own rule (networking.c, processInputBuffer) anything a client sends that does not
  start with `*` is an inline command line (what `redis-cli` piped input and telnet send; the server
  answers a nonsense one with `-ERR unknown command`). Roles are never guessed from content (see receive).
* Server side: any RESP2/RESP3 value, parsed with an explicit stack of "elements still to come" per open
  aggregate, so a reply can be cut anywhere. Attributes (`|`) are read and ignored; streamed strings
  (`$?` + `;N` chunks) and streamed aggregates (`*?` ... `.`) are read.

Replies come in command order (FIFO). The decoder keeps, per command sent, what the server will answer, so
the pairing stays aligned where one command does not get exactly one reply:

* `(P|S)SUBSCRIBE ch1 ch2 ...` gets one confirmation per channel: they form one response. `(P|S)UNSUBSCRIBE`
  without channels gets one confirmation per subscription it removes (the decoder follows the counts the
  confirmations carry), or one with a null channel when there was none.
* Pub/sub deliveries (`message`/`pmessage`/`smessage` arrays in RESP2 subscribed mode), every RESP3 push
  (`>`) that is not an expected confirmation, and MONITOR's feed lines are `Push` messages: one-way records.
* `CLIENT REPLY OFF` / `SKIP` silence the server: the commands it will not answer are `UnrepliedRequest`s
  (one-way records) instead of requests waiting forever. MULTI/EXEC need nothing special: every queued
  command is answered `+QUEUED`, and EXEC with one array.

Command names are upper-cased; for the container commands (the commands whose second word names a
subcommand: CLIENT, CONFIG, XINFO, ...) the subcommand is appended when it has the shape of one. Every
array a client sends is a request, known command or not.

Resynchronisation: when joined mid-stream, after a gap it cannot absorb (a gap inside a bulk payload of
known length is absorbed and flagged), or after a reset, the client side searches for the start of a
command array (`*N\\r\\n$L\\r\\n` + a letter); the server side then waits for a segment that begins with a
RESP type byte after a command has been seen, and pending replies are given up (SyncLost).

Pipelining deeper than MAX_PENDING (protocols/base.py): the commands beyond it are not tracked (no record,
counted `pending_overflow`) but keep their place; their replies are dropped (`untracked_replies`), never
paired with a later command. Complete replies in a segment are kept when garbage later in it resets the
decoder (DecodeError.messages).

What it deliberately ignores: argument values (only counted; keys only with `capture_keys`), RESP3
attribute contents, the payload of pushes.

Wire format (RESP: https://redis.io/docs/latest/develop/reference/protocol-spec/):

    simple  + - : _ , # (      <type><text>\\r\\n           +OK\\r\\n  -ERR unknown\\r\\n  :42\\r\\n  _\\r\\n
    bulk    $ ! =              <type><len>\\r\\n<len bytes>\\r\\n           $5\\r\\nhello\\r\\n   $-1\\r\\n (null)
    aggr.   * ~ > (N items)    <type><N>\\r\\n<N values>                 *2\\r\\n$3\\r\\nGET\\r\\n$1\\r\\nk\\r\\n
            % | (N pairs)      <type><N>\\r\\n<2N values>                (| = attribute, precedes a value)
    stream  $?\\r\\n;4\\r\\nabcd\\r\\n;0\\r\\n        *?\\r\\n<values>.\\r\\n
    inline  GET k\\r\\n (client only)
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from typing import Final

from packetd.protocols.base import (
    MAX_PENDING,
    NO_MESSAGES,
    DecodeError,
    DecoderContext,
    Direction,
    Flag,
    Message,
    SyncLost,
)
from packetd.protocols.pending import PendingQueue
from packetd.protocols.redis.messages import TYPE_NAMES, Push, Request, Response, UnrepliedRequest
from packetd.protocols.redis.options import RedisOptions

MAX_LINE: Final = 64 * 1024  # one type line or inline command; Redis's own PROTO_INLINE_MAX_SIZE is 64 KiB
MAX_BULK: Final = 512 * 1024 * 1024  # Redis's proto-max-bulk-len default: a longer declared string is garbage
MAX_ELEMENTS: Final = 2**31 - 1  # declared aggregate length (Redis keeps lengths in a C int)
MAX_DEPTH: Final = 64  # nested aggregates; real replies nest a few levels (COMMAND DOCS: 6)
MAX_CAPTURE: Final = 128  # bytes kept of the command name, subcommand, key, pub/sub kind
MAX_ERROR: Final = 256  # characters kept of an error message
MAX_SYNC_WINDOW: Final = 64  # bytes carried between segments while searching for a command start

_CR: Final = 13
_STAR = ord("*")
_DOLLAR = ord("$")
_SEMI = ord(";")
_DOT = ord(".")
_PIPE = ord("|")
_MINUS = ord("-")
_BANG = ord("!")
_PLUS = ord("+")
_COLON = ord(":")
_PUSH = ord(">")
_LINE_TYPES = frozenset(b"+-:_,#(")
_BULK_TYPES = frozenset(b"$!=")
_AGGR_TYPES = frozenset(b"*~>")
_SERVER_TYPES = frozenset(b"+-:$*_,#!=(%~|>")
_STREAM: Final = -1  # stack entry of a streamed aggregate (ends with ".")
_ATTR: Final = 1 << 40  # stack entries above this belong to an attribute (its pairs are not elements)

# Commands whose second word names a subcommand (Redis 7 "container" commands and the older ones that
# behave the same way). The subcommand itself is never looked up: any word of the right shape is taken.
CONTAINERS = frozenset(
    {
        "ACL", "CLIENT", "CLUSTER", "COMMAND", "CONFIG", "DEBUG", "FUNCTION", "LATENCY", "MEMORY", "MODULE",
        "OBJECT", "PUBSUB", "SCRIPT", "SENTINEL", "SLOWLOG", "XGROUP", "XINFO",
    }
)  # fmt: skip
# Commands whose arguments may carry credentials: never kept, even with capture_keys.
SECRET_COMMANDS = frozenset({"AUTH", "HELLO", "ACL", "CONFIG", "MIGRATE", "CLUSTER", "SENTINEL", "MODULE"})
_SUBCOMMAND = re.compile(rb"[A-Za-z][A-Za-z0-9_|-]{0,31}")
_COMMAND_START = re.compile(rb"\*[1-9][0-9]{0,6}\r\n\$[1-9][0-9]{0,2}\r\n[A-Za-z]")
_SUBSCRIBES = {
    "SUBSCRIBE": b"subscribe",
    "PSUBSCRIBE": b"psubscribe",
    "SSUBSCRIBE": b"ssubscribe",
    "UNSUBSCRIBE": b"unsubscribe",
    "PUNSUBSCRIBE": b"punsubscribe",
    "SUNSUBSCRIBE": b"sunsubscribe",
}
_CONFIRMS = frozenset(_SUBSCRIBES.values())
_SHARD = (b"ss", b"sun")
_DELIVERIES = frozenset({b"message", b"pmessage", b"smessage"})


class _Expect:
    """What the server will send for one command."""

    __slots__ = ("command", "confirm", "count", "start")

    def __init__(self, command: str, confirm: bytes, count: int, start: int) -> None:
        self.command = command
        self.confirm = confirm  # the confirmation kind of a (un)subscribe command, else b""
        self.count = count  # confirmations expected (0: "all current subscriptions")
        self.start = start


class _Client:
    """Client-side parser state and the command under construction."""

    __slots__ = (
        "buf",
        "cap",
        "capidx",
        "flags",
        "idx",
        "left",
        "nargs",
        "parts",
        "size",
        "skip",
        "start",
        "synced",
        "want",
    )

    def __init__(self, synced: bool) -> None:
        self.synced = synced
        self.buf = bytearray()  # an incomplete line (or the sync search window)
        self.start = -1  # first byte time of the command under construction (-1: none)
        self.size = 0
        self.flags = 0
        self.left = 0  # bulk strings still to come in this command
        self.nargs = 0
        self.idx = 0
        self.parts: list[bytes | None] = [None, None, None]
        self.skip = 0  # payload bytes (+ CRLF) of the current bulk string still to come
        self.cap = bytearray()  # the captured prefix of a bulk string that spans segments
        self.capidx = -1
        self.want = 0


class _Server:
    """Server-side parser state and the reply under construction."""

    __slots__ = (
        "buf",
        "cap",
        "capidx",
        "count",
        "flags",
        "idx",
        "parts",
        "size",
        "skip",
        "sstream",
        "stack",
        "start",
        "synced",
        "top",
        "want",
    )

    def __init__(self, synced: bool) -> None:
        self.synced = synced
        self.buf = bytearray()
        self.start = -1
        self.size = 0
        self.flags = 0
        self.top = -1  # type byte of the top-level value (-1: not seen yet)
        self.count: int | None = None  # declared top-level elements of an aggregate
        self.stack: list[int] = []
        self.idx = 0  # elements completed directly inside the top-level aggregate
        self.parts: list[bytes | None] = [None, None, None]
        self.skip = 0
        self.sstream = False  # inside a streamed string ($? ... ;0)
        self.cap = bytearray()
        self.capidx = -1
        self.want = 0


def _int(raw: bytes, what: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise DecodeError(f"bad {what}", raw[:20].decode("latin-1")) from None


_NAMES: dict[bytes, str] = {}
MAX_NAMES: Final = 4096  # command names remembered upper-cased (a bounded cache: names are a small set)


def _name(raw: bytes | None) -> str:
    if not raw:
        return ""
    name = _NAMES.get(raw)
    if name is None:
        name = raw.decode("latin-1").upper()
        if len(_NAMES) < MAX_NAMES:
            _NAMES[raw] = name
    return name


def _fast_command(b: bytes, pos: int, n: int, parts: list[bytes | None]) -> tuple[int, int]:
    """A whole command array at b[pos] (a `*`): (end, arguments); (0, 0) when it is not all here or not
    plain, and the general parser takes it (the same result, a line at a time)."""
    j = b.find(b"\r\n", pos)
    if j <= pos:  # (j == pos: no number, as int(b"") refuses; and no slice ending before its start, which
        return 0, 0  # the compiled build's native slice turns into SystemError, see buildinfo.py)
    try:
        nargs = int(b[pos + 1 : j])
    except ValueError:
        return 0, 0
    if nargs <= 0 or nargs > 1024:
        return 0, 0
    p = j + 2
    for i in range(nargs):
        if p >= n or b[p] != _DOLLAR:
            return 0, 0
        j = b.find(b"\r\n", p)
        if j < 0:
            return 0, 0
        try:
            blen = int(b[p + 1 : j])
        except ValueError:
            return 0, 0
        p = j + 2
        end = p + blen
        if blen < 0 or end + 2 > n or b[end : end + 2] != b"\r\n":
            return 0, 0
        if i < 3:
            parts[i] = b[p : p + MAX_CAPTURE] if blen > MAX_CAPTURE else b[p:end]
        p = end + 2
    return p, nargs


FastCommand = Callable[[bytes, int, int, list[bytes | None]], tuple[int, int]]


def _c_fast_command() -> FastCommand | None:
    """The C twin of `_fast_command` (redis/_resp.c, built by the compiled build), or None: not built,
    built with another MAX_CAPTURE, or PACKETD_PURE=1. The same answers and the same stores into `parts`
    for the same arguments: tests/protocols/redis/test_fast_command.py runs every case through both."""
    if os.environ.get("PACKETD_PURE") == "1":
        return None
    try:
        from packetd.protocols.redis import _resp  # type: ignore[attr-defined]
    except ImportError:
        return None
    if _resp.MAX_CAPTURE != MAX_CAPTURE:
        return None
    fn: FastCommand = _resp.fast_command
    return fn


# what _client calls for a whole command array: in C ~0.5k instructions a command against ~10k for the
# Python function compiled by mypyc (callgrind, redis-py's commands; bytes.find and int() of each length)
C_FAST_COMMAND: Final = _c_fast_command()
FAST_COMMAND: Final[FastCommand] = C_FAST_COMMAND if C_FAST_COMMAND is not None else _fast_command


# A bulk string that runs past its segment is counted, not buffered: `skip` is what is still to come of it
# (payload and CRLF); when it is one of the elements the record needs, `cap` collects its first `want` bytes
# for `parts[capidx]`. The same for both directions (client arguments, server reply elements).
def _skip_from(p: _Client | _Server, b: bytes, pos: int, blen: int, capidx: int, limit: int) -> None:
    """The bulk string of `blen` bytes at b[pos] continues in later segments: skip it, capturing its first
    `limit` bytes for `parts[capidx]` (capidx -1: nothing kept)."""
    avail = len(b) - pos
    p.skip = blen + 2 - avail
    p.size += avail
    if capidx >= 0:
        want = blen if blen < limit else limit
        p.cap = bytearray(b[pos : pos + want])
        p.want = want - len(p.cap)
        p.capidx = capidx
    else:
        p.want = 0
        p.capidx = -1


def _skip_rest(p: _Client | _Server, data: memoryview) -> int:
    """The next segment of a bulk string skipped by _skip_from: the position after it, or -1 when it goes
    on further (the caller completes the element when it ends)."""
    n = len(data)
    take = p.skip if p.skip < n else n
    if p.want:
        keep = take if take < p.want else p.want
        p.cap += data[:keep]
        p.want -= keep
    p.skip -= take
    p.size += take
    return -1 if p.skip else take


def _skip_gap(p: _Client | _Server, nbytes: int) -> None:
    """A capture gap of `nbytes` falls inside the skipped bulk string: framing survives, the bytes are lost."""
    p.skip -= nbytes
    p.size += nbytes
    p.flags |= Flag.GAP
    if p.want:
        p.want = 0
        p.capidx = -1  # a hole inside a captured element: keep nothing of it


class RedisDecoder:
    """Decoder for one Redis connection (see module docstring)."""

    def __init__(self, ctx: DecoderContext | None = None) -> None:
        ctx = ctx or DecoderContext()
        self._opts: RedisOptions = ctx.options if isinstance(ctx.options, RedisOptions) else RedisOptions()
        synced = not ctx.midstream
        self._c = _Client(synced)
        self._s = _Server(synced)
        self._midstream = Flag.MIDSTREAM if ctx.midstream else 0
        # per command sent, what the server will answer; beyond MAX_PENDING a command is not tracked (no
        # record, counted `pending_overflow`) and its reply is dropped (`untracked_replies`): see PendingQueue
        self._expect: PendingQueue[_Expect] = PendingQueue(MAX_PENDING)
        # events counted, not recorded: straight into the protocol's counters when the session gives them
        self.counters: dict[str, int] = ctx.counters if ctx.counters is not None else {}
        self._reply_off = False  # CLIENT REPLY OFF in force
        self._skip_next = False  # CLIENT REPLY SKIP: the next command is not answered
        self._subs = [0, 0, 0]  # channels, patterns, shard channels subscribed (followed from confirmations)
        self._total = 0  # the count the last channel/pattern confirmation carried
        self._monitor = False
        # the (un)subscribe confirmations gathered for the command at the head of _expect
        self._conf: tuple[int, int, int, int] | None = None  # (start, size, flags, replies)

    # -- the Decoder interface ---------------------------------------------------------------------------
    def receive(self, direction: Direction, data: memoryview, ts_ns: int) -> Sequence[Message]:
        if not data:
            return NO_MESSAGES
        out: list[Message] = []
        # Roles are never taken from content: the SYN's sender is the client, else the rule's port names
        # the server (flow/table.py). Nothing in RESP tells them apart: a client line that does not start
        # with `*` is an inline command (Redis's own rule, even `+OK` or `-ERR`), and a reply can have the
        # shape of a command (an array of bulk strings); guessing from it swapped good roles.
        try:
            if direction is Direction.C2S:
                self._client(data, ts_ns, out)
            else:
                self._server(data, ts_ns, out)
        except DecodeError as exc:
            exc.messages = out  # what was complete before the garbage is not lost with the reset
            raise
        return out

    def receive_gap(self, direction: Direction, nbytes: int, ts_ns: int) -> Sequence[Message]:
        out: list[Message] = []
        if direction is Direction.C2S:
            c = self._c
            if c.skip >= nbytes and c.synced:
                _skip_gap(c, nbytes)
                if not c.skip:
                    self._arg_done(c, ts_ns, out)
                return out
            self._c = _Client(False)
            self._c.flags = Flag.GAP
            out.append(SyncLost(start_ns=ts_ns, end_ns=ts_ns, size=0, flags=0, direction=direction))
            # replies to the lost commands will come: the server side cannot tell them from later ones
            self._lose_server(ts_ns, out)
            return out
        s = self._s
        if s.skip >= nbytes and s.synced:
            _skip_gap(s, nbytes)
            if not s.skip:
                self._bulk_done(s, ts_ns, out)
            return out
        self._lose_server(ts_ns, out)
        return out

    def receive_eof(self, direction: Direction, ts_ns: int) -> Sequence[Message]:
        if direction is Direction.C2S:
            self._c.buf.clear()
            return NO_MESSAGES  # an incomplete command was never executed: nothing to report
        s = self._s
        out: list[Message] = []
        if s.start >= 0 and s.synced and s.top >= 0:
            s.flags |= Flag.TRUNCATED  # the connection ended inside a reply
            s.stack.clear()
            s.skip = 0
            self._reply_complete(s, ts_ns, out)
        elif self._conf is not None:
            self._emit_confirmations(ts_ns, out)
        s.buf.clear()
        return out

    # -- client side -------------------------------------------------------------------------------------
    def _client(self, data: memoryview, ts: int, out: list[Message]) -> None:
        c = self._c
        pos = 0
        if c.skip:
            pos = _skip_rest(c, data)
            if pos < 0:
                return
            self._arg_done(c, ts, out)
            if pos >= len(data):
                return
        b = data[pos:].tobytes() if pos else data.tobytes()
        n = len(b)
        pos = 0
        if not c.synced:
            found = self._resync_client(c, b)
            if found is None:
                return
            b = found
            n = len(b)
        fast = FAST_COMMAND
        while pos < n:
            if c.start < 0:
                c.start = ts
                if b[pos] == _STAR and not c.buf:
                    # the common case: a whole command in this segment, parsed in one go
                    end, nargs = fast(b, pos, n, c.parts)
                    if end:
                        c.size = end - pos
                        c.nargs = nargs
                        pos = end
                        self._command(c, ts, out)
                        continue
            j = b.find(b"\n", pos)
            if j < 0:
                if len(c.buf) + n - pos > MAX_LINE:
                    raise DecodeError("line too long")
                c.buf += b[pos:]
                return
            if c.buf:
                line = bytes(c.buf) + b[pos : j + 1]
                c.buf.clear()
            else:
                line = b[pos : j + 1]
            pos = j + 1
            c.size += len(line)
            if not c.left:
                self._array_header(c, line, ts, out)
                continue
            pos = self._arg(c, line, b, pos, n, ts, out)
            if pos < 0:
                return

    def _array_header(self, c: _Client, line: bytes, ts: int, out: list[Message]) -> None:
        """The line that starts a command: `*N` (N bulk strings follow), or an inline command."""
        if line[0] != _STAR:
            self._inline(c, line, ts, out)
            return
        if len(line) < 4 or line[-2] != _CR:
            raise DecodeError("bad array header")
        nargs = _int(line[1:-2], "array length")
        if nargs <= 0:  # `*0` / `*-1`: the server skips it without a reply
            c.start = -1
            c.size = 0
            return
        if nargs > MAX_ELEMENTS:
            raise DecodeError("bad array length")
        c.left = c.nargs = nargs
        c.idx = 0

    def _arg(self, c: _Client, line: bytes, b: bytes, pos: int, n: int, ts: int, out: list[Message]) -> int:
        """A command element's `$N` line and its bytes: the position after them, or -1 when they go on in
        the next segment."""
        if line[0] != _DOLLAR or line[-2] != _CR:
            raise DecodeError("command element is not a bulk string")
        blen = _int(line[1:-2], "bulk length")
        if blen < 0 or blen > MAX_BULK:
            raise DecodeError("bad bulk length")
        end = pos + blen
        if end + 2 > n:
            _skip_from(c, b, pos, blen, c.idx if c.idx < 3 else -1, MAX_CAPTURE)
            return -1
        if c.idx < 3:
            c.parts[c.idx] = b[pos : pos + MAX_CAPTURE] if blen > MAX_CAPTURE else b[pos:end]
        if b[end : end + 2] != b"\r\n":
            raise DecodeError("bulk string not followed by CRLF")
        c.size += blen + 2
        c.idx += 1
        c.left -= 1
        if not c.left:
            self._command(c, ts, out)
        return end + 2

    def _resync_client(self, c: _Client, b: bytes) -> bytes | None:
        """Search for the start of a command; the bytes from there on, or None (tail kept for later)."""
        window = bytes(c.buf) + b if c.buf else b
        c.buf.clear()
        m = _COMMAND_START.search(window)
        if m is None:
            c.buf += window[-MAX_SYNC_WINDOW:]
            return None
        c.synced = True
        c.flags |= Flag.MIDSTREAM
        return window[m.start() :]

    def _arg_done(self, c: _Client, ts: int, out: list[Message]) -> None:
        """A bulk string that spanned segments is complete."""
        if c.capidx >= 0:
            c.parts[c.capidx] = bytes(c.cap)
            c.capidx = -1
        c.want = 0
        c.idx += 1
        c.left -= 1
        if not c.left:
            self._command(c, ts, out)

    def _inline(self, c: _Client, line: bytes, ts: int, out: list[Message]) -> None:
        words = line.split()
        if not words:  # an empty line: the server ignores it
            c.start = -1
            c.size = 0
            return
        c.nargs = len(words)
        c.parts[0] = words[0][:MAX_CAPTURE]
        c.parts[1] = words[1][:MAX_CAPTURE] if len(words) > 1 else None
        c.parts[2] = words[2][:MAX_CAPTURE] if len(words) > 2 else None
        self._command(c, ts, out, inline=True)

    def _command(self, c: _Client, ts: int, out: list[Message], inline: bool = False) -> None:
        parts = c.parts
        name = _name(parts[0])
        nargs = c.nargs
        command = name
        key_at = 1
        sub = parts[1]
        if name in CONTAINERS and nargs > 1 and sub is not None and _SUBCOMMAND.fullmatch(sub):
            command = name + " " + sub.decode("latin-1").upper()
            key_at = 2
        key = None
        if self._opts.capture_keys and nargs > key_at and name not in SECRET_COMMANDS:
            raw = parts[key_at]
            if raw is not None:
                key = raw.decode("utf-8", "replace")
        replied = True
        if command == "CLIENT REPLY":
            mode = _name(parts[2])
            if mode == "OFF":
                self._reply_off = True
                replied = False
            elif mode == "SKIP":
                self._skip_next = True
                replied = False
            elif mode == "ON":
                self._reply_off = False
                self._skip_next = False
        elif self._reply_off:
            replied = False
        elif self._skip_next:
            self._skip_next = False
            replied = False
        flags = c.flags | self._midstream
        self._midstream = 0
        msg: Message | None
        if replied:
            confirm = _SUBSCRIBES.get(name, b"")
            # replies owed if it is not tracked: one, or one confirmation per channel named (or, without
            # channels, per subscription held)
            answers = (nargs - 1 or max(1, sum(self._subs))) if confirm else 1
            if self._expect.push(_Expect(name, confirm, nargs - 1, c.start), answers):
                msg = Request(c.start, ts, c.size, flags, command, nargs - 1, inline, key)
            else:
                msg = None
                self.counters["pending_overflow"] = self.counters.get("pending_overflow", 0) + 1
        else:
            msg = UnrepliedRequest(c.start, ts, c.size, flags, command, nargs - 1, inline, key)
        if name == "RESET":
            self._reply_off = self._skip_next = False
        if msg is not None:
            out.append(msg)
        c.start = -1
        c.size = 0
        c.flags = 0
        parts[0] = parts[1] = parts[2] = None

    # -- server side -------------------------------------------------------------------------------------
    def _server(self, data: memoryview, ts: int, out: list[Message]) -> None:
        s = self._s
        if not s.synced and not self._server_synced(data, ts):
            return
        pos = 0
        if s.skip:
            pos = _skip_rest(s, data)
            if pos < 0:
                return
            self._bulk_done(s, ts, out)
            if pos >= len(data):
                return
        b = data[pos:].tobytes() if pos else data.tobytes()
        n = len(b)
        pos = 0
        while pos < n:
            if s.start < 0:
                s.start = ts
                if not s.buf:
                    p = self._whole_reply(s, b, pos, n, ts, out)
                    if p >= 0:
                        pos = p
                        continue
            j = b.find(b"\n", pos)
            if j < 0:
                if len(s.buf) + n - pos > MAX_LINE:
                    raise DecodeError("line too long")
                s.buf += b[pos:]
                return
            if s.buf:
                line = bytes(s.buf) + b[pos : j + 1]
                s.buf.clear()
            else:
                line = b[pos : j + 1]
            pos = self._line(s, line, b, j + 1, n, ts, out)
            if pos < 0:
                return

    # The helpers of _server return the position after what they consumed, or -1 when the rest of the
    # segment is consumed (a bulk string or chunk that goes on in the next one).
    def _server_synced(self, data: memoryview, ts: int) -> bool:
        """Joined or lost: a reply can only be trusted to start at a segment sent after a command."""
        s = self._s
        head = self._expect.peek()
        if head is None or head.start > ts or data[0] not in _SERVER_TYPES:
            return False
        s.synced = True
        s.flags |= Flag.MIDSTREAM
        return True

    def _whole_reply(self, s: _Server, b: bytes, pos: int, n: int, ts: int, out: list[Message]) -> int:
        """The common case, a simple reply or a bulk string wholly in this segment; -1 when it is not."""
        t = b[pos]
        if not (t == _PLUS or t == _COLON or t == _MINUS or t == _DOLLAR):
            return -1
        j = b.find(b"\r\n", pos)
        if j <= pos or b.find(b"\n", pos, j) >= 0:
            return -1
        if t != _DOLLAR:
            if t != _COLON:
                s.parts[0] = b[pos + 1 : min(j, pos + 1 + MAX_ERROR)]
            s.top = t
            s.size = j + 2 - pos
            self._reply_complete(s, ts, out)
            return j + 2
        try:
            blen = int(b[pos + 1 : j])
        except ValueError:
            return -1
        end = j + 2 + blen
        if blen < 0 or end + 2 > n or b[end : end + 2] != b"\r\n":
            return -1
        s.top = t
        s.size = end + 2 - pos
        self._reply_complete(s, ts, out)
        return end + 2

    def _line(self, s: _Server, line: bytes, b: bytes, pos: int, n: int, ts: int, out: list[Message]) -> int:
        """One RESP line (what follows it, for bulk strings, from `b` at `pos`)."""
        s.size += len(line)
        if len(line) < 3 or line[-2] != _CR:
            raise DecodeError("line without CRLF")
        t = line[0]
        stack = s.stack
        depth = len(stack)
        if s.sstream:  # chunks of a streamed string: ;N\r\n<N bytes>\r\n ... ;0\r\n
            return self._chunk(s, line, pos, n, ts, out)
        if not depth and t != _PIPE:
            s.top = t
        if t in _BULK_TYPES:
            return self._bulk(s, line, b, pos, n, ts, out)
        if t in _LINE_TYPES:
            if depth == 1 and s.idx < 3 and stack[0] < _ATTR:
                s.parts[s.idx] = line[1:-2] if t != 0x5F else None  # "_": a RESP3 null
            elif not depth and (t == _MINUS or t == _PLUS):
                s.parts[0] = line[1 : min(len(line) - 2, MAX_ERROR + 1)]
        elif t in _AGGR_TYPES or t == 0x25 or t == _PIPE:  # * ~ > % |
            if not self._aggregate(s, line, t, depth):
                return pos
        elif t == _DOT and depth and stack[-1] == _STREAM:
            stack.pop()
            if not depth - 1:
                s.count = s.idx
        else:
            raise DecodeError("bad type byte", chr(t))
        if self._up(s):
            self._reply_complete(s, ts, out)
        return pos

    def _chunk(self, s: _Server, line: bytes, pos: int, n: int, ts: int, out: list[Message]) -> int:
        """A chunk header of a streamed string (`;N`), and its bytes when they are in this segment."""
        if line[0] != _SEMI:
            raise DecodeError("bad streamed string chunk")
        clen = _int(line[1:-2], "chunk length")
        if clen < 0 or clen > MAX_BULK:
            raise DecodeError("bad chunk length")
        if clen == 0:
            s.sstream = False
            if self._up(s):
                self._reply_complete(s, ts, out)
            return pos
        end = pos + clen + 2
        if end <= n:
            s.size += clen + 2
            return end
        s.skip = end - n
        s.size += n - pos
        s.want = 0
        s.capidx = -2  # a chunk, not an element: its end continues the stream
        return -1

    def _bulk(self, s: _Server, line: bytes, b: bytes, pos: int, n: int, ts: int, out: list[Message]) -> int:
        """A bulk string's length line (`$N`, `!N`, `=N`), and its bytes when they are in this segment."""
        if line[1] == 0x3F:  # "$?": a streamed string
            s.sstream = True
            return pos
        stack = s.stack
        depth = len(stack)
        blen = _int(line[1:-2], "bulk length")
        if blen < 0:
            if blen != -1:
                raise DecodeError("bad bulk length")
            if not depth:
                s.top = ord("_")  # the RESP2 null bulk string
            if self._up(s):
                self._reply_complete(s, ts, out)
            return pos
        if blen > MAX_BULK:
            raise DecodeError("bad bulk length")
        capidx = s.idx if depth == 1 and s.idx < 3 and stack[0] < _ATTR else -1
        if not depth and line[0] == _BANG:
            capidx = 0  # a blob error: keep its text
        end = pos + blen
        if end + 2 > n:
            _skip_from(s, b, pos, blen, capidx, MAX_ERROR)
            return -1
        if capidx >= 0:
            s.parts[capidx] = b[pos : pos + min(blen, MAX_ERROR)]
        if b[end : end + 2] != b"\r\n":
            raise DecodeError("bulk string not followed by CRLF")
        s.size += blen + 2
        if self._up(s):
            self._reply_complete(s, ts, out)
        return end + 2

    def _aggregate(self, s: _Server, line: bytes, t: int, depth: int) -> bool:
        """An aggregate's header (`*N ~N >N %N |N`, or `*?` streamed); True when it completed an element
        (a null or empty aggregate), False when its elements follow."""
        stack = s.stack
        if line[1] == 0x3F:  # "*?": streamed aggregate
            if depth >= MAX_DEPTH:
                raise DecodeError("aggregates nested too deep")
            stack.append(_STREAM)
            return False
        count = _int(line[1:-2], "aggregate length")
        if count < 0:
            if count != -1 or t != _STAR:
                raise DecodeError("bad aggregate length")
            if not depth:
                s.top = ord("_")  # the RESP2 null array
            return True
        if count > MAX_ELEMENTS:
            raise DecodeError("bad aggregate length")
        if not depth and t != _PIPE:
            s.count = count
        items = count * 2 if t == 0x25 or t == _PIPE else count
        if not items:
            return t != _PIPE  # an empty attribute is not an element of what holds it
        if depth >= MAX_DEPTH:
            raise DecodeError("aggregates nested too deep")
        stack.append(items + _ATTR if t == _PIPE else items)
        return False

    def _bulk_done(self, s: _Server, ts: int, out: list[Message]) -> None:
        """A bulk string (or streamed-string chunk) that spanned segments is complete."""
        if s.capidx == -2:  # a streamed-string chunk: the stream goes on
            s.capidx = -1
            return
        if s.capidx >= 0:
            s.parts[s.capidx] = bytes(s.cap)
            s.capidx = -1
        s.want = 0
        if self._up(s):
            self._reply_complete(s, ts, out)

    @staticmethod
    def _up(s: _Server) -> bool:
        """An element completed: pop finished aggregates; True when the top-level value is complete."""
        stack = s.stack
        while stack:
            r = stack[-1]
            if r == _STREAM:
                if len(stack) == 1:
                    s.idx += 1
                return False
            if r > _ATTR:
                r -= 1
                if r > _ATTR:
                    stack[-1] = r
                    return False
                stack.pop()  # an attribute ended: it is not an element of what holds it
                if not stack:
                    s.idx = 0
                    s.parts[0] = s.parts[1] = s.parts[2] = None
                return False
            if len(stack) == 1:
                s.idx += 1
            r -= 1
            if r:
                stack[-1] = r
                return False
            stack.pop()
        return s.top >= 0

    def _reply_complete(self, s: _Server, ts: int, out: list[Message]) -> None:
        top = s.top
        parts = s.parts
        kind = parts[0].lower() if parts[0] is not None and (top == _STAR or top == _PUSH) else b""
        expect = self._expect
        head = expect.peek()
        run = expect.untracked_due() if head is None else None
        idle = head is None and run is None  # no answer is expected: what comes is unasked
        count = s.count
        if kind:
            if run is not None and kind in _CONFIRMS and count == 3:
                self._drop_reply(s)  # a confirmation owed to an untracked (un)subscribe
                return
            if head is not None and head.confirm and kind == head.confirm and count == 3:
                self._confirmation(s, head, kind, ts, out)
                self._reset_reply(s)
                return
            if top == _PUSH or (
                top == _STAR
                and count is not None
                and count >= 3
                and (
                    (kind in _DELIVERIES and (self._subscribed() or idle))
                    or (kind in _CONFIRMS and idle and count == 3)
                )
            ):
                if kind in _CONFIRMS:
                    self._track(kind, parts[1], parts[2])
                self._push(s, kind.decode("latin-1"), ts, out)
                return
        if (
            self._monitor
            and top == _PLUS
            and parts[0] is not None
            and parts[0][:1].isdigit()
            and b" [" in parts[0]
        ):
            self._push(s, "monitor", ts, out)
            return
        if run is not None:
            self._drop_reply(s)
            return
        if head is not None:
            expect.popleft()
            if head.command == "MONITOR" and top == _PLUS:
                self._monitor = True
            elif head.command == "RESET" and top == _PLUS:
                self._monitor = False
                self._subs = [0, 0, 0]
                self._total = 0
        prefix = message = None
        if top == _MINUS or top == _BANG:
            text = (parts[0] or b"").decode("utf-8", "replace")
            prefix, _, message = text.partition(" ")
            message = message[:MAX_ERROR]
        flags = s.flags
        if s.skip or s.stack:
            flags |= Flag.TRUNCATED
        elements = s.count if top in _AGGR_TYPES or top == 0x25 else None
        out.append(
            Response(
                s.start, ts, s.size, flags, TYPE_NAMES.get(top, "null"), elements, prefix or None, message
            )
        )
        self._reset_reply(s)

    def _drop_reply(self, s: _Server) -> None:
        """The reply is owed to a command that was not tracked (beyond MAX_PENDING): dropped, counted."""
        self._expect.drop_answer()
        self.counters["untracked_replies"] = self.counters.get("untracked_replies", 0) + 1
        self._reset_reply(s)

    def _push(self, s: _Server, kind: str, ts: int, out: list[Message]) -> None:
        out.append(Push(s.start, ts, s.size, s.flags, TYPE_NAMES.get(s.top, "array"), kind, s.count))
        self._reset_reply(s)

    @staticmethod
    def _reset_reply(s: _Server) -> None:
        s.start = -1
        s.size = 0
        s.flags = 0
        s.top = -1
        s.count = None
        s.idx = 0
        s.parts[0] = s.parts[1] = s.parts[2] = None

    # -- pub/sub -------------------------------------------------------------------------------------------
    def _subscribed(self) -> bool:
        return self._subs[0] > 0 or self._subs[1] > 0 or self._subs[2] > 0

    def _track(self, kind: bytes, channel: bytes | None, raw_count: bytes | None) -> None:
        """Follow the subscription counts the confirmations carry."""
        try:
            count = int(raw_count) if raw_count is not None else 0
        except ValueError:
            count = 0
        subs = self._subs
        if kind.startswith(_SHARD):  # ssubscribe / sunsubscribe: the count is of shard channels only
            subs[2] = max(count, 0)
            return
        slot = 1 if kind.lstrip(b"un").startswith(b"p") else 0
        if kind.startswith(b"un") or kind.startswith(b"pun"):
            if count < self._total and subs[slot] > 0:
                subs[slot] -= 1
            if count == 0:
                subs[0] = subs[1] = 0
        elif count > self._total:
            subs[slot] += 1
        self._total = count

    def _confirmation(self, s: _Server, head: _Expect, kind: bytes, ts: int, out: list[Message]) -> None:
        self._track(kind, s.parts[1], s.parts[2])
        conf = self._conf
        if conf is None:
            conf = (s.start, 0, 0, 0)
        self._conf = (conf[0], conf[1] + s.size, conf[2] | s.flags, conf[3] + 1)
        replies = self._conf[3]
        if head.count:
            done = replies >= head.count
        else:  # "all": until the server says there is nothing left of that kind
            slot = 2 if kind.startswith(_SHARD) else (1 if kind.startswith(b"pun") else 0)
            done = s.parts[1] is None or self._subs[slot] == 0 or not kind.startswith((b"un", b"pun", b"sun"))
        if done:
            self._emit_confirmations(ts, out)

    def _emit_confirmations(self, ts: int, out: list[Message]) -> None:
        conf = self._conf
        assert conf is not None
        self._conf = None
        if self._expect.peek() is not None:
            self._expect.popleft()
        start, size, flags, replies = conf
        out.append(Response(start, ts, size, flags, "array", 3, None, None, replies))

    # -- synchronisation -----------------------------------------------------------------------------------
    def _lose_server(self, ts: int, out: list[Message]) -> None:
        """Server framing is lost (or cannot be trusted): give up pending replies, resync later."""
        self._s = _Server(False)
        self._s.flags = Flag.GAP
        self._expect.clear()
        self._conf = None
        out.append(SyncLost(start_ns=ts, end_ns=ts, size=0, flags=0, direction=Direction.S2C))


def new_decoder(ctx: DecoderContext) -> RedisDecoder:
    """Registry factory."""
    return RedisDecoder(ctx)
