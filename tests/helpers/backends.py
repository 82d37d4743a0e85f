"""Real back-ends for the agent's end-to-end tests: Prometheus (Debian's package) and an OTLP/HTTP receiver
built on opentelemetry-proto's generated messages. Both can be stopped and started again on the same port
(the exporters' retry is tested that way). Everything started here is stopped here, by PID."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.helpers.build import PACKAGE_PATH
from tests.helpers.live import free_port, stop_process, wait_port


def _resource(r: Any) -> dict[str, Any]:
    return {a.key: _value(a.value) for a in r.attributes}


def ingest_metrics(req: Any, into: list[dict[str, Any]]) -> None:
    """An ExportMetricsServiceRequest → one dict per histogram data point."""
    for rm in req.resource_metrics:
        resource = _resource(rm.resource)
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                for p in m.histogram.data_points:
                    into.append(
                        {
                            "name": m.name,
                            "unit": m.unit,
                            "temporality": m.histogram.aggregation_temporality,
                            "attributes": {a.key: _value(a.value) for a in p.attributes},
                            "count": p.count,
                            "sum": p.sum,
                            "min": p.min,
                            "max": p.max,
                            "bucket_counts": list(p.bucket_counts),
                            "bounds": list(p.explicit_bounds),
                            "start": p.start_time_unix_nano,
                            "time": p.time_unix_nano,
                            "scope": (sm.scope.name, sm.scope.version),
                            "resource": resource,
                        }
                    )


def ingest_logs(req: Any, into: list[dict[str, Any]]) -> None:
    """An ExportLogsServiceRequest → one dict per log record."""
    for rl in req.resource_logs:
        resource = _resource(rl.resource)
        for sl in rl.scope_logs:
            for r in sl.log_records:
                into.append(
                    {
                        "time": r.time_unix_nano,
                        "observed_time": r.observed_time_unix_nano,
                        "severity_number": r.severity_number,
                        "severity_text": r.severity_text,
                        "trace_id": r.trace_id.hex(),
                        "span_id": r.span_id.hex(),
                        "flags": r.flags,
                        "event_name": r.event_name,
                        "body": _value(r.body),
                        "attributes": {a.key: _value(a.value) for a in r.attributes},
                        "scope": (sl.scope.name, sl.scope.version),
                        "resource": resource,
                    }
                )


class PostServer:
    """A loopback HTTP server whose POSTs go to `handle(path, headers, body)` (which returns the status to
    answer); stoppable and startable again on the same port (a back-end that goes away and returns)."""

    response_type = "application/x-protobuf"

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.requests = 0
        self._server: ThreadingHTTPServer | None = None
        self.start()

    def handle(self, path: str, headers: Any, body: bytes) -> int:
        raise NotImplementedError

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                code = receiver.handle(self.path, self.headers, body)
                self.send_response(code)
                if code < 300:
                    self.send_header("Content-Type", receiver.response_type)
                self.send_header("Content-Length", "0")
                self.end_headers()

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class OtlpReceiver(PostServer):
    """POST /v1/traces, /v1/metrics, /v1/logs (protobuf, optionally gzip) → spans (flattened with their
    resource attributes), histogram points and log records. `fail` > 0 answers that many requests 503."""

    def __init__(self, port: int | None = None) -> None:
        self.spans: list[dict[str, Any]] = []
        self.metrics: list[dict[str, Any]] = []
        self.logs: list[dict[str, Any]] = []
        self.fail = 0
        super().__init__(port)

    def handle(self, path: str, headers: Any, body: bytes) -> int:
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        if headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if self.fail > 0:
            self.fail -= 1
            return 503
        if path in ("/v1/metrics", "/v1/logs"):
            other: Any = (
                ExportMetricsServiceRequest() if path == "/v1/metrics" else ExportLogsServiceRequest()
            )
            other.ParseFromString(body)
            if path == "/v1/metrics":
                ingest_metrics(other, self.metrics)
            else:
                ingest_logs(other, self.logs)
            self.requests += 1
            return 200
        req = ExportTraceServiceRequest()
        req.ParseFromString(body)
        for rs in req.resource_spans:
            resource = {a.key: _value(a.value) for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    self.spans.append(
                        {
                            "name": s.name,
                            "trace_id": s.trace_id.hex(),
                            "span_id": s.span_id.hex(),
                            "parent_span_id": s.parent_span_id.hex(),
                            "kind": s.kind,
                            "start": s.start_time_unix_nano,
                            "end": s.end_time_unix_nano,
                            "status": s.status.code,
                            "status_message": s.status.message,
                            "attributes": {a.key: _value(a.value) for a in s.attributes},
                            "resource": resource,
                            "scope": (ss.scope.name, ss.scope.version),
                        }
                    )
        self.requests += 1
        return 200

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/traces"

    def url(self, signal: str) -> str:
        return f"http://127.0.0.1:{self.port}/v1/{signal}"


class OtlpGrpcReceiver:
    """The OTLP gRPC services for metrics and logs (grpcio + opentelemetry-proto's generated servicers),
    on a loopback port, optionally gzip; `fail` > 0 answers that many calls UNAVAILABLE."""

    def __init__(self) -> None:
        import grpc
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc

        self.metrics: list[dict[str, Any]] = []
        self.logs: list[dict[str, Any]] = []
        self.fail = 0
        self.metadata: list[dict[str, str]] = []
        receiver = self

        def refuse(context: Any) -> bool:
            receiver.metadata.append({k: v for k, v in context.invocation_metadata()})
            if receiver.fail > 0:
                receiver.fail -= 1
                context.abort(grpc.StatusCode.UNAVAILABLE, "test: unavailable")
            return False

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:
                refuse(context)
                ingest_metrics(request, receiver.metrics)
                return metrics_service_pb2.ExportMetricsServiceResponse()

        class Logs(logs_service_pb2_grpc.LogsServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:
                refuse(context)
                ingest_logs(request, receiver.logs)
                return logs_service_pb2.ExportLogsServiceResponse()

        from concurrent.futures import ThreadPoolExecutor

        self._server = grpc.server(ThreadPoolExecutor(max_workers=4))
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), self._server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Logs(), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.stop(grace=None)


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind) if kind else None


PROM_CONFIG = """
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: packetd
    metrics_path: /protocol/metrics
    static_configs:
      - targets: ["{target}"]
"""


class Prometheus:
    """Debian's prometheus, scraping the agent every second, receiving remote write."""

    def __init__(self, target: str, config: str = PROM_CONFIG) -> None:
        self.dir = tempfile.mkdtemp(prefix="packetd-prom-")
        self.port = free_port()
        self.target = target
        with open(os.path.join(self.dir, "prometheus.yml"), "w") as f:
            f.write(config.replace("{target}", target))
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        binary = shutil.which("prometheus") or "/usr/bin/prometheus"
        self._log = open(os.path.join(self.dir, "prometheus.log"), "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={os.path.join(self.dir, 'prometheus.yml')}",
                f"--storage.tsdb.path={os.path.join(self.dir, 'data')}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-remote-write-receiver",
            ],
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        wait_port(self.port, timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError("prometheus did not become ready")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        self.proc = None
        self._log.close()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def remote_write(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1/write"

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10) as r:
            data = json.load(r)
        assert data["status"] == "success", data
        return list(data["data"]["result"])

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def wait_value(self, expr: str, want: float, timeout: float = 30.0) -> float | None:
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline:
            got = self.value(expr)
            if got == want:
                return got
            time.sleep(0.5)
        return got


def wait_records(path: str, n: int, timeout: float = 15.0) -> list[dict[str, Any]]:
    """The JSON lines of a roundtrip file once it holds `n` (or what it holds after `timeout`)."""
    deadline = time.monotonic() + timeout
    records: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path) as f:
                records = [json.loads(line) for line in f if line.strip()]
            if len(records) >= n:
                break
        time.sleep(0.2)
    return records


class AgentProcess:
    """`packetd agent --config FILE` in the background; stderr kept for diagnosis."""

    def __init__(self, config_text: str, env: dict[str, str] | None = None) -> None:
        self.dir = tempfile.mkdtemp(prefix="packetd-agent-")
        self.config_path = os.path.join(self.dir, "packetd.yaml")
        self.write_config(config_text)
        self.err_path = os.path.join(self.dir, "agent.err")
        self.out_path = os.path.join(self.dir, "agent.out")
        self._err = open(self.err_path, "wb")  # noqa: SIM115
        self._out = open(self.out_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "packetd", "agent", "--config", self.config_path],
            stdout=self._out, stderr=self._err, cwd=self.dir,
            env={**os.environ, "PYTHONPATH": PACKAGE_PATH, **(env or {})},
        )  # fmt: skip

    def write_config(self, text: str) -> None:
        with open(self.config_path, "w") as f:
            f.write(text)

    def wait_ready(self, port: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"agent exited {self.proc.returncode}: {self.stderr()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"agent not ready: {self.stderr()}")

    def stderr(self) -> str:
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self) -> int:
        stop_process(self.proc, timeout=60)
        self._err.close()
        self._out.close()
        return self.proc.returncode
