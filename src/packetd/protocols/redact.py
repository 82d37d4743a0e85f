"""What may leave the host: the one place that decides which captured values are replaced.

Theory of operation. A decoder keeps what it saw (raw header blocks, request targets, statement bytes);
nothing is redacted on the hot path. A value leaves the host only through a record's `to_json()` — the
redacted view — and every output is built from that view: the JSON line (`watch`, the roundtrip file,
`/watch`), the text line, span attributes and OTLP (pipeline/spans.py reads the record, not the message).
The messages' `to_json()` call the functions below, so a rule changed here changes every output at once.

The rules (each configurable where a decoder option is named):

* HTTP header values (HTTP/1 header blocks, HTTP/2 and gRPC headers, trailers and metadata), option
  `redact`: a field is redacted when its lower-cased name is in the set, or matches one of the set's
  `*`-patterns (`*token*`: the name contains `token`). The default is the fixed list (Authorization,
  Proxy-Authorization, Cookie, Set-Cookie, X-Api-Key, X-Auth-Token) plus every name containing `token`,
  `secret`, `password`, `api-key`, `apikey` or `auth`. The value is judged after obs-fold unfolding (RFC
  9112 §5.2), so a continuation line is part of the secret. An authorization value keeps its scheme
  (`Bearer [REDACTED]`) only when the first word is a registered HTTP authentication scheme (matched
  case-insensitively, RFC 9110 §11.1), so a bare token with a space in it is never half-kept.
  HTTP/2 fields the sender marked never-indexed (RFC 7541 §7.1.3) are redacted whatever their name.
* Query strings (HTTP/1 request-target, HTTP/2 `:path`), option `redact_query`: the value of a parameter
  whose (percent-decoded, lower-cased) name is in the set becomes `[REDACTED]`; names and the other values
  stay, so a path template and a dashboard still work.
* Credentials in an authority (`http://user:pw@host/`, absolute-form targets and a Host without a
  Host header) become `[REDACTED]@host`.
* Captured HTTP/1 bodies (opt-in, `capture_body`): a form body is a query string to these rules; in a
  JSON body a member named like a sensitive parameter has its (string, number or literal) value replaced,
  at any depth (`{"access_token": "..."}` in an OAuth answer). Other bodies are kept as captured.
* SQL statements (MySQL, PostgreSQL), option `keep_literals`: every literal becomes `?` (sqltext.py is the
  lexer; `statement()` below is the decision).
* Server error messages (MySQL, PostgreSQL, Redis, MongoDB, gRPC's grpc-message) quote what they were sent back — MySQL's
  `near '...'`, PostgreSQL's `invalid input syntax for type integer: "..."`, Redis's `with args beginning
  with: '...'`, MongoDB's `dup key: { email: "..." }` — so everything from the first quote to the last
  becomes `?` (`server_message`); the error's code and wording stay. Always, whatever `keep_literals`
  says: the statement the user chose to keep is in the record already.
* Redis argument values, MySQL/PostgreSQL authentication data, AMQP credentials, MongoDB values and
  Kafka SASL bytes are never kept by their decoders at all (see each protocol's messages module).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Final
from urllib.parse import unquote_plus

from packetd.protocols.sqltext import normalize

REDACTED = "[REDACTED]"

# the fixed names plus name patterns (issue 14): any header whose name contains one of these words
DEFAULT_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "x-auth-token",
        "*token*",
        "*secret*",
        "*password*",
        "*api-key*",
        "*apikey*",
        "*auth*",
    }
)
# query parameters whose values are replaced (lower case: matched case-insensitively)
DEFAULT_QUERY = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "token",
        "access_token",
        "api_key",
        "apikey",
        "key",
        "secret",
        "signature",
        "sig",
        "awsaccesskeyid",
        "x-amz-signature",
        "x-goog-signature",
    }
)
# HTTP authentication schemes (IANA "HTTP Authentication Scheme Registry", plus the common non-registered
# Token/ApiKey): the only first words of an authorization value a record keeps
AUTH_SCHEMES = frozenset(
    {
        "basic",
        "bearer",
        "digest",
        "dpop",
        "gnap",
        "hoba",
        "mutual",
        "negotiate",
        "ntlm",
        "privatetoken",
        "scram-sha-1",
        "scram-sha-256",
        "vapid",
        "aws4-hmac-sha256",
        "token",
        "apikey",
    }
)
# distinct `redact` sets seen (one per configured decoder option, so a handful); bounded all the same
_RULE_CACHE: Final = 64
# header-name decisions remembered per rule set (real traffic uses a few dozen names)
_NAME_CACHE: Final = 4096


@functools.lru_cache(maxsize=_RULE_CACHE)
def header_rule(names: frozenset[str]) -> Callable[[str], bool]:
    """A predicate over lower-cased header names for one `redact` set (exact names and `*`-patterns)."""
    exact = frozenset(n for n in names if "*" not in n)
    parts = tuple(p for p in (n.strip("*") for n in names if "*" in n) if p)
    # only `*word*` (contains), `word*` (prefix) and `*word` (suffix) are meaningful; all are treated as
    # "contains", the broader reading: a redaction rule errs towards hiding
    if not parts:
        return exact.__contains__
    seen: dict[str, bool] = {}  # decisions by name: a connection's header names repeat on every message

    def match(name: str) -> bool:
        hit = seen.get(name)
        if hit is None:
            hit = name in exact or any(p in name for p in parts)
            if len(seen) >= _NAME_CACHE:  # bounded: names are the peer's to choose
                seen.clear()
            seen[name] = hit
        return hit

    return match


@functools.lru_cache(maxsize=_RULE_CACHE)
def header_changes(names: frozenset[str]) -> Callable[[str], bool]:
    """A predicate: may header_value change a field of this name? (Callers skip the others, the common
    case: a Host is judged for credentials, the rest by the `redact` set.)"""
    rule = header_rule(names)
    return lambda name: name in ("host", "grpc-message") or rule(name)


def header_value(name: str, text: str, names: frozenset[str], sensitive: bool = False) -> str:
    """The record's form of one header field value (`name` lower-cased, `text` unfolded)."""
    if not sensitive and not header_rule(names)(name):
        if name == "host":
            return userinfo(text) or text
        if name == "grpc-message":  # a server's error text, as grpc_message (server_message)
            return server_message(text) or text
        return text
    scheme, sp, _rest = text.strip().partition(" ")
    if sp and scheme.lower() in AUTH_SCHEMES:
        return f"{scheme} {REDACTED}"
    return REDACTED


def query(text: str, params: frozenset[str]) -> str:
    """A query string with the values of sensitive parameters replaced (`a=1&token=x` → `a=1&token=[REDACTED]`)."""
    if not params or not text:
        return text
    pieces = text.split("&")
    changed = False
    for i, piece in enumerate(pieces):
        name, eq, val = piece.partition("=")
        if eq and val and unquote_plus(name).strip().lower() in params:
            pieces[i] = f"{name}={REDACTED}"
            changed = True
    return "&".join(pieces) if changed else text


def userinfo(authority: str | None) -> str | None:
    """An authority without its credentials (`user:pw@host` → `[REDACTED]@host`, RFC 3986 §3.2.1)."""
    if not authority or "@" not in authority:
        return authority
    return f"{REDACTED}@{authority.rpartition('@')[2]}"


def target(text: str | None, params: frozenset[str]) -> str | None:
    """A request-target or `:path` with its query redacted (the fragment, if any, is kept as is) and, in
    absolute-form (`http://user:pw@host/...`, sent to proxies), its userinfo."""
    if not text:
        return text
    if "://" in text:
        scheme, sep, rest = text.partition("://")
        end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
        if "@" in rest[:end]:
            text = f"{scheme}{sep}{userinfo(rest[:end])}{rest[end:]}"
    if "?" not in text or not params:
        return text
    head, _, rest = text.partition("?")
    q, hsh, frag = rest.partition("#")
    return f"{head}?{query(q, params)}{hsh}{frag}"


# a JSON member whose name is a sensitive parameter, with a string, number or literal value
_JSON_MEMBER = re.compile(r'"([A-Za-z0-9_.\-]{1,64})"(\s*:\s*)("(?:[^"\\]|\\.)*"?|[^,{}\[\]\s"]+)')


def body(text: str, content_type: str | None, params: frozenset[str]) -> str:
    """A captured body (opt-in, `capture_body`) with the same parameters' values replaced: a form body
    (application/x-www-form-urlencoded) as a query string, a JSON body by member name (at any depth)."""
    if not params or not content_type:
        return text
    ctype = content_type.lower()
    if "x-www-form-urlencoded" in ctype:
        return query(text, params)
    if "json" in ctype:

        def member(m: re.Match[str]) -> str:
            if m.group(1).lower() not in params:
                return m.group(0)
            return f'"{m.group(1)}"{m.group(2)}"{REDACTED}"'

        return _JSON_MEMBER.sub(member, text)
    return text


# statement texts whose record form is remembered (both SQL dialects, one memo): a prepared statement is
# executed again and again with the same bytes, a client sends its fixed queries again and again, and
# normalising the literals (a regex pass) is most of what such a record costs; the least recently used
# beyond this many (each at most a decoder's statement cap) are recomputed when seen again
# (`statement.cache_info()`). 2048: what MySQL's and PostgreSQL's memos of 1024 each held together.
MAX_STATEMENT_TEXTS: Final = 2048


@functools.lru_cache(maxsize=MAX_STATEMENT_TEXTS)
def statement(raw: bytes, truncated: bool, keep_literals: bool, dialect: str) -> str:
    """The record's form of a captured SQL statement (raw bytes as cut at the decoder's cap); a pure
    function of its arguments, hence the memo."""
    text = raw.decode("utf-8", "replace")
    if truncated:
        # a multi-byte character cut by the cap decodes as U+FFFD: drop it
        text = text.rstrip("\ufffd")
    return text if keep_literals else normalize(text, dialect)


# a quote character that opens or closes a quoted run: not between two word characters (the apostrophe of
# "doesn't" is neither)
_QUOTE = re.compile(r"(?<!\w)['\"`]|['\"`](?!\w)")
# characters the MySQL, PostgreSQL and Redis decoders keep of an error message (MAX_ERROR)
MESSAGE_CAP: Final = 256


def server_message(text: str | None) -> str | None:
    """A server's error message with what it quotes back replaced: from the first quote to the last
    (nested quotes included: one span, never a fragment left), `?`; when the message may have been cut
    inside a quote (at the decoders' cap, or an odd number of quotes), from the first to the end."""
    if not text:
        return text
    quotes = [m.start() for m in _QUOTE.finditer(text)]
    if not quotes:
        return text
    first, last = quotes[0], quotes[-1]
    if len(text) >= MESSAGE_CAP or len(quotes) % 2:
        return f"{text[:first]}?"
    return f"{text[:first]}?{text[last + 1 :]}"
