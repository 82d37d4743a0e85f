"""Every record packetd emits validates against docs/roundtrip.schema.json (the public contract)."""

from __future__ import annotations

import glob
import json
import os
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from packetd.protocols.base import DecoderContext, Flag
from packetd.protocols.http1.decoder import HttpOptions
from tests.helpers.golden import GOLDEN, ROOT
from tests.helpers.tlsgen import handshake

SCHEMA_PATH = os.path.join(ROOT, "docs", "roundtrip.schema.json")


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    with open(SCHEMA_PATH) as f:
        schema = json.load(f)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def golden_records() -> list[tuple[str, dict]]:
    out = []
    for path in sorted(glob.glob(os.path.join(GOLDEN, "*", "*.jsonl"))):
        with open(path) as f:
            out.extend((os.path.basename(path), json.loads(line)) for line in f if line.strip())
    return out


def test_golden_records_validate(validator: Draft202012Validator) -> None:
    records = golden_records()
    assert records, "no golden records found"
    for name, rec in records:
        errors = sorted(validator.iter_errors(rec), key=str)
        assert not errors, f"{name}: {errors[0].message} at {list(errors[0].absolute_path)}"


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "docs", "roundtrips", "*.json"))))
def test_documented_examples_validate(validator: Draft202012Validator, path: str) -> None:
    with open(path) as f:
        examples = json.load(f)
    assert isinstance(examples, list) and examples
    for rec in examples:
        validator.validate(rec)


def test_schema_rejects_what_the_contract_forbids(validator: Draft202012Validator) -> None:
    rec = next(r for _, r in golden_records() if r["protocol"] == "http")
    assert validator.is_valid(rec)
    for broken in (
        {**rec, "extra": 1},
        {**rec, "kind": "reply"},
        {**rec, "flags": ["gap", "gap"]},
        {**rec, "start_time": "2024-01-01T00:00:00Z"},
        {**rec, "request": {**rec["request"], "method": "GE T"}},
        {**rec, "kind": "unanswered"},  # an unanswered record has no response
    ):
        assert not validator.is_valid(broken)


def test_records_with_body_capture_and_tls_validate(validator: Draft202012Validator) -> None:
    from packetd.pairing.roundtrip import Roundtrip
    from packetd.protocols.base import Direction, Kind
    from packetd.protocols.http1.decoder import Http1Decoder
    from packetd.protocols.tls import TlsDecoder

    d = Http1Decoder(DecoderContext(options=HttpOptions(capture_body=64)))
    req = d.receive(
        Direction.C2S,
        memoryview(b"POST /j HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"),
        1,
    )[0]
    resp = d.receive(
        Direction.S2C,
        memoryview(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
        ),
        2,
    )[0]
    rt = Roundtrip("http", Kind.ROUNDTRIP, ("10.0.0.1", 1234), ("10.0.0.2", 80), req, resp, 0)
    validator.validate(rt.to_json())
    hs = handshake("example.test", ["http/1.1"], ["http/1.1"])
    tls = TlsDecoder()
    hello = tls.receive(Direction.C2S, memoryview(hs.client_hello), 1)[0]
    server_hello = tls.receive(Direction.S2C, memoryview(hs.server_hello), 2)[0]
    for response in (server_hello, None):
        kind = Kind.HANDSHAKE if response is not None else Kind.UNANSWERED
        rt = Roundtrip("http", kind, ("10.0.0.1", 1234), ("10.0.0.2", 80), hello, response, Flag.ENCRYPTED)
        validator.validate(rt.to_json())


@pytest.mark.parametrize("protocol", ["redis", "postgresql", "mysql"])
def test_database_records_are_pinned_by_their_defs(validator: Draft202012Validator, protocol: str) -> None:
    records = [rec for name, rec in golden_records() if rec["protocol"] == protocol]
    assert records
    for rec in records[:50]:
        side = "request" if rec["request"] is not None else "response"
        assert not validator.is_valid({**rec, side: {**rec[side], "unexpected": 1}})
        assert not validator.is_valid({**rec, side: {}})


def test_records_with_k8s_fields_validate(validator: Draft202012Validator, tmp_path: Any) -> None:
    """client.k8s / server.k8s as the agent attaches them (a pod with its workload and service, a
    ClusterIP, an unknown address); a misspelt or missing field is refused."""
    from packetd.attribution.kubernetes_index import K8sView
    from packetd.capture.pcapwrite import PcapWriter, TcpConversation, ethernet
    from packetd.engine import Rule
    from packetd.pairing.roundtrip import K8sMeta
    from tests.helpers.golden import run_file

    path = os.path.join(str(tmp_path), "k8s.pcap")
    conv = TcpConversation(("10.244.1.7", 40000), ("10.96.0.20", 80))
    with open(path, "wb") as f:
        w = PcapWriter(f)
        pkts = [*conv.handshake(), *conv.send(0, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")]
        pkts += [*conv.send(1, b"HTTP/1.1 204 No Content\r\n\r\n")]
        for i, pkt in enumerate(pkts):
            w.write(1_764_000_000_000_000_000 + i * 1000, ethernet(pkt))
    (rt,), _ = run_file(path, (Rule(protocol="http", ports=(80,)),))
    pod = K8sMeta(
        namespace="shop",
        pod="web-5c-x",
        node="n1",
        service="web",
        owners=(("replicaset", "web-5c"), ("deployment", "web")),
    )
    for table in ({rt.client[0]: pod, rt.server[0]: K8sMeta(namespace="shop", service="web")}, {}):
        rec = K8sView(True, table).attach(rt).to_json()
        validator.validate(rec)
    rec = K8sView(True, {rt.client[0]: pod}).attach(rt).to_json()
    assert rec["client"]["k8s"]["deployment"] == "web" and rec["server"]["k8s"] is None
    for broken in (
        {**rec, "client": {**rec["client"], "k8s": {**rec["client"]["k8s"], "deploy": "web"}}},
        {
            **rec,
            "client": {
                **rec["client"],
                "k8s": {k: v for k, v in rec["client"]["k8s"].items() if k != "service"},
            },
        },
        {**rec, "client": {**rec["client"], "k8s": {**rec["client"]["k8s"], "pod": ""}}},
    ):
        assert not validator.is_valid(broken)
