"""The dashboard: every workflow of the database, its detail, the inbox, the raw tables.

Workflows are listed a page at a time with filters (status, name, time
range), each page one indexed query (``store.list_workflows`` with limit and
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
from ..views import badge, esc, fmt_time, where_running
from .base import LivePanel, button, html, show, style_widget
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
_COLS = (("name", 160), ("status", 105), ("steps", 45), ("created", 110), ("started by", 90), ("running", 140))
_ID_WIDTH = "132px"  # the open button: a 16-character id in the code font


def dashboard(engine: Engine | None = None, *, page_size: int = 20) -> DashboardPanel:
    """Every workflow of the database (all kernels), a detail view, the inbox and the tables.

    >>> airt_nb.dashboard()            # doctest: +SKIP
    """
    if engine is None:
        from .. import session

        engine = session.engine()
    return DashboardPanel(engine, page_size=page_size)


def _cells(values: list[str]) -> str:
    # one line whatever the width: a too narrow output clips the last column instead of wrapping
    return (
        '<div style="white-space:nowrap;overflow:hidden">'
        + "".join(
            f'<span style="display:inline-block;width:{width}px;overflow:hidden;white-space:nowrap;'
            f'text-overflow:ellipsis;vertical-align:middle">{value}</span>'
            for value, (_, width) in zip(values, _COLS, strict=True)
        )
        + "</div>"
    )


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
        self.message_html = html("", "airt-message")
        head = widgets.HBox(
            [
                html('<span class="airt-muted">workflow_id</span>', width=_ID_WIDTH),
                html(f'<span class="airt-muted">{_cells([c for c, _ in _COLS])}</span>'),
            ]
        )
        workflows = widgets.VBox(
            [
                widgets.HBox([self.status_filter, self.name_filter, self.range_filter]),
                self.counts_html,
                head,
                *self.rows,
                widgets.HBox([self.prev_button, self.next_button, self.page_html]),
                self.message_html,
                self.detail_box,
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
        self.add_class("airt-panel")
        self.add_class("airt-dashboard")
        self._live_start(engine)

    def _row(self, index: int) -> widgets.HBox:
        open_button = button("", "airt-open", tooltip="Show this run below")
        open_button.layout.width = _ID_WIDTH
        cells = html("", "airt-row-cells")
        row = widgets.HBox([open_button, cells])
        row.add_class("airt-row")
        open_button.on_click(lambda _: self.safely(self.show_detail, self.records[index].workflow_id))
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
            open_button, cells = row.children
            open_button.description = record.workflow_id
            where = where_running(record, self.engine.owner_id)
            if not where and record.waiting_for:
                where = f"needs {record.waiting_for}"
            cells.value = _cells(
                [
                    f"<b>{esc(record.name)}</b>",
                    badge(record.status),
                    f"{record.done_steps}/{record.total_steps}",
                    esc(fmt_time(record.created_at)),
                    esc(record.started_by or ""),
                    f'<span class="airt-muted">{esc(where)}</span>',
                ]
            )
        first = self.page * self.page_size + 1 if self.records else 0
        self.page_html.value = (
            f'<span class="airt-muted">{first:,}–{first + len(self.records) - 1 if self.records else 0:,} of '
            f"{self.total:,} (newest first) · page {self.page + 1:,} of {pages:,}</span>"
        )
        self.prev_button.disabled = self.page == 0
        self.next_button.disabled = self.page >= pages - 1

    def _wants(self, event: Event) -> bool:
        return False  # the dashboard follows the database, not one engine's events

    def _poll(self, changed: bool, now: float) -> bool:
        self._changed = self._changed or changed
        if not self._changed or now - self._last_check < self.check_every:
            return False
        self._last_check = now
        self._changed = False
        return self.engine.store.last_change() != self._token

    # -- detail and tables ---------------------------------------------------------------------------------------

    def show_detail(self, workflow_id: str) -> RunPanel:
        """Show one workflow's live panel under the list."""
        if self.detail is not None:
            self.detail.stop_live()
            self.detail.close()
        self.detail = RunPanel(self.engine.get(workflow_id))
        close = button("Close detail", "airt-close-detail")
        close.layout.align_self = "flex-start"
        close.on_click(lambda _: self._close_detail())
        self.detail_box.children = (self.detail, close)
        return self.detail

    def _close_detail(self) -> None:
        if self.detail is not None:
            self.detail.stop_live()
            self.detail.close()
            self.detail = None
        self.detail_box.children = ()

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

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        data = super()._repr_mimebundle_(**kwargs) or {}
        data["text/plain"] = f"airt_nb dashboard of {self.engine.db}: {self.total} workflows"
        return data
