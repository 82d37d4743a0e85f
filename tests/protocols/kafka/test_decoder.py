"""Kafka decoder table cases, run whole, byte by byte and with trailing bytes that must survive.

Requests and responses are encoded by kafka-python's protocol classes (its own encoder, headers included:
request header v1/v2 and response header v0/v1 chosen by kafka-python), record batches by kafka-python's
DefaultRecordBatchBuilder. What the decoder must report is what the test put into those objects.
"""

from __future__ import annotations

import uuid

import pytest
from kafka.protocol.consumer import FetchRequest, FetchResponse, JoinGroupRequest, JoinGroupResponse
from kafka.protocol.metadata import ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse
from kafka.protocol.producer import ProduceRequest, ProduceResponse
from kafka.protocol.sasl import (
    SaslAuthenticateRequest,
    SaslAuthenticateResponse,
    SaslHandshakeRequest,
    SaslHandshakeResponse,
)
from kafka.record.default_records import DefaultRecordBatchBuilder

from packetd.pairing.roundtrip import Roundtrip
from packetd.protocols.base import DecodeError, DecoderContext, Flag
from packetd.protocols.framing import MAX_RESYNC_SCAN
from packetd.protocols.kafka.decoder import KafkaDecoder
from packetd.protocols.kafka.messages import KafkaOneway, KafkaRequest, KafkaResponse
from packetd.protocols.kafka.options import KafkaOptions
from tests.helpers.decoding import C2S, MODES, S2C, Step, run

TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TOPIC_ID = uuid.UUID("6ba7b810-9dad-11d1-80b4-00c04fd430c8")
SECRET = b"\x00alice\x00hunter2-secret"


def framed(msg: object, corr: int, client_id: str | None = "app") -> bytes:
    if client_id is None:
        msg.with_header(correlation_id=corr)  # type: ignore[attr-defined]
    else:
        msg.with_header(correlation_id=corr, client_id=client_id)  # type: ignore[attr-defined]
    return bytes(msg.encode(header=True, framed=True))  # type: ignore[attr-defined]


def batch(n: int, headers: list[tuple[str, bytes]] | None = None) -> bytes:
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False, producer_id=-1,
                                  producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)  # fmt: skip
    for i in range(n):
        b.append(i, timestamp=1_700_000_000_000 + i, key=b"k%d" % i, value=b"value-%d" % i,
                 headers=headers if i == 0 and headers else [])  # fmt: skip
    return bytes(b.build())


BATCH3 = batch(3, [("traceparent", TRACEPARENT), ("tracestate", b"v=1")])
BATCH2 = batch(2)


def produce(version: int, acks: int, corr: int) -> bytes:
    topic = ProduceRequest.TopicProduceData
    part = topic.PartitionProduceData
    req = ProduceRequest[version](transactional_id=None, acks=acks, timeout_ms=1500, topic_data=[
        topic(name="orders", partition_data=[part(index=0, records=BATCH3), part(index=2, records=BATCH2)]),
    ])  # fmt: skip
    return framed(req, corr)


def produce_response(version: int, corr: int, error: int = 0) -> bytes:
    topic = ProduceResponse.TopicProduceResponse
    part = topic.PartitionProduceResponse
    resp = ProduceResponse[version](responses=[topic(name="orders", partition_responses=[
        part(index=0, error_code=0, base_offset=10), part(index=2, error_code=error, base_offset=-1),
    ])], throttle_time_ms=0)  # fmt: skip
    return framed(resp, corr, None)


def metadata_response(corr: int) -> bytes:
    t = MetadataResponse.MetadataResponseTopic
    resp = MetadataResponse[12](throttle_time_ms=0, brokers=[], cluster_id="c", controller_id=1, topics=[
        t(error_code=0, name="orders", topic_id=TOPIC_ID, is_internal=False, partitions=[],
          ),
    ])  # fmt: skip
    return framed(resp, corr, None)


def fetch_request(corr: int) -> bytes:
    t = FetchRequest.FetchTopic
    p = t.FetchPartition
    req = FetchRequest[13](replica_id=-1, max_wait_ms=500, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
                           session_id=0, session_epoch=-1, topics=[t(topic_id=TOPIC_ID, partitions=[
                               p(partition=0, current_leader_epoch=-1, fetch_offset=0, last_fetched_epoch=-1,
                                 log_start_offset=-1, partition_max_bytes=1 << 20)])],
                           forgotten_topics_data=[], rack_id="")  # fmt: skip
    return framed(req, corr)


def fetch_response(corr: int) -> bytes:
    t = FetchResponse.FetchableTopicResponse
    p = t.PartitionData
    resp = FetchResponse[13](throttle_time_ms=0, error_code=0, session_id=0, responses=[t(topic_id=TOPIC_ID, partitions=[
        p(partition_index=0, error_code=0, high_watermark=5, last_stable_offset=5, log_start_offset=0,
          aborted_transactions=None, preferred_read_replica=-1, records=BATCH3 + BATCH2)])])  # fmt: skip
    return framed(resp, corr, None)


API_REQ = framed(ApiVersionsRequest[3](client_software_name="packetd", client_software_version="1"), 1)
API_RESP = framed(ApiVersionsResponse[3](error_code=0, api_keys=[], throttle_time_ms=0), 1, None)
META_REQ = framed(MetadataRequest[12](topics=None, allow_auto_topic_creation=False,
                                      include_topic_authorized_operations=False), 2)  # fmt: skip
JOIN_REQ = framed(JoinGroupRequest[5](group_id="billing", session_timeout_ms=10000, rebalance_timeout_ms=30000,
                                      member_id="", group_instance_id=None, protocol_type="consumer",
                                      protocols=[]), 7)  # fmt: skip
JOIN_RESP = framed(JoinGroupResponse[5](throttle_time_ms=0, error_code=27, generation_id=-1, protocol_name="",
                                        leader="", member_id="", members=[]), 7, None)  # fmt: skip
SASL_REQ = framed(SaslHandshakeRequest[1](mechanism="PLAIN"), 8)
SASL_RESP = framed(SaslHandshakeResponse[1](error_code=0, mechanisms=["PLAIN"]), 8, None)
AUTH_REQ = framed(SaslAuthenticateRequest[2](auth_bytes=SECRET), 9)
AUTH_RESP = framed(SaslAuthenticateResponse[2](error_code=0, error_message=None, auth_bytes=b"",
                                               session_lifetime_ms=0), 9, None)  # fmt: skip

SENT_REQ = framed(ApiVersionsRequest[0](), 99, "sentinel")
SENT_RESP = framed(ApiVersionsResponse[0](error_code=0, api_keys=[]), 99, None)
SENTINEL: list[Step] = [(C2S, SENT_REQ), (S2C, SENT_RESP)]

CASES: dict[str, tuple[list[Step], list[tuple]]] = {
    "api-versions-v3-flexible-request-v0-response-header": (
        [(C2S, API_REQ), (S2C, API_RESP)],
        [("KafkaRequest", "ApiVersions", 3, 1), ("KafkaResponse", "OK", 1)],
    ),
    "metadata-then-fetch-by-topic-id": (
        [(C2S, META_REQ), (S2C, metadata_response(2)), (C2S, fetch_request(3)), (S2C, fetch_response(3))],
        [
            ("KafkaRequest", "Metadata", 12, 2),
            ("KafkaResponse", "OK", 2),
            ("KafkaRequest", "Fetch", 13, 3),
            ("KafkaResponse", "OK", 3),
        ],
    ),
    "produce-v9-pipelined-with-partition-error": (
        [
            (C2S, produce(9, 1, 4) + produce(9, -1, 5)),
            (S2C, produce_response(9, 4) + produce_response(9, 5, 6)),
        ],
        [
            ("KafkaRequest", "Produce", 9, 4),
            ("KafkaRequest", "Produce", 9, 5),
            ("KafkaResponse", "OK", 4),
            ("KafkaResponse", "NOT_LEADER_FOR_PARTITION", 5),
        ],
    ),
    "produce-v3-classic": (
        [(C2S, produce(3, 1, 6)), (S2C, produce_response(3, 6))],
        [("KafkaRequest", "Produce", 3, 6), ("KafkaResponse", "OK", 6)],
    ),
    "produce-acks-0-is-oneway": (
        [(C2S, produce(9, 0, 10))],
        [("KafkaOneway", "Produce", 9, 10)],
    ),
    "join-group-error": (
        [(C2S, JOIN_REQ), (S2C, JOIN_RESP)],
        [("KafkaRequest", "JoinGroup", 5, 7), ("KafkaResponse", "REBALANCE_IN_PROGRESS", 7)],
    ),
    "sasl-handshake-and-authenticate": (
        [(C2S, SASL_REQ), (S2C, SASL_RESP), (C2S, AUTH_REQ), (S2C, AUTH_RESP)],
        [
            ("KafkaRequest", "SaslHandshake", 1, 8),
            ("KafkaResponse", "OK", 8),
            ("KafkaRequest", "SaslAuthenticate", 2, 9),
            ("KafkaResponse", "OK", 9),
        ],
    ),
}


def summary(msgs: list) -> list[tuple]:
    out = []
    for m in msgs:
        if isinstance(m, KafkaRequest):
            out.append((type(m).__name__, m.operation(), m.api_version, m.correlation_id))
        elif isinstance(m, KafkaResponse):
            out.append((type(m).__name__, m.status(), m.correlation_id))
    return out


def decoder() -> KafkaDecoder:
    return KafkaDecoder(DecoderContext(shared={}))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", sorted(CASES))
def test_table(name: str, mode: str) -> None:
    steps, expected = CASES[name]
    got = summary(run(decoder, steps, mode, sentinel=SENTINEL))
    if mode == "trailing":
        sentinel = [("KafkaRequest", "ApiVersions", 0, 99), ("KafkaResponse", "OK", 99)]
        assert sorted(got, key=repr) == sorted(expected + sentinel, key=repr)
    else:
        assert got == expected


def test_produce_fields_records_and_trace() -> None:
    d = decoder()
    req = d.receive(C2S, memoryview(produce(9, 1, 4)), 1)[0]
    j = req.to_json()
    assert j["acks"] == 1 and j["client_id"] == "app" and j["api_version"] == 9
    assert j["topics"] == [
        {"name": "orders", "partitions": [0, 2], "records": 5, "bytes": len(BATCH3) + len(BATCH2)}
    ]
    ctx = req.trace_context()
    assert ctx is not None and ctx.trace_id == "0af7651916cd43dd8448eb211c80319c" and ctx.tracestate == "v=1"
    resp = d.receive(S2C, memoryview(produce_response(9, 4, 6)), 2)[0]
    rj = resp.to_json()
    assert rj["errors"] == [{"field": "Responses.PartitionResponses.ErrorCode", "code": 6,
                             "name": "NOT_LEADER_FOR_PARTITION"}]  # fmt: skip
    assert rj["error_code"] is None  # Produce responses have no top-level ErrorCode
    assert resp.is_error()


def test_fetch_topic_id_resolved_from_metadata_on_another_connection() -> None:
    shared: dict = {}
    meta = KafkaDecoder(DecoderContext(shared=shared))
    meta.receive(C2S, memoryview(META_REQ), 1)
    meta.receive(S2C, memoryview(metadata_response(2)), 2)
    fetch = KafkaDecoder(DecoderContext(shared=shared))
    req = fetch.receive(C2S, memoryview(fetch_request(3)), 3)[0].to_json()
    assert req["topics"] == [{"name": "orders", "partitions": [0], "topic_id": TOPIC_ID.hex}]
    resp = fetch.receive(S2C, memoryview(fetch_response(3)), 4)[0].to_json()
    assert resp["topics"] == [{"name": "orders", "partitions": [0], "topic_id": TOPIC_ID.hex, "records": 5,
                               "bytes": len(BATCH3) + len(BATCH2)}]  # fmt: skip
    alone = KafkaDecoder(DecoderContext(shared={})).receive(C2S, memoryview(fetch_request(3)), 3)[0]
    assert alone.to_json()["topics"][0]["name"] is None  # not seen: the id stays, the name is unknown


def test_group_id_and_sasl_secrets() -> None:
    d = decoder()
    assert d.receive(C2S, memoryview(JOIN_REQ), 1)[0].to_json()["group_id"] == "billing"
    auth = d.receive(C2S, memoryview(AUTH_REQ), 2)[0]
    assert auth.record_kind() == "handshake"
    assert "hunter2" not in str(auth.to_json())


def test_roundtrip_envelope() -> None:
    d = decoder()
    req = d.receive(C2S, memoryview(JOIN_REQ), 1)[0]
    resp = d.receive(S2C, memoryview(JOIN_RESP), 2)[0]
    rt = Roundtrip("kafka", "roundtrip", ("10.0.0.1", 5000), ("10.0.0.2", 9092), req, resp, 0)
    assert rt.operation == "JoinGroup" and rt.status == "REBALANCE_IN_PROGRESS" and rt.error
    assert resp.to_json()["error_code"] == 27


def test_oneway_is_not_remembered_in_flight() -> None:
    d = decoder()
    out = d.receive(C2S, memoryview(produce(9, 0, 10)), 1)
    assert isinstance(out[0], KafkaOneway)
    assert 10 not in d._inflight


def test_large_message_is_counted_not_kept() -> None:
    d = KafkaDecoder(DecoderContext(options=KafkaOptions(max_parse_bytes=120), shared={}))
    data = produce(9, 1, 4)
    req = d.receive(C2S, memoryview(data), 1)[0]
    j = req.to_json()
    assert j["parsed"] is False and j["size"] == len(data) and j["acks"] == 1


def test_joined_mid_message_resyncs_on_the_next_request() -> None:
    d = KafkaDecoder(DecoderContext(midstream=True, shared={}))
    data = produce(9, 1, 4)
    out = d.receive(C2S, memoryview(data[37:] + JOIN_REQ), 1)
    assert summary(out) == [("KafkaRequest", "JoinGroup", 5, 7)]
    assert out[0].flags & Flag.MIDSTREAM
    # the server side syncs on the response to a request in flight
    resp = d.receive(S2C, memoryview(b"\x00\x01garbage" + JOIN_RESP), 2)
    assert summary(resp) == [("KafkaResponse", "REBALANCE_IN_PROGRESS", 7)]


def test_gap_in_a_counted_tail_keeps_framing() -> None:
    d = KafkaDecoder(DecoderContext(options=KafkaOptions(max_parse_bytes=100), shared={}))
    data = produce(9, 1, 4)
    d.receive(C2S, memoryview(data[:150]), 1)
    assert d.receive_gap(C2S, 50, 2) == ()
    out = d.receive(C2S, memoryview(data[200:] + JOIN_REQ), 3)
    assert [m.operation() for m in out] == ["Produce", "JoinGroup"] and out[0].flags & Flag.GAP


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x00\x00\x00\x02\x00\x00", "bad message size"),
        (b"\x00\x00\x00\x0a\x03\xe8\x00\x00\x00\x00\x00\x01\x00\x00", "bad request header"),
        (b"\x00\x00\x00\x05\x00\x00\x00\x00\x00", "short request header"),
    ],
)
def test_garbage_raises_decode_error(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as exc:
        decoder().receive(C2S, memoryview(data), 1)
    assert exc.value.reason == reason


def test_resync_search_is_bounded() -> None:
    d = KafkaDecoder(DecoderContext(midstream=True, shared={}))
    junk = memoryview(b"\xff" * (1024 * 1024))
    with pytest.raises(DecodeError):
        for i in range(MAX_RESYNC_SCAN // len(junk) + 2):
            d.receive(C2S, junk, i)
