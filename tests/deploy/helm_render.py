"""A renderer for the subset of Helm's templating (Go text/template + a few Sprig functions) the packetd
chart uses, so the test can turn the chart into manifests and validate them against the Kubernetes schemas.

No `helm` binary is installable here (not in Debian, not on PyPI; Debian's Go is too old to build it), so
this renderer stands in for `helm template`. It implements Go template semantics where the chart relies on
them — `{{-`/`-}}` whitespace trimming, `define`/`include`/`template`, `if`/`else if`/`else`, `with`,
`range`, variables (`$x :=`, `$`), pipelines, parenthesised calls, Go truthiness (false, 0, nil and empty
are false) — and the functions listed in `_FUNCS`. Anything else raises, so the test cannot pass over a
construct it does not understand. `toYaml` sorts keys as Helm's does (it goes through JSON). Printing a
missing value raises instead of printing nothing (Helm prints ""), to catch misspelt value paths.

The real Helm engine checks the chart too where it can be loaded (tests/deploy/helm_lint.py): lint renders
every template with the default values and validates them against values.schema.json.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml


class TemplateError(ValueError):
    """The template uses a construct this renderer does not implement, or is malformed."""


# ---------------------------------------------------------------- lexing: text and {{ actions }}

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)


def _lex(src: str) -> list[tuple[str, str]]:
    """[("text", s) | ("action", body)] with `{{- ` and ` -}}` trimming applied to neighbouring text."""
    out: list[tuple[str, str]] = []
    pos = 0
    trim_next = False
    for m in _ACTION.finditer(src):
        text = src[pos : m.start()]
        if trim_next:
            text = text.lstrip()
        if m.group(1):
            text = text.rstrip()
        if text:
            out.append(("text", text))
        out.append(("action", m.group(2).strip()))
        trim_next = bool(m.group(3))
        pos = m.end()
    text = src[pos:]
    if trim_next:
        text = text.lstrip()
    if text:
        out.append(("text", text))
    return out


# ---------------------------------------------------------------- pipelines

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<str>"(?:[^"\\]|\\.)*"|`[^`]*`)
  | (?P<num>-?\d+(?:\.\d+)?)
  | (?P<lp>\()|(?P<rp>\))|(?P<bar>\|)
  | (?P<assign>:=|=)
  | (?P<comma>,)
  | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
  | (?P<field>\.(?:[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
)""",
    re.X,
)


def _tokens(expr: str) -> list[tuple[str, str]]:
    toks: list[tuple[str, str]] = []
    pos = 0
    expr = expr.rstrip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise TemplateError(f"cannot parse {expr[pos:]!r} in {{{{ {expr} }}}}")
        kind = m.lastgroup
        assert kind is not None
        toks.append((kind, m.group(kind)))
        pos = m.end()
    return toks


@dataclass
class _Scope:
    dot: Any
    root: Any
    vars: dict[str, Any] = field(default_factory=dict)

    def child(self, dot: Any) -> _Scope:
        return _Scope(dot, self.root, dict(self.vars))


_MISSING = object()  # a value path that names nothing (printed: error; tested: false)
_NOTHING = object()  # an assignment prints nothing; no piped value


def _walk(node: Any, parts: list[str]) -> Any:
    for part in parts:
        if node is _MISSING or node is None:
            return _MISSING
        if isinstance(node, dict):
            node = node.get(part, _MISSING)
        else:
            raise TemplateError(f"cannot take field {part} of {type(node).__name__}")
    return node


def _truth(v: Any) -> bool:
    return (
        v is not _MISSING and v is not None and v is not False and v != 0 and v != "" and v != {} and v != []
    )


def _text(v: Any) -> str:
    """Go's printing of a value into the output."""
    if v is _MISSING:
        raise TemplateError("template prints a value the values do not define")
    if v is None:
        return ""  # Helm renders nil as "<no value>" and then removes that text
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float | str):
        return str(v)
    raise TemplateError(f"template prints a {type(v).__name__} without toYaml/toJson")


def _to_yaml(v: Any) -> str:
    if v is _MISSING or v is None:
        return "null"
    return yaml.safe_dump(v, default_flow_style=False, sort_keys=True).rstrip("\n")


def _indent(n: int, s: str) -> str:
    pad = " " * n
    return pad + s.replace("\n", "\n" + pad)


def _default(d: Any, v: Any = _MISSING) -> Any:
    return v if _truth(v) else d


def _printf(fmt: str, *args: Any) -> str:
    return re.sub(r"%[vsd]", "%s", fmt) % tuple(_text(a) for a in args)


def _quote(*args: Any) -> str:
    return " ".join(json.dumps(_text(a)) for a in args if a is not _MISSING and a is not None)


def _required(msg: str, v: Any) -> Any:
    if not _truth(v) and v != 0 and v is not False:
        raise TemplateError(f"required: {msg}")
    return v


_FUNCS: dict[str, Callable[..., Any]] = {
    "toYaml": _to_yaml,
    "toJson": lambda v: json.dumps(v, sort_keys=True, separators=(",", ":")),
    "nindent": lambda n, s: "\n" + _indent(n, s),
    "indent": _indent,
    "default": _default,
    "quote": _quote,
    "printf": _printf,
    "print": lambda *a: "".join(_text(x) for x in a),
    "trunc": lambda n, s: s[:n] if n >= 0 else s[n:],
    "trimSuffix": lambda suf, s: s[: -len(suf)] if suf and s.endswith(suf) else s,
    "replace": lambda old, new, s: s.replace(old, new),
    "contains": lambda sub, s: sub in s,
    "sha256sum": lambda s: hashlib.sha256(s.encode()).hexdigest(),
    "required": _required,
    "toString": _text,
    "int": int,
    "not": lambda v: not _truth(v),
    "and": lambda *a: next((x for x in a if not _truth(x)), a[-1]),
    "or": lambda *a: next((x for x in a if _truth(x)), a[-1]),
    "eq": lambda a, *b: any(a == x for x in b),
    "ne": lambda a, b: a != b,
    "empty": lambda v: not _truth(v),
    "hasKey": lambda d, k: isinstance(d, dict) and k in d,
}


class Chart:
    """The templates of one chart: named templates from every file (`define`), manifests from the files
    not starting with `_`."""

    def __init__(self, files: dict[str, str]) -> None:
        self.defines: dict[str, list[Any]] = {}
        self.files: dict[str, list[Any]] = {}
        for name, src in files.items():
            body = self._parse(_lex(src), name)
            self.defines[name] = body  # each file is itself a named template (`include` of a path)
            self.files[name] = body

    # --------------------------------------------------------- parsing into a tree

    def _parse(self, items: list[tuple[str, str]], name: str) -> list[Any]:
        stack: list[tuple[list[Any], Any]] = [([], None)]
        for kind, body in items:
            cur = stack[-1][0]
            if kind == "text":
                cur.append(("text", body))
                continue
            if body.startswith("/*"):
                if not body.endswith("*/"):
                    raise TemplateError(f"{name}: unterminated comment")
                continue
            word, _, rest = body.partition(" ")
            if word in {"if", "with", "range"}:
                node: list[Any] = [word, [(rest, [])], None]  # kind, [(cond, body)], else-body
                cur.append(node)
                stack.append((node[1][0][1], node))
            elif word == "define":
                node = ["define", json.loads(rest.strip()), []]
                stack.append((node[2], node))
            elif word == "else":
                _, node = stack.pop()
                if node is None or node[0] not in {"if", "with", "range"}:
                    raise TemplateError(f"{name}: else outside if/with/range")
                cond = rest.strip()
                if cond.startswith("if "):
                    node[1].append((cond[3:], []))
                    stack.append((node[1][-1][1], node))
                elif cond:
                    raise TemplateError(f"{name}: unsupported {{{{ else {cond} }}}}")
                else:
                    node[2] = []
                    stack.append((node[2], node))
            elif word == "end":
                _, node = stack.pop()
                if node is None:
                    raise TemplateError(f"{name}: end without a block")
                if node[0] == "define":
                    self.defines[node[1]] = node[2]
            elif word in {"block", "break", "continue"}:
                raise TemplateError(f"{name}: unsupported {{{{ {word} }}}}")
            else:
                cur.append(("action", body))
        if len(stack) != 1:
            raise TemplateError(f"{name}: unbalanced blocks")
        return stack[0][0]

    # --------------------------------------------------------- evaluation

    def render(self, name: str, ctx: dict[str, Any]) -> str:
        return self._exec(self.files[name], _Scope(ctx, ctx))

    def include(self, name: str, data: Any) -> str:
        if name not in self.defines:
            raise TemplateError(f"include of undefined template {name!r}")
        return self._exec(self.defines[name], _Scope(data, data))

    def _exec(self, nodes: list[Any], scope: _Scope) -> str:
        out: list[str] = []
        for node in nodes:
            if node[0] == "text":
                out.append(node[1])
            elif node[0] == "action":
                v = self._pipeline(node[1], scope)
                if v is not _NOTHING:
                    out.append(_text(v))
            elif node[0] == "if":
                for cond, body in node[1]:
                    if _truth(self._pipeline(cond, scope)):
                        out.append(self._exec(body, scope.child(scope.dot)))
                        break
                else:
                    if node[2] is not None:
                        out.append(self._exec(node[2], scope.child(scope.dot)))
            elif node[0] == "with":
                ((cond, body),) = node[1]
                v = self._pipeline(cond, scope)
                if _truth(v):
                    out.append(self._exec(body, scope.child(v)))
                elif node[2] is not None:
                    out.append(self._exec(node[2], scope.child(scope.dot)))
            elif node[0] == "range":
                ((cond, body),) = node[1]
                out.append(self._range(cond, body, node[2], scope))
        return "".join(out)

    def _range(self, cond: str, body: list[Any], else_body: list[Any] | None, scope: _Scope) -> str:
        names: list[str] = []
        m = re.match(r"\s*(\$\w+)\s*(?:,\s*(\$\w+)\s*)?:=\s*(.*)", cond, re.S)
        if m:
            names = [n for n in m.group(1, 2) if n]
            cond = m.group(3)
        coll = self._pipeline(cond, scope)
        if not _truth(coll):
            return self._exec(else_body, scope.child(scope.dot)) if else_body is not None else ""
        pairs = sorted(coll.items()) if isinstance(coll, dict) else list(enumerate(coll))
        out = []
        for k, v in pairs:
            inner = scope.child(v)
            if len(names) == 2:
                inner.vars[names[0]], inner.vars[names[1]] = k, v
            elif names:
                inner.vars[names[0]] = v
            out.append(self._exec(body, inner))
        return "".join(out)

    def _pipeline(self, expr: str, scope: _Scope) -> Any:
        toks = _tokens(expr)
        assign = None
        if len(toks) >= 2 and toks[0][0] == "var" and toks[1][0] == "assign":
            assign = toks[0][1]
            toks = toks[2:]
        value, pos = self._pipe(toks, 0, scope)
        if pos != len(toks):
            raise TemplateError(f"unexpected {toks[pos][1]!r} in {{{{ {expr} }}}}")
        if assign is not None:
            scope.vars[assign] = value
            return _NOTHING
        return value

    def _pipe(self, toks: list[tuple[str, str]], pos: int, scope: _Scope) -> tuple[Any, int]:
        value, pos = self._command(toks, pos, scope)
        while pos < len(toks) and toks[pos][0] == "bar":
            value, pos = self._command(toks, pos + 1, scope, value)
        return value, pos

    def _command(
        self, toks: list[tuple[str, str]], pos: int, scope: _Scope, piped: Any = _NOTHING
    ) -> tuple[Any, int]:
        args: list[Any] = []
        fn: str | None = None
        if pos < len(toks) and toks[pos][0] == "ident" and toks[pos][1] not in {"true", "false", "nil"}:
            fn = toks[pos][1]
            pos += 1
        while pos < len(toks) and toks[pos][0] not in {"bar", "rp"}:
            v, pos = self._operand(toks, pos, scope)
            args.append(v)
        if piped is not _NOTHING:
            args.append(piped)
        if fn is None:
            if len(args) != 1:
                raise TemplateError("a value cannot take arguments")
            return args[0], pos
        if fn in {"include", "template"}:
            name, data = args
            return self.include(name, data), pos
        if fn not in _FUNCS:
            raise TemplateError(f"unsupported function {fn}")
        return _FUNCS[fn](*args), pos

    def _operand(self, toks: list[tuple[str, str]], pos: int, scope: _Scope) -> tuple[Any, int]:
        kind, text = toks[pos]
        if kind == "str":
            return (json.loads(text) if text[0] == '"' else text[1:-1]), pos + 1
        if kind == "num":
            return (float(text) if "." in text else int(text)), pos + 1
        if kind == "ident" and text in {"true", "false", "nil"}:
            return {"true": True, "false": False, "nil": None}[text], pos + 1
        if kind == "field":
            return (scope.dot if text == "." else _walk(scope.dot, text[1:].split("."))), pos + 1
        if kind == "var":
            head, *rest = text.split(".")
            base = scope.root if head == "$" else scope.vars.get(head, _MISSING)
            if base is _MISSING and head not in scope.vars:
                raise TemplateError(f"undefined variable {head}")
            return _walk(base, rest), pos + 1
        if kind == "lp":
            v, pos = self._pipe(toks, pos + 1, scope)
            if pos >= len(toks) or toks[pos][0] != "rp":
                raise TemplateError("unbalanced parentheses")
            return v, pos + 1
        if kind == "ident":  # a function call without parentheses as an argument is not Go syntax
            raise TemplateError(f"function {text} used as an argument needs parentheses")
        raise TemplateError(f"unexpected {text!r}")


def render_chart(files: dict[str, str], ctx: dict[str, Any]) -> dict[str, str]:
    """Every template file not starting with `_` rendered with `ctx` (NOTES.txt included): {name: text}.
    `files` maps names as Helm gives them (`packetd/templates/daemonset.yaml`) to their source."""
    chart = Chart(files)
    out = {}
    for name in files:
        if name.rsplit("/", 1)[-1].startswith("_"):
            continue
        file_ctx = dict(ctx, Template={"Name": name, "BasePath": name.rsplit("/", 1)[0]})
        out[name] = chart.render(name, file_ctx)
    return out
