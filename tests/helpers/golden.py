"""Golden tests over the shared corpus of real captures (../shared/corpus/<protocol>/).

`MANIFEST.tsv` gives, per file, the server ports and tshark's request/response counts (the independent
truth); `run_file` replays a capture through the whole engine and returns the records as JSON objects; the
expected records are checked in under tests/golden/<protocol>/<file>.jsonl, written by
`scripts/regen_golden.py` and reviewed like code.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from packetd.capture.pcapfile import CaptureFile
from packetd.engine import Engine, EngineConfig, Rule
from packetd.pairing.roundtrip import Roundtrip

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _corpus() -> str:
    """../shared/corpus beside the checkout; $PACKETD_CORPUS, or the nearest ancestor's shared/corpus, for a
    clone made elsewhere (a CI work folder, a scratch copy)."""
    env = os.environ.get("PACKETD_CORPUS")
    if env:
        return env
    here = ROOT
    while True:
        candidate = os.path.join(os.path.dirname(here), "shared", "corpus")
        if os.path.isfile(os.path.join(candidate, "MANIFEST.tsv")):
            return os.path.normpath(candidate)
        if os.path.dirname(here) == here:
            return os.path.normpath(os.path.join(ROOT, "..", "shared", "corpus"))  # the error names it
        here = os.path.dirname(here)


CORPUS = _corpus()
GOLDEN = os.path.join(ROOT, "tests", "golden")


@dataclass(frozen=True)
class ManifestRow:
    protocol: str
    file: str
    path: str
    ports: tuple[int, ...]
    tshark_requests: int
    tshark_responses: int
    notes: str

    @property
    def name(self) -> str:
        return os.path.basename(self.file)

    @property
    def interim_responses(self) -> int:
        """1xx interim responses tshark counted among the responses (from the manifest notes)."""
        m = re.search(r"incl\. (\d+) 1xx interim", self.notes)
        return int(m.group(1)) if m else 0


def note_count(row: ManifestRow, key: str) -> int:
    """A `key=N` count from the manifest notes of a file (tshark's per-message counts)."""
    m = re.search(rf"\b{key}=(\d+)", row.notes)
    assert m is not None, f"{key}= missing from the manifest notes of {row.name}"
    return int(m.group(1))


def manifest(protocol: str) -> list[ManifestRow]:
    rows = []
    with open(os.path.join(CORPUS, "MANIFEST.tsv"), newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["protocol"] != protocol:
                continue
            ports = tuple(int(p.split("/")[1]) for p in row["server_port"].split(","))
            rows.append(
                ManifestRow(
                    protocol=protocol,
                    file=row["file"],
                    path=os.path.join(CORPUS, row["file"]),
                    ports=ports,
                    tshark_requests=int(row["tshark_requests"]),
                    tshark_responses=int(row["tshark_responses"]),
                    notes=row["notes"],
                )
            )
    return rows


def run_file(
    path: str, rules: tuple[Rule, ...], options: dict[str, Any] | None = None
) -> tuple[list[Roundtrip], Engine]:
    records: list[Roundtrip] = []
    engine = Engine(EngineConfig(rules=rules, options=options or {}), records.append)
    cf = CaptureFile(path)
    for ts, lt, data in cf:
        engine.frame(ts, lt, data)
    engine.finish()
    cf.close()
    return records, engine


def as_json(records: list[Roundtrip]) -> list[dict[str, Any]]:
    return [orjson.loads(orjson.dumps(r.to_json())) for r in records]


def golden_path(row: ManifestRow) -> str:
    return os.path.join(GOLDEN, row.protocol, row.name + ".jsonl")


def read_golden(row: ManifestRow) -> list[dict[str, Any]]:
    with open(golden_path(row), "rb") as f:
        return [orjson.loads(line) for line in f if line.strip()]


def write_golden(row: ManifestRow, records: list[dict[str, Any]]) -> None:
    os.makedirs(os.path.dirname(golden_path(row)), exist_ok=True)
    with open(golden_path(row), "wb") as f:
        for rec in records:
            f.write(orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE))


def _h2_rules(row: ManifestRow) -> tuple[Rule, ...]:
    """Files on tshark's HTTP ports (80, 8080) reach HTTP/2 as tshark does: through the HTTP/1 decoder's
    hand-over (`Upgrade: h2c` + 101, or the prior-knowledge preface); the others are watched as HTTP/2
    directly (the manifest's `needs -d tcp.port==P,http2`)."""
    if set(row.ports) <= {80, 8080}:
        return (Rule(protocol="http", ports=row.ports),)
    return (Rule(protocol="http2", ports=row.ports),)


# corpus folder → the rules a file of it is replayed with (its manifest row gives the ports)
RULES_FOR: dict[str, Callable[[ManifestRow], tuple[Rule, ...]]] = {
    "http1": lambda row: (Rule(protocol="http", ports=row.ports),),
    "http2": _h2_rules,
    "grpc": lambda row: (Rule(protocol="grpc", ports=row.ports),),
    "dns": lambda row: (Rule(protocol="dns", ports=row.ports),),
    "amqp": lambda row: (Rule(protocol="amqp", ports=row.ports),),
    "mongodb": lambda row: (Rule(protocol="mongodb", ports=row.ports),),
    "kafka": lambda row: (Rule(protocol="kafka", ports=row.ports),),
    "redis": lambda row: (Rule(protocol="redis", ports=row.ports),),
    "postgresql": lambda row: (Rule(protocol="postgresql", ports=row.ports),),
    "mysql": lambda row: (Rule(protocol="mysql", ports=row.ports),),
}
