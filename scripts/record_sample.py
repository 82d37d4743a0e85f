"""Record samples/http-sample.pcapng, the capture `make run` analyses when it cannot capture live.

    sudo .venv/bin/python scripts/record_sample.py

Real traffic on loopback: Debian's nginx and the tests' special-case server, a few clients, tcpdump.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from tests.helpers.live import Nginx, free_port
from tests.helpers.special_server import SpecialServer

OUT = os.path.join(os.path.dirname(__file__), "..", "samples", "http-sample.pcapng")


def main() -> None:
    nginx = Nginx()
    special = SpecialServer(free_port())
    raw = OUT + ".tmp.pcap"
    # the sample's servers listen on the protocol's default ports as seen by `make run`: rewrite nothing,
    # just tell the reader which ports (scripts/run.sh passes --proto)
    tcpdump = subprocess.Popen(
        ["tcpdump", "-i", "lo", "-U", "--immediate-mode", "-s", "0", "--time-stamp-precision=nano", "-w", raw,
         f"tcp port {nginx.port} or tcp port {special.port}"],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1)
    try:
        c = http.client.HTTPConnection("127.0.0.1", nginx.port)
        for path in ["/index.txt", "/teapot", "/missing", "/boom", "/empty", "/index.txt?page=2"]:
            c.request(
                "GET",
                path,
                headers={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
            )
            c.getresponse().read()
        c.close()
        s = http.client.HTTPConnection("127.0.0.1", special.port)
        s.request("POST", "/upload", body=b"x" * 20000, headers={"Content-Type": "text/plain"})
        s.getresponse().read()
        s.request("GET", "/chunked")
        s.getresponse().read()
        s.close()
        time.sleep(0.5)
    finally:
        tcpdump.send_signal(signal.SIGINT)
        tcpdump.wait()
        special.stop()
        nginx.stop()
    subprocess.run(["editcap", "-F", "pcapng", raw, OUT], check=True)
    os.remove(raw)
    print(f"{OUT}: nginx on {nginx.port}, special server on {special.port}")
    with open(OUT + ".ports", "w") as f:
        f.write(f"{nginx.port},{special.port}\n")


if __name__ == "__main__":
    main()
