"""A minimal renderer for the subset of Helm templating the packetd chart uses.

Helm itself is not installable here (no binary in Debian or PyPI), so the chart's templates keep to a
subset this renderer implements — `{{ .Values.a.b }}`, `{{ .Release.Name }}`, `{{ .Release.Namespace }}`,
`{{ .Chart.AppVersion }}`, `{{- toYaml .Values.x | nindent N }}`, `{{- if .Values.x }}` … `{{- end }}` —
and fails loudly on anything else, so the test cannot pass over a construct it does not understand.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

_TAG = re.compile(r"(\s*)\{\{(-?)\s*(.*?)\s*(-?)\}\}")


def _lookup(path: str, ctx: dict[str, Any]) -> Any:
    node: Any = ctx
    for part in path.lstrip(".").split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"template refers to missing value .{path.lstrip('.')}")
        node = node[part]
    return node


def render(template: str, ctx: dict[str, Any]) -> str:
    out: list[str] = []
    stack: list[bool] = []  # if-blocks: emitting?
    pos = 0
    for m in _TAG.finditer(template):
        lead, trim_left, expr, _trim_right = m.groups()
        text = template[pos : m.start()]
        emitting = all(stack)
        if emitting:
            out.append(text)
            if not trim_left:
                out.append(lead)
        pos = m.end()
        if expr.startswith("if "):
            stack.append(bool(_lookup(expr[3:].strip(), ctx)) if emitting else False)
            continue
        if expr == "end":
            stack.pop()
            continue
        if not emitting:
            continue
        mm = re.fullmatch(r"toYaml (\S+) \| nindent (\d+)", expr)
        if mm:
            value = _lookup(mm.group(1), ctx)
            ind = " " * int(mm.group(2))
            dumped = yaml.safe_dump(value, default_flow_style=False, sort_keys=False).rstrip("\n")
            out.append("\n" + "\n".join(ind + line for line in dumped.splitlines()))
            continue
        if re.fullmatch(r"\.[A-Za-z][\w.]*", expr):
            out.append(str(_lookup(expr, ctx)))
            continue
        raise ValueError(f"unsupported template construct: {{{{ {expr} }}}}")
    if all(stack):
        out.append(template[pos:])
    if stack:
        raise ValueError("unbalanced if/end")
    return "".join(out)
