"""The column lists and SQL fragments that the reads and the writes share, for both dialects."""

from __future__ import annotations

__all__ = [
    "ACTIVE_SQL",
    "APPROVAL_COLS",
    "COMP_COLS",
    "DECISION_COLS",
    "DELIVERY_COLS",
    "ENGINE_COLS",
    "EVENT_COLS",
    "PG_NOW",
    "SCHEDULE_COLS",
    "STEP_COLS",
    "WF_COLS",
    "indexed_by",
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


def indexed_by(dialect: str, index: str) -> str:
    """``INDEXED BY index`` on SQLite, nothing on PostgreSQL (whose planner has statistics).

    Without statistics SQLite prefers the status index for ``status IN ('RUNNING', ...)``, which
    reads every active workflow: with thousands active, each sweep or claim did that much work.
    """
    return f" INDEXED BY {index}" if dialect == "sqlite" else ""


# The server's clock as airt_nb's text format (PostgreSQL only).
PG_NOW = "to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"
