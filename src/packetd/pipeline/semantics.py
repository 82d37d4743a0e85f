"""The generic side of what roundtrips mean to metrics and traces; each protocol's side is its package's.

A protocol's metric labels, default label set, span name and attributes live in its package
(`protocols/<name>/semantics.py`, carried by its `SPEC.semantics`; protocols/semantics.py is the shape).
This module keeps what every protocol shares — the endpoint labels, `operation`, `status` and `error` —
and looks a record's protocol up in the registry for the rest. Nothing here names a protocol.

Metric labels keep the Go implementation's `requireLabels` names (reference §8.2) with its bugs fixed
(§18.21); span attributes follow the OpenTelemetry semantic conventions, built from the record's JSON (the
redacted view, protocols/redact.py), so `db.query.text`, `url.query` and header-derived attributes are
exactly what the JSON record shows.
"""

from __future__ import annotations

from collections.abc import Callable

from packetd.pairing.roundtrip import Roundtrip
from packetd.protocols.registry import REGISTRY
from packetd.protocols.semantics import GENERIC, AttrValue, Semantics

Getter = Callable[[Roundtrip], object]

_BY_NAME: dict[str, Semantics] = {spec.name: spec.semantics for spec in REGISTRY.specs()}


def semantics_of(protocol: str) -> Semantics:
    """The protocol's semantics; the generic ones for a name that is not registered."""
    return _BY_NAME.get(protocol, GENERIC)


def _operation(rt: Roundtrip) -> object:
    return rt.operation


def _status(rt: Roundtrip) -> object:
    return rt.status


def _error(rt: Roundtrip) -> object:
    return rt.error


GENERIC_DEFAULT = GENERIC.default_labels
# requireLabels every protocol accepts besides the endpoints → (label name, getter)
GENERIC_LABELS: dict[str, tuple[str, Getter]] = {
    "request.operation": ("operation", _operation),
    "response.status": ("status", _status),
    "response.error": ("error", _error),
}


def url_path(rt: Roundtrip) -> str | None:
    """The request's URL path without its query, for protocols that have one (the watch summary)."""
    return semantics_of(rt.protocol).path(rt.request)


def affected_rows(rt: Roundtrip) -> int | None:
    """Rows a write changed, as the server reported (MySQL OK packet; PostgreSQL's command tag)."""
    if rt.response is None:
        return None
    return semantics_of(rt.protocol).affected_rows(rt.response)


# -- metricsStorage.naming: otel ---------------------------------------------------------------------------
# The duration histograms and their attributes are pipeline/otlp_metrics.py's (metric_for,
# metric_attributes: the same as the OTLP metrics exporter's, from the span builders); these are the two
# semconv metrics it does not produce, on the same attributes.
OTEL_HTTP_BODY = ("http_server_request_body_size_bytes", "http_server_response_body_size_bytes")
OTEL_ROWS = "db_client_response_returned_rows"

__all__ = [
    "GENERIC_DEFAULT",
    "GENERIC_LABELS",
    "OTEL_HTTP_BODY",
    "OTEL_ROWS",
    "AttrValue",
    "affected_rows",
    "semantics_of",
    "url_path",
]
