"""One run as plain data read from the store (:class:`RunState`), and as text.

The live panel, its static snapshot and the text a terminal shows are all
drawn from one :class:`RunState`, read in a handful of queries
(:func:`read_run`).  Tables that a database may not have yet are optional:
the run's history (``workflow_events``) reads as empty until it exists.

Imports no IPython, ipywidgets or pandas.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import StoreError
from .text import fmt_duration, seconds_between, short

if TYPE_CHECKING:
    from ..store.protocol import Store
    from ..store.records import ApprovalRecord, CompensationRecord, DecisionRecord, StepRecord, WorkflowRecord

__all__ = ["FULL_TABLE_STEPS", "RunState", "optional_rows", "read_run", "spec_facts", "summary_text"]

#: Up to this many steps a panel lists them all; a longer workflow shows a window around what runs now.
FULL_TABLE_STEPS = 60
_UNDONE = ("COMPENSATED", "COMPENSATION_FAILED")


def optional_rows(store: Store, table: str, workflow_id: str | None = None) -> list[dict[str, Any]]:
    """Rows of ``table`` as dicts; ``[]`` when the database has no such table yet."""
    try:
        columns, rows = store.all_rows(table, workflow_id=workflow_id)
    except StoreError as exc:
        if f"no table {table!r}" in str(exc):
            return []
        raise
    return [dict(zip(columns, row, strict=True)) for row in rows]


@dataclass
class RunState:
    """Everything a view of one run needs, read at one moment (``now``, epoch seconds)."""

    record: WorkflowRecord
    steps: list[StepRecord]
    approvals: list[ApprovalRecord]
    compensations: list[CompensationRecord]
    attempts: list[dict[str, Any]]
    events: list[dict[str, Any]]
    limits: dict[str, int]
    owner_id: str | None = None
    #: what each step waits for or runs, from the spec: ``{step: {"event": NAME}}`` / ``{"uses": PATH}``
    kinds: dict[str, dict[str, str]] = field(default_factory=dict)
    #: the child workflows its ``workflow`` steps started
    children: list[WorkflowRecord] = field(default_factory=list)
    now: float = field(default_factory=lambda: datetime.now(UTC).timestamp())
    #: ``False`` for a saved view: times are shown as clock times, without "3 min ago" (which would
    #: be wrong by the time someone reads it) and running durations as "since ..."
    live: bool = True
    #: every individual decision (an approval that needs N people has N), oldest first
    decisions: list[DecisionRecord] = field(default_factory=list)

    @property
    def workflow_id(self) -> str:
        return self.record.workflow_id

    @property
    def long(self) -> bool:
        return self.record.total_steps > FULL_TABLE_STEPS

    @property
    def hidden(self) -> int:
        """Steps not in :attr:`steps` (a long workflow's window)."""
        return max(0, self.record.total_steps - len(self.steps)) if self.long else 0

    @property
    def pending(self) -> ApprovalRecord | None:
        return next((a for a in self.approvals if a.status == "PENDING"), None)

    def attempts_of(self, step: str) -> list[dict[str, Any]]:
        """Earlier attempts of ``step`` (failed or interrupted), oldest first."""
        mine = [a for a in self.attempts if a.get("step_name") == step]
        return sorted(mine, key=lambda a: (a.get("attempt") or 0, a.get("started_at") or ""))

    def compensation_of(self, step: str) -> CompensationRecord | None:
        found = [c for c in self.compensations if c.step_name == step]
        return found[-1] if found else None

    def child_of(self, step: str) -> WorkflowRecord | None:
        found = [c for c in self.children if c.parent_step == step]
        return found[-1] if found else None

    def approval_of(self, step: str) -> ApprovalRecord | None:
        found = [a for a in self.approvals if a.step_name == step]
        return found[-1] if found else None

    def decisions_of(self, approval_id: str) -> list[DecisionRecord]:
        return [d for d in self.decisions if d.approval_id == approval_id]

    def skip_reason(self, step: str) -> str | None:
        """Why a SKIPPED step was not taken (its ``when``, or a step it uses that was skipped)."""
        prefix = f"{step}: "
        for event in reversed(self.events):
            if event.get("event") == "skipped" and str(event.get("detail") or "").startswith(prefix):
                return str(event["detail"])[len(prefix) :]
        return None

    def shown_status(self, step: StepRecord) -> str:
        """The status a person reads: an approval step that went on says APPROVED, not COMPLETED."""
        if step.type == "human_approval" and step.status in ("COMPLETED", *_UNDONE):
            approval = self.approval_of(step.step_name)
            if approval is not None and approval.status == "APPROVED":
                return "APPROVED"
        return step.status

    def counts(self) -> dict[str, int]:
        """Steps by status.  A long workflow's window holds every step that is neither completed nor
        pending; the completed ones are the record's count (less those since undone)."""
        counts: dict[str, int] = {}
        for s in self.steps:
            counts[s.status] = counts.get(s.status, 0) + 1
        if not self.long:
            return counts
        total, done = self.record.total_steps, self.record.done_steps
        others = sum(n for status, n in counts.items() if status not in ("COMPLETED", "PENDING"))
        completed = max(0, done - sum(counts.get(s, 0) for s in _UNDONE))
        counts["COMPLETED"] = completed
        counts["PENDING"] = max(0, total - completed - others)
        return {k: v for k, v in counts.items() if v}

    def progress(self) -> tuple[int, int, str, str]:
        """``(value, maximum, role, text)`` of the progress bar.

        A run being rolled back (or rolled back) shows what has been undone, not
        what had been done before: ``1 / 2 undone``.
        """
        record = self.record
        if record.status in ("ROLLING_BACK", "ROLLED_BACK"):
            undoable = len(self.compensations)
            undone = sum(c.status == "DONE" for c in self.compensations)
            return undone, max(undoable, 1), "undo", f"{undone} / {undoable} undone"
        total = max(record.total_steps, 1)
        role = {"COMPLETED": "ok", "FAILED": "error", "PAUSED": "warn", "CANCELLED": "idle"}.get(record.status, "run")
        return min(record.done_steps, total), total, role, f"{record.done_steps} / {record.total_steps} steps"


def _limits(record: WorkflowRecord) -> dict[str, int]:
    return spec_facts(record)[0]


def spec_facts(record: WorkflowRecord) -> tuple[dict[str, int], dict[str, dict[str, str]]]:
    """``(attempts allowed per step, what event or child spec each step waits for)`` from the spec."""
    try:
        spec = json.loads(record.spec)
    except (TypeError, ValueError):
        return {}, {}
    limits, kinds = {}, {}
    for s in spec.get("steps", []):
        limits[s["name"]] = (s.get("retry") or {}).get("max_attempts", 1)
        found = {k: s[k] for k in ("event", "uses") if s.get(k)}
        if found:
            kinds[s["name"]] = found
    return limits, kinds


def read_run(
    store: Store,
    workflow_id: str,
    *,
    owner_id: str | None = None,
    limits: dict[str, int] | None = None,
    kinds: dict[str, dict[str, str]] | None = None,
) -> RunState | None:
    """Read one run for display; ``None`` if the database has no such workflow.

    ``limits`` and ``kinds`` are what :func:`spec_facts` read from its spec last time (a panel keeps them)."""
    record = store.workflow(workflow_id)
    if record is None:
        return None
    long = record.total_steps > FULL_TABLE_STEPS
    # A long workflow shows a window of its steps: reading and rendering thousands of rows
    # several times a second would slow the run itself and flood the browser.
    steps = store.steps_window(workflow_id) if long else store.steps(workflow_id)
    if limits is None or kinds is None:
        limits, kinds = spec_facts(record)
    return RunState(
        record=record,
        steps=steps,
        approvals=store.approvals(workflow_id=workflow_id),
        compensations=store.compensations(workflow_id),
        attempts=optional_rows(store, "step_attempts", workflow_id),
        events=optional_rows(store, "workflow_events", workflow_id),
        limits=limits,
        owner_id=owner_id,
        decisions=store.decisions(workflow_id=workflow_id),
        kinds=kinds,
        children=store.children(workflow_id) if any("uses" in k for k in kinds.values()) else [],
    )


def summary_text(state: RunState) -> str:
    """A run in a few lines of text: what a terminal, or a notebook without widgets, shows."""
    record = state.record
    lines = [
        f"{record.name} {record.workflow_id}  {record.status}  {record.done_steps}/{record.total_steps} steps done"
    ]
    width = max((len(s.step_name) for s in state.steps), default=4)
    pending = state.pending
    for s in state.steps:
        extra = ""
        if s.error:
            extra = "  " + short(s.error.splitlines()[0], 90)
        elif s.status == "WAITING" and pending is not None and pending.step_name == s.step_name:
            count = f" ({pending.approved_count} of {pending.min_approvals})" if pending.min_approvals > 1 else ""
            extra = f"  waiting for approval{count}: {short(pending.message or '', 80)}"
        elif s.status == "SKIPPED" and state.skip_reason(s.step_name):
            extra = f"  {short(state.skip_reason(s.step_name), 90)}"
        elif s.status == "WAITING" and "event" in state.kinds.get(s.step_name, {}):
            extra = f"  waiting for event {state.kinds[s.step_name]['event']}"
        elif s.status == "WAITING" and (child := state.child_of(s.step_name)) is not None:
            extra = f"  child workflow {child.workflow_id} {child.status}"
        took = fmt_duration(seconds_between(s.started_at, s.finished_at)) if s.finished_at else ""
        attempt = f"attempt {s.attempt}" if s.attempt > 1 else ""
        lines.append(f"  {s.step_name:<{width}}  {state.shown_status(s):<12} {attempt:<10} {took:>9}{extra}".rstrip())
    if state.hidden:
        lines.append(f"  ... {state.hidden:,} more steps: airt_nb.steps(workflow_id={record.workflow_id!r})")
    if record.waiting_for:
        lines.append(f"  waiting for {record.waiting_for} to be defined: run the cell that defines it")
    if record.error:
        lines.append(f"  {record.error.splitlines()[0]}")
    return "\n".join(lines)
