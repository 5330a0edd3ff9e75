"""Whether a person may decide a pending approval now, and if not, why, in words for them.

One function for every surface that shows Approve / Reject before a click: the
notebook's card and inbox, and the approvals page (asked as the person the page
authenticated).  The decision path applies the same rules and has the last
word; this only says beforehand what it would refuse, without recording a
refusal.  Imports no IPython or ipywidgets.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .engine import Engine
    from .store.records import ApprovalRecord, DecisionRecord

__all__ = ["Standing", "standing"]


def _started_by(engine: Engine, approval: ApprovalRecord) -> str | None:
    try:
        context = json.loads(approval.context) if approval.context else {}
    except ValueError:
        context = {}
    if isinstance(context, dict) and context.get("started_by"):
        return str(context["started_by"])
    record = engine.store.workflow(approval.workflow_id)  # the decision path's own source
    return record.started_by if record is not None else None


@dataclass(frozen=True)
class Standing:
    """Whether the engine's user may decide one pending approval now: :func:`standing`."""

    #: why they may not decide it at all (``None``: they may)
    refusal: str | None = None
    #: they approved it already (one of several approvals): they may still reject it
    already: str | None = None

    @property
    def may_decide(self) -> bool:
        """They may approve it: what the inbox marks "you ✔" and its "ones I may decide" keeps."""
        return self.refusal is None and self.already is None


def standing(
    engine: Engine,
    approval: ApprovalRecord,
    decisions: Sequence[DecisionRecord] | None = None,
    *,
    user: str | None = None,
    authenticated: bool | None = None,
) -> Standing:
    """May ``user`` (default ``engine``'s user) decide ``approval`` now, and if not, why (in words for
    the card).  ``authenticated``: whether their name is proven (default: whether the database
    proves the engine's user); a page passes how it authenticated the person.

    The policy first, then the step's own rules (``authenticated``, ``exclude_requester``), then
    "approved already" (``decisions``: the approval's individual decisions, read when not given).
    The same rules as the one decision path, which has the last word: this only says beforehand
    what it would refuse, without recording a refusal.
    """
    if user is None:
        user = engine.user
    if authenticated is None:
        authenticated = engine.store.authenticated_user is not None
    try:
        verdict = engine.policy.check_approval(user, approval.approver_list)
    except Exception:  # a policy that cannot answer now refuses at decision time, with its reason
        verdict = None
    if verdict is not None and not verdict.allowed:
        because = verdict.reason or f"refused by rule {verdict.rule!r}"
        return Standing(refusal=f"You ({user}) may not decide this approval: {because}. Ask one of the approvers.")
    if approval.authenticated and not authenticated:
        return Standing(
            refusal=f"This step accepts only authenticated decisions, and your name ({user}) is only asserted "
            "here: decide on an approvals page (/airt/) that authenticates you (JupyterHub, or a server run by "
            "your own account), or as your own PostgreSQL role."
        )
    if approval.exclude_requester and _started_by(engine, approval) == user:
        return Standing(
            refusal=f"You ({user}) started this workflow, and the step says who started it may not decide it."
        )
    if decisions is None:
        if not approval.approved_count:  # nobody approved yet: no need to read who did
            return Standing()
        decisions = engine.store.decisions(approval_id=approval.approval_id)
    if any(
        d.approval_id == approval.approval_id and d.decided_by == user and d.decision == "APPROVED" for d in decisions
    ):
        return Standing(
            already=f"You ({user}) approved already; it waits for {approval.min_approvals - approval.approved_count} "
            "more approval(s) from other people. You may still reject it."
        )
    return Standing()
