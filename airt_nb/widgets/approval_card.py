"""The approval card: what a person needs to decide, and the Approve / Reject buttons.

Shown in a run's panel while it is paused and, for the approval picked in
the inbox's table, in the inbox.  It shows the message, the outputs of the
steps the approval depends on (the ``context`` recorded with the request),
what the steps it gates will do (a diff for ``file.write``...), what a
rejection would undo (the workflow's pending compensations, newest first),
a form with one input per typed field (defaults filled in), how many of the
approvals it needs were given ("1 of 2 approvals"), the deadline, who may
decide and who is deciding, a reason box, and two buttons whose text is
exactly ``Approve`` and ``Reject``.

The engine's policy is asked first (``Policy.check_approval``), and the
step's own rules (who started the workflow may not decide it with
``exclude_requester``, a step with ``authenticated`` takes no decision
whose name is only asserted, one person approves once): someone who may not
decide sees the buttons disabled and why.  :func:`~airt_nb.approval_standing.standing`
is that check; the inbox's "you" column and the approvals page ask it too, so they never disagree.  **Reject**
asks for confirmation, as a rollback does, since it undoes completed steps.  Every
decision goes through ``Engine.approve`` / ``Engine.reject`` (the one
decision path); a refusal (the policy changed, someone decided first) is
shown on the card.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..approval_standing import standing
from ..errors import AirtError
from ..views.approval_html import asked_again_html, count_text, preview_html
from ..views.run_html import decided_text
from ..views.text import countdown, esc, short, stamp
from .base import button, html, show
from .fields_form import FieldsForm

if TYPE_CHECKING:
    from ..engine import Engine
    from ..store.records import ApprovalRecord, CompensationRecord, DecisionRecord

__all__ = ["ApprovalCard", "decided_text"]


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


def _undo_items(compensations: Sequence[CompensationRecord]) -> list[str]:
    items = []
    for c in reversed([c for c in compensations if c.status in ("PENDING", "FAILED")]):  # newest first
        try:
            inputs = json.loads(c.inputs)
        except ValueError:
            inputs = c.inputs
        summary = ", ".join(f"{k}={short(v, 40)}" for k, v in inputs.items()) if isinstance(inputs, dict) else ""
        items.append(f"<li><b>{esc(c.step_name)}</b>: undo <code>{esc(c.action)}</code> {esc(summary)}</li>")
    return items


def _undo_html(compensations: Sequence[CompensationRecord]) -> str:
    items = _undo_items(compensations)
    if not items:
        return '<div class="airt-muted">A rejection has nothing to undo (no completed step has a compensation).</div>'
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
        self.decisions: list[DecisionRecord] = []
        self.already: str | None = None  # this user approved already (one of several approvals)
        self.undo_count = 0
        #: why this user may not decide (``None``: they may)
        self.refusal: str | None = None
        self._off: str | None = None  # set by disable(): the card offers nothing any more
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
        self.reject_button.on_click(lambda _: self._ask_reject())
        self.controls = widgets.HBox([self.reason, self.approve_button, self.reject_button])
        self.confirm_html = html("", "airt-confirm-text")
        self.confirm_yes = button("Yes, reject", "airt-confirm-reject", style="danger")
        self.confirm_no = button("No", "airt-confirm-no")
        self.confirm_yes.on_click(lambda _: self.decide(False))
        self.confirm_no.on_click(lambda _: self._confirming(False))
        self.confirm_box = widgets.HBox(
            [self.confirm_html, self.confirm_yes, self.confirm_no], layout=widgets.Layout(display="none")
        )
        self.why_html = html("", "airt-card-why")
        self.message_html = html("", "airt-card-message")
        self.form = FieldsForm()
        self.count_html = html("", "airt-card-count")
        super().__init__(
            [
                self.title_html,
                self.body_html,
                self.form,
                self.count_html,
                self.controls,
                self.confirm_box,
                self.why_html,
                self.message_html,
            ],
            _dom_classes=("airt-card",),
        )

    def show(
        self,
        approval: ApprovalRecord,
        workflow_name: str,
        compensations: Sequence[CompensationRecord] = (),
        decisions: Sequence[DecisionRecord] = (),
    ) -> None:
        """Show ``approval`` (keeps the typed reason and values while it is the same approval)."""
        fresh = self.approval is None or self.approval.approval_id != approval.approval_id
        if fresh:
            self.reason.value = ""
            self.message_html.value = ""
            self._confirming(False)
            self._enable(True)
        if fresh or (self.approval is not None and self.approval.approved_count != approval.approved_count):
            self.form.build(approval.field_specs, approval.values)
        self.decisions = [d for d in decisions if d.approval_id == approval.approval_id]
        self.approval = approval
        self.undo_count = len(_undo_items(compensations))
        where = (
            f" of <b>{esc(workflow_name)}</b> <code>{esc(approval.workflow_id)}</code>" if self.with_workflow else ""
        )
        self.title_html.value = (
            f"Approval needed: step <b>{esc(approval.step_name)}</b>{where}"
            f' <span class="airt-muted">requested {esc(stamp(approval.requested_at))}</span>'
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
            f"{asked_again_html(approval)}{_context_html(approval)}{preview_html(approval)}{_undo_html(compensations)}"
            f'<div class="airt-muted">{deadline} · {who} · you decide as <b>{esc(self.engine.user)}</b></div>'
        )
        count = count_text(approval, self.decisions)
        self.count_html.value = f'<div class="airt-count">{esc(count)}</div>' if count else ""
        show(self.count_html, bool(count))
        self._check_decider(approval)
        show(self.controls, True)

    def _check_decider(self, approval: ApprovalRecord) -> None:
        """Whether this engine's user may decide (:func:`standing`); if not, disable the buttons and say why."""
        verdict = standing(self.engine, approval, self.decisions)
        self.refusal, self.already = verdict.refusal, verdict.already
        self._enable((self._off or self.refusal) is None)
        reason = self._off or self.refusal or self.already
        self.why_html.value = f'<div class="airt-muted">{esc(reason)}</div>' if reason else ""

    def disable(self, why: str) -> None:
        """Offer nothing any more (the panel stopped following its run), and say why."""
        self._off = why
        self._confirming(False)
        self._enable(False)
        self.why_html.value = f'<div class="airt-muted">The buttons are off: {esc(why)}.</div>'

    def _enable(self, on: bool) -> None:
        on = on and self._off is None and self.refusal is None
        approve = on and getattr(self, "already", None) is None
        self.approve_button.disabled = not approve
        self.reject_button.disabled = not on
        self.form.enable(approve)
        self.approve_button.tooltip = "" if approve else (self._off or self.refusal or self.already or "")
        self.reject_button.tooltip = "" if on else (self._off or self.refusal or "")

    def _ask_reject(self) -> None:
        if self.approval is None or self.reject_button.disabled:
            return
        undo = (
            f" The run rolls back {self.undo_count} completed step{'s' if self.undo_count != 1 else ''}, newest first."
            if self.undo_count
            else " Nothing needs undoing."
        )
        self.confirm_html.value = f"Reject step <b>{esc(self.approval.step_name)}</b>?{esc(undo)}"
        self._confirming(True)

    def _confirming(self, on: bool) -> None:
        show(self.confirm_box, on)
        show(self.controls, not on and self.approval is not None)

    def decide(self, approve: bool) -> ApprovalRecord | None:
        """Record the decision, or show why it was refused (Reject's confirmation calls this)."""
        with self.decision_lock:
            return self._decide(approve)

    def _decide(self, approve: bool) -> ApprovalRecord | None:
        approval = self.approval
        if approval is None:
            return None
        self._confirming(False)
        reason = self.reason.value.strip() or None
        values = None
        if approve:
            try:
                values = self.form.values()
            except ValueError as exc:
                self.message_html.value = f'<div class="airt-error">{esc(exc)}</div>'
                return None
        self._enable(False)
        self.message_html.value = '<span class="airt-muted">recording the decision…</span>'
        decide = self.engine.approve if approve else self.engine.reject
        try:
            record: ApprovalRecord = decide(
                approval.workflow_id, reason=reason, approval_id=approval.approval_id, values=values
            )
        except AirtError as exc:
            self.message_html.value = f'<div class="airt-error">{esc(exc)}</div>'
            self._enable(True)
            return None
        except Exception as exc:  # shown, not raised: a click must not leave a traceback in the log
            self.message_html.value = f'<div class="airt-error">{esc(type(exc).__name__)}: {esc(exc)}</div>'
            self._enable(True)
            return None
        if record.status == "PENDING":  # one of several approvals it needs
            count = f"{record.approved_count} of {record.min_approvals} approvals"
            self.message_html.value = (
                f'<div class="airt-ok">✔ your approval is recorded ({esc(count)}); it waits for the others</div>'
            )
        else:
            self.message_html.value = f'<div class="airt-ok">✔ {esc(decided_text(record))}</div>'
        show(self.controls, False)
        if self.on_decided is not None:
            self.on_decided(record)
        return record
