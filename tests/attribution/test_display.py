"""What watch does with processes once found: the text line's `comm[pid]`, the --pid/--comm/--container
filters, and the engine's new-connection hook (once per connection, not per packet). Records come from a
real capture (the corpus) through the real engine; processes are set by hand, as the resolver sets them."""

from __future__ import annotations

import os

from packetd.capture.pcapfile import CaptureFile
from packetd.engine import Engine, EngineConfig, parse_rule
from packetd.export.text import TextFormatter
from packetd.pairing.roundtrip import Process, Roundtrip
from packetd.pipeline.filters import DisplayFilter
from tests.helpers.golden import CORPUS

PIPELINED = os.path.join(CORPUS, "http1", "zeek_zeek__pipelined-requests.pcap")
CID = "3f2b9c0e8d7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c"


def _replay() -> tuple[list[Roundtrip], list[tuple[tuple[str, int], tuple[str, int], int]], int]:
    out: list[Roundtrip] = []
    noted: list[tuple[tuple[str, int], tuple[str, int], int]] = []
    engine = Engine(
        EngineConfig(rules=(parse_rule("http;80"),)),
        out.append,
        on_connection=lambda c, s, t: noted.append((c, s, t)),
    )
    cap = CaptureFile(PIPELINED)
    frames = 0
    for ts, lt, data in cap:
        engine.frame(ts, lt, data)
        frames += 1
    engine.finish()
    cap.close()
    return out, noted, frames


def _with(rt: Roundtrip, client: Process | None, server: Process | None) -> Roundtrip:
    return rt.attributed((client, server), rt.k8s)


CURL = Process(pid=812, comm="curl", exe="/usr/bin/curl")
NGINX = Process(pid=77, comm="nginx", exe="/usr/sbin/nginx", container_id=CID, container_runtime="docker")


def test_the_hook_is_told_once_per_connection() -> None:
    records, noted, frames = _replay()
    assert len(records) == 5 and frames > len(noted)
    assert noted == [(records[0].client, records[0].server, 6)]  # one connection, five pipelined requests


def test_text_line_shows_comm_pid_of_each_end_found() -> None:
    rt = _replay()[0][0]
    fmt = TextFormatter(color=False)
    plain = fmt.format(rt)
    assert "curl[" not in plain and "[" not in plain.split(" GET ")[0]
    both = fmt.format(_with(rt, CURL, NGINX))
    c, s = f"{rt.client[0]}:{rt.client[1]}", f"{rt.server[0]}:{rt.server[1]}"
    assert f" {c} curl[812] → {s} nginx[77] " in both
    assert both.replace(" curl[812]", "").replace(" nginx[77]", "").split() == plain.split()
    server_only = fmt.format(_with(rt, None, NGINX))
    assert f" {c} → {s} nginx[77] " in server_only


def test_json_has_process_objects_only_when_attribution_ran() -> None:
    rt = _replay()[0][0]
    assert "process" not in rt.to_json()["client"]
    j = _with(rt, None, NGINX).to_json()
    assert j["client"]["process"] is None
    assert j["server"]["process"] == {
        "pid": 77, "comm": "nginx", "exe": "/usr/sbin/nginx", "container_id": CID,
        "container_runtime": "docker", "pod_uid": None,
    }  # fmt: skip


def test_process_filters_match_either_end() -> None:
    rt = _replay()[0][0]
    both, server_only, none_found, off = (
        _with(rt, CURL, NGINX), _with(rt, None, NGINX), _with(rt, None, None), rt
    )  # fmt: skip
    cases = [
        (DisplayFilter(pids=frozenset({812})), [True, False, False, False]),
        (DisplayFilter(pids=frozenset({77, 1})), [True, True, False, False]),
        (DisplayFilter(comms=frozenset({"nginx"})), [True, True, False, False]),
        (DisplayFilter(comms=frozenset({"curl"})), [True, False, False, False]),
        (DisplayFilter(containers=(CID[:12],)), [True, True, False, False]),
        (DisplayFilter(containers=("ffff",)), [False, False, False, False]),
        (DisplayFilter(comms=frozenset({"nginx"}), pids=frozenset({812})), [False, False, False, False]),
        (DisplayFilter(), [True, True, True, True]),
    ]
    for flt, expected in cases:
        assert [flt.accept(r) for r in (both, server_only, none_found, off)] == expected, flt


def test_held_records_wait_for_one_pass_and_keep_their_order() -> None:
    """Records of connections not looked up yet wait; one pass answers the burst; order is kept, and a
    record of an answered connection behind them waits too."""
    import socket

    from packetd.attribution.processes import MAX_HELD, HeldRecords, ProcessResolver

    template = _replay()[0][0]
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen()
    pairs = []
    for _ in range(3):
        c = socket.create_connection(lst.getsockname())
        pairs.append((c, lst.accept()[0]))
    conns = [(c.getsockname(), c.getpeername()) for c, _ in pairs]
    resolver = ProcessResolver()
    out: list[Roundtrip] = []
    held = HeldRecords(resolver, out.append)
    try:
        resolver.note(*conns[0], 6)
        resolver.processes(*conns[0])  # answered before the burst
        passes = resolver.stats.passes
        recs = [
            Roundtrip(template.protocol, template.kind, c, s, template.request, template.response)
            for c, s in (conns[1], conns[2], conns[0], conns[1])
        ]
        resolver.note(*conns[1], 6)
        resolver.note(*conns[2], 6)
        for rt in recs:
            held(rt)
        assert out == [] and held.due == recs[0].end_ns + 20_000_000
        held.flush()
        assert resolver.stats.passes == passes + 1
        assert [(r.client, r.server) for r in out] == [(r.client, r.server) for r in recs]
        assert all(r.processes is not None and r.processes[0] is not None and r.processes[0].pid == os.getpid()
                   for r in out)  # fmt: skip
        out.clear()
        held(recs[2])  # nothing pending: straight through
        assert len(out) == 1
        out.clear()
        resolver.note(*conns[1], 6)
        for _ in range(MAX_HELD):
            held(recs[0])
        assert len(out) == MAX_HELD  # the bound released them
    finally:
        resolver.close()
        for c, s in pairs:
            c.close()
            s.close()
        lst.close()
