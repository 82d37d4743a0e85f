"""Live habits: `watch -i lo 'port P1' -w FILE` on real loopback HTTP traffic, and `make run`'s script.

Two real HTTP servers (Python's http.server) on free loopback ports, both covered by the rule; the BPF
expression keeps one of them. The truth is what the client asked: the paths requested of the kept server,
and none of the other; tshark reads the -w file back and sees the same requests.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.helpers.build import PACKAGE_PATH
from tests.helpers.golden import ROOT
from tests.helpers.live import free_port, live_marks, stop_process, wait_port
from tests.test_cli import records

pytestmark = live_marks(server=False)
ENV = {**os.environ, "PYTHONPATH": PACKAGE_PATH}


def _server(port: int, directory: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", directory],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_port(port)
    return proc


def _wait_for(path: str, needle: bytes, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(path, "rb") as f:
            if needle in f.read():
                return
        time.sleep(0.1)
    raise TimeoutError(f"{needle!r} never appeared in {path}")


def test_i_lo_with_a_bpf_expression_and_w(tmp_path: object) -> None:
    tmp = str(tmp_path)
    for name in ("a.txt", "b.txt"):
        with open(os.path.join(tmp, name), "w") as f:
            f.write(name * 10)
    p1, p2 = free_port(), free_port()
    servers = [_server(p1, tmp), _server(p2, tmp)]
    out = os.path.join(tmp, "live.pcapng")
    err_path = os.path.join(tmp, "stderr")
    with open(err_path, "wb") as err:
        watch = subprocess.Popen(
            [sys.executable, "-m", "packetd", "watch", "-i", "lo", "--proto", f"http:{p1},{p2}",
             "--format", "json", "-w", out, f"tcp port {p1}"],
            stdout=subprocess.PIPE, stderr=err, cwd=ROOT, env=ENV,
        )  # fmt: skip
    try:
        _wait_for(err_path, b"capturing on")
        asked = []
        for i in range(3):
            for port, name in ((p1, "a.txt"), (p2, "b.txt")):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/{name}?n={i}", timeout=5).read()
                if port == p1:
                    asked.append(f"/{name}?n={i}")
        time.sleep(1.0)
        watch.send_signal(signal.SIGINT)
        stdout, _ = watch.communicate(timeout=20)
    finally:
        if watch.poll() is None:
            stop_process(watch)  # type: ignore[arg-type]
        for s in servers:
            stop_process(s)  # type: ignore[arg-type]
    recs = records(stdout.decode())
    assert [r["request"]["target"] for r in recs] == asked
    assert {r["server"]["port"] for r in recs} == {p1}
    tshark = shutil.which("tshark")
    if tshark is not None:
        seen = subprocess.run(
            [tshark, "-n", "-r", out, "-d", f"tcp.port=={p1},http", "-Y", "http.request", "-T", "fields",
             "-e", "http.request.uri"],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        assert seen == asked


def test_make_run_script_shows_records_within_seconds() -> None:
    # the demo server needs 127.0.0.1:8080 free; something else there is traffic of its own
    import socket

    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", 8080)) == 0:
            pytest.skip("127.0.0.1:8080 is in use here")
    if not os.path.exists(os.path.join(ROOT, ".venv", "bin", "packetd")):
        pytest.skip("no .venv in the checkout")
    proc = subprocess.Popen(
        ["sh", "scripts/run.sh"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    try:
        time.sleep(6)
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # the script's own group: watch, its demo server and client
        out, err = proc.communicate(timeout=20)
    lines = out.decode().splitlines()
    assert any(" GET /" in ln and "127.0.0.1:8080" in ln for ln in lines), (out, err)
    deadline = time.monotonic() + 10  # the demo server was stopped (it may take a moment to close)
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", 8080)) != 0:
                break
        time.sleep(0.2)
    else:
        pytest.fail("the demo server still listens on 127.0.0.1:8080 after make run ended")
