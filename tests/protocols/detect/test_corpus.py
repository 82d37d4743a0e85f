"""Every corpus capture, detected with no rules, gives the records its rule gives — on its own ports and
moved to ports no default rule names (tests/helpers/portmap.py rewrites them).

Truth: the same file through the rules the golden tests use (tests/helpers/golden.RULES_FOR) on the moved
ports, and the reviewed golden records for the original file. Only records on the rule's ports are
compared: a capture may hold other traffic that detection rightly finds too (the DNS lookups in an HTTP
capture), which the rule never looked at.
"""

from __future__ import annotations

import os
from typing import Any

import orjson
import pytest

from packetd.capture.pcapfile import CaptureFile
from packetd.engine import Engine, EngineConfig, Rule
from tests.helpers.golden import RULES_FOR, ManifestRow, as_json, golden_path, manifest, read_golden, run_file
from tests.helpers.portmap import rewrite

ROWS = [row for proto in RULES_FOR for row in manifest(proto)]


def _detected(path: str) -> list[dict[str, Any]]:
    records: list[Any] = []
    engine = Engine(EngineConfig(rules=(), detect=True), records.append)
    cf = CaptureFile(path)
    for ts, lt, data in cf:
        engine.frame(ts, lt, data)
    engine.finish()
    cf.close()
    return as_json(records)


def _on(records: list[dict[str, Any]], ports: set[int]) -> list[bytes]:
    return sorted(
        orjson.dumps(r, option=orjson.OPT_SORT_KEYS)
        for r in records
        if r["server"]["port"] in ports or r["client"]["port"] in ports
    )


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.protocol}/{r.name}" for r in ROWS])
def test_moved_ports_same_records_as_the_rule(row: ManifestRow, tmp_path: Any) -> None:
    rules = RULES_FOR[row.protocol](row)
    ports = sorted({p for r in rules for p in r.ports})
    mapping = {p: 30000 + i for i, p in enumerate(ports)}  # no default rule names 30000-30009
    moved_path = str(tmp_path / "moved.pcapng")
    rewrite(row.path, moved_path, mapping)
    moved = tuple(Rule(protocol=r.protocol, ports=tuple(mapping[p] for p in r.ports)) for r in rules)
    want = _on(as_json(run_file(moved_path, moved)[0]), set(mapping.values()))
    got = _on(_detected(moved_path), set(mapping.values()))
    assert got == want


@pytest.mark.parametrize("row", ROWS, ids=[f"{r.protocol}/{r.name}" for r in ROWS])
def test_no_proto_gives_the_golden_records(row: ManifestRow) -> None:
    if not os.path.exists(golden_path(row)):
        pytest.skip("no golden file for this capture")
    ports = set(row.ports)
    want = _on(read_golden(row), ports)
    assert want, "the golden file has records on the row's ports"
    assert _on(_detected(row.path), ports) == want
