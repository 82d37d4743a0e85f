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
