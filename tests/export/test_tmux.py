"""The text line read off a real terminal screen: `packetd watch` runs in a tmux pane 80 and 160 columns
wide on one real capture of every protocol, and the screen (tmux capture-pane) is compared with the JSON
records of the same file: one screen row per record (nothing wraps), in order, each showing its server
port and its status code."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from tests.helpers.build import PACKAGE_PATH
from tests.helpers.golden import ROOT, RULES_FOR, manifest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (scripts/test-deps.sh)")
PROTOCOLS = ["http1", "http2", "grpc", "mysql", "postgresql", "redis", "kafka", "mongodb", "amqp", "dns"]
SHOWN = 12  # records per screen (--count): every line and the summary fit in the pane
CLOCK = re.compile(r"^\d\d:\d\d:\d\d\.\d{3,6} ")


def _case(protocol: str) -> tuple[str, list[str]]:
    """The protocol's largest capture under 2 MB (many kinds of record, quick to read), its --proto."""
    rows = [r for r in manifest(protocol) if os.path.getsize(r.path) < 2_000_000]
    row = max(rows, key=lambda r: os.path.getsize(r.path))
    protos = [f"{r.protocol};{','.join(map(str, r.ports))}" for r in RULES_FOR[protocol](row)]
    return row.path, [a for p in protos for a in ("--proto", p)]


def _json(path: str, protos: list[str]) -> list[dict]:
    r = subprocess.run(
        [sys.executable, "-m", "packetd", "watch", "--pcap-file", path, *protos, "--format", "json",
         "--count", str(SHOWN)],
        capture_output=True, cwd=ROOT, timeout=120, check=True,
        env={**os.environ, "PYTHONPATH": PACKAGE_PATH},
    )  # fmt: skip
    return [json.loads(ln) for ln in r.stdout.decode().splitlines()]


def _screen(width: int, path: str, protos: list[str]) -> list[str]:
    sock = f"packetd-test-{os.getpid()}-{width}-{time.monotonic_ns()}"
    cmd = " ".join(
        [f"PYTHONPATH={os.path.join(ROOT, 'src')}", sys.executable, "-m", "packetd", "watch", "--pcap-file",
         path, *(f"'{a}'" for a in protos), "--count", str(SHOWN), "; echo END-OF-WATCH; sleep 30"]
    )  # fmt: skip
    tmux = ["tmux", "-L", sock, "-f", "/dev/null"]
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "COLUMNS", "LINES")}
    subprocess.run([*tmux, "new-session", "-d", "-x", str(width), "-y", "60", cmd], env=env, check=True)
    try:
        screen: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            out = subprocess.run([*tmux, "capture-pane", "-p"], capture_output=True, env=env, check=False)
            screen = out.stdout.decode().splitlines()
            if any("END-OF-WATCH" in ln for ln in screen):
                break
            time.sleep(0.2)
        return screen
    finally:
        subprocess.run([*tmux, "kill-server"], env=env, check=False, capture_output=True)


@pytest.mark.parametrize("width", [80, 160])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_screen_shows_one_row_per_record(protocol: str, width: int) -> None:
    path, protos = _case(protocol)
    recs = _json(path, protos)
    screen = _screen(width, path, protos)
    assert any("END-OF-WATCH" in ln for ln in screen), screen
    at = [i for i, ln in enumerate(screen) if CLOCK.match(ln)]
    rows = screen[at[0] : at[-1] + 1] if at else []
    # consecutive rows, each starting with its clock: a wrapped line would leave a row without one
    assert len(rows) == len(recs) and all(CLOCK.match(ln) for ln in rows), (rows, len(recs))
    for row, rec in zip(rows, recs, strict=True):
        assert len(row) <= width
        assert row.split()[1] == rec["protocol"]
        assert f":{rec['server']['port']}" in row
        status = rec["status"] if rec["status"] is not None else rec["kind"]
        assert f" {(status or '?')[:15]}" in row, (status, row)
