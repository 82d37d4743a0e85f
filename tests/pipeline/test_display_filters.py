"""`watch --method/--path/--status/--command/--host/--client/--server` on real captures.

The truth is computed independently from the JSON records of an unfiltered run (what a user would do with
jq): each test picks its filter values from the data, predicts which records pass with a few lines of plain
Python over the JSON, and compares with what `watch` shows when given the flag. Records are compared as
whole JSON objects, so the filtered run must show exactly the predicted records, in order.
"""

from __future__ import annotations

import ipaddress
import os
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from tests.helpers.golden import CORPUS
from tests.test_cli import records, run

Rec = dict[str, Any]


def _file(name: str) -> str:
    return os.path.join(CORPUS, name)


HTTP = (_file("http1/zeek_zeek__bro.org.pcap"), "http;80")
MINITWIT = (_file("http1/njcx_packetbeat__http_minitwit.pcap"), "http;80,5000")
POST = (_file("http1/njcx_packetbeat__http_post.pcap"), "http;80,8080")
REDIS = (_file("redis/zeek_zeek__django-cloud.pcapng"), "redis;10625")
MYSQL = (_file("mysql/njcx_packetbeat__mysql_int_string_operations.pcap"), "mysql;13001")
PG = (_file("postgresql/zeek_zeek__greenhouse-app.pcap"), "postgresql;5432")
DNS = (_file("dns/zeek_zeek__long-connection.pcap"), "dns;53")
HTTP2 = (_file("http2/OISF_suricata-verify__http2-keywords__input.pcap"), "http2;3000")


def _all(source: tuple[str, str]) -> list[Rec]:
    r = run("watch", "--pcap-file", source[0], "--proto", source[1], "--format", "json")
    assert r.returncode == 0, r.stderr
    return records(r.stdout)


def _shown(source: tuple[str, str], *flags: str) -> list[Rec]:
    r = run("watch", "--pcap-file", source[0], "--proto", source[1], "--format", "json", *flags)
    assert r.returncode == 0, r.stderr
    return records(r.stdout)


def _check(source: tuple[str, str], flags: list[str], keep: Callable[[Rec], bool]) -> int:
    everything = _all(source)
    expected = [rec for rec in everything if keep(rec)]
    assert 0 < len(expected) < len(everything), "the filter must split the capture to prove anything"
    assert _shown(source, *flags) == expected
    return len(expected)


def _path(rec: Rec) -> str | None:
    req = rec["request"] or {}
    p = req.get("path")
    return p.split("?")[0] if isinstance(p, str) else None


def test_method() -> None:
    methods = Counter(r["request"]["method"] for r in _all(POST) if r["request"])
    assert len(methods) > 1
    least = min(methods, key=lambda m: methods[m])
    _check(
        POST, ["--method", least.lower()], lambda r: bool(r["request"]) and r["request"]["method"] == least
    )


def test_path_exact_prefix_and_regex() -> None:
    everything = _all(HTTP)
    some = next(p for p in (_path(r) for r in everything) if p and p.startswith("/css/"))
    _check(HTTP, ["--path", some], lambda r: _path(r) == some)
    _check(HTTP, ["--path-prefix", "/js/"], lambda r: (_path(r) or "").startswith("/js/"))
    _check(HTTP, ["--path-regex", r"\.css$"], lambda r: (_path(r) or "").endswith(".css"))
    # two flags: both must hold (no .css under /js/)
    assert _shown(HTTP, "--path-prefix", "/js/", "--path-regex", r"\.css$") == []


def test_status_code_class_and_name() -> None:
    statuses = Counter(r["status"] for r in _all(MINITWIT))
    assert any(s and s.startswith("3") for s in statuses), statuses
    _check(MINITWIT, ["--status", "3xx"], lambda r: bool(r["status"]) and r["status"].startswith("3"))
    code = next(s for s in statuses if s and s.startswith("2"))
    _check(MINITWIT, ["--status", code], lambda r: r["status"] == code)
    # an HTTP code answers to its name (http.HTTPStatus, as in Python's standard library)
    _check(MINITWIT, ["--status", "not-modified"], lambda r: r["status"] == "304")
    _check(MINITWIT, ["--status", "4xx", "--status", "NOT_MODIFIED"], lambda r: r["status"] in ("404", "304"))


def test_status_names_of_other_protocols() -> None:
    everything = _all(DNS)
    names = Counter(r["status"] for r in everything)
    assert "NXDOMAIN" in names, names
    _check(DNS, ["--status", "nxdomain"], lambda r: r["status"] == "NXDOMAIN")


def test_command_redis_and_sql_keyword() -> None:
    cmds = Counter(r["operation"] for r in _all(REDIS))
    assert len(cmds) > 1
    least = min(cmds, key=lambda c: cmds[c])
    _check(REDIS, ["--command", least.lower()], lambda r: r["operation"] == least)

    def first_word(rec: Rec) -> str:
        st = (rec["request"] or {}).get("statement") or ""
        return st.split()[0].upper() if st.split() else ""

    words = Counter(first_word(r) for r in _all(PG))
    assert "SELECT" in words, words
    _check(
        PG, ["--command", "select"], lambda r: first_word(r) == "SELECT" or r["operation"].upper() == "SELECT"
    )
    _check(MYSQL, ["--command", "COM_QUERY"], lambda r: r["operation"] == "COM_QUERY")


def test_host() -> None:
    # HTTP/1 `Host`: bro.org and www.bro.org in one capture; any case, the port ignored
    _check(HTTP, ["--host", "WWW.bro.org"], lambda r: (r["request"] or {}).get("host") == "www.bro.org")
    # HTTP/2 `:authority` (one host in the capture at hand: all pass, and none for another host)
    everything = _all(HTTP2)
    hosts = Counter(((r["request"] or {}).get("authority") or "").split(":")[0] for r in everything)
    assert len(hosts) == 1, hosts
    host = next(iter(hosts))
    assert host and _shown(HTTP2, "--host", host.upper()) == everything
    assert _shown(HTTP2, "--host", "other." + host) == []


def test_client_server_by_address_cidr_and_port_combined_with_errors_and_kind() -> None:
    everything = _all(MINITWIT)
    ports = Counter(r["server"]["port"] for r in everything)
    assert len(ports) == 2, ports
    port = min(ports, key=lambda p: ports[p])
    _check(MINITWIT, ["--server", f":{port}"], lambda r: r["server"]["port"] == port)
    # a CIDR: bro.org's capture has one client (10.0.2.15) and one server (192.150.187.43)
    http = _all(HTTP)
    assert {r["client"]["ip"] for r in http} == {"10.0.2.15"}
    net = ipaddress.ip_network("10.0.0.0/8")
    assert _shown(HTTP, "--client", str(net)) == http
    assert _shown(HTTP, "--server", str(net)) == []
    # address:port of one client connection, with --kind
    ports = Counter(r["client"]["port"] for r in http)
    cport = min(ports, key=lambda p: ports[p])
    _check(
        HTTP,
        ["--client", f"10.0.2.15:{cport}", "--kind", "roundtrip"],
        lambda r: r["client"]["port"] == cport and r["kind"] == "roundtrip",
    )
    errors = [r for r in everything if r["error"]]
    assert _shown(MINITWIT, "--server", f":{port}", "--errors") == [
        r for r in errors if r["server"]["port"] == port
    ]


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--path-regex", "("], "--path-regex '(':"),
        (["--server", "not-an-address"], "--server 'not-an-address': not an address"),
        (["--client", ":port"], "--client ':port': not an address"),
    ],
)
def test_bad_filter_values_are_one_line(flags: list[str], needle: str) -> None:
    r = run("watch", "--pcap-file", HTTP[0], *flags)
    assert r.returncode == 2
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1 and r.stdout == ""
