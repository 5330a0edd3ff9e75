"""The dashboard: every workflow of the database, its detail, the inbox, the raw tables.

Workflows are listed a page at a time with filters (status, name, time
range), one line each (status, steps, duration, when, who, where, error);
a workflow's live panel opens right under its line.  Each page is one indexed query (``store.list_workflows`` with limit and
offset) plus a count, so it stays fast at 100,000 workflows.  It refreshes
by itself: the refresher reports a database change (``PRAGMA data_version``),
and at most once a second the dashboard asks ``store.last_change()`` whether
the workflows changed before re-reading the page; it never reloads all of
them.  Workflows of other kernels sharing the database show up the same
way.  The raw tables are loaded as DataFrames on request (pandas is
imported then, not before).
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..timeutil import iso
from ..views.text import badge, esc, fmt_duration, fmt_time, seconds_between, short, stamp, where_running
from ..views.theme import stylesheet
from .base import LivePanel, button, cells, html, show, style_widget
from .inbox import InboxPanel
from .run_panel import RunPanel

if TYPE_CHECKING:
    from ..engine import Engine
    from ..events import Event
    from ..store.records import WorkflowRecord

__all__ = ["DashboardPanel", "dashboard"]

STATUSES = ["RUNNING", "PAUSED", "COMPLETED", "FAILED", "ROLLING_BACK", "ROLLED_BACK", "CANCELLED"]
RANGES = [("any time", 0), ("last hour", 3600), ("last 24 hours", 86400), ("last 7 days", 7 * 86400)]
TABLES = ["runs", "steps", "approvals", "compensations", "attempts", "deliveries", "audit"]
_COLS = ("name", "status", "steps", "took", "created", "started by", "where / error")
_WIDTHS = [130, 108, 62, 66, 128, 76, 110]
_ID_WIDTH = "132px"  # the open button: a 16-character id in the code font


def dashboard(engine: Engine | None = None, *, page_size: int = 20) -> DashboardPanel:
    """Every workflow of the database (all kernels), a detail view, the inbox and the tables.

    ``%workflow dashboard`` shows the same panel.

    Examples
    --------
    >>> airt_nb.dashboard()            # doctest: +SKIP
    """
    if engine is None:
        from .. import session

        engine = session.engine()
    return DashboardPanel(engine, page_size=page_size)


class DashboardPanel(LivePanel, widgets.VBox):
    """Workflows (filters, paging, detail), approvals inbox and raw tables in tabs."""

    check_every = 1.0  # seconds between "anything changed?" queries

    def __init__(self, engine: Engine, *, page_size: int = 20):
        self.page_size = page_size
        self.page = 0
        self.total = 0
        self.records: list[WorkflowRecord] = []
        self.detail: RunPanel | None = None
        self._token: Any = None
        self._changed = False
        self._last_check = 0.0
        self.status_filter = widgets.Dropdown(
            options=[("all statuses", "")] + [(s, s) for s in STATUSES], description="Status"
        )
        self.name_filter = widgets.Text(placeholder="name contains…", description="Name", continuous_update=False)
        self.range_filter = widgets.Dropdown(options=RANGES, description="Created")
        for w in (self.status_filter, self.name_filter, self.range_filter):
            w.layout.width = "230px"
            w.observe(lambda _: self._filters_changed(), names="value")
        self.status_filter.add_class("airt-filter-status")
        self.name_filter.add_class("airt-filter-name")
        self.range_filter.add_class("airt-filter-range")
        self.counts_html = html("", "airt-counts")
        self.rows = [self._row(i) for i in range(page_size)]
        self.prev_button = button("◀ Newer", "airt-prev")
        self.next_button = button("Older ▶", "airt-next")
        self.prev_button.on_click(lambda _: self._go(-1))
        self.next_button.on_click(lambda _: self._go(1))
        self.page_html = html("", "airt-page")
        self.detail_box = widgets.VBox()
        self.detail_box.add_class("airt-detail")
        self.detail_row: int | None = None
        self.message_html = html("", "airt-message")
        self.head = widgets.HBox(
            [
                html('<span class="airt-muted">workflow_id</span>', width=_ID_WIDTH, flex="0 0 auto"),
                html(cells(list(_COLS), _WIDTHS, head=True), flex="1 1 auto"),
            ]
        )
        self.list_box = widgets.VBox([self.head, *self.rows])
        self.list_box.add_class("airt-dashboard-list")
        workflows = widgets.VBox(
            [
                widgets.HBox([self.status_filter, self.name_filter, self.range_filter]),
                self.counts_html,
                self.list_box,
                widgets.HBox([self.prev_button, self.next_button, self.page_html]),
                self.message_html,
            ]
        )
        self.inbox = InboxPanel(engine)
        self.table_choice = widgets.Dropdown(options=TABLES, description="Table")
        self.load_button = button("Load", "airt-load-table")
        self.load_button.on_click(lambda _: self.safely(self.load_table))
        self.table_out = widgets.Output()
        self.table_out.add_class("airt-table-out")
        tables = widgets.VBox([widgets.HBox([self.table_choice, self.load_button]), self.table_out])
        self.tabs = widgets.Tab([workflows, self.inbox, tables])
        for i, title in enumerate(("Workflows", "Approvals", "Tables")):
            self.tabs.set_title(i, title)
        self.title_html = html("", "airt-dashboard-title")
        super().__init__([style_widget(), self.title_html, self.tabs])
        for css in ("airt-root", "airt-panel", "airt-dashboard", "airt-live"):
            self.add_class(css)
        self._live_start(engine)

    def _row(self, index: int) -> widgets.HBox:
        open_button = button("", "airt-open", tooltip="Show this run's live panel under this line", width=_ID_WIDTH)
        line = html("", "airt-row-cells", flex="1 1 auto")
        row = widgets.HBox([open_button, line])
        row.add_class("airt-row")
        open_button.on_click(lambda _: self.safely(self._toggle_detail, index))
        return row

    # -- querying -------------------------------------------------------------------------------------------

    def filters(self) -> dict[str, Any]:
        """The current filters as ``store.list_workflows`` keywords."""
        seconds = self.range_filter.value
        return {
            "status": self.status_filter.value or None,
            "name": self.name_filter.value.strip() or None,
            "since": iso(time.time() - seconds) if seconds else None,
        }

    def _filters_changed(self) -> None:
        self.page = 0
        self.refresh()

    def _go(self, delta: int) -> None:
        pages = max(1, math.ceil(self.total / self.page_size))
        self.page = min(max(0, self.page + delta), pages - 1)
        self.refresh()

    def _render(self) -> None:
        store = self.engine.store
        self._token = store.last_change()
        filters = self.filters()
        self.total = store.count_workflows(**filters)
        pages = max(1, math.ceil(self.total / self.page_size))
        self.page = min(self.page, pages - 1)
        self.records = store.list_workflows(**filters, limit=self.page_size, offset=self.page * self.page_size)
        counts = store.status_counts()
        everything = sum(counts.values())
        self.title_html.value = (
            f"<b>airt_nb dashboard</b> <span class='airt-muted'>· {esc(self.engine.db)} · {everything:,} "
            f"workflow{'' if everything == 1 else 's'} from every kernel sharing it · updated {esc(fmt_time(iso(time.time())))}</span>"
        )
        self.counts_html.value = " ".join(f"{badge(s)} {counts[s]:,}" for s in STATUSES if counts.get(s))
        for row, record in zip(self.rows, self.records + [None] * self.page_size, strict=False):
            show(row, record is not None)
            if record is None:
                continue
            open_button, line = row.children
            open_button.description = record.workflow_id
            line.value = cells(self._values(record), _WIDTHS)
        if self.detail is not None:
            self._place_detail()  # newer workflows may have moved its line, or off the page
        first = self.page * self.page_size + 1 if self.records else 0
        self.page_html.value = (
            f'<span class="airt-muted">{first:,}–{first + len(self.records) - 1 if self.records else 0:,} of '
            f"{self.total:,} (newest first) · page {self.page + 1:,} of {pages:,}</span>"
        )
        self.prev_button.disabled = self.page == 0
        self.next_button.disabled = self.page >= pages - 1

    def wants(self, event: Event) -> bool:
        return False  # the dashboard follows the database, not one engine's events

    def poll_due(self, changed: bool, now: float) -> bool:
        self._changed = self._changed or changed
        if not self._changed or now - self._last_check < self.check_every:
            return False
        self._last_check = now
        self._changed = False
        return self.engine.store.last_change() != self._token

    # -- detail and tables ---------------------------------------------------------------------------------------

    def _values(self, record: WorkflowRecord, *, live: bool = True) -> list[str]:
        where = where_running(record, self.engine.owner_id)
        if where == "here":
            where = "this kernel"
        elif not where and record.waiting_for:
            where = f"needs {record.waiting_for}"
        took = fmt_duration(seconds_between(record.created_at, record.finished_at)) if record.finished_at else ""
        error = record.error.splitlines()[0] if record.error else ""
        # a finished run runs nowhere and a running one has no error yet: one column says either
        last = (
            f'<span class="airt-error" title="{esc(error)}">{esc(short(error, 200))}</span>'
            if error
            else f'<span class="airt-muted">{esc(where)}</span>'
        )
        origin = ""
        if record.parent_id:
            origin = f' <span class="airt-muted">↳ child of {esc(record.parent_id[:8])}</span>'
        elif record.forked_from:
            origin = f' <span class="airt-muted">↱ fork of {esc(record.forked_from[:8])}</span>'
        return [
            f"<b>{esc(record.name)}</b>{origin}",
            badge(record.status),
            f"{record.done_steps} / {record.total_steps}",
            esc(took),
            esc(stamp(record.created_at) if live else fmt_time(record.created_at)),
            esc(record.started_by or ""),
            last,
        ]

    def _toggle_detail(self, index: int) -> None:
        workflow_id = self.records[index].workflow_id
        if self.detail is not None and self.detail.workflow_id == workflow_id:
            self._close_detail()
        else:
            self.show_detail(workflow_id)

    def show_detail(self, workflow_id: str) -> RunPanel:
        """Open one workflow's live panel right under its line (or under the list if it is not on this page)."""
        self._close_detail()
        self.detail = RunPanel(self.engine.get(workflow_id))
        close = button("Close detail", "airt-close-detail")
        close.layout.align_self = "flex-start"
        close.on_click(lambda _: self._close_detail())
        self.detail_box.children = (self.detail, close)
        self._place_detail()
        return self.detail

    def _place_detail(self) -> None:
        """Put the open detail right under its workflow's line (under the list when not on this page)."""
        assert self.detail is not None
        found = [i for i, r in enumerate(self.records) if r.workflow_id == self.detail.workflow_id]
        self.detail_row = found[0] if found else None
        children = [c for c in self.list_box.children if c is not self.detail_box]
        at = self.detail_row + 2 if self.detail_row is not None else len(children)  # after the head and the row
        children.insert(min(at, len(children)), self.detail_box)
        if tuple(children) != tuple(self.list_box.children):
            self.list_box.children = tuple(children)
        for i, row in enumerate(self.rows):
            (row.add_class if i == self.detail_row else row.remove_class)("airt-row-selected")

    def _close_detail(self) -> None:
        if self.detail is not None:
            self.detail.stop_live()
            self.detail.close()
            self.detail = None
        self.detail_row = None
        self.detail_box.children = ()
        if self.detail_box in self.list_box.children:
            self.list_box.children = tuple(c for c in self.list_box.children if c is not self.detail_box)
        for row in self.rows:
            row.remove_class("airt-row-selected")

    def load_table(self, name: str | None = None) -> Any:
        """Load one raw table as a DataFrame into the Tables tab; returns it."""
        from .. import frames

        name = name or self.table_choice.value
        df = getattr(frames, name)(self.engine)
        self.table_out.outputs = ()
        self.table_out.append_display_data(df)
        return df

    def _show_error(self, text: str) -> None:
        self.message_html.value = f'<div class="airt-error">{esc(text)}</div>'

    def close(self) -> None:
        for panel in (self, self.inbox, self.detail):
            if panel is not None:
                panel.stop_live()
        super().close()

    def _snapshot_state(self) -> tuple[Any, bool]:
        return (self._token, tuple((r.workflow_id, r.status, r.done_steps) for r in self.records)), True

    def snapshot_html(self, *, stopped_at: str | None = None) -> str:
        rows = "".join(
            f"<tr><td><code>{esc(r.workflow_id)}</code></td>"
            + "".join(f"<td>{v}</td>" for v in self._values(r, live=False))
            + "</tr>"
            for r in self.records
        )
        head = "".join(f"<th>{h}</th>" for h in ("workflow_id", *_COLS))
        return (
            f'<div class="airt-root airt-panel airt-snapshot">{stylesheet()}'
            '<div class="airt-stale airt-notice">Saved view, not live: <code>%workflow dashboard</code> '
            f"shows the dashboard live.</div>{self.title_html.value}<div>{self.counts_html.value}</div>"
            f'<table class="airt-table"><tr>{head}</tr>{rows}</table>'
            f"<div>{self.page_html.value}</div></div>"
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        data = super()._repr_mimebundle_(**kwargs) or {}
        data["text/plain"] = f"airt_nb dashboard of {self.engine.db}: {self.total} workflows"
        return data
