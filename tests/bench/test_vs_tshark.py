"""The `make bench` harness's counts against tshark's own, so that it cannot rot unnoticed.

samples/http-sample.pcapng is real nginx traffic (scripts/record_sample.py). bench/replicate.py makes three
copies of its nginx conversation; bench/vs_tshark.py then measures packetd and tshark on it. The truths are
tshark's own counts on the same files: the HTTP responses it dissects (one per roundtrip) and the frames of
the server's port. If the replica broke TCP (addresses, sequence numbers), tshark or packetd would pair
fewer responses than three times the original's. A case whose tshark unit is not the records' must be
reported as differing (the harness's comparison can fail), and, with root and the servers installed, every
case's real server and client are recorded afresh and its tshark unit checked against packetd's records.
Nothing here is timed: performance is measured by `make bench`, not asserted.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import pytest
from bench.replicate import replicate
from bench.vs_tshark import BEGIN, CASES, END, markdown, measure, run_packetd, run_tshark, write_section

from tests.helpers.live import ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not shutil.which("tshark"), reason="tshark not installed (make test-deps)"),
]

SAMPLE = os.path.join(ROOT, "samples", "http-sample.pcapng")
with open(SAMPLE + ".ports") as _f:
    NGINX_PORT = int(_f.read().split(",")[0])  # the sample's nginx; its other port is a second server


def tshark_frames(path: str, display_filter: str) -> int:
    out = subprocess.run(["tshark", "-n", "-r", path, "-Y", display_filter, "-T", "fields", "-e", "frame.number"],
                         capture_output=True, check=True, text=True).stdout  # fmt: skip
    return len(out.split())


def test_harness_counts_what_tshark_counts_on_a_replica(tmp_path: object) -> None:
    # one copy: the nginx conversation alone (tshark would also dissect the sample's other server)
    single, replica = os.path.join(str(tmp_path), "x1.pcap"), os.path.join(str(tmp_path), "x3.pcap")
    replicate(SAMPLE, single, NGINX_PORT, copies=1)
    packets, _ = replicate(SAMPLE, replica, NGINX_PORT, copies=3)
    case = CASES["http1-small"]

    original = run_packetd(sys.executable, single, case, NGINX_PORT, None)
    original_tshark = run_tshark(single, case, NGINX_PORT, None)
    assert original.count == original_tshark.count > 0

    result = measure("http1-small", replica, NGINX_PORT, [("pure", sys.executable)], runs=1, cpu=None)
    pure, tshark = result["pure"], result["tshark"]
    assert pure["count"] == tshark["count"] == 3 * original_tshark.count
    assert pure["same_count"]
    assert (
        packets
        == pure["packets"]
        == tshark_frames(replica, "frame")
        == 3 * tshark_frames(SAMPLE, f"tcp.port == {NGINX_PORT}")
    )
    # three copies are three sets of distinct connections, each with its own handshake
    assert tshark_frames(replica, "tcp.flags.syn == 1 && tcp.flags.ack == 0") == 3 * tshark_frames(
        SAMPLE, f"tcp.port == {NGINX_PORT} && tcp.flags.syn == 1 && tcp.flags.ack == 0"
    )
    assert pure["cpu_s"] > 0 and tshark["cpu_s"] > 0 and pure["rss_mb"] > 10
    assert pure["ratio"] == pytest.approx(tshark["cpu_s"] / pure["cpu_s"])

    # the table goes between the markers; the rest of the file stays as it was
    doc = os.path.join(str(tmp_path), "BENCHMARKS.md")
    with open(doc, "w") as f:
        f.write(f"# Benchmarks\n\nkept above\n\n{BEGIN}\nold table\n{END}\n\nkept below\n")
    write_section(doc, markdown([result], ["pure"], [], "cmd", "header"), "title")
    with open(doc) as f:
        text = f.read()
    assert text.startswith("# Benchmarks\n\nkept above\n\n" + BEGIN) and text.endswith(
        END + "\n\nkept below\n"
    )
    assert "old table" not in text and f"| {case.title} | " in text
    assert f"{case.title}: " in text and "same count (HTTP responses)" in text and "**differs**" not in text


def test_harness_reports_a_count_that_differs_from_tsharks(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    # tshark counting every HTTP frame (requests and responses) is not the records' unit: the harness must say
    # so in the table, not print "same count"
    replica = os.path.join(str(tmp_path), "x1.pcap")
    replicate(SAMPLE, replica, NGINX_PORT, copies=1)
    wrong = dataclasses.replace(CASES["http1-small"], filter="http", fields=("frame.number",))
    monkeypatch.setitem(CASES, "http1-small", wrong)
    result = measure("http1-small", replica, NGINX_PORT, [("pure", sys.executable)], runs=1, cpu=None)
    requests_and_responses = tshark_frames(replica, "http")
    assert result["tshark"]["count"] == requests_and_responses > result["pure"]["count"] > 0
    assert not result["pure"]["same_count"]
    table = markdown([result], ["pure"], [], "cmd", "header")
    assert "**differs**" in table and "same count" not in table


RECORD = os.path.join(ROOT, "scripts", "record_bench_captures.py")


@pytest.mark.server
@pytest.mark.root
@pytest.mark.parametrize("case", list(CASES))
def test_every_case_counts_what_tshark_counts_on_a_fresh_recording(case: str, tmp_path: object) -> None:
    # the case's real server and client, recorded now (the same code `make bench` records with), two copies:
    # packetd's records and tshark's count of the case's unit must agree, and be twice one copy's
    if os.geteuid() != 0 or not shutil.which("tcpdump"):
        pytest.skip("recording needs root and tcpdump")
    out = str(tmp_path)
    # a recording that tcpdump dropped packets from may be no truth to count against (tshark and packetd
    # can disagree on a response whose segments are gone): on a loaded machine the 100 MB HTTP/1 burst can
    # outrun tcpdump, so such a recording is made again, up to three times; if every one lost packets the
    # machine cannot give this case a complete truth, and the test says so rather than compare against it
    for _attempt in range(3):
        subprocess.run([sys.executable, RECORD, case, "--out", out, "--force"], check=True, cwd=ROOT,
                       capture_output=True)  # fmt: skip
        with open(os.path.join(out, f"{case}.json")) as f:
            meta = json.load(f)
        if not meta.get("tcpdump_drops"):
            break
    else:
        pytest.skip(
            f"tcpdump dropped packets in all 3 recordings (last: {meta['tcpdump_drops']}): no complete truth"
        )
    port = int(meta["port"])
    src, replica = os.path.join(out, f"{case}.pcap"), os.path.join(out, "x2.pcap")
    one = run_tshark(src, CASES[case], port, None).count
    replicate(src, replica, port, copies=2)
    result = measure(case, replica, port, [("pure", sys.executable)], runs=1, cpu=None,
                     client_count=2 * int(meta["requests"]))  # fmt: skip
    assert one > 0 and result["pure"]["count_ok"]
    if CASES[case].client_truth:  # tshark misses some (the case says why): the client's own count decides
        assert result["pure"]["count"] == 2 * int(meta["requests"]) >= result["tshark"]["count"]
    else:
        assert result["pure"]["count"] == result["tshark"]["count"] == 2 * one
        assert result["pure"]["same_count"]
