"""The agent's roundtrip records name the processes too (`sniffer.processes`, on by default): nginx and an
http.client child started here, captured live on loopback by `packetd agent`, `ss -tnp` as the truth."""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest

from tests.helpers.backends import AgentProcess, wait_records
from tests.helpers.live import Nginx, can_capture, free_port, nginx_available
from tests.helpers.procs import child, ss_owners

pytestmark = [
    pytest.mark.root,
    pytest.mark.live,
    pytest.mark.server,
    pytest.mark.skipif(not can_capture(), reason="live capture needs root / CAP_NET_RAW"),
    pytest.mark.skipif(not nginx_available(), reason="nginx is not installed (make test-deps)"),
]


@pytest.mark.parametrize(
    "processes",
    [
        None,
        False,
        pytest.param(
            "nobody",
            marks=pytest.mark.xfail(
                strict=True,
                reason="known defect (issue 13): a worker that became sniffer.user cannot read the "
                "/proc/<pid>/fd of other users' processes, so the ends stay null; the lookup would have to "
                "run in the privileged main process",
            ),
        ),
    ],
)
def test_agent_records_name_both_ends_as_ss_does(processes: bool | str | None, tmp_path: Any) -> None:
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
    if processes == "nobody":  # the workers drop root once their socket is open
        config += "sniffer.user: nobody\n"
    elif processes is not None:
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
    finally:
        agent.stop()
        nginx.stop()
    assert len(records) == 3, agent.stderr()
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
