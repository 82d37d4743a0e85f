"""The agent's configuration: one YAML file, every key of the Go implementation (reference §2.2) plus ours.

Keys may be written nested or dotted (`sniffer.ifaces: any`), mixed freely; every section is optional and
has documented defaults (`packetd config` prints them all). Validation is done by pydantic models with
`extra="forbid"`: an unknown key, a wrong type or an out-of-range value stops start-up with a message that
names the key, the bad value and what is allowed, with a "did you mean" for typos. Keys the Go
implementation's sample files carry but ignore (`decoder.protocols`, `metricsStorage.enabled`) are dropped
with a warning.

Defaults differ from the Go implementation where its defaults were bugs (reference §18.25): the log level
is info (not debug), the log file is packetd.log, the server listens on 127.0.0.1:9091 (loopback; the chart
sets :9091) with a 1m timeout and is enabled in agent mode, the roundtrip file is packetd.roundtrips;
connExpired below 1m is an error, not a silent 5m.
"""

from __future__ import annotations

import difflib
import itertools
import os
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from packetd.units import parse_duration

# Keys the Go implementation's own sample files carry but never read (reference §2.2): warn, do not fail.
IGNORED_KEYS = {("decoder", "protocols"), ("metricsStorage", "enabled")}

# Bounds on what a config file may make the loader build (a YAML alias bomb of 450 bytes expands to
# billions of nodes): the reference config is ~10 KiB and ~600 nodes, a large rule and pathTemplates set a few
# thousand; these are 100 times that and still cost well under 100 MB and 1 s to load.
MAX_CONFIG_BYTES = 1024 * 1024  # file size
MAX_CONFIG_NODES = 100_000  # YAML nodes after expanding every alias (and merge key) in place
MAX_CONFIG_DEPTH = 64  # nesting of sections and lists (ours go 6 deep)


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key, the value and what is allowed."""


def _duration(value: object) -> int:
    """A duration in ns: a Go-style string ("5m", "1m30s"), or a number of seconds (reference §2.1)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m or 1h (a bare number is seconds)")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return int(value * 1_000_000_000)
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError("expected a duration such as 30s, 5m or 1h (a bare number is seconds)")


Duration = Annotated[int, BeforeValidator(_duration)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class LoggerConfig(_Section):
    stdout: bool = Field(
        True, description="log to the console (stderr); false: to the rotating file `filename`"
    )
    level: Literal["debug", "info", "warn", "error"] = "info"
    filename: str = "packetd.log"
    max_size: int = Field(100, alias="maxSize", ge=1, description="MB before rotation")
    max_age: int = Field(7, alias="maxAge", ge=1, description="days to keep rotated files")
    max_backups: int = Field(10, alias="maxBackups", ge=0)

    @field_validator("level", mode="before")
    @classmethod
    def _lower(cls, v: object) -> object:
        return v.lower() if isinstance(v, str) else v


class RuleConfig(_Section):
    name: str = ""
    protocol: str
    ports: list[Annotated[int, Field(ge=0, le=65535)]]
    host: str = ""


def _default_rules() -> list[RuleConfig]:
    """watch's rules (every protocol on its default ports): the agent's when the config names none."""
    from packetd.engine import default_rules

    return [RuleConfig(name=r.protocol, protocol=r.protocol, ports=list(r.ports)) for r in default_rules()]


class ProtocolsConfig(_Section):
    # `rules: []` written explicitly means the same as no rules: runtime.rules_from, and the log says so
    rules: list[RuleConfig] = Field(default_factory=_default_rules)
    detect: bool = Field(
        False,
        description="also detect protocols by content on ports no rule names (on anyway when no rules are "
        "configured); the kernel filter then passes all TCP and UDP",
    )


class SnifferConfig(_Section):
    file: str = Field("", description="read this capture file once instead of interfaces, then keep serving")
    ifaces: str = Field("any", description="'any' or a regex of interface names")
    engine: Literal["", "auto", "pcap", "afpacket", "libpcap"] = Field(
        "",
        description="as `watch --engine`: '' / 'auto' / 'pcap': AF_PACKET ring on Linux, libpcap elsewhere; "
        "'afpacket' or 'libpcap': that engine (capture/source.py resolve_engine)",
    )
    ip_version: Literal["", "v4", "v6"] = Field("", alias="ipVersion")
    no_promisc: bool = Field(False, alias="noPromisc")
    block_num: int = Field(
        16, alias="blockNum", ge=16, le=1024, description="ring blocks of 512 KiB per worker"
    )
    workers: int = Field(1, ge=1, le=64, description="capture processes in one PACKET_FANOUT_HASH group")
    user: str = Field(
        "", description="capture workers become this user once their socket is open ('' = stay as started)"
    )
    processes: bool = Field(
        True,
        description="name the process (pid, comm, exe, container) of each end that is a socket on this host "
        "in the roundtrip records (live capture on Linux; never for sniffer.file)",
    )
    max_memory_mb: int = Field(
        256,
        alias="maxMemoryMB",
        ge=4,
        le=1024 * 1024,
        description="memory budget of each worker's connection table, MiB (4.5 KiB a connection)",
    )
    protocols: ProtocolsConfig = ProtocolsConfig()


class KubernetesConfig(_Section):
    enabled: bool = Field(
        False,
        description="name the pod, workload, service and node of each address the Kubernetes API knows in "
        "the records (the agent watches pods, replicasets, jobs, services, endpointslices, nodes)",
    )
    api_server: str = Field(
        "",
        alias="apiServer",
        description="API server URL without credentials (kubectl proxy, tests); '' = in-cluster service "
        "account, else `kubeconfig`, else $KUBECONFIG / ~/.kube/config",
    )
    kubeconfig: str = Field("", description="kubeconfig file to use when apiServer is ''")
    sync_timeout: Duration = Field(
        10_000_000_000,
        alias="syncTimeout",
        description="at start, how long capture waits for the first complete list (then starts regardless)",
    )

    @field_validator("api_server")
    @classmethod
    def _url(cls, v: str) -> str:
        if v and not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("expected an http:// or https:// URL, e.g. http://127.0.0.1:8001")
        return v


class ServerConfig(_Section):
    enabled: bool = True
    address: str = Field("127.0.0.1:9091", description="loopback by default; ':9091' for every interface")
    timeout: Duration = Field(60_000_000_000, description="read/write timeout of a request (not of /watch)")
    pprof: bool = Field(False, description="accepted for compatibility; a Go feature, ignored")
    admin_token: str = Field(
        "",
        alias="adminToken",
        description="bearer token for admin routes from non-loopback clients; '' = loopback only",
    )

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        _host, sep, port = v.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("expected HOST:PORT or :PORT, e.g. :9091 or 127.0.0.1:9091")
        return v


class Layer4Config(_Section):
    enabled: bool = False
    required_labels: list[Literal["source.host", "source.port", "destination.host", "destination.port"]] = (
        Field([], alias="requiredLabels")
    )


class ControllerConfig(_Section):
    layer4_metrics: Layer4Config = Field(Layer4Config(), alias="layer4Metrics")
    conn_expired: Duration = Field(300_000_000_000, alias="connExpired")
    auto_reload: bool = Field(False, alias="autoReload", description="reload when the config file changes")
    drain_timeout: Duration = Field(
        20_000_000_000,
        alias="drainTimeout",
        description="on SIGTERM: time to ship what is pending before the process exits regardless",
    )
    decoder: dict[str, dict[str, Any]] = Field(
        {}, description="per protocol decoder options, e.g. decoder.http.capture_body: 4096"
    )

    @field_validator("conn_expired")
    @classmethod
    def _min_expiry(cls, v: int) -> int:
        if v < 1_000_000_000:
            raise ValueError("must be at least 1s")
        return v


class MetricsStorageConfig(_Section):
    expired: Duration = Field(300_000_000_000, description="series idle longer than this are dropped")
    vm_histogram: bool = Field(False, alias="vmHistogram", description="VictoriaMetrics vmrange histograms")
    naming: Literal["packetd", "otel"] = Field(
        "packetd", description="'packetd': the Go implementation's names; 'otel': semantic-convention names"
    )
    series_limit: int = Field(
        10_000,
        alias="seriesLimit",
        ge=1,
        description="series per metric; beyond it new label sets fold into __overflow__",
    )
    # budgets of one scrape (agent/storage.py; measured in BENCHMARKS.md, bench/scrape_flood.py)
    protocol_series_limit: dict[str, Annotated[int, Field(ge=1)]] = Field(
        {}, alias="protocolSeriesLimit", description="seriesLimit per protocol, e.g. {http: 500}"
    )
    label_value_limit: dict[str, Annotated[int, Field(ge=1)]] = Field(
        {"path": 1000},
        alias="labelValueLimit",
        description="distinct values per label and metric; beyond it the value is __overflow__",
    )
    max_label_bytes: int = Field(
        256, alias="maxLabelBytes", ge=32, le=65536, description="longer label values are cut and marked"
    )
    max_scrape_mb: float = Field(
        6.0, alias="maxScrapeMB", gt=0, le=1024, description="estimated size of /protocol/metrics"
    )


class ProcessorConfig(_Section):
    name: Literal["roundtripstometrics", "roundtripstotraces", "roundtripsfilter"]
    config: dict[str, Any] = {}


class PipelineConfig(_Section):
    name: str
    processors: list[str]

    @field_validator("name")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v.split("/", 1)[0] not in ("metrics", "traces", "roundtrips"):
            raise ValueError(
                "must start with metrics/, traces/ or roundtrips/ (the output the pipeline feeds)"
            )
        return v


OtlpProtocol = Literal["http/protobuf", "grpc"]  # the values of OTEL_EXPORTER_OTLP_PROTOCOL we speak


class TracesExporterConfig(_Section):
    enabled: bool = False
    endpoint: str = "http://localhost:4318/v1/traces"
    batch: int = Field(100, ge=1, le=100_000)
    interval: Duration = 3_000_000_000
    timeout: Duration = 15_000_000_000
    header: dict[str, str] = {}
    gzip: bool = True
    queue_size: int = Field(
        10_000, alias="queueSize", ge=1, description="spans held while the backend is slow or down"
    )


class MetricsExporterConfig(_Section):
    enabled: bool = False
    endpoint: str = "http://localhost:9090/api/v1/write"
    interval: Duration = 60_000_000_000
    timeout: Duration = 15_000_000_000
    header: dict[str, str] = {}
    queue_size: int = Field(
        10, alias="queueSize", ge=1, le=10_000, description="snapshots held while the backend is down"
    )


class RemoteWriteExporterConfig(MetricsExporterConfig):
    """Prometheus remote write: the periodic exporter's keys plus the series' identity."""

    external_labels: dict[str, str] = Field(
        {},
        alias="externalLabels",
        description="labels on every remote-written series (besides job=packetd, instance=node)",
    )

    @field_validator("external_labels")
    @classmethod
    def _label_names(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            if not re.match(r"^[a-zA-Z_][a-zA-Z0-9_]*$", name) or name.startswith("__"):
                raise ValueError(
                    f"'{name}' is not a label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"
                )
        return v


class RoundtripsExporterConfig(_Section):
    enabled: bool = False
    console: bool = False
    filename: str = "packetd.roundtrips"
    max_size: int = Field(100, alias="maxSize", ge=1)
    max_backups: int = Field(10, alias="maxBackups", ge=0)
    max_age: int = Field(7, alias="maxAge", ge=1)


class OtlpMetricsExporterConfig(MetricsExporterConfig):
    """OTLP metrics: the semconv duration histograms (pipeline/otlp_metrics.py), cumulative; the remote
    write keys plus the OTLP ones."""

    protocol: OtlpProtocol = "http/protobuf"
    endpoint: str = Field(
        "http://localhost:4318/v1/metrics", description="for grpc: http://HOST:4317 (https: TLS)"
    )
    gzip: bool = True
    series_limit: int = Field(
        10_000, alias="seriesLimit", ge=1, le=1_000_000, description="series per metric; beyond: overflow"
    )
    buckets: list[Annotated[float, Field(gt=0)]] = Field(
        [], description="histogram bounds in seconds; [] = 25µs … 60s in 1-2.5-5 steps"
    )

    @field_validator("buckets")
    @classmethod
    def _increasing(cls, v: list[float]) -> list[float]:
        if any(b <= a for a, b in itertools.pairwise(v)):
            raise ValueError("bucket bounds must increase, e.g. [0.0001, 0.001, 0.01, 0.1, 1]")
        return v


class OtlpLogsExporterConfig(TracesExporterConfig):
    """OTLP logs: one log record per roundtrip of the roundtrips/ pipelines (the record as its body);
    batched and queued like spans."""

    protocol: OtlpProtocol = "http/protobuf"
    endpoint: str = Field("http://localhost:4318/v1/logs", description="for grpc: http://HOST:4317")


class ExporterConfig(_Section):
    traces: TracesExporterConfig = TracesExporterConfig()
    metrics: RemoteWriteExporterConfig = RemoteWriteExporterConfig()
    roundtrips: RoundtripsExporterConfig = RoundtripsExporterConfig()
    otlp_metrics: OtlpMetricsExporterConfig = Field(OtlpMetricsExporterConfig(), alias="otlpMetrics")
    otlp_logs: OtlpLogsExporterConfig = Field(OtlpLogsExporterConfig(), alias="otlpLogs")

    @field_validator("traces", "metrics", "otlp_metrics", "otlp_logs")
    @classmethod
    def _endpoint(cls, v: Any) -> Any:
        if not re.match(r"^https?://[^/\s]+", v.endpoint):
            raise ValueError(f"endpoint '{v.endpoint}' is not an http(s) URL")
        if getattr(v, "protocol", None) == "grpc" and not _grpc_exporter_installed():
            raise ValueError(
                "protocol grpc needs the package opentelemetry-exporter-otlp-proto-grpc "
                "(pip install 'packetd[grpc]'); or use protocol http/protobuf"
            )
        return v


def _grpc_exporter_installed() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("opentelemetry.exporter.otlp.proto.grpc") is not None
    except ImportError:  # a parent package is missing
        return False


class Config(_Section):
    logger: LoggerConfig = LoggerConfig()
    sniffer: SnifferConfig = SnifferConfig()
    server: ServerConfig = ServerConfig()
    controller: ControllerConfig = ControllerConfig()
    metrics_storage: MetricsStorageConfig = Field(MetricsStorageConfig(), alias="metricsStorage")
    processor: list[ProcessorConfig] = []
    pipeline: list[PipelineConfig] = []
    exporter: ExporterConfig = ExporterConfig()
    kubernetes: KubernetesConfig = KubernetesConfig()

    @model_validator(mode="after")
    def _pipelines_name_processors(self) -> Config:
        defined = {p.name for p in self.processor}
        for pipe in self.pipeline:
            for name in pipe.processors:
                if name not in defined:
                    raise ValueError(
                        f"pipeline '{pipe.name}' uses processor '{name}', which the processor section does not "
                        f"define (defined: {', '.join(sorted(defined)) or 'none'})"
                    )
        return self


# -- loading ------------------------------------------------------------------------------------------------------
def expand_dotted(tree: Any, path: str = "") -> Any:
    """`{"a.b": 1, "a": {"c": 2}}` → `{"a": {"b": 1, "c": 2}}`, recursively; a conflict is an error."""
    if isinstance(tree, list):
        return [expand_dotted(v, path) for v in tree]
    if not isinstance(tree, dict):
        return tree
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if not isinstance(key, str):
            raise ConfigError(f"key {key!r} at '{path or '<top>'}' is not a string")
        parts = key.split(".")
        node = out
        where = path
        for part in parts[:-1]:
            where = f"{where}.{part}" if where else part
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"'{where}' is both a value and a section")
            node = nxt
        leaf = parts[-1]
        full = f"{where}.{leaf}" if where else leaf
        _set(node, leaf, expand_dotted(value, full), full)
    return out


def _set(node: dict[str, Any], key: str, value: Any, path: str) -> None:
    """`node[key] = value`, merging two sections; a value given twice is an error."""
    if key in node and isinstance(node[key], dict) and isinstance(value, dict):
        node[key] = _merge(node[key], value, path)
    elif key in node:
        raise ConfigError(f"'{path}' is set twice")
    else:
        node[key] = value


def _merge(a: dict[str, Any], b: dict[str, Any], path: str) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        _set(out, k, v, f"{path}.{k}")
    return out


def _drop_ignored(tree: dict[str, Any], warnings: list[str]) -> None:
    for section, key in IGNORED_KEYS:
        node = tree.get(section)
        if isinstance(node, dict) and key in node:
            del node[key]
            if section == "decoder" and not node:
                del tree["decoder"]  # not a section of ours: nothing of it may remain
            warnings.append(f"'{section}.{key}' is ignored (the Go implementation never read it either)")
    ctl = tree.get("controller")
    if isinstance(ctl, dict) and isinstance(ctl.get("decoder"), dict) and "protocols" in ctl["decoder"]:
        del ctl["decoder"]["protocols"]
        warnings.append("'controller.decoder.protocols' is ignored (rules live in sniffer.protocols.rules)")


def _allowed_keys(model: type[BaseModel]) -> list[str]:
    return sorted((f.alias or name) for name, f in model.model_fields.items())


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = Config
    for part in loc[:-1]:
        if model is None or isinstance(part, int):
            continue
        field = next((f for n, f in model.model_fields.items() if part in (n, f.alias)), None)
        if field is None:
            return None
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        nested = next((a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        model = nested
    return model


def _format_error(err: Mapping[str, Any], raw: Any) -> str:
    loc = tuple(err["loc"])
    key = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc).replace(".[", "[")
    value = raw
    for part in loc:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            value = None
            break
    if err["type"] == "extra_forbidden":
        model = _model_at(loc)
        allowed = _allowed_keys(model) if model is not None else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"unknown key '{key}'{hint}; allowed here: {', '.join(allowed)}"
    msg = str(err["msg"])
    if err["type"] == "literal_error":
        msg = "expected one of " + msg.split("Input should be ", 1)[-1]
    msg = msg.removeprefix("Value error, ")
    if not loc:
        return msg
    shown = f" {value!r}" if value is not None else ""
    return f"'{key}':{shown} is invalid: {msg}"


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing documents that expand beyond MAX_CONFIG_NODES or MAX_CONFIG_DEPTH.

    Aliases make the composed node graph a DAG: it stays small while the tree it stands for (what
    `expand_dotted` and pydantic walk) can be exponential. The document's expanded size is counted on the
    graph before anything is constructed, each shared node once (memoised), so the check itself is cheap.
    An alias to one of its own ancestors (a recursive document) is refused too.
    """

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        # the composer recurses once per level: stop at the bound, long before Python's recursion limit
        self._depth += 1
        try:
            if self._depth > MAX_CONFIG_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise ConfigError(f"line {mark.line + 1}: nested more than {MAX_CONFIG_DEPTH} levels deep")
            node: yaml.Node | None = super().compose_node(parent, index)
            return node
        finally:
            self._depth -= 1

    def compose_document(self) -> yaml.Node | None:
        node: yaml.Node | None = super().compose_document()
        if node is not None:
            _expanded_size(node, {}, set(), 0)
        return node


def _expanded_size(node: yaml.Node, memo: dict[int, int], active: set[int], depth: int) -> int:
    key = id(node)
    done = memo.get(key)
    if done is not None:
        return done
    if key in active:
        raise ConfigError(f"line {node.start_mark.line + 1}: an alias refers to a node that contains it")
    if depth > MAX_CONFIG_DEPTH:
        raise ConfigError(f"line {node.start_mark.line + 1}: nested more than {MAX_CONFIG_DEPTH} levels deep")
    active.add(key)
    size = 1
    if isinstance(node, yaml.SequenceNode):
        for child in node.value:
            size += _expanded_size(child, memo, active, depth + 1)
            if size > MAX_CONFIG_NODES:
                break
    elif isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            size += _expanded_size(k, memo, active, depth + 1) + _expanded_size(v, memo, active, depth + 1)
            if size > MAX_CONFIG_NODES:
                break
    if size > MAX_CONFIG_NODES:
        raise ConfigError(
            f"expands to more than {MAX_CONFIG_NODES} YAML nodes (aliases expanded), e.g. an alias bomb;"
            " write the values out or shorten the file"
        )
    active.discard(key)
    memo[key] = size
    return size


def _yaml_error(exc: yaml.YAMLError) -> str:
    """One line: where and what (PyYAML's own message spans several lines, with a source excerpt)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"not valid YAML{where}: {problem}"


def parse_config(text: str, source: str = "config") -> tuple[Config, list[str]]:
    """YAML text → (Config, warnings); ConfigError with every problem, one per line."""
    try:
        raw = yaml.load(text, Loader=_BoundedLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: {_yaml_error(exc)}") from None
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested more than {MAX_CONFIG_DEPTH} levels deep") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections")
    # empty sections (`server:` with nothing under it) mean defaults, as in the Go implementation
    tree = expand_dotted({k: v for k, v in raw.items() if v is not None})
    tree = {k: v for k, v in tree.items() if v is not None}
    warnings: list[str] = []
    _drop_ignored(tree, warnings)
    try:
        return Config.model_validate(tree), warnings
    except ValidationError as exc:
        problems = [_format_error(e, tree) for e in exc.errors()]
        if len(problems) == 1:
            raise ConfigError(f"{source}: {problems[0]}") from None  # one problem, one line
        raise ConfigError(
            f"{source}: " + ("\n  ".join([f"{len(problems)} problem(s):", *problems]))
        ) from None


def load_config(path: str) -> tuple[Config, list[str]]:
    """Read, parse and check a config file (start-up and every reload): ConfigError naming the problem.

    Beyond the schema (`parse_config`) this checks what only the file's context can show: every
    processor's settings, whether or not a pipeline uses it now (a reload may start using it), and that the
    files the agent will write can be written (`check_config`).
    """
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"config {path} is larger than {MAX_CONFIG_BYTES // 1024} KiB; is it the right file?"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"config {path} is not UTF-8: byte 0x{data[exc.start]:02x} at line {line} (offset {exc.start});"
            " save it as UTF-8"
        ) from None
    config, warnings = parse_config(text, path)
    check_config(config, path)
    return config, warnings


def check_config(config: Config, source: str = "config") -> None:
    """The checks beyond the schema that need the processors' own parsers or the file system."""
    for i, proc in enumerate(config.processor):
        problem = _processor_problem(proc, f"processor[{i}]")
        if problem:
            raise ConfigError(f"{source}: {problem}")
    if config.exporter.roundtrips.enabled and not config.exporter.roundtrips.console:
        _check_writable(config.exporter.roundtrips.filename, "exporter.roundtrips.filename", source)
    if not config.logger.stdout:
        _check_writable(config.logger.filename, "logger.filename", source)


def _processor_problem(proc: ProcessorConfig, where: str) -> str:
    # imported here: the processors import the protocol registry, which the schema above does not need
    from packetd.pipeline.filter import FilterConfigError, RoundtripsFilter
    from packetd.pipeline.metrics import MetricsConfigError, RoundtripsToMetrics, replacement_problem
    from packetd.pipeline.spans import RoundtripsToTraces
    from packetd.protocols.registry import REGISTRY

    templates = proc.config.get("pathTemplates")
    if proc.name == "roundtripstometrics" and isinstance(templates, list):
        for j, entry in enumerate(templates):
            regex = entry.get("regex") if isinstance(entry, dict) else None
            if isinstance(regex, str):
                try:
                    rx = re.compile(regex)
                except re.error as exc:
                    return (
                        f"'{where}.config.pathTemplates[{j}].regex': {regex!r} is not a valid regular"
                        f" expression: {exc}"
                    )
                repl = entry.get("replacement")
                problem = replacement_problem(rx, repl) if isinstance(repl, str) else ""
                if problem:
                    return (
                        f"'{where}.config.pathTemplates[{j}].replacement': {repl!r} does not fit its regex"
                        f" {regex!r}: {problem}"
                    )
    try:
        if proc.name == "roundtripsfilter":
            RoundtripsFilter(proc.config)
        elif proc.name == "roundtripstometrics":
            RoundtripsToMetrics(dict(proc.config), REGISTRY.names())
        else:
            RoundtripsToTraces(dict(proc.config))
    except re.error as exc:
        return f"'{where}' ({proc.name}): a regular expression is not valid: {exc}"
    except (FilterConfigError, MetricsConfigError, ValueError, TypeError) as exc:
        return f"'{where}' ({proc.name}): {exc}"
    return ""


def _check_writable(path: str, key: str, source: str) -> None:
    """`path` can be opened for appending: it is a writable file, or can be created (with its missing
    directories, as the writers do) below a writable directory. Nothing is created here."""
    problem = ""
    if os.path.isdir(path):
        problem = "is a directory"
    elif os.path.exists(path):
        if not os.access(path, os.W_OK):
            problem = "is not writable"
    else:
        parent = os.path.dirname(os.path.abspath(path))
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if not os.path.isdir(parent):
            problem = f"cannot be created: {parent} is not a directory"
        elif not os.access(parent, os.W_OK | os.X_OK):
            problem = f"cannot be created: directory {parent} is not writable"
    if problem:
        raise ConfigError(f"{source}: '{key}': '{path}' {problem}")
