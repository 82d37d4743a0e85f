"""The roundtrip log on a full, then read-only, disk: a small tmpfs mounted for the test (root).

Truth: the HTTP client's own count of requests (nginx on loopback), and the file itself (every line must be
a whole JSON record). Whatever the disk does, lines written + lines dropped = requests made, the metrics
count every request, the probes stay 200, and writing resumes once the disk takes data again.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.agent.test_e2e import counter_sum, get, scrape, traffic, wait_for
from tests.agent.test_reload import live, live_config
from tests.helpers.backends import AgentProcess
from tests.helpers.build import PACKAGE_PATH
from tests.helpers.live import Nginx, free_port

DISK = "128k"  # a few dozen roundtrip lines: full within one test


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


@contextlib.contextmanager
def tmpfs(size: str) -> Iterator[str]:
    where = tempfile.mkdtemp(prefix="packetd-disk-")
    _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", where)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", where], check=False, capture_output=True)
        os.rmdir(where)


def fill(where: str) -> str:
    """Take every free byte of the file system; the filler's path."""
    path = os.path.join(where, "filler")
    with open(path, "wb", buffering=0) as f:
        with contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 4096)
        with contextlib.suppress(OSError):
            while True:
                f.write(b"\0")
    return path


def remount(where: str, mode: str) -> None:
    """ro fails (EBUSY) while the agent holds the file open for a write attempt: try again."""
    for _ in range(200):  # 10 s: a loaded machine ships the failing batch late
        r = subprocess.run(["mount", "-o", f"remount,{mode}", where], check=False, capture_output=True)
        if r.returncode == 0:
            return
        time.sleep(0.05)
    raise RuntimeError(f"cannot remount {where} {mode}: {r.stderr.decode()}")


def records(path: str) -> list[dict[str, Any]]:
    with open(path, "rb") as f:
        data = f.read()
    assert not data or data.endswith(b"\n")  # never half a line
    return [json.loads(line) for line in data.splitlines()]


def exporter(api: int, name: str) -> float:
    return counter_sum(get(api, "/metrics")[1].decode(), name, exporter="roundtrips")


def requests_total(api: int) -> float:
    return counter_sum(scrape(api), "http_requests_total")


def recover(api: int, port: int, path: str, sent: list[dict[str, Any]]) -> None:
    """One request at a time until one reaches the file again (the exporter's back-off runs out)."""
    deadline = time.monotonic() + 60
    before = exporter(api, "packetd_exporter_sent_total")
    while exporter(api, "packetd_exporter_sent_total") == before:
        assert time.monotonic() < deadline, "the roundtrip log never resumed"
        traffic(port, [("/probe", {})], sent)
        wait_for(lambda: requests_total(api), float(len(sent)))
        time.sleep(0.6)


@live
def test_a_full_then_read_only_disk_drops_and_counts_lines_and_the_agent_carries_on() -> None:
    nginx = Nginx()
    api = free_port()
    sent: list[dict[str, Any]] = []
    with tmpfs(DISK) as disk:
        path = os.path.join(disk, "roundtrips.jsonl")
        agent = AgentProcess(live_config(api, nginx.port, 1, 16, path))
        try:
            agent.wait_ready(api)
            time.sleep(1.0)
            traffic(nginx.port, [("/index.txt", {})] * 10, sent)
            assert wait_for(lambda: len(records(path)), 10) == 10
            # full: what does not fit is dropped and counted, the partial line cut off again
            filler = fill(disk)
            traffic(nginx.port, [("/full", {})] * 20, sent)
            assert wait_for(lambda: exporter(api, "packetd_exporter_dropped_total"), 20.0) == 20.0
            assert exporter(api, "packetd_exporter_failed_total") >= 1
            assert wait_for(lambda: requests_total(api), 30.0) == 30.0  # metrics unaffected
            assert len(records(path)) == 10
            assert get(api, "/healthz")[0] == 200 and get(api, "/readyz")[0] == 200
            assert "cannot write to" in agent.stderr() and "No space left on device" in agent.stderr()
            # space again: writing resumes
            os.remove(filler)
            recover(api, nginx.port, path, sent)
            traffic(nginx.port, [("/after-full", {})] * 10, sent)
            assert (
                wait_for(lambda: sum(r["request"]["path"] == "/after-full" for r in records(path)), 10) == 10
            )
            # read-only: the file is closed after a failure, so the file system can be remounted
            filler = fill(disk)
            failed = exporter(api, "packetd_exporter_failed_total")
            # more than a page of lines: the file's last tmpfs page may still have room for a few
            traffic(nginx.port, [("/full-again", {})] * 20, sent)
            # this batch's failure closes the file (the count before it may already be 2 or more)
            assert wait_for(lambda: exporter(api, "packetd_exporter_failed_total") > failed, True, 30)
            remount(disk, "ro")
            time.sleep(2.5)  # the back-off runs out: the next batch is tried, and meets a read-only disk
            traffic(nginx.port, [("/read-only", {})] * 5, sent)
            assert wait_for(lambda: requests_total(api), float(len(sent))) == len(sent)
            assert wait_for(lambda: "Read-only file system" in agent.stderr(), True)
            remount(disk, "rw")
            os.remove(filler)
            recover(api, nginx.port, path, sent)
            traffic(nginx.port, [("/after-read-only", {})] * 10, sent)
            want = 10
            got = wait_for(
                lambda: sum(r["request"]["path"] == "/after-read-only" for r in records(path)), want
            )
            assert got == want
            # the books balance: every request either reached the file or was counted as dropped
            lines = records(path)
            written = exporter(api, "packetd_exporter_sent_total")
            dropped = exporter(api, "packetd_exporter_dropped_total")
            assert written == len(lines)
            assert written + dropped == len(sent) == requests_total(api)
            assert not any(r["request"]["path"] in ("/read-only",) for r in lines)
            text = get(api, "/metrics")[1].decode()
            assert counter_sum(text, "packetd_internal_errors_total") == 0  # a disk is not a bug
            assert agent.proc.poll() is None
        finally:
            agent.stop()
            nginx.stop()


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_a_roundtrip_file_on_a_read_only_directory_is_one_line_at_start_up() -> None:
    with tmpfs("64k") as disk:
        ro = tempfile.mkdtemp(prefix="packetd-ro-")
        try:
            _mount("--bind", disk, ro)
            _mount("-o", "remount,bind,ro", ro)
            path = os.path.join(ro, "roundtrips.jsonl")
            config = os.path.join(tempfile.mkdtemp(prefix="packetd-ro-config-"), "packetd.yaml")
            with open(config, "w") as f:
                f.write(f'exporter.roundtrips: {{enabled: true, filename: "{path}"}}\n')
                f.write(f'server.address: "127.0.0.1:{free_port()}"\n')
                f.write("sniffer.protocols.rules: [{name: web, protocol: http, ports: [80]}]\n")
            r = subprocess.run(
                [sys.executable, "-m", "packetd", "agent", "--config", config],
                check=False, capture_output=True, text=True, timeout=60,
                env={**os.environ, "PYTHONPATH": PACKAGE_PATH},
            )  # fmt: skip
            os.remove(config)
            assert r.returncode == 2
            # the config check names the file and the reason before the agent starts (a read-only mount
            # makes its directory not writable)
            assert r.stderr.strip().splitlines() == [
                f"packetd: {config}: 'exporter.roundtrips.filename': '{path}' cannot be created: "
                f"directory {ro} is not writable"
            ]
        finally:
            subprocess.run(["umount", ro], check=False, capture_output=True)
            os.rmdir(ro)


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_a_write_cut_short_by_a_full_disk_leaves_only_whole_lines() -> None:
    from packetd.export.rotating import RotatingFile

    line = b"x" * 999 + b"\n"
    with tmpfs("64k") as disk:
        path = os.path.join(disk, "lines")
        rf = RotatingFile(path, 10 * 1024 * 1024, 0, buffered=False)
        assert rf.write_lines([line] * 60) == (60, None)  # 60 000 of the 65 536 bytes
        # one batch of 10 more: 5 536 bytes fit, then ENOSPC; the batch is cut off again, whole
        written, error = rf.write_lines([line] * 10)
        assert error is not None and error.errno == errno.ENOSPC
        assert written == 0
        with open(path, "rb") as f:
            assert f.read() == line * 60
        assert rf.write_lines([line] * 5) == (5, None)  # what the cut freed is there to use
        written, error = rf.write_lines([line])  # full to the byte now: nothing added
        assert (written, error is not None) == (0, True)
        assert os.path.getsize(path) == 65 * len(line)
        os.truncate(path, 10 * len(line))  # space again (as if a reader had emptied it)
        assert rf.write_lines([line, line]) == (2, None)  # reopened, appended at the real end
        assert os.path.getsize(path) == 12 * len(line)
        rf.close()
