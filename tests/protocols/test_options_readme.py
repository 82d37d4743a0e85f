"""The README's decoder options table is generated from the protocols' options classes and up to date."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from packetd.protocols.options import build_options
from packetd.protocols.registry import REGISTRY

ROOT = Path(__file__).resolve().parents[2]


def test_readme_options_table_is_up_to_date() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "options_table.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("spec", [s for s in REGISTRY.specs() if s.options_type is not None], ids=str)
def test_every_option_is_documented_and_in_the_readme(spec: object) -> None:
    readme = (ROOT / "README.md").read_text()
    options_type = spec.options_type  # type: ignore[attr-defined]
    for f in dataclasses.fields(options_type):
        assert f.metadata.get("doc"), f"{options_type.__name__}.{f.name} has no doc"
        # the row names the option under the family's protocol (grpc's options are http2's rows)
        assert f".{f.name}`" in readme
        # and the documented option is the one the parser accepts
        built = build_options({spec.name: {}})[spec.name]  # type: ignore[attr-defined]
        assert getattr(built, f.name) == f.default
