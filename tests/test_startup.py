"""What `packetd watch -r FILE` imports at start-up: only what it uses.

Process attribution (ctypes, the sock_diag netlink code), libpcap (ctypes.util, tempfile, shutil's
archive modules), the pcapng writer of -w, subprocess (`packetd version`'s git hash) and the agent's
`roundtripsfilter` are imported where they are used, not by `packetd.cli` itself: they were ~10 ms of CPU
in every start. The truth is the interpreter's own `sys.modules` after a real run of watch on a capture.
"""

from __future__ import annotations

import json
import subprocess
import sys

from packetd.capture.pcapwrite import PcapWriter, ethernet, ipv4_udp

# imported only when the run needs them (a live capture, --processes, -w, a filter expression, the agent)
LAZY = (
    "ctypes",
    "subprocess",
    "packetd.attribution.processes",
    "packetd.attribution.diag",
    "packetd.capture.libpcap",
    "packetd.capture.pcapout",
    "packetd.pipeline.filter",
)

_RUN = """
import json, sys
from packetd.cli import main
try:
    main(["watch", "-r", sys.argv[1], "--proto", "dns;53", "--format", "json", "--workers", "1"])
except SystemExit:
    pass
sys.stderr.write(json.dumps(sorted(sys.modules)) + "\\n")
"""


def test_watch_on_a_file_imports_no_attribution_libpcap_pcapout_or_subprocess(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "one.pcap"
    query = bytes.fromhex("1234 0100 0001 0000 0000 0000 01 61 04 74 65 73 74 00 0001 0001".replace(" ", ""))
    with open(path, "wb") as f:
        w = PcapWriter(f)
        w.write(1_000_000_000, ethernet(ipv4_udp("10.0.0.1", "10.0.0.53", 40000, 53, query)))
    out = subprocess.run([sys.executable, "-c", _RUN, str(path)], capture_output=True, text=True, check=True)
    modules = set(json.loads(out.stderr.strip().splitlines()[-1]))
    assert "packetd.protocols.dns.decoder" in modules  # the run decoded (the check sees a real start-up)
    assert [m for m in LAZY if m in modules] == []
