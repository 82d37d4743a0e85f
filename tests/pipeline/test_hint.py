"""The first-run hint and the summary's words, against tshark's reading of the same captures (the
independent truth: which ports the SYNs went to, how many packets each connection had, the first and the
last packet's time) and against the records themselves."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from packetd.attribution.listening import busiest_servers, read_tables
from packetd.flow.ports import PortTally
from packetd.pipeline.hint import QuietHint, guess, hint_lines, host_hint_lines
from packetd.units import format_duration
from tests.helpers.build import PACKAGE_PATH
from tests.helpers.golden import CORPUS, ROOT
from tests.helpers.live import can_capture, free_port
from tests.test_cli import records, run

SAMPLE = os.path.join(ROOT, "samples", "http-sample.pcapng")
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is the oracle")


def tshark(path: str, *fields: str, display: str = "") -> list[list[str]]:
    args = ["tshark", "-r", path, "-T", "fields", *(a for f in fields for a in ("-e", f))]
    out = subprocess.run([*args, *(["-Y", display] if display else [])], capture_output=True, check=True)
    return [ln.split("\t") for ln in out.stdout.decode().splitlines()]


@needs_tshark
def test_no_connection_names_the_busiest_server_ports_with_a_command() -> None:
    # a rule that misses (explicit rules: no detection by content, which would find this HTTP on its own)
    r = run("watch", "--pcap-file", SAMPLE, "--proto", "http;80")
    assert r.returncode == 0 and "0 connections" in r.stderr
    servers = {
        int(p) for (p,) in tshark(SAMPLE, "tcp.dstport", display="tcp.flags.syn==1 && tcp.flags.ack==0")
    }
    servers |= {
        int(p) for (p,) in tshark(SAMPLE, "tcp.srcport", display="tcp.flags.syn==1 && tcp.flags.ack==1")
    }
    assert servers == {45855, 49571}
    for port in servers:
        packets = len(tshark(SAMPLE, "frame.number", display=f"tcp.port=={port}"))
        line = next(ln for ln in r.stderr.splitlines() if f" {port}/tcp " in ln)
        assert f" {packets} packets " in line and f"try: --proto '<protocol>;{port}'" in line
    # and the command it offers, with the protocol filled in, decodes them
    r2 = run("watch", "--pcap-file", SAMPLE, "--proto", "http;45855,49571")
    assert len(records(r2.stdout)) > 0 and "busiest" not in r2.stderr


def test_the_guess_comes_from_the_registry_then_conventions() -> None:
    assert guess("tcp", 5432) == "postgresql" and guess("udp", 53) == "dns" and guess("udp", 5432) is None
    assert guess("tcp", 8000) == "http" and guess("tcp", 45855) is None
    tally = PortTally()
    tally.counts = {("tcp", 8000): 7, ("udp", 5353): 3}
    tally.packets = 10
    text = "\n".join(hint_lines(tally))
    assert "try: --proto 'http;8000'" in text and "try: --proto 'dns;5353'" in text
    # what detection by content found on a port wins over the port's guess
    assert "try: --proto 'redis;8000'" in "\n".join(hint_lines(tally, found={("tcp", 8000): "redis"}))


def test_quiet_hint_waits_then_fires_once() -> None:
    q = QuietHint(100.0, after_s=5)
    assert not q.due(104.9, 0) and not q.due(106, 1)
    assert q.due(105.0, 0) and not q.due(200, 0)


def test_host_servers_busiest_first_from_the_kernel_tables() -> None:
    """A listening socket and connections accepted on it, read back from /proc/net/tcp: the kernel's own
    table is the truth, the counts are what this test opened."""
    port = free_port()
    srv = socket.create_server(("127.0.0.1", port), backlog=16)
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(7)]
    accepted = [srv.accept()[0] for _ in clients]
    try:
        servers = dict(busiest_servers(read_tables()))
        assert servers[port] == 7
        lines = host_hint_lines(list(servers.items()), {("tcp", port)}, "in 5s")
        assert not any(f" {port}/tcp " in ln for ln in lines)  # a watched port is not offered again
        lines = host_hint_lines([(port, 7)], set(), "in 5s")
        assert f"{port}/tcp  7 connections  try: --proto '<protocol>;{port}'" in lines[1]
    finally:
        for s in clients + accepted + [srv]:
            s.close()


@needs_tshark
def test_summary_words_packet_time_plurals_v6_and_full_operations() -> None:
    path = os.path.join(CORPUS, "amqp", "deepflowio_deepflow__amqp-error.pcap")
    r = run("watch", "--pcap-file", path, "--proto", "amqp;5672")
    recs = records(r.stdout)
    times = [float(t) for (t,) in tshark(path, "frame.time_epoch", display="tcp or udp")]
    span_ns = round((max(times) - min(times)) * 1e9)
    assert f"in {format_duration(span_ns)} of packet time" in r.stderr
    conns = len({(x["client"]["ip"], x["client"]["port"]) for x in recs})
    assert f" {conns} connection{'s' if conns != 1 else ''} (" in r.stderr
    rows = [ln for ln in r.stderr.splitlines() if ln.startswith("[::1]:5672 ")]
    ops = {x["operation"] for x in recs if x["server"]["ip"] == "::1"}
    assert rows and {ln.split()[2] for ln in rows} == ops  # `Connection.Start`, not `Connection.`


def test_one_connection_is_singular() -> None:
    path = os.path.join(CORPUS, "http1", "zeek_zeek__get.pcap")
    r = run("watch", "--pcap-file", path, "--proto", "http;80")
    assert "; 1 connection (" in r.stderr and "1 connections" not in r.stderr


@pytest.mark.live
@pytest.mark.root
@pytest.mark.skipif(not can_capture(), reason="live capture needs root / CAP_NET_RAW")
def test_live_hint_after_a_few_quiet_seconds() -> None:
    """Connections to a port no rule watches (the kernel filter keeps them out): the hint names this host's
    server on that port while watch still runs."""
    port = free_port()
    srv = socket.create_server(("127.0.0.1", port), backlog=128)
    # more connections than the other servers of a shared test machine are likely to hold
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(100)]
    accepted = [srv.accept()[0] for _ in clients]
    proc = subprocess.Popen(
        [sys.executable, "-m", "packetd", "watch", "--ifaces", "^lo$", "--proto", "http;1", "--format", "json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": PACKAGE_PATH},
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        os.set_blocking(proc.stderr.fileno(), False)
        deadline = time.monotonic() + 20
        seen = b""
        while time.monotonic() < deadline and b"try:" not in seen:
            time.sleep(0.5)
            seen += proc.stderr.read() or b""
        assert proc.poll() is None  # still running: the hint came live, not at exit
        assert f"{port}/tcp  100 connections  try: --proto '<protocol>;{port}'".encode() in seen, seen
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
        for s in clients + accepted + [srv]:
            s.close()
