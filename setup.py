"""The optional compiled build (issue 15): `PACKETD_COMPILE=1 pip install .` compiles the hot path with mypyc.

Without the flag this is a plain setuptools build of pure Python (pyproject.toml holds all the metadata; no
compiler is needed). With it, the modules in packetd.buildinfo.COMPILED_MODULES become C extensions that
mypyc builds from the same typed sources; the .py files stay in the wheel beside them and Python imports the
extension first (see src/packetd/buildinfo.py). `make wheel` builds that wheel into dist/.

mypyc type-checks what it compiles with the project's mypy configuration (strict, the pydantic plugin), so
the compiled build is made with the development venv's mypy and packages: `pip wheel --no-build-isolation`.

separate=True: one extension per module. In one group (the default) mypyc adds a dependency from each
compiled module to every other for mypy, which reorders mypy's processing of the import cycles between
the protocol packages and the registry, and mypy then reports "Cannot determine type" for module constants
(`http1.SPEC`, `http1.messages.DEFAULT_HEADERS`) that plain `mypy` checks cleanly; per-module groups keep
mypy's own order, so the compiled build type-checks exactly when `make typecheck` does.

The same flag (or PACKETD_CEXT=1 alone) also builds the small C accelerator of L2-L4 decoding,
src/packetd/net/_packet.c (see net/packet.py's _accelerator). optional=True: without a working compiler the
build goes on without it, and net/packet.py decodes every frame itself.
"""

from __future__ import annotations

import os
import runpy

from setuptools import Extension, setup

ext_modules = []
if os.environ.get("PACKETD_COMPILE") == "1":
    from mypyc.build import mypycify

    here = os.path.dirname(os.path.abspath(__file__))
    names = runpy.run_path(os.path.join(here, "src", "packetd", "buildinfo.py"))["COMPILED_MODULES"]
    paths = [os.path.join("src", *name.split(".")) + ".py" for name in names]
    # mypy's cache of this build apart from `make typecheck`'s .mypy_cache: mypyc adds its own entries
    ext_modules = mypycify(
        ["--cache-dir", os.path.join("build", "mypyc-cache"), *paths], opt_level="3", separate=True
    )

if os.environ.get("PACKETD_COMPILE") == "1" or os.environ.get("PACKETD_CEXT") == "1":
    ext_modules.append(
        Extension(
            "packetd.net._packet",
            [os.path.join("src", "packetd", "net", "_packet.c")],
            extra_compile_args=["-Wall", "-Wextra"] if os.name == "posix" else [],
            optional=True,
        )
    )
    # the C twin of the MongoDB decoder's check of BSON array extents (mongodb/_extent.c; decoder.py's
    # _fast_structure): optional the same way, the Python function stays the reference
    ext_modules.append(
        Extension(
            "packetd.protocols.mongodb._extent",
            [os.path.join("src", "packetd", "protocols", "mongodb", "_extent.c")],
            extra_compile_args=["-Wall", "-Wextra"] if os.name == "posix" else [],
            optional=True,
        )
    )

    # the C twin of the Redis decoder's whole-command scan (redis/_resp.c; decoder.py's FAST_COMMAND)
    ext_modules.append(
        Extension(
            "packetd.protocols.redis._resp",
            [os.path.join("src", "packetd", "protocols", "redis", "_resp.c")],
            extra_compile_args=["-Wall", "-Wextra"] if os.name == "posix" else [],
            optional=True,
        )
    )

setup(ext_modules=ext_modules)
