"""The approvals inbox: every pending approval of the database, oldest first, one line each.

All kernels and notebooks sharing the database show up in a compact table
(workflow, step, message, when requested, deadline, approvers, whether you
may decide), with filters; the approval picked in the table opens as an
:class:`~.approval_card.ApprovalCard` below it, where it is decided.  "Whether
you may decide" is the card's own check (:func:`~airt_nb.approval_standing.standing`), so
a row never promises what the card then refuses.  The oldest one is picked
when the inbox opens; after a decision nothing is picked by itself (a second
click must never decide the next approval).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..approval_standing import standing
from ..events import ApprovalDecided, ApprovalRequested, Event, WorkflowStatusChanged
from ..views.run_html import decided_text
from ..views.text import ago, countdown, esc, fmt_time, short
from ..views.theme import stylesheet
from .approval_card import ApprovalCard
from .base import LivePanel, button, cells, html, show, style_widget

if TYPE_CHECKING:
    from ..engine import Engine
    from ..store.records import ApprovalRecord

__all__ = ["InboxPanel", "approvals_panel"]

_COLUMNS = ("workflow", "step", "requested", "deadline", "approvers", "you", "message")
_WIDTHS = [120, 90, 74, 104, 80, 44, 120]
_ID_WIDTH = "132px"
_WHO = [("anyone's", ""), ("ones I may decide", "mine")]
_SCAN = 2000  # pending approvals read at most to fill one page of filtered rows


def approvals_panel(engine: Engine | None = None, *, page_size: int = 20) -> InboxPanel:
    """The approvals inbox of ``engine`` (default: the kernel's engine, opened if needed).

    ``%workflow approvals`` shows the same panel.

    Examples
    --------
    >>> airt_nb.approvals_panel()      # doctest: +SKIP
    """
    if engine is None:
        from .. import session

        engine = session.engine()
    return InboxPanel(engine, page_size=page_size)


class InboxPanel(LivePanel, widgets.VBox):
    """Pending approvals, oldest first, in a table with filters; the picked one is decidable below it."""

    def __init__(self, engine: Engine, *, page_size: int = 20):
        self.page_size = page_size
        self.limit = page_size
        self.pending: list[tuple[ApprovalRecord, str]] = []
        self.total = 0
        self.selected: str | None = None
        self._picked_once = False
        self._deadlines = False
        self._last_tick = 0.0
        self.header_html = html("", "airt-inbox-header")
        self.name_filter = widgets.Text(placeholder="workflow or step contains…", continuous_update=False)
        self.name_filter.layout.width = "260px"
        self.name_filter.add_class("airt-filter-name")
        self.who_filter = widgets.Dropdown(options=_WHO, description="Show")
        self.who_filter.layout.width = "250px"
        self.who_filter.add_class("airt-filter-who")
        for w in (self.name_filter, self.who_filter):
            w.observe(lambda _: self._filters_changed(), names="value")
        self.rows = [self._row(i) for i in range(page_size)]
        self.table = widgets.VBox(
            [
                widgets.HBox(
                    [
                        html('<span class="airt-muted">workflow_id</span>', width=_ID_WIDTH, flex="0 0 auto"),
                        html(cells(list(_COLUMNS), _WIDTHS, head=True), flex="1 1 auto"),
                    ]
                ),
                *self.rows,
            ]
        )
        self.table.add_class("airt-inbox-table")
        self.more_button = button("Show more", "airt-more")
        self.more_button.on_click(lambda _: self.safely(self._more))
        self.card = ApprovalCard(engine, on_decided=self._decided, with_workflow=True, lock=self.lock)
        self.message_html = html("", "airt-message")
        super().__init__(
            [
                style_widget(),
                self.header_html,
                widgets.HBox([self.name_filter, self.who_filter]),
                self.table,
                self.more_button,
                self.message_html,
                self.card,
            ]
        )
        for css in ("airt-root", "airt-panel", "airt-inbox", "airt-live"):
            self.add_class(css)
        self._live_start(engine)

    def _row(self, index: int) -> widgets.HBox:
        pick = button("", "airt-open", tooltip="Show this approval below, to decide it", width=_ID_WIDTH)
        line = html("", "airt-row-cells", flex="1 1 auto")
        row = widgets.HBox([pick, line], layout=widgets.Layout(display="none"))
        row.add_class("airt-row")
        pick.on_click(lambda _: self.safely(self.select, self.pending[index][0].approval_id))
        return row

    # -- reading ----------------------------------------------------------------------------------------

    def _matches(self, approval: ApprovalRecord, name: str) -> bool:
        text = self.name_filter.value.strip().lower()
        if text and text not in name.lower() and text not in approval.step_name.lower():
            return False
        return not (self.who_filter.value == "mine" and not standing(self.engine, approval).may_decide)

    def _filtered(self) -> bool:
        return bool(self.name_filter.value.strip() or self.who_filter.value)

    def _read(self) -> None:
        store = self.engine.store
        if not self._filtered():
            self.pending = store.pending_approvals(limit=self.limit)
            self.total = store.count_approvals("PENDING") if len(self.pending) >= self.limit else len(self.pending)
            return
        found: list[tuple[ApprovalRecord, str]] = []
        offset = 0
        while offset < _SCAN:
            batch = store.pending_approvals(limit=200, offset=offset)
            found += [(a, n) for a, n in batch if self._matches(a, n)]
            if len(batch) < 200:
                break
            offset += 200
        self.total = len(found)
        self.pending = found[: self.limit]

    def _render(self) -> None:
        self._read()
        shown = len(self.pending)
        everything = self.engine.store.count_approvals("PENDING")
        if everything == 0:
            self.header_html.value = "<b>Approvals</b> <span class='airt-muted'>· nothing waits for a decision</span>"
        else:
            which = f"{self.total} of {everything} match the filters, " if self._filtered() else f"{everything} "
            rest = f", showing the oldest {shown}" if shown < self.total else ""
            self.header_html.value = (
                f"<b>Approvals</b> <span class='airt-muted'>· {which}waiting for a decision, "
                f"oldest first{rest} · all kernels sharing {esc(self.engine.db)}</span>"
            )
        while len(self.rows) < shown:
            self.rows.append(self._row(len(self.rows)))
            self.table.children = (*self.table.children, self.rows[-1])
        if self.selected is None and not self._picked_once and self.pending:
            self.selected = self.pending[0][0].approval_id
        self._picked_once = self._picked_once or bool(self.pending)
        chosen = None
        for row, item in zip(self.rows, self.pending + [None] * len(self.rows), strict=False):
            show(row, item is not None)
            if item is None:
                continue
            approval, name = item
            pick, line = row.children
            pick.description = approval.workflow_id
            line.value = cells(self._values(approval, name), _WIDTHS)
            picked = approval.approval_id == self.selected
            if picked:
                chosen = item
                row.add_class("airt-row-selected")
            else:
                row.remove_class("airt-row-selected")
        if chosen is not None:
            approval, name = chosen
            store = self.engine.store
            self.card.show(
                approval,
                name,
                store.compensations(approval.workflow_id),
                store.decisions(approval_id=approval.approval_id),
            )
        elif self.selected is not None and not any(a.approval_id == self.selected for a, _ in self.pending):
            self.selected = None
        show(self.card, chosen is not None)
        show(self.more_button, shown < self.total)
        self._deadlines = any(a.deadline for a, _ in self.pending)

    def _values(self, approval: ApprovalRecord, name: str, *, live: bool = True) -> list[str]:
        verdict = standing(self.engine, approval)
        why = verdict.refusal or verdict.already
        you = f'<span class="airt-muted" title="{esc(why)}">—</span>' if why else '<span class="airt-ok">✔</span>'
        return [
            f"<b>{esc(name)}</b>",
            esc(approval.step_name),
            esc(ago(approval.requested_at) if live else fmt_time(approval.requested_at)),
            esc((countdown(approval.deadline) if live else fmt_time(approval.deadline)) if approval.deadline else "")
            or '<span class="airt-muted">none</span>',
            esc(", ".join(approval.approver_list) or "anyone")
            + (f" · {approval.approved_count}/{approval.min_approvals}" if approval.min_approvals > 1 else ""),
            you,
            f'<span title="{esc(approval.message or "")}">{esc(short(approval.message or "", 200))}</span>',
        ]

    # -- interaction -----------------------------------------------------------------------------------------

    def select(self, approval_id: str) -> None:
        """Open one approval's card below the table."""
        self.selected = approval_id
        self.message_html.value = ""
        self.refresh()

    def _filters_changed(self) -> None:
        self.limit = self.page_size
        self.refresh()

    def wants(self, event: Event) -> bool:
        return isinstance(event, ApprovalRequested | ApprovalDecided | WorkflowStatusChanged)

    def _decided(self, record: ApprovalRecord) -> None:
        self.message_html.value = (
            f'<div class="airt-ok">✔ {esc(record.step_name)} of <code>{esc(record.workflow_id)}</code> '
            f"{esc(decided_text(record))}</div>"
        )
        self.selected = None
        self.mark_dirty()

    def _more(self) -> None:
        self.limit += self.page_size
        self.refresh()

    def poll_due(self, changed: bool, now: float) -> bool:
        # deadlines count down: re-render once a second while one is shown
        if self._deadlines and now - self._last_tick >= 1.0:
            self._last_tick = now
            return True
        return changed

    def _show_error(self, text: str) -> None:
        self.message_html.value = f'<div class="airt-error">{esc(text)}</div>'

    # -- snapshot and text -----------------------------------------------------------------------------------

    def _snapshot_state(self) -> tuple[Any, bool]:
        return tuple(a.approval_id for a, _ in self.pending), True

    def snapshot_html(self, *, stopped_at: str | None = None) -> str:
        rows = "".join(
            "<tr>"
            + f"<td><code>{esc(a.workflow_id)}</code></td>"
            + "".join(f"<td>{v}</td>" for v in self._values(a, n, live=False))
            + "</tr>"
            for a, n in self.pending
        )
        head = "".join(f"<th>{h}</th>" for h in ("workflow_id", *_COLUMNS))
        table = f'<table class="airt-table"><tr>{head}</tr>{rows}</table>' if rows else ""
        return (
            f'<div class="airt-root airt-panel airt-snapshot">{stylesheet()}'
            '<div class="airt-stale airt-notice">Saved view, not live: <code>%workflow approvals</code> '
            f"shows the inbox live.</div>{self.header_html.value}{table}</div>"
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        data = super()._repr_mimebundle_(**kwargs) or {}
        lines = [f"{self.total} approval{'' if self.total == 1 else 's'} waiting (oldest first)"]
        lines += [f"  {a.workflow_id} {name} step {a.step_name}: {a.message or ''}" for a, name in self.pending]
        data["text/plain"] = "\n".join(lines)
        return data
