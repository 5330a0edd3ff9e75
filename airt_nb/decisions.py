"""Approval decisions: the one function every Approve / Reject goes through.

``Run.approve``, ``Engine.approve``, the panel's buttons, ``%workflow approve``,
``airt approve`` and the approvals page all call :func:`decide`.  It works
out who is deciding (``by=``, else the engine's user: ``AIRT_USER``,
``JUPYTERHUB_USER``, the OS user), checks that they may (deciding under
another name than the engine's user is acting as that person: the policy's
``act_as`` must allow it, unless the name was established by an
authentication, ``authenticated_by``; then the step's ``approvers`` and the
roles the policy gives them, and the step's own rules: typed ``values`` that
fit its ``fields``, ``exclude_requester``, ``authenticated``; see
:mod:`airt_nb.approval_rules`), and records the decision in one transaction
that only succeeds while the approval is still pending, so the first
decision wins and a second one is told who decided and when.  Each person's
decision is a row of its own (``approval_decisions``); a step with
``min_approvals: N`` goes on once N distinct people approved, and one
rejection rejects it.  The same transaction queues the webhook
notification and the run's history entry.

A decision never moves a workflow.  The engine that records it continues the
workflow itself only if it is the workflow's home (the engine that ran it
last); otherwise it leaves the lease free for the home and wakes it.  If the
home is gone, the rules of :mod:`airt_nb.leases` say who takes it up.

Deadlines expire through the same function, decided by ``system`` with the
reason ``timed out``; a person deciding after the deadline (no engine was
running at that moment) finds the timeout applied first.

Talks to the engine only through :class:`DecisionHost`; imports no engine.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from .approval_rules import RuleRefusal, agree, check_rules, clean_values
from .errors import ApprovalError, NotFoundError, PolicyError
from .identity import SYSTEM, check_name
from .policy import Verdict
from .store.records import ApprovalRecord, row_of
from .timeutil import now_iso
from .webhooks import outbox_row, requested_page

if TYPE_CHECKING:
    from .policy import Policy
    from .store.protocol import Store
    from .store.records import WorkflowRecord
    from .store.writes import Tx

__all__ = ["SYSTEM", "TIMED_OUT", "DecisionHost", "cancel_pending", "decide", "expire", "notify_approval"]

log = logging.getLogger("airt_nb")

TIMED_OUT = "timed out"
#: the longest reason a decision records (characters)
MAX_REASON = 10_000


class DecisionHost(Protocol):
    """What deciding needs from the engine that records the decision."""

    @property
    def store(self) -> Store: ...

    @property
    def db(self) -> str: ...

    @property
    def user(self) -> str: ...

    @property
    def owner_id(self) -> str: ...

    @property
    def policy(self) -> Policy: ...

    @property
    def webhook_url(self) -> str | None: ...

    @property
    def accepting(self) -> bool:
        """The engine is open and may continue workflows itself."""
        ...

    def check_open(self) -> None: ...

    def status_of(self, workflow_id: str) -> str: ...

    def runs_here(self, workflow_id: str) -> bool:
        """This engine executes the workflow right now."""
        ...

    def audit_row(self, event: str, user: str, verdict: Verdict, **kw: Any) -> dict[str, Any]: ...

    def audit_now(self, event: str, user: str, verdict: Verdict, **kw: Any) -> None: ...

    def decided(self, approval: ApprovalRecord, approved: bool, outputs: dict[str, Any], outcome: str) -> None:
        """The decision is committed.  ``outcome`` says who continues the workflow: ``adopt`` (this
        engine, its home, takes it), ``local`` (this engine runs it), ``woken`` (its running owner
        was woken), ``released`` (its home, or whoever the home rules choose, takes it up) or
        ``partial`` (one of several approvals it needs: nothing moves yet)."""
        ...


class _AlreadyDecidedError(Exception):
    pass


def _pending(engine: DecisionHost, workflow_id: str, approval_id: str | None) -> ApprovalRecord:
    store = engine.store
    if approval_id is not None:
        if not isinstance(approval_id, str) or not approval_id.strip():
            # Never "not given": an empty or odd id must not decide whichever approval is pending.
            raise NotFoundError(f"approval of workflow {workflow_id} with id", repr(approval_id)[:80], db=engine.db)
        found = store.approvals(approval_id=approval_id)
        if not found or found[0].workflow_id != workflow_id:
            raise NotFoundError(f"approval of workflow {workflow_id} with id", approval_id, db=engine.db)
        approval = found[0]
        if approval.status == "PENDING":
            return approval
        raise _already(approval)
    pending = store.approvals(workflow_id=workflow_id, status="PENDING")
    if len(pending) > 1:
        listed = "; ".join(f"{a.approval_id} (step {a.step_name!r})" for a in pending)
        raise ApprovalError(
            f"workflow {workflow_id} has {len(pending)} pending approvals: {listed}; say which one to decide "
            "with approval_id=... (on the command line: the approval id instead of the workflow id)",
            workflow_id=workflow_id,
        )
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
    if approval.decided_by == SYSTEM and approval.reason == TIMED_OUT:
        # Often applied by this very attempt (no engine was running at the deadline): not a decision
        # someone made first, but the deadline's.
        return ApprovalError(
            f"approval {approval.approval_id} of workflow {approval.workflow_id} (step {approval.step_name!r}) "
            f"timed out at {approval.deadline}, before this decision (on_timeout: {approval.on_timeout}: "
            f"{approval.status.lower()} by {SYSTEM} at {approval.decided_at}); your decision was not recorded",
            workflow_id=approval.workflow_id,
            approval_id=approval.approval_id,
        )
    verb = approval.status.lower()
    reason = f" ({approval.reason})" if approval.reason else ""
    stands = "the first decision stands" if approval.status in ("APPROVED", "REJECTED") else "nothing was decided"
    return ApprovalError(
        f"approval {approval.approval_id} of workflow {approval.workflow_id} (step {approval.step_name!r}) was "
        f"already {verb} by {approval.decided_by} at {approval.decided_at}{reason}; {stands}",
        workflow_id=approval.workflow_id,
        approval_id=approval.approval_id,
    )


def _decider(engine: DecisionHost, approval: ApprovalRecord, by: str | None, authenticated_by: str | None) -> str:
    """Who decides: ``by`` when given (if the engine's user may act as them), else the engine's user."""
    where = f"workflow {approval.workflow_id}, step {approval.step_name!r}"
    if by is None:
        if authenticated_by:
            raise PolicyError(f"{where}: authenticated_by= needs by=, the authenticated name", step=approval.step_name)
        return engine.user
    try:
        user = check_name(by, "by=")
    except PolicyError as exc:
        raise PolicyError(
            f"{where}: {exc} (or leave by= out to decide as yourself)",
            workflow=approval.workflow_id,
            step=approval.step_name,
        ) from None
    if user != engine.user and not authenticated_by:
        # Deciding under another name is acting as that person: the policy must allow it, as at start.
        verdict = engine.policy.check_act_as(engine.user, user)
        if not verdict.allowed:
            kw = {"workflow_id": approval.workflow_id, "step_name": approval.step_name, "target": user}
            engine.audit_now("act_as", engine.user, verdict, **kw)
            roles = engine.policy.roles_of(engine.user)
            reason = f": {verdict.reason}" if verdict.reason else ""
            raise PolicyError(
                f"{where}: user {engine.user!r} (roles: {', '.join(roles) or 'none'}) may not decide as {user!r}; "
                f"refused by rule {verdict.rule!r}{reason}. Decide as yourself (leave by= out), or ask for an "
                "act_as right in the policy",
                user=engine.user,
                roles=roles,
                rule=verdict.rule,
                workflow=approval.workflow_id,
                step=approval.step_name,
            )
    return user


def _authorise(engine: DecisionHost, approval: ApprovalRecord, user: str) -> dict[str, Any]:
    approvers = approval.approver_list
    policy = engine.policy
    verdict = policy.check_approval(user, approvers)
    kw: dict[str, Any] = {
        "workflow_id": approval.workflow_id,
        "step_name": approval.step_name,
        "target": approval.approval_id,
    }
    if not verdict.allowed:
        engine.audit_now("approval", user, verdict, **kw)
        roles = policy.roles_of(user)
        role_text = ", ".join(roles) if roles else "none"
        allowed = ", ".join(approvers) if approvers else "the roles the policy lets approve"
        reason = f": {verdict.reason}" if verdict.reason else ""
        raise PolicyError(
            f"workflow {approval.workflow_id}, step {approval.step_name!r}: user {user!r} (roles: {role_text}) "
            f"may not decide this approval; refused by rule {verdict.rule!r}{reason}. "
            f"Approvers: {allowed}; ask one of them to decide",
            user=user,
            roles=roles,
            rule=verdict.rule,
            workflow=approval.workflow_id,
            step=approval.step_name,
        )
    return engine.audit_row("approval", user, verdict, **kw)


def notify_approval(tx: Tx, engine: DecisionHost, event: str, approval: dict[str, Any], workflow_name: str) -> None:
    """Queue ``event`` for every webhook that heard of the approval (else this engine's, if any)."""
    urls = tx.delivery_urls(approval["approval_id"])
    if not urls and engine.webhook_url is not None:
        urls = [engine.webhook_url]
    if not urls:
        return
    # The page the request linked to (set where the workflow runs), not only the decider's own.
    page = requested_page(tx.first_payload(approval["approval_id"]))
    for url in urls:
        tx.insert_delivery(outbox_row(event, approval, workflow_name, url, page=page))


def cancel_pending(tx: Tx, workflow_id: str, workflow_name: str, now: str, by: str, reason: str) -> None:
    """Cancel a workflow's pending approvals and tell the webhooks that were told of them."""
    for approval in tx.cancel_approvals(workflow_id, now, by, reason):
        urls = tx.delivery_urls(approval.approval_id)
        page = requested_page(tx.first_payload(approval.approval_id)) if urls else None
        for url in urls:
            tx.insert_delivery(outbox_row("approval.cancelled", row_of(approval), workflow_name, url, page=page))


def _past_deadline(approval: ApprovalRecord, now: str) -> bool:
    return approval.deadline is not None and approval.deadline <= now


def decide(
    engine: DecisionHost,
    workflow_id: str,
    approve: bool,
    *,
    by: str | None = None,
    reason: str | None = None,
    approval_id: str | None = None,
    authenticated_by: str | None = None,
    values: Mapping[str, Any] | None = None,
    system: bool = False,
) -> ApprovalRecord:
    """Record a decision on the workflow's pending approval; the workflow continues or rolls back.

    ``values`` fill in the approval step's typed ``fields`` (checked once
    the decider is known to be allowed: a bad value raises
    :class:`~airt_nb.ApprovalError` and nothing is recorded).  With ``min_approvals: N`` an approval counts one person and
    the workflow goes on once N distinct people approved (all approving the
    values the first one gave: a later approval without values confirms
    them); one rejection rejects.  Every individual decision is a row of
    ``approval_decisions``.

    ``authenticated_by`` names how ``by`` was established when the caller
    authenticated the person (``"jupyter"``, ``"jupyterhub"``, ``"database"``);
    it is recorded with the decision (``auth``).  Without it, a ``by`` other
    than the engine's user needs the policy's ``act_as`` right, and a step
    with ``authenticated: true`` refuses the decision.

    Returns the :class:`ApprovalRecord` (still ``PENDING`` while more people
    must approve).  Raises :class:`~airt_nb.PolicyError` if ``by`` may not
    decide (nothing changes) and :class:`~airt_nb.ApprovalError` if a value
    is wrong, someone decided first, this person approved already, the
    deadline passed, several approvals are pending and none was named, or
    the workflow no longer waits for the decision.

    >>> decide(eng, run.id, True, by="ann", reason="looks good", values={"replicas": 3})  # doctest: +SKIP
    ApprovalRecord(..., status='APPROVED', decided_by='ann', reason='looks good')
    """
    engine.check_open()
    if reason is not None and not isinstance(reason, str):
        raise ApprovalError(
            f"workflow {workflow_id}: reason= must be text, not {type(reason).__name__}; nothing was decided",
            workflow_id=workflow_id,
        )
    if reason is not None and len(reason) > MAX_REASON:
        raise ApprovalError(
            f"workflow {workflow_id}: reason= is {len(reason):,} characters long, more than {MAX_REASON:,}; "
            "shorten it (nothing was decided)",
            workflow_id=workflow_id,
        )
    if authenticated_by is not None:
        authenticated_by = check_name(authenticated_by, "authenticated_by=")
    approval = _pending(engine, workflow_id, approval_id)
    audit: list[dict[str, Any]] = []
    if system:
        clean = clean_values(approval, values, approve, system=True)
        user, auth = SYSTEM, "system"
    else:
        if engine.store.authenticated_user is not None:
            # A per-user database role: the database records its session_user as the decider, whatever by= says.
            user, auth = engine.store.authenticated_user, "database"
        else:
            user = _decider(engine, approval, by, authenticated_by)
            auth = authenticated_by or "asserted"
        check_rules(engine, approval, user, auth)
        audit.append(_authorise(engine, approval, user))
        # Who may not decide is told so (and the refusal recorded) whatever values they gave; a bad
        # value of someone who may is refused before anything is written.  A missing value only in the
        # transaction: whether it is missing depends on the approvals recorded by then (a later
        # approver confirms the first one's values and need give none).
        clean = clean_values(approval, values, approve, system=False)
        # How the decider was established, and who typed another person's name: what the audit must
        # tell apart (the row's user is the name the decision is recorded under).
        how = "asserted" if auth == "asserted" else f"authenticated by {auth}"
        if auth == "asserted" and user != engine.user:
            how += f" by {engine.user}"
        detail = audit[-1]["detail"]
        audit[-1]["detail"] = how + (f"; {detail}" if detail else "")
        if _past_deadline(approval, now_iso()):
            # No engine was running when the deadline passed: the timeout comes first.
            expire(engine, approval.approval_id)
            fresh = engine.store.approvals(approval_id=approval.approval_id)[0]
            if fresh.status != "PENDING":
                raise _already(fresh)
    status = "APPROVED" if approve else "REJECTED"
    now = now_iso()
    owner = engine.owner_id
    local = engine.runs_here(workflow_id)
    event = "approval.expired" if system else f"approval.{status.lower()}"
    accepting = engine.accepting
    result: dict[str, Any] = {}

    def op(tx: Tx) -> str:
        latest = tx.lock_approval(approval.approval_id)
        if latest is None or latest.status != "PENDING":
            raise _AlreadyDecidedError
        current = tx.get_workflow(workflow_id)
        assert current is not None
        if current.status not in ("PAUSED", "RUNNING"):
            raise ApprovalError(
                f"workflow {workflow_id} is {current.status}: step {approval.step_name!r} can no longer be "
                "approved or rejected (its approval is cancelled when the workflow settles)",
                workflow_id=workflow_id,
                approval_id=approval.approval_id,
            )
        agreed, approved_by = agree(latest, tx.decisions_of(latest.approval_id), user, clean, approve, system)
        count = latest.approved_count + (1 if approve and not system else 0)
        values_json = json.dumps(agreed) if agreed else None
        for row in audit:
            tx.insert_audit(row)
        row = {**row_of(latest), "approved_count": count, "field_values": values_json}
        partial = approve and not system and count < latest.min_approvals
        decision = {
            "approval_id": latest.approval_id,
            "workflow_id": workflow_id,
            "step_name": latest.step_name,
            "decision": status,
            "decided_by": user,
            "decided_at": now,
            "reason": reason,
            "field_values": json.dumps(agreed if approve else clean) if (agreed if approve else clean) else None,
            "auth": auth,
            "preview_hash": latest.preview_hash,
        }
        outcome = tx.record_decision(decision, final=not partial, approved_count=count)
        if outcome is None:
            raise _AlreadyDecidedError
        if outcome == "partial":
            # One more person approved; the step waits for the others.
            notify_approval(
                tx,
                engine,
                "approval.progress",
                {**row, "decided_by": user, "reason": reason, "auth": auth},
                current.name,
            )
            progress = f"{count} of {latest.min_approvals} approvals" + (f": {reason}" if reason else "")
            tx.add_event(workflow_id, now, "approved", user, progress)
            return "partial"
        outputs = {
            "approved": approve,
            "decided_by": user,
            "reason": reason,
            "decided_at": now,
            "values": agreed or {},
            "approved_by": approved_by,
        }
        result["outputs"] = outputs
        if latest.gate_step is not None and approve:  # a gated step asked again: it may run now
            tx.set_step_status(workflow_id, latest.step_name, "PENDING")
        elif approve:
            tx.complete_step(workflow_id, latest.step_name, now, None, json.dumps(outputs), None)
            tx.bump_done(workflow_id)
        else:
            tx.fail_step(
                workflow_id,
                latest.step_name,
                f"rejected by {user}" + (f": {reason}" if reason else ""),
                now,
                None,
                status="REJECTED",
            )
        decided_row = {**row, "status": status, "decided_by": user, "reason": reason, "decided_at": now, "auth": auth}
        notify_approval(tx, engine, event, decided_row, current.name)
        detail = reason
        if approve and latest.min_approvals > 1 and not system:
            detail = f"{count} of {latest.min_approvals} approvals" + (f": {reason}" if reason else "")
        tx.add_event(workflow_id, now, status.lower() if not system else "timed_out", user, detail)
        return _continue(
            tx, engine, current, workflow_id, approve, user, latest.step_name, reason, now, owner, local, accepting
        )

    try:
        outcome = engine.store.write(op)
    except _AlreadyDecidedError:
        raise _already(engine.store.approvals(approval_id=approval.approval_id)[0]) from None
    except RuleRefusal as exc:
        # Refused inside the transaction, which is undone with its audit rows: the refusal is recorded now.
        kw = {"workflow_id": approval.workflow_id, "step_name": approval.step_name, "target": approval.approval_id}
        engine.audit_now("approval", user, Verdict(False, exc.rule, str(exc)), **kw)
        raise
    log.info(
        "workflow %s: step %s %s by %s%s",
        workflow_id,
        approval.step_name,
        "approved (one of several)" if outcome == "partial" else status.lower(),
        user,
        f" ({reason})" * bool(reason),
    )
    fresh = engine.store.approvals(approval_id=approval.approval_id)[0]
    engine.decided(fresh, approve, result.get("outputs", {}), outcome)
    return fresh


def _continue(
    tx: Tx,
    engine: DecisionHost,
    current: WorkflowRecord,
    workflow_id: str,
    approve: bool,
    user: str,
    step_name: str,
    reason: str | None,
    now: str,
    owner: str,
    local: bool,
    accepting: bool,
) -> str:
    """Hand the decided workflow to whoever continues it (see :meth:`DecisionHost.decided`)."""
    new_status = "RUNNING" if approve else "ROLLING_BACK"
    error = None if approve else f"rejected by {user} at step {step_name!r}" + (f": {reason}" if reason else "")
    if current.status == "PAUSED":
        # Paused workflows hold no lease.  This engine continues it only if it is its home;
        # else the lease is left free for the home, which is woken.
        take = accepting and current.home == owner
        tx.set_status(workflow_id, new_status, now, error=error, new_owner=owner if take else None, release=not take)
        if take:
            return "adopt"
        if current.home:
            tx.wake(current.home)
        tx.announce_work()
        return "released"
    if current.lease_owner == owner and local:
        if not approve:
            tx.set_status(workflow_id, new_status, now, error=error)
        return "local"
    if not approve:
        tx.set_status(workflow_id, new_status, now, error=error)
    tx.request(workflow_id, "wake")
    if current.lease_owner:
        tx.wake(current.lease_owner)
    else:
        tx.announce_work()
    return "woken"


def expire(engine: DecisionHost, approval_id: str) -> ApprovalRecord | None:
    """Decide a pending approval whose deadline passed, as its ``on_timeout`` says.

    Returns the decided approval, or ``None`` if it was decided already.
    """
    found = engine.store.approvals(approval_id=approval_id)
    if not found or found[0].status != "PENDING":
        return None
    approval = found[0]
    try:
        return decide(
            engine,
            approval.workflow_id,
            approval.on_timeout == "approve",
            reason=TIMED_OUT,
            approval_id=approval_id,
            system=True,
        )
    except ApprovalError:
        return None  # a person decided first, or the workflow stopped waiting
