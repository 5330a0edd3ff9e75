"""Every statement a write transaction runs, for both dialects: the :class:`Tx` an op receives.

The statements are grouped by topic in the base classes of :class:`Tx`
(:mod:`.workflow_writes`, :mod:`.step_writes`, :mod:`.approval_writes`,
:mod:`.outbox_writes`, :mod:`.event_writes`, :mod:`.engine_writes`); the
hot path, a step's completion, is here.

The SQL is written once, with ``?`` / ``:name`` placeholders and in the
subset SQLite and PostgreSQL share (``ON CONFLICT``, ``RETURNING``, quoted
``"user"``); the few statements that must differ branch on ``dialect``.
Values are always parameters, never text built from what a user wrote.

Times are ISO-8601 UTC text written by :mod:`airt_nb.timeutil`, so that
text order is time order in both dialects.  Lease expiries on PostgreSQL are
computed by the server's clock, so that a client whose clock is wrong cannot
expire a live engine's lease.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .approval_writes import ApprovalWrites
from .base import LeaseLostError
from .columns import (
    ACTIVE_SQL,
    APPROVAL_COLS,
    COMP_COLS,
    DECISION_COLS,
    DELIVERY_COLS,
    ENGINE_COLS,
    EVENT_COLS,
    SCHEDULE_COLS,
    STEP_COLS,
    WF_COLS,
)
from .columns import PG_NOW as PG_NOW
from .engine_writes import EngineWrites
from .event_writes import EventWrites
from .outbox_writes import OutboxWrites
from .step_writes import StepWrites
from .workflow_writes import WorkflowWrites

if TYPE_CHECKING:
    from .base import Completion

__all__ = [
    "ACTIVE_SQL",
    "APPROVAL_COLS",
    "COMP_COLS",
    "DECISION_COLS",
    "DELIVERY_COLS",
    "ENGINE_COLS",
    "EVENT_COLS",
    "SCHEDULE_COLS",
    "STEP_COLS",
    "WF_COLS",
    "Tx",
]

# A step's checkpoint on SQLite, the statement benchmarks/workloads.py runs raw to measure what the
# protocol alone costs.
COMPLETE_SQLITE = (
    "UPDATE workflow_steps SET status = ?, attempt = ?, started_at = ?, finished_at = ?, inputs = ?, "
    "outputs = ?, fingerprint = ?, next_attempt_at = NULL, error = NULL, traceback = NULL "
    "WHERE step_id = ? AND EXISTS (SELECT 1 FROM workflows WHERE workflow_id = ? AND lease_owner = ?) "
    "RETURNING (SELECT requested FROM workflows WHERE workflow_id = ?)"
)
# One statement, so one round trip in autocommit mode.  FOR SHARE: a claim of this workflow by
# another engine waits for (or skips) this commit, so the fence and the write are one atomic step,
# as SQLite's single writer makes them.  The compensation intent rides along as a data-modifying
# CTE that inserts only if the step was written.
_COMPLETE_PG = (
    "WITH w AS (SELECT requested FROM workflows WHERE workflow_id = :wf AND lease_owner = :owner FOR SHARE), "
    "s AS (UPDATE workflow_steps SET status = :status, attempt = :attempt, started_at = :started, "
    "finished_at = :finished, inputs = :inputs, outputs = :outputs, fingerprint = :fingerprint, "
    "next_attempt_at = NULL, error = NULL, traceback = NULL FROM w WHERE step_id = :step RETURNING w.requested)"
)
_INTENT_PG = (
    ", c AS (INSERT INTO compensation_log (workflow_id, step_name, action, inputs, outputs, state, status, "
    "created_at) SELECT :wf, :c_step, :c_action, :c_inputs, :c_outputs, :c_state, 'PENDING', :finished FROM s)"
)
# Many completions (of any workflows) in one statement, so one round trip and one commit: what
# group commit is to SQLite.  A step whose workflow this engine no longer holds is not returned.
_COMPLETE_MANY_PG = (
    "WITH c AS (SELECT * FROM unnest(:wf::text[], :owner::text[], :step::bigint[], :status::text[], "
    ":attempt::int[], :started::text[], :finished::text[], :inputs::text[], :outputs::text[], "
    ":fingerprint::text[], :c_step::text[], :c_action::text[], :c_inputs::text[], :c_outputs::text[], "
    ":c_state::text[]) WITH ORDINALITY AS c (wf, owner, step, status, attempt, started, finished, inputs, "
    "outputs, fingerprint, c_step, c_action, c_inputs, c_outputs, c_state, ord)), "
    "w AS (SELECT workflow_id, lease_owner, requested FROM workflows WHERE (workflow_id, lease_owner) IN "
    "(SELECT wf, owner FROM c) FOR SHARE), "
    "s AS (UPDATE workflow_steps t SET status = c.status, attempt = c.attempt, started_at = c.started, "
    "finished_at = c.finished, inputs = c.inputs, outputs = c.outputs, fingerprint = c.fingerprint, "
    "next_attempt_at = NULL, error = NULL, traceback = NULL FROM c JOIN w ON w.workflow_id = c.wf "
    "AND w.lease_owner = c.owner WHERE t.step_id = c.step RETURNING t.step_id, w.requested), "
    "i AS (INSERT INTO compensation_log (workflow_id, step_name, action, inputs, outputs, state, status, "
    "created_at) SELECT c.wf, c.c_step, c.c_action, c.c_inputs, c.c_outputs, c.c_state, 'PENDING', c.finished "
    "FROM c JOIN s ON s.step_id = c.step WHERE c.c_action IS NOT NULL ORDER BY c.ord)"
)
_COMPLETE_PG_VARIANTS = {
    intent: _COMPLETE_PG + (_INTENT_PG if intent else "") + " SELECT s.requested FROM s" for intent in (False, True)
}


class Tx(WorkflowWrites, StepWrites, ApprovalWrites, OutboxWrites, EventWrites, EngineWrites):
    """The statements a write op may run; every one of them is here or in a base class, parameterised."""

    __slots__ = ()

    # -- the hot path ---------------------------------------------------------------------

    def complete(self, c: Completion) -> str | None:
        """Complete one step (one row), fenced on the lease; returns the workflow's pending request."""
        if self.dialect == "sqlite":
            params: Any = (
                c.status, c.attempt, c.started_at, c.finished_at, c.inputs, c.outputs, c.fingerprint,
                c.step_id, c.workflow_id, c.owner, c.workflow_id,
            )  # fmt: skip
            # fetchall: the statement runs to its end, so that alone (no BEGIN) it has committed on return
            rows = self._c.execute(COMPLETE_SQLITE, params).fetchall()
            if not rows:
                raise LeaseLostError(c.workflow_id)
            row = rows[0]
            if c.intent is not None:
                step_name, action, inputs, outputs, state = c.intent
                self._c.execute(
                    "INSERT INTO compensation_log (workflow_id, step_name, action, inputs, outputs, state, status, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, 'PENDING', ?)",
                    (c.workflow_id, step_name, action, inputs, outputs, state, c.finished_at),
                )
            return row[0]  # type: ignore[no-any-return]
        params = {
            "wf": c.workflow_id, "owner": c.owner, "status": c.status, "attempt": c.attempt,
            "started": c.started_at, "finished": c.finished_at, "inputs": c.inputs, "outputs": c.outputs,
            "fingerprint": c.fingerprint, "step": c.step_id,
        }  # fmt: skip
        if c.intent is not None:
            params.update(zip(("c_step", "c_action", "c_inputs", "c_outputs", "c_state"), c.intent, strict=True))
        sql = _COMPLETE_PG_VARIANTS[c.intent is not None]
        row = self._c.execute(sql, params, prepare=True).fetchone()
        if row is None:
            raise LeaseLostError(c.workflow_id)
        return row[0]  # type: ignore[no-any-return]

    def complete_many(self, cs: Sequence[Completion]) -> dict[int, str | None]:
        """PostgreSQL: complete several steps in one statement; returns ``{step_id: pending request}``
        of those whose workflow's lease the completion's owner still holds (the others are not written)."""
        intents = [c.intent or (None, None, None, None, None) for c in cs]
        params = {
            "wf": [c.workflow_id for c in cs], "owner": [c.owner for c in cs], "step": [c.step_id for c in cs],
            "status": [c.status for c in cs], "attempt": [c.attempt for c in cs],
            "started": [c.started_at for c in cs], "finished": [c.finished_at for c in cs],
            "inputs": [c.inputs for c in cs], "outputs": [c.outputs for c in cs],
            "fingerprint": [c.fingerprint for c in cs],
            **{k: [i[n] for i in intents] for n, k in enumerate(("c_step", "c_action", "c_inputs", "c_outputs", "c_state"))},
        }  # fmt: skip
        sql = _COMPLETE_MANY_PG + " SELECT s.step_id, s.requested FROM s"
        return {int(r[0]): r[1] for r in self._c.execute(sql, params, prepare=True).fetchall()}

    def completion_applied(self, c: Completion) -> tuple[bool, str | None]:
        """Whether ``c`` is already committed (a retry after a connection lost while committing),
        and the workflow's pending request."""
        row = self._c.execute(
            "SELECT s.status, s.finished_at, s.attempt, w.requested FROM workflow_steps s "
            "JOIN workflows w ON w.workflow_id = s.workflow_id WHERE s.step_id = ?",
            (c.step_id,),
        ).fetchone()
        if row is None:
            return False, None
        return (row[0], row[1], row[2]) == (c.status, c.finished_at, c.attempt), row[3]
