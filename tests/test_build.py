"""Which build the suite runs against, and that the compiled build falls back to its pure-Python sources.

`make test` runs the suite once with the editable install (PACKETD_EXPECT_BUILD=pure) and once with the
mypyc wheel installed in .venv-compiled (PACKETD_EXPECT_BUILD=compiled, `make test-compiled`); these tests
check that each run really imports the build it is named after: the file each module of
buildinfo.COMPILED_MODULES was loaded from, which is the independent truth (Python's own import system
chose it). Without PACKETD_EXPECT_BUILD (a plain `pytest`) the build is only checked to be pure or
compiled, never a mix.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

import packetd
from packetd import buildinfo
from tests.helpers.golden import ROOT

SRC = os.path.join(ROOT, "src")
EXT = tuple(importlib.machinery.EXTENSION_SUFFIXES)
SAMPLE = os.path.join(ROOT, "samples", "http-sample.pcapng")  # in the repository: no corpus needed


def _files() -> dict[str, str]:
    return {name: str(importlib.import_module(name).__file__) for name in buildinfo.COMPILED_MODULES}


def test_the_build_is_the_one_this_run_expects() -> None:
    files = _files()
    extensions = sorted(n for n, f in files.items() if f.endswith(EXT))
    expected = os.environ.get("PACKETD_EXPECT_BUILD")
    if expected == "compiled":
        assert extensions == sorted(files), f"not compiled: {[n for n in files if n not in extensions]}"
        # the wheel's copy, not src/ through an editable install or a PYTHONPATH
        assert not os.path.abspath(packetd.__file__).startswith(SRC + os.sep), packetd.__file__
    elif expected == "pure":
        assert extensions == [], f"compiled modules in the pure run: {extensions}"
    else:
        assert extensions in ([], sorted(files)), f"a mixed build: {extensions}"
    assert buildinfo.build() == ("compiled" if extensions else "pure")


def test_the_c_accelerator_is_there_exactly_in_the_compiled_build() -> None:
    """net/_packet.c ships with the compiled build (setup.py) and is in use unless PACKETD_PURE=1; the pure
    run has none (so tests/net/test_cext.py runs, un-skipped, in the compiled pass)."""
    from packetd.net import packet

    expected = os.environ.get("PACKETD_EXPECT_BUILD")
    origin = importlib.util.find_spec(buildinfo.ACCELERATOR)
    if expected == "compiled":
        assert origin is not None and str(origin.origin).endswith(EXT), origin
        if os.environ.get("PACKETD_PURE") != "1":
            assert packet.FAST_DECODE is not None
            assert buildinfo.accelerator() == "on"
    elif expected == "pure":
        assert origin is None, f"an accelerator in the pure run: {origin.origin}"
        assert packet.FAST_DECODE is None and buildinfo.accelerator() == "absent"


def test_every_compiled_module_ships_its_python_source_beside_it() -> None:
    """The fallback: without its extension, a module imports from the .py next to it."""
    for name, path in _files().items():
        source = os.path.join(os.path.dirname(path), name.rsplit(".", 1)[1] + ".py")
        assert os.path.isfile(source), f"{name}: no {source}"


def test_without_the_extensions_the_same_package_runs_pure_with_the_same_records() -> None:
    """A copy of the installed package with every extension module removed imports the .py files (no code
    of ours chooses) and writes the same records as this build on a golden capture."""
    with tempfile.TemporaryDirectory(prefix="packetd-fallback-") as tmp:
        shutil.copytree(os.path.dirname(packetd.__file__), os.path.join(tmp, "packetd"),
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
        for dirpath, _, names in os.walk(tmp):
            for n in names:
                if n.endswith(EXT):
                    os.remove(os.path.join(dirpath, n))
        runs = {}
        for label, path in (("installed", os.path.dirname(os.path.dirname(packetd.__file__))), ("copy", tmp)):
            env = {**os.environ, "PYTHONPATH": path}
            probe = "from packetd import buildinfo; print(buildinfo.build())"
            build = subprocess.run([sys.executable, "-c", probe], env=env, cwd="/", capture_output=True, text=True,
                                   check=True, timeout=120).stdout.strip()  # fmt: skip
            watch = subprocess.run([sys.executable, "-m", "packetd", "watch", "-r", SAMPLE, "--format", "json"],
                                   env=env, cwd="/", capture_output=True, check=True, timeout=300)  # fmt: skip
            runs[label] = (build, watch.stdout)
    assert runs["copy"][0] == "pure"
    assert runs["installed"][0] == buildinfo.build()
    assert runs["copy"][1] == runs["installed"][1]
    assert runs["copy"][1].count(b"\n") > 0


@pytest.mark.skipif(os.environ.get("PACKETD_EXPECT_BUILD") != "compiled", reason="the compiled run only")
def test_version_says_compiled() -> None:
    out = subprocess.run([sys.executable, "-m", "packetd", "version"], capture_output=True, text=True,
                         check=True, timeout=60, cwd="/")  # fmt: skip
    assert "Build: compiled" in out.stdout.splitlines()
    assert "C accelerator: on" in out.stdout.splitlines()


def test_slot_names_are_the_sources_slots_in_either_build() -> None:
    """The stats snapshot (agent/worker.py) and the tests list counters by slot_names: the truth is the
    `__slots__` written in the source, read with ast (a compiled class has none at run time)."""
    import ast

    from packetd.flow.table import FlowStats
    from packetd.net.packet import NetStats

    for cls, path in ((NetStats, "net/packet.py"), (FlowStats, "flow/table.py")):
        with open(os.path.join(SRC, "packetd", path)) as f:
            tree = ast.parse(f.read())
        node = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == cls.__name__)
        slots = next(s.value for s in node.body if isinstance(s, ast.Assign)
                     and getattr(s.targets[0], "id", "") == "__slots__")  # fmt: skip
        assert sorted(buildinfo.slot_names(cls)) == sorted(ast.literal_eval(slots))
