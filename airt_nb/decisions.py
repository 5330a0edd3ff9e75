"""Approval decisions: the one function every Approve / Reject goes through.

``Run.approve``, ``Engine.approve``, the panel's buttons, ``%workflow approve``
and ``airt approve`` all call :func:`decide`.  It works out who is deciding,
checks that they may (the step's ``approvers`` and the policy), and records
the decision in one transaction that only succeeds while the approval is
still pending, so the first decision wins and a second one is told who
decided and when.  Deadlines expire through the same function, decided by
``system`` with the reason ``timed out``.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from . import events as ev
from .errors import ApprovalError, NotFoundError, PolicyError
from .identity import current_user
from .store.records import ApprovalRecord
from .timeutil import now_iso

if TYPE_CHECKING:
    from .engine import Engine
    from .store.sqlite import Tx

__all__ = ["SYSTEM", "decide", "expire"]

log = logging.getLogger("airt_nb")

SYSTEM = "system"


class _AlreadyDecidedError(Exception):
    pass


def _pending(engine: Engine, workflow_id: str, approval_id: str | None) -> ApprovalRecord:
    store = engine.store
    if approval_id:
        found = store.approvals(approval_id=approval_id)
        if not found:
            raise NotFoundError("approval", approval_id, db=engine.db)
        approval = found[0]
        if approval.status == "PENDING":
            return approval
        raise _already(approval)
    pending = store.approvals(workflow_id=workflow_id, status="PENDING")
    if pending:
        return pending[0]
    decided = [a for a in store.approvals(workflow_id=workflow_id) if a.decided_at]
    if decided:
        raise _already(decided[-1])
    status = engine.status_of(workflow_id)
    raise ApprovalError(
        f"workflow {workflow_id} has no pending approval (it is {status}); nothing to decide",
        workflow_id=workflow_id,
    )


def _already(approval: ApprovalRecord) -> ApprovalError:
    verb = approval.status.lower()
    reason = f" ({approval.reason})" if approval.reason else ""
    return ApprovalError(
        f"approval {approval.approval_id} of workflow {approval.workflow_id} (step {approval.step_name!r}) was "
        f"already {verb} by {approval.decided_by} at {approval.decided_at}{reason}; the first decision stands",
        workflow_id=approval.workflow_id,
        approval_id=approval.approval_id,
    )


def _authorise(engine: Engine, approval: ApprovalRecord, user: str) -> dict[str, Any]:
    approvers = approval.approver_list
    policy = engine._policy
    verdict = policy.check_approval(user, approvers)
    row = engine._audit_row(
        "approval",
        user,
        verdict,
        workflow_id=approval.workflow_id,
        step_name=approval.step_name,
        target=approval.approval_id,
    )
    if not verdict.allowed:
        engine._audit_now(
            "approval",
            user,
            verdict,
            workflow_id=approval.workflow_id,
            step_name=approval.step_name,
            target=approval.approval_id,
        )
        roles = policy.roles_of(user)
        role_text = ", ".join(roles) if roles else "none"
        allowed = ", ".join(approvers) if approvers else "the roles the policy lets approve"
        reason = f": {verdict.reason}" if verdict.reason else ""
        raise PolicyError(
            f"workflow {approval.workflow_id}, step {approval.step_name!r}: user {user!r} (roles: {role_text}) "
            f"may not decide this approval; refused by rule {verdict.rule!r}{reason}. "
            f"Approvers: {allowed}; ask one of them, or decide as yourself with by=... / AIRT_USER if you are one",
            user=user,
            roles=roles,
            rule=verdict.rule,
            workflow=approval.workflow_id,
            step=approval.step_name,
        )
    return row


def decide(
    engine: Engine,
    workflow_id: str,
    approve: bool,
    *,
    by: str | None = None,
    reason: str | None = None,
    approval_id: str | None = None,
    system: bool = False,
) -> ApprovalRecord:
    """Record a decision on the workflow's pending approval and continue or roll back.

    Returns the decided :class:`ApprovalRecord`.  Raises
    :class:`~airt_nb.PolicyError` if ``by`` may not decide (nothing changes)
    and :class:`~airt_nb.ApprovalError` if someone decided first.
    """
    engine._check_open()
    approval = _pending(engine, workflow_id, approval_id)
    user = SYSTEM if system else current_user(by) if by else engine.user
    audit = None if system else _authorise(engine, approval, user)
    status = "APPROVED" if approve else "REJECTED"
    now = now_iso()
    outputs = {"approved": approve, "decided_by": user, "reason": reason, "decided_at": now}
    out_json = json.dumps(outputs)
    owner = engine.owner_id
    expires = engine._lease_expiry()
    local = engine._executions.get(workflow_id)
    decided_row = {
        **{k: getattr(approval, k) for k in ApprovalRecord.__slots__},
        "status": status,
        "decided_by": user,
        "reason": reason,
        "decided_at": now,
    }
    record = engine.store.workflow(workflow_id)
    name = record.name if record else ""
    deliveries = engine._webhook_rows(f"approval.{'expired' if system else status.lower()}", decided_row, name)

    def op(tx: Tx) -> str:
        if not tx.decide_approval(approval.approval_id, status, user, reason, now):
            raise _AlreadyDecidedError
        if approve:
            tx.complete_step(workflow_id, approval.step_name, now, None, out_json, None)
            tx.bump_done(workflow_id)
        else:
            tx.fail_step(
                workflow_id,
                approval.step_name,
                f"rejected by {user}" + (f": {reason}" if reason else ""),
                now,
                None,
                status="REJECTED",
            )
        for d in deliveries:
            tx.insert_delivery(d)
        if audit is not None:
            tx.insert_audit(audit)
        current = tx.get_workflow(workflow_id)
        assert current is not None
        new_status = "RUNNING" if approve else "ROLLING_BACK"
        error = (
            None
            if approve
            else f"rejected by {user} at step {approval.step_name!r}" + (f": {reason}" if reason else "")
        )
        if current.status == "PAUSED":
            take = not engine._closing
            tx.set_status(
                workflow_id,
                new_status,
                now,
                error=error,
                new_owner=owner if take else None,
                lease_expires=expires if take else None,
                release=not take,
            )
            return "adopt" if take else "released"
        if current.lease_owner == owner and local is not None:
            if not approve:
                tx.set_status(workflow_id, new_status, now, error=error)
            return "local"
        if not approve:
            tx.set_status(workflow_id, new_status, now, error=error)
        tx.request(workflow_id, "wake")
        return "woken"

    try:
        outcome = engine.store.write(op)
    except _AlreadyDecidedError:
        fresh = engine.store.approvals(approval_id=approval.approval_id)
        raise _already(fresh[0]) from None
    if engine._events:
        engine._events.emit(
            ev.ApprovalDecided(workflow_id, approval.approval_id, approval.step_name, status, user, reason)
        )
        engine._emit_status(workflow_id, "RUNNING" if approve else "ROLLING_BACK")
    engine._notify()
    if outcome == "adopt":
        engine._adopt(workflow_id)
    elif outcome == "local" and local is not None:
        local.on_decision(approval.step_name, approve, outputs)
    if engine._webhook is not None:
        engine._webhook.kick()
    return engine.store.approvals(approval_id=approval.approval_id)[0]


def expire(engine: Engine, approval_id: str) -> ApprovalRecord | None:
    """Decide a pending approval whose deadline passed, as its ``on_timeout`` says."""
    found = engine.store.approvals(approval_id=approval_id)
    if not found or found[0].status != "PENDING":
        return None
    approval = found[0]
    try:
        return decide(
            engine,
            approval.workflow_id,
            approval.on_timeout == "approve",
            reason="timed out",
            approval_id=approval_id,
            system=True,
        )
    except ApprovalError:
        return None  # a person decided first
