"""Independent truth for process attribution: `ss -tnpH` (iproute2 reads sock_diag and /proc/<pid>/fd
itself), network namespaces with a veth pair, and a cgroup made by the test.

Everything made here is removed here: the namespace and link by name (they carry this test process's pid),
the cgroup directory after its process has been moved back to the root cgroup.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from collections.abc import Iterator

Endpoint = tuple[str, int]
_USER = re.compile(r'\("([^"]*)",pid=(\d+),fd=\d+\)')


def _endpoint(text: str) -> Endpoint:
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if host.startswith("::ffff:"):
        host = host[7:]
    return host, int(port)


def ss_owners(netns: str | None = None) -> dict[tuple[Endpoint, Endpoint], list[tuple[str, int]]]:
    """(local, peer) of every TCP socket → [(comm, pid)] of the processes holding it, as `ss -tnp` says."""
    cmd = ["ss", "-tnpH"]
    if netns is not None:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    owners: dict[tuple[Endpoint, Endpoint], list[tuple[str, int]]] = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) < 5:
            continue
        users = [(comm, int(pid)) for comm, pid in _USER.findall(line)]
        owners[(_endpoint(f[3]), _endpoint(f[4]))] = users
    return owners


@contextlib.contextmanager
def veth_netns(subnet: str) -> Iterator[dict[str, str]]:
    """A network namespace joined to this one by a veth pair: host side `<subnet>.1`, namespace side
    `<subnet>.2` (addresses that exist only on the pair this makes)."""
    tag = os.getpid() % 100000
    ns, host_if, ns_if = f"pdproc{tag}", f"pdp{tag}", f"pdq{tag}"
    run = lambda *a: subprocess.run(list(a), check=True, capture_output=True)  # noqa: E731
    run("ip", "netns", "add", ns)
    try:
        run("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        run("ip", "link", "set", ns_if, "netns", ns)
        run("ip", "addr", "add", f"{subnet}.1/24", "dev", host_if)
        run("ip", "link", "set", host_if, "up")
        run("ip", "netns", "exec", ns, "ip", "addr", "add", f"{subnet}.2/24", "dev", ns_if)
        run("ip", "netns", "exec", ns, "ip", "link", "set", ns_if, "up")
        run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        yield {"ns": ns, "host_if": host_if, "host_ip": f"{subnet}.1", "ns_ip": f"{subnet}.2"}
    finally:
        subprocess.run(["ip", "link", "del", host_if], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


UNIFIED = "/sys/fs/cgroup/unified" if os.path.isdir("/sys/fs/cgroup/unified") else "/sys/fs/cgroup"


def can_make_cgroups() -> bool:
    return os.geteuid() == 0 and os.path.exists(os.path.join(UNIFIED, "cgroup.procs"))


@contextlib.contextmanager
def in_cgroup(pid: int, relative: str) -> Iterator[str]:
    """Move `pid` into a new cgroup v2 `<UNIFIED>/packetd-test-<our pid>/<relative>` (shaped like a
    runtime's), and back to the root cgroup afterwards."""
    top = os.path.join(UNIFIED, f"packetd-test-{os.getpid()}")
    path = os.path.join(top, relative)
    os.makedirs(path)
    try:
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(pid))
        yield path
    finally:
        with contextlib.suppress(OSError), open(os.path.join(UNIFIED, "cgroup.procs"), "w") as f:
            f.write(str(pid))
        for d in sorted((root for root, _, _ in os.walk(top)), key=len, reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(d)


@contextlib.contextmanager
def child(cmd: list[str], **kw: object) -> Iterator[subprocess.Popen[bytes]]:
    """A child that prints `up` once ready and runs until its stdin closes (then it is waited for, and
    killed by PID if it does not end)."""
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, **kw)  # type: ignore[call-overload]
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line != b"up\n":
            raise RuntimeError(f"{cmd[:4]} did not start: {line!r}")
        yield proc
    finally:
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def worker_pids(agent_pid: int) -> list[int]:
    """Capture processes: children of the agent started by multiprocessing's spawn."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == agent_pid and b"spawn_main" in cmdline:
            pids.append(int(entry))
    return sorted(pids)
