"""`packetd top` on a real terminal: tmux at 80 and 160 columns, the screen read with `capture-pane -p`.

File mode prints its table to the terminal; live mode runs the Textual app on loopback while a real
redis-server and nginx answer real clients, and keys typed with `send-keys` change what the screen shows.
The truth is the other side: what the clients sent and what the servers answered.
Each tmux server runs on its own socket (`-L`) and is ended by `kill-server` on that socket.
"""

from __future__ import annotations

import http.client
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import orjson
import pytest

from tests.helpers.dbservers import RedisServer, redis_available
from tests.helpers.golden import CORPUS, ROOT
from tests.helpers.live import Nginx, can_capture, nginx_available

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (make test-deps)")

# the connections stay open this long after their first exchange: process attribution looks a new
# connection up in a quiet moment (a capture tick), and a socket closed before that is unknown
LOOKUP_S = 1.0
FILE = os.path.join(CORPUS, "mysql/zeek_zeek__mysql__auth.pcap")


class Tmux:
    """One detached tmux session on a private socket, `width` × `height`, running `cmd`."""

    def __init__(self, cmd: list[str], width: int, height: int = 40) -> None:
        self.socket = f"packetd-top-test-{os.getpid()}-{width}"
        # the pane stays after the command ends, so its last screen (and exit status) can be read
        shell = f'{shlex.join(cmd)}; echo "[exit $?]"; sleep 600'
        self._tmux(
            "-f", "/dev/null", "new-session", "-d", "-s", "top", "-x", str(width), "-y", str(height),
            "-c", ROOT, "sh", "-c", shell,
        )  # fmt: skip

    def _tmux(self, *args: str) -> str:
        # the tmux server's environment is the pane's: without COLUMNS/LINES (a test runner may export
        # them, and programs take them over the terminal's own size)
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        out = subprocess.run(
            ["tmux", "-L", self.socket, *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
            env=env,
        )
        return out.stdout

    def screen(self) -> list[str]:
        return self._tmux("capture-pane", "-p", "-t", "top").splitlines()

    def keys(self, *keys: str) -> None:
        for key in keys:  # one at a time: an Escape followed at once by a key reads as Alt+key
            self._tmux("send-keys", "-t", "top", key)
            time.sleep(0.25)

    def wait(self, ok: Callable[[list[str]], bool], timeout: float = 20.0) -> list[str]:
        deadline = time.monotonic() + timeout
        screen = self.screen()
        while not ok(screen):
            if time.monotonic() > deadline:
                pytest.fail("screen never showed what was expected:\n" + "\n".join(screen))
            time.sleep(0.2)
            screen = self.screen()
        return screen

    def close(self) -> None:
        path = self._tmux("display-message", "-p", "#{socket_path}").strip()
        subprocess.run(
            ["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10, check=False
        )
        if path and os.path.exists(path):
            os.unlink(path)  # the server's socket file, which kill-server leaves behind


def _packetd(*args: str) -> list[str]:
    return [sys.executable, "-m", "packetd", *args]


def _row(screen: list[str], key: str) -> list[str]:
    """The tokens of the screen line whose first cell is `key` (the key may contain one space)."""
    for line in screen:
        text = line.strip()
        if text.startswith(key + " "):
            return [key, *text[len(key) :].split()]
    return []


@pytest.mark.parametrize("width", [80, 160])
def test_file_table_on_a_terminal(width: int) -> None:
    watch = subprocess.run(
        _packetd("watch", "--pcap-file", FILE, "--format", "json", "--proto", "mysql;3306"),
        capture_output=True, cwd=ROOT, timeout=60, check=True,
    )  # fmt: skip
    records = [orjson.loads(line) for line in watch.stdout.splitlines()]
    ops: dict[str, list[int]] = {}
    for rec in records:
        c = ops.setdefault(f"mysql {rec['operation']}", [0, 0])
        c[0] += 1
        c[1] += bool(rec["error"])
    tmux = Tmux(
        _packetd("top", "--pcap-file", FILE, "--proto", "mysql;3306", "--group-by", "operation"), width
    )
    try:
        screen = tmux.wait(lambda s: any(line.startswith("[exit ") for line in s))
    finally:
        tmux.close()
    assert "[exit 0]" in screen
    header = next(line for line in screen if line.startswith("OPERATION"))
    assert ("PROTO" in header) == (width >= 100)
    assert all(len(line) <= width for line in screen)
    for op, (count, errors) in ops.items():
        row = _row(screen, op)
        assert row, op
        at = 2 if width >= 100 else 1  # after the key (and PROTO when wide)
        assert (int(row[at]), int(row[at + 1])) == (count, errors), (op, row)
    assert f"packetd: {len(records)} records" in screen


def _resp(sock: socket.socket, *args: str) -> bytes:
    """One Redis command on a kept-open connection, and its whole reply (simple, error, integer or bulk)."""
    sock.sendall(f"*{len(args)}\r\n".encode() + b"".join(f"${len(a)}\r\n{a}\r\n".encode() for a in args))
    data = b""
    while not data.endswith(b"\r\n") or (
        data.startswith(b"$") and data.count(b"\r\n") < 2 and data[:3] != b"$-1"
    ):
        chunk = sock.recv(65536)
        assert chunk, "redis-server closed the connection"
        data += chunk
    return data


@pytest.fixture
def servers() -> Iterator[tuple[RedisServer, Nginx]]:
    redis_server = RedisServer()
    nginx = Nginx()
    try:
        yield redis_server, nginx
    finally:
        nginx.stop()
        redis_server.stop()


def _traffic(redis_port: int, nginx_port: int) -> dict[str, tuple[int, int]]:
    """Real traffic to real servers on kept-open connections; what each operation was, by (count, errors).

    Redis by a few lines of RESP over a socket (redis-py adds HELLO and CLIENT SETINFO of its own on
    connecting, which this Redis answers with errors: the test must know every command sent); an error is
    a reply that starts with `-`. HTTP by http.client; an error is a 5xx status.
    """
    sent: dict[str, list[int]] = {}

    def note(op: str, error: bool) -> None:
        c = sent.setdefault(op, [0, 0])
        c[0] += 1
        c[1] += error

    with socket.create_connection(("127.0.0.1", redis_port), timeout=10) as sock:
        for i in range(30):
            commands = [("PING",)] + ([("SET", f"k{i}", "v"), ("GET", f"k{i}")] if i % 6 == 0 else [])
            for cmd in commands:
                note(f"redis {cmd[0]}", _resp(sock, *cmd).startswith(b"-"))
            if i == 0:
                time.sleep(LOOKUP_S)
        for _ in range(2):
            reply = _resp(sock, "INCR", "k0")  # "-ERR value is not an integer or out of range"
            assert reply.startswith(b"-ERR")
            note("redis INCR", True)
    c = http.client.HTTPConnection("127.0.0.1", nginx_port, timeout=10)
    for path in ["/index.txt"] * 10 + ["/boom"] * 3 + [f"/users/{n}" for n in range(4)]:
        c.request("GET", path)
        resp = c.getresponse()
        resp.read()
        note("http GET", resp.status >= 500)
        if sent["http GET"][0] == 1:
            time.sleep(LOOKUP_S)
    c.close()
    return {op: (n, e) for op, (n, e) in sent.items()}


@pytest.mark.root
@pytest.mark.live
@pytest.mark.server
@pytest.mark.slow
@pytest.mark.skipif(not can_capture(), reason="live capture needs root / CAP_NET_RAW")
@pytest.mark.skipif(not redis_available(), reason="redis-server is not installed (make test-deps)")
@pytest.mark.skipif(not nginx_available(), reason="nginx is not installed (make test-deps)")
@pytest.mark.parametrize("width", [80, 160])
def test_live_on_loopback(width: int, servers: tuple[RedisServer, Nginx]) -> None:
    redis_server, nginx = servers
    cmd = _packetd(
        "top", "--ifaces", "lo", "--proto", f"redis;{redis_server.port}", "--proto", f"http;{nginx.port}",
        "--refresh", "200ms",
    )  # fmt: skip
    tmux = Tmux(cmd, width)
    try:
        tmux.wait(lambda s: any("group by server" in line for line in s))
        sent = _traffic(redis_server.port, nginx.port)
        count_at = 2 if width >= 100 else 1  # after the key (and PROTO when wide)

        def shows(key: str, count: int) -> Callable[[list[str]], bool]:
            return lambda s: len(_row(s, key)) > count_at and _row(s, key)[count_at] == str(count)

        redis_ops = [op for op in sent if op.startswith("redis ")]
        redis_total = sum(sent[op][0] for op in redis_ops)
        screen = tmux.wait(shows(f"127.0.0.1:{redis_server.port}", redis_total))
        row = _row(screen, f"127.0.0.1:{redis_server.port}")
        assert int(row[count_at + 1]) == sum(sent[op][1] for op in redis_ops) == 2
        screen = tmux.wait(shows(f"127.0.0.1:{nginx.port}", sent["http GET"][0]))
        row = _row(screen, f"127.0.0.1:{nginx.port}")
        assert int(row[count_at + 1]) == sent["http GET"][1] == 3
        assert all(len(line) <= width for line in screen)

        tmux.keys("g")  # → client: every connection came from 127.0.0.1
        tmux.wait(lambda s: any("group by client" in line for line in s))
        screen = tmux.wait(shows("127.0.0.1", redis_total + sent["http GET"][0]))
        assert sum(bool(re.match(r"\s*\d+\.\d+\.\d+\.\d+ ", line)) for line in screen) == 1
        tmux.keys("g")  # → operation: one row per protocol and operation
        screen = tmux.wait(lambda s: any("group by operation" in line for line in s))
        screen = tmux.wait(shows("redis PING", 30))
        for op, (count, errors) in sent.items():
            row = _row(screen, op)
            assert (int(row[count_at]), int(row[count_at + 1])) == (count, errors), op

        tmux.keys("g")  # → path, templated: the four /users/N are one row
        screen = tmux.wait(lambda s: any("group by path" in line for line in s))
        screen = tmux.wait(shows("/users/{id}", 4))
        assert _row(screen, "/index.txt")[count_at : count_at + 2] == ["10", "0"]
        assert _row(screen, "/boom")[count_at : count_at + 2] == ["3", "3"]
        assert _row(screen, "(no path)")[count_at] == str(redis_total)
        tmux.keys("g")  # → process: the local process of the server end (attribution is on)
        screen = tmux.wait(lambda s: any("group by process" in line for line in s))
        screen = tmux.wait(lambda s: bool(_row(s, f"redis-server[{redis_server.proc.pid}]")))
        nginx_rows = [line for line in screen if re.match(r"\s*nginx\[\d+\] ", line)]
        assert nginx_rows, screen  # an nginx worker (a child of the master we started)

        tmux.keys("s")  # sort by errors: nginx (3) above redis-server (2)
        screen = tmux.wait(lambda s: any("sort by errors" in line for line in s))
        keys = [line.split()[0] for line in screen if re.match(r"\s*(nginx|redis-server)\[", line)]
        assert keys[0].startswith("nginx[") and keys[1] == f"redis-server[{redis_server.proc.pid}]"

        # the cursor follows its row through a re-sort: it was on redis-server (first by count), now second
        tmux.keys("Up", "Enter")  # the first row's (nginx's) recent records
        screen = tmux.wait(lambda s: any("recent records of process nginx[" in line for line in s))
        lines = [line for line in screen if f"→ 127.0.0.1:{nginx.port} GET" in line]
        assert len(lines) == min(17, 20)
        assert sum("/boom 503" in line for line in lines) == 3
        tmux.keys("Escape")
        tmux.wait(lambda s: any("group by process" in line for line in s))
        tmux.keys("q")
        screen = tmux.wait(lambda s: any(line.startswith("[exit ") for line in s))
        assert "[exit 0]" in screen
    finally:
        tmux.close()


@pytest.mark.root
@pytest.mark.live
@pytest.mark.server
@pytest.mark.skipif(not can_capture(), reason="live capture needs root / CAP_NET_RAW")
@pytest.mark.skipif(not redis_available(), reason="redis-server is not installed (make test-deps)")
def test_live_json_when_stdout_is_not_a_terminal() -> None:
    """Live with stdout a pipe: no app; the capture runs to --duration and one JSON document follows."""
    from tests.helpers.live import _wait_stderr, stop_process

    redis_server = RedisServer()
    proc = subprocess.Popen(
        _packetd("top", "--ifaces", "lo", "--proto", f"redis;{redis_server.port}", "--format", "json",
                 "--group-by", "operation", "--duration", "6s", "--window", "10m"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    try:
        _wait_stderr(proc, b"Ctrl-C to stop")
        with socket.create_connection(("127.0.0.1", redis_server.port), timeout=10) as sock:
            replies = [_resp(sock, "PING") for _ in range(7)] + [_resp(sock, "INCR", "n") for _ in range(3)]
        assert replies[-1] == b":3\r\n"
        out, _ = proc.communicate(timeout=30)
    finally:
        stop_process(proc)
        redis_server.stop()
    assert proc.returncode == 0
    doc = orjson.loads(out)
    assert (doc["grouping"], doc["window_ns"], doc["records"]) == ("operation", 600_000_000_000, 10)
    assert {r["key"]: (r["count"], r["errors"]) for r in doc["rows"]} == {
        "redis PING": (7, 0),
        "redis INCR": (3, 0),
    }
    assert [r["key"] for r in doc["rows"]] == ["redis PING", "redis INCR"]
