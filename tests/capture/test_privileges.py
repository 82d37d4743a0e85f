"""Which capabilities process attribution needs after dropping root, found by trying (capture/privileges.py).

A process owned by another user (uid 1234, not root, not nobody) is the target; a fresh interpreter becomes
`nobody` keeping a given set and tries what attribution/processes.py does: list /proc/<pid>/fd, read a link
in it. The truth is what this (root) test process reads itself. Either capability alone is not enough.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from tests.helpers.build import PACKAGE_PATH
from tests.helpers.golden import ROOT

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(
        os.geteuid() != 0 or not sys.platform.startswith("linux"), reason="needs root on Linux"
    ),
    pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is not installed"),
]

PROBE = """
import os, sys
from packetd.capture.privileges import drop_privileges
drop_privileges("nobody", [k for k in sys.argv[2].split(",") if k])
try:
    print(os.readlink(f"/proc/{sys.argv[1]}/fd/" + sorted(os.listdir(f"/proc/{sys.argv[1]}/fd"))[0]))
except PermissionError:
    print("denied")
with open("/proc/self/status") as f:
    print(next(line.split()[1] for line in f if line.startswith("CapEff:")))
"""


@pytest.mark.parametrize(
    ("keep", "allowed", "cap_eff"),
    [
        ("", False, 0),
        ("CAP_SYS_PTRACE", False, 1 << 19),
        ("CAP_DAC_READ_SEARCH", False, 1 << 2),
        ("CAP_DAC_READ_SEARCH,CAP_SYS_PTRACE", True, (1 << 2) | (1 << 19)),  # linux/capability.h bits
    ],
)
def test_only_both_capabilities_read_another_users_fd_links(keep: str, allowed: bool, cap_eff: int) -> None:
    target = subprocess.Popen(["setpriv", "--reuid=1234", "--regid=1234", "--clear-groups", "sleep", "30"])
    try:
        fd_dir = f"/proc/{target.pid}/fd"
        for _ in range(100):  # until setpriv has become sleep (and its uid is 1234)
            if os.stat(f"/proc/{target.pid}").st_uid == 1234 and os.listdir(fd_dir):
                break
            time.sleep(0.02)
        truth = os.readlink(f"{fd_dir}/{sorted(os.listdir(fd_dir))[0]}")
        out = subprocess.run(
            [sys.executable, "-c", PROBE, str(target.pid), keep],
            check=False, capture_output=True, text=True, timeout=30, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": PACKAGE_PATH},
        )  # fmt: skip
    finally:
        target.kill()
        target.wait()
    assert out.returncode == 0, out.stderr
    link, eff = out.stdout.split()
    assert link == (truth if allowed else "denied")
    assert int(eff, 16) == cap_eff
