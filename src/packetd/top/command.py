"""The `packetd top` subcommand (I/O): watch's capture, records into an Aggregator, shown live or once.

Runs the capture exactly as `watch` does (cli.open_capture: the same rules, engine, display filters and
process attribution) and hands every record that passes watch's display filters, as its redacted JSON
view, to the aggregator. Three ways out:

* live, stdout a terminal, `--format table`: the Textual app (app.py); the capture runs in a thread and
  stops within one source tick (200 ms) after the app quits; the last table is printed when it ends.
* a file (`--pcap-file`), or stdout not a terminal, or `--format json`: the capture runs to its end (the
  file's end, --duration, or Ctrl-C) and one table is printed — plain text, or one JSON document
  (render.py documents its shape).

The window slides on packet time; for a file it is the whole capture unless `--window` is given.
This module imports nothing heavy until the command runs (`packetd watch` does not pay for Textual).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from collections.abc import Callable

    from packetd.cli import Capture, Halt
    from packetd.top.app import Board

# watch's flags that top takes as they are (by click name): the capture, the decoders, the filters.
# Output flags (--format's text/json lines, --roundtrips.*, --count, --color) are watch's own.
SHARED = (
    "protos",
    "ifaces",
    "pcap_file",
    "ipv",
    "no_promisc",
    "duration",
    "errors",
    "slower_than",
    "kinds",
    "engine",
    "user",
    "block_num",
    "capture_body",
    "decoder_opts",
    "conn_expired",
    "max_memory_mb",
    "kernel_drop_acks",
    "processes",
    "pids",
    "comms",
    "containers",
)
MIN_REFRESH_NS = 50_000_000
DEFAULT_WINDOW = "60s"  # live: a minute of traffic, in 20 slices of 3 s


def build_command(watch: click.Command) -> click.Command:
    """`top`, with watch's capture flags (the same Parameter objects: one definition) and its own."""
    from packetd.top.aggregate import GROUPINGS, SORTS

    duration = next(p for p in watch.params if p.name == "duration").type
    own: list[click.Parameter] = [
        click.Option(
            ["--group-by", "group_by"],
            type=click.Choice(GROUPINGS),
            default="server",
            show_default=True,
            help="Rows per server (ip:port), client (ip), operation, path (templated: /users/{id}) or "
            "process (the local process of the server end, else of the client end; needs --processes).",
        ),
        click.Option(
            ["--sort-by", "sort_by"],
            type=click.Choice(SORTS),
            default="count",
            show_default=True,
            help="Largest first by this column.",
        ),
        click.Option(
            ["--window"],
            type=duration,
            default=None,
            help=f"Sliding window of packet time (default: {DEFAULT_WINDOW} live, the whole capture for a file).",
        ),
        click.Option(
            ["--refresh"],
            type=duration,
            default="1s",
            show_default=True,
            help="Redraw the live table every D.",
        ),
        click.Option(
            ["--format", "top_format"],
            type=click.Choice(["table", "json"]),
            default="table",
            show_default=True,
            help="table (live on a terminal, else printed once at the end) or one JSON document at the end.",
        ),
    ]
    shared = [p for p in watch.params if p.name in SHARED]

    def callback(**kw: Any) -> None:
        defaults = watch.make_context("watch", []).params
        sys.exit(run_top({**defaults, **{k: kw[k] for k in SHARED}}, kw))

    return click.Command(
        "top",
        callback=callback,
        params=shared + own,
        help="Live table of roundtrips grouped by server, client, operation, path or process, with "
        "counts, errors and latency percentiles over a sliding window (or one table of a capture file).",
        context_settings={"max_content_width": 110},
    )


def run_top(watch_kw: dict[str, Any], kw: dict[str, Any]) -> int:
    from packetd import cli
    from packetd.pairing.roundtrip import Roundtrip
    from packetd.top.aggregate import Aggregator
    from packetd.top.app import Board
    from packetd.units import parse_duration

    if kw["refresh"] < MIN_REFRESH_NS:
        cli._fail("--refresh must be at least 50ms (a redraw costs a sort of every row)", cli.EXIT_USAGE)
    opts = cli.watch_options(watch_kw)
    live = opts.pcap_file is None
    window = kw["window"] if kw["window"] is not None else (parse_duration(DEFAULT_WINDOW) if live else None)
    try:
        board = Board(Aggregator(window))
    except ValueError as exc:
        cli._fail(f"--window: {exc}", cli.EXIT_USAGE)
    display = cli.display_filter(opts)
    accept, lock, add = display.accept, board.lock, board.aggregator.add

    def sink(rt: Roundtrip) -> None:
        if accept(rt):
            rec = rt.to_json()  # the redacted view: every row, cell and line is built from it
            with lock:
                add(rec, rt.end_ns)

    cap = cli.open_capture(opts, display, sink)
    if cap.resolver is None and kw["group_by"] == "process":
        cli._warn("--group-by process: process attribution is off (a capture file: --processes turns it on)")
    halt = cli.Halt(at_once=not live)
    interactive = live and kw["top_format"] == "table" and sys.stdout.isatty()
    started = time.monotonic()
    if interactive:
        _run_app(cap, halt, board, kw)
    else:
        if live:
            cli.capturing_banner(cap)
        elif opts.pcap_file != "-" and sys.stderr.isatty() and os.path.isfile(str(opts.pcap_file)):
            from packetd.export.progress import for_file

            # watch's progress line while the file is read (nothing else is written until the end)
            cap.frames = for_file(str(opts.pcap_file), sys.stderr).wrap(cap.source)
        _run_batch(cap, halt, board)
    kernel = cap.close()
    try:
        _print_final(board, kw)
    except BrokenPipeError:
        cli._quiet_stdout()  # `| head`: the reader has what it wanted
    cli.end_hint(cap, cap.elapsed(started))
    drops = sum(d for _, d in kernel.values())
    if drops:
        cli._warn(f"{drops} packets dropped by the kernel")
    if cap.resolver is not None:
        cli.print_resolver_stats(cap.resolver)
    return 0


def _advance(board: Board) -> Callable[[int], None]:
    def tick(ts: int) -> None:
        with board.lock:
            board.aggregator.advance(ts)

    return tick


def _run_batch(cap: Capture, halt: Halt, board: Board) -> None:
    signal.signal(signal.SIGINT, halt.signalled)
    signal.signal(signal.SIGTERM, halt.signalled)
    try:
        cap.pump(halt, _advance(board))
        cap.finish(halt)
    except KeyboardInterrupt:
        pass  # a second signal (or a file's first): what was aggregated is printed


def _run_app(cap: Capture, halt: Halt, board: Board, kw: dict[str, Any]) -> None:
    from packetd.top.app import TopApp

    def capture() -> None:
        try:
            cap.pump(halt, _advance(board), hints=False)  # stderr lines would tear the full-screen view
            cap.finish(halt)
        except Exception as exc:  # the app shows it and ends: the loop never dies silently
            board.error = f"capture stopped: {type(exc).__name__}: {exc}"
        else:
            if not halt.now:
                board.error = "capture ended"  # --duration, or the source went away

    def stop() -> None:
        halt.now = True

    board.status = f"· {cap.source.name}"
    app = TopApp(board, kw["group_by"], kw["sort_by"], kw["refresh"] / 1e9, on_exit=stop)
    thread = threading.Thread(target=capture, name="packetd-top-capture", daemon=True)
    thread.start()
    signal.signal(signal.SIGTERM, lambda *_: app.call_later(app.exit))
    try:
        app.run()
    finally:
        halt.now = True
        thread.join(timeout=5)
    if board.error and board.error != "capture ended":
        click.echo(f"packetd: {board.error}", err=True)


def _width() -> int:
    """The terminal's own width when stdout is one (a stale exported $COLUMNS must not win), else
    $COLUMNS, else 120."""
    if sys.stdout.isatty():
        try:
            return os.get_terminal_size(sys.stdout.fileno()).columns
        except OSError:
            pass
    return shutil.get_terminal_size((120, 24)).columns


def _print_final(board: Board, kw: dict[str, Any]) -> None:
    import orjson

    from packetd.top.render import document, table_text

    agg, grouping, sort_by = board.aggregator, kw["group_by"], kw["sort_by"]
    if kw["top_format"] == "json":
        sys.stdout.buffer.write(
            orjson.dumps(document(agg, grouping, sort_by), option=orjson.OPT_APPEND_NEWLINE)
        )
        sys.stdout.flush()
        return
    width = _width()
    color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    for line in table_text(agg.table(grouping, sort_by), grouping, width, color):
        click.echo(line)
    folded = agg.folded[grouping]
    click.echo(
        f"packetd: {agg.records} records"
        + (f", {folded} folded into (other)" if folded else "")
        + (f", {agg.late} older than the window" if agg.late else ""),
        err=True,
    )
