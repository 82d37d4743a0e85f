"""Kafka detection: a request header with a known API key and version and a plausible client id.

    int32 size (≥ 10, ≤ 100 MB) | int16 api_key | int16 api_version | int32 correlation_id |
    int16 client_id length (-1: null) | client_id bytes                  (request header v1 and v2)

The API key must be one of the protocol's (schema_data.API_NAMES) and the version at most the newest its
schema knows (old versions, down to 0, are still spoken by old clients); the client id is printable
ASCII and not empty (every client library names itself). Every request carries this header, so any request that starts a segment is a starting point: a
connection joined mid-stream is detected from its next request.
"""

from __future__ import annotations

import struct

from packetd.protocols.detection import MORE, NO, YES, Verdict
from packetd.protocols.kafka.schema_data import API_NAMES, SCHEMAS

_HEADER = struct.Struct(">ihhih")
_MAX_REQUEST = 100 * 1024 * 1024  # socket.request.max.bytes default
_MAX_CLIENT_ID = 256  # client ids are short names ("rdkafka", "console-producer", "consumer-group-1")
_UNKNOWN_SCHEMA_MAX_VERSION = 4  # APIs without a schema here (broker-internal ones): their early versions
_MAX_VERSION = {
    key: (SCHEMAS[key][0][1] if key in SCHEMAS else _UNKNOWN_SCHEMA_MAX_VERSION) for key in API_NAMES
}


def detect(c2s: bytes, s2c: bytes) -> Verdict:
    """A request header from the client."""
    n = len(c2s)
    if n >= 4 and not 10 <= int.from_bytes(c2s[:4], "big") <= _MAX_REQUEST:
        return NO
    if n >= 8:
        key, version = struct.unpack_from(">hh", c2s, 4)
        top = _MAX_VERSION.get(key)
        if top is None or not 0 <= version <= top:
            return NO
    if n < 14:
        return MORE
    size, _key, _version, _correlation, id_len = _HEADER.unpack_from(c2s)
    if id_len == -1:
        return YES
    if not 0 < id_len <= min(_MAX_CLIENT_ID, size - 10):  # an empty id: too little to tell from chance
        return NO
    client_id = c2s[14 : 14 + id_len]
    if any(b < 0x20 or b > 0x7E for b in client_id):
        return NO
    return YES if len(client_id) == id_len else MORE
