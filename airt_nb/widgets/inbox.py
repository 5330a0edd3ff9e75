"""The approvals inbox: every pending approval of the database, oldest first.

All kernels and notebooks sharing the database show up, each as an
:class:`~.approval_card.ApprovalCard` with its deadline counting down, and
can be decided in place.  Cards are kept per approval across refreshes, so a
reason being typed survives an update.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..events import ApprovalDecided, ApprovalRequested, Event, WorkflowStatusChanged
from ..views import esc
from .approval_card import ApprovalCard, decided_text
from .base import LivePanel, button, html, show, style_widget

if TYPE_CHECKING:
    from ..engine import Engine
    from ..store.records import ApprovalRecord

__all__ = ["InboxPanel", "approvals_panel"]


def approvals_panel(engine: Engine | None = None, *, page_size: int = 20) -> InboxPanel:
    """The approvals inbox of ``engine`` (default: the kernel's engine, opened if needed).

    >>> airt_nb.approvals_panel()      # doctest: +SKIP
    """
    if engine is None:
        from .. import session

        engine = session.engine()
    return InboxPanel(engine, page_size=page_size)


class InboxPanel(LivePanel, widgets.VBox):
    """Pending approvals, oldest first, with deadlines, decidable in place."""

    def __init__(self, engine: Engine, *, page_size: int = 20):
        self.page_size = page_size
        self.limit = page_size
        self.cards: dict[str, ApprovalCard] = {}
        self.pending: list[tuple[ApprovalRecord, str]] = []
        self.total = 0
        self._deadlines = False
        self._last_tick = 0.0
        self.header_html = html("", "airt-inbox-header")
        self.list_box = widgets.VBox()
        self.more_button = button("Show more", "airt-more")
        self.more_button.on_click(lambda _: self.safely(self._more))
        self.message_html = html("", "airt-message")
        super().__init__([style_widget(), self.header_html, self.message_html, self.list_box, self.more_button])
        self.add_class("airt-panel")
        self.add_class("airt-inbox")
        self._live_start(engine)

    def _render(self) -> None:
        store = self.engine.store
        self.pending = store.pending_approvals(limit=self.limit)
        self.total = store.count_approvals("PENDING") if len(self.pending) >= self.limit else len(self.pending)
        shown = len(self.pending)
        if self.total == 0:
            self.header_html.value = "<b>Approvals</b> <span class='airt-muted'>· nothing waits for a decision</span>"
        else:
            rest = f", showing the oldest {shown}" if shown < self.total else ""
            self.header_html.value = (
                f"<b>Approvals</b> <span class='airt-muted'>· {self.total} waiting for a decision, "
                f"oldest first{rest} · all kernels sharing {esc(self.engine.db)}</span>"
            )
        cards = []
        for approval, name in self.pending:
            card = self.cards.get(approval.approval_id)
            if card is None:
                card = self.cards[approval.approval_id] = ApprovalCard(
                    self.engine, on_decided=self._decided, with_workflow=True, lock=self.lock
                )
            card.show(approval, name, store.compensations(approval.workflow_id))
            cards.append(card)
        current = self.list_box.children
        if len(current) != len(cards) or any(a is not b for a, b in zip(current, cards, strict=False)):
            self.list_box.children = tuple(cards)
        keep = {a.approval_id for a, _ in self.pending}
        for approval_id in [k for k in self.cards if k not in keep]:
            self.cards.pop(approval_id).close()
        show(self.more_button, shown < self.total)
        self._deadlines = any(a.deadline for a, _ in self.pending)

    def _wants(self, event: Event) -> bool:
        return isinstance(event, ApprovalRequested | ApprovalDecided | WorkflowStatusChanged)

    def _decided(self, record: ApprovalRecord) -> None:
        self.message_html.value = (
            f'<div class="airt-ok">✔ {esc(record.step_name)} of <code>{esc(record.workflow_id)}</code> '
            f"{esc(decided_text(record))}</div>"
        )
        self.mark_dirty()

    def _more(self) -> None:
        self.limit += self.page_size
        self.refresh()

    def _poll(self, changed: bool, now: float) -> bool:
        # deadlines count down: re-render once a second while one is shown
        if self._deadlines and now - self._last_tick >= 1.0:
            self._last_tick = now
            return True
        return changed

    def _show_error(self, text: str) -> None:
        self.message_html.value = f'<div class="airt-error">{esc(text)}</div>'

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        data = super()._repr_mimebundle_(**kwargs) or {}
        lines = [f"{self.total} approval{'' if self.total == 1 else 's'} waiting (oldest first)"]
        lines += [f"  {a.workflow_id} {name} step {a.step_name}: {a.message or ''}" for a, name in self.pending]
        data["text/plain"] = "\n".join(lines)
        return data
