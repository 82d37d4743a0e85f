"""The "new protocol" checklist: what every registered protocol has, so an eleventh cannot be half-added.

Each row of the registry must come from its own package (`protocols/<pkg>/__init__.py` with `SPEC`) and
have: a decoder, documented options (and their README rows), semantics and a display of its own,
detection by content, a golden capture, a sample record in docs/roundtrips/, and schema coverage
(docs/roundtrip.schema.json names it and gives its request/response shapes).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from packetd.protocols.base import DecoderContext
from packetd.protocols.display import DEFAULT as DEFAULT_DISPLAY
from packetd.protocols.registry import REGISTRY
from packetd.protocols.semantics import GENERIC
from packetd.protocols.spec import ProtocolSpec

ROOT = Path(__file__).resolve().parents[2]
SPECS = REGISTRY.specs()


def _package(spec: ProtocolSpec) -> str:
    """`packetd.protocols.<pkg>`: the package whose decoder the spec builds."""
    module = spec.factory.__module__
    assert module.startswith("packetd.protocols.") and module.endswith(".decoder"), module
    return module.removesuffix(".decoder")


def _golden_protocols() -> set[str]:
    seen: set[str] = set()
    for path in (ROOT / "tests" / "golden").glob("*/*.jsonl"):
        for line in path.read_bytes().splitlines():
            if line.strip():
                seen.add(orjson.loads(line)["protocol"])
    return seen


GOLDEN = _golden_protocols()


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_spec_comes_from_its_package(spec: ProtocolSpec) -> None:
    pkg = importlib.import_module(_package(spec))
    specs = [v for k, v in vars(pkg).items() if k.endswith("SPEC") and isinstance(v, ProtocolSpec)]
    assert spec in specs
    assert "SPEC" in pkg.__all__
    for module in ("decoder", "messages", "options", "semantics"):
        importlib.import_module(f"{pkg.__name__}.{module}")


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_has_a_decoder(spec: ProtocolSpec) -> None:
    decoder = spec.factory(DecoderContext())
    for method in ("receive", "receive_gap", "receive_eof"):
        assert callable(getattr(decoder, method))


_DECODERS_IMPORTED = """
import sys
import packetd.cli
from packetd.engine import Rule, import_decoders
def decoders():
    return sorted(m for m in sys.modules if m.startswith("packetd.protocols.") and m.endswith(".decoder"))
print(decoders())
import_decoders([Rule(protocol="redis", ports=(6379,)), Rule(protocol="grpc", ports=(50051,))])
print(decoders())
"""


def test_decoders_are_imported_on_first_use_or_before_a_fork() -> None:
    # a fresh interpreter: what `watch` imports at start-up, then what import_decoders adds
    out = subprocess.run(
        [sys.executable, "-c", _DECODERS_IMPORTED], capture_output=True, text=True, check=True
    )
    before, after = out.stdout.splitlines()
    assert before == "[]"
    assert after == "['packetd.protocols.http2.decoder', 'packetd.protocols.redis.decoder']"


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_has_documented_options_in_the_readme(spec: ProtocolSpec) -> None:
    assert spec.options_type is not None
    assert spec.options_type.__module__ == f"{_package(spec)}.options"
    readme = (ROOT / "README.md").read_text()
    names = [s.name for s in SPECS if s.options_type is spec.options_type]
    for f in dataclasses.fields(spec.options_type):
        assert f.metadata.get("doc"), f"{spec.options_type.__name__}.{f.name}: no doc"
        # its row in the generated table (under the family's protocol when options are shared)
        assert any(f"`{n}.{f.name}`" in readme for n in names), f"{spec.name}.{f.name}: no README row"


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_has_semantics_of_its_own(spec: ProtocolSpec) -> None:
    sem = spec.semantics
    assert sem is not GENERIC and sem.span is not None
    assert sem.span.__module__ == f"{_package(spec)}.semantics"
    generic = {"server.address", "server.port", "client.address", "client.port"}
    generic |= {"request.operation", "response.status", "response.error"}
    assert set(sem.default_labels) <= generic | set(sem.labels)
    assert sem.templated <= {label for label, _ in sem.labels.values()}


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_has_a_display_of_its_own(spec: ProtocolSpec) -> None:
    # the text line's phrase (protocols/<pkg>/display.py, helper `line`): not the generic one
    assert spec.display is not DEFAULT_DISPLAY
    assert spec.display.what.__module__ == f"{_package(spec)}.display"


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_has_detection(spec: ProtocolSpec) -> None:
    detect = getattr(spec, "detect", None)
    if not any(f.name == "detect" for f in dataclasses.fields(ProtocolSpec)):
        pytest.skip(
            "detection by content is helper `detect`'s (ProtocolSpec.detect, issue 12): not merged yet"
        )
    assert callable(detect), f"{spec.name}: no detect"


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_has_a_golden_capture(spec: ProtocolSpec) -> None:
    assert spec.name in GOLDEN, f"no tests/golden/*/*.jsonl holds a {spec.name} record"


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_has_a_sample_record(spec: ProtocolSpec) -> None:
    sample = ROOT / "docs" / "roundtrips" / f"{spec.name}.json"
    text = sample.read_text()
    records = [json.loads(text)] if text.lstrip().startswith("{") else json.loads(text)
    records = records if isinstance(records, list) else [records]
    assert records and all(r["protocol"] == spec.name for r in records)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_schema_covers_it(spec: ProtocolSpec) -> None:
    schema = json.loads((ROOT / "docs" / "roundtrip.schema.json").read_text())
    assert spec.name in schema["properties"]["protocol"]["enum"]
    branches = [
        b
        for b in schema["allOf"]
        if b.get("if", {}).get("properties", {}).get("protocol") == {"const": spec.name}
    ]
    assert branches, f"no request/response shape for {spec.name} in the schema"
