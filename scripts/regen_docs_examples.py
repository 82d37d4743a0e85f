"""Write docs/roundtrips/<protocol>.json: real records from the shared corpus, pretty-printed.

    .venv/bin/python scripts/regen_docs_examples.py

Each example is the record packetd emits for a real capture (named in EXAMPLES), so the documentation
cannot drift from the code: tests/test_schema.py validates every example against the schema.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tests.helpers.golden import CORPUS, ROOT, as_json, run_file

from packetd.engine import Rule

# protocol → [(capture, rules, which records to keep: (kind, index among records of that kind))]
EXAMPLES: dict[str, list[tuple[str, tuple[Rule, ...], str, int]]] = {
    "http": [
        ("http1/zeek_zeek__get.pcap", (Rule(protocol="http", ports=(80,)),), "roundtrip", 0),
        ("http1/zeek_zeek__100-continue.pcap", (Rule(protocol="http", ports=(80,)),), "roundtrip", 0),
        ("http1/njcx_packetbeat__http_post.pcap", (Rule(protocol="http", ports=(80,)),), "unanswered", 0),
    ],
    "http2": [
        (
            "http2/OISF_suricata-verify__http2-bugfixes__input.pcap",
            (Rule(protocol="http2", ports=(443,)),),
            "roundtrip",
            1,
        ),
        (
            "http2/OISF_suricata-verify__http2-deflate__http2_deflate.pcap",
            (Rule(protocol="http", ports=(8080,)),),
            "roundtrip",
            0,
        ),
        (
            "http2/OISF_suricata-verify__http2-long-frame__input.pcap",
            (Rule(protocol="http2", ports=(8443,)),),
            "unanswered",
            0,
        ),
    ],
    "grpc": [
        ("grpc/deepflowio_deepflow__h2c_ascii.pcap", (Rule(protocol="grpc", ports=(7070,)),), "roundtrip", 0),
        (
            "grpc/deepflowio_deepflow__grpc-server-stream.pcap",
            (Rule(protocol="grpc", ports=(9001,)),),
            "roundtrip",
            0,
        ),
    ],
    "dns": [
        ("dns/njcx_packetbeat__dns_mx.pcap", (Rule(protocol="dns", ports=(53,)),), "roundtrip", 0),
        ("dns/njcx_packetbeat__dns_not_found.pcap", (Rule(protocol="dns", ports=(53,)),), "roundtrip", 0),
        ("dns/zeek_zeek__dns-edns-tcp-keepalive.pcap", (Rule(protocol="dns", ports=(53,)),), "roundtrip", 0),
        ("dns/arkime_arkime__dns-udp.pcap", (Rule(protocol="dns", ports=(53,)),), "unanswered", 0),
    ],
    "amqp": [
        (
            "amqp/deepflowio_deepflow__amqp-error.pcap",
            (Rule(protocol="amqp", ports=(5672,)),),
            "handshake",
            0,
        ),
        (
            "amqp/njcx_packetbeat__amqp_emit_receive.pcap",
            (Rule(protocol="amqp", ports=(5672,)),),
            "roundtrip",
            2,
        ),
        (
            "amqp/njcx_packetbeat__amqp_channel_error.pcap",
            (Rule(protocol="amqp", ports=(5672,)),),
            "roundtrip",
            2,
        ),
        ("amqp/deepflowio_deepflow__amqp-error.pcap", (Rule(protocol="amqp", ports=(5672,)),), "oneway", 0),
        ("amqp/deepflowio_deepflow__amqp1.pcap", (Rule(protocol="amqp", ports=(5672,)),), "oneway", 1),
    ],
    "mongodb": [
        (
            "mongodb/deepflowio_deepflow__mongo-msg.pcap",
            (Rule(protocol="mongodb", ports=(3717,)),),
            "roundtrip",
            0,
        ),
        (
            "mongodb/deepflowio_deepflow__mongo.pcap",
            (Rule(protocol="mongodb", ports=(27017,)),),
            "handshake",
            0,
        ),
        (
            "mongodb/njcx_packetbeat__mongodb_inserts.pcap",
            (Rule(protocol="mongodb", ports=(27017,)),),
            "roundtrip",
            1,
        ),
    ],
    "kafka": [
        ("kafka/ntop_nDPI__kafka.pcapng", (Rule(protocol="kafka", ports=(9092,)),), "roundtrip", 10),
        (
            "kafka/deepflowio_deepflow__01-fetch-v12-ok.pcap",
            (Rule(protocol="kafka", ports=(36333,)),),
            "roundtrip",
            0,
        ),
        (
            "kafka/deepflowio_deepflow__11-join-group-v7.pcap",
            (Rule(protocol="kafka", ports=(36333,)),),
            "roundtrip",
            0,
        ),
        ("kafka/ntop_nDPI__kafka.pcapng", (Rule(protocol="kafka", ports=(9092,)),), "unanswered", 0),
    ],
    "redis": [
        ("redis/zeek_zeek__set.pcap", (Rule(protocol="redis", ports=(6379,)),), "roundtrip", 0),
        (
            "redis/njcx_packetbeat__redis_session.pcap",
            (Rule(protocol="redis", ports=(6380,)),),
            "roundtrip",
            2,
        ),
        (
            "redis/deepflowio_deepflow__redis-debug.pcap",
            (Rule(protocol="redis", ports=(6379,)),),
            "roundtrip",
            0,
        ),
        ("redis/zeek_zeek__pubsub.pcap", (Rule(protocol="redis", ports=(6379,)),), "oneway", 0),
    ],
    "postgresql": [
        (
            "postgresql/zeek_zeek__psql-select-now.pcap",
            (Rule(protocol="postgresql", ports=(5432,)),),
            "handshake",
            0,
        ),
        (
            "postgresql/zeek_zeek__psql-create-insert-select-delete-drop.pcap",
            (Rule(protocol="postgresql", ports=(5432,)),),
            "roundtrip",
            2,
        ),
        (
            "postgresql/njcx_packetbeat__pgsql_extended_query.pcap",
            (Rule(protocol="postgresql", ports=(5432,)),),
            "roundtrip",
            1,
        ),
        (
            "postgresql/OISF_suricata-verify__pgsql-simple-query-rollback__input.pcap",
            (Rule(protocol="postgresql", ports=(5432,)),),
            "roundtrip",
            9,
        ),
        (
            "postgresql/zeek_zeek__psql-create-insert-select-delete-drop.pcap",
            (Rule(protocol="postgresql", ports=(5432,)),),
            "oneway",
            0,
        ),
    ],
    "mysql": [
        ("mysql/zeek_zeek__many-query-attrs.pcap", (Rule(protocol="mysql", ports=(3306,)),), "handshake", 0),
        ("mysql/zeek_zeek__many-query-attrs.pcap", (Rule(protocol="mysql", ports=(3306,)),), "roundtrip", 0),
        (
            "mysql/deepflowio_deepflow__mysql-statement.pcap",
            (Rule(protocol="mysql", ports=(30130,)),),
            "roundtrip",
            1,
        ),
        ("mysql/zeek_zeek__mysql__auth.pcap", (Rule(protocol="mysql", ports=(3306,)),), "handshake", 0),
        ("mysql/zeek_zeek__mysql.pcap", (Rule(protocol="mysql", ports=(3306,)),), "oneway", 0),
    ],
}


def main() -> None:
    for protocol, picks in EXAMPLES.items():
        out = []
        for capture, rules, kind, index in picks:
            records, _ = run_file(os.path.join(CORPUS, capture), rules)
            chosen = [r for r in as_json(records) if r["kind"] == kind][index]
            out.append(chosen)
        path = os.path.join(ROOT, "docs", "roundtrips", f"{protocol}.json")
        with open(path, "w") as f:
            json.dump(out, f, indent=2, ensure_ascii=False)
            f.write("\n")
        print(f"{path}: {len(out)} examples")


if __name__ == "__main__":
    main()
