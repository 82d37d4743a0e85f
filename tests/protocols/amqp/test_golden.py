"""AMQP 0-9-1 golden tests over ../shared/corpus/amqp (RabbitMQ captures from deepflow and Packetbeat).

Truths: tshark's counts of synchronous requests and their replies (MANIFEST.tsv); tshark's own list of the
methods, exchanges, queues and routing keys in each file, compared with what our records carry; and the
checked-in golden records.
"""

from __future__ import annotations

import collections
import subprocess

import pytest

from packetd.protocols.amqp.spec import NAMES
from tests.helpers.golden import RULES_FOR, ManifestRow, as_json, manifest, run_file
from tests.net.truth import TSHARK

ROWS = manifest("amqp")

# file → (roundtrip + handshake records expected, why it differs from tshark's response count)
EXPLAINED: dict[str, tuple[int, str]] = {
    "deepflowio_deepflow__amqp-error.pcap": (
        20,
        "tshark counts 18 '-Ok' replies. Two Connection.Open requests are answered by the server's "
        "Connection.Close (530 NOT_ALLOWED, vhost not found) and one Exchange.Declare by Channel.Close "
        "(406 PRECONDITION_FAILED): each is its request's error response, +3 records; the client's "
        "Channel.Close-Ok that acknowledges that Channel.Close is absorbed (counted), -1.",
    ),
}
# file → (oneway records, what they are)
ONEWAY = {
    "deepflowio_deepflow__amqp-error.pcap": (2, "Basic.Publish (no confirms) and the broker's Basic.Return"),
    "deepflowio_deepflow__amqp1.pcap": (2, "Basic.Publish and Basic.Deliver"),
    "deepflowio_deepflow__amqp2.pcap": (2, "Basic.Publish and Basic.Deliver"),
    "deepflowio_deepflow__amqp3.pcap": (1, "Basic.Publish"),
    "njcx_packetbeat__amqp_channel_error.pcap": (1, "Exchange.Declare sent no-wait (manifest note)"),
    "njcx_packetbeat__amqp_emit_receive.pcap": (2, "Basic.Publish and Basic.Deliver"),
    "njcx_packetbeat__amqp_publish.pcap": (1, "Basic.Publish"),
}


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_counts_against_tshark(row: ManifestRow) -> None:
    records, engine = run_file(row.path, RULES_FOR["amqp"](row))
    paired = [r for r in records if r.kind in ("roundtrip", "handshake")]
    expected = EXPLAINED[row.name][0] if row.name in EXPLAINED else row.tshark_responses
    assert len(paired) == expected
    assert sum(1 for r in records if r.kind == "oneway") == ONEWAY[row.name][0]
    assert not [r for r in records if r.kind == "unanswered"]
    stats = engine.protocol_stats["amqp"]
    assert stats.resets == 0, stats.decode_errors
    assert stats.pairing.orphans == 0


def _tshark(path: str, *fields: str) -> list[list[str]]:
    assert TSHARK is not None
    cmd = [TSHARK, "-n", "-r", path, "-Y", "amqp", "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (make test-deps)")
@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_methods_and_names_match_tshark(row: ManifestRow) -> None:
    records, engine = run_file(row.path, RULES_FOR["amqp"](row))
    ours: collections.Counter[str] = collections.Counter()
    names: set[str] = set()
    for rec in as_json(records):
        for side in ("request", "response"):
            m = rec[side]
            if m is not None:
                ours[m["method"]] += 1
                names.update(str(m[k]) for k in ("exchange", "queue", "routing_key") if m.get(k))
    theirs: collections.Counter[str] = collections.Counter()
    their_names: set[str] = set()
    for cls, meth, exchange, queue, rkey in _tshark(
        row.path, "amqp.method.class", "amqp.method.method", "amqp.method.arguments.exchange",
        "amqp.method.arguments.queue", "amqp.method.arguments.routing_key",
    ):  # fmt: skip
        if not cls:
            continue  # content header / body / heartbeat frames only
        for c, m in zip(cls.split(","), meth.split(","), strict=True):
            theirs[NAMES[(int(c), int(m))]] += 1
        their_names.update(x for x in exchange.split(",") + queue.split(",") + rkey.split(",") if x)
    counters = engine.protocol_stats["amqp"].counters
    # methods counted instead of recorded: consumer acks and the Close-Ok after an error Close
    absorbed = collections.Counter(
        {
            "Basic.Ack": counters.get("consumer_ack", 0),
            "Channel.Close-Ok": counters.get("close_ok_after_error", 0),
        }
    )
    assert ours + absorbed == theirs
    assert names == their_names
