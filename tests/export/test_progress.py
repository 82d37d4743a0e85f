"""The progress line: its words against values computed by hand (a fake clock and frames of known size),
and on a real pseudo-terminal (pty) against a watch reading a file; never on a pipe."""

from __future__ import annotations

import io
import os
import pty
import select
import struct
import subprocess
import sys
import threading
from pathlib import Path

from packetd.capture.pcapfile import CaptureFile
from packetd.export.progress import CHECK_EVERY, FIRST_AFTER_S, Progress, eta
from tests.helpers.build import PACKAGE_PATH
from tests.helpers.golden import CORPUS, ROOT

DNS = os.path.join(CORPUS, "dns", "njcx_packetbeat__dns_google_com.pcap")
HOLD_S = 2 * FIRST_AFTER_S  # how long the records' reader waits before it reads (see _watch)


def test_line_counts_bytes_rate_and_eta() -> None:
    now = [100.0]
    out = io.StringIO()
    p = Progress(out, total_bytes=10 * CHECK_EVERY * 116, record_header=16, clock=lambda: now[0])
    frames = ((i, 1, memoryview(b"x" * 100)) for i in range(2 * CHECK_EVERY))
    it = p.wrap(frames)
    for _ in range(CHECK_EVERY - 1):
        next(it)
    now[0] = 102.0  # 2 s in; the next frame is the CHECK_EVERY-th: the line is drawn
    next(it)
    next(it)
    # 4096 frames x 116 bytes = 464 KiB of 4.5 MiB (10%), 2048 packets/s; 90% left at 232 KiB/s: 18 s
    assert out.getvalue() == "\rpacketd: 464.0K of 4.5M (10%), 2,048 packets/s, ETA 18s\x1b[K"
    list(it)
    assert out.getvalue().endswith("\r\x1b[K")  # erased when done
    assert eta(59.4) == "59s" and eta(125) == "2m05s" and eta(3720) == "1h02m"


def test_small_file_draws_nothing() -> None:
    out = io.StringIO()
    p = Progress(out, total_bytes=1000, clock=lambda: 0.0)
    list(p.wrap((i, 1, memoryview(b"x")) for i in range(3 * CHECK_EVERY)))
    assert out.getvalue() == ""


def _capture(path: Path, pairs: int) -> None:
    """A pcap of `pairs` copies of a real DNS query and answer, a millisecond apart."""
    frames = [(lt, bytes(d)) for _, lt, d in CaptureFile(DNS)]
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, frames[0][0]))
        t = 1_700_000_000_000_000
        for _ in range(pairs):
            for _, d in frames:
                t += 1_000_000
                f.write(struct.pack("<IIII", t // 10**9, t % 10**9 // 1000, len(d), len(d)) + d)


def _watch(path: Path, stderr_tty: bool) -> bytes:
    cmd = [
        sys.executable,
        "-m",
        "packetd",
        "watch",
        "--pcap-file",
        str(path),
        "--proto",
        "dns;53",
        "--format",
        "json",
    ]
    env = {**os.environ, "PYTHONPATH": PACKAGE_PATH}
    if not stderr_tty:
        r = subprocess.run(cmd, capture_output=True, cwd=ROOT, env=env, timeout=300, check=False)
        return r.stderr
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave, cwd=ROOT, env=env)
    os.close(slave)
    # The records go to a pipe nobody reads for HOLD_S: it fills within the first few hundred records, so
    # watch waits there, well past FIRST_AFTER_S, whatever the speed of the build or the machine; then the
    # records are drained and the progress line appears at the next look at the clock (CHECK_EVERY frames).
    records = proc.stdout
    assert records is not None
    drain = threading.Timer(HOLD_S, records.read)
    drain.start()
    got = b""
    while True:
        ready, _, _ = select.select([master], [], [], 300)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the pty's other end closed: watch is done
            break
        if not chunk:
            break
        got += chunk
    proc.wait(timeout=60)
    drain.join()
    records.close()
    os.close(master)
    return got


def test_progress_on_a_terminal_and_never_on_a_pipe(tmp_path: Path) -> None:
    path = tmp_path / "dns.pcap"
    _capture(path, 25_000)  # 50,000 packets, 25,000 records: megabytes of JSON, far more than a pipe holds
    size = path.stat().st_size
    on_tty = _watch(path, True).decode()
    assert "\rpacketd: " in on_tty and " packets/s, ETA " in on_tty, on_tty[:400]
    last = on_tty.rindex("\rpacketd: ")
    drawn = on_tty[last:].split("\x1b[K", 1)[0]
    total = f" of {size / 1024 / 1024:.1f}M ("
    assert total in drawn, (total, drawn)
    # erased before the summary: the summary starts on a clean line
    summary = on_tty.index("packets in")
    assert on_tty.rfind("\r\x1b[K", 0, summary) > last
    on_pipe = _watch(path, False).decode()
    assert "\r" not in on_pipe and "\x1b" not in on_pipe and "packets in" in on_pipe
