"""MySQL / MariaDB decoder (client/server protocol, both directions of one connection).

Theory of operation
-------------------
Both directions are cut into packets by their 4-byte headers; a payload of 0xFFFFFF bytes continues in the
next packet, and such pieces are joined into one logical packet (only its size is counted: payloads are
never buffered beyond the few bytes a record needs). Responses can only be framed with their command in
hand, so the decoder keeps the commands waiting for an answer (FIFO) and follows each response with a
small state machine:

    first packet ── 0x00 OK ─────────────────────────────── done     (COM_STMT_PREPARE: PREPARE_OK, then
                 ├─ 0xFF ERR ────────────────────────────── done      params + columns definitions)
                 ├─ 0xFB LOCAL INFILE: the client sends the file, an empty packet ends it; then OK/ERR
                 └─ column count ─ column definitions ─ [EOF] ─ rows ─ EOF/OK (0xFE) or ERR
                                                          SERVER_MORE_RESULTS_EXISTS → next result set

The end of the column definitions needs no capability flag: a classic EOF is exactly 5 bytes, the
CLIENT_DEPRECATE_EOF terminator (an OK packet with a 0xFE header) at least 7, and a row starting with
0xFE would be at least 16 MiB long. Rows are counted, text and binary alike (binary rows start 0x00,
which is why an OK-looking row never ends a result set here). A cursor (SERVER_STATUS_CURSOR_EXISTS on
the EOF) ends the COM_STMT_EXECUTE answer; COM_STMT_FETCH answers are rows and a terminator. The only
ambiguity left — whether an EOF follows a PREPARE_OK's definitions — is settled by the negotiated
capabilities, or, when the connection was joined mid-stream, by the next packet's sequence id.

Connection phase: the greeting (version, connection id, capabilities), the login (user, database, auth
plugin, `_client_name`; never the auth data), auth switch / more-data exchanges, up to OK or ERR: one
`handshake` record. An SSLRequest marks the connection encrypted and stops decoding (counted). The
compressed protocol, when negotiated, is unwrapped (zlib, streamed with a bounded output window) before
packet framing; zstd compression is reported in the handshake and decoding stops (counted:
`unsupported_compression`).

Statements: COM_QUERY and COM_STMT_PREPARE text (capped; query attributes skipped); COM_STMT_EXECUTE and
the other statement commands show the text their statement id was prepared with (bounded map, misses
counted). COM_QUIT, COM_STMT_CLOSE and COM_STMT_SEND_LONG_DATA get no answer: `oneway` records.

Resynchronisation (joined mid-stream, after a gap or a reset): the client side looks for a packet with
sequence id 0, a command byte, and a length that ends with the segment; the server side then waits for a
segment that starts with a sequence-id-1 packet after a command was seen. Nothing is paired across a
point where framing was lost. Joined mid-stream, a client segment that starts a compressed frame (its
inner packet a command) shows that compression was negotiated before the capture: both sides unwrap
frames from there. A gap among the rows of a result set keeps the answer: whole segments are skipped
until one ends with the result set's terminator, and the record is flagged `gap`.

Pipelining deeper than MAX_PENDING (protocols/base.py): the commands beyond it are not tracked (no
record, counted) but keep their command byte, so that their answers are framed and dropped, never paired
with a later command.

Wire format (dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_packets.html):

    packet      int<3> payload_length | int<1> sequence_id | payload
    compressed  int<3> compressed_length | int<1> sequence_id | int<3> uncompressed_length (0: stored)
                | payload (zlib)
    lenenc int  < 0xFB: the value | 0xFC int<2> | 0xFD int<3> | 0xFE int<8>   (0xFB: NULL)
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable, Sequence
from enum import IntEnum
from typing import Final

from packetd.protocols.base import (
    MAX_PENDING,
    NO_MESSAGES,
    DecodeError,
    DecoderContext,
    Direction,
    Flag,
    Message,
    StopDecoding,
    SyncLost,
)
from packetd.protocols.mysql.messages import (
    COMMANDS,
    Command,
    Login,
    LoginResult,
    OnewayCommand,
    Result,
    ServerError,
)
from packetd.protocols.mysql.options import MysqlOptions
from packetd.protocols.mysql.phases import SIDES, Conn, Event, Phase, step
from packetd.protocols.pending import PendingQueue

MAX_PAYLOAD: Final = 0xFFFFFF  # a payload of this length continues in the next packet
MAX_ERROR: Final = 256  # characters kept of an error message
# commands beyond MAX_PENDING in flight are not tracked but keep their command byte (framing their answers
# needs it), one byte each; this many of them and the connection is given up (counted)
MAX_UNTRACKED: Final = 16 * MAX_PENDING
MAX_STATEMENTS: Final = 256  # prepared statements remembered per connection (id → text)
MAX_LOGIN: Final = 4096  # bytes kept of a login request (user, database, plugin, connection attributes)
MAX_SERVER_KEEP: Final = 1040  # bytes kept of a server packet: an ERR with 256 four-byte characters
ATTR_MARGIN: Final = 4096  # bytes of query attributes kept in front of a COM_QUERY's text
MAX_SYNC_TRIES: Final = 512  # candidate packet headers tried per segment while resynchronising
INFLATE_WINDOW: Final = 256 * 1024  # bytes inflated at a time from a compressed frame

# capability flags (include/mysql_com.h)
CLIENT_CONNECT_WITH_DB: Final = 1 << 3
CLIENT_COMPRESS: Final = 1 << 5
CLIENT_PROTOCOL_41: Final = 1 << 9
CLIENT_SSL: Final = 1 << 11
CLIENT_SECURE_CONNECTION: Final = 1 << 15
CLIENT_PLUGIN_AUTH: Final = 1 << 19
CLIENT_CONNECT_ATTRS: Final = 1 << 20
CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA: Final = 1 << 21
CLIENT_DEPRECATE_EOF: Final = 1 << 24
CLIENT_ZSTD_COMPRESSION: Final = 1 << 26
CLIENT_QUERY_ATTRIBUTES: Final = 1 << 27
SERVER_MORE_RESULTS_EXISTS: Final = 0x0008
SERVER_STATUS_CURSOR_EXISTS: Final = 0x0040

COM_QUIT, COM_INIT_DB, COM_QUERY, COM_FIELD_LIST = 0x01, 0x02, 0x03, 0x04
COM_STATISTICS, COM_CHANGE_USER, COM_BINLOG_DUMP = 0x09, 0x11, 0x12
COM_STMT_PREPARE, COM_STMT_EXECUTE, COM_STMT_SEND_LONG_DATA, COM_STMT_CLOSE = 0x16, 0x17, 0x18, 0x19
COM_STMT_RESET, COM_STMT_FETCH, COM_BINLOG_DUMP_GTID, COM_STMT_BULK_EXECUTE = 0x1A, 0x1C, 0x1E, 0xFA
_NO_ANSWER = frozenset({COM_QUIT, COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA})
_BY_STATEMENT_ID = frozenset(
    {
        COM_STMT_EXECUTE,
        COM_STMT_SEND_LONG_DATA,
        COM_STMT_CLOSE,
        COM_STMT_RESET,
        COM_STMT_FETCH,
        COM_STMT_BULK_EXECUTE,
    }
)
_RESULT_SETS = frozenset({COM_QUERY, COM_STMT_EXECUTE, 0x0A, COM_STMT_BULK_EXECUTE})  # 0x0A: PROCESS_INFO
_STREAMS = frozenset({COM_BINLOG_DUMP, COM_BINLOG_DUMP_GTID})

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_HEADER = struct.Struct("<I")
# a client packet that could start a command: any length, sequence id 0, a command byte
_COMMAND_HEAD = re.compile(rb"(?s)(?=...\x00[\x01-\x20\xfa])")
# a server greeting: sequence id 0, protocol 10, a printable version string
_GREETING = re.compile(rb"(?s)...\x00\x0a[\x20-\x7e]{1,64}\x00")
# binary-protocol value sizes by field type (query attributes): 0 = length-encoded, -1 = length byte + bytes
_TYPE_SIZES = {1: 1, 2: 2, 3: 4, 4: 4, 5: 8, 6: 0, 8: 8, 9: 4, 13: 2, 7: -1, 10: -1, 11: -1, 12: -1}


class R(IntEnum):
    """Where the answer to the oldest pending command stands."""

    FIRST = 0
    DEFS = 1  # column definitions of a result set
    AFTER_DEFS = 2  # classic EOF, or the first row, or the terminator
    ROWS = 3
    PREP_DEFS = 4  # PREPARE_OK's parameter / column definitions
    PREP_EOF = 5  # maybe an EOF after them
    FIELDS = 6  # COM_FIELD_LIST definitions
    INFILE = 7  # LOCAL INFILE: waiting for the client's file, then OK / ERR
    AUTH = 8  # COM_CHANGE_USER: auth exchange
    STREAM = 9  # binlog events until EOF / ERR


_SCANNED = frozenset({R.DEFS, R.AFTER_DEFS, R.ROWS})  # answer states _scan_rows frames on its own


class _Cmd:
    __slots__ = ("code", "start", "statement", "stmt_id", "truncated")

    def __init__(self, code: int, start: int) -> None:
        self.code = code
        self.start = start
        self.statement: bytes | None = None
        self.truncated = False
        self.stmt_id: int | None = None


class _Side:
    """One direction's packet framing (and compressed-frame unwrapping)."""

    __slots__ = (
        "body",
        "comp",
        "cont",
        "first_len",
        "flags",
        "hdr",
        "keep",
        "left",
        "seq",
        "size",
        "start",
        "synced",
        "z",
        "zhdr",
        "zleft",
        "zlen",
        "zout",
    )

    def __init__(self, synced: bool) -> None:
        self.synced = synced
        self.hdr = bytearray()  # a packet header split across segments
        self.left = -1  # payload bytes of the current physical packet still to come (-1: header next)
        self.keep = 0
        self.body = bytearray()
        self.seq = 0  # sequence id of the logical packet's first piece
        self.first_len = 0  # payload length of its first piece
        self.cont = False  # the current piece is 0xFFFFFF long: another follows
        self.size = 0
        self.start = -1
        self.flags = 0
        self.comp = False  # the compressed protocol is on
        self.z: zlib._Decompress | None = None  # the current frame's inflater (None: a stored frame)
        self.zhdr = bytearray()
        self.zleft = 0  # compressed bytes of the current frame still to come
        self.zlen = 0  # its uncompressed length (0: stored)
        self.zout = 0  # bytes it produced so far


class _Hs:
    """The connection phase, from greeting to OK / ERR."""

    __slots__ = (
        "attrs_name",
        "auth_plugin",
        "caps",
        "conn_id",
        "database",
        "end",
        "final_plugin",
        "flags",
        "r_size",
        "r_start",
        "server_caps",
        "server_plugin",
        "size",
        "start",
        "user",
        "version",
    )

    def __init__(self) -> None:
        self.version: str | None = None
        self.conn_id: int | None = None
        self.server_caps = 0
        self.caps = 0
        self.user: str | None = None
        self.database: str | None = None
        self.auth_plugin: str | None = None
        self.final_plugin: str | None = None  # switched to by an AuthSwitchRequest
        self.server_plugin: str | None = None  # the greeting's default
        self.attrs_name: str | None = None
        self.start = -1
        self.end = -1
        self.size = 0
        self.flags = 0
        self.r_start = -1
        self.r_size = 0


def _lenenc(b: bytes, pos: int) -> tuple[int, int]:
    """A length-encoded integer at `pos`: (value, next position); NULL (0xFB) reads as 0."""
    if pos >= len(b):
        raise DecodeError("truncated length-encoded integer")
    first = b[pos]
    if first < 0xFB:
        return first, pos + 1
    if first == 0xFC:
        return int.from_bytes(b[pos + 1 : pos + 3], "little"), pos + 3
    if first == 0xFD:
        return int.from_bytes(b[pos + 1 : pos + 4], "little"), pos + 4
    if first == 0xFE:
        return int.from_bytes(b[pos + 1 : pos + 9], "little"), pos + 9
    if first == 0xFB:
        return 0, pos + 1
    raise DecodeError("bad length-encoded integer")


def _terminator_at_end(b: bytes, caps: int | None) -> int:
    """Where the packet that ends a result set starts, when `b` ends with one; -1 otherwise. Classic EOF:
    length 5, 0xFE, warnings, status; with CLIENT_DEPRECATE_EOF an OK packet with a 0xFE header (length
    7 or more: two length-encoded integers, status, warnings, maybe info). Unknown capabilities: both."""
    n = len(b)
    if caps is None or not caps & CLIENT_DEPRECATE_EOF:
        if n >= 9 and b[n - 9 : n - 6] == b"\x05\x00\x00" and b[n - 5] == 0xFE:
            return n - 9
    if caps is None or caps & CLIENT_DEPRECATE_EOF:
        for plen in range(7, 64):  # affected rows, insert id (small here), status, warnings, short info
            at = n - 4 - plen
            if at < 0:
                break
            if int.from_bytes(b[at : at + 3], "little") == plen and b[at + 4] == 0xFE:
                try:
                    _, pos = _lenenc(b, at + 5)
                    _, pos = _lenenc(b, pos)
                except DecodeError:
                    continue
                if pos + 4 <= n:
                    return at
    return -1


def _frame_start(b: bytes, client: bool) -> bool:
    """Does `b` start with a compressed-protocol frame whose first inner packet begins a command (client:
    sequence id 0 and a command byte) or an answer (server: sequence id 1)? Used only when the login that
    negotiated compression was not seen. A plain packet cannot pass: read as a frame, its uncompressed
    length would be its command byte and two payload bytes (0 only for COM_SLEEP, which no client sends),
    and a zlib stream must follow (0x78 and a header checksum) and inflate to that packet header. An inner
    packet may run on into the next frame (they straddle), so only its header is checked."""
    if len(b) < 8:
        return False
    clen = int.from_bytes(b[0:3], "little")
    ulen = int.from_bytes(b[4:7], "little")
    if not clen:
        return False
    if ulen == 0:
        inner = b[7 : 7 + min(clen, 5)]
    else:
        if len(b) < 9 or b[7] != 0x78 or ((b[7] << 8) | b[8]) % 31:
            return False
        try:
            inner = zlib.decompressobj().decompress(b[7 : 7 + clen], 5)
        except zlib.error:
            return False
    if client:
        return len(inner) >= 5 and inner[3] == 0 and inner[4] != 0 and inner[4] in COMMANDS
    if len(inner) >= 4:
        return inner[3] == 1
    # too little of the frame to see the packet header (a frame shorter than one, or a deflate block whose
    # Huffman tables run past the segment): nothing contradicts it; the server side is only gated by this
    # once the client showed that the connection is compressed
    return len(b) < 7 + clen or len(inner) == (ulen or clen)


def _cstr(b: bytes, pos: int) -> tuple[bytes, int]:
    end = b.find(b"\x00", pos)
    if end < 0:
        return b[pos:], len(b)
    return b[pos:end], end + 1


def _text(raw: bytes, limit: int = 256) -> str:
    return raw[:limit].decode("utf-8", "replace")


def _err(body: bytes) -> tuple[int, str | None, str]:
    """ERR packet → (code, SQLSTATE, message)."""
    code = _U16.unpack_from(body, 1)[0] if len(body) >= 3 else 0
    if body[3:4] == b"#":
        state: str | None = body[4:9].decode("ascii", "replace")
        message = body[9:]
    else:
        state, message = None, body[3:]
    return code, state, message[: MAX_ERROR * 4].decode("utf-8", "replace")[:MAX_ERROR]


def _ok(body: bytes) -> tuple[int, int, int, int]:
    """OK packet (0x00 or 0xFE header) → (affected rows, last insert id, status flags, warnings)."""
    affected, pos = _lenenc(body, 1)
    insert_id, pos = _lenenc(body, pos)
    status = _U16.unpack_from(body, pos)[0] if len(body) >= pos + 2 else 0
    warnings = _U16.unpack_from(body, pos + 2)[0] if len(body) >= pos + 4 else 0
    return affected, insert_id, status, warnings


class MysqlDecoder:
    """Decoder for one MySQL / MariaDB connection (see module docstring)."""

    def __init__(self, ctx: DecoderContext | None = None) -> None:
        ctx = ctx or DecoderContext()
        self._opts: MysqlOptions = ctx.options if isinstance(ctx.options, MysqlOptions) else MysqlOptions()
        self._cap = max(self._opts.max_statement, 0)
        midstream = ctx.midstream
        self._c = _Side(not midstream)
        self._s = _Side(not midstream)
        # the connection's phase (phases.py: every transition is in its table); the per-direction phases
        # are read on every packet, so they are kept as attributes, set only by _go
        self._conn = Conn.COMMAND if midstream else Conn.GREETING
        self._cphase, self._sphase = SIDES[self._conn]
        self._midstream = Flag.MIDSTREAM if midstream else 0
        self._hs: _Hs | None = None if midstream else _Hs()
        self._caps: int | None = None  # negotiated capabilities (None: joined mid-stream, unknown)
        # commands waiting for an answer; beyond MAX_PENDING not tracked (no record, counted
        # `pending_overflow`) and their answers framed by their command byte and dropped (`untracked_replies`)
        self._pending: PendingQueue[_Cmd] = PendingQueue(MAX_PENDING)
        self._ghost: _Cmd | None = None  # the untracked command whose answer is being framed
        self._gap_rows = False  # bytes were lost inside a result set's rows: looking for its terminator
        self._statements: dict[int, tuple[bytes | None, bool]] = {}
        # events counted, not recorded: straight into the protocol's counters when the session gives them
        self.counters: dict[str, int] = ctx.counters if ctx.counters is not None else {}
        self._reset_answer()

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def _reset_answer(self) -> None:
        self._r = R.FIRST
        self._r_start = -1
        self._r_size = 0
        self._r_flags = 0
        self._r_seq = 0
        self._r_columns: int | None = None
        self._r_rows = 0
        self._r_sets = 0
        self._r_left = 0  # definitions still to come
        self._r_prep: tuple[int, int, int] | None = None  # (statement id, columns, params) of a PREPARE_OK
        self._r_prep_cols = 0  # column definitions still to come after the parameters
        self._r_infile = 0
        self._r_results = 0  # results completed in a multi-result answer (result sets and OKs)
        self._r_end = 0

    # -- the Decoder interface ---------------------------------------------------------------------------
    def receive(self, direction: Direction, data: memoryview, ts_ns: int) -> Sequence[Message]:
        if not data:
            return NO_MESSAGES
        out: list[Message] = []
        try:
            self._receive(direction, data, ts_ns, out)
        except DecodeError as exc:
            exc.messages = out  # what was complete before the garbage is not lost with the reset
            raise
        return out

    def _receive(self, direction: Direction, data: memoryview, ts_ns: int, out: list[Message]) -> None:
        client = direction is Direction.C2S
        if (self._cphase if client else self._sphase) is Phase.DEAD:
            return
        s = self._c if client else self._s
        b = data.tobytes()
        if self._gap_rows:
            if not client:
                self._seek_end(b, ts_ns, out)
                return
            # a new command while the end of the gapped result set was never found: it was lost too
            out.extend(self._give_up_gap(ts_ns))
        if (
            client
            and self._caps is None
            and not s.comp
            and s.synced
            and s.left < 0
            and not s.hdr
            and _frame_start(b, True)
        ):
            # joined mid-stream and synced on plain packets, but this segment starts a compressed frame: what
            # was taken for packets were frames (a stored frame reads as COM_SLEEP); start again, compressed
            out += self._lose_for_compression(ts_ns)
            s = self._c
        if s.comp:
            if not s.synced and not s.zleft and not s.zhdr:
                # joined mid-stream: an answer is trusted to start with a segment that starts a frame, after
                # a command was seen (as for plain packets, see _resync)
                if not _frame_start(b, client) or (not client and self._head_start() > ts_ns):
                    return
                if not client:
                    s.synced = True
                    s.flags |= Flag.MIDSTREAM
            self._unwrap(s, b, ts_ns, out, client)
            return
        pos = self._packets(s, b, 0, ts_ns, out, client, False)
        if pos < len(b) and self._compressed(s) and not self._dead(client):
            self._unwrap(s, b[pos:], ts_ns, out, client)  # compression began inside this segment

    def receive_gap(self, direction: Direction, nbytes: int, ts_ns: int) -> Sequence[Message]:
        client = direction is Direction.C2S
        s = self._c if client else self._s
        if not s.comp and s.left >= nbytes and len(s.body) >= s.keep:
            s.left -= nbytes  # inside a payload whose kept prefix is complete: framing survives
            s.flags |= Flag.GAP
            out: list[Message] = []
            if not s.left:
                s.left = -1
                if not s.cont:
                    self._dispatch(s, ts_ns, out, client)
            return out
        if not client and (self._gap_rows or self._rows_gap_survivable()):
            # lost inside the rows of a result set: only rows are lost; the answer ends with a terminator
            # that a later segment ends with (the client sends nothing until it has it)
            seen = len(s.hdr) if s.left < 0 else s.size - s.left  # bytes of the packet the gap cut
            self._gap_rows = True
            self._r_flags |= Flag.GAP
            self._r_size += nbytes + seen
            self._s = _Side(True)
            return NO_MESSAGES
        lost: list[Message] = [SyncLost(start_ns=ts_ns, end_ns=ts_ns, size=0, flags=0, direction=direction)]
        if client:
            lost.append(SyncLost(start_ns=ts_ns, end_ns=ts_ns, size=0, flags=0, direction=Direction.S2C))
        compressed = self._c.comp
        self._c, self._s = _Side(False), _Side(False)
        self._c.flags = self._s.flags = Flag.GAP
        self._pending.clear()
        self._ghost = None
        self._reset_answer()
        if compressed or self._hs is not None:
            self._go(Event.GAVE_UP)  # compressed framing cannot be found again
            self._count("gave_up_after_gap")
        else:
            self._go(Event.SYNC_LOST)
        return lost

    def receive_eof(self, direction: Direction, ts_ns: int) -> Sequence[Message]:
        if direction is Direction.C2S:
            return NO_MESSAGES
        out: list[Message] = []
        hs = self._hs
        if hs is not None and hs.start >= 0:
            self._hs = None
            out.append(self._login(hs))  # the login never completed: unanswered at close
        if self._pending and self._r is not R.FIRST and self._r_columns is not None:
            self._finish(ts_ns, out, "result_set", flags=Flag.TRUNCATED)  # cut off inside a result set
        return out

    @staticmethod
    def _compressed(s: _Side) -> bool:
        """`s.comp` read anew: _packets may have turned it on (mypy would take the earlier test as final)."""
        return s.comp

    def _dead(self, client: bool) -> bool:
        return (self._cphase if client else self._sphase) is Phase.DEAD

    # -- framing ---------------------------------------------------------------------------------------------
    def _packets(
        self, s: _Side, b: bytes, pos: int, ts: int, out: list[Message], client: bool, inner: bool
    ) -> int:
        """Frame packets in b[pos:]; returns where it stopped (early when compression begins)."""
        n = len(b)
        while pos < n:
            if s.left < 0:
                if not s.synced:
                    pos = self._resync(s, b, pos, ts, client)
                    if pos < 0:
                        return n
                    if s.comp and not inner:
                        return pos  # the compressed protocol was found: the caller unwraps frames
                    continue
                if not client and self._r in _SCANNED and not s.hdr and s.start < 0:
                    p = self._scan_rows(s, b, pos, ts)
                    if p != pos:
                        pos = p
                        continue
                if s.hdr or n - pos < 4:
                    take = 4 - len(s.hdr)
                    s.hdr += b[pos : pos + take]
                    pos += min(take, n - pos)
                    if len(s.hdr) < 4:
                        if not s.cont and s.start < 0:
                            s.start = ts
                        return n
                    (word,) = _HEADER.unpack(s.hdr)
                    s.hdr.clear()
                else:
                    (word,) = _HEADER.unpack_from(b, pos)
                    pos += 4
                plen = word & 0xFFFFFF
                if not s.cont:  # a new logical packet
                    if s.start < 0:
                        s.start = ts
                    s.seq = word >> 24
                    s.first_len = plen
                    s.size = 0
                    s.keep = self._keep(client) if plen else 0
                    s.keep = min(s.keep, plen)
                s.size += 4 + plen
                s.cont = plen == MAX_PAYLOAD
                if n - pos >= plen and not s.body and not s.cont:  # the whole packet is here
                    body = b[pos : pos + s.keep]
                    pos += plen
                    s.left = -1
                    self._handle(s, body, ts, out, client)
                    if self._dead(client) or (s.comp and not inner):
                        return pos
                    continue
                s.left = plen
            take = s.left if s.left < n - pos else n - pos
            want = s.keep - len(s.body)
            if want > 0:
                s.body += b[pos : pos + min(want, take)]
            s.left -= take
            pos += take
            if s.left:
                return n
            s.left = -1
            if s.cont:
                continue
            self._dispatch(s, ts, out, client)
            if self._dead(client) or (s.comp and not inner):
                return pos
        return n

    def _scan_rows(self, s: _Side, b: bytes, pos: int, ts: int) -> int:
        """The common case of a result set, at a fraction of the general path's cost: whole column
        definitions and rows in b[pos:] are framed by their headers and counted without slicing their
        payloads or calling the per-packet machinery. Stops (returning where) at the first packet the
        general path must see: a terminator or ERR (0xFE / 0xFF), the last definition, a packet cut by the
        segment's end or 16 MiB long. The state it leaves is exactly what the general path would have left
        after the same packets (tests/protocols/mysql/test_scan.py compares the two)."""
        if self._sphase is not Phase.COMMAND or self._ghost is not None or self._pending.peek() is None:
            return pos
        n = len(b)
        r = self._r
        left = self._r_left
        rows = size = 0
        word = -1
        unpack = _HEADER.unpack_from
        while n - pos >= 4:
            (w,) = unpack(b, pos)
            plen = w & 0xFFFFFF
            end = pos + 4 + plen
            if end > n or plen == MAX_PAYLOAD:
                break
            if r is R.ROWS:
                if plen and b[pos + 4] >= 0xFE:  # EOF / OK terminator or ERR
                    break
                rows += 1
            elif r is R.DEFS:
                if left <= 1:
                    break  # the last definition: the general path moves on
                left -= 1
            else:  # AFTER_DEFS: the classic EOF after the definitions (no cursor), or the first row
                if (
                    plen
                    and b[pos + 4] >= 0xFE
                    and (plen != 5 or b[pos + 4] != 0xFE or b[pos + 7] & SERVER_STATUS_CURSOR_EXISTS)
                ):
                    break
                if plen != 5 or b[pos + 4] != 0xFE:
                    rows += 1
                r = R.ROWS
            word = w
            size += 4 + plen
            pos = end
        if word < 0:
            return pos
        plen = word & 0xFFFFFF
        s.seq = self._r_seq = word >> 24
        s.first_len = plen
        s.size = 4 + plen
        s.keep = min(MAX_SERVER_KEEP, plen)
        s.cont = False
        if self._r_start < 0:
            self._r_start = ts
        self._r_size += size
        self._r_flags |= s.flags
        s.flags = 0
        self._r_end = ts
        self._r_rows += rows
        self._r_left = left
        self._r = r
        return pos

    def _dispatch(self, s: _Side, ts: int, out: list[Message], client: bool) -> None:
        body = bytes(s.body)
        s.body.clear()
        self._handle(s, body, ts, out, client)

    def _handle(self, s: _Side, body: bytes, ts: int, out: list[Message], client: bool) -> None:
        seq, plen, size, start, flags = s.seq, s.first_len, s.size, s.start, s.flags
        s.start = -1
        s.flags = 0
        if client:
            self._client_packet(seq, plen, body, size, start, ts, flags, out)
        else:
            self._server_packet(seq, plen, body, size, start, ts, flags, out)

    def _keep(self, client: bool) -> int:
        if client:
            phase = self._cphase
            if phase is Phase.COMMAND:
                return self._cap + ATTR_MARGIN + 16
            return MAX_LOGIN if phase is Phase.LOGIN else 0  # auth data and file contents: never kept
        return MAX_SERVER_KEEP

    def _unwrap(self, s: _Side, b: bytes, ts: int, out: list[Message], client: bool) -> None:
        """Compressed protocol: frames of (int<3> length, int<1> seq, int<3> uncompressed length)."""
        n = len(b)
        pos = 0
        while pos < n:
            if not s.zleft:
                take = 7 - len(s.zhdr)
                s.zhdr += b[pos : pos + take]
                pos += min(take, n - pos)
                if len(s.zhdr) < 7:
                    return
                h = bytes(s.zhdr)
                s.zhdr.clear()
                s.zleft = int.from_bytes(h[0:3], "little")
                s.zlen = int.from_bytes(h[4:7], "little")
                s.zout = 0
                s.z = zlib.decompressobj() if s.zlen else None
                if not s.zleft:
                    continue
            take = s.zleft if s.zleft < n - pos else n - pos
            chunk = b[pos : pos + take]
            pos += take
            s.zleft -= take
            z = s.z
            if z is None:
                self._inner(s, chunk, ts, out, client)
            else:
                try:
                    data = z.decompress(chunk, INFLATE_WINDOW)
                    while True:
                        self._inner(s, data, ts, out, client)
                        if not z.unconsumed_tail:
                            break
                        data = z.decompress(z.unconsumed_tail, INFLATE_WINDOW)
                    if not s.zleft:
                        self._inner(s, z.flush(), ts, out, client)
                except zlib.error as exc:
                    raise DecodeError("bad compressed frame", str(exc)) from None
                if not s.zleft and s.zout != s.zlen:
                    raise DecodeError("compressed frame length mismatch")
            if self._dead(client):
                return

    def _inner(self, s: _Side, data: bytes, ts: int, out: list[Message], client: bool) -> None:
        if not data:
            return
        s.zout += len(data)
        if s.zlen and s.zout > s.zlen:
            raise DecodeError("compressed frame longer than declared")
        self._packets(s, data, 0, ts, out, client, True)

    def _rows_gap_survivable(self) -> bool:
        """A server gap falls among the rows of a result set whose columns are known (plain framing)."""
        return (
            self._r is R.ROWS
            and not self._s.comp
            and self._sphase is Phase.COMMAND
            and self._pending.peek() is not None
            and self._r_columns is not None
        )

    def _seek_end(self, b: bytes, ts: int, out: list[Message]) -> None:
        """After a gap among the rows: skip (count) bytes until a segment ends with the result set's
        terminator, then frame that terminator as usual (the record keeps the rows counted before the gap,
        flagged gap)."""
        at = _terminator_at_end(b, self._caps)
        if at < 0:
            self._r_size += len(b)
            return
        self._r_size += at
        self._gap_rows = False
        self._packets(self._s, b, at, ts, out, False, False)

    def _give_up_gap(self, ts: int) -> list[Message]:
        """The gapped result set's end never came before the next command: its pairing is lost."""
        self._gap_rows = False
        self._pending.clear()
        self._ghost = None
        self._reset_answer()
        self._s = _Side(False)
        self._s.flags = Flag.GAP
        return [SyncLost(start_ns=ts, end_ns=ts, size=0, flags=0, direction=Direction.S2C)]

    def _lose_for_compression(self, ts: int) -> list[Message]:
        """The connection turned out to use the compressed protocol (joined mid-stream, so the login that
        negotiated it was not seen): what was paired so far cannot be trusted; both sides read frames now."""
        self._count("compression_detected")
        self._pending.clear()
        self._ghost = None
        self._reset_answer()
        self._c, self._s = _Side(True), _Side(False)
        self._c.comp = self._s.comp = True
        self._c.flags = Flag.MIDSTREAM
        return [
            SyncLost(start_ns=ts, end_ns=ts, size=0, flags=0, direction=Direction.C2S),
            SyncLost(start_ns=ts, end_ns=ts, size=0, flags=0, direction=Direction.S2C),
        ]

    def _resync(self, s: _Side, b: bytes, pos: int, ts: int, client: bool) -> int:
        """Where a trustworthy packet starts in b[pos:], or -1 (all of it skipped)."""
        n = len(b)
        if client and pos == 0 and self._caps is None and not s.comp and _frame_start(b, True):
            # joined mid-stream on a connection using the compressed protocol: frames, not packets
            self._count("compression_detected")
            self._c.comp = self._s.comp = True
            s.synced = True
            s.flags |= Flag.MIDSTREAM
            return 0
        if not client:
            if pos == 0 and self._hs is None and not self._pending and _GREETING.match(b):
                # joined before the greeting (the SYN was not captured): the connection phase is here
                self._hs = _Hs()
                self._go(Event.GREETING_SEEN)
                s.synced = self._c.synced = True
                self._midstream = 0
                return 0
            # a response can be trusted to start at a segment boundary, after a command was seen
            if pos == 0 and n >= 5 and self._head_start() <= ts and b[3] == 1:
                s.synced = True
                s.flags |= Flag.MIDSTREAM
                return 0
            return -1
        for tries, m in enumerate(_COMMAND_HEAD.finditer(b, pos)):
            if tries >= MAX_SYNC_TRIES:
                break
            i = m.start()
            plen = int.from_bytes(b[i : i + 3], "little")
            if plen and (
                i + 4 + plen == n
                or (b[i + 4] == COM_QUERY and i + 4 + plen > n and b[i + 5 : i + 6].isascii())
            ):
                s.synced = True
                s.flags |= Flag.MIDSTREAM
                return i
        return -1

    # -- client packets -----------------------------------------------------------------------------------
    def _client_packet(
        self, seq: int, plen: int, body: bytes, size: int, start: int, ts: int, flags: int, out: list[Message]
    ) -> None:
        phase = self._cphase
        if phase is Phase.COMMAND:
            if seq == 0:
                self._command(plen, body, size, start, ts, flags, out)
                return
            if self._pending and self._r is R.AUTH:
                return  # COM_CHANGE_USER auth data: counted in nothing, never kept
            raise DecodeError("unexpected sequence id", str(seq))
        if phase is Phase.INFILE:
            self._r_infile += plen
            if plen == 0:
                self._go(Event.INFILE_ENDED)  # the empty packet ends the file
            return
        hs = self._hs
        if hs is None:
            raise DecodeError("client packet outside any phase")
        if phase is Phase.LOGIN:
            self._login_request(hs, plen, body, size, start, ts, flags, out)
            return
        if phase is Phase.AUTH:
            hs.size += size  # auth switch response / more data: counted, never kept
            hs.end = ts
            return
        raise DecodeError("client speaks before the server greeting")

    def _login_request(
        self, hs: _Hs, plen: int, body: bytes, size: int, start: int, ts: int, flags: int, out: list[Message]
    ) -> None:
        if len(body) < 4:
            raise DecodeError("short login request")
        caps = _U32.unpack_from(body, 0)[0]
        if not caps & CLIENT_PROTOCOL_41:
            caps = _U16.unpack_from(body, 0)[0]  # HandshakeResponse320: int<2> caps, int<3> max, user
            hs.user = _text(_cstr(body, 5)[0])
        else:
            if plen == 32 and caps & CLIENT_SSL:  # SSLRequest: TLS from here on
                self._hs = None
                self._go(Event.SSL_REQUEST)
                out.append(
                    StopDecoding(start_ns=ts, end_ns=ts, size=0, flags=0, reason="tls", encrypted=True)
                )
                return
            raw_user, pos = _cstr(body, 32)
            hs.user = _text(raw_user)
            if caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA:
                n, pos = _lenenc(body, pos)
                pos += n
            elif caps & CLIENT_SECURE_CONNECTION:
                pos += 1 + (body[pos] if pos < len(body) else 0)
            else:
                pos = _cstr(body, pos)[1]
            if caps & CLIENT_CONNECT_WITH_DB and pos < len(body):
                raw_db, pos = _cstr(body, pos)
                hs.database = _text(raw_db)
            if caps & CLIENT_PLUGIN_AUTH and pos < len(body):
                raw_plugin, pos = _cstr(body, pos)
                hs.auth_plugin = _text(raw_plugin, 64)
            if caps & CLIENT_CONNECT_ATTRS and pos < len(body):
                hs.attrs_name = self._client_name(body, pos)
        hs.caps = caps
        hs.start = start
        hs.end = ts
        hs.size = size
        hs.flags = flags
        self._go(Event.HANDSHAKE_RESPONSE)

    @staticmethod
    def _client_name(body: bytes, pos: int) -> str | None:
        try:
            total, pos = _lenenc(body, pos)
            end = min(pos + total, len(body))
            while pos < end:
                klen, pos = _lenenc(body, pos)
                key = body[pos : pos + klen]
                pos += klen
                vlen, pos = _lenenc(body, pos)
                if key == b"_client_name":
                    return _text(body[pos : pos + vlen], 64)
                pos += vlen
        except DecodeError:
            return None
        return None

    def _command(
        self, plen: int, body: bytes, size: int, start: int, ts: int, flags: int, out: list[Message]
    ) -> None:
        if not body:
            raise DecodeError("empty command packet")
        code = body[0]
        name = COMMANDS.get(code)
        if name is None:
            raise DecodeError("unknown command", f"0x{code:02x}")
        cmd = _Cmd(code, start)
        schema = None
        if code == COM_QUERY:
            cmd.statement, cmd.truncated = self._query_text(body, plen)
        elif code == COM_STMT_PREPARE:
            cmd.statement, cmd.truncated = self._capped(body[1:], plen - 1)
        elif code in _BY_STATEMENT_ID and len(body) >= 5:
            cmd.stmt_id = _U32.unpack_from(body, 1)[0]
            known = self._statements.get(cmd.stmt_id)
            if known is None:
                self._count("statement_id_misses")
            else:
                cmd.statement, cmd.truncated = known
            if code == COM_STMT_CLOSE:
                self._statements.pop(cmd.stmt_id, None)
        elif code == COM_INIT_DB:
            schema = _text(body[1:], 256)
        flags |= self._midstream
        self._midstream = 0
        keep = self._opts.keep_literals
        if code in _NO_ANSWER:
            out.append(
                OnewayCommand(
                    start, ts, size, flags, name, cmd.statement, cmd.truncated, cmd.stmt_id, schema, keep
                )
            )
            return
        pending = self._pending
        if not pending.push(cmd, code=code):
            self._count("pending_overflow")  # not tracked: its answer is framed and dropped, never paired
            run = pending.tail_run()
            if run is not None and len(run.codes) > MAX_UNTRACKED:
                self._count("gave_up_pending_overflow")
                self._go(Event.GAVE_UP)
                out.append(
                    StopDecoding(start_ns=ts, end_ns=ts, size=0, flags=0, reason="mysql pipeline overflow")
                )
            return
        out.append(
            Command(start, ts, size, flags, name, cmd.statement, cmd.truncated, cmd.stmt_id, schema, keep)
        )

    def _capped(self, text: bytes, full: int) -> tuple[bytes, bool]:
        cap = self._cap
        return (text[:cap], full > cap) if len(text) > cap or full > len(text) else (text, False)

    def _query_text(self, body: bytes, plen: int) -> tuple[bytes | None, bool]:
        """COM_QUERY: the statement, after the query attributes when CLIENT_QUERY_ATTRIBUTES is on."""
        caps = self._caps
        with_attrs = caps is not None and bool(caps & CLIENT_QUERY_ATTRIBUTES)
        if caps is None and len(body) > 1 and body[1] < 0x20 and body[1] not in b"\t\n\r":
            with_attrs = True  # joined mid-stream: a text cannot start with a control byte; attributes can
        pos = 1
        if with_attrs:
            try:
                pos = self._skip_attributes(body, 1)
            except (DecodeError, IndexError, struct.error):
                return None, False
        return self._capped(body[pos:], plen - pos)

    @staticmethod
    def _skip_attributes(body: bytes, pos: int) -> int:
        count, pos = _lenenc(body, pos)
        _sets, pos = _lenenc(body, pos)
        if not count:
            return pos
        nulls = body[pos : pos + (count + 7) // 8]
        pos += (count + 7) // 8
        if body[pos] != 1:  # new_params_bind_flag: always 1 in COM_QUERY
            raise DecodeError("bad query attributes")
        pos += 1
        types = []
        for _ in range(count):
            types.append(body[pos])
            pos += 2
            nlen, pos = _lenenc(body, pos)
            pos += nlen
        for i, t in enumerate(types):
            if nulls[i // 8] & (1 << (i % 8)):
                continue
            size = _TYPE_SIZES.get(t, 0)
            if size > 0:
                pos += size
            elif size < 0:
                pos += 1 + body[pos]
            elif t != 6:
                vlen, pos = _lenenc(body, pos)
                pos += vlen
        if pos > len(body):
            raise DecodeError("query attributes longer than kept")
        return pos

    # -- server packets -----------------------------------------------------------------------------------
    def _server_packet(
        self, seq: int, plen: int, body: bytes, size: int, start: int, ts: int, flags: int, out: list[Message]
    ) -> None:
        phase = self._sphase
        if phase is Phase.COMMAND:
            self._answer(seq, plen, body, size, start, ts, flags, out)
            return
        hs = self._hs
        if hs is None:
            raise DecodeError("server packet outside any phase")
        first = body[0] if body else -1
        if phase is Phase.GREETING:
            if first == 0xFF:
                code, state, message = _err(body)
                out.append(ServerError(start, ts, size, flags, code, state, message))
                self._hs = None
                self._go(Event.GAVE_UP)
                return
            if first != 10:
                raise DecodeError("unsupported protocol version", str(first))
            self._greeting(hs, body)
            self._go(Event.GREETING)  # the login comes next
            return
        if phase is Phase.AUTH:
            if hs.start < 0:
                # an answer to a login not (yet) sent: an orphan, not garbage. An ERR here is the server
                # giving up on the connection (a handshake timeout: "Bad handshake"): a server message
                if first == 0xFF:
                    code, state, message = _err(body)
                    out.append(ServerError(start, ts, size, flags, code, state, message))
                    self._hs = None
                    self._go(Event.GAVE_UP)
                else:
                    self._count("orphan_packets")
                return
            if hs.r_start < 0:
                hs.r_start = start
            hs.r_size += size
            if first == 0x00 or first == 0xFF:
                self._login_done(hs, first, body, ts, flags, out)
            elif first == 0xFE:  # AuthSwitchRequest: plugin name, data
                hs.final_plugin = _text(_cstr(body, 1)[0], 64)
            elif first != 0x01:  # AuthMoreData
                raise DecodeError("unexpected packet during authentication", f"0x{first:02x}")
            return
        raise DecodeError("server packet before the login")

    def _greeting(self, hs: _Hs, body: bytes) -> None:
        raw, pos = _cstr(body, 1)
        hs.version = _text(raw, 64)
        if len(body) >= pos + 4:
            hs.conn_id = _U32.unpack_from(body, pos)[0]
        pos += 4 + 8 + 1
        caps = _U16.unpack_from(body, pos)[0] if len(body) >= pos + 2 else 0
        pos += 2 + 1 + 2
        if len(body) >= pos + 2:
            caps |= _U16.unpack_from(body, pos)[0] << 16
        hs.server_caps = caps
        pos += 2
        data_len = body[pos] if pos < len(body) else 0
        pos += 1 + 10
        if caps & CLIENT_PLUGIN_AUTH:
            pos += max(13, data_len - 8)
            hs.server_plugin = _text(_cstr(body, pos)[0], 64) if pos < len(body) else None

    def _login(self, hs: _Hs) -> Login:
        return Login(
            hs.start, hs.end, hs.size, hs.flags, hs.user, hs.database, hs.auth_plugin, hs.attrs_name,
            bool(hs.caps & (CLIENT_COMPRESS | CLIENT_ZSTD_COMPRESSION)), hs.caps,
        )  # fmt: skip

    def _login_done(self, hs: _Hs, first: int, body: bytes, ts: int, flags: int, out: list[Message]) -> None:
        self._hs = None
        caps = hs.caps & (hs.server_caps or hs.caps)
        self._caps = caps
        compression = None
        if first == 0x00:
            if caps & CLIENT_ZSTD_COMPRESSION:
                compression = "zstd"
            elif caps & CLIENT_COMPRESS:
                compression = "zlib"
            code = state = message = None
        else:
            code, state, message = _err(body)
        out.append(self._login(hs))
        out.append(
            LoginResult(
                hs.r_start, ts, hs.r_size, flags, hs.version, hs.conn_id,
                hs.final_plugin or hs.auth_plugin or hs.server_plugin,
                compression, code, state, message,
            )
        )  # fmt: skip
        self._go(Event.LOGIN_DONE)
        if compression == "zstd":
            self._count("unsupported_compression")
            self._go(Event.GAVE_UP)
            out.append(StopDecoding(start_ns=ts, end_ns=ts, size=0, flags=0, reason="mysql zstd compression"))
        elif compression == "zlib":
            self._c.comp = self._s.comp = True  # every later byte comes in compressed frames

    # -- answers to commands -------------------------------------------------------------------------------
    def _answer(
        self, seq: int, plen: int, body: bytes, size: int, start: int, ts: int, flags: int, out: list[Message]
    ) -> None:
        pending = self._pending
        first = body[0] if body else -1
        self._ghost_for(start)
        if not pending:
            if first == 0xFF:  # e.g. an idle timeout notice before the server closes the connection
                code, state, message = _err(body)
                out.append(ServerError(start, ts, size, flags, code, state, message))
            else:
                self._count("orphan_packets")
                if seq == 1:
                    # the first packet of an answer to no command seen: handed to the matcher, which counts
                    # it as an orphan response (never a record)
                    out.append(Result(start, ts, size, flags, "orphan"))
            return
        r = self._r
        if r is R.PREP_EOF:
            if first == 0xFE and plen == 5 and seq == (self._r_seq + 1) & 0xFF:
                self._r_size += size
                self._r_seq = seq
                self._prep_next(ts, out)
                return
            self._finish_prepare(self._r_end, out)  # no EOF here: this packet starts the next answer
            self._ghost_for(start)
            if not pending:
                self._count("orphan_packets")
                return
            r = self._r
        if self._r_start < 0:
            self._r_start = start
        self._r_size += size
        self._r_flags |= flags
        self._r_seq = seq
        self._r_end = ts
        _ANSWER_STEPS[r](self, self._cmd(), seq, plen, body, first, ts, out)

    # One method per answer state R (PREP_EOF is decided in _answer): the packet `body` (its first byte
    # `first`, its payload length `plen`) in the answer to the oldest pending command `cmd`.
    def _go(self, event: Event) -> None:
        """Move the connection's phase (phases.py's table)."""
        self._conn = step(self._conn, event)
        self._cphase, self._sphase = SIDES[self._conn]

    def _in_defs(
        self, cmd: _Cmd, seq: int, plen: int, body: bytes, first: int, ts: int, out: list[Message]
    ) -> None:
        self._r_left -= 1
        if self._r_left <= 0:
            self._r = R.AFTER_DEFS

    def _after_defs(
        self, cmd: _Cmd, seq: int, plen: int, body: bytes, first: int, ts: int, out: list[Message]
    ) -> None:
        if first == 0xFE and plen == 5:  # the classic EOF after the definitions
            status = _U16.unpack_from(body, 3)[0] if len(body) >= 5 else 0
            if status & SERVER_STATUS_CURSOR_EXISTS:
                self._finish(ts, out, "result_set")  # a cursor: rows come with COM_STMT_FETCH
            else:
                self._r = R.ROWS
        else:
            self._r = R.ROWS
            self._row(cmd, plen, body, first, ts, out)

    def _in_rows(
        self, cmd: _Cmd, seq: int, plen: int, body: bytes, first: int, ts: int, out: list[Message]
    ) -> None:
        self._row(cmd, plen, body, first, ts, out)

    def _in_prep_defs(
        self, cmd: _Cmd, seq: int, plen: int, body: bytes, first: int, ts: int, out: list[Message]
    ) -> None:
        self._r_left -= 1
        if self._r_left <= 0:
            self._prep_defs_done(ts, out)

    def _in_fields(
        self, cmd: _Cmd, seq: int, plen: int, body: bytes, first: int, ts: int, out: list[Message]
    ) -> None:
        if first == 0xFF:
            self._error(body, ts, out)
        elif first == 0xFE and plen < MAX_PAYLOAD:
            self._finish(ts, out, "result_set")
        else:
            self._r_columns = (self._r_columns or 0) + 1

    def _in_infile(
        self, cmd: _Cmd, seq: int, plen: int, body: bytes, first: int, ts: int, out: list[Message]
    ) -> None:
        self._go(Event.INFILE_ENDED)
        if first == 0xFF:
            self._error(body, ts, out)
        else:
            self._ok(body, ts, out)

    def _in_auth(
        self, cmd: _Cmd, seq: int, plen: int, body: bytes, first: int, ts: int, out: list[Message]
    ) -> None:
        if first == 0x00:
            self._ok(body, ts, out)
        elif first == 0xFF:
            self._error(body, ts, out)

    def _in_prep_eof(
        self, cmd: _Cmd, seq: int, plen: int, body: bytes, first: int, ts: int, out: list[Message]
    ) -> None:
        """Decided in _answer before the packet is counted: nothing more to do here."""

    def _in_stream(
        self, cmd: _Cmd, seq: int, plen: int, body: bytes, first: int, ts: int, out: list[Message]
    ) -> None:
        if first == 0xFF:
            self._error(body, ts, out)
        elif first == 0xFE and plen < 9:
            self._finish(ts, out, "stream")
        else:
            self._r_rows += 1

    def _first(
        self, cmd: _Cmd, seq: int, plen: int, body: bytes, first: int, ts: int, out: list[Message]
    ) -> None:
        code = cmd.code
        if first == 0xFF:
            self._error(body, ts, out)
        elif code == COM_STMT_FETCH:
            self._r = R.ROWS
            self._r_columns = 0
            self._row(cmd, plen, body, first, ts, out)
        elif code == COM_STMT_PREPARE and first == 0x00 and len(body) >= 12:
            stmt_id = _U32.unpack_from(body, 1)[0]
            columns, params = _U16.unpack_from(body, 5)[0], _U16.unpack_from(body, 7)[0]
            self._r_prep = (stmt_id, columns, params)
            statements = self._statements
            if stmt_id not in statements and len(statements) >= MAX_STATEMENTS:
                del statements[next(iter(statements))]
                self._count("statement_id_evictions")
            statements[stmt_id] = (cmd.statement, cmd.truncated)
            self._r_prep_cols = columns
            if params:
                self._r = R.PREP_DEFS
                self._r_left = params
            elif columns:
                self._r = R.PREP_DEFS
                self._r_left = columns
                self._r_prep_cols = 0
            else:
                self._finish_prepare(ts, out)
        elif code == COM_STATISTICS:
            self._finish(ts, out, "data")
        elif code == COM_FIELD_LIST:
            if first == 0xFE and plen < MAX_PAYLOAD:
                self._r_columns = 0
                self._finish(ts, out, "result_set")
            else:
                self._r = R.FIELDS
                self._r_columns = 1
        elif first == 0x00:
            self._ok(body, ts, out)
        elif code == COM_CHANGE_USER and (first == 0xFE or first == 0x01):
            self._r = R.AUTH
        elif first == 0xFE and plen < 9:
            self._finish(ts, out, "eof")
        elif first == 0xFB and code == COM_QUERY:
            self._r = R.INFILE  # LOCAL INFILE: the client sends the file next
            self._go(Event.INFILE_REQUESTED)
            self._r_infile = 0
        elif code in _STREAMS:
            self._r = R.STREAM
            self._r_rows = 1
        elif code in _RESULT_SETS:
            count, pos = _lenenc(body, 0)
            if count == 0 or count > 4096:  # MySQL's column limit is 4096
                raise DecodeError("bad column count", str(count))
            self._r_sets += 1
            if self._r_columns is None:
                self._r_columns = count
            # CLIENT_OPTIONAL_RESULTSET_METADATA / MariaDB metadata caching: a byte after the count,
            # 0 meaning "no column definitions follow"
            skip_defs = len(body) > pos and body[pos] == 0
            self._r_left = 0 if skip_defs else count
            self._r = R.DEFS if self._r_left else R.AFTER_DEFS
        else:
            self._finish(ts, out, "data")

    def _row(self, cmd: _Cmd, plen: int, body: bytes, first: int, ts: int, out: list[Message]) -> None:
        if first == 0xFE and plen < MAX_PAYLOAD:  # EOF, or the OK that replaces it (CLIENT_DEPRECATE_EOF)
            if plen < 7:
                status = _U16.unpack_from(body, 3)[0] if len(body) >= 5 else 0
                warnings = _U16.unpack_from(body, 1)[0] if len(body) >= 3 else 0
            else:
                _, _, status, warnings = _ok(body)
            if status & SERVER_MORE_RESULTS_EXISTS:
                self._r = R.FIRST  # another result follows in the same answer
                self._r_results += 1
                return
            self._finish(ts, out, "result_set", status=status, warnings=warnings)
        elif first == 0xFF:
            self._error(body, ts, out)
        else:
            self._r_rows += 1

    def _prep_defs_done(self, ts: int, out: list[Message]) -> None:
        caps = self._caps
        if caps is not None and caps & CLIENT_DEPRECATE_EOF:
            self._prep_next(ts, out)
        else:
            self._r = R.PREP_EOF  # an EOF follows, unless (joined mid-stream) CLIENT_DEPRECATE_EOF is on

    def _prep_next(self, ts: int, out: list[Message]) -> None:
        if self._r_prep_cols:
            self._r = R.PREP_DEFS
            self._r_left = self._r_prep_cols
            self._r_prep_cols = 0
        else:
            self._finish_prepare(ts, out)

    def _finish_prepare(self, ts: int, out: list[Message]) -> None:
        stmt_id, columns, params = self._r_prep or (0, 0, 0)
        self._emit(Result(self._r_start, ts, self._r_size, self._r_flags, "prepare_ok", columns=columns,
                          statement_id=stmt_id, params=params), out)  # fmt: skip

    def _ok(self, body: bytes, ts: int, out: list[Message]) -> None:
        affected, insert_id, status, warnings = _ok(body)
        if status & SERVER_MORE_RESULTS_EXISTS and self._cmd().code in _RESULT_SETS:
            self._r = R.FIRST  # a multi-statement or CALL: this OK is one statement's, more follow
            self._r_results += 1
            return
        infile = self._r_infile if self._r is R.INFILE else None
        kind = "result_set" if self._r_sets else "ok"
        self._emit(
            Result(
                self._r_start, ts, self._r_size, self._r_flags, kind, affected, insert_id, status, warnings,
                columns=self._r_columns, rows=self._r_rows if self._r_sets else None, results=self._r_results + 1,
                binary=self._cmd().code == COM_STMT_EXECUTE and bool(self._r_sets),
                local_infile_bytes=infile,
            ),
            out,
        )  # fmt: skip

    def _error(self, body: bytes, ts: int, out: list[Message]) -> None:
        code, state, message = _err(body)
        rows = self._r_rows if self._r_sets else None
        self._emit(
            Result(self._r_start, ts, self._r_size, self._r_flags, "error", error_code=code, sql_state=state,
                   error_message=message, columns=self._r_columns, rows=rows, results=self._r_results + 1,
                   local_infile_bytes=self._r_infile if self._r is R.INFILE else None),
            out,
        )  # fmt: skip

    def _finish(
        self, ts: int, out: list[Message], kind: str, status: int | None = None, warnings: int | None = None,
        flags: int = 0,
    ) -> None:  # fmt: skip
        cmd = self._cmd()
        result_set = kind == "result_set"
        self._emit(
            Result(
                self._r_start if self._r_start >= 0 else ts, ts, self._r_size, self._r_flags | flags, kind,
                status_flags=status, warnings=warnings, columns=self._r_columns if result_set else None,
                rows=self._r_rows if result_set or kind == "stream" else None,
                results=self._r_results + 1,
                binary=cmd.code in (COM_STMT_EXECUTE, COM_STMT_FETCH) and result_set,
            ),
            out,
        )  # fmt: skip

    def _ghost_for(self, start: int) -> None:
        """An answer starts while the oldest command owed one was not tracked: frame it by its command byte
        (the answer is dropped at its end, see _emit)."""
        if self._ghost is None and self._pending.peek() is None:
            run = self._pending.untracked_due()
            if run is not None and run.codes:
                self._ghost = _Cmd(run.codes[0], start)

    def _cmd(self) -> _Cmd:
        """The command whose answer is being framed: the oldest tracked one, or an untracked one's stand-in."""
        cmd = self._ghost or self._pending.peek()
        if cmd is None:
            raise DecodeError("answer with no command")  # not reached: _answer checks first
        return cmd

    def _head_start(self) -> int:
        """When the oldest command waiting for an answer was sent (a huge number: none is)."""
        head = self._pending.peek()
        if head is not None:
            return head.start
        return 0 if self._pending else 1 << 62

    def _emit(self, result: Result, out: list[Message]) -> None:
        if self._ghost is not None:  # the answer to an untracked command: dropped, counted
            self._ghost = None
            self._pending.drop_answer()
            self._count("untracked_replies")
        else:
            self._pending.popleft()
            out.append(result)
        self._reset_answer()


_AnswerStep = Callable[[MysqlDecoder, _Cmd, int, int, bytes, int, int, list[Message]], None]
# answer state → what a server packet does in it (one place, instead of an if-chain in _answer)
_ANSWER_STEPS: dict[R, _AnswerStep] = {
    R.FIRST: MysqlDecoder._first,
    R.DEFS: MysqlDecoder._in_defs,
    R.AFTER_DEFS: MysqlDecoder._after_defs,
    R.ROWS: MysqlDecoder._in_rows,
    R.PREP_DEFS: MysqlDecoder._in_prep_defs,
    R.FIELDS: MysqlDecoder._in_fields,
    R.INFILE: MysqlDecoder._in_infile,
    R.AUTH: MysqlDecoder._in_auth,
    R.STREAM: MysqlDecoder._in_stream,
    R.PREP_EOF: MysqlDecoder._in_prep_eof,
}


def new_decoder(ctx: DecoderContext) -> MysqlDecoder:
    """Registry factory."""
    return MysqlDecoder(ctx)
