"""The `packetd` command: `watch`, `top`, `ifaces`, `version`.

User mistakes (a bad flag, an unreadable file, no privilege to capture) end with one line on stderr that
names the problem and what is allowed, and a non-zero exit status — never a traceback. stdout carries
roundtrip records (or text lines) and nothing else; logs, warnings and the summary go to stderr.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

import click

from packetd import __version__
from packetd.capture import bpf
from packetd.capture.pcapfile import CaptureFile, CaptureFormatError
from packetd.capture.source import TICK, Source, resolve_engine
from packetd.engine import Engine, EngineConfig, Rule, RuleError, check_rules, default_rules, parse_rule
from packetd.export.progress import Progress, for_file
from packetd.export.rotating import RotatingFile
from packetd.export.text import TextFormatter, terminal_width
from packetd.flow.ports import PortTally
from packetd.flow.table import DEFAULT_MAX_MEMORY_MB, FlowConfig, flows_for_memory
from packetd.pairing.roundtrip import Roundtrip, dumps
from packetd.pipeline.filters import DisplayFilter, FieldFilter, FilterError
from packetd.pipeline.hint import QuietHint, hint_lines, host_hint_lines
from packetd.pipeline.summary import Summary, plural
from packetd.protocols.base import Kind
from packetd.protocols.options import OptionError, parse_assignments
from packetd.protocols.registry import REGISTRY
from packetd.top.command import build_command as build_top_command
from packetd.units import format_duration, parse_duration

if TYPE_CHECKING:
    # imported where used: `watch -r FILE` needs none of them (process attribution is off for a file,
    # libpcap only for a filter expression, pcapout only for -w), and they cost ~10 ms of start-up
    # (ctypes, tempfile, shutil, ...); tests/test_startup.py keeps them out of a plain start-up
    from packetd.attribution.processes import HeldRecords, ProcessResolver
    from packetd.capture.libpcap import OfflineFilter
    from packetd.capture.pcapout import PcapOut

EXIT_RUNTIME = 1
EXIT_USAGE = 2
SUMMARY_ROWS = 25  # endpoints listed in the exit summary; the rest are counted


def _fail(message: str, status: int = EXIT_RUNTIME) -> NoReturn:
    click.echo(f"packetd: {message}", err=True)
    sys.exit(status)


def _warn(message: str) -> None:
    click.echo(f"packetd: warning: {message}", err=True)


class _DurationType(click.ParamType):  # type: ignore[type-arg]
    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = _DurationType()


# what tcpdump users type that packetd does differently: the one line says what to type instead
TCPDUMP_HABITS = {
    "-n": "packetd never resolves names: leave -n out",
    "-nn": "packetd never resolves names: leave -nn out",
    "-s": "packetd always captures whole packets: leave -s out",
    "-v": "for every field of a record use --format json",
    "-vv": "for every field of a record use --format json",
    "-X": "for every field of a record use --format json (add --capture-body BYTES for HTTP bodies)",
    "-A": "for every field of a record use --format json (add --capture-body BYTES for HTTP bodies)",
    "-e": "for every field of a record use --format json",
    "-l": "live output is written a line at a time already: leave -l out",
    "-U": "live output is written a line at a time already: leave -U out",
    "-Z": "drop root with --user NAME",
    "-D": "list interfaces with `packetd ifaces`",
}


class _Cli(click.Group):
    """The `packetd` group: every usage error is one line on stderr, naming the flag and what to type."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)
        except click.UsageError as exc:
            _usage_line(exc)
        except click.Abort:
            click.echo("packetd: aborted", err=True)
            sys.exit(EXIT_RUNTIME)


def _usage_line(exc: click.UsageError) -> NoReturn:
    ctx = exc.ctx
    where = ctx.command_path if ctx is not None else "packetd"
    message = exc.format_message().replace("\n", " ").rstrip(".")
    option = getattr(exc, "option_name", None)
    if isinstance(exc, click.NoSuchOption) and option in TCPDUMP_HABITS:
        message += f": {TCPDUMP_HABITS[option]}"
    _fail(f"{message} (see '{where} --help')", EXIT_USAGE)


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="packetd", message="%(prog)s %(version)s")
def main() -> None:
    """packetd: passive L7 network observability — requests paired with responses, straight off the wire."""


@main.command()
def version() -> None:
    """Print version information."""
    click.echo(f"Version: {__version__}")
    click.echo(f"GitHash: {_git_hash()}")
    click.echo(f"Python: {sys.version.split()[0]}")
    from packetd.buildinfo import accelerator, build

    click.echo(f"Build: {build()}")  # pure Python, or the mypyc-compiled hot path (issue 15)
    click.echo(f"C accelerator: {accelerator()}")  # net/_packet.c: on, off (PACKETD_PURE=1), absent
    try:
        from packetd.capture import libpcap

        click.echo(f"Libpcap: {libpcap.load().pcap_lib_version().decode()}")
    except Exception:  # libpcap is optional for file analysis
        click.echo("Libpcap: not found")


def _git_hash() -> str:
    env = os.environ.get("PACKETD_GIT_HASH")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    import subprocess  # only for `packetd version`

    try:
        out = subprocess.run(
            ["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=2, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


@main.command()
@click.option(
    "--config",
    "config_path",
    default=None,
    metavar="FILE",
    help="Configuration file (default: packetd.yaml if present).",
)
def agent(config_path: str | None) -> None:
    """Run the long-lived agent: metrics, traces and roundtrip exporters, HTTP API, reload."""
    from packetd.agent.config import ConfigError
    from packetd.agent.main import run_agent

    try:
        status = run_agent(
            config_path or "packetd.yaml", explicit=config_path is not None, git_hash=_git_hash()
        )
    except ConfigError as exc:
        _fail(str(exc), EXIT_USAGE)
    sys.exit(status)


@main.command("config")
@click.option(
    "--check",
    "check_path",
    default=None,
    metavar="FILE",
    help="Validate FILE as `agent --config` does (exit status 2 and the problem on stderr) instead.",
)
def config_cmd(check_path: str | None) -> None:
    """Print the complete, commented reference configuration of the agent (or check a config file)."""
    from importlib.resources import files

    if check_path is not None:
        from packetd.agent.config import ConfigError, load_config
        from packetd.agent.runtime import validate

        try:
            cfg, warnings = load_config(check_path)
            validate(cfg)
        except ConfigError as exc:
            _fail(str(exc), EXIT_USAGE)
        for warning in warnings:
            _warn(warning)
        click.echo(f"packetd: {check_path}: valid", err=True)
        return

    click.echo(files("packetd.agent").joinpath("reference.yaml").read_text(encoding="utf-8"), nl=False)


@main.command()
def ifaces() -> None:
    """List network interfaces that have an address (as `- name: [addr/prefix ...]`)."""
    try:
        from packetd.capture import libpcap

        found = libpcap.interfaces()
    except Exception as exc:
        _fail(f"cannot list interfaces: {exc}")
    for name, addrs in found:
        click.echo(f"- {name}: [{' '.join(addrs)}]")


@dataclass
class WatchOptions:
    protos: tuple[str, ...] = ()
    ifaces: str = "any"
    pcap_file: str | None = None
    ipv: str | None = None
    no_promisc: bool = False
    roundtrips_file: str | None = None
    roundtrips_size: int = 100
    roundtrips_backups: int = 10
    fmt: str | None = None
    count: int = 0
    duration_ns: int = 0
    errors: bool = False
    slower_than_ns: int = 0
    kinds: tuple[str, ...] = ()
    engine: str = "auto"
    user: str | None = None
    block_num: int = 16
    capture_body: int | None = None
    decoder_opts: tuple[str, ...] = ()
    conn_expired_ns: int = 300 * 1_000_000_000
    max_memory_mb: int = DEFAULT_MAX_MEMORY_MB
    color: bool | None = None
    kernel_drop_acks: bool = False
    processes: bool | None = None  # None: on for live capture, off for a file
    pids: tuple[int, ...] = ()
    comms: tuple[str, ...] = ()
    containers: tuple[str, ...] = ()
    expression: str = ""  # a tcpdump filter expression (positional)
    write_file: str | None = None  # -w FILE
    write_only: str | None = None  # "errors" | "slow"
    fields: FieldFilter | None = None  # --method, --path, --status, ... (None: none given)
    workers: int | None = None  # --workers N (None: the default rule, parallel.workers_for)
    fanout: int | None = None  # live: the PACKET_FANOUT group a worker of `--workers N` joins
    extra: dict[str, Any] = field(default_factory=dict)


@main.command(context_settings={"max_content_width": 110})
@click.option(
    "--proto",
    "protos",
    multiple=True,
    metavar="'NAME;PORTS[;HOST]'",
    help="Watch NAME on PORTS (comma-separated ports and ranges, 8000-8099), optionally only HOST; "
    "also NAME:PORTS. Quote it. Repeatable. 'auto': also detect protocols by content on every other port. "
    "Default: every protocol on its default ports, and detection on every other port.",
)
@click.option("--ifaces", default="any", show_default=True, help="Interfaces: 'any' or a regex of names.")
@click.option(
    "-i",
    "iface_names",
    multiple=True,
    metavar="IFACE",
    help="An interface by its exact name, as tcpdump -i (repeatable; the same as --ifaces '^IFACE$').",
)
@click.option(
    "-r",
    "--pcap-file",
    default=None,
    metavar="FILE",
    help="Read a pcap/pcapng file ('-' for stdin; gzip, zstd, xz too) instead of interfaces.",
)
@click.option("--ipv", type=click.Choice(["v4", "v6"]), default=None, help="Only IPv4 or only IPv6.")
@click.option("--no-promisc", is_flag=True, help="Do not put interfaces in promiscuous mode.")
@click.option(
    "--console", is_flag=True, help="Write roundtrips to stdout (the default; kept for compatibility)."
)
@click.option(
    "--roundtrips.file",
    "roundtrips_file",
    default=None,
    metavar="PATH",
    help="Write roundtrips to a rotating file instead of stdout.",
)
@click.option(
    "--roundtrips.size",
    "roundtrips_size",
    type=click.IntRange(1, 1 << 20),
    default=100,
    show_default=True,
    help="Rotate the roundtrip file at this many MB.",
)
@click.option(
    "--roundtrips.backups",
    "roundtrips_backups",
    type=click.IntRange(0, 10000),
    default=10,
    show_default=True,
    help="Rotated roundtrip files to keep.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default=None,
    help="Output format (default: text on a terminal, JSON lines otherwise).",
)
@click.option(
    "-c",
    "--count",
    type=click.IntRange(min=0),
    default=0,
    help="Stop after N records (not packets) are shown.",
)
@click.option(
    "-w",
    "write_file",
    default=None,
    metavar="FILE",
    help="Write the packets of the connections whose records are shown to FILE (pcapng, for Wireshark).",
)
@click.option(
    "--write-only",
    type=click.Choice(["errors", "slow"]),
    default=None,
    help="With -w: only connections with an error, or with a roundtrip slower than --slower-than.",
)
@click.option(
    "--duration", type=DURATION, default=None, help="Stop after D (e.g. 30s); for a file, D of capture time."
)
@click.option("--errors", is_flag=True, help="Only show records with an error status.")
@click.option(
    "--slower-than",
    "slower_than",
    type=DURATION,
    default=None,
    metavar="D",
    help="Only show roundtrips slower than D (e.g. 100ms).",
)
@click.option("--method", "methods", multiple=True, help="Only HTTP/HTTP2/gRPC requests with this method.")
@click.option("--path", "paths", multiple=True, help="Only requests for this path (the query ignored).")
@click.option("--path-prefix", "path_prefixes", multiple=True, help="Only requests for paths starting so.")
@click.option("--path-regex", "path_regexes", multiple=True, help="Only requests for paths matching RE.")
@click.option(
    "--status", "statuses", multiple=True, help="Only records with this status: 404, a class (5xx), a name."
)
@click.option(
    "--command",
    "commands",
    multiple=True,
    help="Only records of this command: Redis GET, SQL SELECT, MongoDB find, COM_QUERY, Basic.Publish.",
)
@click.option("--host", "hosts", multiple=True, help="Only HTTP requests for this Host / :authority.")
@click.option(
    "--client",
    "clients",
    multiple=True,
    metavar="ADDR",
    help="Only this client: 10.0.0.5, 10.0.0.0/8, :port.",
)
@click.option(
    "--server",
    "servers",
    multiple=True,
    metavar="ADDR",
    help="Only this server: 10.0.0.5, 10.0.0.0/8, :5432.",
)
@click.option(
    "--kind",
    "kinds",
    type=click.Choice(list(Kind.ALL)),
    multiple=True,
    help="Only show these record kinds (repeatable; default all).",
)
@click.option(
    "--engine",
    type=click.Choice(["auto", "afpacket", "libpcap", "pcap"]),
    default="auto",
    show_default=True,
    help="Live capture engine: auto (= pcap, the agent's sniffer.engine names): the AF_PACKET ring on Linux, "
    "libpcap elsewhere; afpacket or libpcap to choose one.",
)
@click.option(
    "--user", default=None, metavar="NAME", help="Drop root privileges to NAME once capture sockets are open."
)
@click.option(
    "--block-num",
    type=click.IntRange(1, 1024),
    default=16,
    show_default=True,
    help="AF_PACKET ring blocks of 512 KiB.",
)
@click.option(
    "--capture-body",
    type=click.IntRange(0, 16 << 20),
    default=None,
    metavar="BYTES",
    help="Keep up to BYTES of textual HTTP bodies (0: off); the same as --decoder http.capture_body=BYTES.",
)
@click.option(
    "--decoder",
    "decoder_opts",
    multiple=True,
    metavar="PROTO.KEY=VALUE",
    help="A decoder option, e.g. http.capture_body=4096 or http.redact=authorization (repeatable).",
)
@click.option(
    "--conn-expired",
    type=DURATION,
    default="5m",
    show_default=True,
    help="Forget connections idle for this long.",
)
@click.option(
    "--max-memory-mb",
    type=click.IntRange(min=4),
    default=DEFAULT_MAX_MEMORY_MB,
    show_default=True,
    help="Memory budget of the connection table, MiB (4.5 KiB a connection); beyond it the oldest go.",
)
@click.option(
    "--color/--no-color",
    default=None,
    help="Colour text output (default: on a terminal, unless NO_COLOR is set).",
)
@click.option(
    "--kernel-drop-acks",
    is_flag=True,
    help="Drop payload-less TCP ACKs in the kernel filter (less CPU on bulk transfers).",
)
@click.option(
    "--processes/--no-processes",
    default=None,
    help="Name the process (pid, comm, exe, container) of each end that is a socket on this host "
    "(default: on for live capture, off for a file: a file's processes are not this host's).",
)
@click.option(
    "--pid",
    "pids",
    type=int,
    multiple=True,
    help="Only records with this process at either end (repeatable).",
)
@click.option(
    "--comm",
    "comms",
    multiple=True,
    help="Only records with a process of this name (comm) at either end (repeatable).",
)
@click.option(
    "--container",
    "containers",
    multiple=True,
    metavar="ID",
    help="Only records with a process in a container whose id starts with ID at either end (repeatable).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    metavar="N",
    help="Decode on N processes, connections split by a hash of both ends (live: PACKET_FANOUT_HASH). "
    "Records come in the order one process gives them (live: by end time within 200 ms); the summary is "
    "the same. Default: 1 live, for pipes and for files under 64 MiB; else the cores, at most 8. "
    "-w, -c and process attribution run on one.",
)
@click.version_option(__version__, "-V", "--version", prog_name="packetd", message="%(prog)s %(version)s")
@click.argument("expression", nargs=-1)
def watch(**kw: Any) -> None:
    """Capture and print roundtrips as they happen (live, or from a capture file).

    EXPRESSION is a tcpdump filter (quote it): live, it is ANDed with the kernel filter built from the
    rules; for a file, it is applied to each packet.
    """
    expression = " ".join(kw["expression"])
    _check_expression(expression, kw["protos"])
    if kw["write_file"] == "-":
        _fail(
            "-w - would mix packets with the records on stdout; give -w a file (or a FIFO: mkfifo p; "
            "wireshark -k -i p & packetd watch -w p)",
            EXIT_USAGE,
        )
    if kw["write_only"] and not kw["write_file"]:
        _fail("--write-only needs -w FILE (the pcapng file to write)", EXIT_USAGE)
    if kw["write_only"] == "slow" and not kw["slower_than"]:
        _fail("--write-only slow needs --slower-than D (e.g. --slower-than 100ms)", EXIT_USAGE)
    if kw["fmt"] == "text" and kw["roundtrips_file"]:
        _fail(
            "--format text cannot go to --roundtrips.file: the file holds JSON lines; "
            "leave out --format text (or --roundtrips.file to see text)",
            EXIT_USAGE,
        )
    if kw["pcap_file"] is not None:
        _warn_live_only(click.get_current_context())
    if kw["iface_names"] and kw["pcap_file"] is None:
        _check_iface_names(kw["iface_names"])
    sys.exit(run_watch(watch_options(kw)))


def watch_options(kw: dict[str, Any]) -> WatchOptions:
    """The options of watch's flags, by their click names (`packetd top` passes watch's defaults for the
    flags it does not take)."""
    ifaces = kw["ifaces"]
    if kw.get("iface_names"):
        ifaces = "^(" + "|".join(re.escape(n) for n in kw["iface_names"]) + ")$"
    return WatchOptions(
        protos=kw["protos"],
        ifaces=ifaces,
        pcap_file=kw["pcap_file"],
        ipv=kw["ipv"],
        no_promisc=kw["no_promisc"],
        roundtrips_file=kw["roundtrips_file"],
        roundtrips_size=kw["roundtrips_size"],
        roundtrips_backups=kw["roundtrips_backups"],
        fmt=kw["fmt"],
        count=kw["count"],
        duration_ns=kw["duration"] or 0,
        errors=kw["errors"],
        slower_than_ns=kw["slower_than"] or 0,
        kinds=kw["kinds"],
        engine=kw["engine"],
        user=kw["user"],
        block_num=kw["block_num"],
        capture_body=kw["capture_body"],
        decoder_opts=kw["decoder_opts"],
        conn_expired_ns=kw["conn_expired"],
        max_memory_mb=kw["max_memory_mb"],
        color=kw["color"],
        kernel_drop_acks=kw["kernel_drop_acks"],
        processes=kw["processes"],
        pids=kw["pids"],
        comms=kw["comms"],
        containers=kw["containers"],
        expression=" ".join(kw.get("expression") or ()),
        write_file=kw.get("write_file"),
        write_only=kw.get("write_only"),
        fields=_field_filter(kw),
        workers=kw.get("workers"),
    )


# `packetd top` (src/packetd/top/): watch's capture flags and capture, its own table
main.add_command(build_top_command(watch))


LIVE_ONLY = ("ifaces", "iface_names", "engine", "block_num", "user", "no_promisc", "kernel_drop_acks")
# a leftover argument that is the ports (or ports;host) of a rule the shell split at an unquoted ';'
_SPLIT_RULE = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*(;\S*)?$")
_RULE_LIKE = re.compile(r"^[A-Za-z][\w/.]*[;:]\d")


def _check_expression(expression: str, protos: tuple[str, ...]) -> None:
    """A positional argument that is not a filter but a piece of a rule gets a pointer, not libpcap's error."""
    if not expression:
        return
    if _SPLIT_RULE.match(expression):
        last = re.split("[;:]", protos[-1], maxsplit=1)[0] if protos else "NAME"
        _fail(
            f"'{expression}' looks like the ports of a --proto rule split at an unquoted ';': quote the rule, "
            f"--proto '{last};{expression}' (or write {last}:{expression})",
            EXIT_USAGE,
        )
    if _RULE_LIKE.match(expression):
        _fail(f"'{expression}' looks like a protocol rule: write --proto '{expression}'", EXIT_USAGE)


def _check_iface_names(names: tuple[str, ...]) -> None:
    """`-i NAME` names an interface exactly: one that does not exist is a usage error, not silence."""
    try:
        known = {n for _, n in socket.if_nameindex()}
    except OSError:
        return  # no interface list here: the capture engine reports what it cannot open
    missing = [n for n in names if n not in known and n != "any"]
    if missing:
        _fail(
            f"-i {missing[0]}: no such interface; `packetd ifaces` lists them (or -i any, or --ifaces REGEX)",
            EXIT_USAGE,
        )


def _warn_live_only(ctx: click.Context) -> None:
    from click.core import ParameterSource

    given = [
        p.opts[0]
        for p in ctx.command.params
        if p.name in LIVE_ONLY and ctx.get_parameter_source(p.name) == ParameterSource.COMMANDLINE
    ]
    if given:
        _warn(f"{', '.join(given)} only apply to live capture; ignored with --pcap-file")


def _field_filter(kw: dict[str, Any]) -> FieldFilter | None:
    names = (
        "methods",
        "paths",
        "path_prefixes",
        "path_regexes",
        "statuses",
        "commands",
        "hosts",
        "clients",
        "servers",
    )
    if not any(kw.get(n) for n in names):
        return None
    try:
        return FieldFilter(**{n: kw[n] for n in names})
    except FilterError as exc:
        _fail(str(exc), EXIT_USAGE)


# -- rules ------------------------------------------------------------------------------------------------------
def build_rules(protos: Iterable[str]) -> list[Rule]:
    rules = []
    for text in protos:
        if text.strip() == AUTO:
            continue
        try:
            rule = parse_rule(text)
        except RuleError as exc:
            _fail(str(exc), EXIT_USAGE)
        if rule.host is not None and rule.addresses is None:
            rule = Rule(
                protocol=rule.protocol, ports=rule.ports, host=rule.host, addresses=_resolve(rule.host, text)
            )
        rules.append(rule)
    if not rules:
        rules = default_rules()
    try:
        check_rules(rules)
    except RuleError as exc:
        _fail(str(exc), EXIT_USAGE)
    return rules


def _resolve(host: str, text: str) -> frozenset[bytes]:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        _fail(f"cannot resolve host '{host}' in --proto '{text}': {exc}", EXIT_USAGE)
    out = set()
    for family, _t, _p, _c, sockaddr in infos:
        out.add(socket.inet_pton(family, str(sockaddr[0])))
    return frozenset(out)


AUTO = "auto"  # `--proto auto`: detection by content next to the rules


def detecting(protos: Iterable[str]) -> bool:
    """Detection by content is on without --proto, and with `--proto auto` among the rules."""
    protos = list(protos)
    return not protos or any(text.strip() == AUTO for text in protos)


def bpf_for(rules: Iterable[Rule], detect: bool = False) -> str:
    if detect:
        return bpf.ALL_TCP_UDP
    return bpf.filter_expression((REGISTRY[r.protocol].transports, r.ports, r.host) for r in rules)


# -- sources --------------------------------------------------------------------------------------------------
def open_live(opts: WatchOptions, rules: list[Rule]) -> Source:
    expression = bpf_for(rules, detecting(opts.protos))
    if opts.expression:
        expression = f"({expression}) and ({opts.expression})" if expression else opts.expression
    if opts.kernel_drop_acks:
        expression = bpf.payload_only_clause(expression)
    engine = resolve_engine(opts.engine)
    try:
        if engine == "afpacket":
            from packetd.capture.afpacket import AfPacketSource

            return AfPacketSource(
                opts.ifaces,
                expression,
                promisc=not opts.no_promisc,
                block_num=opts.block_num,
                fanout_group=opts.fanout,
            )
        from packetd.capture.libpcap import PcapLiveSource, interfaces

        if opts.ifaces in ("", "any"):
            names = ["any"] if sys.platform.startswith("linux") else [n for n, _ in interfaces()]
        else:
            names = [n for n, _ in interfaces() if re.search(opts.ifaces, n)]
            if not names:
                _fail(f"no interface matches --ifaces '{opts.ifaces}'", EXIT_USAGE)
        return PcapLiveSource(names, expression, promisc=not opts.no_promisc)
    except PermissionError:
        from packetd.capture.privileges import privilege_hint

        _fail(privilege_hint())
    except ValueError as exc:
        _fail(str(exc), EXIT_USAGE)
    except Exception as exc:  # libpcap missing, interface gone: a clear line, not a traceback
        _fail(f"cannot start live capture: {exc}")


# -- output ---------------------------------------------------------------------------------------------------
OUTPUT_BATCH = 64 * 1024  # record bytes held before one write(2): a write per record cost ~5 µs of CPU each
OUTPUT_LATENCY_S = 0.1  # live: records wait at most this long for the batch to fill (and a tick flushes)


class Output:
    """Where records go: stdout (text or JSON lines) or the rotating file.

    Records to stdout are batched (OUTPUT_BATCH bytes, one write each; the interpreter's own stdout is
    unbuffered under PYTHONUNBUFFERED) yet stay prompt: a terminal gets every record at once; live, a batch
    waits at most OUTPUT_LATENCY_S and every idle tick flushes; a capture read from a pipe is flushed before
    each read that may wait for the writer (`tcpdump -U -w - | packetd watch -r -`); and at the end.
    """

    def __init__(self, opts: WatchOptions, live: bool) -> None:
        self.live = live
        self._file: RotatingFile | None = None
        stdout_tty = sys.stdout.isatty()
        fmt = opts.fmt or ("text" if stdout_tty and not opts.roundtrips_file else "json")
        self.fmt = fmt
        self._json = fmt == "json"
        color = opts.color if opts.color is not None else (stdout_tty and "NO_COLOR" not in os.environ)
        if stdout_tty:
            self._text = TextFormatter(color=bool(color))  # the window's width, asked for every line
        else:  # a pipe or a file: $COLUMNS or the fallback, which nothing outside the process changes
            width = terminal_width()
            self._text = TextFormatter(color=bool(color), width=lambda: width)
        if opts.roundtrips_file:
            try:
                self._file = RotatingFile(
                    opts.roundtrips_file, opts.roundtrips_size * 1024 * 1024, opts.roundtrips_backups
                )
            except OSError as exc:
                _fail(f"cannot write --roundtrips.file {opts.roundtrips_file}: {exc.strerror}", EXIT_USAGE)
        self._out = sys.stdout.buffer
        self._batch: list[bytes] = []  # bounded: flushed at OUTPUT_BATCH bytes
        self._held = 0
        self._each = stdout_tty  # a person reads it: no batching
        self._due = 0.0  # live: when the oldest batched record has waited OUTPUT_LATENCY_S
        if self._json and self._file is None and not self._each and not live:
            # a capture file's JSON lines to a pipe or a file: only the batch's size flushes (and the
            # flushes before a read from a pipe, and at the end), so the per-record tests are left out
            self.write = self._write_json_batched  # type: ignore[method-assign]

    def _write_json_batched(self, rt: Roundtrip) -> None:
        """`write` for a capture file's JSON lines to a pipe or a file."""
        line = dumps(rt)
        self._batch.append(line)
        self._held += len(line)
        if self._held >= OUTPUT_BATCH:
            self.flush()

    def write(self, rt: Roundtrip) -> None:
        self.emit_line(dumps(rt) if self._json else (self._text.format(rt) + "\n").encode())

    def emit_line(self, line: bytes) -> None:
        """One record's line, already made (--workers N: the workers make them), batched as `write`'s."""
        if self._file is not None:
            self._file.write_line(line)
            return
        batch = self._batch
        if not batch and self.live:
            self._due = time.monotonic() + OUTPUT_LATENCY_S
        batch.append(line)
        self._held += len(line)
        if self._held >= OUTPUT_BATCH or self._each or (self.live and time.monotonic() >= self._due):
            self.flush()

    def _write_batch(self) -> None:
        data = b"".join(self._batch) if len(self._batch) > 1 else self._batch[0]
        self._batch.clear()
        self._held = 0
        out = self._out
        view = memoryview(data)
        while view:  # an unbuffered stdout (FileIO) may write part of it
            n = out.write(view)
            if n is None or n >= len(view):
                break
            view = view[n:]

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()
            return
        if self._batch:
            self._write_batch()
        self._out.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        else:
            self.flush()


# -- the capture (shared by watch and top) ----------------------------------------------------------------------
def engine_config(opts: WatchOptions, rules: list[Rule]) -> EngineConfig:
    """The engine's configuration from watch's flags (decoder options, connection table, IP versions)."""
    ip_versions = frozenset({4, 6}) if opts.ipv is None else frozenset({int(opts.ipv[1])})
    assignments = list(opts.decoder_opts)
    if opts.capture_body is not None:
        assignments.insert(0, f"http.capture_body={opts.capture_body}")
    try:
        options = parse_assignments(assignments)
    except OptionError as exc:
        _fail(str(exc), EXIT_USAGE)
    return EngineConfig(
        rules=tuple(rules),
        ip_versions=ip_versions,
        flow=FlowConfig(
            idle_timeout_ns=max(opts.conn_expired_ns, 1_000_000_000),
            max_flows=flows_for_memory(opts.max_memory_mb),
        ),
        options=options,
        detect=detecting(opts.protos),
    )


def open_source(opts: WatchOptions, rules: list[Rule]) -> Source | CaptureFile:
    """The live capture (privileges dropped after, with --user) or the capture file."""
    if opts.pcap_file is None:
        source = open_live(opts, rules)
        if opts.user:
            from packetd.capture.privileges import PrivilegeError, drop_privileges

            try:
                drop_privileges(opts.user)
            except PrivilegeError as exc:
                source.close()
                _fail(str(exc), EXIT_USAGE)
        return source
    try:
        return CaptureFile(opts.pcap_file)
    except CaptureFormatError as exc:
        _fail(str(exc), EXIT_USAGE)


def _offline_filter(opts: WatchOptions) -> Any:
    """The positional expression, compiled for a capture file's packets (live, the kernel runs it)."""
    if not opts.expression:
        return None
    try:
        from packetd.capture.libpcap import LibpcapError, OfflineFilter

        return OfflineFilter(opts.expression)
    except LibpcapError as exc:
        _fail(
            f"filter expression: {exc}; write a tcpdump expression and quote it, e.g. 'host 10.0.0.5 and port 80'",
            EXIT_USAGE,
        )


def _check_live_expression(opts: WatchOptions) -> None:
    if opts.expression and opts.pcap_file is None:
        from packetd.capture.libpcap import DLT_RAW, LibpcapError, compile_filter

        try:
            compile_filter(opts.expression, DLT_RAW)
        except LibpcapError as exc:
            _fail(
                f"filter expression: {exc}; write a tcpdump expression for IP packets and quote it, "
                "e.g. 'host 10.0.0.5 and port 80'",
                EXIT_USAGE,
            )


def display_filter(opts: WatchOptions) -> DisplayFilter:
    return DisplayFilter(
        errors_only=opts.errors,
        slower_than_ns=opts.slower_than_ns,
        kinds=frozenset(opts.kinds) if opts.kinds else frozenset(Kind.ALL),
        pids=frozenset(opts.pids),
        comms=frozenset(opts.comms),
        containers=opts.containers,
        fields=opts.fields,
    )


@dataclass
class Capture:
    """A capture as watch runs it: rules, source, engine, process attribution (`packetd top` runs one too).

    `sink` sees every record (before display filters), with its processes attached when attribution is on.
    `frames` is what `pump` reads a file from: the source itself, or watch's progress line around it.
    """

    opts: WatchOptions
    rules: list[Rule]
    source: Source | CaptureFile
    engine: Engine
    resolver: ProcessResolver | None
    held: HeldRecords | None
    ports: PortTally  # where the packets went, for the hint when no connection is found (pipeline/hint.py)
    quiet: QuietHint
    frames: Iterable[tuple[int, int, memoryview]]
    # the frame function: the engine's, or one that also files packets for -w (capture/pcapout.py)
    frame: Callable[[int, int, memoryview], None] | None = None
    pcap_out: PcapOut | None = None
    user_filter: OfflineFilter | None = None  # a file's packets through the positional expression

    @property
    def live(self) -> bool:
        return self.opts.pcap_file is None

    def pump(self, halt: Halt, on_tick: Callable[[int], None] | None = None, hints: bool = True) -> None:
        """Feed every frame to the engine until the source ends, `halt.now`, or --duration; `hints`: the
        quiet-capture hint on stderr (not under a full-screen view)."""
        frame, held, opts, engine = self.frame or self.engine.frame, self.held, self.opts, self.engine
        if self.live:
            deadline = time.monotonic() + opts.duration_ns / 1e9 if opts.duration_ns else None
            for ts, lt, data in self.source:
                if lt == TICK:
                    engine.tick(ts)
                    if hints and self.quiet.due(time.monotonic(), engine.connections_decoded()):
                        _hint(engine, self.rules, f"in {self.quiet.after_s:.0f}s")
                    if held is not None:
                        held.flush()  # a quiet moment: connections noted since the last pass
                    if on_tick is not None:
                        on_tick(ts)
                else:
                    frame(ts, lt, data)
                    if held is not None and ts >= held.due:
                        held.flush()
                if halt.now or (deadline is not None and time.monotonic() >= deadline):
                    break
        elif opts.duration_ns:
            first = -1
            for ts, lt, data in self.frames:
                if first < 0:
                    first = ts
                elif ts - first > opts.duration_ns:
                    break
                frame(ts, lt, data)
                if halt.now:
                    break
        else:
            for ts, lt, data in self.frames:
                frame(ts, lt, data)
                if halt.now:
                    break

    def finish(self, halt: Halt) -> None:
        """Drain the kernel's last packets (live), flush the engine and the held records."""
        source = self.source
        if self.live and hasattr(source, "drain") and not halt.forced:
            time.sleep(0.12)  # let the kernel retire the block holding the last packets
            frame = self.frame or self.engine.frame
            for ts, lt, data in source.drain():
                frame(ts, lt, data)
        self.engine.finish()
        if self.pcap_out is not None:
            self.pcap_out.finish()
        if self.held is not None:
            self.held.flush()

    def close(self) -> dict[str, tuple[int, int]]:
        """Close the source (file warnings on stderr); the kernel's (received, dropped) per interface."""
        kernel = self.source.stats()
        if isinstance(self.source, CaptureFile):
            for w in self.source.warnings:
                _warn(w)
        if self.user_filter is not None:
            for lt, why in sorted(self.user_filter.refused.items()):
                _warn(f"filter expression: packets of link type {lt} skipped: {why}")
        self.source.close()
        return kernel

    def elapsed(self, started: float) -> str:
        """Wall time live; a file's own time, its first to its last packet."""
        if self.live:
            return f"{time.monotonic() - started:.1f}s"
        first = self.ports.first_ns
        span = self.engine.flows.now_ns - first if first >= 0 else 0
        return f"{format_duration(max(span, 0))} of packet time"


def open_capture(opts: WatchOptions, display: DisplayFilter, sink: Callable[[Roundtrip], None]) -> Capture:
    rules = build_rules(opts.protos)
    config = engine_config(opts, rules)
    _check_live_expression(opts)
    user_filter = None if opts.pcap_file is None else _offline_filter(opts)
    source = open_source(opts, rules)
    resolver = _process_resolver(opts, opts.pcap_file is None, display)
    held = None
    if resolver is not None:
        from packetd.attribution.processes import HeldRecords

        held = HeldRecords(resolver, sink)
    ports = PortTally()
    downstream = held if held is not None else sink
    pcap: list[PcapOut] = []  # -w sees every record as the engine emits it, before any holding

    def tapped(rt: Roundtrip) -> None:
        pcap[0].record(rt)
        downstream(rt)

    engine = Engine(
        config,
        tapped if opts.write_file else downstream,
        on_connection=resolver.note if resolver is not None else None,
        ports=ports,
    )
    frames: Iterable[tuple[int, int, memoryview]] = source
    if user_filter is not None:
        frames = (f for f in source if user_filter(f[1], f[2]))
    cap = Capture(
        opts=opts,
        rules=rules,
        source=source,
        engine=engine,
        resolver=resolver,
        held=held,
        ports=ports,
        quiet=QuietHint(time.monotonic()),
        frames=frames,
        user_filter=user_filter,
    )
    if opts.write_file:
        pcap.append(_pcap_out(cap, display))
        cap.pcap_out = pcap[0]
        cap.frame = _pcap_frame(engine, ports, pcap[0])
    return cap


def _pcap_out(cap: Capture, display: DisplayFilter) -> PcapOut:
    """-w FILE: which connections qualify (the display filter's content conditions, --write-only)."""
    opts = cap.opts
    assert opts.write_file is not None
    try:
        out = open(opts.write_file, "wb")  # noqa: SIM115 (closed by print_pcap_out)
    except OSError as exc:
        cap.source.close()
        _fail(f"cannot write -w {opts.write_file}: {exc.strerror}", EXIT_USAGE)
    from packetd.capture.pcapout import PcapOut

    accept, mode, slower = display.accept_content, opts.write_only, opts.slower_than_ns

    def qualifies(rt: Roundtrip) -> bool:
        if not accept(rt):
            return False
        if mode == "errors":
            return rt.error
        if mode == "slow":
            d = rt.duration_ns
            return d is not None and d > slower
        return True

    comment = f"packetd {__version__}: rules {', '.join(_rule_text(r) for r in cap.rules)}"
    if opts.expression:
        comment += f"; filter '{opts.expression}'"
    if mode:
        comment += f"; only connections with {'an error' if mode == 'errors' else 'a slow roundtrip'}"
    return PcapOut(out, cap.engine.flows, qualifies, comment, cap.source.name)


def _pcap_frame(
    engine: Engine, ports: PortTally, pcap_out: PcapOut
) -> Callable[[int, int, memoryview], None]:
    """Engine's tallied frame function that also hands each frame to -w once the flow table has it."""
    decode = engine.net.decode
    segment = engine.flows.segment
    stats = engine.flows.stats
    packet = pcap_out.packet

    def frame(ts: int, lt: int, data: memoryview) -> None:
        seg = decode(ts, lt, data)
        if seg is not None:
            if ports.active:  # as Engine's tallied frame (the first-run hint)
                ports.add(seg)
                if stats.created:
                    ports.active = False
            segment(seg)
            packet(seg, ts, lt, data)

    return frame


def print_pcap_out(cap: Capture) -> None:
    out = cap.pcap_out
    if out is None:
        return
    left = sum(out.left_out.values())
    click.echo(
        f"packetd: wrote {plural(out.written_packets, 'packet')} of "
        f"{plural(out.written_connections, 'connection')} to {cap.opts.write_file} "
        f"({plural(out.dropped_connections, 'connection')} not written)"
        + (
            f"; {left} packets left out ({', '.join(f'{k}: {v}' for k, v in sorted(out.left_out.items()))}"
            " budget), each gap commented in the file"
            if left
            else ""
        ),
        err=True,
    )
    out.close()


def _rule_text(rule: Rule) -> str:
    return f"{rule.protocol}:{','.join(map(str, rule.ports))}" + (f";{rule.host}" if rule.host else "")


def capturing_banner(cap: Capture) -> None:
    desc = ", ".join(f"{r.protocol}:{','.join(map(str, r.ports))}" for r in cap.rules)
    click.echo(f"packetd: capturing on {cap.source.name} ({desc}); Ctrl-C to stop", err=True)


def end_hint(cap: Capture, elapsed: str) -> None:
    """No connection at all: where the packets went and what to type (pipeline/hint.py)."""
    if not cap.engine.connections_decoded():
        _hint(cap.engine, cap.rules if cap.live else None, f"in {elapsed}")


def print_resolver_stats(resolver: ProcessResolver) -> None:
    resolver.close()
    st = resolver.stats
    click.echo(
        f"packetd: processes: {st.found} ends found, {st.not_local} not on this host, {st.closed} closed "
        f"before the lookup, {st.unowned} unowned, {st.ambiguous} ambiguous; {st.passes} lookups "
        f"({st.walks} /proc walks), {st.pending_full} not looked up (pending full), {st.cache_full} evicted",
        err=True,
    )


# -- the watch loop ---------------------------------------------------------------------------------------------
def run_watch(opts: WatchOptions) -> int:
    if opts.workers != 1 and opts.fanout is None:
        from packetd import parallel

        workers, note = parallel.workers_for(opts)
        if note:
            _warn(note)
        if workers > 1:
            return parallel.run(opts, workers)
    live = opts.pcap_file is None
    display = display_filter(opts)
    summary = Summary()
    shown = 0
    halt = Halt(at_once=not live)
    limit = opts.count
    accept = None if display.accepts_all else display.accept
    write: Callable[[Roundtrip], None] | None = None
    add = summary.add

    def sink(rt: Roundtrip) -> None:
        nonlocal shown
        add(rt)
        # after a signal, records still flow: what the kernel already delivered is drained and shown
        if halt.full or (accept is not None and not accept(rt)):
            return
        assert write is not None
        write(rt)
        shown += 1
        if limit and shown >= limit:
            halt.now = halt.full = True

    cap = open_capture(opts, display, sink)
    output = Output(opts, live)
    write = output.write
    if isinstance(cap.source, CaptureFile):
        cap.source.before_read = output.flush  # a pipe: what is batched shows before a read may wait
    if not live and opts.pcap_file not in (None, "-") and sys.stderr.isatty():
        assert opts.pcap_file is not None
        if os.path.isfile(opts.pcap_file):  # a file, not a FIFO or a pipe: its size says how far we are
            progress = for_file(opts.pcap_file, sys.stderr, before_draw=output.flush)
            cap.frames = progress.wrap(cap.frames)
            write = _erasing(progress, output.write)
    started = time.monotonic()
    if live:
        capturing_banner(cap)
    # SIGINT too: a shell starts background jobs with SIGINT ignored, and Python then keeps it ignored;
    # `kill -INT` (what Ctrl-C sends) must stop watch wherever it was started
    signal.signal(signal.SIGINT, halt.signalled)
    signal.signal(signal.SIGTERM, halt.signalled)
    flush = output.flush
    try:
        cap.pump(halt, lambda _ts: flush())
    except KeyboardInterrupt:
        pass  # a second signal: the first one was not answered in time
    except BrokenPipeError:
        _quiet_stdout()
        return 0
    try:
        cap.finish(halt)
        output.close()
    except BrokenPipeError:
        _quiet_stdout()
    except KeyboardInterrupt:
        pass
    kernel = cap.close()
    elapsed = cap.elapsed(started)
    _print_summary(cap.engine, summary, kernel, elapsed, halt.signals > 0)
    end_hint(cap, elapsed)
    print_pcap_out(cap)
    if cap.resolver is not None:
        print_resolver_stats(cap.resolver)
    return 0


def _erasing(progress: Progress, write: Callable[[Roundtrip], None]) -> Callable[[Roundtrip], None]:
    """`write` that first erases the progress line (a record never shares a line with it)."""

    def erase_then_write(rt: Roundtrip) -> None:
        progress.clear()
        write(rt)

    return erase_then_write


def _process_resolver(opts: WatchOptions, live: bool, display: DisplayFilter) -> ProcessResolver | None:
    """Process attribution: on by default live, off for a file; the process filters need it."""
    on = opts.processes if opts.processes is not None else live
    if display.by_process and not on:
        _fail(
            "--pid, --comm and --container need process attribution (--processes; off for a capture file)",
            EXIT_USAGE,
        )
    if not on:
        return None
    if not os.path.exists("/proc/self/net/tcp"):
        if opts.processes or display.by_process:
            _fail("process attribution needs Linux's /proc (no /proc/self/net/tcp here)", EXIT_USAGE)
        return None
    from packetd.attribution.processes import ProcessResolver

    return ProcessResolver()


class Halt:
    """Why and when watch stops: a record limit, or SIGINT/SIGTERM.

    Live, the first signal only sets a flag, read between frames (the source yields at least every 200 ms),
    so no frame is left half-processed: an exception raised in the middle of one left a flow advanced past
    bytes its decoder never saw, and the drain that follows then replayed them as retransmissions. A second
    signal raises KeyboardInterrupt: Ctrl-C twice always stops, even when a write to a blocked pipe holds
    the loop up. Reading a file or a pipe, where nothing is drained afterwards and a read from a quiet pipe
    may block for ever, the first signal raises at once.
    """

    __slots__ = ("at_once", "full", "now", "signals")

    def __init__(self, at_once: bool) -> None:
        self.at_once = at_once
        self.now = False  # stop reading (read between frames: a plain attribute)
        self.full = False  # --count records were shown: show no more
        self.signals = 0

    @property
    def forced(self) -> bool:
        """A signal raised KeyboardInterrupt: stop without draining."""
        return self.signals > 1 or (self.at_once and self.signals > 0)

    def signalled(self, signum: int, frame: Any) -> None:
        self.signals += 1
        self.now = True
        if self.forced:
            raise KeyboardInterrupt


def _quiet_stdout() -> None:
    # the reader went away (`| head`): stop writing, and keep Python from complaining at exit
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _print_summary(
    engine: Engine, summary: Summary, kernel: dict[str, tuple[int, int]], elapsed: str, interrupted: bool
) -> None:
    """`elapsed`: wall time live, packet time (first to last packet) for a file, already worded."""
    err: Callable[[str], None] = lambda s: click.echo(s, err=True)  # noqa: E731
    net = engine.net.stats
    flows = engine.flows.stats
    drops = sum(d for _, d in kernel.values())
    kinds = summary.kinds
    resets = sum(s.resets for s in engine.protocol_stats.values())
    sync = sum(s.sync_lost for s in engine.protocol_stats.values())
    orphans = sum(s.pairing.orphans for s in engine.protocol_stats.values())
    encrypted = sum(s.encrypted for s in engine.protocol_stats.values())
    err("")
    err(
        f"packetd: {plural(net.frames, 'packet')} in {elapsed}, {drops} dropped by the kernel"
        + (f" ({', '.join(f'{k}: {d}' for k, (_, d) in kernel.items())})" if len(kernel) > 1 else "")
        + f"; {plural(flows.created, 'connection')} ({flows.midstream} joined mid-stream, {encrypted} encrypted)"
    )
    err(
        f"packetd: {plural(kinds[Kind.ROUNDTRIP], 'roundtrip')}, {plural(kinds[Kind.HANDSHAKE], 'handshake')}, "
        f"{kinds[Kind.ONEWAY]} one-way, {kinds[Kind.UNANSWERED]} unanswered; "
        f"{plural(orphans, 'orphan response')}, {plural(resets, 'decode reset')}, {plural(flows.gaps, 'gap')} "
        f"({plural(flows.gap_bytes, 'byte')}), {plural(sync, 'resync')}, {plural(flows.duplicates, 'retransmission')}"
        # what the flow layer's bounds and checks refused, only when something was
        + (f", {flows.evicted} connections evicted (table full)" if flows.evicted else "")
        + (f", {flows.rst_out_of_window} out-of-window RSTs ignored" if flows.rst_out_of_window else "")
        + (f", {flows.ooo_overflows} reorder-buffer overflows" if flows.ooo_overflows else "")
    )
    detection = engine.flows.detection
    if detection is not None and detection.stats.describe():
        err(detection.stats.describe())  # what was found where (detection by content)
    for name, pstats in sorted(engine.protocol_stats.items()):
        if pstats.counters:  # events a decoder counts instead of recording (AMQP heartbeats, consumer acks)
            err(
                f"packetd: {name} counters: "
                + ", ".join(f"{k}={v}" for k, v in sorted(pstats.counters.items()))
            )
    for line in summary.table(SUMMARY_ROWS):
        err(line)
    if interrupted:
        err("packetd: interrupted")


def _hint(engine: Engine, live_rules: list[Rule] | None, quiet: str) -> None:
    """No connection on a watched port: where the packets went and what to type; live, when the kernel
    filter let nothing through, this host's busiest TCP servers."""
    assert engine.ports is not None
    detection = engine.flows.detection
    lines = hint_lines(engine.ports, engine.registry, detection.stats.detected_ports if detection else None)
    if not lines and live_rules is not None:
        from packetd.attribution.listening import busiest_servers, read_tables

        watched = {
            (t, p) for r in live_rules for t in engine.registry[r.protocol].transports for p in r.ports
        }
        lines = host_hint_lines(busiest_servers(read_tables()), watched, quiet, engine.registry)
    for line in lines:
        click.echo(line, err=True)


if __name__ == "__main__":
    main()
