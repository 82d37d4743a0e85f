"""SQL statement text as the MySQL and PostgreSQL records show it: capped, literals replaced by `?`.

Statements leave the host in records, so by default every literal value in them is replaced, whatever it
holds (passwords in `ALTER USER ... PASSWORD '...'`, e-mail addresses in a WHERE clause). The rule:

* string literals become `?`: '...' (doubled quotes and, in MySQL, backslash escapes inside), with an
  optional prefix E'', B'', X'', N'', U&'' (PostgreSQL) or _charset'' / b'' / x'' (MySQL); PostgreSQL
  dollar-quoted strings ($$...$$, $tag$...$tag$); MySQL double-quoted strings ("..." is an identifier in
  PostgreSQL and stays);
* numbers become `?`: integers, decimals, exponents, 0x hex and 0b binary, when not part of a name
  (`t1`, `col_2` and the placeholders `$1` stay);
* a parenthesised list of nothing but replaced literals becomes `(?)`: `IN (1, 2, 3)` → `IN (?)`, and a
  run of such lists collapses too: `VALUES (1, 'a'), (2, 'b')` → `VALUES (?)`;
* everything else stays: keywords, names, operators, placeholders (`?`, `$1`, `:name`), comments
  (`/* ... */` carries sqlcommenter trace context), and runs of white space become one space.

The text is cut to the configured cap (bytes, before replacement) on the wire side; a literal cut in half
by the cap is still replaced (an unterminated string runs to the end). Whether literals are replaced is
decided in protocols/redact.py (`statement`), the one place that decides what leaves the host.

Written by hand: sqlparse and friends build full token trees (tens of µs per statement); this is one
regular-expression pass, run only when a record is serialised.
"""

from __future__ import annotations

import re
from dataclasses import field

from packetd._values import value

_COMMON = (
    r"(?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))"
    r"|(?P<num>(?<![\w$.])(?:0[xX][0-9A-Fa-f]+|0[bB][01]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(?![\w$]))"
)
_PG = re.compile(
    r"(?P<dollar>\$(?P<tag>[A-Za-z_][A-Za-z0-9_]*|)\$.*?(?:\$(?P=tag)\$|\Z))"
    r"|(?P<str>\b[Ee]'(?:[^'\\]|\\.|'')*(?:'|\Z)|(?:\b[BbXxNn]|\b[Uu]&)?'(?:[^']|'')*(?:'|\Z))"
    r"|(?P<ident>\"(?:[^\"]|\"\")*(?:\"|\Z))"
    r"|" + _COMMON,
    re.S,
)
_MYSQL = re.compile(
    r"(?P<str>(?:\b_[A-Za-z0-9]+|\b[BbXxNn])?'(?:[^'\\]|\\.|'')*(?:'|\Z)|\"(?:[^\"\\]|\\.|\"\")*(?:\"|\Z))"
    r"|(?P<ident>`(?:[^`]|``)*(?:`|\Z))"
    r"|(?P<hash>\#[^\n]*)"
    r"|" + _COMMON,
    re.S,
)
_LIST = re.compile(r"\(\s*\?(?:\s*,\s*\?)*\s*\)(?:\s*,\s*\(\s*\?(?:\s*,\s*\?)*\s*\))*")
_SPACE = re.compile(r"\s+")
_STATEMENT_END = {
    "postgresql": re.compile(_PG.pattern + r"|(?P<semi>;)", re.S),
    "mysql": re.compile(_MYSQL.pattern + r"|(?P<semi>;)", re.S),
}


def _replace(m: re.Match[str]) -> str:
    if m.lastgroup in ("str", "num", "dollar"):
        return "?"
    return m.group(0)


def normalize(text: str, dialect: str) -> str:
    """`text` with literals replaced by `?` (see module docstring); dialect "mysql" or "postgresql"."""
    pattern = _PG if dialect == "postgresql" else _MYSQL
    out = pattern.sub(_replace, text)
    if "?" in out:
        out = _LIST.sub("(?)", out)
    return _SPACE.sub(" ", out).strip()


def split_statements(text: str, dialect: str) -> list[str]:
    """The statements of a multi-statement string, split at `;` outside literals, names and comments."""
    pieces: list[str] = []
    start = 0
    for m in _STATEMENT_END[dialect].finditer(text):
        if m.lastgroup == "semi":
            piece = text[start : m.start()].strip()
            if piece:
                pieces.append(piece)
            start = m.end()
    rest = text[start:].strip()
    if rest:
        pieces.append(rest)
    return pieces


def statement_operation(text: object) -> str | None:
    """The operation a statement performs: its first keyword, upper-cased (`select ...` → `SELECT`);
    a leading comment (sqlcommenter) or parenthesis is skipped; None when there is no keyword."""
    if not isinstance(text, str):
        return None
    t = text.lstrip(" \t\r\n(")
    while t.startswith("/*"):
        end = t.find("*/")
        if end < 0:
            return None
        t = t[end + 2 :].lstrip(" \t\r\n(")
    word = t.split(None, 1)[0] if t else ""
    word = word.rstrip(";(")
    return word.upper() if word.isalpha() else None


@value
class StatementOptions:
    """The options of the SQL decoders' statement text (MySQL's and PostgreSQL's options classes)."""

    max_statement: int = field(
        default=1024, metadata={"doc": "bytes of statement text kept (before literals are replaced)"}
    )
    keep_literals: bool = field(
        default=False,
        metadata={"doc": "keep statement text as sent instead of replacing literals with `?`"},
    )
