"""Live HTTP/2 over cleartext: real servers (Debian's nghttpd, hypercorn for `Upgrade: h2c`) and real clients
(curl, nghttp, h2load), captured on loopback through the AF_PACKET engine while tcpdump records the same
traffic.

The ports are watched with an `http` rule, as an operator would: every connection reaches the HTTP/2 decoder
through the HTTP/1 decoder's hand-over (prior-knowledge preface, or `Upgrade: h2c` + 101). The truth is the
clients' own output: method, path, status and body length of every request they made.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Any

import pytest

from tests.helpers.live import (
    ROOT,
    can_capture,
    capture,
    free_port,
    replay,
    stop_process,
    validate_against_schema,
    wait_port,
    without_times,
)

pytestmark = [
    pytest.mark.root,
    pytest.mark.live,
    pytest.mark.server,
    pytest.mark.skipif(not can_capture(), reason="live capture needs root / CAP_NET_RAW"),
    pytest.mark.skipif(
        not (
            shutil.which("nghttpd")
            and shutil.which("h2load")
            and shutil.which("nghttp")
            and shutil.which("curl")
        ),
        reason="nghttp2-server / nghttp2-client / curl not installed (make test-deps)",
    ),
]

BIG = 3 * 1024 * 1024 + 7
POST_BODY = os.urandom(10_000)
H2LOAD_REQUESTS = 60
NGHTTP_STREAMS = 8

Entry = tuple[str, str, int]  # method, path, status


class Log:
    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.sizes: dict[tuple[str, str, int], int] = {}  # body length the client received, per request kind


def curl(url: str, *args: str) -> tuple[int, int, str]:
    out = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{http_version}", *args, url],
        capture_output=True, check=True, timeout=60, text=True,
    ).stdout.split()  # fmt: skip
    return int(out[0]), int(out[1]), out[2]


def workload(ng: int, hc: int, www: str, log: Log) -> None:
    pk = "--http2-prior-knowledge"
    for method, port, path, args in (
        ("GET", ng, "/index.html", [pk]),
        ("HEAD", ng, "/index.html", [pk, "-I"]),
        ("GET", ng, "/nope.html", [pk]),
        ("GET", ng, "/big.bin", [pk]),  # 3 MB: many DATA frames across many segments
        ("POST", hc, "/post", [pk, "--data-binary", "@" + os.path.join(www, "post.bin")]),
        ("GET", hc, "/missing", [pk]),
        ("GET", hc, "/upgraded", ["--http2"]),  # HTTP/1.1 Upgrade: h2c, answered on stream 1
        ("GET", hc, "/empty", ["--http2"]),
    ):
        status, size, version = curl(f"http://127.0.0.1:{port}{path}", *args)
        assert version == "2", (path, version)
        log.entries.append((method, path, status))
        log.sizes[(method, path, status)] = size
    # many concurrent streams on one connection
    out = subprocess.run(
        ["h2load", "-n", str(H2LOAD_REQUESTS), "-c", "1", "-m", "20", f"http://127.0.0.1:{ng}/index.html"],
        capture_output=True, check=True, timeout=120, text=True,
    ).stdout  # fmt: skip
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    assert m is not None and int(m.group(1)) == H2LOAD_REQUESTS, out
    log.entries += [("GET", "/index.html", 200)] * H2LOAD_REQUESTS
    out = subprocess.run(
        ["nghttp", "-ns", "-m", str(NGHTTP_STREAMS), f"http://127.0.0.1:{ng}/index.html"],
        capture_output=True, check=True, timeout=60, text=True,
    ).stdout  # fmt: skip
    codes = re.findall(r"^\s*\d+\s+\S+\s+\S+\s+\S+\s+(\d{3})\s+\d+\s+/index.html$", out, re.M)
    assert len(codes) == NGHTTP_STREAMS, out
    log.entries += [("GET", "/index.html", int(c)) for c in codes]


@pytest.fixture(scope="module")
def traffic() -> dict[str, Any]:
    www = tempfile.mkdtemp(prefix="packetd-h2-")
    with open(os.path.join(www, "index.html"), "w") as f:
        f.write("<p>hello over h2c</p>\n" * 10)
    with open(os.path.join(www, "big.bin"), "wb") as f:
        f.write(os.urandom(BIG))
    with open(os.path.join(www, "post.bin"), "wb") as f:
        f.write(POST_BODY)
    ng, hc = free_port(), free_port()
    nghttpd = subprocess.Popen(
        ["nghttpd", "--no-tls", "-d", www, str(ng)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    hypercorn = subprocess.Popen(
        [sys.executable, "-m", "hypercorn", "--bind", f"127.0.0.1:{hc}", "tests.helpers.asgi_app:app"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
    )  # fmt: skip
    log = Log()
    try:
        wait_port(ng, timeout=30)
        wait_port(hc, timeout=30)
        with capture(
            ["--ifaces", "^lo$", "--proto", f"http;{ng},{hc}", "--block-num", "128"],
            tcpdump_filter=f"tcp port {ng} or tcp port {hc}",
        ) as cap:
            workload(ng, hc, www, log)
            records = cap.stop()
            stderr = cap.stderr.decode(errors="replace")
            pcap = cap.pcap_path
    finally:
        for p in (nghttpd, hypercorn):
            stop_process(p, timeout=10)
        shutil.rmtree(www, ignore_errors=True)
    return {"log": log, "records": records, "stderr": stderr, "pcap": pcap, "ports": f"{ng},{hc}", "hc": hc}


def key(r: dict[str, Any]) -> Entry:
    return r["operation"], r["request"]["path"], int(r["status"])


def test_the_workload_did_what_it_meant_to(traffic: dict[str, Any]) -> None:
    log: Log = traffic["log"]
    assert len(log.entries) == 8 + H2LOAD_REQUESTS + NGHTTP_STREAMS
    assert log.sizes[("GET", "/big.bin", 200)] == BIG and log.sizes[("GET", "/empty", 204)] == 0


def test_every_request_appears_once_paired_with_its_status(traffic: dict[str, Any]) -> None:
    records = traffic["records"]
    assert sorted(key(r) for r in records) == sorted(traffic["log"].entries)
    assert {(r["protocol"], r["kind"]) for r in records} == {("http2", "roundtrip")}
    assert all(r["flags"] == [] for r in records), [r["flags"] for r in records if r["flags"]]


def test_body_lengths_match_what_the_clients_sent_and_received(traffic: dict[str, Any]) -> None:
    sizes = traffic["log"].sizes
    for r in traffic["records"]:
        k = key(r)
        if k in sizes and r["operation"] != "HEAD":
            assert r["response"]["body_bytes"] == sizes[k], k
    (post,) = [r for r in traffic["records"] if r["operation"] == "POST"]
    assert post["request"]["body_bytes"] == len(POST_BODY)
    assert post["response"]["body_bytes"] == len(b"echo:") + len(POST_BODY)
    (head,) = [r for r in traffic["records"] if r["operation"] == "HEAD"]
    assert head["response"]["body_bytes"] == 0  # the HEAD response ends on its HEADERS frame


def test_upgrade_request_becomes_stream_1(traffic: dict[str, Any]) -> None:
    up = [r for r in traffic["records"] if r["request"]["path"] in ("/upgraded", "/empty")]
    assert len(up) == 2
    for r in up:
        assert r["request"]["stream_id"] == 1 and r["response"]["stream_id"] == 1
        assert r["request"]["headers"]["upgrade"] == ["h2c"]  # the HTTP/1.1 request's own header block
        assert r["request"]["authority"] == f"127.0.0.1:{traffic['hc']}"


def test_concurrent_streams_on_one_connection(traffic: dict[str, Any]) -> None:
    by_conn: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for r in traffic["records"]:  # one client port may be reused towards the other server
        by_conn.setdefault((r["client"]["port"], r["server"]["port"]), []).append(r)
    sizes = sorted(len(v) for v in by_conn.values())
    assert sizes[-2:] == [NGHTTP_STREAMS, H2LOAD_REQUESTS]
    for recs in by_conn.values():
        ids = [r["request"]["stream_id"] for r in recs]
        assert len(set(ids)) == len(ids)


def test_summary_reports_no_drops_and_no_resets(traffic: dict[str, Any]) -> None:
    err = traffic["stderr"]
    assert " 0 dropped by the kernel" in err
    assert " 0 decode resets" in err and " 0 gaps" in err


def test_tcpdump_replay_gives_the_same_records(traffic: dict[str, Any]) -> None:
    replayed, _ = replay(traffic["pcap"], ["--proto", f"http;{traffic['ports']}"])
    assert without_times(replayed) == without_times(traffic["records"])


def test_live_records_validate_against_the_schema(traffic: dict[str, Any]) -> None:
    validate_against_schema(traffic["records"])


def test_response_crossing_the_clients_rst_stream_is_kept() -> None:
    """issue 9 item 6, with a real server: a client (the h2 library) sends GET /stall, then RST_STREAM
    while hypercorn's event loop is blocked; hypercorn writes its 200 before it reads the reset. The capture
    shows the RST before the response, both on the wire. tshark's dissection of tcpdump's file is the
    truth for what the server sent."""
    import socket
    import time

    import h2.config
    import h2.connection
    import h2.errors

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "hypercorn", "--bind", f"127.0.0.1:{port}", "tests.helpers.asgi_app:app"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
    )  # fmt: skip
    try:
        wait_port(port, timeout=30)
        with capture(
            ["--ifaces", "^lo$", "--proto", f"http;{port}"], tcpdump_filter=f"tcp port {port}"
        ) as cap:
            conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
            with socket.create_connection(("127.0.0.1", port)) as s:
                conn.initiate_connection()
                s.sendall(conn.data_to_send())
                headers = [(":method", "GET"), (":scheme", "http"), (":authority", "x"), (":path", "/stall")]
                conn.send_headers(1, headers, end_stream=True)
                s.sendall(conn.data_to_send())
                time.sleep(0.15)  # hypercorn is inside the app now, its loop blocked
                conn.reset_stream(1, h2.errors.ErrorCodes.CANCEL)
                s.sendall(conn.data_to_send())
                s.settimeout(2)
                got = b""
                with contextlib.suppress(TimeoutError):
                    while len(got) < 64 and (chunk := s.recv(65536)):
                        got += chunk
                time.sleep(0.3)
            records = cap.stop()
            pcap = cap.pcap_path
    finally:
        stop_process(server, timeout=10)
    # what the wire shows, by tshark: the RST_STREAM went out before the server's HEADERS on stream 1
    frames = subprocess.run(
        ["tshark", "-n", "-r", pcap, "-d", f"tcp.port=={port},http2", "-Y", "http2.streamid == 1",
         "-T", "fields", "-e", "http2.type", "-e", "http2.headers.status"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.split()  # fmt: skip
    assert "3" in frames and "200" in frames, frames  # RST_STREAM (type 3) and a :status 200
    assert frames.index("3") < frames.index("200"), frames
    (rec,) = records
    assert (rec["protocol"], rec["kind"], rec["operation"], rec["status"]) == (
        "http2",
        "roundtrip",
        "GET",
        "200",
    )
    assert (rec["request"]["path"], rec["request"]["reset_by"], rec["request"]["reset"]) == (
        "/stall",
        "client",
        "CANCEL",
    )
    assert rec["response"]["reset_by"] == "client"
    validate_against_schema(records)
