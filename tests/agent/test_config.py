"""Agent configuration: the reference file, dotted/nested keys, and a clear message for each kind of mistake."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from packetd.agent.config import Config, ConfigError, parse_config
from packetd.agent.runtime import options_from, pipelines_from, rules_from, validate
from packetd.protocols.http1.options import HttpOptions
from packetd.protocols.registry import REGISTRY
from tests.helpers.build import PACKAGE_PATH
from tests.helpers.golden import ROOT


def packetd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "packetd", *args], capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
        env={**os.environ, "PYTHONPATH": PACKAGE_PATH},
    )  # fmt: skip


def test_reference_config_is_complete_and_states_the_real_defaults() -> None:
    text = packetd("config").stdout
    cfg, warnings = parse_config(text)
    assert warnings == []
    assert cfg == Config()  # every default the reference states is the code's default
    # and it names every key the schema has (recursively, by alias)

    def keys(model: type, prefix: str = "") -> set[str]:
        out = set()
        for name, field in model.model_fields.items():  # type: ignore[attr-defined]
            key = f"{prefix}{field.alias or name}"
            out.add(key)
            ann = field.annotation
            if isinstance(ann, type) and hasattr(ann, "model_fields"):
                out |= keys(ann, key + ".")
        return out

    for key in keys(Config):
        leaf = key.rsplit(".", 1)[-1]
        assert f"{leaf}:" in text, f"packetd config does not document {key}"


def test_dotted_and_nested_keys_mix() -> None:
    cfg, _ = parse_config(
        """
sniffer.ifaces: eth0
sniffer:
  blockNum: 32
  protocols.rules:
    - {name: web, protocol: http, ports: [80, 8080], host: 127.0.0.1}
controller.layer4Metrics.enabled: true
controller:
  connExpired: 90          # a bare number is seconds
exporter.traces:
  enabled: true
  interval: 500ms
server:                    # an empty section means its defaults
"""
    )
    assert cfg.sniffer.ifaces == "eth0" and cfg.sniffer.block_num == 32
    assert cfg.controller.layer4_metrics.enabled and cfg.controller.conn_expired == 90_000_000_000
    assert cfg.exporter.traces.enabled and cfg.exporter.traces.interval == 500_000_000
    assert cfg.server.address == "127.0.0.1:9091" and cfg.server.enabled  # issue 14: loopback by default
    (rule,) = rules_from(cfg)
    assert rule.protocol == "http" and rule.ports == (80, 8080) and rule.host == "127.0.0.1"


def test_a_go_implementation_config_loads_with_warnings_for_its_ignored_keys() -> None:
    # the shape of the Go implementation's packetd.yaml and deploy ConfigMap (reference §2.4, §14)
    cfg, warnings = parse_config(
        """
logger:
  stdout: true
  level: debug
server:
  enabled: true
  address: ":9091"
  timeout: 1m
  pprof: true
controller:
  layer4Metrics.enabled: true
  connExpired: 5m
decoder.protocols: [http, amqp]
sniffer:
  ifaces: any
  engine: pcap
  ipVersion: ""
  blockNum: 64
  protocols.rules:
    - name: "0"
      protocol: http
      ports: [80]
metricsStorage:
  expired: 5m
  vmHistogram: true
  enabled: true
processor:
  - name: roundtripstometrics
    config:
      http:
        requireLabels: [server.address, server.port, client.address, request.method, request.path, response.status_code]
  - name: roundtripstotraces
pipeline:
  - name: traces/common
    processors: [roundtripstotraces]
  - name: metrics/common
    processors: [roundtripstometrics]
exporter:
  traces: {enabled: false, endpoint: "http://localhost:4318/v1/traces", batch: 10, interval: 3s}
  metrics: {enabled: false, endpoint: "http://localhost:8428/api/v1/write", interval: 15s}
  roundtrips: {enabled: true, console: true, maxAge: 30}
"""
    )
    assert sorted(warnings) == sorted(
        [
            "'decoder.protocols' is ignored (the Go implementation never read it either)",
            "'metricsStorage.enabled' is ignored (the Go implementation never read it either)",
        ]
    )
    validate(cfg)
    assert cfg.metrics_storage.vm_histogram and cfg.sniffer.block_num == 64


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "snifer.ifaces: x",
            "unknown key 'snifer' (did you mean 'sniffer'?); allowed here: controller, exporter, kubernetes, logger, metricsStorage, pipeline, processor, server, sniffer",
        ),
        ("sniffer: {ifacs: x}", "unknown key 'sniffer.ifacs' (did you mean 'ifaces'?)"),
        (
            "sniffer.blockNum: 8",
            "'sniffer.blockNum': 8 is invalid: Input should be greater than or equal to 16",
        ),
        ("sniffer.blockNum: lots", "'sniffer.blockNum': 'lots' is invalid: Input should be a valid integer"),
        (
            "logger.level: loud",
            "'logger.level': 'loud' is invalid: expected one of 'debug', 'info', 'warn' or 'error'",
        ),
        (
            "server.address: localhost",
            "'server.address': 'localhost' is invalid: expected HOST:PORT or :PORT",
        ),
        (
            "controller.connExpired: 500ms",
            "'controller.connExpired': '500ms' is invalid: must be at least 1s",
        ),
        (
            "controller.connExpired: soon",
            "'controller.connExpired': 'soon' is invalid: invalid duration 'soon'",
        ),
        ("exporter.traces.endpoint: localhost:4318", "endpoint 'localhost:4318' is not an http(s) URL"),
        ("sniffer.workers: 0", "'sniffer.workers': 0 is invalid: Input should be greater than or equal to 1"),
        ("sniffer.ipVersion: v5", "'sniffer.ipVersion': 'v5' is invalid: expected one of '', 'v4' or 'v6'"),
        (
            "sniffer.protocols.rules: [{protocol: http, ports: [70000]}]",
            "'sniffer.protocols.rules[0].ports[0]': 70000 is invalid",
        ),
        (
            "pipeline: [{name: metrics/x, processors: [nope]}]",
            "pipeline 'metrics/x' uses processor 'nope', which the processor section does not define",
        ),
        ("pipeline: [{name: logs/x, processors: []}]", "must start with metrics/, traces/ or roundtrips/"),
        ("sniffer.ifaces: x\nsniffer: {ifaces: y}", "'sniffer.ifaces' is set twice"),
        ("[1, 2]", "the top level must be a mapping of sections"),
        ("sniffer: {ifaces: [", "not valid YAML"),
        ("metricsStorage.maxLabelBytes: 8", "'metricsStorage.maxLabelBytes': 8 is invalid"),
        ("metricsStorage.labelValueLimit: {path: 0}", "'metricsStorage.labelValueLimit.path': 0 is invalid"),
        ("metricsStorage.maxScrapeMB: 0", "'metricsStorage.maxScrapeMB': 0 is invalid"),
        ("metricsStorage.naming: semconv", "'metricsStorage.naming': 'semconv' is invalid: expected one of"),
    ],
)
def test_each_kind_of_mistake_names_the_key_and_what_is_allowed(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(text)
    assert message in str(exc.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "sniffer.protocols.rules: [{protocol: htp, ports: [80]}]",
            f"'sniffer.protocols.rules[0].protocol': 'htp' is invalid: unsupported protocol; known: {', '.join(REGISTRY.names())}",
        ),
        (
            "controller.decoder.http.capture_bdy: 1",
            "unknown decoder option http.capture_bdy (did you mean 'capture_body'?)",
        ),
        (
            "controller.decoder.http.capture_body: lots",
            "decoder option http.capture_body: 'lots' is not an integer",
        ),
        (
            "processor: [{name: roundtripstometrics, config: {http: {requireLabels: [request.verb]}}}]",
            "unknown label 'request.verb'; allowed: client.address, client.port, server.address, server.port, request.method",
        ),
        (
            "processor: [{name: roundtripsfilter, config: {sampling: {ratio: 2}}}, {name: roundtripstometrics}]\npipeline: [{name: metrics/x, processors: [roundtripsfilter, roundtripstometrics]}]",
            "ratio: 2.0 is not between 0 and 1",
        ),
        (
            "processor: [{name: roundtripstotraces}]\npipeline: [{name: metrics/x, processors: [roundtripstotraces]}]",
            "processor 'roundtripstotraces' cannot feed a metrics pipeline",
        ),
        ("sniffer.file: /nonexistent.pcap", "'sniffer.file': '/nonexistent.pcap' cannot be read"),
        ("sniffer.ifaces: 'eth[0'", "'sniffer.ifaces': 'eth[0' is not a valid regex"),
        (
            "processor: [{name: roundtripstometrics, config: {redis: {buckets: {duration: [1ms, 100us]}}}}]",
            "roundtripstometrics.redis.buckets.duration: upper bounds must increase strictly",
        ),
    ],
)
def test_semantic_mistakes_are_caught_before_anything_starts(text: str, message: str) -> None:
    cfg, _ = parse_config(text)
    with pytest.raises(ConfigError) as exc:
        validate(cfg)
    assert message in str(exc.value)


def test_decoder_options_in_our_keys_and_the_go_keys() -> None:
    cfg, _ = parse_config(
        "controller.decoder.http: {enableBodyCapture: true, maxBodySize: 2048, redact: [cookie]}"
    )
    assert options_from(cfg)["http"] == HttpOptions(capture_body=2048, redact=frozenset({"cookie"}))
    cfg, _ = parse_config("controller.decoder.http.captureBody: 16")
    assert options_from(cfg)["http"] == HttpOptions(capture_body=16)


def test_default_pipelines() -> None:
    cfg, _ = parse_config("exporter.traces.enabled: true")
    kinds = [kind for kind, _f, _o in pipelines_from(cfg)._runs]
    assert kinds == ["metrics", "traces"]
    assert [k for k, _f, _o in pipelines_from(Config())._runs] == ["metrics"]  # no span is built for nothing


def test_agent_refuses_a_bad_config_with_exit_status_2(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "bad.yaml")
    with open(path, "w") as f:
        f.write("sniffer:\n  blockNum: 3\nlogger.lvl: info\n")
    r = packetd("agent", "--config", path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert (
        "'sniffer.blockNum': 3 is invalid" in r.stderr
        and "unknown key 'logger.lvl' (did you mean 'level'?)" in r.stderr
    )
    r = packetd("agent", "--config", "/nonexistent/packetd.yaml")
    assert r.returncode == 2 and "cannot read config /nonexistent/packetd.yaml" in r.stderr


# -- hostile files: one line on stderr naming the file or key and what is allowed, exit status 2 -------------
# Each runs the real CLI twice: `agent --config` (which must refuse before starting anything) and
# `config --check`. The agent is kept to loopback in case a check is missing (it would then start, and the
# test fail on its timeout or exit status).
CONTAINED = "server.address: '127.0.0.1:0'\nsniffer.ifaces: lo\n"
# 9 aliases per level, 9 levels: 9**9 (387 million) strings once expanded, from 388 bytes (the issue's: 450)
ALIAS_BOMB = "a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)
MERGE_BOMB = "x0: &x0 {k0: 1, k1: 2, k2: 3, k3: 4}\n" + "".join(
    f"x{i}: &x{i} {{<<: [{', '.join([f'*x{i - 1}'] * 6)}], v{i}: [{', '.join([f'*x{i - 1}'] * 6)}]}}\n"
    for i in range(1, 10)
)


def _one_line_refusal(args: list[str], *needles: str) -> None:
    r = packetd(*args)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr
    assert len(lines) == 1 and lines[0].startswith("packetd: "), lines
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


HOSTILE = [
    # (name, file bytes, what the line must say)
    (
        "not-utf8",
        CONTAINED.encode() + b"logger:\n  filename: caf\xe9.log\n",
        ["is not UTF-8", "byte 0xe9 at line 4", "save it as UTF-8"],
    ),
    (
        "bad-regex",
        (
            CONTAINED
            + "processor:\n  - name: roundtripstometrics\n    config:\n      pathTemplates:\n"
            + "        - {regex: '^/v1/(orgs', replacement: /v1/orgs}\n"
        ).encode(),
        ["'processor[0].config.pathTemplates[0].regex': '^/v1/(orgs' is not a valid regular expression"],
    ),
    (
        # a valid regex whose replacement names a group it does not have: re.sub raises on the first
        # matching path, in the worker (issue 14 self-audit: the agent started, then each worker died)
        "bad-replacement-group",
        (
            CONTAINED
            + "processor:\n  - name: roundtripstometrics\n    config:\n      pathTemplates:\n"
            + "        - {regex: '^/(.*)$', replacement: '/\\2'}\n"
        ).encode(),
        [
            "'processor[0].config.pathTemplates[0].replacement': '/\\\\2' does not fit its regex",
            "invalid group reference 2",
        ],
    ),
    (
        "bad-replacement-name",
        (
            CONTAINED
            + "processor:\n  - name: roundtripstometrics\n    config:\n      pathTemplates:\n"
            + "        - {regex: '^/(?P<org>[^/]+)', replacement: '/\\g<orgs>'}\n"
        ).encode(),
        ["'processor[0].config.pathTemplates[0].replacement'", "unknown group name 'orgs'"],
    ),
    (
        # the filter is in no running pipeline (roundtrips are off): still checked, a reload may use it
        "ratio",
        (
            CONTAINED
            + "processor: [{name: roundtripsfilter, config: {sampling: {ratio: 5}}}]\n"
            + "pipeline: [{name: roundtrips/sampled, processors: [roundtripsfilter]}]\n"
        ).encode(),
        ["'processor[0]' (roundtripsfilter)", "ratio: 5.0 is not between 0 and 1"],
    ),
    ("alias-bomb", ALIAS_BOMB.encode(), ["expands to more than 100000 YAML nodes"]),
    ("merge-bomb", MERGE_BOMB.encode(), ["expands to more than 100000 YAML nodes"]),
    ("recursive-alias", b"a: &a [1, *a]\n", ["line 1: an alias refers to a node that contains it"]),
    ("deep", b"a: " + b"[" * 3000 + b"]" * 3000 + b"\n", ["nested more than 64 levels deep"]),
    ("bad-yaml", CONTAINED.encode() + b"logger:\n\tlevel: info\n", ["not valid YAML at line 4, column 1"]),
    ("one-problem", CONTAINED.encode() + b"sniffer.blockNum: 3\n", ["'sniffer.blockNum': 3 is invalid"]),
]


def test_alias_bomb_is_as_small_as_the_issues() -> None:
    assert len(ALIAS_BOMB) <= 450


@pytest.mark.parametrize(("name", "content", "needles"), HOSTILE, ids=[h[0] for h in HOSTILE])
@pytest.mark.parametrize("command", ["agent", "check"])
def test_hostile_config_gets_one_line_and_exit_status_2(
    tmp_path: object, name: str, content: bytes, needles: list[str], command: str
) -> None:
    path = os.path.join(str(tmp_path), f"{name}.yaml")
    with open(path, "wb") as f:
        f.write(content)
    args = ["agent", "--config", path] if command == "agent" else ["config", "--check", path]
    _one_line_refusal(args, path, *needles)


@pytest.mark.parametrize("command", ["agent", "check"])
def test_unreadable_config_file(tmp_path: object, command: str) -> None:
    flag = ["agent", "--config"] if command == "agent" else ["config", "--check"]
    directory = os.path.join(str(tmp_path), "conf.d")
    os.mkdir(directory)
    _one_line_refusal([*flag, directory], f"cannot read config {directory}: Is a directory")
    if os.geteuid() != 0:  # root reads a mode-000 file anyway
        path = os.path.join(str(tmp_path), "secret.yaml")
        with open(path, "w") as f:
            f.write(CONTAINED)
        os.chmod(path, 0)
        _one_line_refusal([*flag, path], f"cannot read config {path}: Permission denied")
    huge = os.path.join(str(tmp_path), "huge.yaml")
    with open(huge, "w") as f:
        f.write("#" * (1024 * 1024 + 1))
    _one_line_refusal([*flag, huge], f"config {huge} is larger than 1024 KiB")


@pytest.mark.parametrize("command", ["agent", "check"])
def test_unwritable_roundtrip_and_log_files(tmp_path: object, command: str) -> None:
    flag = ["agent", "--config"] if command == "agent" else ["config", "--check"]
    blocker = os.path.join(str(tmp_path), "a-file")
    with open(blocker, "w") as f:
        f.write("not a directory\n")
    cases = [
        (
            f"exporter.roundtrips: {{enabled: true, filename: {blocker}/sub/rt.jsonl}}\n",
            f"'exporter.roundtrips.filename': '{blocker}/sub/rt.jsonl' cannot be created: {blocker} is not a directory",
        ),
        (
            f"exporter.roundtrips: {{enabled: true, filename: {tmp_path}}}\n",
            f"'exporter.roundtrips.filename': '{tmp_path}' is a directory",
        ),
        (
            f"logger: {{stdout: false, filename: {blocker}/packetd.log}}\n",
            f"'logger.filename': '{blocker}/packetd.log' cannot be created: {blocker} is not a directory",
        ),
    ]
    if os.geteuid() != 0:
        ro = os.path.join(str(tmp_path), "ro")
        os.mkdir(ro, 0o555)
        cases.append(
            (
                f"exporter.roundtrips: {{enabled: true, filename: {ro}/rt.jsonl}}\n",
                f"cannot be created: directory {ro} is not writable",
            )
        )
    for i, (text, needle) in enumerate(cases):
        path = os.path.join(str(tmp_path), f"w{i}.yaml")
        with open(path, "w") as f:
            f.write(CONTAINED + text)
        _one_line_refusal([*flag, path], path, needle)


def test_a_roundtrip_file_that_only_fails_to_open_is_still_one_line(tmp_path: object) -> None:
    """Root passes the writability pre-check (os.access) for a file below /proc, whose directory cannot be
    made; the agent's open then fails. That must still be the only line: nothing logged before it (the
    default-rules note came first; issue 14 self-audit). Not root: the pre-check refuses it, one line too."""
    path = os.path.join(str(tmp_path), "proc.yaml")
    with open(path, "w") as f:
        f.write(CONTAINED + "exporter.roundtrips: {enabled: true, filename: /proc/packetd-none/rt.jsonl}\n")
    _one_line_refusal(
        ["agent", "--config", path], "'exporter.roundtrips.filename': '/proc/packetd-none/rt.jsonl'"
    )


def test_aliases_within_bounds_still_load(tmp_path: object) -> None:
    from packetd.agent.config import load_config

    path = os.path.join(str(tmp_path), "anchors.yaml")
    with open(path, "w") as f:
        f.write(
            "sniffer.protocols.rules:\n"
            "  - &web {name: a, protocol: http, ports: [80, 8080]}\n"
            "  - {<<: *web, name: b, ports: [81]}\n"
        )
    cfg, _ = load_config(path)
    rules = cfg.sniffer.protocols.rules
    assert [(r.name, r.protocol, r.ports) for r in rules] == [("a", "http", [80, 8080]), ("b", "http", [81])]
    r = packetd("config", "--check", path)
    assert r.returncode == 0 and r.stderr.strip() == f"packetd: {path}: valid"
