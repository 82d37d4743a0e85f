"""Where detection is switched on: `watch` without --proto or with `--proto auto`, the agent without rules
or with `sniffer.protocols.detect: true`; and the kernel filter it then needs."""

from __future__ import annotations

from packetd.agent.config import parse_config
from packetd.agent.runtime import bpf_from, detect_from, rules_from
from packetd.capture import bpf
from packetd.cli import build_rules, detecting
from packetd.engine import default_rules


def test_watch_switch() -> None:
    assert detecting(())
    assert detecting(("auto",))
    assert detecting(("http;8080", " auto "))
    assert not detecting(("http;8080",))
    assert build_rules(("auto",)) == default_rules()  # `auto` alone: the default rules, plus detection
    assert [r.protocol for r in build_rules(("auto", "redis;7000"))] == ["redis"]


def test_agent_switch() -> None:
    assert detect_from(parse_config("")[0])  # no rules configured: detection on every other port
    assert detect_from(parse_config("sniffer.protocols.rules: []")[0])
    rules = "sniffer:\n  protocols:\n    rules:\n      - {protocol: redis, ports: [7000]}\n"
    assert not detect_from(parse_config(rules)[0])
    cfg = parse_config(rules + "    detect: true\n")[0]
    assert detect_from(cfg)
    assert [r.protocol for r in rules_from(cfg)] == ["redis"]


def test_kernel_filter_passes_all_tcp_and_udp_when_detecting() -> None:
    rules = default_rules()
    assert bpf_from(rules, detect=True) == bpf.ALL_TCP_UDP == "tcp or udp"
    assert "port 6379" in bpf_from(rules)


def test_watch_without_proto_detects_the_sample_and_says_where() -> None:
    """samples/http-sample.pcapng serves HTTP on 45855 and 49571 (no default port): without --proto it is
    decoded, as with the rule, and the summary says what was found where."""
    from tests.pipeline.test_hint import SAMPLE
    from tests.test_cli import records, run

    auto = run("watch", "--pcap-file", SAMPLE)
    rule = run("watch", "--pcap-file", SAMPLE, "--proto", "http;45855,49571")
    assert records(auto.stdout) == records(rule.stdout) and records(rule.stdout)
    assert "detected by content: http 2 (on tcp/45855 http, tcp/49571 http)" in auto.stderr
