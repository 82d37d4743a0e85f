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
        ("postgresql/zeek_zeek__psql-select-now.pcap", (Rule(protocol="postgresql", ports=(5432,)),), "handshake", 0),
        ("postgresql/zeek_zeek__psql-create-insert-select-delete-drop.pcap", (Rule(protocol="postgresql", ports=(5432,)),), "roundtrip", 2),
        ("postgresql/njcx_packetbeat__pgsql_extended_query.pcap", (Rule(protocol="postgresql", ports=(5432,)),), "roundtrip", 1),
        ("postgresql/OISF_suricata-verify__pgsql-simple-query-rollback__input.pcap", (Rule(protocol="postgresql", ports=(5432,)),), "roundtrip", 9),
        ("postgresql/zeek_zeek__psql-create-insert-select-delete-drop.pcap", (Rule(protocol="postgresql", ports=(5432,)),), "oneway", 0),
    ],
    "mysql": [
        ("mysql/zeek_zeek__many-query-attrs.pcap", (Rule(protocol="mysql", ports=(3306,)),), "handshake", 0),
        ("mysql/zeek_zeek__many-query-attrs.pcap", (Rule(protocol="mysql", ports=(3306,)),), "roundtrip", 0),
        ("mysql/deepflowio_deepflow__mysql-statement.pcap", (Rule(protocol="mysql", ports=(30130,)),), "roundtrip", 1),
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
