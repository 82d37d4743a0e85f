"""`packetd` as a user runs it: flags, errors, exit statuses, output streams, files, privileges."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from packetd.protocols.registry import REGISTRY
from tests.helpers.build import PACKAGE_PATH
from tests.helpers.golden import CORPUS, ROOT
from tests.helpers.live import can_capture

PIPELINED = os.path.join(CORPUS, "http1", "zeek_zeek__pipelined-requests.pcap")
BRO = os.path.join(CORPUS, "http1", "zeek_zeek__bro.org.pcap")
POST = os.path.join(CORPUS, "http1", "njcx_packetbeat__http_post.pcap")


def run(
    *args: str, stdin: bytes | None = None, uid: int | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "packetd", *args]
    if uid is not None:
        cmd = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *cmd]
    r = subprocess.run(
        cmd, check=False, input=stdin, capture_output=True, cwd=ROOT, timeout=timeout,
        env={**os.environ, "PYTHONPATH": PACKAGE_PATH},
    )  # fmt: skip
    return subprocess.CompletedProcess(r.args, r.returncode, r.stdout.decode(), r.stderr.decode())


def records(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_version_and_module_entry_point() -> None:
    r = run("version")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0].startswith("Version: ") and lines[1].startswith("GitHash: ")


@pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 missing")
def test_ifaces_lists_what_ip_addr_shows() -> None:
    r = run("ifaces")
    assert r.returncode == 0
    truth = subprocess.run(
        ["ip", "-o", "addr", "show", "lo"], capture_output=True, text=True, check=True
    ).stdout
    addrs = re.findall(r"inet6? (\S+)", truth)
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("- lo: "))
    assert line == f"- lo: [{' '.join(addrs)}]"


@pytest.mark.parametrize(
    ("proto", "message"),
    [
        ("http", "invalid --proto input 'http', expected 'protocol;ports[;host]'"),
        ("http;80,", "invalid port '' in protocol 'http;80,', port must be between 0-65535"),
        ("http;70000", "invalid port '70000' in protocol 'http;70000', port must be between 0-65535"),
        ("http;eighty", "invalid port 'eighty'"),
        ("htp;80", f"unsupported protocol (htp) in 'htp;80'; known protocols: {', '.join(REGISTRY.names())}"),
        ("http;80;no-such-host.invalid", "cannot resolve host 'no-such-host.invalid'"),
    ],
)
def test_bad_rules_are_one_line_usage_errors(proto: str, message: str) -> None:
    r = run("watch", "--proto", proto, "--pcap-file", PIPELINED)
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert r.stdout == ""


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--ipv", "v5"], "'--ipv'"),
        (["--kind", "reply"], "'--kind'"),
        (["--no-such-flag"], "No such option '--no-such-flag'"),
        (["--duration", "soon"], "invalid duration 'soon'"),
        (["--format", "xml"], "'--format'"),
    ],
)
def test_bad_flags_name_the_flag_and_what_is_allowed(args: list[str], needle: str) -> None:
    r = run("watch", "--pcap-file", PIPELINED, *args)
    assert r.returncode == 2
    assert needle in r.stderr and "Traceback" not in r.stderr


def test_not_a_capture_file(tmp_path: object) -> None:
    r = run("watch", "--pcap-file", "/etc/hostname")
    assert r.returncode == 2
    assert r.stderr.strip() == "packetd: /etc/hostname: not a pcap or pcapng capture file"
    r = run("watch", "--pcap-file", "/nonexistent.pcap")
    assert r.returncode == 2 and "cannot open" in r.stderr and "Traceback" not in r.stderr


def test_default_rules_watch_every_registered_protocol_on_its_default_ports() -> None:
    r = run("watch", "--pcap-file", PIPELINED)  # no --proto: http on 80 and 8080
    assert r.returncode == 0
    assert len(records(r.stdout)) == 5


def test_stdout_carries_records_only_and_stderr_the_summary() -> None:
    r = run("watch", "--proto", "http;80", "--pcap-file", BRO)
    recs = records(r.stdout)  # every stdout line parses as a record
    assert len(recs) == 31
    assert "31 roundtrips" in r.stderr and "13 connections" in r.stderr
    # the endpoint table: one row per (server, operation, path), the busiest first, capped at 25 rows; paths
    # in full (the table cut them at 32 characters before) and templated as the agent's metrics template
    # them (`/js/jquery.tableofcontents.js` is one of the `/js/{id}` row's records)
    from packetd.pipeline.metrics import PathTemplater

    template = PathTemplater()
    rows = [ln for ln in r.stderr.splitlines() if ln.startswith("192.150.187.43:80")]
    per_path: dict[str, int] = {}
    for rec in recs:
        path = template(rec["request"]["path"])
        per_path[path] = per_path.get(path, 0) + 1
    assert len(rows) == 25 and f"... and {len(per_path) - 25} more endpoints" in r.stderr
    for ln in rows:
        path, count = ln.split()[3], int(ln.split()[4])
        assert per_path[path] == count


def test_pipe_from_stdin_equals_file() -> None:
    with open(BRO, "rb") as f:
        data = f.read()
    a = run("watch", "--proto", "http;80", "--pcap-file", BRO)
    b = run("watch", "--proto", "http;80", "--pcap-file", "-", stdin=data)
    assert b.returncode == 0 and a.stdout == b.stdout


def test_truncated_file_warns_with_offset_and_keeps_what_came_before(tmp_path: object) -> None:
    with open(PIPELINED, "rb") as f:
        data = f.read()
    path = os.path.join(str(tmp_path), "cut.pcap")
    with open(path, "wb") as f:
        f.write(data[:-100])  # the last record loses its end
    r = run("watch", "--proto", "http;80", "--pcap-file", path)
    assert r.returncode == 0
    warnings = [ln for ln in r.stderr.splitlines() if "warning" in ln]
    assert len(warnings) == 1 and re.search(r"truncated pcap record at offset \d+", warnings[0])
    offset = int(re.search(r"offset (\d+)", warnings[0]).group(1))
    assert 24 <= offset < len(data) - 100
    assert len(records(r.stdout)) >= 4


def test_count_stops_after_n_records() -> None:
    r = run("watch", "--proto", "http;80", "--pcap-file", BRO, "--count", "3")
    assert r.returncode == 0 and len(records(r.stdout)) == 3


def test_duration_on_a_file_is_capture_time() -> None:
    full = records(run("watch", "--proto", "http;80", "--pcap-file", BRO).stdout)
    first = min(rec["start_time"] for rec in full)
    r = run("watch", "--proto", "http;80", "--pcap-file", BRO, "--duration", "200ms")
    part = records(r.stdout)
    assert 0 < len(part) < len(full)
    assert all(rec["start_time"] >= first for rec in part)


def test_display_filters() -> None:
    r = run("watch", "--proto", "http;80", "--pcap-file", POST, "--kind", "unanswered")
    assert [rec["kind"] for rec in records(r.stdout)] == ["unanswered"]
    r = run("watch", "--proto", "http;80", "--pcap-file", BRO, "--slower-than", "150ms")
    slow = records(r.stdout)
    full = records(run("watch", "--proto", "http;80", "--pcap-file", BRO).stdout)
    assert len(slow) == sum(1 for rec in full if rec["duration_ns"] >= 150_000_000) > 0
    r = run("watch", "--proto", "http;80", "--pcap-file", BRO, "--errors")
    assert records(r.stdout) == []  # bro.org answered everything with 200


def test_text_format_is_aligned_and_plain_when_not_a_terminal() -> None:
    r = run("watch", "--proto", "http;80", "--pcap-file", PIPELINED, "--format", "text")
    lines = r.stdout.splitlines()
    assert len(lines) == 5 and "\x1b[" not in r.stdout
    assert all(" → 63.245.209.11:80 " in ln and " GET /" in ln and " 200 " in ln for ln in lines)
    colored = run("watch", "--proto", "http;80", "--pcap-file", PIPELINED, "--format", "text", "--color")
    assert "\x1b[" in colored.stdout


def test_roundtrip_file_rotates_without_splitting_lines(tmp_path: object) -> None:
    from packetd.capture.pcapwrite import PcapWriter, TcpConversation, ethernet

    cap = os.path.join(str(tmp_path), "many.pcap")
    body = b"x" * 600
    with open(cap, "wb") as f:
        w = PcapWriter(f)
        conv = TcpConversation(("10.0.0.1", 40000), ("10.0.0.2", 80))
        ts = 1_700_000_000_000_000_000
        for pkt in conv.handshake():
            w.write(ts, ethernet(pkt))
        for i in range(3000):
            for pkt in conv.send(0, b"GET /item/%d HTTP/1.1\r\nHost: a\r\n\r\n" % i):
                ts += 1000
                w.write(ts, ethernet(pkt))
            for pkt in conv.send(1, b"HTTP/1.1 200 OK\r\nContent-Length: 600\r\n\r\n" + body):
                ts += 1000
                w.write(ts, ethernet(pkt))
    out = os.path.join(str(tmp_path), "rt", "roundtrips.jsonl")
    r = run(
        "watch",
        "--proto",
        "http;80",
        "--pcap-file",
        cap,
        "--roundtrips.file",
        out,
        "--roundtrips.size",
        "1",
        "--roundtrips.backups",
        "2",
    )
    assert r.returncode == 0 and r.stdout == ""
    files = sorted(os.listdir(os.path.dirname(out)))
    assert files == ["roundtrips.jsonl", "roundtrips.jsonl.1", "roundtrips.jsonl.2"]
    seen = []
    for name in ("roundtrips.jsonl.2", "roundtrips.jsonl.1", "roundtrips.jsonl"):
        path = os.path.join(os.path.dirname(out), name)
        assert os.path.getsize(path) <= 1024 * 1024
        with open(path) as f:
            seen += [json.loads(line)["request"]["path"] for line in f]  # every line is whole
    # the newest records are kept, in order, ending with the last request sent
    assert seen[-1] == "/item/2999"
    assert seen == [f"/item/{i}" for i in range(3000 - len(seen), 3000)]


def test_latency_percentiles_in_the_summary_match_the_records() -> None:
    r = run("watch", "--proto", "http;80", "--pcap-file", PIPELINED)
    recs = records(r.stdout)
    row = next(ln for ln in r.stderr.splitlines() if "/script/urchin.js" in ln)
    p50 = row.split()[-3]
    truth = next(rec["duration_ns"] for rec in recs if rec["request"]["path"] == "/script/urchin.js")
    assert p50 == f"{truth / 1e6:.2f}ms"  # a single sample: every percentile is that sample


@pytest.mark.root
@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root to become another user"
)
def test_live_without_privilege_is_one_clear_line() -> None:
    r = run("watch", "--ifaces", "lo", uid=65534)  # nobody
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "CAP_NET_RAW" in r.stderr and "--pcap-file" in r.stderr


@pytest.mark.root
@pytest.mark.live
@pytest.mark.skipif(not can_capture(), reason="live capture needs root / CAP_NET_RAW")
def test_user_drops_privileges_once_the_socket_is_open() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "packetd", "watch", "--ifaces", "^lo$", "--user", "nobody", "--proto", "http;1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": PACKAGE_PATH},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        uid = None
        while time.monotonic() < deadline and uid != "65534":
            with open(f"/proc/{proc.pid}/status") as f:
                uid = next(ln.split()[2] for ln in f if ln.startswith("Uid:"))  # effective uid
            time.sleep(0.1)
        assert uid == "65534"  # nobody
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 0 and b"packets in" in err  # the summary, after a clean stop
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_one_signal_stops_a_watch_waiting_on_a_quiet_pipe(sig: int) -> None:
    """`tcpdump -w - | packetd watch --pcap-file -` with no traffic: the read blocks; one Ctrl-C ends it."""
    sample = os.path.join(ROOT, "samples", "http-sample.pcapng")
    with open(sample, "rb") as f:
        head = f.read(28 + 100)  # the section header and some of what follows, then silence
    proc = subprocess.Popen(
        [sys.executable, "-m", "packetd", "watch", "--pcap-file", "-", "--format", "json"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": PACKAGE_PATH},
    )  # fmt: skip
    try:
        assert proc.stdin is not None
        proc.stdin.write(head)
        proc.stdin.flush()
        time.sleep(2.0)  # started, and blocked in the read
        assert proc.poll() is None
        proc.send_signal(sig)
        proc.wait(timeout=5)  # stdin still open: the read itself must give way
        _, err = proc.communicate()
        assert proc.returncode == 0 and b"packets in" in err and b"interrupted" in err
        assert b"Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(
    ("opt", "message"),
    [
        (
            "http.capture_bdy=3",
            "unknown decoder option http.capture_bdy (did you mean 'capture_body'?); http options: capture_body, redact",
        ),
        ("http.capture_body=x", "decoder option http.capture_body: 'x' is not an integer"),
        (
            "smtp.x=1",
            f"decoder options for unknown protocol 'smtp'; known protocols: {', '.join(REGISTRY.names())}",
        ),
        ("capture_body", "invalid --decoder 'capture_body', expected PROTOCOL.KEY=VALUE"),
    ],
)
def test_bad_decoder_options(opt: str, message: str) -> None:
    r = run("watch", "--pcap-file", PIPELINED, "--decoder", opt)
    assert r.returncode == 2 and r.stderr.strip().startswith(f"packetd: {message}")


def test_decoder_options_reach_the_decoder() -> None:
    recs = records(
        run(
            "watch",
            "--pcap-file",
            os.path.join(CORPUS, "http1", "zeek_zeek__get.pcap"),
            "--decoder",
            "http.capture_body=12",
        ).stdout
    )
    # the response body of CHANGES.bro-aux.txt starts with its first changelog line (tshark: http.file_data)
    assert recs[0]["response"]["body"] == "\n0.26 | 2012"


@pytest.mark.parametrize(
    "args", [["--pid", "1"], ["--comm", "nginx", "--no-processes"], ["--container", "3f2b", "--no-processes"]]
)
def test_process_filters_without_attribution_are_usage_errors(args: list[str]) -> None:
    # a file's processes are not this host's: off by default there, so a process filter needs --processes
    r = run("watch", "--proto", "http;80", "--pcap-file", PIPELINED, *args)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == (
        "packetd: --pid, --comm and --container need process attribution (--processes; off for a capture file)"
    )
