"""Kafka decoder (the Kafka protocol over TCP), both directions of one connection.

Theory of operation
-------------------
Every message is an int32 size and that many bytes. Each direction buffers the size, then keeps at most
`kafka.max_parse_bytes` of the message (headers and the start of the body: what the record needs) and
counts the rest without copying it; several messages per segment (clients pipeline up to
max.in.flight requests) and one message across many segments are both normal.

A request header is v1 (api key, api version, correlation id, nullable client id) or v2 (the same, then a
tagged-field section) when the API version is flexible; a response header is v0 (correlation id) or v1
(plus tagged fields), except that ApiVersions always answers with v0 (KIP-511). Which versions are
flexible comes from Apache Kafka's message schemas (schema_data.py, generated from the official JSON
files), never from guesses; a response is framed with the API and version of its request, remembered by
correlation id (bounded), and paired by the keyed matcher on the correlation id.

Bodies are walked with the same schemas (schema.py): error codes wherever each API's schema puts them
(top level and per topic/partition), group ids, topics and partitions, and for Produce and Fetch the
record counts and bytes per topic. Topic ids (Fetch and Produce >= 13) are resolved to names from the
Metadata responses seen on any connection of this engine (`DecoderContext.shared`, bounded). Produce with
acks=0 expects no response: `oneway`. SaslHandshake and SaslAuthenticate are `handshake` records; SASL
tokens are never read into a record. A `traceparent` header on the first record of a produced batch
becomes the record's trace context.

What it deliberately ignores: the raw SASL tokens that follow a SaslHandshake v0 (pre-KIP-152 clients),
which are not Kafka-framed (they cost a reset and a resync); bodies of APIs whose schema is not shipped
(broker-internal and KRaft APIs: name, version and ids only).

Joining mid-stream (or after a gap): the client side searches for a plausible request header (known API
key, sane version and size, a client id of printable characters), the server side for a size followed by
the correlation id of a request in flight; at most MAX_RESYNC_SCAN bytes are searched (then DecodeError).

Wire format (Kafka protocol guide; KIP-482):

    request    int32 size | int16 api_key | int16 api_version | int32 correlation_id | int16 client_id len,
               client_id | [v2: tagged fields] | body
    response   int32 size | int32 correlation_id | [v1: tagged fields] | body
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from typing import Any, ClassVar, Final

from packetd.protocols.base import DecodeError, DecoderContext, Direction, Message
from packetd.protocols.framing import FrameSide, LengthPrefixed, Short
from packetd.protocols.kafka.messages import KafkaOneway, KafkaRequest, KafkaResponse, TopicSummary
from packetd.protocols.kafka.options import KafkaOptions
from packetd.protocols.kafka.schema import (
    Errors,
    Group,
    Walker,
    WalkErrors,
    compiled_for,
    flexible_request,
    flexible_response,
    skip_tagged,
)
from packetd.protocols.kafka.schema_data import API_NAMES, SCHEMAS
from packetd.protocols.traceparent import parse_traceparent

_C2S = Direction.C2S  # a module constant: reading an enum member from its class costs ~0.25 us (3.11)
MAX_MESSAGE: Final = 512 * 1024 * 1024  # sizes above this are not Kafka (fetch.max.bytes defaults to 50 MB)
MAX_INFLIGHT: Final = 1024  # requests kept by correlation id until their response (deeper than any client)
MAX_TOPIC_IDS: Final = 65536  # topic id → name entries shared by all connections of one engine
MAX_API_VERSION: Final = 64  # the highest version of any API today is 18; a larger one is not a header
MAX_CLIENT_ID: Final = 1024  # a longer client id is not a header

_I32 = struct.Struct(">i")
_REQ = struct.Struct(">hhih")  # api key, api version, correlation id, client id length
_REQ_HEAD = struct.Struct(">hhi")
_RESP_CORR = struct.Struct(">i")
_SIZE_CORR = struct.Struct(">ii")
# Final (the ints above too): literals inlined by the compiled build, not a globals lookup at each use
_PRODUCE: Final = 0
_FETCH: Final = 1
_METADATA: Final = 3
_GROUP_KEYS = ("GroupId",)
# (api key, version) → the connection's _Api, keyed by api_key * 128 + version (versions are 0-64, checked
# first: an int key, no tuple built per message). A client speaks one version of each API it uses (~15 on a
# librdkafka connection), so the bound is never reached by a real one; a peer cycling through versions
# empties the memo when full (counted: api_memo_resets), at most every MAX_APIS requests.
MAX_APIS: Final = 256


class _Api:
    """What one (api key, version) needs to decode its requests and their responses: looked up once per
    connection, then carried with each request in flight, so that a message costs one dict lookup (the
    request's) and its response none. The functions are None when no schema is shipped for the API (records:
    name and ids only)."""

    __slots__ = ("errors", "flexible", "group", "resp_flexible", "resp_walk", "resp_walk_errors", "walk")

    def __init__(self, api_key: int, version: int) -> None:
        flexible = flexible_request(api_key, version)
        resp_flexible = flexible_response(api_key, version)
        req = compiled_for(api_key, version, False)
        resp = compiled_for(api_key, version, True)
        # all four are None exactly when the API's schema is unknown (schema.py: SCHEMAS.get(api_key))
        self.flexible = bool(flexible)
        self.resp_flexible = bool(resp_flexible)
        self.walk: Walker | None = req[0] if req is not None else None
        self.group: Group | None = req[2] if req is not None else None
        self.resp_walk: Walker | None = resp[0] if resp is not None else None
        self.errors: Errors | None = resp[1] if resp is not None else None
        # a response whose record reads only its top level and its errors (not Fetch's topics, Metadata's
        # topic ids): walked and searched for errors in one pass, without the nested dicts (schema.py)
        walk_errors = resp[3] if resp is not None and api_key not in (_FETCH, _METADATA) else None
        self.resp_walk_errors: WalkErrors | None = walk_errors


class KafkaDecoder(LengthPrefixed):
    """Decoder for one Kafka connection (see module docstring); framing: protocols/framing.py."""

    HEAD: ClassVar[struct.Struct] = _I32  # the size of what follows

    def __init__(self, ctx: DecoderContext | None = None) -> None:
        ctx = ctx or DecoderContext()
        self._opts = ctx.options if isinstance(ctx.options, KafkaOptions) else KafkaOptions()
        self._counters: dict[str, int] = ctx.counters if ctx.counters is not None else {}
        shared = ctx.shared if ctx.shared is not None else {}
        self._topic_ids: dict[str, str] = shared.setdefault("kafka_topic_ids", {})
        self._sides = (FrameSide(not ctx.midstream), FrameSide(not ctx.midstream))
        self._keep_limit = self._opts.max_parse_bytes
        self._inflight: dict[int, tuple[int, _Api]] = {}  # correlation id → (api key, its _Api)
        self._apis: dict[int, _Api] = {}  # api_key * 128 + version → _Api (MAX_APIS)

    # -- framing (protocols/framing.py) --------------------------------------------------------------------
    def body_length(self, head: tuple[int, ...]) -> int:
        (size,) = head
        if size < 4 or size > MAX_MESSAGE:
            raise DecodeError("bad message size", str(size))
        return size

    def find(self, direction: Direction, chunk: bytes) -> tuple[int, int]:
        if direction is _C2S:
            return _find_request(chunk)
        return _find_response(chunk, self._inflight)

    # -- messages --------------------------------------------------------------------------------------------
    def message(
        self, direction: Direction, head: tuple[int, ...], body: bytes, start: int, ts: int, flags: int
    ) -> Message:
        complete = len(body) == head[0]
        size = head[0] + 4
        if direction is _C2S:
            return self._request(body, complete, start, ts, size, flags)
        return self._response(body, complete, start, ts, size, flags)

    def _request(self, body: bytes, complete: bool, start: int, end: int, size: int, flags: int) -> Message:
        n = len(body)
        if n < 8:
            raise DecodeError("short request header")
        if n >= 10:
            api_key, version, corr, clen = _REQ.unpack_from(body, 0)
        else:
            api_key, version, corr = _REQ_HEAD.unpack_from(body, 0)
            clen = None
        if api_key not in API_NAMES or not 0 <= version <= MAX_API_VERSION:
            raise DecodeError("bad request header", f"{api_key}/{version}")
        pos = 8
        client_id = None
        if not (api_key == 7 and version == 0):  # ControlledShutdown v0: request header v0, no client id
            # a classic nullable string even in header v2
            if clen is None:
                raise DecodeError("short request header")
            pos = 10
            if clen >= 0:
                pos += clen
                if pos > n:
                    raise DecodeError("short request header")
                client_id = body[10:pos].decode("utf-8", "replace")
            elif clen != -1:
                raise DecodeError("bad string length")
        key = api_key * 128 + version
        api = self._apis.get(key)
        if api is None:
            api = self._api(api_key, version, key)
        inflight = self._inflight
        if len(inflight) >= MAX_INFLIGHT:
            del inflight[next(iter(inflight))]
        inflight[corr] = (api_key, api)
        group_id = acks = None
        topics: tuple[TopicSummary, ...] = ()
        trace = None
        parsed = False
        walk = api.walk
        group = api.group
        if walk is not None and group is not None:
            fields, parsed = self._body(walk, api.flexible, body, pos, complete)
            group_id = group(fields)
            if api_key == _PRODUCE:
                acks = fields.get("Acks")
                topics, headers = self._topics(fields.get("TopicData", ()), "Name", "PartitionData", "Index")
                if headers:
                    tp = headers.get("traceparent")
                    if tp is not None:
                        trace = parse_traceparent(tp, headers.get("tracestate"))
            elif api_key == _FETCH:
                topics, _ = self._topics(fields.get("Topics", ()), "Topic", "Partitions", "Partition")
        if api_key == _PRODUCE and acks == 0:
            inflight.pop(corr, None)  # no response will come
            return KafkaOneway(start, end, size, flags, api_key, version, corr, client_id, group_id, acks,
                               topics, trace, parsed, corr)  # fmt: skip
        return KafkaRequest(start, end, size, flags, api_key, version, corr, client_id, group_id, acks, topics,
                            trace, parsed, corr)  # fmt: skip

    def _response(self, body: bytes, complete: bool, start: int, end: int, size: int, flags: int) -> Message:
        n = len(body)
        if n < 4:
            raise DecodeError("short response header")
        (corr,) = _RESP_CORR.unpack_from(body, 0)
        entry = self._inflight.pop(corr, None)
        if entry is None:
            return KafkaResponse(start, end, size, flags, -1, corr, None, (), 0, None, (), False, corr)
        api_key, api = entry
        walk = api.resp_walk
        collect = api.errors
        if walk is None or collect is None:
            return KafkaResponse(start, end, size, flags, api_key, corr, None, (), 0, None, (), False, corr)
        errors: list[tuple[str, int]] = []
        fused = api.resp_walk_errors
        if fused is not None:
            fields, parsed = self._body(walk, api.resp_flexible, body, 4, complete, fused, errors)
        else:
            fields, parsed = self._body(walk, api.resp_flexible, body, 4, complete)
            collect(fields, errors)
        topics: tuple[TopicSummary, ...] = ()
        if api_key == _FETCH:
            topics, _ = self._topics(fields.get("Responses", ()), "Topic", "Partitions", "PartitionIndex")
        elif api_key == _METADATA:
            self._learn_topic_ids(fields.get("Topics", ()))
        return KafkaResponse(
            start, end, size, flags, api_key, corr, fields.get("ErrorCode"), tuple(errors), len(errors),
            fields.get("ThrottleTimeMs"), topics, parsed, corr,
        )  # fmt: skip

    def _body(
        self, walk: Walker, flexible: bool, body: bytes, pos: int, complete: bool,
        fused: WalkErrors | None = None, errors: list[tuple[str, int]] | None = None,
    ) -> tuple[dict[str, Any], bool]:  # fmt: skip
        """The fields a body's walk stored, from `pos` (after the header's fixed part), and whether it was
        read whole: not when cut (Short: the fields read so far) or unreadable (DecodeError: none). With
        `fused` and `errors`: walked by `fused` instead, which also fills `errors` (emptied on DecodeError)."""
        n = len(body)
        fields: dict[str, Any] = {}
        try:
            if flexible:
                if pos < n and body[pos] == 0:
                    pos += 1  # no tagged fields in the header: the common case
                else:
                    pos = skip_tagged(body, pos, n)
            if fused is None or errors is None:
                walk(body, pos, n, fields)
            else:
                fused(body, pos, n, fields, errors)
        except Short:
            return fields, False
        except DecodeError:
            if errors is not None:
                errors.clear()
            # the size framed the message: a body we cannot read costs its fields, not the stream (e.g. an
            # ApiVersions v0 body answering an unsupported version)
            self._count("body_errors")
            return {}, False
        return fields, complete

    def _api(self, api_key: int, version: int, key: int) -> _Api:
        apis = self._apis
        if len(apis) >= MAX_APIS:
            apis.clear()
            self._count("api_memo_resets")
        api = apis[key] = _Api(api_key, version)
        return api

    def _count(self, name: str) -> None:
        self._counters[name] = self._counters.get(name, 0) + 1

    # -- topics --------------------------------------------------------------------------------------------
    def _topics(
        self, items: Iterable[dict[str, Any]], name_key: str, parts_key: str, index_key: str
    ) -> tuple[tuple[TopicSummary, ...], Any]:
        """Produce / Fetch topics (partitions, records, record bytes), and the first record headers found."""
        out = []
        headers = None
        for t in items:
            records = nbytes = 0
            parts = []
            for p in t.get(parts_key, ()):
                parts.append(p.get(index_key, -1))
                rec = p.get("Records")
                if rec is not None:
                    records += rec[0]
                    nbytes += rec[1]
                    if headers is None and rec[2]:
                        headers = rec[2]
            name, topic_id = t.get(name_key), t.get("TopicId")
            if topic_id is not None and name is None:
                name = self._topic_ids.get(topic_id)
            out.append(TopicSummary(name, topic_id, tuple(parts), records, nbytes))
        return tuple(out), headers

    def _learn_topic_ids(self, topics: Iterable[dict[str, Any]]) -> None:
        ids = self._topic_ids
        for t in topics:
            tid, name = t.get("TopicId"), t.get("Name")
            if tid and name and tid != "0" * 32:
                if tid not in ids and len(ids) >= MAX_TOPIC_IDS:
                    del ids[next(iter(ids))]
                    self._count("topic_ids_evicted")
                ids[tid] = name


# api key 0-92 and version 0-64 as they sit in a request header (big-endian int16s)
_HEADER_CANDIDATE = re.compile(rb"(?=\x00[\x00-\x5c]\x00[\x00-\x40])")  # lookahead: matches may overlap


_PRINTABLE = bytes(range(0x20, 0x7F))


def _find_request(chunk: bytes) -> tuple[int, int]:
    """(offset of a plausible request start or -1, offset from which to keep bytes)."""
    n = len(chunk)
    keep = max(0, n - 13)
    for m in _HEADER_CANDIDATE.finditer(chunk):
        i = m.start() - 4
        if i < 0:
            continue
        if i + 14 > n:
            keep = min(keep, i)
            break
        size, api_key, version, corr, clen = struct.unpack_from(">ihhih", chunk, i)
        if api_key not in API_NAMES or not 10 <= size <= MAX_MESSAGE or not -1 <= clen <= MAX_CLIENT_ID:
            continue
        schema = SCHEMAS.get(api_key)
        if clen == 0 or clen + 10 > size or corr < 0 or (schema is not None and version > schema[0][1]):
            continue  # clients name themselves (an empty client id is legal but rare: not worth false starts)
        if i + 14 + max(clen, 0) > n:
            keep = min(keep, i)  # may be a header whose client id is still to come
            continue
        if clen < 0 or not chunk[i + 14 : i + 14 + clen].translate(None, _PRINTABLE):
            return i, 0
    return -1, keep


def _find_response(chunk: bytes, inflight: dict[int, tuple[int, _Api]]) -> tuple[int, int]:
    """(offset of a size followed by the correlation id of a request in flight, or -1; keep from)."""
    best = -1
    for corr in list(inflight)[-64:]:  # the most recent requests: responses come in order
        i = chunk.find(_RESP_CORR.pack(corr), 4)
        while i >= 4:
            (size,) = _I32.unpack_from(chunk, i - 4)
            if 4 <= size <= MAX_MESSAGE:
                if best < 0 or i - 4 < best:
                    best = i - 4
                break
            i = chunk.find(_RESP_CORR.pack(corr), i + 1)
    if best >= 0:
        return best, 0
    return -1, max(0, len(chunk) - 8)


def new_decoder(ctx: DecoderContext) -> KafkaDecoder:
    """Registry factory."""
    return KafkaDecoder(ctx)
