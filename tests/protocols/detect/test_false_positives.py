"""No false positives: other traffic, from real servers and clients (Debian packages), gives no records.

One tcpdump capture on loopback holds: OpenSSH (sshd + ssh, key exchange and a refused login), SMTP
(swaks, Debian's SMTP test client, against Python's smtpd), memcached (its text protocol: set, get,
stats), random bytes and a bulk file through socat, random UDP datagrams shaped like QUIC long-header
packets, and TLS from `openssl s_client` to `openssl s_server` on an odd port. Read back with no `--proto`
(detection on every port), it must give exactly one record: the TLS handshake, flagged `encrypted`, with
the server name s_client sent — and nothing for the rest. The truth is what each client was told to do
(the SNI given to s_client); every other connection must be counted undetected on its own port.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.live import can_capture, free_port, replay, stop_process, wait_port

pytestmark = [
    pytest.mark.root,
    pytest.mark.live,
    pytest.mark.server,
    pytest.mark.slow,
    pytest.mark.skipif(not can_capture(), reason="tcpdump on loopback needs root / CAP_NET_RAW"),
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("tcpdump", "socat", "openssl", "swaks", "memcached", "ssh"))
        or not os.path.exists("/usr/sbin/sshd"),
        reason="needs tcpdump socat openssl swaks memcached openssh-server (scripts/test-deps.sh)",
    ),
]

HOST = "127.0.0.1"
SNI = "odd-port.example"


def _run(cmd: list[str], stdin: bytes = b"", timeout: float = 30) -> None:
    """A client run to its end; its exit status is not the point (ssh is refused on purpose)."""
    try:
        subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        pass  # killed at the timeout: what it sent is in the capture


@pytest.fixture(scope="module")
def capture() -> Iterator[tuple[str, dict[str, int]]]:
    work = tempfile.mkdtemp(prefix="packetd-fp-")
    ports = {name: free_port() for name in ("ssh", "smtp", "memcached", "random", "bulk", "quic", "tls")}
    pcap = os.path.join(work, "other.pcap")
    procs: list[subprocess.Popen[bytes]] = []
    port_filter = " or ".join(f"port {p}" for p in ports.values())
    tcpdump = subprocess.Popen(
        ["tcpdump", "-i", "lo", "-U", "-n", "-s", "0", "-w", pcap, port_filter],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.0)
    try:
        # OpenSSH: a host key of its own, no login possible (BatchMode, no keys): banners, KEX, a refusal
        key = os.path.join(work, "host_ed25519")
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key])
        os.makedirs("/run/sshd", exist_ok=True)
        sshd = subprocess.Popen(
            ["/usr/sbin/sshd", "-D", "-e", "-f", "/dev/null", "-h", key, "-p", str(ports["ssh"]),
             "-o", "ListenAddress=127.0.0.1", "-o", f"PidFile={work}/sshd.pid"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        procs.append(sshd)
        wait_port(ports["ssh"])
        _run(["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
              "-p", str(ports["ssh"]), f"nobody@{HOST}", "true"])  # fmt: skip
        # SMTP: swaks sends a whole mail to Python's smtpd
        smtpd = subprocess.Popen(
            [sys.executable, "-W", "ignore", "-m", "smtpd", "-n", "-c", "DebuggingServer", f"{HOST}:{ports['smtp']}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        procs.append(smtpd)
        wait_port(ports["smtp"])
        _run(
            [
                "swaks",
                "--server",
                f"{HOST}:{ports['smtp']}",
                "--to",
                "a@example.org",
                "--from",
                "b@example.org",
            ]
        )
        # memcached, text protocol
        mc = subprocess.Popen(
            ["memcached", "-u", "root", "-l", HOST, "-p", str(ports["memcached"]), "-U", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        procs.append(mc)
        wait_port(ports["memcached"])
        _run(["socat", "-t", "1", "-", f"TCP:{HOST}:{ports['memcached']}"],
             b"set k 0 0 5\r\nhello\r\nget k\r\nincr n 1\r\nstats\r\nquit\r\n")  # fmt: skip
        # random binary and a bulk file through socat
        for name, data in (("random", os.urandom(300_000)), ("bulk", Path(sys.executable).read_bytes())):
            sink = subprocess.Popen(
                ["socat", "-u", f"TCP-LISTEN:{ports[name]},bind={HOST},reuseaddr", "OPEN:/dev/null"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            procs.append(sink)
            wait_port(ports[name])
            _run(["socat", "-u", "-", f"TCP:{HOST}:{ports[name]}"], data)
        # UDP noise shaped like QUIC Initial packets (long header, version 1, random rest), both ways
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b,
        ):
            b.bind((HOST, ports["quic"]))
            for _ in range(20):
                a.sendto(b"\xc3\x00\x00\x00\x01" + os.urandom(1195), (HOST, ports["quic"]))
                _, peer = b.recvfrom(2048)
                b.sendto(b"\xc1\x00\x00\x00\x01" + os.urandom(1195), peer)
        # TLS on an odd port: openssl's own server and client
        crt, keyf = os.path.join(work, "c.pem"), os.path.join(work, "k.pem")
        _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", keyf, "-out", crt,
              "-days", "1", "-subj", "/CN=odd-port.example"])  # fmt: skip
        server = subprocess.Popen(
            ["openssl", "s_server", "-quiet", "-accept", str(ports["tls"]), "-cert", crt, "-key", keyf],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        procs.append(server)
        wait_port(ports["tls"])
        _run(["openssl", "s_client", "-brief", "-connect", f"{HOST}:{ports['tls']}", "-servername", SNI],
             b"secret bytes\n", timeout=10)  # fmt: skip
        time.sleep(1.0)
    finally:
        for p in procs:
            stop_process(p)
            if p.stdin is not None:
                p.stdin.close()
        tcpdump.send_signal(2)
        tcpdump.wait(timeout=30)
    yield pcap, ports
    shutil.rmtree(work, ignore_errors=True)


def test_other_traffic_gives_no_records_and_tls_is_detected(capture: tuple[str, dict[str, int]]) -> None:
    pcap, ports = capture
    records, _err = replay(pcap, [])
    assert len(records) == 1, records
    (tls,) = records
    assert tls["server"]["port"] == ports["tls"]
    assert tls["kind"] == "handshake" and "encrypted" in tls["flags"]
    assert tls["request"]["tls"]["server_name"] == SNI


def test_each_other_connection_was_seen(capture: tuple[str, dict[str, int]]) -> None:
    """The capture really holds the other traffic (else 'no records' proves nothing)."""
    out = subprocess.run(
        ["tshark", "-r", capture[0], "-q", "-z", "conv,tcp", "-z", "conv,udp"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name, port in capture[1].items():
        assert f":{port} " in out, (name, out)
