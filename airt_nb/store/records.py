"""Rows read back from the store, as plain frozen dataclasses.

JSON columns stay text here; callers decode what they need (most reads only
need a status).  A PostgreSQL store returns the same records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any

__all__ = [
    "ACTIVE",
    "SETTLED",
    "TERMINAL",
    "ApprovalRecord",
    "CompensationRecord",
    "DecisionRecord",
    "DeliveryRecord",
    "EngineRecord",
    "EventRecord",
    "ScheduleRecord",
    "SentEventRecord",
    "StepRecord",
    "WorkflowRecord",
    "row_of",
]

#: every status a workflow can have, in the order a run goes through them
WORKFLOW_STATUSES = ("PENDING", "RUNNING", "PAUSED", "COMPLETED", "FAILED", "ROLLING_BACK", "ROLLED_BACK", "CANCELLED")
TERMINAL = frozenset({"COMPLETED", "FAILED", "ROLLED_BACK", "CANCELLED"})
SETTLED = TERMINAL | {"PAUSED"}
ACTIVE = ("RUNNING", "ROLLING_BACK")  # statuses an engine executes (and holds a lease for)


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def row_of(record: Any) -> dict[str, Any]:
    """A record's columns as a dict: its fields are all text, numbers or None, so a shallow copy is
    the whole row (``dataclasses.asdict`` deep-copies each value: a sixth of a decision's time).

    >>> row_of(record)["status"]  # doctest: +SKIP
    'PENDING'
    """
    return {f.name: getattr(record, f.name) for f in fields(record)}


@dataclass(frozen=True, slots=True)
class WorkflowRecord:
    workflow_id: str
    name: str
    status: str
    spec: str
    spec_hash: str
    inputs: str
    created_at: str
    updated_at: str
    finished_at: str | None
    error: str | None
    started_by: str | None
    total_steps: int
    done_steps: int
    lease_owner: str | None
    lease_expires: str | None
    requested: str | None
    waiting_for: str | None
    warnings: str | None
    workdir: str | None = None
    session: str | None = None
    home: str | None = None
    forked_from: str | None = None
    parent_id: str | None = None
    parent_step: str | None = None

    @property
    def warning_list(self) -> list[str]:
        return loads(self.warnings) or []


@dataclass(frozen=True, slots=True)
class StepRecord:
    workflow_id: str
    step_name: str
    position: int
    type: str
    action: str | None
    status: str
    attempt: int
    started_at: str | None
    finished_at: str | None
    next_attempt_at: str | None
    inputs: str | None
    outputs: str | None
    error: str | None
    fingerprint: str | None
    state: str | None
    step_id: int = 0
    traceback: str | None = None


@dataclass(frozen=True, slots=True)
class CompensationRecord:
    compensation_id: int
    workflow_id: str
    step_name: str
    action: str
    inputs: str
    outputs: str
    state: str | None
    status: str
    attempts: int
    created_at: str
    executed_at: str | None
    error: str | None
    note: str | None = None
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    approval_id: str
    workflow_id: str
    step_name: str
    status: str
    message: str | None
    context: str | None
    approvers: str | None
    requested_at: str
    deadline: str | None
    on_timeout: str
    decided_at: str | None
    decided_by: str | None
    reason: str | None
    auth: str | None = None
    fields: str | None = None
    min_approvals: int = 1
    approved_count: int = 0
    exclude_requester: int = 0
    authenticated: int = 0
    field_values: str | None = None
    preview: str | None = None
    preview_hash: str | None = None
    gate_step: str | None = None
    reasked_from: str | None = None
    remind_every: float | None = None
    next_reminder_at: str | None = None
    reminders: int = 0
    escalate_at: str | None = None
    escalate_to: str | None = None
    escalated_at: str | None = None

    @property
    def approver_list(self) -> list[str]:
        return loads(self.approvers) or []

    @property
    def field_specs(self) -> dict[str, Any]:
        """The typed fields the approver fills in (name -> definition)."""
        return loads(self.fields) or {}

    @property
    def values(self) -> dict[str, Any] | None:
        """The values approved so far (the first approval's, which later ones must confirm)."""
        return loads(self.field_values)  # type: ignore[no-any-return]

    @property
    def preview_data(self) -> dict[str, Any]:
        """What the steps this approval gates will do (see :mod:`airt_nb.gating`)."""
        return loads(self.preview) or {}

    @property
    def rules_step(self) -> str:
        """The approval step whose rules apply (itself, or the one a gated step was asked again for)."""
        return self.gate_step or self.step_name


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    """One person's decision on an approval (an approval that needs N people has N of them)."""

    decision_id: int
    approval_id: str
    workflow_id: str
    step_name: str
    decision: str
    decided_by: str
    decided_at: str
    reason: str | None
    field_values: str | None
    auth: str | None
    preview_hash: str | None

    @property
    def values(self) -> dict[str, Any] | None:
        return loads(self.field_values)  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    delivery_id: str
    approval_id: str | None
    workflow_id: str
    event: str
    payload: str
    status: str
    attempts: int
    created_at: str
    next_attempt_at: str | None
    last_attempt_at: str | None
    last_status: int | None
    last_error: str | None
    delivered_at: str | None
    url: str | None = None


@dataclass(frozen=True, slots=True)
class EngineRecord:
    """An engine that opened the database: where it runs, and whether it is alive.

    ``expires_at`` is its lease: renewed every third of the lease time while the
    engine lives; every workflow the engine holds is leased until then.
    ``closed_at`` is set when it closed, or when another engine found it dead.
    """

    owner_id: str
    machine: str | None
    host: str | None
    pid: int | None
    session: str | None
    workdir: str | None
    user_name: str | None
    takes_work: int
    started_at: str
    heartbeat_at: str
    expires_at: str
    closed_at: str | None
    wake: int = 0

    def gone_at(self, now: str) -> str | None:
        """When it stopped (closed, found dead, or its lease ran out), or None while it lives."""
        if self.closed_at:
            return self.closed_at
        return self.expires_at if self.expires_at <= now else None


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One entry of a workflow's history (who cancelled, which engine resumed it, ...)."""

    event_id: int
    workflow_id: str
    at: str
    event: str
    by: str | None
    detail: str | None


@dataclass(frozen=True, slots=True)
class SentEventRecord:
    """An event sent to a workflow (:meth:`airt_nb.Engine.send`): ``PENDING`` until the step that
    waits for it receives it (``RECEIVED``, with ``step_name`` and ``received_at``)."""

    event_id: int
    workflow_id: str
    event: str
    payload: str | None
    status: str
    sent_at: str
    sent_by: str | None
    auth: str | None
    step_name: str | None
    received_at: str | None

    @property
    def data(self) -> Any:
        """The payload, decoded."""
        return loads(self.payload)


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    """A workflow started on a cron schedule (:meth:`airt_nb.Engine.schedule`)."""

    schedule_id: str
    name: str
    cron: str
    timezone: str
    spec_hash: str
    inputs: str
    workdir: str | None
    created_at: str
    created_by: str | None
    next_fire_at: str
    last_fired_at: str | None
    last_workflow_id: str | None
