"""HTTP/1 request heads into record fields: `parse_header_block` (and its bounded memos), `split_target`.

Apart from messages.py so that the compiled build compiles it (buildinfo.COMPILED_MODULES): messages.py
cannot be compiled (its `@value` classes, buildinfo.py says why), and this is the per-record work of an
HTTP/1 record (every line of both header blocks, every record). The counters `decision_resets` and
`line_cache_resets` are read from here by the agent (/metrics `packetd_memo_resets_total`).
"""

from __future__ import annotations

from typing import Final

from packetd.protocols import redact as policy

MAX_HEADER_VALUE: Final = 4096  # a record keeps at most this many characters of one header value


# redact set → header name → whether policy.header_value may change its value: one dict lookup per field
# instead of the predicate's calls; bounded (names are the peer's to choose), emptied when full, the names
# of one set at MAX_DECISION_NAMES, every set (and its line memo) at MAX_DECISION_SETS redact sets: each
# emptying counts in `decision_resets` (the names are judged again, nothing else is lost)
_DECISIONS: dict[frozenset[str], dict[str, bool]] = {}
MAX_DECISION_SETS: Final = 64
MAX_DECISION_NAMES: Final = 4096
decision_resets = 0
# redact set → header line → its (name, value) in the record, for lines no redaction changes: a connection
# sends most of its header lines again on every message (Host, User-Agent, Server, Content-Type, ...), so a
# line is split, stripped and judged once. Bounded: at most MAX_CACHED_LINES lines of at most
# MAX_CACHED_LINE characters per set (~1 MiB at worst), emptied when full (`line_cache_resets` counts it:
# traffic with that many distinct short lines only loses the memo, never a field). A value a redaction
# changes (a credential) is never kept here.
_LINES: dict[frozenset[str], dict[str, tuple[str, str]]] = {}
MAX_CACHED_LINES: Final = 2048
MAX_CACHED_LINE: Final = 256
line_cache_resets = 0


def _decide(names: frozenset[str], decided: dict[str, bool], key: str) -> bool:
    global decision_resets
    hit = policy.header_changes(names)(key)
    if len(decided) >= MAX_DECISION_NAMES:
        decided.clear()
        decision_resets += 1
    decided[key] = hit
    return hit


def _tables(names: frozenset[str]) -> tuple[dict[str, bool], dict[str, tuple[str, str]]]:
    """The name decisions and the line memo of one redact set (made on its first block)."""
    global decision_resets
    if len(_DECISIONS) >= MAX_DECISION_SETS:
        _DECISIONS.clear()
        _LINES.clear()
        decision_resets += 1
    decided = _DECISIONS[names] = {}
    lines = _LINES[names] = {}
    return decided, lines


def parse_header_block(block: bytes, names: frozenset[str]) -> dict[str, list[str]]:
    """Header fields in order, lower-cased names, repeated fields kept in order, obs-fold joined.

    A value is unfolded completely before it is judged (policy.header_value), so a secret continued on
    an obs-fold line is redacted whole.
    """
    global line_cache_resets
    # one decode of the whole block (field names are ASCII tokens; values UTF-8, bad bytes replaced)
    text_block = block.decode("utf-8", "replace")
    if "\r\n " in text_block or "\r\n\t" in text_block or text_block.startswith((" ", "\t")):
        return _parse_folded(text_block, names)
    decided = _DECISIONS.get(names)
    lines = _LINES.get(names)
    if decided is None or lines is None:
        decided, lines = _tables(names)
    headers: dict[str, list[str]] = {}
    for line in text_block.split("\r\n"):
        field = lines.get(line)
        if field is not None:
            key, text = field
        else:
            name, sep, raw = line.partition(":")
            if not sep:
                continue  # empty, or not a field line; framing has already accepted the block, so skip it
            key = name.strip().lower()
            text = raw.strip()[:MAX_HEADER_VALUE]
            hit = decided.get(key)
            if hit is None:
                hit = _decide(names, decided, key)
            keep = len(line) <= MAX_CACHED_LINE
            if hit:
                value = policy.header_value(key, text, names)
                if value != text:
                    text = value
                    keep = False  # changed by a redaction: not remembered
            if keep:
                if len(lines) >= MAX_CACHED_LINES:
                    lines.clear()
                    line_cache_resets += 1
                lines[line] = (key, text)
        lst = headers.get(key)
        if lst is None:
            headers[key] = [text]
        else:
            lst.append(text)
    return headers


def _parse_folded(text_block: str, names: frozenset[str]) -> dict[str, list[str]]:
    """parse_header_block for a block with obs-fold lines (RFC 9112 §5.2)."""
    fields: list[list[str]] = []  # [name, value] pairs, the value growing with its obs-fold lines
    for line in text_block.split("\r\n"):
        if not line:
            continue
        if line[0] in " \t":  # obsolete line folding: continues the previous value
            if fields:
                last = fields[-1]
                last[1] = (last[1] + " " + line.strip())[:MAX_HEADER_VALUE]
            continue
        name, sep, raw = line.partition(":")
        if not sep:
            continue  # not a field line; framing has already accepted the block, so skip it
        fields.append([name.strip().lower(), raw.strip()[:MAX_HEADER_VALUE]])
    headers: dict[str, list[str]] = {}
    changes = policy.header_changes(names)
    for key, text in fields:
        value = policy.header_value(key, text, names) if changes(key) else text
        lst = headers.get(key)
        if lst is None:
            headers[key] = [value]
        else:
            lst.append(value)
    return headers


def split_target(target: str) -> tuple[str | None, str | None, str, str | None]:
    """Request-target (RFC 9112 §3.2) → (scheme, authority, path, query) for all four forms."""
    scheme = authority = None
    rest = target
    if target.startswith("/"):
        pass  # origin-form
    elif target == "*":
        return None, None, "*", None  # asterisk-form (OPTIONS *)
    elif "://" in target:  # absolute-form (proxies)
        scheme, _, rest = target.partition("://")
        slash = rest.find("/")
        if slash < 0:
            authority, rest = rest, "/"
        else:
            authority, rest = rest[:slash], rest[slash:]
        q = authority.find("?")
        if q >= 0:
            authority, rest = authority[:q], "/" + authority[q:]
    else:
        return None, target, "", None  # authority-form (CONNECT host:port)
    path, sep, query = rest.partition("?")
    frag = (query if sep else path).find("#")
    if frag >= 0:
        if sep:
            query = query[:frag]
        else:
            path = path[:frag]
    return scheme, authority, path, (query if sep else None)
