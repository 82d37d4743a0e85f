"""`watch`'s record output is batched (cli.Output) yet prompt: a pipe shows records before its end, and the
batched bytes are the records, whole and in order."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time

from packetd.cli import OUTPUT_BATCH
from tests.helpers.golden import CORPUS, ROOT

PINGS = os.path.join(CORPUS, "redis", "zeek_zeek__redis-50-pings.pcap")
# the interpreter's own stdout buffering is off under PYTHONUNBUFFERED: without it, only packetd's own
# flushing can make records show before the end
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"} | {
    "PYTHONPATH": os.path.join(ROOT, "src")
}


def _watch(*args: str, stdin: int | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "packetd", "watch", "--proto", "redis;6379", "--format", "json", *args],
        stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=ENV,
    )  # fmt: skip


def _file_records() -> list[bytes]:
    proc = _watch("--pcap-file", PINGS)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    return out.splitlines(keepends=True)


def test_records_read_from_a_pipe_show_before_the_pipe_ends() -> None:
    """`tcpdump -U -w - | packetd watch -r -`: what the first part of the capture completes is on stdout
    while the writer is still there (its first sixth: ~2 KB of records, less than one batch, and less than
    the 4 KiB a default stdout buffer on a pipe holds back)."""
    whole = _file_records()
    with open(PINGS, "rb") as f:
        data = f.read()
    proc = _watch("--pcap-file", "-", stdin=subprocess.PIPE)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(data[: len(data) // 6])
        proc.stdin.flush()
        got = b""
        deadline = time.monotonic() + 20
        while b"\n" not in got and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.2)
            if ready:
                got += os.read(proc.stdout.fileno(), 1 << 16)
        assert proc.poll() is None  # still reading: the pipe is open
        shown = got[: got.rindex(b"\n") + 1].splitlines(keepends=True) if b"\n" in got else []
        assert shown, "no record before the end of the pipe"
        assert shown == whole[: len(shown)] and len(shown) < len(whole)
        rest, _ = proc.communicate(data[len(data) // 6 :], timeout=60)
        assert proc.returncode == 0
        assert (got + rest).splitlines(keepends=True) == whole
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_batched_output_is_the_golden_records_byte_for_byte() -> None:
    """Several batches' worth (390 records, 188 KB) through a pipe: the same bytes as the reviewed golden
    file of that capture (tests/golden/, written record by record), and `--count` cuts it at a record."""
    mysql = os.path.join(CORPUS, "mysql", "deepflowio_deepflow__171-mysql.pcap")
    with open(
        os.path.join(ROOT, "tests", "golden", "mysql", "deepflowio_deepflow__171-mysql.pcap.jsonl"), "rb"
    ) as f:
        golden = f.read()
    assert len(golden) > 2 * OUTPUT_BATCH
    for extra, expect in (((), golden), (("--count", "7"), b"".join(golden.splitlines(keepends=True)[:7]))):
        proc = subprocess.run(
            [sys.executable, "-m", "packetd", "watch", "--proto", "mysql;20130", "--format", "json",
             "--pcap-file", mysql, *extra],
            capture_output=True, cwd=ROOT, env=ENV, check=True, timeout=120,
        )  # fmt: skip
        assert proc.stdout == expect
