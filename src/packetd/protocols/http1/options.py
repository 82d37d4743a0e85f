"""HTTP/1 decoder options (`--decoder http.KEY=VALUE`, `decoder.http.*` in the agent config).

Each field's `doc` metadata is its documentation: the README's decoder options table is generated from it
(scripts/options_table.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field

from packetd._values import value
from packetd.protocols.http1.messages import DEFAULT_QUERY_REDACTED, DEFAULT_REDACTED


@value
class HttpOptions:
    """Decoder options (`decoder.http.*` in the agent config; `--capture-body` in watch)."""

    capture_body: int = field(
        default=0,
        metadata={
            "doc": "keep up to this many bytes of textual bodies (0: off; reference §6.1); form and JSON "
            "bodies are redacted like query strings"
        },
    )
    redact: frozenset[str] = field(
        default=DEFAULT_REDACTED,
        metadata={
            "doc": "header names (or `*word*` patterns) whose values are `[REDACTED]`; setting it replaces the list",
            "default": "see Redaction",
        },
    )
    redact_query: frozenset[str] = field(
        default=DEFAULT_QUERY_REDACTED,
        metadata={
            "doc": "query (and captured form/JSON body) parameters whose values are `[REDACTED]`",
            "default": "see Redaction",
        },
    )


def reference_keys(values: Mapping[str, object]) -> tuple[dict[str, object], dict[str, object]]:
    """The Go implementation's `enableBodyCapture` / `maxBodySize` (reference §2.2): body capture on, with
    its size (default 102400), unless `captureBody` is set too."""
    rest = {k: v for k, v in values.items() if k not in ("enableBodyCapture", "maxBodySize")}
    defaults: dict[str, object] = {}
    if values.get("enableBodyCapture"):
        defaults["capture_body"] = values.get("maxBodySize", 102400)
    return rest, defaults


__all__ = ["HttpOptions", "reference_keys"]
