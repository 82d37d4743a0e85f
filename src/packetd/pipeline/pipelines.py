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
ships to the agent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from packetd.pairing.roundtrip import Roundtrip, dumps
from packetd.pipeline.filter import FilterConfigError, RoundtripsFilter
from packetd.pipeline.metrics import (
    LABEL_VALUE_BYTES,
    Aggregator,
    MetricsConfigError,
    RoundtripsToMetrics,
)
from packetd.pipeline.spans import RoundtripsToTraces, SpanData

ALLOWED = {
    "metrics": {"roundtripsfilter", "roundtripstometrics"},
    "traces": {"roundtripsfilter", "roundtripstotraces"},
    "roundtrips": {"roundtripsfilter"},
}
OUTPUT_PROCESSOR = {"metrics": "roundtripstometrics", "traces": "roundtripstotraces"}


class PipelineError(ValueError):
    pass


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
    ) -> None:
        by_name = {name: dict(cfg) for name, cfg in processors}
        chains = list(pipelines)
        kinds = {name.split("/", 1)[0] for name, _ in chains}
        if "metrics" not in kinds:
            chains.append(("metrics/default", ["roundtripstometrics"]))
        if "traces" not in kinds and traces_enabled:
            chains.append(("traces/default", ["roundtripstotraces"]))
        if "roundtrips" not in kinds and roundtrips_enabled:
            chains.append(("roundtrips/default", []))
        self.agg = Aggregator(vm=vm_histogram)
        self.spans: list[SpanData] = []
        self.lines: list[bytes] = []
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

    def process(self, rt: Roundtrip) -> None:
        for kind, filters, output in self._runs:
            for f in filters:
                if not f.accept(rt):
                    break
            else:
                if kind == "metrics":
                    output.process(rt, self.agg)
                elif kind == "traces":
                    span = output.process(rt)
                    if span is not None:
                        self.spans.append(span)
                else:
                    self.lines.append(dumps(rt))

    def filter_stats(self) -> dict[str, dict[str, Any]]:
        return {name: {"kept": f.kept, "dropped": dict(f.dropped)} for name, f in self.filters.items()}
