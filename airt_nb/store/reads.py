"""Every read statement, for both dialects: the :class:`Reads` half of a store.

A backend mixes this in and provides ``query(sql, params)``; the statements
use ``?`` placeholders and the SQL both dialects share.  Filters are added to
the SQL only when given (``(? IS NULL OR col = ?)`` would keep the database
from using the index on ``col``, and PostgreSQL cannot type such a parameter).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import StoreError
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
    indexed_by,
)
from .records import (
    ApprovalRecord,
    CompensationRecord,
    DecisionRecord,
    DeliveryRecord,
    EngineRecord,
    EventRecord,
    ScheduleRecord,
    SentEventRecord,
    StepRecord,
    WorkflowRecord,
)

__all__ = ["TABLES", "Reads"]

_NO_LIMIT = 2**62
# Two deliveries go to the same receiver: the same url, or one without a url (sent to whichever
# url the engine that sends it has), which might be either.
_SAME_RECEIVER = "(e.url = d.url OR e.url IS NULL OR d.url IS NULL)"


class Reads:
    """The reads of a store (mixed into each backend, which provides ``query``)."""

    dialect: str
    path: str

    def query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    # -- one workflow --------------------------------------------------------------------------

    def workflow(self, workflow_id: str) -> WorkflowRecord | None:
        rows = self.query(f"SELECT {WF_COLS} FROM workflows WHERE workflow_id = ?", (workflow_id,))
        return WorkflowRecord(*rows[0]) if rows else None

    def workflows_by_id(self, workflow_ids: Sequence[str]) -> dict[str, WorkflowRecord]:
        """Several workflows in one read (recovery adopts them in batches)."""
        if not workflow_ids:
            return {}
        marks = ",".join("?" * len(workflow_ids))
        rows = self.query(f"SELECT {WF_COLS} FROM workflows WHERE workflow_id IN ({marks})", tuple(workflow_ids))
        return {r[0]: WorkflowRecord(*r) for r in rows}

    def steps_by_workflow(self, workflow_ids: Sequence[str]) -> dict[str, list[StepRecord]]:
        """The steps of several workflows in one read, each list in position order."""
        if not workflow_ids:
            return {}
        marks = ",".join("?" * len(workflow_ids))
        found: dict[str, list[StepRecord]] = {w: [] for w in workflow_ids}
        for r in self.query(
            f"SELECT {STEP_COLS} FROM workflow_steps WHERE workflow_id IN ({marks}) ORDER BY workflow_id, position",
            tuple(workflow_ids),
        ):
            found[r[0]].append(StepRecord(*r))
        return found

    def workflow_status(self, workflow_id: str) -> tuple[str, str | None] | None:
        rows = self.query("SELECT status, waiting_for FROM workflows WHERE workflow_id = ?", (workflow_id,))
        return (rows[0][0], rows[0][1]) if rows else None

    def ids_with_prefix(self, prefix: str, limit: int = 2) -> list[str]:
        rows = self.query(
            "SELECT workflow_id FROM workflows WHERE workflow_id >= ? AND workflow_id < ? ORDER BY workflow_id LIMIT ?",
            (prefix, prefix + "\uffff", limit),
        )
        return [r[0] for r in rows]

    def steps(self, workflow_id: str) -> list[StepRecord]:
        rows = self.query(
            f"SELECT {STEP_COLS} FROM workflow_steps WHERE workflow_id = ? ORDER BY position", (workflow_id,)
        )
        return [StepRecord(*r) for r in rows]

    def steps_window(self, workflow_id: str, *, recent: int = 15, upcoming: int = 10) -> list[StepRecord]:
        """What a live view of a long workflow shows: every step that is neither completed nor
        pending, the ``recent`` last completed ones and the next ``upcoming`` pending ones."""
        rows = self.query(
            f"SELECT {STEP_COLS} FROM workflow_steps WHERE workflow_id = ? "
            "AND status NOT IN ('COMPLETED', 'PENDING') "
            f"UNION ALL SELECT * FROM (SELECT {STEP_COLS} FROM workflow_steps WHERE workflow_id = ? "
            "AND status = 'COMPLETED' ORDER BY position DESC LIMIT ?) AS done "
            f"UNION ALL SELECT * FROM (SELECT {STEP_COLS} FROM workflow_steps WHERE workflow_id = ? "
            "AND status = 'PENDING' ORDER BY position LIMIT ?) AS next",
            (workflow_id, workflow_id, recent, workflow_id, upcoming),
        )
        return sorted((StepRecord(*r) for r in rows), key=lambda r: r.position)

    def attempts(self, workflow_id: str) -> list[tuple[Any, ...]]:
        """``(workflow_id, step_name, attempt, status, started_at, finished_at, error)`` of every ended attempt
        (``FAILED``, ``INTERRUPTED`` by a lost engine...), in order."""
        return self.query(
            "SELECT workflow_id, step_name, attempt, status, started_at, finished_at, error "
            "FROM step_attempts WHERE workflow_id = ? ORDER BY step_name, attempt, attempt_id",
            (workflow_id,),
        )

    def compensations(self, workflow_id: str, *, status: str | None = None) -> list[CompensationRecord]:
        where, params = _where(("workflow_id", workflow_id), ("status", status))
        rows = self.query(f"SELECT {COMP_COLS} FROM compensation_log{where} ORDER BY compensation_id", params)
        return [CompensationRecord(*r) for r in rows]

    def approvals(
        self, *, workflow_id: str | None = None, status: str | None = None, approval_id: str | None = None
    ) -> list[ApprovalRecord]:
        where, params = _where(("workflow_id", workflow_id), ("status", status), ("approval_id", approval_id))
        # Approvals requested in one transaction come in the order of their steps.
        order = (
            "requested_at, (SELECT s.position FROM workflow_steps s WHERE s.workflow_id = approvals.workflow_id "
            "AND s.step_name = approvals.step_name), approval_id"
        )
        rows = self.query(f"SELECT {APPROVAL_COLS} FROM approvals{where} ORDER BY {order}", params)
        return [ApprovalRecord(*r) for r in rows]

    def decisions(self, *, approval_id: str | None = None, workflow_id: str | None = None) -> list[DecisionRecord]:
        """Every individual decision (an approval that needs N people has N), oldest first."""
        where, params = _where(("approval_id", approval_id), ("workflow_id", workflow_id))
        rows = self.query(f"SELECT {DECISION_COLS} FROM approval_decisions{where} ORDER BY decision_id", params)
        return [DecisionRecord(*r) for r in rows]

    def history(self, workflow_id: str) -> list[EventRecord]:
        """The workflow's history, oldest first."""
        rows = self.query(
            "SELECT event_id, workflow_id, at, event, by, detail FROM workflow_events WHERE workflow_id = ? "
            "ORDER BY event_id",
            (workflow_id,),
        )
        return [EventRecord(*r) for r in rows]

    # -- forks, children, events, schedules ------------------------------------------------------

    def children(self, parent_id: str) -> list[WorkflowRecord]:
        """The workflows ``parent_id``'s steps started, in the order they were started."""
        rows = self.query(
            f"SELECT {WF_COLS} FROM workflows WHERE parent_id = ? ORDER BY created_at, workflow_id", (parent_id,)
        )
        return [WorkflowRecord(*r) for r in rows]

    def child_of(self, parent_id: str, step_name: str) -> WorkflowRecord | None:
        rows = self.query(
            f"SELECT {WF_COLS} FROM workflows WHERE parent_id = ? AND parent_step = ?", (parent_id, step_name)
        )
        return WorkflowRecord(*rows[0]) if rows else None

    def forks_of(self, workflow_id: str) -> list[str]:
        rows = self.query("SELECT workflow_id FROM workflows WHERE forked_from = ? ORDER BY created_at", (workflow_id,))
        return [r[0] for r in rows]

    def carried_pending(self, origin: str) -> int:
        """How many intents carried from ``origin`` into forks are still to run (its undo copies are needed)."""
        rows = self.query(
            "SELECT COUNT(*) FROM compensation_log WHERE origin = ? AND status IN ('PENDING', 'FAILED')", (origin,)
        )
        return int(rows[0][0])

    def sent_events(
        self, *, workflow_id: str | None = None, event: str | None = None, status: str | None = None
    ) -> list[SentEventRecord]:
        where, params = _where(("workflow_id", workflow_id), ("event", event), ("status", status))
        rows = self.query(f"SELECT {EVENT_COLS} FROM sent_events{where} ORDER BY event_id", params)
        return [SentEventRecord(*r) for r in rows]

    def event_deadlines(self, limit: int = 100) -> list[tuple[str, str, str]]:
        """``(workflow_id, step_name, deadline)`` of ``wait_event`` steps waiting with a deadline, soonest first."""
        return self.query(
            "SELECT workflow_id, step_name, next_attempt_at FROM workflow_steps WHERE status = 'WAITING' "
            "AND type = 'wait_event' AND next_attempt_at IS NOT NULL ORDER BY next_attempt_at LIMIT ?",
            (limit,),
        )

    def spec_text(self, spec_hash: str) -> str | None:
        rows = self.query("SELECT spec FROM workflow_specs WHERE spec_hash = ?", (spec_hash,))
        return rows[0][0] if rows else None

    def schedules(self, *, schedule_id: str | None = None) -> list[ScheduleRecord]:
        where, params = _where(("schedule_id", schedule_id))
        rows = self.query(f"SELECT {SCHEDULE_COLS} FROM schedules{where} ORDER BY created_at, schedule_id", params)
        return [ScheduleRecord(*r) for r in rows]

    def due_schedules(self, now: str, limit: int = 100) -> list[ScheduleRecord]:
        rows = self.query(
            f"SELECT {SCHEDULE_COLS} FROM schedules WHERE next_fire_at <= ? ORDER BY next_fire_at LIMIT ?",
            (now, limit),
        )
        return [ScheduleRecord(*r) for r in rows]

    def firings(self, schedule_id: str) -> list[tuple[str, str, str, str | None, int]]:
        """``(slot, workflow_id, fired_at, fired_by, missed)`` of a schedule's firings, oldest first."""
        return self.query(
            "SELECT slot, workflow_id, fired_at, fired_by, missed FROM schedule_firings WHERE schedule_id = ? "
            "ORDER BY slot",
            (schedule_id,),
        )

    # -- engines and leases ----------------------------------------------------------------------

    def engines(self, *, alive_at: str | None = None) -> list[EngineRecord]:
        """Engines that opened the database (only those not closed and leased past ``alive_at`` if given)."""
        if alive_at is None:
            rows = self.query(f"SELECT {ENGINE_COLS} FROM engines ORDER BY started_at")
        else:
            rows = self.query(
                f"SELECT {ENGINE_COLS} FROM engines WHERE closed_at IS NULL AND expires_at > ? ORDER BY started_at",
                (alive_at,),
            )
        return [EngineRecord(*r) for r in rows]

    def engine(self, owner: str) -> EngineRecord | None:
        rows = self.query(f"SELECT {ENGINE_COLS} FROM engines WHERE owner_id = ?", (owner,))
        return EngineRecord(*rows[0]) if rows else None

    def lease_holders(self) -> list[str]:
        """Engines holding the lease of an active workflow."""
        # One step per distinct owner along the owner index (a handful of engines), not one per leased
        # workflow: a DISTINCT over thousands of running workflows took milliseconds every sweep.
        rows = self.query(
            "WITH RECURSIVE owners (o) AS ("
            "SELECT MIN(lease_owner) FROM workflows WHERE lease_owner IS NOT NULL "
            "UNION ALL SELECT (SELECT MIN(w.lease_owner) FROM workflows w WHERE w.lease_owner > owners.o) "
            "FROM owners WHERE owners.o IS NOT NULL) "
            "SELECT o FROM owners WHERE o IS NOT NULL AND EXISTS "
            f"(SELECT 1 FROM workflows w WHERE w.lease_owner = owners.o AND w.status IN {ACTIVE_SQL})"
        )
        return [r[0] for r in rows]

    def candidates(self, dead: Sequence[str] = (), limit: int = 1000) -> list[tuple[Any, ...]]:
        """Active workflows whose lease is free or held by a ``dead`` engine, oldest first:
        ``(workflow_id, status, waiting_for, lease_owner, home, session, workdir)``.

        Both halves are index ranges (free leases: a partial index; dead owners: the owner index).
        """
        cols = "workflow_id, status, waiting_for, lease_owner, home, session, workdir"
        rows = self.query(
            f"SELECT {cols} FROM workflows{indexed_by(self.dialect, 'workflows_free')} "
            f"WHERE lease_owner IS NULL AND status IN {ACTIVE_SQL} ORDER BY created_at LIMIT ?",
            (limit,),
        )
        if dead:
            marks = ",".join("?" * len(dead))
            rows += self.query(
                f"SELECT {cols} FROM workflows WHERE lease_owner IN ({marks}) AND status IN {ACTIVE_SQL} "
                "ORDER BY created_at LIMIT ?",
                (*dead, limit),
            )
        return rows

    def count_unowned(self, dead: Sequence[str] = ()) -> int:
        """How many active workflows have a free lease or one held by a ``dead`` engine."""
        marks = ",".join("?" * len(dead)) or "NULL"
        rows = self.query(
            f"SELECT COUNT(*) FROM workflows WHERE status IN {ACTIVE_SQL} "
            f"AND (lease_owner IS NULL OR lease_owner IN ({marks}))",
            tuple(dead),
        )
        return int(rows[0][0])

    def owned_by(self, owner: str) -> list[tuple[str, str]]:
        """``(workflow_id, status)`` of the active workflows ``owner`` holds."""
        return self.query(
            f"SELECT workflow_id, status FROM workflows WHERE lease_owner = ? AND status IN {ACTIVE_SQL}", (owner,)
        )

    def requests_for(self, owner: str) -> list[tuple[str, str]]:
        return self.query(
            "SELECT workflow_id, requested FROM workflows WHERE lease_owner = ? AND requested IS NOT NULL",
            (owner,),
        )

    def paused_homed(self, home: str | None = None) -> list[tuple[str, str | None, str | None]]:
        """``(workflow_id, home, session)`` of PAUSED workflows (of one home if given)."""
        where = " AND home = ?" if home else ""
        return self.query(
            f"SELECT workflow_id, home, session FROM workflows WHERE status = 'PAUSED'{where} ORDER BY created_at",
            (home,) if home else (),
        )

    def signals(self, owner: str) -> tuple[int, int]:
        """``(work announcements, wake-ups of owner)``: counters another engine bumps (SQLite)."""
        rows = self.query(
            "SELECT (SELECT seq FROM airt_signals WHERE name = 'work'), (SELECT wake FROM engines WHERE owner_id = ?)",
            (owner,),
        )
        return int(rows[0][0] or 0), int(rows[0][1] or 0)

    # -- approvals and deliveries ------------------------------------------------------------------

    def pending_approvals_of(self, user: str) -> int:
        """How many approvals wait in workflows ``user`` started (for ``max_pending_approvals``)."""
        rows = self.query(
            "SELECT COUNT(*) FROM approvals a JOIN workflows w ON w.workflow_id = a.workflow_id "
            "WHERE a.status = 'PENDING' AND w.started_by = ?",
            (user,),
        )
        return int(rows[0][0])

    def pending_deadlines(self, limit: int = 100) -> list[tuple[str, str, str]]:
        """``(approval_id, workflow_id, deadline)`` of pending approvals, soonest first."""
        return self.query(
            "SELECT approval_id, workflow_id, deadline FROM approvals WHERE status = 'PENDING' "
            "AND deadline IS NOT NULL ORDER BY deadline LIMIT ?",
            (limit,),
        )

    def approval_timers(self, limit: int = 100) -> list[tuple[str, str, str]]:
        """``(approval_id, kind, due)`` of pending approvals' reminders and escalations, soonest first."""
        rows = self.query(
            "SELECT approval_id, 'remind', next_reminder_at FROM approvals WHERE status = 'PENDING' "
            "AND next_reminder_at IS NOT NULL "
            "UNION ALL SELECT approval_id, 'escalate', escalate_at FROM approvals WHERE status = 'PENDING' "
            "AND escalate_at IS NOT NULL AND escalated_at IS NULL ORDER BY 3 LIMIT ?",
            (limit,),
        )
        return [(r[0], r[1], r[2]) for r in rows]

    def paused_with_pending(self) -> list[tuple[str, str]]:
        return self.query(
            "SELECT w.workflow_id, a.approval_id FROM workflows w JOIN approvals a "
            "ON a.workflow_id = w.workflow_id AND a.status = 'PENDING' WHERE w.status = 'PAUSED'"
        )

    def paused_on_events(self) -> list[tuple[str, str]]:
        """``(workflow_id, step_name)`` of the ``wait_event`` steps PAUSED workflows wait on."""
        return self.query(
            "SELECT w.workflow_id, s.step_name FROM workflows w JOIN workflow_steps s "
            "ON s.workflow_id = w.workflow_id AND s.status = 'WAITING' AND s.type = 'wait_event' "
            "WHERE w.status = 'PAUSED' ORDER BY w.created_at, s.position"
        )

    def waiting_for_actions(self) -> list[tuple[str, str]]:
        return self.query(
            f"SELECT workflow_id, waiting_for FROM workflows WHERE waiting_for IS NOT NULL AND status IN {ACTIVE_SQL}"
        )

    def due_deliveries(self, now: str, url: str | None = None, limit: int = 50) -> list[DeliveryRecord]:
        """Deliveries to ``url`` due at ``now``, oldest first.

        A delivery waits while an earlier one about the same approval to the same
        receiver is still undelivered, so a receiver never hears of a decision
        before the request; one receiver that is down (or that no engine sends
        to any more) holds back only its own.
        """
        url_clause, params = ("AND (url = ? OR url IS NULL) ", [url]) if url is not None else ("", [])
        rows = self.query(
            f"SELECT {DELIVERY_COLS} FROM webhook_deliveries AS d WHERE status IN ('PENDING', 'RETRYING') "
            f"AND next_attempt_at <= ? {url_clause}AND NOT EXISTS ("
            "SELECT 1 FROM webhook_deliveries AS e WHERE e.approval_id = d.approval_id AND e.seq < d.seq "
            f"AND e.status IN ('PENDING', 'RETRYING') AND {_SAME_RECEIVER}) ORDER BY next_attempt_at LIMIT ?",
            (now, *params, limit),
        )
        return [DeliveryRecord(*r) for r in rows]

    def next_delivery_time(self, url: str | None = None) -> str | None:
        """When the next delivery to ``url`` is due (deliveries held back behind an earlier one excluded)."""
        url_clause, params = ("AND (url = ? OR url IS NULL) ", [url]) if url is not None else ("", [])
        rows = self.query(
            "SELECT MIN(next_attempt_at) FROM webhook_deliveries AS d WHERE status IN ('PENDING', 'RETRYING') "
            f"{url_clause}AND NOT EXISTS (SELECT 1 FROM webhook_deliveries AS e "
            f"WHERE e.approval_id = d.approval_id AND e.seq < d.seq AND e.status IN ('PENDING', 'RETRYING') "
            f"AND {_SAME_RECEIVER})",
            params,
        )
        return rows[0][0] if rows else None

    def count_deliveries(self, statuses: Sequence[str] = ("PENDING", "RETRYING")) -> int:
        """How many webhook deliveries are in one of ``statuses`` (the backlog, by default)."""
        marks = ",".join("?" * len(statuses))
        return int(
            self.query(f"SELECT COUNT(*) FROM webhook_deliveries WHERE status IN ({marks})", tuple(statuses))[0][0]
        )

    def delivery_attempts(self, delivery_id: str) -> list[tuple[Any, ...]]:
        """``(attempt, started_at, finished_at, outcome, http_status, error)`` of every attempt, in order."""
        return self.query(
            "SELECT attempt, started_at, finished_at, outcome, http_status, error FROM webhook_attempts "
            "WHERE delivery_id = ? ORDER BY attempt",
            (delivery_id,),
        )

    def deliveries(self, *, approval_id: str | None = None, workflow_id: str | None = None) -> list[DeliveryRecord]:
        where, params = _where(("approval_id", approval_id), ("workflow_id", workflow_id))
        rows = self.query(f"SELECT {DELIVERY_COLS} FROM webhook_deliveries{where} ORDER BY seq", params)
        return [DeliveryRecord(*r) for r in rows]

    # -- views for frames and dashboards ------------------------------------------------------------

    def list_workflows(
        self,
        *,
        status: str | Sequence[str] | None = None,
        name: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
        offset: int = 0,
        newest_first: bool = True,
    ) -> list[WorkflowRecord]:
        """Workflows matching the filters (``name`` matches a substring, ignoring case)."""
        where, params = _filters(status, name, since, until)
        order = "DESC" if newest_first else "ASC"
        # created_at alone is not unique: order by the id too so paging never repeats or skips a row.
        rows = self.query(
            f"SELECT {WF_COLS} FROM workflows{where} ORDER BY created_at {order}, workflow_id {order} LIMIT ? OFFSET ?",
            (*params, _NO_LIMIT if limit is None else limit, offset),
        )
        return [WorkflowRecord(*r) for r in rows]

    def count_workflows(
        self,
        *,
        status: str | Sequence[str] | None = None,
        name: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> int:
        where, params = _filters(status, name, since, until)
        return int(self.query(f"SELECT COUNT(*) FROM workflows{where}", params)[0][0])

    def pending_approvals(self, *, limit: int = 50, offset: int = 0) -> list[tuple[ApprovalRecord, str]]:
        """Pending approvals, oldest first, each with its workflow's name (the approvals inbox)."""
        cols = ", ".join(f"a.{c.strip()}" for c in APPROVAL_COLS.split(","))
        rows = self.query(
            f"SELECT {cols}, w.name FROM approvals a JOIN workflows w ON w.workflow_id = a.workflow_id "
            "WHERE a.status = 'PENDING' ORDER BY a.requested_at, a.approval_id LIMIT ? OFFSET ?",
            (limit, offset),
        )
        return [(ApprovalRecord(*r[:-1]), r[-1]) for r in rows]

    def count_approvals(self, status: str = "PENDING") -> int:
        return int(self.query("SELECT COUNT(*) FROM approvals WHERE status = ?", (status,))[0][0])

    def status_counts(self) -> dict[str, int]:
        return {r[0]: int(r[1]) for r in self.query("SELECT status, COUNT(*) FROM workflows GROUP BY status")}

    def last_change(self) -> tuple[Any, ...]:
        """A cheap "anything changed?" token: the newest ``updated_at``, the row count, the
        newest decision and the number of pending approvals."""
        rows = self.query(
            "SELECT (SELECT MAX(updated_at) FROM workflows), (SELECT COUNT(*) FROM workflows), "
            "(SELECT COUNT(*) FROM approvals WHERE status = 'PENDING')"
        )
        return tuple(rows[0])

    def all_rows(
        self, table: str, workflow_id: str | None = None, status: str | None = None
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Every row of one of airt_nb's tables, for DataFrames: ``(columns, rows)``."""
        spec = TABLES.get(table)
        if spec is None:
            raise StoreError(f"no table {table!r}; choose one of {', '.join(TABLES)}", path=self.path)
        select, status_column, order = spec
        where, params = _where(("workflow_id", workflow_id), (status_column, status))
        return self.columns_and_rows(f"{select}{where} ORDER BY {order}", params)

    def columns_and_rows(self, sql: str, params: Sequence[Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
        raise NotImplementedError


# (SELECT ... FROM table, the column ``status=`` filters, ORDER BY) of every table the frames read.
TABLES = {
    "workflows": (
        "SELECT workflow_id, name, status, created_at, updated_at, finished_at, error, started_by, "
        "total_steps, done_steps, waiting_for, warnings, workdir, session, home, lease_owner, inputs, spec_hash, "
        "forked_from, parent_id, parent_step FROM workflows",
        "status",
        "created_at, workflow_id",
    ),
    "workflow_steps": (
        "SELECT workflow_id, step_name, position, type, action, status, attempt, started_at, finished_at, "
        "next_attempt_at, inputs, outputs, error, traceback, fingerprint FROM workflow_steps",
        "status",
        "workflow_id, position",
    ),
    "step_attempts": (
        "SELECT workflow_id, step_name, attempt, status, started_at, finished_at, error, traceback FROM step_attempts",
        "status",
        "workflow_id, step_name, attempt, attempt_id",
    ),
    "approvals": (f"SELECT {APPROVAL_COLS} FROM approvals", "status", "requested_at, approval_id"),
    "compensation_log": (f"SELECT {COMP_COLS} FROM compensation_log", "status", "compensation_id"),
    "approval_decisions": (f"SELECT {DECISION_COLS} FROM approval_decisions", "decision", "decision_id"),
    "webhook_deliveries": (f"SELECT {DELIVERY_COLS} FROM webhook_deliveries", "status", "seq"),
    "webhook_attempts": (
        "SELECT a.delivery_id, d.approval_id, d.workflow_id, d.event, a.attempt, a.started_at, a.finished_at, "
        "a.outcome, a.http_status, a.error FROM webhook_attempts AS a JOIN webhook_deliveries AS d "
        "ON d.delivery_id = a.delivery_id",
        "a.outcome",
        "d.seq, a.attempt",
    ),
    "audit_log": (
        'SELECT audit_id, at, "user", roles, event, decision, rule, workflow_id, step_name, action, target, '
        "detail FROM audit_log",
        "decision",
        "audit_id",
    ),
    "workflow_events": (
        "SELECT workflow_id, event_id AS seq, at, event, by, detail FROM workflow_events",
        "event",
        "event_id",
    ),
    "engines": (f"SELECT {ENGINE_COLS} FROM engines", "closed_at", "started_at"),
    "sent_events": (f"SELECT {EVENT_COLS} FROM sent_events", "status", "event_id"),
}


def _where(*conditions: tuple[str, Any]) -> tuple[str, list[Any]]:
    """`` WHERE a = ? AND ...`` for the conditions whose value is not None."""
    clauses = [f"{column} = ?" for column, value in conditions if value is not None]
    params = [value for _, value in conditions if value is not None]
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _filters(
    status: str | Sequence[str] | None, name: str | None, since: str | None, until: str | None
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    statuses = [status] if isinstance(status, str) else list(status or [])
    if statuses:
        clauses.append(f"status IN ({','.join('?' * len(statuses))})")
        params += statuses
    if name:
        clauses.append("LOWER(name) LIKE ? ESCAPE '!'")
        escaped = name.lower().replace("!", "!!").replace("%", "!%").replace("_", "!_")
        params.append(f"%{escaped}%")
    if since:
        clauses.append("created_at >= ?")
        params.append(since)
    if until:
        clauses.append("created_at < ?")
        params.append(until)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params
