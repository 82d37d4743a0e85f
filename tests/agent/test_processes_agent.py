"""The agent's roundtrip records name the processes too (`sniffer.processes`, on by default): nginx and an
http.client child started here, captured live on loopback by `packetd agent`, `ss -tnp` as the truth. Also
when the workers become `sniffer.user` (nobody): they keep only the capabilities the lookup needs, read
back from the worker's /proc/<pid>/status, and none at all with attribution off."""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest

from tests.helpers.backends import AgentProcess, wait_records
from tests.helpers.live import Nginx, free_port, live_marks, nginx_available
from tests.helpers.procs import child, ss_owners, worker_pids

pytestmark = live_marks((nginx_available(), "nginx"))


# linux/capability.h: CAP_DAC_READ_SEARCH is bit 2, CAP_SYS_PTRACE bit 19 — what a worker that became
# sniffer.user keeps for process attribution, and only then.
KEPT = (1 << 2) | (1 << 19)


def _caps(pid: int) -> dict[str, int]:
    """CapInh/CapPrm/CapEff/... of a process as the kernel reports them."""
    with open(f"/proc/{pid}/status") as f:
        return {k: int(v, 16) for k, _, v in (line.partition(":") for line in f) if k.startswith("Cap")}


@pytest.mark.parametrize(
    ("processes", "user"),
    [(None, None), (False, None), (None, "nobody"), (False, "nobody")],
)
def test_agent_records_name_both_ends_as_ss_does(
    processes: bool | None, user: str | None, tmp_path: Any
) -> None:
    nginx = Nginx()
    api = free_port()
    out = os.path.join(str(tmp_path), "roundtrips.jsonl")
    config = f"""
sniffer:
  ifaces: "^lo$"
  protocols.rules: [{{name: web, protocol: http, ports: [{nginx.port}]}}]
server.address: "127.0.0.1:{api}"
exporter.roundtrips: {{enabled: true, filename: "{out}"}}
"""
    if user is not None:  # the workers drop root once their socket is open
        config += f"sniffer.user: {user}\n"
    if processes is not None:
        config += f"sniffer.processes: {str(processes).lower()}\n"
    agent = AgentProcess(config)
    try:
        agent.wait_ready(api)
        cmd = [sys.executable, "-c",
               "import http.client, sys\n"
               f"c = http.client.HTTPConnection('127.0.0.1', {nginx.port})\n"
               "for _ in range(3):\n    c.request('GET', '/index.txt'); c.getresponse().read()\n"
               "print('up', flush=True); sys.stdin.read()"]  # fmt: skip
        with child(cmd) as client:
            truth = ss_owners()
            records = wait_records(out, 3)
        (worker,) = worker_pids(agent.proc.pid)
        caps = _caps(worker)  # after it parsed packets: long after it became sniffer.user
    finally:
        agent.stop()
        nginx.stop()
    assert len(records) == 3, agent.stderr()
    if user is not None:  # exactly the two attribution needs, and none at all with it off
        want = 0 if processes is False else KEPT
        assert (caps["CapEff"], caps["CapPrm"], caps["CapInh"], caps["CapAmb"]) == (want, want, 0, 0), caps
    for rec in records:
        if processes is False:
            assert "process" not in rec["client"] and "process" not in rec["server"]
            continue
        c = (rec["client"]["ip"], rec["client"]["port"])
        s = (rec["server"]["ip"], rec["server"]["port"])
        assert [(rec["client"]["process"]["comm"], rec["client"]["process"]["pid"])] == truth[(c, s)]
        assert [(rec["server"]["process"]["comm"], rec["server"]["process"]["pid"])] == truth[(s, c)]
        assert rec["client"]["process"]["pid"] == client.pid
        assert rec["server"]["process"]["comm"] == "nginx"
