"""Safe, useful defaults: an agent with no rules (or `rules: []`) decodes what `watch` decodes — every protocol
on its default ports — and says so; the reference config lists those rules; `/watch` answers a bad
parameter with 400 and one line.

The truth for the capture-file runs is tshark's count of the file's HTTP requests (31, as in
tests/protocols/http1/test_golden.py and tests/agent/test_api.py).
"""

from __future__ import annotations

import re
import time

import pytest

from packetd.agent.config import parse_config
from packetd.agent.runtime import default_rules_note, rules_from
from packetd.capture.source import resolve_engine
from packetd.engine import default_rules
from tests.agent.test_api import BRO
from tests.agent.test_config import packetd
from tests.agent.test_e2e import counter_sum, get
from tests.helpers.backends import AgentProcess
from tests.helpers.live import free_port


def test_no_rules_and_an_empty_rule_list_both_mean_watchs_rules() -> None:
    absent, _ = parse_config("sniffer.ifaces: any\n")
    empty, _ = parse_config("sniffer.protocols.rules: []\n")
    assert rules_from(absent) == default_rules() == rules_from(empty)
    assert "sniffer.protocols.rules is empty" in (default_rules_note(empty) or "")
    assert "default ports" in (default_rules_note(absent) or "")
    custom, _ = parse_config("sniffer.protocols.rules: [{protocol: http, ports: [8000]}]\n")
    assert default_rules_note(custom) is None and [r.ports for r in rules_from(custom)] == [(8000,)]


def test_the_reference_config_lists_the_default_rules() -> None:
    text = packetd("config").stdout
    listed = re.findall(r"\{name: (\w+), protocol: (\w+), ports: \[([\d, ]+)\]\}", text)
    assert [(p, tuple(int(x) for x in ports.split(","))) for _, p, ports in listed] == [
        (r.protocol, r.ports) for r in default_rules()
    ]
    cfg, _ = parse_config(text)
    assert rules_from(cfg) == default_rules()


@pytest.mark.parametrize(
    ("name", "linux", "other"),
    [("", "afpacket", "libpcap"), ("auto", "afpacket", "libpcap"), ("pcap", "afpacket", "libpcap"),
     ("afpacket", "afpacket", "afpacket"), ("libpcap", "libpcap", "libpcap")],
)  # fmt: skip
def test_engine_names_mean_one_thing(name: str, linux: str, other: str) -> None:
    assert resolve_engine(name, "linux") == linux and resolve_engine(name, "darwin") == other
    # watch accepts every name the agent does (but the empty string, a YAML default)
    if name:
        assert packetd("watch", "--engine", name, "--help").returncode == 0
    cfg, _ = parse_config(f"sniffer.engine: '{name}'\n")
    assert cfg.sniffer.engine == name


def _reference_agent(api: int, rules: str | None) -> AgentProcess:
    """The `packetd config` output, changed only where a test must: the capture file, the API port."""
    text = packetd("config").stdout
    text = text.replace('  file: ""', f"  file: {BRO}", 1).replace(
        'address: "127.0.0.1:9091"', f'address: "127.0.0.1:{api}"', 1
    )
    if rules is not None:
        text = re.sub(r"    rules:\n(      - \{.*\}\n)+", f"    rules: {rules}\n", text)
    return AgentProcess(text)


def _requests(api: int, want: float) -> float:
    deadline = time.monotonic() + 20
    got = 0.0
    while time.monotonic() < deadline:
        got = counter_sum(get(api, "/protocol/metrics")[1].decode(), "http_requests_total")
        if got >= want:
            break
        time.sleep(0.3)
    return got


@pytest.mark.slow
@pytest.mark.parametrize("rules", [None, "[]"], ids=["reference", "empty-list"])
def test_an_agent_from_the_reference_config_decodes(rules: str | None) -> None:
    api = free_port()
    a = _reference_agent(api, rules)
    try:
        a.wait_ready(api)
        assert _requests(api, 31) == 31
        assert "decoding every protocol on its default ports" in a.stderr()
        if rules == "[]":
            assert "sniffer.protocols.rules is empty" in a.stderr()
        # /watch with a bad parameter: 400 and one line, never Python's exception text
        for query, says in (
            ("max_message=abc", "max_message 'abc' is not a whole number"),
            ("timeout=soon", "timeout 'soon' is not a duration"),
            ("maxmsg=3", "unknown parameter 'maxmsg'; allowed: max_message, timeout"),
        ):
            status, body = get(api, f"/watch?{query}")
            assert status == 400
            assert body.decode().startswith(f"/watch: {says}")
            assert body.count(b"\n") == 1 and body.endswith(b"\n") and b"invalid literal" not in body
    finally:
        assert a.stop() == 0
