"""Record the small real captures in this folder (run as root: `python tests/capture/data/make_fixtures.py`).

Everything happens in a private network namespace (`unshare -n`), so nothing outside it is touched: its
loopback is brought up with an MTU of 1280, a throwaway `python3 -m http.server` listens on 127.0.0.1 and
::1, and three tcpdumps record at once while curl fetches a small and a ~6 KB page over IPv4 and IPv6 and
a UDP socket sends 3000-byte datagrams (which the MTU fragments) over both:

    any_sll2.pcap       tcpdump -i any                       LINUX_SLL2 (276), microseconds
    any_sll.pcap        tcpdump -i any -y LINUX_SLL          LINUX_SLL (113), microseconds
    lo_ether_ns.pcap    tcpdump -i lo --time-stamp-precision nano    Ethernet, nanoseconds

The tests never trust these files' contents: every assertion compares packetd with what tshark reads from
them at test time.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
HTTP_PORT = 18080
UDP_PORT = 18053
CAPTURES = {
    "any_sll2.pcap": ["-i", "any"],
    "any_sll.pcap": ["-i", "any", "-y", "LINUX_SLL"],
    "lo_ether_ns.pcap": ["-i", "lo", "--time-stamp-precision", "nano"],
}


def _wait_port(host: str, port: int) -> None:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(100):
        with socket.socket(fam) as s:
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"server on {host}:{port} did not start")


def traffic(root: str) -> None:
    """The traffic recorded: HTTP over IPv4 and IPv6, fragmented UDP over both."""
    servers = [
        subprocess.Popen(
            [sys.executable, "-m", "http.server", str(HTTP_PORT), "--bind", host, "-d", root],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for host in ("127.0.0.1", "::1")
    ]
    try:
        _wait_port("127.0.0.1", HTTP_PORT)
        _wait_port("::1", HTTP_PORT)
        for url in (f"http://127.0.0.1:{HTTP_PORT}", f"http://[::1]:{HTTP_PORT}"):
            for path in ("/small.txt", "/large.txt"):
                subprocess.run(["curl", "-s", "-o", os.devnull, url + path], check=True)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.setsockopt(socket.IPPROTO_IP, 10, 0)  # IP_MTU_DISCOVER = IP_PMTUDISC_DONT: fragment locally
            s.sendto(bytes(range(256)) * 11 + b"v4-end", ("127.0.0.1", UDP_PORT))
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.sendto(bytes(range(256)) * 11 + b"v6-end", ("::1", UDP_PORT))
        time.sleep(0.3)
    finally:
        for p in servers:
            p.terminate()
            p.wait()


def webroot() -> str:
    """A temporary directory with the two pages fetched (the caller removes it)."""
    root = tempfile.mkdtemp()
    with open(os.path.join(root, "small.txt"), "w") as f:
        f.write("hello from packetd fixtures\n")
    with open(os.path.join(root, "large.txt"), "w") as f:
        f.write("".join(f"line {i:04d} of a page that needs several segments\n" for i in range(120)))
    return root


def wait_listening(p: subprocess.Popen[bytes]) -> None:
    """Until tcpdump says "listening on" (its socket is open), and a little more (its filter attached)."""
    assert p.stderr is not None
    while b"listening on" not in p.stderr.readline():
        pass
    time.sleep(0.5)


def record(outdir: str, captures: dict[str, list[str]] = CAPTURES) -> None:
    """Inside a private network namespace: record `captures` of `traffic()` into `outdir`."""
    subprocess.run(["ip", "link", "set", "lo", "up", "mtu", "1280"], check=True)
    root = webroot()
    try:
        dumps = [
            subprocess.Popen(
                ["tcpdump", "--immediate-mode", "-U", "-w", os.path.join(outdir, name), *args],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for name, args in captures.items()
        ]
        for p in dumps:
            wait_listening(p)
        traffic(root)
        for p in dumps:
            p.send_signal(signal.SIGINT)
            p.wait()
    finally:
        shutil.rmtree(root)


def main() -> None:
    if os.environ.get("PACKETD_FIXTURES_NETNS") != "1":
        env = dict(os.environ, PACKETD_FIXTURES_NETNS="1")
        os.execvpe("unshare", ["unshare", "-n", sys.executable, *sys.argv], env)
    record(sys.argv[1] if len(sys.argv) > 1 else HERE)


if __name__ == "__main__":
    main()
