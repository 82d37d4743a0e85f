"""Span and trace ids are unique per roundtrip and reproducible: pipelined Redis commands sent in one
segment (redis-py's pipeline against a real redis-server) and concurrent HTTP/2 streams (nghttp against
nghttpd), captured with tcpdump on loopback.

The precondition is checked on the capture itself: the pipelined exchanges share endpoints, first and
last byte times and operation, so only their order on the connection (and the stream id) can tell them
apart. Replaying the same capture twice gives the same ids.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter

import pytest

from packetd.engine import Rule
from packetd.pipeline.spans import RoundtripsToTraces
from tests.helpers.dbservers import RedisServer, redis_available
from tests.helpers.golden import run_file
from tests.helpers.tapped import CAPTURE_MARKS, nghttpd, tcpdump

pytestmark = CAPTURE_MARKS


def ids_of(pcap: str, rule: Rule) -> tuple[list[tuple[int, int]], list[tuple[int, int, str]]]:
    records, _ = run_file(pcap, (rule,))
    proc = RoundtripsToTraces()
    spans = [proc.process(r) for r in records]
    ids = [(s.trace_id, s.span_id) for s in spans if s is not None]
    assert len(ids) == len(records)
    return ids, [(r.start_ns, r.end_ns, r.operation) for r in records]


def assert_unique_and_reproducible(pcap: str, rule: Rule, repeated: int) -> None:
    ids, shapes = ids_of(pcap, rule)
    # the capture really holds exchanges a hash of (endpoints, times, operation) cannot tell apart
    assert max(Counter(shapes).values()) >= repeated, Counter(shapes)
    assert len(set(ids)) == len(ids)
    assert len({s for _, s in ids}) == len(ids)  # span ids alone, too
    assert len({t for t, _ in ids}) == len(ids)  # each is the root of its own trace
    again, _ = ids_of(pcap, rule)
    assert again == ids


@pytest.mark.skipif(not redis_available(), reason="redis-server is not installed (make test-deps)")
def test_pipelined_redis_commands_in_one_segment_get_distinct_ids() -> None:
    import redis

    server = RedisServer()
    try:
        with tcpdump(server.port) as pcap:
            client = redis.Redis(port=server.port)
            client.ping()
            for _ in range(3):
                pipe = client.pipeline(transaction=False)
                for _ in range(4):
                    pipe.incr("counter")
                assert len(pipe.execute()) == 4
            client.close()
    finally:
        server.stop()
    assert_unique_and_reproducible(pcap, Rule(protocol="redis", ports=(server.port,)), repeated=4)


@pytest.mark.skipif(not shutil.which("nghttpd") or not shutil.which("nghttp"), reason="nghttp2 not installed")
def test_concurrent_http2_streams_get_distinct_ids() -> None:
    # -m 8: the same request 8 times on one connection, all streams opened at once
    with nghttpd({"a.txt": "a\n"}) as port, tcpdump(port) as pcap:
        subprocess.run(
            ["nghttp", "-n", "-m", "8", f"http://127.0.0.1:{port}/a.txt"],
            check=True,
            timeout=30,
            capture_output=True,
        )
    assert_unique_and_reproducible(pcap, Rule(protocol="http2", ports=(port,)), repeated=2)
