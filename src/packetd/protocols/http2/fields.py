"""HTTP/2 and gRPC header fields into record values: the field map of a header block, gRPC status, paths.

Apart from messages.py so that the compiled build compiles it (buildinfo.COMPILED_MODULES): messages.py
cannot be compiled (its `@value` classes, buildinfo.py says why), and these run for every HTTP/2 or gRPC
record (each header block's fields, the status and path of each call).
"""

from __future__ import annotations

from typing import Final

from packetd.protocols import redact as policy
from packetd.protocols.http1.headers import MAX_HEADER_VALUE

Fields = tuple[tuple[bytes, bytes], ...]

# RFC 9113 §7 error codes; an unknown code is kept as its number (never an error of ours)
ERROR_CODES: dict[int, str] = {
    0x0: "NO_ERROR",
    0x1: "PROTOCOL_ERROR",
    0x2: "INTERNAL_ERROR",
    0x3: "FLOW_CONTROL_ERROR",
    0x4: "SETTINGS_TIMEOUT",
    0x5: "STREAM_CLOSED",
    0x6: "FRAME_SIZE_ERROR",
    0x7: "REFUSED_STREAM",
    0x8: "CANCEL",
    0x9: "COMPRESSION_ERROR",
    0xA: "CONNECT_ERROR",
    0xB: "ENHANCE_YOUR_CALM",
    0xC: "INADEQUATE_SECURITY",
    0xD: "HTTP_1_1_REQUIRED",
}

# gRPC status codes (grpc/doc/statuscodes.md)
GRPC_STATUS: tuple[str, ...] = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)
UNKNOWN: Final = 2
CANCELLED: Final = 1
INTERNAL: Final = 13

# grpc/doc/http-grpc-status-mapping.md: an HTTP status without grpc-status
_HTTP_TO_GRPC = {400: INTERNAL, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14}
# grpc/doc/PROTOCOL-HTTP2.md "Errors": RST_STREAM codes as the client reports them
_RST_TO_GRPC = {0x7: 14, 0x8: CANCELLED, 0xB: 8, 0xC: 7}

# grpc-timeout units (PROTOCOL-HTTP2.md: TimeoutValue TimeoutUnit) in nanoseconds
_TIMEOUT_UNITS = {
    "H": 3_600_000_000_000,
    "M": 60_000_000_000,
    "S": 1_000_000_000,
    "m": 1_000_000,
    "u": 1_000,
    "n": 1,
}


def error_code(code: int | None) -> str | int | None:
    """An RST_STREAM/GOAWAY error code for the record: its RFC name, or the number when unknown."""
    if code is None:
        return None
    return ERROR_CODES.get(code, code)


def grpc_status_from_http(status: int | None) -> int:
    """The gRPC status a client reports for an HTTP status that came without grpc-status."""
    if status is None or status == 200:
        return UNKNOWN
    return _HTTP_TO_GRPC.get(status, UNKNOWN)


def grpc_status_from_reset(code: int) -> int:
    return _RST_TO_GRPC.get(code, INTERNAL)


def parse_grpc_timeout(raw: str | None) -> int | None:
    """`grpc-timeout: 1S` → nanoseconds; None when absent or malformed (at most 8 digits, one unit)."""
    if not raw or len(raw) < 2 or len(raw) > 9:
        return None
    digits, unit = raw[:-1], raw[-1]
    if not digits.isdigit() or unit not in _TIMEOUT_UNITS:
        return None
    return int(digits) * _TIMEOUT_UNITS[unit]


def split_grpc_path(path: str | None) -> tuple[str, str]:
    """`/pkg.Service/Method` → (`pkg.Service`, `Method`); anything else → (path without the slash, "")."""
    if not path:
        return "", ""
    p = path[1:] if path.startswith("/") else path
    service, sep, method = p.rpartition("/")
    if not sep or not service:
        return p, ""
    return service, method


# field_map results by (fields, redact, sensitive). HTTP/2 peers send the same header block for every call
# once it is indexed, and the decoder hands out the very same fields tuple for it (its block cache), so the
# same record maps are built again and again; each is built once here and copied out. Bounded in entries
# and in what each keeps alive (lists of few, short fields only); cleared when full.
MAX_FIELD_MAPS: Final = 256
MAX_MAPPED_FIELDS: Final = 64
MAX_MAPPED_BYTES: Final = 8 * 1024
_field_maps: dict[
    tuple[Fields, frozenset[str], frozenset[bytes]], tuple[tuple[str, tuple[str, ...]], ...]
] = {}


def field_map(fields: Fields, redact: frozenset[str], sensitive: frozenset[bytes]) -> dict[str, list[str]]:
    """Header fields by name (HTTP/2 names are lower-case on the wire), repeated values kept in order;
    values judged by redact.header_value (by name, or never-indexed on the wire). A fresh dict each call."""
    key = (fields, redact, sensitive)
    known = _field_maps.get(key)
    if known is None:
        out = _build_field_map(fields, redact, sensitive)
        if len(fields) <= MAX_MAPPED_FIELDS and sum(len(n) + len(v) for n, v in fields) <= MAX_MAPPED_BYTES:
            if len(_field_maps) >= MAX_FIELD_MAPS:
                _field_maps.clear()
            _field_maps[key] = tuple((k, tuple(v)) for k, v in out.items())
        return out
    return {k: list(v) for k, v in known}


def _build_field_map(
    fields: Fields, redact: frozenset[str], sensitive: frozenset[bytes]
) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, raw in fields:
        key = name.decode("latin-1")
        if key.endswith("-bin"):
            text = raw.decode("latin-1")[:MAX_HEADER_VALUE]  # base64 binary metadata: kept, never decoded
        else:
            text = raw.decode("utf-8", "replace")[:MAX_HEADER_VALUE]
        text = policy.header_value(key, text, redact, name in sensitive)
        lst = out.get(key)
        if lst is None:
            out[key] = [text]
        else:
            lst.append(text)
    return out


def field_value(fields: Fields | None, name: bytes) -> bytes | None:
    """The first value of the field `name` (lower-case bytes), or None."""
    if fields:
        for n, v in fields:
            if n == name:
                return v
    return None
