"""MongoDB wire-protocol decoder (OP_MSG, OP_COMPRESSED and the legacy opcodes), both directions.

Theory of operation
-------------------
Every message starts with a 16-byte little-endian header (messageLength, requestID, responseTo, opCode).
Each direction buffers the header, then keeps at most `max_parse_bytes` of the body (the part the record
needs: OP_MSG flags and the kind-0 command document come first) and counts the rest without copying it;
several messages per segment and one message across many are both normal.

Roles come from the header, not the port: OP_MSG with responseTo = 0, OP_QUERY and OP_GET_MORE are
requests; OP_MSG with responseTo != 0 and OP_REPLY are replies, paired by the keyed matcher on
responseTo = requestID (`pair_key`). A client OP_MSG with moreToCome (w=0 writes) and the legacy
OP_INSERT/OP_UPDATE/OP_DELETE/OP_KILL_CURSORS expect no reply: `oneway`. In an exhaust stream the server
sends replies with moreToCome, each answering the previous reply: the first pairs with the request, the
later ones are `oneway` records carrying the request's command.

OP_COMPRESSED (wire spec "OP_COMPRESSED") is decompressed with cramjam (snappy, zstd) or zlib when the
stated uncompressed size is at most `max_decompress`; larger ones are recorded from their header only
(counter `compressed_too_large`). Documents are read with the `bson` package: in one call of its C decoder
into plain dicts (the fast way: per level, RawBSONDocument inflation costs a Python object per
sub-document, e.g. per document of a cursor batch), and, when that refuses the bytes or would read them
differently, with RawBSONDocument (top level inflated, only the fields a record shows touched), which
judges them as it always did (`_decoded`). A document longer than `max_parse_bytes` is not parsed at all
(its first key, the command name, is read from the bytes) and the record says `parsed: false` (counter
`large_documents`).

The command summary (`query`) is the command document with every value replaced by "?" (keys, nesting
and the collection name kept), like OpenTelemetry's db.query.text; `mongodb.raw_query=true` keeps values.
Authentication payloads (saslStart/saslContinue `payload`, `speculativeAuthenticate`, `pwd`, `key`) are
always replaced. Session and cluster bookkeeping ($clusterTime, lsid, txnNumber, ...) is left out.

Joining mid-stream (or after a gap): a side searches for a plausible header — a known opcode at offset 12,
a sane length, and for OP_MSG a section kind followed by a sane document length — discarding at most
MAX_RESYNC_SCAN bytes before giving up (DecodeError).

Wire format (MongoDB Wire Protocol; all integers little-endian):

    header     int32 messageLength | int32 requestID | int32 responseTo | int32 opCode
    OP_MSG     uint32 flagBits | sections... | [uint32 CRC-32C]     section: kind 0: document
                                                                            kind 1: int32 size, cstring id, documents
    OP_QUERY   int32 flags | cstring fullCollectionName | int32 skip | int32 return | document [| fields]
    OP_REPLY   int32 responseFlags | int64 cursorID | int32 startingFrom | int32 numberReturned | documents
    OP_COMPRESSED  int32 originalOpcode | int32 uncompressedSize | uint8 compressorId | compressed message
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Final

import bson
import cramjam
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

from packetd.protocols.base import DecodeError, DecoderContext, Direction, Message
from packetd.protocols.framing import FrameSide, LengthPrefixed
from packetd.protocols.mongodb.messages import (
    AUTH_COMMANDS,
    HELLO_COMMANDS,
    OPCODES,
    MongoOneway,
    MongoPush,
    MongoReply,
    MongoRequest,
)
from packetd.protocols.mongodb.options import MongoOptions

HEADER_SIZE: Final = 16
MAX_MESSAGE: Final = 48 * 1000 * 1000  # maxMessageSizeBytes of every MongoDB server since 2.6
MAX_EXHAUST: Final = 64  # exhaust streams tracked per connection (one per exhaust cursor or awaitable hello)
MAX_SUMMARY: Final = 1024  # characters of the command summary a record keeps
MAX_SUMMARY_DEPTH: Final = 4  # nested documents summarised; deeper ones become "{...}"

_HEADER = struct.Struct("<iiii")
_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")
_REPLY = struct.Struct("<iqii")
_COMPRESSED = struct.Struct("<iiB")

_DICTS: CodecOptions[dict[str, Any]] = CodecOptions()  # whole documents as plain dicts (see _decoded)
_DOCUMENTS = (dict, RawBSONDocument)  # a (sub-)document, however it was decoded
_REQUEST_OPS = frozenset({2004, 2005})
_ONEWAY_OPS = {2001: "update", 2002: "insert", 2006: "delete", 2007: "killCursors"}
_SECRET_KEYS = frozenset({"payload", "speculativeAuthenticate", "pwd", "key", "digestPassword"})
_BOOKKEEPING = frozenset(
    {"$clusterTime", "lsid", "txnNumber", "$readPreference", "$client", "$configServerState",
     "$topologyTime", "autocommit", "startTransaction", "signature", "operationTime"}
)  # fmt: skip
# commands whose value names a collection (reference §6.6a, public commands)
_COLLECTION_COMMANDS = frozenset(
    {"aggregate", "analyzeShardKey", "bulkWrite", "cleanupOrphaned", "cloneCollectionAsCapped", "collMod",
     "collStats", "compact", "convertToCapped", "count", "create", "createIndexes", "createSearchIndexes",
     "dataSize", "delete", "distinct", "drop", "dropIndexes", "dropSearchIndex", "explain", "filemd5", "find",
     "findAndModify", "findandmodify", "insert", "listIndexes", "listSearchIndexes", "mapReduce",
     "mergeChunks", "planCacheClear", "planCacheClearFilters", "planCacheListFilters", "planCacheSetFilter",
     "reIndex", "renameCollection", "splitChunk", "splitVector", "update", "updateSearchIndex", "validate"}
)  # fmt: skip


class MongoDecoder(LengthPrefixed):
    """Decoder for one MongoDB connection (see module docstring); framing: protocols/framing.py."""

    HEAD: ClassVar[struct.Struct] = _HEADER  # messageLength (the header's 16 bytes included), ids, opCode

    def __init__(self, ctx: DecoderContext | None = None) -> None:
        ctx = ctx or DecoderContext()
        opts = ctx.options if isinstance(ctx.options, MongoOptions) else MongoOptions()
        self._opts = opts
        self._counters: dict[str, int] = ctx.counters if ctx.counters is not None else {}
        self._sides = (FrameSide(not ctx.midstream), FrameSide(not ctx.midstream))
        self._keep_limit = self._opts.max_parse_bytes
        self._exhaust: dict[int, str] = {}  # requestID of a reply with moreToCome → the command it serves
        self._commands: dict[int, str] = {}  # requestID → command, for exhaust replies (bounded)
        self._first = not ctx.midstream  # the next hello/isMaster opens the connection
        self._cmd_queries: dict[int, bool] = {}  # OP_QUERY requestID → it was a command ($cmd), bounded

    # -- framing (protocols/framing.py) --------------------------------------------------------------------
    def body_length(self, head: tuple[int, ...]) -> int:
        length, _rid, _rto, opcode = head
        if length < HEADER_SIZE or length > MAX_MESSAGE:
            raise DecodeError("bad message length", str(length))
        if opcode not in OPCODES or opcode == 2003:
            raise DecodeError("unknown opcode", str(opcode))
        return length - HEADER_SIZE

    def find(self, direction: Direction, chunk: bytes) -> tuple[int, int]:
        return _find_message(chunk)

    def resynced(self) -> None:
        self._first = False  # the connection's set-up happened before the capture joined

    # -- messages ------------------------------------------------------------------------------------------
    def message(
        self, direction: Direction, head: tuple[int, ...], body: bytes, start: int, ts: int, flags: int
    ) -> Message:
        length, rid, rto, opcode = head
        complete = len(body) == length - HEADER_SIZE
        compressor = -1
        if opcode == 2012:
            if len(body) < 9:
                raise DecodeError("short OP_COMPRESSED")
            opcode, usize, compressor = _COMPRESSED.unpack_from(body, 0)
            if opcode not in OPCODES or opcode in (2012, 2003):
                raise DecodeError("bad compressed opcode", str(opcode))
            inner = self._decompress(compressor, usize, body[9:], complete)
            if inner is None:  # over the bound: what the header says, nothing from the body
                name = OPCODES[opcode]
                if opcode == 1 or (opcode == 2013 and rto):
                    return MongoReply(start, ts, length, flags, opcode, rid, rto, None, None, None, None,
                                      None, None, None, None, 0, 0, compressor, False, "", rto)  # fmt: skip
                cls = MongoOneway if opcode in _ONEWAY_OPS else MongoRequest
                return cls(start, ts, length, flags, opcode, rid, name, None, None, None, 0, 0,
                           compressor, False, False, rid)  # fmt: skip
            body = inner
            complete = True
        if opcode == 2013:
            return self._op_msg(direction, rid, rto, body, complete, start, ts, length, flags, compressor)
        if opcode == 1:
            return self._op_reply(rid, rto, body, complete, start, ts, length, flags, compressor)
        return self._legacy(opcode, rid, body, complete, start, ts, length, flags, compressor)

    def _decompress(self, compressor: int, usize: int, data: bytes, complete: bool) -> bytes | None:
        if usize < 0 or usize > self._opts.max_decompress or not complete:
            self._count("compressed_too_large")
            return None
        try:
            if compressor == 0:
                out = data
            elif compressor == 1:
                out = bytes(cramjam.snappy.decompress_raw(data))
            elif compressor == 2:
                d = zlib.decompressobj()
                out = d.decompress(data, usize + 1)
            elif compressor == 3:
                out = bytes(cramjam.zstd.decompress(data, output_len=usize))
            else:
                raise DecodeError("unknown compressor", str(compressor))
        except (cramjam.DecompressionError, zlib.error, ValueError) as exc:
            raise DecodeError("decompression failed", str(exc)[:80]) from None
        if len(out) != usize:
            raise DecodeError("uncompressed size mismatch")
        return out

    def _count(self, name: str) -> None:
        self._counters[name] = self._counters.get(name, 0) + 1

    def _op_msg(
        self,
        direction: Direction,
        rid: int,
        rto: int,
        body: bytes,
        complete: bool,
        start: int,
        end: int,
        size: int,
        flags: int,
        compressor: int,
    ) -> Message:
        if len(body) < 5:
            raise DecodeError("short OP_MSG")
        (msg_flags,) = _U32.unpack_from(body, 0)
        if msg_flags & 0xFFFC:
            raise DecodeError("unknown required OP_MSG flag")  # bits 2-15 must be clear; 16-31 are optional
        stop = len(body) - 4 if msg_flags & 1 and complete else len(body)
        pos = 4
        doc: bytes | None = None
        first_key = ""
        documents = 0
        while pos < stop:
            kind = body[pos]
            if pos + 5 > len(body):
                break  # the kept part of a long body ends here
            (dlen,) = _I32.unpack_from(body, pos + 1)
            if kind == 0:
                if dlen < 5:
                    raise DecodeError("bad document length")
                if doc is None and not first_key:
                    first_key = _first_key(body, pos + 1)
                    if pos + 1 + dlen <= len(body):
                        doc = body[pos + 1 : pos + 1 + dlen]
                pos += 1 + dlen
            elif kind == 1:
                if dlen < 5:
                    raise DecodeError("bad document sequence length")
                documents += _count_sequence(body, pos + 1, min(pos + 1 + dlen, len(body)))
                pos += 1 + dlen
            else:
                raise DecodeError("bad section kind", str(kind))
        if not first_key:
            raise DecodeError("OP_MSG without a body section")
        is_reply = rto != 0
        if is_reply:
            command = self._exhaust.pop(rto, "")
            parsed = doc is not None
            reply = self._reply_fields(doc)
            if msg_flags & 2:
                if len(self._exhaust) >= MAX_EXHAUST:
                    del self._exhaust[next(iter(self._exhaust))]
                self._exhaust[rid] = command or self._commands.pop(rto, "")
            else:
                self._commands.pop(rto, None)
            cls = MongoPush if command else MongoReply
            return cls(
                start, end, size, flags, 2013, rid, rto, *reply, msg_flags, compressor, parsed, command, rto
            )  # type: ignore[call-arg]
        parsed = doc is not None
        if doc is not None:
            database, collection, query = self._command_fields(doc, first_key)
        else:
            database = collection = query = None
            self._count("large_documents")
        handshake = first_key in AUTH_COMMANDS or (self._first and first_key in HELLO_COMMANDS)
        self._first = False
        if len(self._commands) >= MAX_EXHAUST:
            del self._commands[next(iter(self._commands))]
        if msg_flags & 0x10000:
            self._commands[rid] = first_key
        cls2 = MongoOneway if msg_flags & 2 else MongoRequest
        return cls2(
            start, end, size, flags, 2013, rid, first_key, database, collection, query, msg_flags, documents,
            compressor, parsed, handshake, rid,
        )  # fmt: skip

    def _command_fields(self, doc: bytes, first_key: str) -> tuple[str | None, str | None, str]:
        """(database, collection, summary) of a command document."""
        try:
            cmd = _document(doc)
            db = cmd.get("$db")
            value = cmd.get(first_key)
            collection = value if isinstance(value, str) and first_key in _COLLECTION_COMMANDS else None
            if first_key == "getMore":
                c = cmd.get("collection")
                collection = c if isinstance(c, str) else None
            return (db if isinstance(db, str) else None), collection, self._summary(cmd)
        except Exception as exc:  # bson raises its own InvalidBSON and others on malformed documents
            raise DecodeError("bad BSON", str(exc)[:80]) from None

    def _reply_fields(self, doc: bytes | None) -> tuple[Any, ...]:
        """(ok, code, codeName, errmsg, n, nModified, batch size, cursor id, write errors) of a reply."""
        if doc is None:
            self._count("large_documents")
            return (None, None, None, None, None, None, None, None, 0)
        try:
            d = _document(doc)
            ok = d.get("ok")
            code = d.get("code")
            code_name = d.get("codeName")
            errmsg = d.get("errmsg") or d.get("$err")
            n = d.get("n")
            n_modified = d.get("nModified")
            batch = cursor_id = None
            cursor = d.get("cursor")
            if isinstance(cursor, _DOCUMENTS):
                for key in ("firstBatch", "nextBatch"):
                    docs = cursor.get(key)
                    if isinstance(docs, list):
                        batch = len(docs)
                cid = cursor.get("id")
                cursor_id = int(cid) if isinstance(cid, int) else None
            werr = d.get("writeErrors")
            write_errors = len(werr) if isinstance(werr, list) else 0
            if write_errors and code is None and isinstance(werr, list) and isinstance(werr[0], _DOCUMENTS):
                code = werr[0].get("code")
                code_name = werr[0].get("codeName")
                errmsg = werr[0].get("errmsg")
        except Exception as exc:  # InvalidBSON and friends from the bson package
            raise DecodeError("bad BSON", str(exc)[:80]) from None
        return (
            float(ok)
            if isinstance(ok, int | float) and not isinstance(ok, bool)
            else (1.0 if ok is True else None),
            code if isinstance(code, int) and not isinstance(code, bool) else None,
            code_name if isinstance(code_name, str) else None,
            errmsg[:1024] if isinstance(errmsg, str) else None,
            n if isinstance(n, int) and not isinstance(n, bool) else None,
            n_modified if isinstance(n_modified, int) and not isinstance(n_modified, bool) else None,
            batch,
            cursor_id,
            write_errors,
        )

    def _op_reply(
        self,
        rid: int,
        rto: int,
        body: bytes,
        complete: bool,
        start: int,
        end: int,
        size: int,
        flags: int,
        compressor: int,
    ) -> Message:
        if len(body) < 20:
            raise DecodeError("short OP_REPLY")
        rflags, cursor_id, _from, returned = _REPLY.unpack_from(body, 0)
        doc = _document_at(body, 20)
        # the first document is a command reply only when the query was a command, or {$err} on failure;
        # otherwise it is a user document whose "ok" or "n" fields mean nothing here
        is_reply_doc = self._cmd_queries.pop(rto, False) or bool(rflags & 2)
        ok, code, code_name, errmsg, n, n_modified, _batch, _cid, write_errors = self._reply_fields(doc) if returned and is_reply_doc else (
            None, None, None, None, None, None, None, None, 0)  # fmt: skip
        if rflags & 2 and ok is None:
            ok = 0.0  # QueryFailure: the document is {$err, code}
        self._commands.pop(rto, None)
        return MongoReply(
            start, end, size, flags, 1, rid, rto, ok, code, code_name, errmsg, n, n_modified, returned,
            cursor_id, write_errors, 0, compressor, doc is not None or not returned, "", rto,
        )  # fmt: skip

    def _legacy(
        self,
        opcode: int,
        rid: int,
        body: bytes,
        complete: bool,
        start: int,
        end: int,
        size: int,
        flags: int,
        compressor: int,
    ) -> Message:
        """OP_QUERY, OP_GET_MORE (requests) and OP_INSERT, OP_UPDATE, OP_DELETE, OP_KILL_CURSORS (one-way)."""
        if opcode == 2007:
            return MongoOneway(start, end, size, flags, opcode, rid, "killCursors", None, None, None, 0, 0,
                               compressor, True, False, rid)  # fmt: skip
        if len(body) < 5:
            raise DecodeError("short legacy message")
        nul = body.find(b"\x00", 4)
        if nul < 0:
            raise DecodeError("bad collection name")
        namespace = body[4:nul].decode("utf-8", "replace")
        db_name, _, coll_name = namespace.partition(".")
        database: str | None = db_name
        collection: str | None = coll_name
        pos = nul + 1
        command = _ONEWAY_OPS.get(opcode, "getMore")
        query = None
        documents = 0
        parsed = True
        if opcode == 2004:
            if len(self._cmd_queries) >= MAX_EXHAUST:
                del self._cmd_queries[next(iter(self._cmd_queries))]
            self._cmd_queries[rid] = collection == "$cmd"
            pos += 8  # numberToSkip, numberToReturn
            doc = _document_at(body, pos)
            parsed = doc is not None
            command = "find"
            if doc is not None:
                try:
                    _check_structure(doc)
                    q = RawBSONDocument(doc)
                    # a command wrapped for mongos ({$query: {cmd...}, $readPreference: ...}) is unwrapped
                    # only when the wrapper is the first key: `query` is also an argument of findandmodify
                    # and count, whose first key is the command name
                    wrapper = _first_key(doc, 0) if collection == "$cmd" else ""
                    inner = q.get(wrapper) if wrapper in ("$query", "query") else None
                    cmd = inner if isinstance(inner, RawBSONDocument) else q
                    if collection == "$cmd":
                        command = _first_key(bytes(cmd.raw), 0) or "find"
                        value = cmd.get(command)
                        collection = (
                            value if isinstance(value, str) and command in _COLLECTION_COMMANDS else None
                        )
                    query = self._summary(cmd)
                except Exception as exc:  # bson's InvalidBSON and friends
                    raise DecodeError("bad BSON", str(exc)[:80]) from None
            elif collection == "$cmd":
                command = _first_key(body, pos) or "find"
                collection = None
        elif opcode == 2002:
            documents = _count_docs(body, pos, len(body))
        handshake = command in AUTH_COMMANDS or (self._first and command in HELLO_COMMANDS)
        self._first = False
        cls = MongoRequest if opcode in _REQUEST_OPS else MongoOneway
        return cls(start, end, size, flags, opcode, rid, command, database or None, collection or None, query, 0,
                   documents, compressor, parsed, handshake, rid)  # fmt: skip

    # -- the command summary ---------------------------------------------------------------------------------
    def _summary(self, cmd: Mapping[str, Any]) -> str:
        parts = self._summarise(cmd, 0, True)
        return parts if len(parts) <= MAX_SUMMARY else parts[: MAX_SUMMARY - 3] + "..."

    def _summarise(self, doc: Mapping[str, Any], depth: int, top: bool) -> str:
        items = []
        total = 0  # characters in items (the summary stops growing past MAX_SUMMARY)
        raw = self._opts.raw_query
        first = True
        for key, v in doc.items():
            if top and key in _BOOKKEEPING:
                continue
            if key in _SECRET_KEYS:
                text = '"?"'
            elif top and first and isinstance(v, str):
                text = _quote(v)  # the command's own value: a collection name or similar
            elif top and key == "$db":
                text = _quote(v) if isinstance(v, str) else '"?"'
            else:
                text = self._value(v, depth, raw)
            first = False
            item = f"{_quote(key)}: {text}"
            items.append(item)
            total += len(item)
            if total > MAX_SUMMARY:
                break
        return "{" + ", ".join(items) + "}"

    def _value(self, v: Any, depth: int, raw: bool) -> str:
        if isinstance(v, _DOCUMENTS):
            return self._summarise(v, depth + 1, False) if depth < MAX_SUMMARY_DEPTH else "{...}"
        if isinstance(v, list):
            if not v:
                return "[]"
            return "[" + self._value(v[0], depth, raw) + (", ..." if len(v) > 1 else "") + "]"
        if not raw:
            return '"?"'
        if isinstance(v, str):
            return _quote(v[:256])
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return str(v)
        return _quote(str(v)[:256])


def _decoded(doc: bytes) -> dict[str, Any] | None:
    """The whole document decoded by one call of the bson package's C decoder (plain dicts), the fast way to
    the few fields a record reads; None when that is not the same reading as RawBSONDocument's. Decoding
    every level checks at least what RawBSONDocument checks on the levels the record touches (and the
    same codec options decode the same values), so a document it accepts reads the same either way; one it
    refuses (malformed anywhere, even deeper than the record reads) goes the RawBSONDocument way, which
    gives the record or the error it always gave. The one difference in values: a sub-document shaped like
    a DBRef ({$ref, $id}) becomes a DBRef object in dicts, so documents with "$ref" go that way too."""
    if b"$ref" in doc:
        return None
    try:
        return bson.decode(doc, _DICTS)
    except Exception:  # InvalidBSON and friends: judged by the RawBSONDocument path
        return None


def _document(doc: bytes) -> Mapping[str, Any]:
    """The document to read fields from: decoded whole when that reads the same (`_decoded`), else raw;
    InvalidBSON, before the bson package sees it, when an element lies outside its container."""
    _check_structure(doc)
    whole = _decoded(doc)
    return whole if whole is not None else RawBSONDocument(doc)


# ----- the extent of every array element, checked before the bson package reads a document -----
# pymongo's C reader (4.20.1, the newest release) bounds an element of an *array* by what is left from the
# array's start, not from the element: an element near an array's end may claim a size past the array, and
# the reader then reads the bytes after the document (valgrind: "Invalid read of size 1" in get_value; seen
# here as two different errors for the same bytes, depending on what lay after them in memory). On bytes
# from the network that could put this process's memory into a record, or crash it, so no document reaches
# the bson package before every element of every array in it is shown to lie inside its array, by the
# BSON 1.1 sizes. Elements of documents it bounds by what is left of the document, correctly: a document
# (or sub-document) with no 0x04 byte in it, hence no array, is passed as it is, in one bytes.find. Values
# are not judged here (UTF-8, booleans, subtypes): the bson package still does that, with its own errors.
# tests/protocols/mongodb/test_structure.py holds it to pymongo's pure-Python reader, which cannot leave
# the buffer.
_VARIABLE = {2: -1, 13: -1, 14: -1, 3: -2, 4: -2, 5: -3, 11: -4, 12: -5, 15: -6}  # string, code, symbol;
# document, array; binary; regular expression; DBPointer; code with scope
_FIXED = {1: 8, 6: 0, 7: 12, 8: 1, 9: 8, 10: 0, 16: 4, 17: 8, 18: 8, 19: 16, 127: 0, 255: 0}  # value bytes
_KINDS: list[int] = [_FIXED.get(k, _VARIABLE.get(k, -9)) for k in range(256)]  # -9: no such type


def _string_end(doc: bytes, pos: int, end: int) -> int:
    """The offset after the BSON string (int32 length counting its NUL, bytes, NUL) at `pos`; -1 if it
    does not lie inside `end`."""
    if pos + 4 > end:
        return -1
    stop: int = pos + 4 + _I32.unpack_from(doc, pos)[0]
    return stop if pos + 4 < stop <= end and doc[stop - 1] == 0 else -1


def _structure_error(doc: bytes) -> str:
    """Why `doc` is not one BSON document whose arrays hold their elements; "" if it is (see above)."""
    n = len(doc)
    if n < 5 or _I32.unpack_from(doc, 0)[0] != n or doc[n - 1] != 0:
        return "bad document length"
    if doc.find(b"\x04", 4) < 0:
        return ""
    # the terminating NUL of each open container but the innermost (`end`); at most n // 5 entries (a
    # container is >= 5 bytes), so bounded by the document, which the decoder bounds by max_parse_bytes
    stack: list[int] = []
    find, unpack, kinds = doc.find, _I32.unpack_from, _KINDS  # locals: this loop runs once per element
    end = n - 1
    pos = 4
    while True:
        if pos == end:  # the container's terminating NUL
            if not stack:
                return ""
            end = stack.pop()
            pos += 1
            continue
        code = doc[pos]
        kind = kinds[code]
        pos = find(b"\x00", pos + 1, end) + 1  # the value, after the element's name
        if pos == 0:
            return "bad element name"
        if kind >= 0:
            stop = pos + kind
        elif kind == -1:  # the commonest variable type, inline: int32 length counting its NUL, bytes, NUL
            stop = pos + 4 + unpack(doc, pos)[0] if pos + 4 <= end else -1
            if stop <= pos + 4 or stop > end or doc[stop - 1] != 0:
                return "bad element length"
        elif kind == -2 or kind == -6:
            length: int = unpack(doc, pos)[0] if pos + 4 <= end else 0
            stop = pos + length
            if kind == -6:  # code with scope: int32 total, string, document ending with the total
                scope = _string_end(doc, pos + 4, stop) if length >= 14 and stop <= end else -1
                if scope < 0 or scope + 4 > stop or unpack(doc, scope)[0] != stop - scope:
                    return "bad code-with-scope length"
                pos, length = scope, stop - scope
            if length < 5 or stop > end or doc[stop - 1] != 0:
                return "bad nested document length"
            if code == 4 or find(b"\x04", pos + 4, stop) >= 0:  # an array, or one may be in it
                stack.append(end)
                end = stop - 1
                pos += 4
                continue
        elif kind == -3:  # binary: int32 length, subtype, bytes (subtype 2: an inner int32 length first)
            length = unpack(doc, pos)[0] if pos + 5 <= end else -1
            stop = pos + 5 + length if length >= 0 and (doc[pos + 4] != 2 or length >= 4) else -1
        elif kind == -4:  # regular expression: pattern and options, two cstrings
            first = find(b"\x00", pos, end)
            stop = find(b"\x00", first + 1, end) + 1 if first >= 0 else -1
        elif kind == -5:  # DBPointer: string, 12-byte ObjectId
            stop = _string_end(doc, pos, end)
            stop = stop + 12 if stop >= 0 else -1
        else:
            return f"unknown element type {code}"
        if stop <= 0 or stop > end:
            return "bad element length"
        pos = stop


def _fast_structure() -> Callable[[bytes], str] | None:
    """The C twin of `_structure_error` (mongodb/_extent.c, built by the compiled build), or None: not
    built, or PACKETD_PURE=1. The same answer for the same bytes: tests/protocols/mongodb/test_structure.py
    runs every case through both."""
    if os.environ.get("PACKETD_PURE") == "1":
        return None
    try:
        from packetd.protocols.mongodb import _extent  # type: ignore[attr-defined]
    except ImportError:
        return None
    fn: Callable[[bytes], str] = _extent.structure_error
    return fn


FAST_STRUCTURE = _fast_structure()


def _check_structure(doc: bytes) -> None:
    """InvalidBSON (which the callers report as DecodeError "bad BSON") unless `_structure_error` passes."""
    why = FAST_STRUCTURE(doc) if FAST_STRUCTURE is not None else _structure_error(doc)
    if why:
        raise bson.InvalidBSON(why)


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _first_key(buf: bytes, pos: int) -> str:
    """The first element's name of the document at `pos` (read from the bytes: no parsing)."""
    if pos + 5 > len(buf) or buf[pos + 4] == 0:
        return ""
    nul = buf.find(b"\x00", pos + 5, pos + 5 + 1024)
    if nul < 0:
        raise DecodeError("bad element name")
    return buf[pos + 5 : nul].decode("utf-8", "replace")


def _document_at(buf: bytes, pos: int) -> bytes | None:
    """The document at `pos` when it is whole in `buf`, else None."""
    if pos + 4 > len(buf):
        return None
    (dlen,) = _I32.unpack_from(buf, pos)
    if dlen < 5:
        raise DecodeError("bad document length")
    return buf[pos : pos + dlen] if pos + dlen <= len(buf) else None


def _count_sequence(buf: bytes, pos: int, end: int) -> int:
    """Documents in an OP_MSG kind-1 section at `pos` (int32 size, cstring identifier, documents)."""
    nul = buf.find(b"\x00", pos + 4, end)
    return _count_docs(buf, nul + 1, end) if nul >= 0 else 0


def _count_docs(buf: bytes, pos: int, end: int) -> int:
    """Consecutive documents from `pos` (each starts with its int32 length) up to `end` or the kept bytes."""
    count = 0
    end = min(end, len(buf))
    while pos + 4 <= end:
        (dlen,) = _I32.unpack_from(buf, pos)
        if dlen < 5:
            raise DecodeError("bad document length")
        count += 1
        pos += dlen
    return count


# a known opcode (little-endian int32) at offset 12 of a header; a lookahead, so that matches may overlap
_CANDIDATE = re.compile(
    rb"(?=(?:\xdd\x07|\xd4\x07|\xd5\x07|\xdc\x07|\x01\x00|\xd2\x07|\xd1\x07|\xd6\x07|\xd7\x07)\x00\x00)"
)


def _find_message(chunk: bytes) -> tuple[int, int]:
    """(offset of the first plausible message start or -1, offset from which bytes must be kept)."""
    n = len(chunk)
    keep = max(0, n - HEADER_SIZE - 8)
    for m in _CANDIDATE.finditer(chunk):
        i = m.start() - 12
        if i < 0:
            continue
        if i + HEADER_SIZE + 9 > n:
            keep = min(keep, i)
            break
        length, _rid, rto, opcode = _HEADER.unpack_from(chunk, i)
        if not HEADER_SIZE + 5 <= length <= MAX_MESSAGE or opcode not in OPCODES:
            continue
        body = i + HEADER_SIZE
        if opcode == 2013:
            (flags,) = _U32.unpack_from(chunk, body)
            if flags & ~0x10003 or chunk[body + 4] not in (0, 1):
                continue
            (dlen,) = _I32.unpack_from(chunk, body + 5)
            if not 5 <= dlen <= length - HEADER_SIZE - 5:
                continue
        elif opcode == 1:
            if rto == 0 or length < HEADER_SIZE + 20:
                continue  # an OP_REPLY has 20 bytes of fixed fields
            if i + HEADER_SIZE + (20 if length == HEADER_SIZE + 20 else 24) > n:
                keep = min(keep, i)  # too few bytes yet to judge this candidate: keep them, wait
                break
            rflags, _cursor, starting, returned = _REPLY.unpack_from(chunk, body)
            if rflags & ~0xF or starting < 0 or returned < 0:
                continue  # responseFlags has four defined bits (wire spec "OP_REPLY")
            if length == HEADER_SIZE + 20:
                if returned != 0:
                    continue
                return i, 0  # a reply without documents (an exhausted cursor, an empty find): 36 bytes
            (dlen,) = _I32.unpack_from(chunk, body + 20)
            if not 5 <= dlen <= length - HEADER_SIZE - 20:
                continue
        elif opcode == 2012:
            if _I32.unpack_from(chunk, body)[0] not in OPCODES or chunk[body + 8] > 3:
                continue
        return i, 0
    return -1, keep


def new_decoder(ctx: DecoderContext) -> MongoDecoder:
    """Registry factory."""
    return MongoDecoder(ctx)
