"""The approval card: what a person needs to decide, and the Approve / Reject buttons.

Shown in a run's panel while it is paused and, one per pending approval, in
the inbox.  It shows the message, the outputs of the steps the approval
depends on (the ``context`` recorded with the request), what a rejection
would undo (the workflow's pending compensations, newest first), the
deadline, who may decide and who is deciding, a reason box, and two buttons
whose text is exactly ``Approve`` and ``Reject``.  Every decision goes
through ``Engine.approve`` / ``Engine.reject`` (the one decision path); a
refusal (policy, someone decided first) is shown on the card.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..errors import AirtError
from ..views import countdown, esc, fmt_time, short
from .base import button, html, show

if TYPE_CHECKING:
    from ..engine import Engine
    from ..store.records import ApprovalRecord, CompensationRecord

__all__ = ["ApprovalCard", "decided_text"]


def decided_text(approval: ApprovalRecord) -> str:
    """``approved by ann at 18:05:03: looks good``."""
    verb = {"APPROVED": "approved", "REJECTED": "rejected", "CANCELLED": "cancelled"}.get(
        approval.status, approval.status.lower()
    )
    reason = f": {approval.reason}" if approval.reason else ""
    return f"{verb} by {approval.decided_by} at {fmt_time(approval.decided_at)}{reason}"


def _context_html(approval: ApprovalRecord) -> str:
    try:
        context = json.loads(approval.context) if approval.context else {}
    except ValueError:
        context = {}
    deps: dict[str, Any] = context.get("depends_on") or {}
    if not deps:
        return ""
    rows = []
    for step, outputs in deps.items():
        text = json.dumps(outputs, indent=1, default=str, ensure_ascii=False)
        body = f"<code>{esc(short(outputs, 100))}</code>"
        if len(text) > 100 or ("\n" in text and len(text) > 60):
            body = (
                f"<details><summary><code>{esc(short(outputs, 100))}</code></summary><pre>{esc(text)}</pre></details>"
            )
        rows.append(f"<tr><td><b>{esc(step)}</b></td><td>{body}</td></tr>")
    return f'<div class="airt-muted">Outputs of the steps it depends on:</div><table>{"".join(rows)}</table>'


def _undo_html(compensations: Sequence[CompensationRecord]) -> str:
    pending = [c for c in compensations if c.status in ("PENDING", "FAILED")]
    if not pending:
        return '<div class="airt-muted">A rejection has nothing to undo (no completed step has a compensation).</div>'
    items = []
    for c in reversed(pending):  # compensations run newest first
        try:
            inputs = json.loads(c.inputs)
        except ValueError:
            inputs = c.inputs
        summary = ", ".join(f"{k}={short(v, 40)}" for k, v in inputs.items()) if isinstance(inputs, dict) else ""
        items.append(f"<li><b>{esc(c.step_name)}</b>: undo <code>{esc(c.action)}</code> {esc(summary)}</li>")
    return (
        '<div class="airt-muted">A rejection rolls back, newest first:</div>'
        f'<ol style="margin:0 0 2px 0;padding-left:22px">{"".join(items)}</ol>'
    )


class ApprovalCard(widgets.VBox):
    """One pending approval, decidable in place.

    ``on_decided(record)`` is called after a decision is recorded.

    >>> card = ApprovalCard(eng)          # doctest: +SKIP
    >>> card.show(approval, "publish-report", run.compensations())  # doctest: +SKIP
    >>> card.approve_button.click()       # doctest: +SKIP
    """

    def __init__(
        self,
        engine: Engine,
        *,
        on_decided: Callable[[ApprovalRecord], Any] | None = None,
        with_workflow: bool = False,
        lock: threading.RLock | None = None,
    ):
        self.engine = engine
        # the owning panel's lock: a refresh never interleaves with a decision being recorded
        self.decision_lock = lock or threading.RLock()
        self.on_decided = on_decided
        self.with_workflow = with_workflow
        self.approval: ApprovalRecord | None = None
        self.title_html = html("", "airt-card-title")
        self.body_html = html("", "airt-card-body")
        self.reason = widgets.Textarea(
            placeholder="Reason (optional, recorded with the decision)",
            rows=1,
            layout=widgets.Layout(width="360px", height="30px"),
            _dom_classes=("airt-reason",),
        )
        self.approve_button = button("Approve", "airt-approve", style="success")
        self.reject_button = button("Reject", "airt-reject", style="danger")
        self.approve_button.on_click(lambda _: self.decide(True))
        self.reject_button.on_click(lambda _: self.decide(False))
        self.controls = widgets.HBox([self.reason, self.approve_button, self.reject_button])
        self.message_html = html("", "airt-card-message")
        super().__init__(
            [self.title_html, self.body_html, self.controls, self.message_html], _dom_classes=("airt-card",)
        )

    def show(
        self, approval: ApprovalRecord, workflow_name: str, compensations: Sequence[CompensationRecord] = ()
    ) -> None:
        """Show ``approval`` (keeps the typed reason while it is the same approval)."""
        if self.approval is None or self.approval.approval_id != approval.approval_id:
            self.reason.value = ""
            self.message_html.value = ""
            self._enable(True)
        self.approval = approval
        where = (
            f" of <b>{esc(workflow_name)}</b> <code>{esc(approval.workflow_id)}</code>" if self.with_workflow else ""
        )
        self.title_html.value = (
            f"Approval needed: step <b>{esc(approval.step_name)}</b>{where}"
            f' <span class="airt-muted">requested {esc(fmt_time(approval.requested_at))}</span>'
        )
        approvers = approval.approver_list
        deadline = (
            f"times out {esc(countdown(approval.deadline))} (then {esc(approval.on_timeout)})"
            if approval.deadline
            else "no deadline"
        )
        who = f"approvers: {esc(', '.join(approvers))}" if approvers else "anyone may decide"
        message = esc(approval.message or "(no message)").replace("\n", "<br>")
        self.body_html.value = (
            f'<div style="margin:2px 0 4px 0;font-size:13px">{message}</div>'
            f"{_context_html(approval)}{_undo_html(compensations)}"
            f'<div class="airt-muted">{deadline} · {who} · you decide as <b>{esc(self.engine.user)}</b></div>'
        )
        show(self.controls, True)

    def _enable(self, on: bool) -> None:
        self.approve_button.disabled = not on
        self.reject_button.disabled = not on

    def decide(self, approve: bool) -> ApprovalRecord | None:
        """What the buttons do: record the decision, or show why it was refused."""
        with self.decision_lock:
            return self._decide(approve)

    def _decide(self, approve: bool) -> ApprovalRecord | None:
        approval = self.approval
        if approval is None:
            return None
        reason = self.reason.value.strip() or None
        self._enable(False)
        self.message_html.value = '<span class="airt-muted">recording the decision…</span>'
        decide = self.engine.approve if approve else self.engine.reject
        try:
            record: ApprovalRecord = decide(approval.workflow_id, reason=reason, approval_id=approval.approval_id)
        except AirtError as exc:
            self.message_html.value = f'<div class="airt-error">{esc(exc)}</div>'
            self._enable(True)
            return None
        except Exception as exc:  # shown, not raised: a click must not leave a traceback in the log
            self.message_html.value = f'<div class="airt-error">{esc(type(exc).__name__)}: {esc(exc)}</div>'
            self._enable(True)
            return None
        self.message_html.value = f'<div class="airt-ok">✔ {esc(decided_text(record))}</div>'
        show(self.controls, False)
        if self.on_decided is not None:
            self.on_decided(record)
        return record
