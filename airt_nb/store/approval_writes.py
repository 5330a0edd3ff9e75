"""The statements of a write transaction about approvals and the decisions recorded on them."""

from __future__ import annotations

import json
from typing import Any

from ..errors import ApprovalError, PolicyError
from .columns import APPROVAL_COLS, DECISION_COLS
from .records import ApprovalRecord, DecisionRecord
from .txbase import TxBase

__all__ = ["ApprovalWrites"]


class ApprovalWrites(TxBase):
    """Approval statements of :class:`~airt_nb.store.writes.Tx`."""

    __slots__ = ()

    # -- approvals --------------------------------------------------------------------------

    def insert_approval(self, row: dict[str, Any]) -> None:
        """A new pending approval; keys beyond the first ten (fields, rules, preview, timers) are optional."""
        params = {k: row.get(k) for k in _APPROVAL_INSERT}
        params["min_approvals"] = row.get("min_approvals") or 1
        params["exclude_requester"] = 1 if row.get("exclude_requester") else 0
        params["authenticated"] = 1 if row.get("authenticated") else 0
        if self.definer:  # the database forces the new row to be pending and undecided
            self._c.execute("SELECT airt_request_approval(?)", (json.dumps(params),))
            return
        self._c.execute(
            "INSERT INTO approvals (approval_id, workflow_id, step_name, status, message, context, approvers, "
            "requested_at, deadline, on_timeout, fields, min_approvals, exclude_requester, authenticated, preview, "
            "preview_hash, gate_step, reasked_from, remind_every, next_reminder_at, escalate_at, escalate_to) "
            "VALUES (:approval_id, :workflow_id, :step_name, 'PENDING', :message, :context, :approvers, "
            ":requested_at, :deadline, :on_timeout, :fields, :min_approvals, :exclude_requester, :authenticated, "
            ":preview, :preview_hash, :gate_step, :reasked_from, :remind_every, :next_reminder_at, :escalate_at, "
            ":escalate_to)",
            params,
        )

    def lock_approval(self, approval_id: str) -> ApprovalRecord | None:
        """The approval, locked until the transaction ends (decisions on it queue up behind this one).

        On PostgreSQL the lock is on its workflow's row (see :meth:`get_approval`): a per-user role
        may not lock ``approvals`` itself, and every decision on it takes the same lock first.
        """
        return self.get_approval(approval_id)

    def record_decision(self, row: dict[str, Any], *, final: bool, approved_count: int) -> str | None:
        """Record one person's decision (a row of ``approval_decisions``) and its effect on the approval.

        ``row`` holds the :data:`_DECISION_INSERT` keys; ``final`` says whether it settles the
        approval (a rejection, a timeout, or the last approval needed), ``approved_count`` the count
        once it is counted.  Returns ``"partial"`` (more approvals needed), ``"final"``, or ``None``
        when the approval was no longer pending.

        With a per-user PostgreSQL role (``definer``) the database records it: ``airt_decide``
        applies the approval's rules (approvers by name or role membership, exclude_requester, one
        approval per person, N of M) and writes the server's ``session_user`` as ``decided_by``,
        whatever ``row`` says, and the server's clock as ``decided_at``; a timeout (``auth="system"``)
        goes through ``airt_expire_approval``, which checks the deadline has passed by the server's
        clock.  A decision the server's clock finds past the deadline (this machine's clock being
        behind) is refused as too late (:class:`~airt_nb.ApprovalError`): the timeout decides it.
        """
        self.synchronous = True
        approval_id, status = row["approval_id"], row["decision"]
        values = row.get("field_values")
        if self.definer:
            try:
                if row.get("auth") == "system":
                    found = self._c.execute(
                        "SELECT airt_expire_approval(?, ?, ?, ?, ?)",
                        (approval_id, status, row.get("reason"), row["decided_at"], values),
                    ).fetchone()
                    return "final" if found[0] else None
                found = self._c.execute(
                    "SELECT airt_decide(?, ?, ?, ?, ?)",
                    (approval_id, status, row.get("reason"), row["decided_at"], values),
                ).fetchone()
            except Exception as exc:
                raise _refused(exc, row) from None
            return found[0]  # type: ignore[no-any-return]
        self.insert_decision(row)
        if not final:
            return "partial" if self.count_approval(approval_id, approved_count, values) else None
        by, reason, now, auth = row["decided_by"], row.get("reason"), row["decided_at"], row.get("auth")
        applied = self.decide_approval(
            approval_id, status, by, reason, now, auth, values=values, approved_count=approved_count
        )
        return "final" if applied else None

    def decide_approval(
        self,
        approval_id: str,
        status: str,
        by: str,
        reason: str | None,
        now: str,
        auth: str | None = None,
        *,
        values: str | None = None,
        approved_count: int | None = None,
    ) -> bool:
        """Record the final decision if the approval is still pending; the first decision wins."""
        self.synchronous = True
        cur = self._c.execute(
            "UPDATE approvals SET status = ?, decided_by = ?, reason = ?, decided_at = ?, auth = ?, "
            "field_values = COALESCE(?, field_values), approved_count = COALESCE(?, approved_count) "
            "WHERE approval_id = ? AND status = 'PENDING'",
            (status, by, reason, now, auth, values, approved_count, approval_id),
        )
        return cur.rowcount == 1  # type: ignore[no-any-return]

    def count_approval(self, approval_id: str, approved_count: int, values: str | None) -> bool:
        """One more person approved; the approval waits for more (its values are the first approval's)."""
        cur = self._c.execute(
            "UPDATE approvals SET approved_count = ?, field_values = COALESCE(field_values, ?) "
            "WHERE approval_id = ? AND status = 'PENDING'",
            (approved_count, values, approval_id),
        )
        return cur.rowcount == 1  # type: ignore[no-any-return]

    def insert_decision(self, row: dict[str, Any]) -> None:
        """One person's decision (``approval_decisions``)."""
        self._c.execute(
            "INSERT INTO approval_decisions (approval_id, workflow_id, step_name, decision, decided_by, decided_at, "
            "reason, field_values, auth, preview_hash) VALUES (:approval_id, :workflow_id, :step_name, :decision, "
            ":decided_by, :decided_at, :reason, :field_values, :auth, :preview_hash)",
            {k: row.get(k) for k in _DECISION_INSERT},
        )

    def decisions_of(self, approval_id: str) -> list[DecisionRecord]:
        rows = self._c.execute(
            f"SELECT {DECISION_COLS} FROM approval_decisions WHERE approval_id = ? ORDER BY decision_id",
            (approval_id,),
        ).fetchall()
        return [DecisionRecord(*r) for r in rows]

    def remind_approval(self, approval_id: str, due: str, next_at: str) -> bool:
        """Count a reminder sent for the reminder due at ``due`` (once, whichever engine sends it)."""
        if self.definer:
            found = self._c.execute("SELECT airt_remind_approval(?, ?, ?)", (approval_id, due, next_at)).fetchone()
            return bool(found[0])
        cur = self._c.execute(
            "UPDATE approvals SET reminders = reminders + 1, next_reminder_at = ? "
            "WHERE approval_id = ? AND status = 'PENDING' AND next_reminder_at = ?",
            (next_at, approval_id, due),
        )
        return cur.rowcount == 1  # type: ignore[no-any-return]

    def escalate_approval(self, approval_id: str, approvers: str, now: str) -> bool:
        """Add the escalation's approvers (once, whichever engine does it).

        With a per-user PostgreSQL role the database computes them from the approval itself
        (``airt_escalate_approval``): a caller cannot widen the approvers with names of its own, and
        ``escalated_at`` is the server's clock.
        """
        if self.definer:
            found = self._c.execute("SELECT airt_escalate_approval(?, ?)", (approval_id, now)).fetchone()
            return found[0] is not None
        cur = self._c.execute(
            "UPDATE approvals SET approvers = ?, escalated_at = ? "
            "WHERE approval_id = ? AND status = 'PENDING' AND escalated_at IS NULL",
            (approvers, now, approval_id),
        )
        return cur.rowcount == 1  # type: ignore[no-any-return]

    def cancel_approvals(self, workflow_id: str, now: str, by: str, reason: str) -> list[ApprovalRecord]:
        """Cancel the workflow's pending approvals; returns them as cancelled.

        With a per-user PostgreSQL role (``definer``) ``airt_cancel_approvals`` records the role itself
        as who cancelled (``by`` is not used: not even ``system``, for a rollback's end) and the
        server's clock as when.
        """
        self.synchronous = True
        ids = [
            r[0]
            for r in self._c.execute(
                "SELECT approval_id FROM approvals WHERE workflow_id = ? AND status = 'PENDING'", (workflow_id,)
            ).fetchall()
        ]
        if not ids:
            return []
        if self.definer:
            self._c.execute("SELECT airt_cancel_approvals(?, ?, ?, ?)", (workflow_id, now, by, reason))
        else:
            self._c.execute(
                "UPDATE approvals SET status = 'CANCELLED', decided_at = ?, decided_by = ?, reason = ? "
                "WHERE workflow_id = ? AND status = 'PENDING'",
                (now, by, reason, workflow_id),
            )
        return [a for a in (self.get_approval(i) for i in ids) if a is not None]

    def get_approval(self, approval_id: str) -> ApprovalRecord | None:
        if self.dialect == "postgresql":
            # A decision racing this one holds its workflow's row until it commits: wait for it, then
            # read in a new statement (a new snapshot), so that the first decision wins, as with
            # SQLite's single writer.  (Locking the approval itself would need UPDATE on approvals.)
            self._c.execute(
                "SELECT 1 FROM workflows WHERE workflow_id = "
                "(SELECT workflow_id FROM approvals WHERE approval_id = ?) FOR UPDATE",
                (approval_id,),
            )
        row = self._c.execute(f"SELECT {APPROVAL_COLS} FROM approvals WHERE approval_id = ?", (approval_id,)).fetchone()
        return ApprovalRecord(*row) if row else None


def _refused(exc: Exception, row: dict[str, Any]) -> Exception:
    """A decision function's refusal, as the error the engine raises for the same rule."""
    diag = getattr(exc, "diag", None)
    text = getattr(diag, "message_primary", None) or str(exc)
    state = getattr(exc, "sqlstate", None)
    if state == "42501":  # insufficient_privilege: not an approver, or the requester
        return PolicyError(f"{text}; ask one of the approvers to decide", user=row.get("decided_by"))
    # unique_violation: this person approved already; object_not_in_prerequisite_state: the deadline
    # passed by the server's clock, and the timeout decides
    if state in ("23505", "55000"):
        return ApprovalError(text, workflow_id=row.get("workflow_id"), approval_id=row.get("approval_id"))
    return exc


_APPROVAL_INSERT = (
    "approval_id", "workflow_id", "step_name", "message", "context", "approvers", "requested_at", "deadline",
    "on_timeout", "fields", "preview", "preview_hash", "gate_step", "reasked_from", "remind_every",
    "next_reminder_at", "escalate_at", "escalate_to",
)  # fmt: skip

_DECISION_INSERT = (
    "approval_id", "workflow_id", "step_name", "decision", "decided_by", "decided_at", "reason", "field_values",
    "auth", "preview_hash",
)  # fmt: skip
