"""Pipelines: named chains of processors, each feeding one output.

    pipeline:
      - name: metrics/common       # → the metric store (counters, histograms)
        processors: [roundtripstometrics]
      - name: traces/sampled       # → the OTLP exporter
        processors: [roundtripsfilter, roundtripstotraces]
      - name: roundtrips/errors    # → the roundtrip log exporter (JSON lines)
        processors: [roundtripsfilter]

The prefix of a pipeline's name says which output it feeds; processors run in order and a filter stops a
roundtrip for the rest of its own pipeline only, so metrics see every roundtrip unless a filter is placed
in a metrics pipeline. Where the config defines no pipeline of a kind, a default one is used: metrics
always, traces when the traces exporter is enabled, roundtrips when the roundtrips exporter is enabled.
Traces pipelines are not built at all without an enabled trace exporter (no span is computed for nothing).

Pure: it runs inside capture workers; outputs are collected in `agg`, `spans` and `lines`, which the worker
ships to the agent. Two OpenTelemetry-native outputs ride on the same pipelines when enabled: OTLP metrics
(semconv histograms, `otlp`) on the metrics pipelines, OTLP log records (`logs`: the record's JSON line
with its trace and span ids) on the roundtrips pipelines.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from packetd._values import value
from packetd.pairing.roundtrip import Roundtrip, dumps
from packetd.pipeline.filter import FilterConfigError, RoundtripsFilter
from packetd.pipeline.metrics import (
    LABEL_VALUE_BYTES,
    Aggregator,
    MetricsConfigError,
    RoundtripsToMetrics,
)
from packetd.pipeline.otlp_metrics import DEFAULT_BOUNDS, OtlpMetricsAggregator
from packetd.pipeline.spans import RoundtripsToTraces, SpanData, trace_context

ALLOWED = {
    "metrics": {"roundtripsfilter", "roundtripstometrics"},
    "traces": {"roundtripsfilter", "roundtripstotraces"},
    "roundtrips": {"roundtripsfilter"},
}
OUTPUT_PROCESSOR = {"metrics": "roundtripstometrics", "traces": "roundtripstotraces"}


class PipelineError(ValueError):
    pass


@value
class LogEntry:
    """One roundtrip for the OTLP logs exporter: its record line (the redacted view) and the ids of its span."""

    line: bytes
    trace_id: int
    span_id: int
    trace_flags: int
    start_ns: int
    error: bool


def log_entry(rt: Roundtrip, line: bytes) -> LogEntry:
    """The ids are the span's: the wire's trace id when it carried a context, the hashed ids otherwise."""
    trace_id, span_id, _, flags = trace_context(rt)
    return LogEntry(line, trace_id, span_id, flags, rt.start_ns, bool(rt.error))


class Pipelines:
    def __init__(
        self,
        processors: Sequence[tuple[str, Mapping[str, Any]]],
        pipelines: Sequence[tuple[str, Sequence[str]]],
        traces_enabled: bool,
        roundtrips_enabled: bool,
        vm_histogram: bool = False,
        protocols: Iterable[str] = (),
        label_bytes: int = LABEL_VALUE_BYTES,
        naming: str = "packetd",
        otlp_metrics_bounds: Sequence[float] | None = None,
        otlp_logs: bool = False,
    ) -> None:
        by_name = {name: dict(cfg) for name, cfg in processors}
        chains = list(pipelines)
        kinds = {name.split("/", 1)[0] for name, _ in chains}
        if "metrics" not in kinds:
            chains.append(("metrics/default", ["roundtripstometrics"]))
        if "traces" not in kinds and traces_enabled:
            chains.append(("traces/default", ["roundtripstotraces"]))
        self._lines_on, self._logs_on = roundtrips_enabled, otlp_logs
        roundtrips_enabled = roundtrips_enabled or otlp_logs  # both consume the roundtrips pipelines
        if "roundtrips" not in kinds and roundtrips_enabled:
            chains.append(("roundtrips/default", []))
        self.agg = Aggregator(vm=vm_histogram)
        self.spans: list[SpanData] = []
        self.lines: list[bytes] = []
        self.logs: list[LogEntry] = []
        self.otlp: OtlpMetricsAggregator | None = None
        if otlp_metrics_bounds is not None:
            try:
                self.otlp = OtlpMetricsAggregator(otlp_metrics_bounds or DEFAULT_BOUNDS)
            except ValueError as exc:
                raise PipelineError(f"exporter.otlpMetrics.{exc}") from None
        self.filters: dict[str, RoundtripsFilter] = {}
        self._runs: list[tuple[str, list[RoundtripsFilter], Any]] = []
        protocols = list(protocols)
        for i, (name, procs) in enumerate(chains):
            kind = name.split("/", 1)[0]
            if kind == "traces" and not traces_enabled:
                continue
            if kind == "roundtrips" and not roundtrips_enabled:
                continue
            filters: list[RoundtripsFilter] = []
            output: Any = None
            for proc in procs:
                if proc not in ALLOWED[kind]:
                    raise PipelineError(
                        f"pipeline[{i}] '{name}': processor '{proc}' cannot feed a {kind} pipeline; allowed: {', '.join(sorted(ALLOWED[kind]))}"
                    )
                cfg = by_name.get(proc, {})
                try:
                    if proc == "roundtripsfilter":
                        f = RoundtripsFilter(cfg)
                        self.filters[f"{name}#{len(filters)}"] = f
                        filters.append(f)
                    elif proc == "roundtripstometrics":
                        output = RoundtripsToMetrics(cfg, protocols, label_bytes, naming, traces_enabled)
                    else:
                        output = RoundtripsToTraces(cfg)
                except (FilterConfigError, MetricsConfigError, ValueError) as exc:
                    raise PipelineError(f"processor '{proc}' (pipeline '{name}'): {exc}") from None
            if kind in OUTPUT_PROCESSOR and output is None:
                raise PipelineError(
                    f"pipeline[{i}] '{name}' has no {OUTPUT_PROCESSOR[kind]} processor: it would output nothing"
                )
            self._runs.append((kind, filters, output))

    def process(self, rt: Roundtrip) -> bytes | None:
        """Run the record through every pipeline; its JSON line when a lines or logs pipeline made it (the
        caller reuses it rather than serialising the record again), else None."""
        # the record's redacted JSON, built once per roundtrip for every output that reads it (spans, OTLP
        # metrics, lines, logs) and not at all when only the Prometheus metrics run
        rec: dict[str, Any] | None = None
        made: bytes | None = None
        for kind, filters, output in self._runs:
            for f in filters:
                if not f.accept(rt):
                    break
            else:
                if kind == "metrics":
                    output.process(rt, self.agg)
                    if self.otlp is not None:
                        rec = rec or rt.to_json()
                        self.otlp.process(rt, rec)
                elif kind == "traces":
                    rec = rec or rt.to_json()
                    span = output.process(rt, rec)
                    if span is not None:
                        self.spans.append(span)
                else:
                    rec = rec or rt.to_json()
                    line = made = made or dumps(rt, rec)
                    if self._lines_on:
                        self.lines.append(line)
                    if self._logs_on:
                        self.logs.append(log_entry(rt, line))
        return made

    def filter_stats(self) -> dict[str, dict[str, Any]]:
        return {name: {"kept": f.kept, "dropped": dict(f.dropped)} for name, f in self.filters.items()}
