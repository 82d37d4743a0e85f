"""Traffic captured for a test and what the agent would export of it: tcpdump on loopback into a pcap
file, Debian's nghttpd as a cleartext HTTP/2 server, and spans sent through the OpenTelemetry SDK's OTLP
exporter (export/senders.Traces) to the receiver built on opentelemetry-proto. Everything started here is
stopped here, by PID."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest

from packetd.export.senders import Traces
from packetd.pipeline.spans import SpanData
from tests.helpers.backends import OtlpReceiver
from tests.helpers.live import ROOT, can_capture, free_port, stop_process, wait_port

# the marks of a test that captures with tcpdump on loopback and starts servers
CAPTURE_MARKS = [
    pytest.mark.root,
    pytest.mark.live,
    pytest.mark.server,
    pytest.mark.skipif(not can_capture(), reason="capture on loopback needs root / CAP_NET_RAW"),
    pytest.mark.skipif(not shutil.which("tcpdump"), reason="tcpdump is not installed (make test-deps)"),
]


@contextlib.contextmanager
def tcpdump(port: int, bpf: str | None = None) -> Iterator[str]:
    """tcpdump of `tcp port P` (or the filter `bpf`) on loopback into a pcap file, stopped by PID when the
    block ends."""
    workdir = tempfile.mkdtemp(prefix="packetd-tapped-")
    path = os.path.join(workdir, "capture.pcap")
    proc = subprocess.Popen(
        ["tcpdump", "-i", "lo", "-U", "-n", "-s", "0", "-B", "65536", "--immediate-mode", "-w", path,
         bpf or f"tcp port {port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    seen = b""
    deadline = time.monotonic() + 15
    while b"listening on" not in seen and time.monotonic() < deadline:
        seen += proc.stderr.read1(4096)  # type: ignore[attr-defined]
    try:
        yield path
    finally:
        time.sleep(0.3)  # the last packets reach tcpdump's buffer
        stop_process(proc, signal.SIGINT)
        proc.stderr.close()


@contextlib.contextmanager
def nghttpd(files: dict[str, str]) -> Iterator[int]:
    """nghttpd --no-tls serving `files` (name → content) on a free port; yields the port."""
    port = free_port()
    www = tempfile.mkdtemp(prefix="packetd-tapped-www-")
    for name, content in files.items():
        with open(os.path.join(www, name), "w") as f:
            f.write(content)
    server = subprocess.Popen(
        ["nghttpd", "--no-tls", "-d", www, str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_port(port)
        yield port
    finally:
        stop_process(server)
        shutil.rmtree(www, ignore_errors=True)


def export(spans: list[SpanData]) -> list[dict[str, Any]]:
    """`spans` through the agent's OTLP exporter; what the receiver decoded (flattened, with resource and
    scope)."""
    receiver = OtlpReceiver()
    try:
        exporter = Traces(receiver.endpoint, 1000, 60.0, 10.0, {}, False, 10_000)
        exporter.offer(spans)
        exporter.cycle(final=True)
        exporter._exporter.shutdown()  # type: ignore[no-untyped-call]
        return list(receiver.spans)
    finally:
        receiver.stop()


@contextlib.contextmanager
def grpc_server() -> Iterator[int]:
    """tests/helpers/grpc_server.py (grpcio) on a free port; yields the port."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "tests", "helpers", "grpc_server.py"), str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
    )  # fmt: skip
    try:
        wait_port(port, timeout=30)
        yield port
    finally:
        stop_process(server)
