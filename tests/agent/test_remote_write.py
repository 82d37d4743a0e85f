"""Remote write through an outage, against a real HTTP receiver in this process that decodes every
WriteRequest (snappy block + protobuf) and can go down and come back on the same port. (The e2e tests do
the same against a real Prometheus; this one controls the outage to the tenth of a second.)

Truth: the snapshot function counts its own calls and stamps each with the call number, so what must
arrive — every snapshot, in order, or a dropped count that makes up the difference — is known exactly.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest

from packetd.export import remote_write
from packetd.export.senders import RemoteWrite
from tests.helpers.backends import PostServer

INTERVAL_S = 0.2


class Receiver(PostServer):
    """Remote write 1.0: snappy block + protobuf WriteRequest → (labels, value, timestamp ms) samples."""

    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], float, int]] = []
        super().__init__()

    def handle(self, path: str, headers: Any, body: bytes) -> int:
        assert headers["Content-Encoding"] == "snappy"
        for ts in remote_write.decode(body).timeseries:
            names = [lb.name for lb in ts.labels]
            assert names == sorted(names)  # the spec: labels sorted by name
            labels = {lb.name: lb.value for lb in ts.labels}
            self.got += [(labels, s.value, s.timestamp) for s in ts.samples]
        self.requests += 1
        return 204


def run_outage(queue_size: int, outage_s: float) -> tuple[Receiver, RemoteWrite, int]:
    rx = Receiver()
    calls = [0]

    def snapshot() -> list[tuple[list[tuple[str, str]], float]]:
        calls[0] += 1
        return [([("__name__", "packetd_test_seq")], float(calls[0]))]

    rw = RemoteWrite(
        f"http://127.0.0.1:{rx.port}/api/v1/write", INTERVAL_S, 1.0, {}, queue_size, snapshot,
        remote_write.identity_labels({"cluster": "lab"}),
    )  # fmt: skip
    rw.start()
    try:
        time.sleep(1.0)
        rx.stop()
        time.sleep(outage_s)
        rx.start()
        # back-off is 1 s, 2 s, 4 s after consecutive failures: the next retry comes within 4 s
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and (rw.queue or not rx.got or rx.got[-1][1] < calls[0] - 1):
            time.sleep(0.1)
    finally:
        rw.stop(2.0)
        rx.stop()
    return rx, rw, calls[0]


def test_an_outage_within_the_queue_bound_loses_no_interval() -> None:
    rx, rw, calls = run_outage(queue_size=100, outage_s=2.5)
    values = [v for _, v, _ in rx.got]
    assert values == [float(i) for i in range(1, calls + 1)]  # every snapshot, in order, none twice
    assert calls >= (1.0 + 2.5) / INTERVAL_S * 0.8  # one per interval, the outage included
    stamps = [ts for _, _, ts in rx.got]
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert max(gaps[:-1]) <= 3 * INTERVAL_S * 1000, gaps  # the outage's intervals are there (the last:
    assert rw.stats.dropped == 0 and rw.stats.failed >= 1  # stop() takes one more, at any time)
    labels = rx.got[0][0]
    assert labels["job"] == "packetd" and labels["cluster"] == "lab" and labels["instance"]


def test_an_outage_beyond_the_queue_bound_counts_every_dropped_snapshot() -> None:
    rx, rw, calls = run_outage(queue_size=3, outage_s=2.5)
    values = [v for _, v, _ in rx.got]
    assert values == sorted(set(values))  # in order, none twice
    assert rw.stats.dropped > 0
    assert len(values) + rw.stats.dropped == calls  # what did not arrive is counted, one for one
    assert values[-1] == float(calls)


@pytest.mark.parametrize(
    ("own", "extra", "want"),
    [
        ([("__name__", "x"), ("path", "/")], {"job": "packetd"}, [("__name__", "x"), ("job", "packetd"), ("path", "/")]),
        ([("__name__", "x"), ("job", "mine")], {"job": "packetd"}, [("__name__", "x"), ("job", "mine")]),
    ],
)  # fmt: skip
def test_extra_labels_are_added_sorted_and_a_series_own_label_wins(
    own: list[tuple[str, str]], extra: dict[str, str], want: list[tuple[str, str]]
) -> None:
    req: Any = remote_write.decode(remote_write.encode([(own, 1.0)], 1, extra))
    assert [(lb.name, lb.value) for lb in req.timeseries[0].labels] == want


def test_identity_defaults_to_node_name(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    monkeypatch.delenv("NODE_NAME", raising=False)
    assert remote_write.identity_labels({}) == {"job": "packetd", "instance": socket.gethostname()}
    monkeypatch.setenv("NODE_NAME", "node-7")
    assert remote_write.identity_labels({"instance": "x", "dc": "a"}) == {
        "job": "packetd",
        "instance": "x",
        "dc": "a",
    }
    assert remote_write.identity_labels({})["instance"] == "node-7"
