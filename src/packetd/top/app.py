"""The live `packetd top` screen: a Textual app over a `Board` (an Aggregator behind a lock).

Theory of operation. The capture runs in its own thread and adds records to the board; the app redraws
the table from the board every `refresh_s` (a Textual interval timer) — the table is a snapshot, rebuilt
whole, so a row that left the window leaves the screen. Keys change the grouping and the sort order and
redraw at once; Enter opens the highlighted row's recent records (the row's ring, aggregate.RECENT), which
refresh too until Escape. The app never touches a record itself: rows, cells and lines come from
aggregate.py and render.py, built from the redacted view.

Keys (shown in the footer):

    g / G    next / previous grouping (server, client, operation, path, process)
    s / S    next / previous sort (count, errors, error-ratio, p50, p99, max)
    Enter, r the highlighted row's recent records (Escape: back)
    p        pause / resume refreshing
    q        quit
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from packetd.top.aggregate import GROUPINGS, MAX_KEY, SORTS, Aggregator, RowView, sparkline
from packetd.top.render import COLUMNS, MIN_KEY, cells, columns, spark_width
from packetd.units import format_duration


class Board:
    """The aggregator shared by the capture thread (add, advance) and the app (snapshots)."""

    def __init__(self, aggregator: Aggregator) -> None:
        self.aggregator = aggregator
        self.lock = threading.Lock()
        self.error: str | None = None  # set when the capture stopped on an error: the app shows it and ends
        self.status = ""  # one line about the capture (source, drops), set by the capture side

    def table(self, grouping: str, sort_by: str) -> list[RowView]:
        with self.lock:
            return self.aggregator.table(grouping, sort_by)

    def recent(self, grouping: str, key: str) -> list[str]:
        with self.lock:
            return self.aggregator.recent(grouping, key)


class RecordsScreen(ModalScreen[None]):
    """One row's most recent records, newest last, refreshed with the table."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "back"),
        Binding("q", "dismiss", "back"),
    ]

    def __init__(self, board: Board, grouping: str, key: str, refresh_s: float) -> None:
        super().__init__()
        self.board, self.grouping, self.key, self.refresh_s = board, grouping, key, refresh_s

    def compose(self) -> ComposeResult:
        yield Static(id="records-title")
        yield Static(id="records")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#records-title", Static).update(
            Text(f"recent records of {self.grouping} {self.key} (newest last)", style="bold")
        )
        self.update_records()
        self.set_interval(self.refresh_s, self.update_records)

    def update_records(self) -> None:
        lines = self.board.recent(self.grouping, self.key)
        self.query_one("#records", Static).update(
            Text("\n".join(lines) if lines else "(no records left in the window)")
        )

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)


class TopApp(App[None]):
    """The table (see the module docstring for the keys)."""

    CSS = "#status { height: 1; } DataTable { height: 1fr; }"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("g", "grouping(1)", "group"),
        Binding("G", "grouping(-1)", "group back", show=False),
        Binding("s", "sort(1)", "sort"),
        Binding("S", "sort(-1)", "sort back", show=False),
        # Enter reaches the table first (RowSelected below); `r` is the same, and shows in the footer
        Binding("r", "records", "records (Enter)"),
        Binding("p", "pause", "pause"),
        Binding("q", "quit", "quit"),
        Binding("ctrl+c", "quit", "quit", show=False),
    ]

    def __init__(
        self,
        board: Board,
        grouping: str = "server",
        sort_by: str = "count",
        refresh_s: float = 1.0,
        on_exit: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self.board = board
        self.grouping = grouping
        self.sort_by = sort_by
        self.refresh_s = refresh_s
        self.paused = False
        self.rows: list[RowView] = []
        self._on_exit = on_exit

    def compose(self) -> ComposeResult:
        yield Static(id="status")
        yield DataTable(id="table", cursor_type="row", zebra_stripes=True, cell_padding=0)
        yield Footer()

    def on_mount(self) -> None:
        self.redraw()
        self.set_interval(self.refresh_s, self.tick)

    def tick(self) -> None:
        if self.board.error is not None:
            self.exit(message=self.board.error)
            return
        if not self.paused:
            self.redraw()

    def redraw(self) -> None:
        """Rebuild the table from a snapshot, keeping the cursor on the same key when it is still there."""
        table = self.query_one(DataTable)
        current = self.highlighted()
        self.rows = self.board.table(self.grouping, self.sort_by)
        width = self.size.width or 80
        table.clear(columns=True)
        cols = columns(width)  # narrow: no PROTO column, a shorter sparkline (as the printed table)
        skip = len(COLUMNS) - len(cols)
        sw = spark_width(width)
        # no cell padding (it costs two columns a cell): one blank column of each cell's own width
        # separates them (numbers are right-aligned), and the scroll bar takes two
        key_w = max(MIN_KEY, width - sum(w + 1 for _, w in cols) - (sw + 1) - 3)
        table.add_column(self.grouping.upper(), key="key", width=min(key_w, MAX_KEY))
        for title, w in cols:
            table.add_column(Text(title, justify="right"), key=title, width=w + 1)
        table.add_column(Text(" LATENCY"), key="spark", width=sw + 1)
        for row in self.rows:
            texts = cells(row)[skip:]
            styled = [Text(t, justify="right") for t in texts]
            if row.errors:
                styled[-5].stylize("bold red")  # the ERR column
            key = row.key if len(row.key) <= key_w - 1 else row.key[: key_w - 2] + "…"
            table.add_row(Text(key), *styled, Text(" " + sparkline(row.spark[-sw:])), key=row.key)
        keys = [r.key for r in self.rows]
        if current in keys:
            table.move_cursor(row=keys.index(current))
        self.update_status()

    def update_status(self) -> None:
        agg = self.board.aggregator
        window = format_duration(agg.window_ns) if agg.window_ns is not None else "all"
        paused = "  PAUSED" if self.paused else ""
        folded = agg.folded[self.grouping]
        extra = f", {folded} folded into (other)" if folded else ""
        self.query_one("#status", Static).update(
            Text(
                f"group by {self.grouping} · sort by {self.sort_by} · window {window} · "
                f"{len(self.rows)} rows, {agg.records} records seen{extra}{paused}  {self.board.status}".rstrip()
            )
        )

    def highlighted(self) -> str | None:
        table = self.query_one(DataTable)
        if not self.rows or table.cursor_row is None or not 0 <= table.cursor_row < len(self.rows):
            return None
        return self.rows[table.cursor_row].key

    def action_grouping(self, step: int) -> None:
        self.grouping = GROUPINGS[(GROUPINGS.index(self.grouping) + step) % len(GROUPINGS)]
        self.redraw()

    def action_sort(self, step: int) -> None:
        self.sort_by = SORTS[(SORTS.index(self.sort_by) + step) % len(SORTS)]
        self.redraw()

    def action_pause(self) -> None:
        self.paused = not self.paused
        if not self.paused:
            self.redraw()
        else:
            self.update_status()

    def action_records(self) -> None:
        key = self.highlighted()
        if key is not None:
            self.push_screen(RecordsScreen(self.board, self.grouping, key, self.refresh_s))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        # Enter on a DataTable selects the row (the table has the focus and takes the key first)
        self.action_records()

    async def action_quit(self) -> None:
        if self._on_exit is not None:
            self._on_exit()
        self.exit()
