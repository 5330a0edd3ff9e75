"""The rules a decision must meet beyond the policy: values that fit, who may not decide, how many.

:func:`clean_values` checks the values of a decision against the step's
``fields`` before anything is written.  :func:`check_rules` refuses the
person who started the workflow when the step says ``exclude_requester``,
and asserted identities when it says ``authenticated`` (each refusal is in
the audit log).  :func:`agree` works out, in the decision's transaction,
the values the workflow goes on with when several people must approve:
the first approval's, which every later one confirms (a later approver who
gives other values is refused: every approver approves exactly what runs).
Whether a decision must give every field is known only there: the first
approval must (defaults fill the gap), a later one confirms what is recorded
and need give nothing.

Imports no engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .conditions import same
from .errors import ApprovalError, PolicyError
from .fields import FieldValuesError, check_values, describe_field
from .policy import Verdict

if TYPE_CHECKING:
    from .decisions import DecisionHost
    from .store.records import ApprovalRecord, DecisionRecord

__all__ = ["AUTHENTICATED", "RuleRefusal", "agree", "check_rules", "clean_values"]

#: How a decider may have been established for a step with ``authenticated: true``.
AUTHENTICATED = ("jupyter", "jupyterhub", "database")


def _where(approval: ApprovalRecord) -> str:
    return f"workflow {approval.workflow_id}, step {approval.step_name!r}"


def clean_values(
    approval: ApprovalRecord, values: Mapping[str, Any] | None, approve: bool, *, system: bool = False
) -> dict[str, Any]:
    """The values the decision gives, each checked against the approval's fields.

    Only what was given: whether the others must be given too depends on
    earlier approvals, which :func:`agree` sees in the decision's transaction.
    Raises :class:`~airt_nb.ApprovalError` naming each field and what fits it; nothing is recorded.
    """
    if system:
        return {name: spec.get("default") for name, spec in approval.field_specs.items()} if approve else {}
    return _checked(approval, values, complete=False)


def _checked(approval: ApprovalRecord, values: Mapping[str, Any] | None, *, complete: bool) -> dict[str, Any]:
    """``values`` checked against the approval's fields; with ``complete``, every field (defaults filled in)."""
    fields = approval.field_specs
    try:
        return check_values(fields, values, complete=complete)
    except FieldValuesError as exc:
        described = "; ".join(f"{f}: {m}" if f else m for f, m in exc.problems)
        if fields:
            expected = ", ".join(f"{n} ({describe_field(s)})" for n, s in fields.items())
            hint = f"; its fields: {expected}"
        elif approval.gate_step:
            hint = "; the values were given when it was first approved and cannot change now"
        else:
            hint = ""
        raise ApprovalError(
            f"{_where(approval)}: {described}{hint}. Nothing was recorded",
            workflow_id=approval.workflow_id,
            approval_id=approval.approval_id,
        ) from None


class RuleRefusal(ApprovalError):
    """A decision an approval's own rules refuse inside its transaction (``rule``: ``once``, one
    approval per person; ``same_values``, every approver approves the first one's values): the
    transaction is undone, so the decision path audits it afterwards."""

    def __init__(self, message: str, *, rule: str, approval: ApprovalRecord):
        super().__init__(message, workflow_id=approval.workflow_id, approval_id=approval.approval_id)
        self.rule = rule


def check_rules(engine: DecisionHost, approval: ApprovalRecord, user: str, auth: str) -> None:
    """Refuse the workflow's requester (``exclude_requester``) and asserted names (``authenticated``)."""
    kw = {"workflow_id": approval.workflow_id, "step_name": approval.step_name, "target": approval.approval_id}
    if approval.exclude_requester:
        record = engine.store.workflow(approval.workflow_id)
        if record is not None and record.started_by == user:
            verdict = Verdict(False, "exclude_requester", f"{user!r} started the workflow and may not decide it")
            engine.audit_now("approval", user, verdict, **kw)
            raise PolicyError(
                f"{_where(approval)}: user {user!r} started this workflow, and the step says exclude_requester: "
                "who started it may not decide; ask one of the other approvers",
                user=user,
                rule="exclude_requester",
                workflow=approval.workflow_id,
                step=approval.step_name,
            )
    if approval.authenticated and auth not in AUTHENTICATED:
        verdict = Verdict(
            False, "authenticated", f"the decision of {user!r} is {auth}, and the step accepts authenticated ones only"
        )
        engine.audit_now("approval", user, verdict, **kw)
        raise PolicyError(
            f"{_where(approval)}: the step accepts only authenticated decisions (authenticated: true), and "
            f"{user!r} is only asserted here (a name anyone could type); decide on an approvals page (/airt/) "
            "that authenticates you (JupyterHub, or a server run by your own account: a name a server was "
            "started with is asserted too), or as your own PostgreSQL role",
            user=user,
            rule="authenticated",
            workflow=approval.workflow_id,
            step=approval.step_name,
        )


def agree(
    approval: ApprovalRecord,
    earlier: Iterable[DecisionRecord],
    user: str,
    clean: dict[str, Any],
    approve: bool,
    system: bool,
) -> tuple[dict[str, Any], list[str]]:
    """``(the values the step goes on with, who approved)`` once this decision is counted.

    ``clean`` holds the values the decision gave (from :func:`clean_values`).
    Runs in the decision's transaction, on the approval as locked there: whether
    values were approved before is known only here.
    """
    approved_by = [d.decided_by for d in earlier if d.decision == "APPROVED"]
    first = approval.values
    if not approve:
        return clean, approved_by
    if system:
        return (first if first is not None else clean), approved_by
    if user in approved_by:
        raise RuleRefusal(
            f"{_where(approval)}: {user} approved already ({len(approved_by)} of {approval.min_approvals} "
            f"approvals); {approval.min_approvals - len(approved_by)} more must come from other people",
            rule="once",
            approval=approval,
        )
    if first is None:
        # The first approval sets the values: every field, given or filled in from its default.
        return _checked(approval, clean, complete=True), [*approved_by, user]
    # A later approval confirms them: what it leaves out is confirmed, what it gives must match.
    for name in sorted(clean):
        if not same(clean[name], first.get(name)):
            raise RuleRefusal(
                f"{_where(approval)}: {name}={clean[name]!r} differs from the value {approved_by[0] if approved_by else 'the first approver'} "
                f"approved ({name}={first.get(name)!r}); every approver approves the same values: approve "
                "without values to confirm them, or reject. Nothing was recorded",
                rule="same_values",
                approval=approval,
            )
    return first, [*approved_by, user]
