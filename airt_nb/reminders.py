"""Reminders and escalations of pending approvals, durable like deadlines.

``remind_every: 30m`` on an approval step: while its approval is pending,
every 30 minutes the request is sent again (webhook event
``approval.reminder``) and the run's history says so.  ``escalate: {after:
2h, to: [lead]}``: two hours after the request, ``lead`` is added to the
approvers (if the step names approvers; with none, anyone may decide
already) and told (webhook event ``approval.escalated``, payload field
``escalated_to``).

When each is due is a column of the approval (``next_reminder_at``,
``escalate_at``), so whichever engine has the database open acts on it,
also after a restart: the sweeps arm a timer for every pending one
(:meth:`airt_nb.recovery.Recovery.arm_deadlines`).  Each is done once: the
update is conditional on the due time it saw, so two engines whose timers
fire together send one reminder.

Talks to the engine only through :class:`~airt_nb.decisions.DecisionHost`; imports no engine.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING

from .decisions import notify_approval
from .store.records import row_of
from .timeutil import iso, now_iso, to_epoch

if TYPE_CHECKING:
    from .decisions import DecisionHost
    from .store.writes import Tx

__all__ = ["escalate", "remind"]

log = logging.getLogger("airt_nb")


def remind(engine: DecisionHost, approval_id: str) -> str | None:
    """Send the reminder of ``approval_id`` if it is due; returns when the next one is due (ISO), if any."""
    found = engine.store.approvals(approval_id=approval_id)
    if not found or found[0].status != "PENDING" or not found[0].remind_every or not found[0].next_reminder_at:
        return None
    approval = found[0]
    due = approval.next_reminder_at
    assert due is not None
    assert approval.remind_every is not None
    if to_epoch(due) > time.time() + 0.001:
        return due  # not yet (the timer of another engine moved it on)
    now = now_iso()
    next_at = iso(time.time() + approval.remind_every)
    count = approval.reminders + 1

    def op(tx: Tx) -> bool:
        if not tx.remind_approval(approval_id, due, next_at):
            return False  # reminded by another engine, or decided meanwhile
        workflow = tx.get_workflow(approval.workflow_id)
        row = {**row_of(approval), "reminders": count, "next_reminder_at": next_at}
        notify_approval(tx, engine, "approval.reminder", row, workflow.name if workflow else "")
        tx.add_event(approval.workflow_id, now, "reminded", None, f"{approval.step_name}: reminder {count}")
        return True

    if not engine.store.write(op):
        return None
    log.info("workflow %s: approval of step %s is still pending; reminder %d sent", approval.workflow_id,
             approval.step_name, count)  # fmt: skip
    return next_at


def escalate(engine: DecisionHost, approval_id: str) -> None:
    """Add the escalation's approvers to ``approval_id`` and tell them, if it is due and still pending."""
    found = engine.store.approvals(approval_id=approval_id)
    if not found or found[0].status != "PENDING" or not found[0].escalate_at or found[0].escalated_at:
        return
    approval = found[0]
    if to_epoch(approval.escalate_at or now_iso()) > time.time() + 0.001:
        return
    added = [n for n in json.loads(approval.escalate_to or "[]") if n not in approval.approver_list]
    approvers = approval.approver_list
    # With no approvers anyone may decide already: adding names would narrow it, not widen it.
    widened = [*approvers, *added] if approvers else []
    now = now_iso()

    def op(tx: Tx) -> bool:
        if not tx.escalate_approval(approval_id, json.dumps(widened), now):
            return False
        workflow = tx.get_workflow(approval.workflow_id)
        row = {**row_of(approval), "approvers": json.dumps(widened), "escalated_at": now, "escalated_to": added}
        notify_approval(tx, engine, "approval.escalated", row, workflow.name if workflow else "")
        who = ", ".join(added) or "nobody new"
        tx.add_event(approval.workflow_id, now, "escalated", None, f"{approval.step_name}: approvers added: {who}")
        return True

    if engine.store.write(op):
        log.info("workflow %s: approval of step %s escalated to %s", approval.workflow_id, approval.step_name, added)
