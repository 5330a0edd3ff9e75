"""Every statement a write transaction runs, for both dialects: the :class:`Tx` an op receives.

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

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ApprovalError, PolicyError
from .base import LeaseLostError
from .records import ApprovalRecord, DecisionRecord, WorkflowRecord

if TYPE_CHECKING:
    from .base import Completion

__all__ = [
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

# Rows written since migration 3 keep their spec in workflow_specs (see migrations.py).
_SPEC = (
    "CASE WHEN spec <> '' THEN spec ELSE "
    "(SELECT s.spec FROM workflow_specs s WHERE s.spec_hash = workflows.spec_hash) END"
)
WF_COLS = (
    f"workflow_id, name, status, {_SPEC}, spec_hash, inputs, created_at, updated_at, finished_at, error, "
    "started_by, total_steps, done_steps, lease_owner, lease_expires, requested, waiting_for, warnings, "
    "workdir, session, home, forked_from, parent_id, parent_step"
)
STEP_COLS = (
    "workflow_id, step_name, position, type, action, status, attempt, started_at, finished_at, "
    "next_attempt_at, inputs, outputs, error, fingerprint, state, step_id, traceback"
)
COMP_COLS = (
    "compensation_id, workflow_id, step_name, action, inputs, outputs, state, status, attempts, "
    "created_at, executed_at, error, note, origin"
)
APPROVAL_COLS = (
    "approval_id, workflow_id, step_name, status, message, context, approvers, requested_at, deadline, "
    "on_timeout, decided_at, decided_by, reason, auth, fields, min_approvals, approved_count, exclude_requester, "
    "authenticated, field_values, preview, preview_hash, gate_step, reasked_from, remind_every, next_reminder_at, "
    "reminders, escalate_at, escalate_to, escalated_at"
)
DECISION_COLS = (
    "decision_id, approval_id, workflow_id, step_name, decision, decided_by, decided_at, reason, field_values, "
    "auth, preview_hash"
)
DELIVERY_COLS = (
    "delivery_id, approval_id, workflow_id, event, payload, status, attempts, created_at, next_attempt_at, "
    "last_attempt_at, last_status, last_error, delivered_at, url"
)
ENGINE_COLS = (
    "owner_id, machine, host, pid, session, workdir, user_name, takes_work, started_at, heartbeat_at, "
    "expires_at, closed_at, wake"
)
EVENT_COLS = "event_id, workflow_id, event, payload, status, sent_at, sent_by, auth, step_name, received_at"
SCHEDULE_COLS = (
    "schedule_id, name, cron, timezone, spec_hash, inputs, workdir, created_at, created_by, next_fire_at, "
    "last_fired_at, last_workflow_id"
)
ACTIVE_SQL = "('RUNNING', 'ROLLING_BACK')"

# The server's clock as airt_nb's text format (PostgreSQL only).
PG_NOW = "to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"
_PG_LATER = (
    "to_char((clock_timestamp() AT TIME ZONE 'UTC') + make_interval(secs => ?), "
    '\'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"\')'
)

_COMPLETE_SQLITE = (
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


_INSERT_WORKFLOW = (
    "INSERT INTO workflows (workflow_id, name, status, spec, spec_hash, inputs, created_at, "
    "updated_at, started_by, total_steps, done_steps, lease_owner, workdir, session, home, forked_from, "
    "parent_id, parent_step) "
    "VALUES (:workflow_id, :name, :status, '', :spec_hash, :inputs, :created_at, :updated_at, "
    ":started_by, :total_steps, COALESCE(:done_steps, 0), :lease_owner, :workdir, :session, :lease_owner, "
    ":forked_from, :parent_id, :parent_step)"
)


class Tx:
    """The statements a write op may run; every one of them is here, parameterised."""

    __slots__ = ("_c", "definer", "dialect", "synchronous")

    def __init__(self, cursor: Any, dialect: str, *, definer: bool = False):
        self._c = cursor
        self.dialect = dialect
        # PostgreSQL with a per-user role: approvals are written only through the SECURITY DEFINER
        # functions of migration 7, which record the server's session_user as the decider.
        self.definer = definer
        # Set by the writes another engine or a person relies on (decisions, requests, claims and
        # releases, new workflows, engines and their leases): with durability "normal" on PostgreSQL,
        # a transaction without any of them commits asynchronously (see PostgresStore).
        self.synchronous = False

    # -- the hot path ---------------------------------------------------------------------

    def complete(self, c: Completion) -> str | None:
        """Complete one step (one row), fenced on the lease; returns the workflow's pending request."""
        if self.dialect == "sqlite":
            params: Any = (
                c.status, c.attempt, c.started_at, c.finished_at, c.inputs, c.outputs, c.fingerprint,
                c.step_id, c.workflow_id, c.owner, c.workflow_id,
            )  # fmt: skip
            row = self._c.execute(_COMPLETE_SQLITE, params).fetchone()
            if row is None:
                raise LeaseLostError(c.workflow_id)
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

    # -- workflows -------------------------------------------------------------------------

    def insert_workflow(self, row: dict[str, Any], *, spec_stored: bool = False) -> None:
        """Insert a workflow; its spec is stored once per ``spec_hash``, not in the row
        (``spec_stored``: the caller knows it is in the database already)."""
        self.synchronous = True
        params = {k: row.get(k) for k in _WF_INSERT}
        if spec_stored:
            self._c.execute(_INSERT_WORKFLOW, params)
        elif self.dialect == "postgresql":  # one statement: one round trip
            self._c.execute(
                "WITH spec AS (INSERT INTO workflow_specs (spec_hash, spec) VALUES (:spec_hash, :spec) "
                "ON CONFLICT DO NOTHING) " + _INSERT_WORKFLOW,
                {**params, "spec": row["spec"]},
            )
        else:
            self._c.execute(
                "INSERT INTO workflow_specs (spec_hash, spec) VALUES (:spec_hash, :spec) ON CONFLICT DO NOTHING",
                {"spec_hash": row["spec_hash"], "spec": row["spec"]},
            )
            self._c.execute(_INSERT_WORKFLOW, params)

    def fence(self, workflow_id: str, owner: str) -> str | None:
        """Raise :class:`LeaseLostError` unless ``owner`` holds the lease; returns the pending request."""
        share = " FOR SHARE" if self.dialect == "postgresql" else ""
        row = self._c.execute(
            f"SELECT requested FROM workflows WHERE workflow_id = ? AND lease_owner = ?{share}",
            (workflow_id, owner),
        ).fetchone()
        if row is None:
            raise LeaseLostError(workflow_id)
        return row[0]  # type: ignore[no-any-return]

    def holds(self, workflow_id: str, owner: str) -> bool:
        """Whether ``owner`` still holds the workflow's lease (read in the transaction)."""
        try:
            self.fence(workflow_id, owner)
        except LeaseLostError:
            return False
        return True

    def set_status(
        self,
        workflow_id: str,
        status: str,
        now: str,
        *,
        owner: str | None = None,
        error: str | None = None,
        finished: bool = False,
        release: bool = False,
        new_owner: str | None = None,
        done: int | None = None,
        clear_error: bool = False,
    ) -> None:
        """Change a workflow's status (fenced on ``owner`` when given).

        ``release`` frees the lease but keeps ``home``, the engine that ran it
        last, which gets it back first; ``new_owner`` takes the lease and
        becomes its home; ``done`` sets the progress counter.
        """
        params: dict[str, Any] = {
            "wf": workflow_id,
            "status": status,
            "now": now,
            "error": error,
            "clear": 1 if clear_error else 0,
            "finished": now if finished else None,
            "release": 1 if release else 0,
            "new_owner": new_owner,
            "done": done,
        }
        self.synchronous = self.synchronous or release or new_owner is not None
        fence = ""
        if owner is not None:
            fence = " AND lease_owner = :owner"
            params["owner"] = owner
        cur = self._c.execute(
            "UPDATE workflows SET status = :status, updated_at = :now, "
            "error = CASE WHEN :clear = 1 THEN NULL ELSE COALESCE(:error, error) END, finished_at = :finished, "
            "requested = CASE WHEN CAST(:finished AS TEXT) IS NOT NULL THEN NULL ELSE requested END, "
            "lease_owner = CASE WHEN :release = 1 THEN NULL ELSE COALESCE(:new_owner, lease_owner) END, "
            "lease_expires = NULL, home = COALESCE(:new_owner, home), "
            "done_steps = COALESCE(:done, done_steps), waiting_for = NULL "
            f"WHERE workflow_id = :wf{fence}",
            params,
        )
        if cur.rowcount != 1:
            raise LeaseLostError(workflow_id)

    def progress(self, workflow_id: str, owner: str, done: int, now: str) -> None:
        """The progress counter and ``updated_at``, written in batches rather than per step."""
        self._c.execute(
            "UPDATE workflows SET done_steps = ?, updated_at = ? WHERE workflow_id = ? AND lease_owner = ?",
            (done, now, workflow_id, owner),
        )

    def bump_done(self, workflow_id: str, count: int = 1) -> None:
        self._c.execute("UPDATE workflows SET done_steps = done_steps + ? WHERE workflow_id = ?", (count, workflow_id))

    def claim(self, owner: str, workflow_ids: Sequence[str], dead: Sequence[str], now: str) -> list[str]:
        """Take the leases of those workflows that are free or held by a ``dead`` engine.

        Returns the ids taken; this engine becomes their home.  On PostgreSQL,
        rows another engine is claiming at this instant are skipped, not waited for.
        """
        self.synchronous = True
        if not workflow_ids:
            return []
        ids = ",".join("?" * len(workflow_ids))
        owners = ",".join("?" * len(dead)) or "NULL"
        held = f"(lease_owner IS NULL OR lease_owner IN ({owners}))"
        if self.dialect == "postgresql":
            where = (
                f"workflow_id IN (SELECT workflow_id FROM workflows WHERE workflow_id IN ({ids}) "
                f"AND status IN {ACTIVE_SQL} AND {held} FOR UPDATE SKIP LOCKED)"
            )
        else:
            where = f"workflow_id IN ({ids}) AND status IN {ACTIVE_SQL} AND {held}"
        rows = self._c.execute(
            "UPDATE workflows SET lease_owner = ?, lease_expires = NULL, home = ?, updated_at = ?, "
            f"waiting_for = NULL WHERE {where} RETURNING workflow_id",
            (owner, owner, now, *workflow_ids, *dead),
        ).fetchall()
        return [r[0] for r in rows]

    def release_all(self, owner: str) -> int:
        self.synchronous = True
        return self._c.execute(  # type: ignore[no-any-return]
            "UPDATE workflows SET lease_owner = NULL, lease_expires = NULL WHERE lease_owner = ?", (owner,)
        ).rowcount

    def release(self, workflow_id: str, owner: str, *, waiting_for: str | None = None) -> None:
        self.synchronous = True
        self._c.execute(
            "UPDATE workflows SET lease_owner = NULL, lease_expires = NULL, waiting_for = ? "
            "WHERE workflow_id = ? AND lease_owner = ?",
            (waiting_for, workflow_id, owner),
        )

    def set_waiting_for(self, workflow_id: str, waiting_for: str | None) -> None:
        """Say what a workflow nobody holds waits for (a folder, an action)."""
        self._c.execute(
            "UPDATE workflows SET waiting_for = ? WHERE workflow_id = ? AND lease_owner IS NULL",
            (waiting_for, workflow_id),
        )

    def request(self, workflow_id: str, kind: str) -> None:
        """Ask the owner of a running workflow to cancel, roll back, or re-read (``wake``)."""
        self.synchronous = True
        self._c.execute(
            "UPDATE workflows SET requested = CASE WHEN ? = 'wake' AND requested IN ('cancel', 'rollback') "
            "THEN requested ELSE ? END WHERE workflow_id = ?",
            (kind, kind, workflow_id),
        )

    def clear_request(self, workflow_id: str, kind: str | None = None) -> None:
        """Forget the pending request (only if it is still ``kind`` when given)."""
        if kind is None:
            self._c.execute("UPDATE workflows SET requested = NULL WHERE workflow_id = ?", (workflow_id,))
        else:
            self._c.execute(
                "UPDATE workflows SET requested = NULL WHERE workflow_id = ? AND requested = ?", (workflow_id, kind)
            )

    def add_warning(self, workflow_id: str, warning: str) -> None:
        lock = " FOR UPDATE" if self.dialect == "postgresql" else ""  # read, modify, write: one at a time
        row = self._c.execute(f"SELECT warnings FROM workflows WHERE workflow_id = ?{lock}", (workflow_id,)).fetchone()
        warnings = json.loads(row[0]) if row and row[0] else []
        if warning not in warnings:
            warnings.append(warning)
            self._c.execute(
                "UPDATE workflows SET warnings = ? WHERE workflow_id = ?", (json.dumps(warnings), workflow_id)
            )

    def get_workflow(self, workflow_id: str) -> WorkflowRecord | None:
        lock = " FOR UPDATE" if self.dialect == "postgresql" else ""
        row = self._c.execute(f"SELECT {WF_COLS} FROM workflows WHERE workflow_id = ?{lock}", (workflow_id,)).fetchone()
        return WorkflowRecord(*row) if row else None

    # -- steps -----------------------------------------------------------------------------

    def insert_steps(self, workflow_id: str, rows: Iterable[tuple[Any, ...]]) -> list[int]:
        """Rows of (workflow_id, step_name, position, type, action, status, attempt, started_at);
        returns the new rows' step ids in position order."""
        rows = list(rows)
        if self.dialect == "postgresql":  # one statement whatever the number of steps
            cols = list(zip(*rows, strict=True)) or [()] * 8
            found = self._c.execute(
                "INSERT INTO workflow_steps (workflow_id, step_name, position, type, action, status, attempt, "
                "started_at) SELECT * FROM unnest(?::text[], ?::text[], ?::int[], ?::text[], ?::text[], ?::text[], "
                "?::int[], ?::text[]) RETURNING position, step_id",
                [list(c) for c in cols],
            ).fetchall()
            return [step_id for _position, step_id in sorted(found)]
        self._c.executemany(
            "INSERT INTO workflow_steps (workflow_id, step_name, position, type, action, status, attempt, "
            "started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        if self.dialect == "sqlite":
            # One writer, one statement: the new rows took the next ids in order (rowids count up from the
            # largest), so the last one names them all.
            last = int(self._c.execute("SELECT last_insert_rowid()").fetchone()[0])
            return list(range(last - len(rows) + 1, last + 1))
        found = self._c.execute(
            "SELECT step_id FROM workflow_steps WHERE workflow_id = ? ORDER BY position", (workflow_id,)
        ).fetchall()
        return [r[0] for r in found]

    def start_step(self, step_id: int, attempt: int, now: str) -> None:
        self._c.execute(
            "UPDATE workflow_steps SET status = 'RUNNING', attempt = ?, started_at = ?, finished_at = NULL, "
            "next_attempt_at = NULL, error = NULL, traceback = NULL WHERE step_id = ?",
            (attempt, now, step_id),
        )

    def unstart_step(self, step_id: int, attempt: int) -> None:
        """Take back a start that was written but never ran (a stop came first)."""
        self._c.execute(
            "UPDATE workflow_steps SET status = 'PENDING', attempt = ?, started_at = NULL WHERE step_id = ? "
            "AND status = 'RUNNING'",
            (attempt, step_id),
        )

    def complete_step(
        self,
        workflow_id: str,
        step_name: str,
        now: str,
        inputs: str | None,
        outputs: str | None,
        fingerprint: str | None,
        status: str = "COMPLETED",
    ) -> None:
        self._c.execute(
            "UPDATE workflow_steps SET status = ?, finished_at = ?, inputs = ?, outputs = ?, fingerprint = ?, "
            "error = NULL, traceback = NULL WHERE workflow_id = ? AND step_name = ?",
            (status, now, inputs, outputs, fingerprint, workflow_id, step_name),
        )

    def wait_step(self, workflow_id: str, step_name: str, now: str) -> None:
        self._c.execute(
            "UPDATE workflow_steps SET status = 'WAITING', started_at = ?, attempt = 1 "
            "WHERE workflow_id = ? AND step_name = ?",
            (now, workflow_id, step_name),
        )

    def skip_step(self, workflow_id: str, step_name: str, now: str) -> None:
        """A step not taken (its ``when`` did not hold, or it uses the outputs of one that was skipped)."""
        self._c.execute(
            "UPDATE workflow_steps SET status = 'SKIPPED', finished_at = ? WHERE workflow_id = ? AND step_name = ? "
            "AND status = 'PENDING'",
            (now, workflow_id, step_name),
        )

    def hold_step(self, step_id: int, attempt: int) -> None:
        """A gated step that did not run: it waits for its approval to be given again (see gating)."""
        self._c.execute(
            "UPDATE workflow_steps SET status = 'WAITING', attempt = ?, started_at = NULL WHERE step_id = ?",
            (attempt, step_id),
        )

    def save_step_state(self, step_id: int, state: str) -> None:
        self._c.execute("UPDATE workflow_steps SET state = ? WHERE step_id = ?", (state, step_id))

    def record_attempt(
        self,
        workflow_id: str,
        step_name: str,
        attempt: int,
        status: str,
        started_at: str | None,
        finished_at: str,
        error: str | None,
        traceback: str | None = None,
    ) -> None:
        """One row per ended attempt (``FAILED``, ``INTERRUPTED``...): the step's history."""
        self._c.execute(
            "INSERT INTO step_attempts (workflow_id, step_name, attempt, status, started_at, finished_at, error, "
            "traceback) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (workflow_id, step_name, attempt, status, started_at, finished_at, error, traceback),
        )

    def schedule_retry(
        self,
        step_id: int,
        attempt: int,
        next_attempt_at: str,
        error: str,
        now: str,
        inputs: str | None,
        traceback: str | None = None,
    ) -> None:
        self._c.execute(
            "UPDATE workflow_steps SET status = 'RETRYING', attempt = ?, next_attempt_at = ?, error = ?, "
            "traceback = ?, finished_at = ?, inputs = ? WHERE step_id = ?",
            (attempt, next_attempt_at, error, traceback, now, inputs, step_id),
        )

    def fail_step(
        self,
        workflow_id: str,
        step_name: str,
        error: str,
        now: str,
        inputs: str | None,
        status: str = "FAILED",
        *,
        attempt: int | None = None,
        started_at: str | None = None,
        traceback: str | None = None,
    ) -> None:
        self._c.execute(
            "UPDATE workflow_steps SET status = ?, error = ?, traceback = ?, finished_at = ?, next_attempt_at = NULL, "
            "inputs = COALESCE(?, inputs), attempt = COALESCE(?, attempt), started_at = COALESCE(?, started_at) "
            "WHERE workflow_id = ? AND step_name = ?",
            (status, error, traceback, now, inputs, attempt, started_at, workflow_id, step_name),
        )

    def set_step_status(self, workflow_id: str, step_name: str, status: str) -> None:
        self._c.execute(
            "UPDATE workflow_steps SET status = ? WHERE workflow_id = ? AND step_name = ?",
            (status, workflow_id, step_name),
        )

    def skip_unfinished_steps(self, workflow_id: str, status: str = "SKIPPED") -> None:
        self._c.execute(
            "UPDATE workflow_steps SET status = ? WHERE workflow_id = ? "
            "AND status IN ('PENDING', 'RUNNING', 'RETRYING', 'WAITING')",
            (status, workflow_id),
        )

    # -- compensation ------------------------------------------------------------------------

    def insert_compensation(
        self, workflow_id: str, step_name: str, action: str, inputs: str, outputs: str, state: str | None, now: str
    ) -> None:
        self._c.execute(
            "INSERT INTO compensation_log (workflow_id, step_name, action, inputs, outputs, state, status, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, 'PENDING', ?)",
            (workflow_id, step_name, action, inputs, outputs, state, now),
        )

    def finish_compensation(
        self, compensation_id: int, status: str, attempts: int, error: str | None, now: str, note: str | None = None
    ) -> None:
        self._c.execute(
            "UPDATE compensation_log SET status = ?, attempts = ?, error = ?, executed_at = ?, note = ? "
            "WHERE compensation_id = ?",
            (status, attempts, error, now, note, compensation_id),
        )

    def reopen_failed_compensations(self, workflow_id: str) -> None:
        self._c.execute(
            "UPDATE compensation_log SET status = 'PENDING' WHERE workflow_id = ? AND status = 'FAILED'",
            (workflow_id,),
        )

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
        whatever ``row`` says; a timeout (``auth="system"``) goes through ``airt_expire_approval``,
        which checks the deadline has passed by the server's clock.
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
                raise _refused(exc, row.get("decided_by")) from None
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
        (``airt_escalate_approval``): a caller cannot widen the approvers with names of its own.
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
        """Cancel the workflow's pending approvals; returns them as cancelled."""
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

    # -- webhooks and audit -------------------------------------------------------------------

    def insert_delivery(self, row: dict[str, Any]) -> None:
        """Queue a webhook delivery (the outbox row) to ``row["url"]``."""
        self._c.execute(
            "INSERT INTO webhook_deliveries (delivery_id, approval_id, workflow_id, event, payload, status, "
            "created_at, next_attempt_at, url) VALUES (:delivery_id, :approval_id, :workflow_id, :event, :payload, "
            "'PENDING', :created_at, :created_at, :url)",
            {"url": row.get("url"), **{k: row[k] for k in _DELIVERY_INSERT}},
        )

    def delivery_urls(self, approval_id: str) -> list[str]:
        """The webhook URLs an approval's earlier events were queued for (its decision goes there too)."""
        rows = self._c.execute(
            "SELECT DISTINCT url FROM webhook_deliveries WHERE approval_id = ? AND url IS NOT NULL ORDER BY url",
            (approval_id,),
        ).fetchall()
        return [r[0] for r in rows]

    def claim_delivery(self, delivery_id: str, now: str, hold_until: str) -> bool:
        """Reserve a due delivery for one sender (others skip it until ``hold_until``)."""
        cur = self._c.execute(
            "UPDATE webhook_deliveries SET next_attempt_at = ? WHERE delivery_id = ? "
            "AND status IN ('PENDING', 'RETRYING') AND next_attempt_at <= ?",
            (hold_until, delivery_id, now),
        )
        return cur.rowcount == 1  # type: ignore[no-any-return]

    def record_delivery_attempt(
        self,
        delivery_id: str,
        status: str,
        now: str,
        next_attempt_at: str | None,
        http_status: int | None,
        error: str | None,
        *,
        started_at: str | None = None,
    ) -> None:
        """Record one attempt's outcome: the delivery's new status and a row in ``webhook_attempts``."""
        self._c.execute(
            "UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, last_attempt_at = ?, "
            "next_attempt_at = ?, last_status = ?, last_error = ?, "
            "delivered_at = CASE WHEN ? = 'DELIVERED' THEN ? ELSE delivered_at END WHERE delivery_id = ?",
            (status, now, next_attempt_at, http_status, error, status, now, delivery_id),
        )
        self._c.execute(
            "INSERT INTO webhook_attempts (delivery_id, attempt, started_at, finished_at, outcome, http_status, "
            "error) SELECT delivery_id, attempts, ?, ?, ?, ?, ? FROM webhook_deliveries WHERE delivery_id = ? "
            "ON CONFLICT (delivery_id, attempt) DO UPDATE SET started_at = excluded.started_at, "
            "finished_at = excluded.finished_at, outcome = excluded.outcome, http_status = excluded.http_status, "
            "error = excluded.error",
            (started_at or now, now, status, http_status, error, delivery_id),
        )

    def insert_audit(self, row: dict[str, Any]) -> None:
        self._c.execute(
            'INSERT INTO audit_log (at, "user", roles, event, decision, rule, workflow_id, step_name, action, '
            "target, detail) VALUES (:at, :user, :roles, :event, :decision, :rule, :workflow_id, :step_name, "
            ":action, :target, :detail)",
            {k: row.get(k) for k in _AUDIT_INSERT},
        )

    def add_event(
        self, workflow_id: str, at: str, event: str, by: str | None = None, detail: str | None = None
    ) -> None:
        """One entry of the workflow's history (``history()`` frame)."""
        self._c.execute(
            "INSERT INTO workflow_events (workflow_id, at, event, by, detail) VALUES (?, ?, ?, ?, ?)",
            (workflow_id, at, event, by, detail),
        )

    # -- forks, children, events, schedules ------------------------------------------------------

    def step_status(self, workflow_id: str, step_name: str) -> str | None:
        """A step's status, read in the transaction."""
        row = self._c.execute(
            "SELECT status FROM workflow_steps WHERE workflow_id = ? AND step_name = ?", (workflow_id, step_name)
        ).fetchone()
        return row[0] if row else None

    def set_step_inputs(self, workflow_id: str, step_name: str, inputs: str) -> None:
        self._c.execute(
            "UPDATE workflow_steps SET inputs = ? WHERE workflow_id = ? AND step_name = ?",
            (inputs, workflow_id, step_name),
        )

    def end_wait(
        self, workflow_id: str, step_name: str, status: str, now: str, outputs: str | None, error: str | None
    ) -> None:
        """End a waiting step (its inputs stay): ``COMPLETED`` with outputs, or ``FAILED`` with an error."""
        self._c.execute(
            "UPDATE workflow_steps SET status = ?, finished_at = ?, outputs = ?, error = ?, next_attempt_at = NULL "
            "WHERE workflow_id = ? AND step_name = ?",
            (status, now, outputs, error, workflow_id, step_name),
        )

    def carry_step(
        self,
        workflow_id: str,
        step_name: str,
        source: tuple[Any, ...],
    ) -> None:
        """Give a fork's step what the original's step recorded: ``(status, attempt, started_at,
        finished_at, inputs, outputs, fingerprint, state)``."""
        self._c.execute(
            "UPDATE workflow_steps SET status = ?, attempt = ?, started_at = ?, finished_at = ?, inputs = ?, "
            "outputs = ?, fingerprint = ?, state = ? WHERE workflow_id = ? AND step_name = ?",
            (*source, workflow_id, step_name),
        )

    def carry_compensation(self, workflow_id: str, row: tuple[Any, ...], origin: str, now: str) -> None:
        """Copy an intent into a fork: ``(step_name, action, inputs, outputs, state)``; ``origin`` is the
        workflow whose step did what it undoes."""
        self._c.execute(
            "INSERT INTO compensation_log (workflow_id, step_name, action, inputs, outputs, state, status, "
            "created_at, origin) VALUES (?, ?, ?, ?, ?, ?, 'PENDING', ?, ?)",
            (workflow_id, *row, now, origin),
        )

    def mark_carried(self, compensation_id: int, note: str, now: str) -> None:
        """The intent now belongs to a fork: this workflow's rollback no longer runs it."""
        self._c.execute(
            "UPDATE compensation_log SET status = 'CARRIED', note = ?, executed_at = ? "
            "WHERE compensation_id = ? AND status = 'PENDING'",
            (note, now, compensation_id),
        )

    def wait_event_step(self, workflow_id: str, step_name: str, now: str, deadline: str | None) -> None:
        """A ``wait_event`` step starts waiting; its deadline (if any) is kept in ``next_attempt_at``."""
        self._c.execute(
            "UPDATE workflow_steps SET status = 'WAITING', started_at = ?, attempt = 1, next_attempt_at = ? "
            "WHERE workflow_id = ? AND step_name = ?",
            (now, deadline, workflow_id, step_name),
        )

    def insert_sent_event(self, row: dict[str, Any]) -> int | None:
        """Record an event sent to a workflow; ``None`` if one of that name was sent before (first wins)."""
        found = self._c.execute(
            "INSERT INTO sent_events (workflow_id, event, payload, status, sent_at, sent_by, auth) "
            "VALUES (:workflow_id, :event, :payload, 'PENDING', :sent_at, :sent_by, :auth) "
            "ON CONFLICT (workflow_id, event) DO NOTHING RETURNING event_id",
            {k: row.get(k) for k in ("workflow_id", "event", "payload", "sent_at", "sent_by", "auth")},
        ).fetchone()
        return int(found[0]) if found else None

    def pending_event(self, workflow_id: str, event: str) -> tuple[int, str | None] | None:
        """``(event_id, payload)`` of the event of that name sent and not yet received."""
        row = self._c.execute(
            "SELECT event_id, payload FROM sent_events WHERE workflow_id = ? AND event = ? AND status = 'PENDING'",
            (workflow_id, event),
        ).fetchone()
        return (int(row[0]), row[1]) if row else None

    def receive_event(self, event_id: int, step_name: str, now: str) -> None:
        self._c.execute(
            "UPDATE sent_events SET status = 'RECEIVED', step_name = ?, received_at = ? WHERE event_id = ?",
            (step_name, now, event_id),
        )

    def insert_spec(self, spec_hash: str, spec: str) -> None:
        self._c.execute(
            "INSERT INTO workflow_specs (spec_hash, spec) VALUES (?, ?) ON CONFLICT DO NOTHING", (spec_hash, spec)
        )

    def insert_schedule(self, row: dict[str, Any]) -> None:
        self._c.execute(
            "INSERT INTO schedules (schedule_id, name, cron, timezone, spec_hash, inputs, workdir, created_at, "
            "created_by, next_fire_at) VALUES (:schedule_id, :name, :cron, :timezone, :spec_hash, :inputs, "
            ":workdir, :created_at, :created_by, :next_fire_at)",
            {k: row.get(k) for k in _SCHEDULE_INSERT},
        )

    def delete_schedule(self, schedule_id: str) -> bool:
        return (
            self._c.execute(  # type: ignore[no-any-return]
                "DELETE FROM schedules WHERE schedule_id = ?", (schedule_id,)
            ).rowcount
            == 1
        )

    def claim_firing(self, schedule_id: str, due: str, slot: str, next_fire_at: str, row: dict[str, Any]) -> bool:
        """Claim the firing of ``slot`` for this engine: True for one engine only, however many ask.

        The schedule moves on to ``next_fire_at`` only if it still waits for ``due`` (another engine
        that fired first moved it already); the firing's row, keyed by ``(schedule_id, slot)``, is
        the claim, so a slot is never fired twice even if a schedule came back to it.
        """
        moved = self._c.execute(
            "UPDATE schedules SET next_fire_at = ?, last_fired_at = ?, last_workflow_id = ? "
            "WHERE schedule_id = ? AND next_fire_at = ?",
            (next_fire_at, slot, row["workflow_id"], schedule_id, due),
        ).rowcount
        if moved != 1:
            return False
        claimed = self._c.execute(
            "INSERT INTO schedule_firings (schedule_id, slot, workflow_id, fired_at, fired_by, missed) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (schedule_id, slot) DO NOTHING RETURNING slot",
            (schedule_id, slot, row["workflow_id"], row["fired_at"], row["fired_by"], row["missed"]),
        ).fetchone()
        return claimed is not None

    def skip_schedule(self, schedule_id: str, due: str, next_fire_at: str) -> None:
        """Move a schedule past a slot without firing (its slot was claimed by another engine)."""
        self._c.execute(
            "UPDATE schedules SET next_fire_at = ? WHERE schedule_id = ? AND next_fire_at = ?",
            (next_fire_at, schedule_id, due),
        )

    # -- engines, leases and wake-ups ------------------------------------------------------------

    def register_engine(self, row: dict[str, Any], ttl: float) -> None:
        """Record an engine that opened the database; its lease runs ``ttl`` seconds from now."""
        self.synchronous = True
        expires = _PG_LATER if self.dialect == "postgresql" else ":expires"
        now = PG_NOW if self.dialect == "postgresql" else ":now"
        params = {k: row.get(k) for k in _ENGINE_INSERT}
        if self.dialect == "postgresql":
            self._c.execute(
                "INSERT INTO engines (owner_id, machine, host, pid, session, workdir, user_name, takes_work, "
                f"started_at, heartbeat_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, {now}, {now}, {expires})",
                (*(params[k] for k in _ENGINE_INSERT[:8]), ttl),
            )
        else:
            self._c.execute(
                "INSERT INTO engines (owner_id, machine, host, pid, session, workdir, user_name, takes_work, "
                "started_at, heartbeat_at, expires_at) VALUES (:owner_id, :machine, :host, :pid, :session, "
                f":workdir, :user_name, :takes_work, {now}, {now}, {expires})",
                params,
            )

    def renew(self, owner: str, ttl: float, now: str) -> bool:
        """Extend ``owner``'s lease to ``ttl`` seconds from now (the database's clock on PostgreSQL).

        Returns False if another engine had marked it gone meanwhile (it was frozen longer
        than its lease): it is alive again from now on, but its workflows may run elsewhere.
        """
        self.synchronous = True
        lock = " FOR UPDATE" if self.dialect == "postgresql" else ""  # against a sweep marking it gone now
        row = self._c.execute(f"SELECT closed_at FROM engines WHERE owner_id = ?{lock}", (owner,)).fetchone()
        if self.dialect == "postgresql":
            self._c.execute(
                f"UPDATE engines SET heartbeat_at = {PG_NOW}, expires_at = {_PG_LATER}, closed_at = NULL "
                "WHERE owner_id = ?",
                (ttl, owner),
            )
        else:
            from ..timeutil import iso, to_epoch

            self._c.execute(
                "UPDATE engines SET heartbeat_at = ?, expires_at = ?, closed_at = NULL WHERE owner_id = ?",
                (now, iso(to_epoch(now) + ttl), owner),
            )
        return row is not None and row[0] is None

    def set_takes_work(self, owner: str, takes_work: bool) -> None:
        self.synchronous = True
        self._c.execute("UPDATE engines SET takes_work = ? WHERE owner_id = ?", (1 if takes_work else 0, owner))

    def close_engine(self, owner: str, now: str) -> None:
        """``owner`` closed (or was found dead): its workflows' home is gone from now on."""
        self.synchronous = True
        self._c.execute("UPDATE engines SET closed_at = ? WHERE owner_id = ? AND closed_at IS NULL", (now, owner))

    def prune_engines(self, before: str) -> None:
        """Forget engines gone before ``before`` that no workflow names as its home or owner."""
        self._c.execute(
            "DELETE FROM engines WHERE COALESCE(closed_at, expires_at) < ? AND NOT EXISTS "
            "(SELECT 1 FROM workflows w WHERE w.lease_owner = engines.owner_id) AND NOT EXISTS "
            "(SELECT 1 FROM workflows w WHERE w.home = engines.owner_id "
            "AND w.status IN ('RUNNING', 'ROLLING_BACK', 'PAUSED'))",
            (before,),
        )

    def wake(self, owner: str) -> None:
        """Wake the engine ``owner``: something it must act on changed (a decision, a request)."""
        if self.dialect == "postgresql":
            self._c.execute("SELECT pg_notify('airt', ?)", (owner,))
        else:
            self._c.execute("UPDATE engines SET wake = wake + 1 WHERE owner_id = ?", (owner,))

    def announce_work(self) -> None:
        """Tell every engine that a workflow nobody runs may be waiting to be taken up."""
        if self.dialect == "postgresql":
            self._c.execute("SELECT pg_notify('airt', '*')")
        else:
            self._c.execute("UPDATE airt_signals SET seq = seq + 1 WHERE name = 'work'")


def _refused(exc: Exception, by: str | None) -> Exception:
    """A decision function's refusal, as the error the engine raises for the same rule."""
    diag = getattr(exc, "diag", None)
    text = getattr(diag, "message_primary", None) or str(exc)
    state = getattr(exc, "sqlstate", None)
    if state == "42501":  # insufficient_privilege: not an approver, or the requester
        return PolicyError(f"{text}; ask one of the approvers to decide", user=by)
    if state == "23505":  # unique_violation: this person approved already
        return ApprovalError(text)
    return exc


_WF_INSERT = (
    "workflow_id", "name", "status", "spec_hash", "inputs", "created_at", "updated_at", "started_by",
    "total_steps", "done_steps", "lease_owner", "workdir", "session", "forked_from", "parent_id", "parent_step",
)  # fmt: skip
_APPROVAL_INSERT = (
    "approval_id", "workflow_id", "step_name", "message", "context", "approvers", "requested_at", "deadline",
    "on_timeout", "fields", "preview", "preview_hash", "gate_step", "reasked_from", "remind_every",
    "next_reminder_at", "escalate_at", "escalate_to",
)  # fmt: skip
_DECISION_INSERT = (
    "approval_id", "workflow_id", "step_name", "decision", "decided_by", "decided_at", "reason", "field_values",
    "auth", "preview_hash",
)  # fmt: skip
_SCHEDULE_INSERT = (
    "schedule_id", "name", "cron", "timezone", "spec_hash", "inputs", "workdir", "created_at", "created_by",
    "next_fire_at",
)  # fmt: skip
_DELIVERY_INSERT = ("delivery_id", "approval_id", "workflow_id", "event", "payload", "created_at")
_AUDIT_INSERT = (
    "at", "user", "roles", "event", "decision", "rule", "workflow_id", "step_name", "action", "target", "detail",
)  # fmt: skip
_ENGINE_INSERT = (
    "owner_id", "machine", "host", "pid", "session", "workdir", "user_name", "takes_work", "now", "expires",
)  # fmt: skip
