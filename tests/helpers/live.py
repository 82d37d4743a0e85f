"""Live-capture harness: run `packetd watch` (and tcpdump beside it) while a test makes real traffic.

Everything started here is stopped here, by PID. Ports are chosen free on 127.0.0.1; servers run in their
own temporary directories.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port}")


def stop_process(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 20.0, group: bool = False
) -> None:
    """Send `sig` (to the process group if `group`), wait up to `timeout` s, then SIGKILL: by PID, never by name."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        proc.wait()


def can_capture() -> bool:
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close()
    except (PermissionError, AttributeError, OSError):
        return False
    return True


def _wait_stderr(proc: subprocess.Popen[bytes], needle: bytes, timeout: float = 15.0) -> bytes:
    assert proc.stderr is not None
    seen = b""
    deadline = time.monotonic() + timeout
    fd = proc.stderr.fileno()
    while needle not in seen:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"process did not print {needle!r}: {seen.decode(errors='replace')}")
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            chunk = os.read(fd, 4096)
            if not chunk:
                continue
            seen += chunk
    return seen


# `packetd watch`, with a traceback of every thread dumped to stderr on SIGUSR1 (a stuck test says where)
WATCH_WITH_TRACEBACKS = (
    "import faulthandler, signal, sys; faulthandler.register(signal.SIGUSR1, all_threads=True); "
    "sys.argv[0] = 'packetd'; from packetd.cli import main; main()"
)


class Capture:
    """`packetd watch` live on loopback, plus `tcpdump -i lo -w` of the same traffic."""

    def __init__(self, args: list[str], tcpdump_filter: str | None, workdir: str) -> None:
        self.out_path = os.path.join(workdir, "watch.jsonl")
        self.err_path = os.path.join(workdir, "watch.err")
        self.pcap_path = os.path.join(workdir, "tcpdump.pcap")
        self._out = open(self.out_path, "wb")  # noqa: SIM115
        self.tcpdump: subprocess.Popen[bytes] | None = None
        if tcpdump_filter is not None:
            self.tcpdump = subprocess.Popen(
                ["tcpdump", "-i", "lo", "-U", "-n", "-s", "0", "-B", "65536", "--immediate-mode", "--time-stamp-precision=nano", "-w", self.pcap_path, tcpdump_filter],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
            _wait_stderr(self.tcpdump, b"listening on")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WATCH_WITH_TRACEBACKS, "watch", "--format", "json", *args],
            stdout=self._out, stderr=subprocess.PIPE, cwd=ROOT,
        )  # fmt: skip
        self.stderr = _wait_stderr(self.proc, b"capturing on")

    def stop(self) -> list[dict[str, Any]]:
        time.sleep(0.3)  # the last packets reach the ring and the kernel retires their block
        self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(
                signal.SIGUSR1
            )  # where is it stuck? (faulthandler, see WATCH_WITH_TRACEBACKS)
            time.sleep(1)
            self.proc.kill()
            _, err = self.proc.communicate()
            raise AssertionError(
                f"packetd watch did not stop within 60 s of SIGINT; stderr: {(self.stderr + err).decode(errors='replace')[-3000:]}"
            ) from None
        self.stderr += err
        with open(self.err_path, "wb") as f:
            f.write(self.stderr)
        if self.tcpdump is not None:
            self.tcpdump.send_signal(signal.SIGINT)
            self.tcpdump.communicate(timeout=30)
        self._out.close()
        assert self.proc.returncode == 0, self.stderr.decode(errors="replace")
        with open(self.out_path, "rb") as f:
            return [json.loads(line) for line in f if line.strip()]

    def kill(self) -> None:
        for p in (self.proc, self.tcpdump):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        # a capture that failed before stop() would otherwise leave its output file to the garbage collector,
        # whose ResourceWarning then fails whichever test runs next
        self._out.close()


@contextlib.contextmanager
def capture(args: list[str], tcpdump_filter: str | None = None) -> Iterator[Capture]:
    workdir = tempfile.mkdtemp(prefix="packetd-live-")
    cap = Capture(args, tcpdump_filter, workdir)
    try:
        yield cap
    finally:
        cap.kill()


def live_marks(*needs: tuple[bool, str], server: bool = True, slow: bool = False) -> list[Any]:
    """The marks of a test module that captures real traffic live on loopback: root, live, server (unless
    `server=False`), slow when asked, skipped without AF_PACKET, and skipped for each (available, what)
    of `needs` that is missing, saying what to install."""
    marks: list[Any] = [pytest.mark.root, pytest.mark.live]
    if server:
        marks.append(pytest.mark.server)
    if slow:
        marks.append(pytest.mark.slow)
    marks.append(pytest.mark.skipif(not can_capture(), reason="live capture needs root / CAP_NET_RAW"))
    marks += [
        pytest.mark.skipif(not ok, reason=f"{what} is not installed (make test-deps)") for ok, what in needs
    ]
    return marks


class _Server(Protocol):
    def stop(self) -> None: ...


T = TypeVar("T")


@dataclass
class LiveRun(Generic[T]):
    """What `live_traffic` saw: the workload's own result (the test's truth), packetd's records and stderr,
    and tcpdump's file of the same traffic (None without a tcpdump filter)."""

    result: T
    records: list[dict[str, Any]]
    stderr: str
    pcap: str | None


def live_traffic(
    servers: _Server | Sequence[_Server],
    rule: str,
    workload: Callable[[], T],
    tcpdump_filter: str | None = None,
) -> LiveRun[T]:
    """Run `workload()` while `packetd watch --proto RULE` captures loopback (a 64 MiB ring: loopback moves
    megabytes in milliseconds, faster than Python reads), then stop the capture and the servers, which the
    caller started (last started, first stopped), whatever happened."""
    started = [servers] if not isinstance(servers, Sequence) else list(servers)
    try:
        with capture(["--ifaces", "^lo$", "--proto", rule, "--block-num", "128"], tcpdump_filter) as cap:
            result = workload()
            records = cap.stop()
            stderr = cap.stderr.decode(errors="replace")
            pcap = cap.pcap_path if tcpdump_filter is not None else None
    finally:
        for server in reversed(started):
            server.stop()
    return LiveRun(result, records, stderr, pcap)


def replay(path: str, args: list[str]) -> tuple[list[dict[str, Any]], str]:
    out = subprocess.run(
        [sys.executable, "-m", "packetd", "watch", "--format", "json", "--pcap-file", path, *args],
        capture_output=True, cwd=ROOT, check=True, timeout=120,
    )  # fmt: skip
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()], out.stderr.decode()


TIMES = ("start_time", "end_time", "duration_ns")


def without_times(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records without their timestamps and processes: two captures of the same packets (packetd's
    live capture and tcpdump's file) timestamp them on different sockets, and only the live one names the
    processes (a file's are not this host's)."""
    return [
        {k: _without_process(v) if k in ("client", "server") else v for k, v in r.items() if k not in TIMES}
        for r in records
    ]


def _without_process(end: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in end.items() if k != "process"}


def validate_against_schema(records: list[dict[str, Any]]) -> None:
    """Every record validates against docs/roundtrip.schema.json (the public contract)."""
    from jsonschema import Draft202012Validator

    with open(os.path.join(ROOT, "docs", "roundtrip.schema.json")) as f:
        validator = Draft202012Validator(json.load(f))
    for rec in records:
        validator.validate(rec)


NGINX_CONF = """
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  keepalive_requests 10000;
  types {{ text/plain txt; application/octet-stream bin; }}
  server {{
    listen {host}:{port};
    root {dir}/www;
    gzip on;
    gzip_types text/plain;
    gzip_min_length 10;
    location = /teapot {{ return 418 "short and stout\\n"; }}
    location = /boom {{ return 503 "unavailable\\n"; }}
    location = /empty {{ return 204; }}
    # answered before the request body is read (issue 9: Expect: 100-continue uploads)
    location = /created {{ return 201 "created\\n"; }}
    location = /small {{ client_max_body_size 1k; return 201; }}
    location = /private {{ return 401; }}
  }}
}}
"""


class Nginx:
    """Debian's nginx with its own config, port and directory."""

    def __init__(self, host: str = "127.0.0.1", netns: str | None = None, port: int | None = None) -> None:
        self.dir = tempfile.mkdtemp(prefix="packetd-nginx-")
        os.chmod(self.dir, 0o755)  # nginx workers run as an unprivileged user
        self.port = port or free_port()
        self.host = host
        www = os.path.join(self.dir, "www")
        os.makedirs(www, mode=0o755)
        with open(os.path.join(www, "index.txt"), "w") as f:
            f.write("hello from nginx\n" * 20)
        with open(os.path.join(www, "big.bin"), "wb") as f:
            f.write(os.urandom(5 * 1024 * 1024 + 123))
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(dir=self.dir, port=self.port, host=host))
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        cmd = [binary, "-c", conf, "-p", self.dir]
        if netns is not None:
            cmd = ["ip", "netns", "exec", netns, *cmd]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, host=host)

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGQUIT, timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


def nginx_available() -> bool:
    return shutil.which("nginx") is not None or os.path.exists("/usr/sbin/nginx")
