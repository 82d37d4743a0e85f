"""`watch` with the habits of tcpdump, tshark and Kyanos users, and `-w` pcap out.

Each habit from issue 11 is tried: it does what it asks for, or the one line on stderr says what to type.
Truths: tcpdump's own filtering (`tcpdump -r IN -w OUT EXPR`) for a BPF expression, the uncompressed file
for a compressed one, the spelled-out rule for an alias, and tshark's dissection of the file `-w` wrote for
pcap out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter

import pytest

from packetd import __version__
from packetd.capture.pcapout import PcapOut
from packetd.engine import Engine, EngineConfig, parse_rule
from packetd.pairing.roundtrip import Roundtrip
from tests.helpers.golden import CORPUS, ROOT
from tests.test_cli import records, run

BRO = os.path.join(CORPUS, "http1", "zeek_zeek__bro.org.pcap")
PG = os.path.join(CORPUS, "postgresql", "zeek_zeek__greenhouse-app.pcap")
SAMPLE = os.path.join(ROOT, "samples", "http-sample.pcapng")
with open(SAMPLE + ".ports") as _f:
    SAMPLE_RULE = "http;" + _f.read().strip()
TSHARK = shutil.which("tshark")
TCPDUMP = shutil.which("tcpdump")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark not installed")


def _json(*args: str) -> list[dict]:
    r = run("watch", "--format", "json", *args)
    assert r.returncode == 0, r.stderr
    return records(r.stdout)


def _one_line_usage_error(r: subprocess.CompletedProcess[str], needle: str) -> None:
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert r.stdout == ""


def test_version_flags() -> None:
    for args in (["-V"], ["--version"], ["watch", "-V"], ["watch", "--version"]):
        r = run(*args)
        assert r.returncode == 0 and r.stdout.strip() == f"packetd {__version__}"


def test_r_and_c_are_pcap_file_and_count_in_records() -> None:
    everything = _json("--pcap-file", BRO)
    assert _json("-r", BRO) == everything
    assert len(everything) > 5
    assert _json("-r", BRO, "-c", "5") == everything[:5]


@pytest.mark.skipif(TCPDUMP is None, reason="tcpdump not installed")
@pytest.mark.parametrize("expression", ["tcp port 55079 or tcp port 55081", "not (tcp port 55079)"])
def test_bpf_expression_on_a_file_is_what_tcpdump_keeps(tmp_path: object, expression: str) -> None:
    filtered = os.path.join(str(tmp_path), "filtered.pcap")
    assert TCPDUMP is not None
    subprocess.run([TCPDUMP, "-r", BRO, "-w", filtered, expression], check=True, capture_output=True)
    truth = _json("-r", filtered)
    shown = _json("-r", BRO, *expression.split())  # unquoted words are joined, as tcpdump does
    assert shown == truth
    assert 0 < len(shown) < len(_json("-r", BRO))


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["host and"], "filter expression: invalid filter 'host and'"),
        (
            ["80"],
            "looks like the ports of a --proto rule split at an unquoted ';': quote the rule, --proto 'http;80'",
        ),
        (["http;80"], "looks like a protocol rule: write --proto 'http;80'"),
        (
            ["--proto", "postgres"],
            "quote the rule (an unquoted ';' ends the shell command) or write postgresql:5432",
        ),
        (["-n"], "No such option '-n': packetd never resolves names"),
        (["-s", "0"], "packetd always captures whole packets"),
        (["--write-only", "errors"], "--write-only needs -w FILE"),
        (["-w", "/tmp/x.pcapng", "--write-only", "slow"], "--write-only slow needs --slower-than"),
        (
            ["--format", "text", "--roundtrips.file", "/tmp/x.jsonl"],
            "--format text cannot go to --roundtrips.file",
        ),
        (["--slower-than", "fast"], "(a bare number is seconds)"),
        (["-w", "/nonexistent/dir/out.pcapng"], "cannot write -w /nonexistent/dir/out.pcapng"),
        (["--proto", "http;90-80"], "invalid port range '90-80'"),
        (["-w", "-"], "-w - would mix packets with the records on stdout"),
    ],
)
def test_habits_that_cannot_work_say_what_to_type(args: list[str], needle: str) -> None:
    r = run("watch", "-r", BRO, *(["--proto", "http"] if args[0] == "80" else []), *args)
    _one_line_usage_error(r, needle)


def test_i_names_an_existing_interface() -> None:
    r = run("watch", "-i", "lo", "-i", "no-such-if0")
    _one_line_usage_error(r, "-i no-such-if0: no such interface; `packetd ifaces` lists them")


def test_bare_number_duration_is_seconds() -> None:
    # bro.org spans ~1.1 s of capture time: 0.3 (seconds) keeps the records that start within 0.3 s of the
    # first packet, the same as 300ms
    assert _json("-r", BRO, "--duration", "0.3") == _json("-r", BRO, "--duration", "300ms")
    assert 0 < len(_json("-r", BRO, "--duration", "0.3")) < len(_json("-r", BRO))


def test_live_only_flags_with_a_file_warn() -> None:
    r = run("watch", "-r", BRO, "-i", "eth0", "--engine", "libpcap", "--format", "json")
    assert r.returncode == 0
    assert "warning: -i, --engine only apply to live capture; ignored with --pcap-file" in r.stderr
    assert records(r.stdout) == _json("-r", BRO)


def test_compressed_file_and_aliases_and_ranges(tmp_path: object) -> None:
    gz = os.path.join(str(tmp_path), "bro.pcap.gz")
    with open(BRO, "rb") as src, open(gz, "wb") as dst:
        subprocess.run(["gzip", "-c"], stdin=src, stdout=dst, check=True)
    assert _json("-r", gz) == _json("-r", BRO)
    assert _json("-r", BRO, "--proto", "HTTP:80") == _json("-r", BRO, "--proto", "http;80")
    assert _json("-r", BRO, "--proto", "http;79-81") == _json("-r", BRO, "--proto", "http;80")
    assert _json("-r", BRO, "--proto", "http;81-90") == []
    pg = _json("-r", PG, "--proto", "postgresql;5432")
    assert pg and _json("-r", PG, "--proto", "postgres;5432") == pg == _json("-r", PG, "--proto", "pg:5432")


# -- pcap out -------------------------------------------------------------------------------------------------
def _tshark(path: str, display: str, *fields: str) -> list[tuple[str, ...]]:
    assert TSHARK is not None
    out = subprocess.run(
        [TSHARK, "-n", "-r", path, "-Y", display, "-T", "fields", *(a for f in fields for a in ("-e", f))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [tuple(line.split("\t")) for line in out.splitlines()]


@needs_tshark
def test_w_writes_what_tshark_dissects_as_the_records(tmp_path: object) -> None:
    out = os.path.join(str(tmp_path), "out.pcapng")
    r = run("watch", "-r", BRO, "--format", "json", "-w", out)
    assert r.returncode == 0, r.stderr
    recs = records(r.stdout)
    requests = Counter((rec["operation"], rec["request"]["target"]) for rec in recs if rec["request"])
    # tshark never sees the one response whose body lost bytes in capture (tests/protocols/http1/test_golden.py); we keep
    # it, flagged 'gap'
    responses = Counter(
        rec["status"] for rec in recs if rec["status"] is not None and "gap" not in rec["flags"]
    )
    assert Counter(_tshark(out, "http.request", "http.request.method", "http.request.uri")) == requests
    assert Counter(s for (s,) in _tshark(out, "http.response", "http.response.code")) == responses
    # and the file tells tshark the same as the original does
    for display, field in (("http.request", "http.request.uri"), ("http.response", "http.response.code")):
        assert Counter(_tshark(out, display, field)) == Counter(_tshark(BRO, display, field))
    # every packet of the decoded connections: as many as tshark counts on them in the original
    ports = sorted({str(rec["client"]["port"]) for rec in recs})
    original = _tshark(BRO, " or ".join(f"tcp.port == {p}" for p in ports), "frame.number")
    assert len(_tshark(out, "frame", "frame.number")) == len(original)
    info = subprocess.run(["capinfos", out], check=True, capture_output=True, text=True).stdout
    assert "Capture comment:     packetd" in info and "http:80,8080" in info


@needs_tshark
def test_write_only_errors_keeps_the_connections_with_an_error(tmp_path: object) -> None:
    out = os.path.join(str(tmp_path), "errors.pcapng")
    r = run(
        "watch", "-r", SAMPLE, "--proto", SAMPLE_RULE, "--format", "json", "-w", out, "--write-only", "errors"
    )
    assert r.returncode == 0, r.stderr
    recs = records(r.stdout)
    bad = {(rec["client"]["ip"], rec["client"]["port"]) for rec in recs if rec["error"]}
    assert len(bad) == 1 and len({(x["client"]["ip"], x["client"]["port"]) for x in recs}) > 1
    streams = set(_tshark(out, "tcp", "ip.src", "tcp.srcport", "ip.dst", "tcp.dstport"))
    ends = {(a, int(b)) for a, b, _, _ in streams} | {(c, int(d)) for _, _, c, d in streams}
    assert bad <= ends and len(streams) == 2  # both directions of one connection
    conn_recs = [x for x in recs if (x["client"]["ip"], x["client"]["port"]) in bad]
    shark = _tshark(out, "http.response", "http.response.code")
    assert Counter(s for (s,) in shark) == Counter(x["status"] for x in conn_recs if x["status"])
    assert "wrote" in r.stderr and "1 connection not written" in r.stderr


@needs_tshark
def test_budgets_leave_packets_out_counted_and_commented(tmp_path: object) -> None:
    from packetd.capture.pcapfile import CaptureFile

    path = os.path.join(str(tmp_path), "budget.pcapng")
    shown: list[Roundtrip] = []
    out = open(path, "wb")  # noqa: SIM115
    writer: list[PcapOut] = []

    def sink(rt: Roundtrip) -> None:
        writer[0].record(rt)
        shown.append(rt)

    engine = Engine(EngineConfig(rules=(parse_rule("http;80"),)), sink)
    # a connection qualifies at its first record: hold at most 1500 bytes before that (one full segment)
    pcap = PcapOut(out, engine.flows, lambda rt: True, "test", "bro", per_connection=1500, total=1 << 20)
    writer.append(pcap)
    cf = CaptureFile(BRO)
    for ts, lt, data in cf:
        seg = engine.net.decode(ts, lt, data)
        if seg is not None:
            engine.flows.segment(seg)
            pcap.packet(seg, ts, lt, data)
    engine.finish()
    pcap.finish()
    pcap.close()
    cf.close()
    assert pcap.left_out.get("per_connection", 0) > 0
    comments = [c for (c,) in _tshark(path, "frame.comment", "frame.comment")]
    assert comments and all("held per connection until it qualifies" in c for c in comments)
    total_left = sum(int(c.split("packetd: ")[1].split(" packets")[0]) for c in comments)
    assert total_left == pcap.left_out["per_connection"]
    # every packet of the connections with records is either written or counted as left out
    ports = sorted({str(rt.client[1]) for rt in shown})
    decoded = _tshark(BRO, " or ".join(f"tcp.port == {p}" for p in ports), "frame.number")
    assert pcap.written_packets + total_left == len(decoded)


def test_privilege_hint_names_the_real_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from packetd.capture.privileges import privilege_hint

    # a virtualenv's python is a symlink; setcap must name the file it points to
    assert f"setcap cap_net_raw,cap_net_admin=eip {os.path.realpath(sys.executable)}`" in privilege_hint()
    monkeypatch.setattr(sys, "argv", ["/opt/venv/bin/packetd", "watch"])
    assert "sudo /opt/venv/bin/packetd ..." in privilege_hint()


@pytest.mark.root
def test_live_without_privilege_points_at_setcap_and_the_file_flags() -> None:
    r = run("watch", "-i", "lo", uid=65534)  # nobody: no CAP_NET_RAW
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    assert "setcap cap_net_raw,cap_net_admin=eip /" in r.stderr and "--pcap-file (-r)" in r.stderr
    assert "-m packetd ...)" in r.stderr  # how this process was started, to repeat under sudo
