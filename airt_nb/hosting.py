"""The engine's adapter: what executions, decisions and sweeps may ask of an :class:`~airt_nb.Engine`.

Each of those modules names what it needs as a ``*Host`` protocol
(:class:`~airt_nb.execution.ExecutionHost`, :class:`~airt_nb.decisions.DecisionHost`,
:class:`~airt_nb.recovery.RecoveryHost`, ...); :class:`EngineHost` implements
all of them for one engine, and so do the engine's own parts that live in
modules of their own (:mod:`airt_nb.adoption`, :mod:`airt_nb.stopping`,
:mod:`airt_nb.forking`, :mod:`airt_nb.housekeeping`, :mod:`airt_nb.newruns`).
It is the one place outside :mod:`airt_nb.engine` that reads the engine's
state; it imports no engine at run time.

Imports no IPython, ipywidgets or pandas.
"""

from __future__ import annotations

import builtins
import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import adoption, stopping
from .errors import NotFoundError, WorkflowStateError
from .subworkflows import resettle
from .undocopies import discard_undo_copies, undo_dir_for

if TYPE_CHECKING:
    from . import events as ev
    from .actions import Registry
    from .engine import Engine
    from .execution import Execution
    from .plan import Plan, PlannedStep
    from .policy import Policy, Verdict
    from .spec import WorkflowSpec
    from .store.protocol import Store
    from .store.records import ApprovalRecord, WorkflowRecord

__all__ = ["EngineHost"]


class EngineHost:
    """What executions, decisions and sweeps may ask of the engine (see their ``*Host`` protocols)."""

    __slots__ = ("_e",)

    def __init__(self, engine: Engine):
        self._e = engine

    # shared
    @property
    def store(self) -> Store:
        return self._e._store

    @property
    def owner_id(self) -> str:
        return self._e._owner

    @property
    def registry(self) -> Registry:
        return self._e.registry

    @property
    def closing(self) -> bool:
        return self._e._closing

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._e._submit(fn, *args, **kwargs)

    def run_guarded(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn`` on this thread as a worker runs what is submitted (same handling of its errors)."""
        self._e._guard(fn, *args)

    def notify(self) -> None:
        self._e._notify()

    # ExecutionHost
    @property
    def compensation_attempts(self) -> int:
        return self._e.compensation_attempts

    @property
    def policy_enforcing(self) -> bool:
        return bool(getattr(self._e._policy, "enforcing", True))

    @property
    def listening(self) -> bool:
        return bool(self._e._events)

    def emit(self, event: ev.Event) -> None:
        self._e._events.emit(event)

    def call_at(self, due: float, fn: Callable[[], None]) -> None:
        self._e._timers.at(due, fn)

    def check_step(self, ex: Execution, step: PlannedStep, inputs: dict[str, Any]) -> Verdict | None:
        return self._e._gate.check_step(ex.started_by or self._e.user, ex.id, ex.name, step, inputs)

    def webhook_rows(self, event: str, approval: dict[str, Any], workflow_name: str) -> builtins.list[dict[str, Any]]:
        webhook = self._e._webhook
        if webhook is None:
            return []
        from .webhooks import outbox_row

        return [outbox_row(event, approval, workflow_name, webhook.url)]

    def approvals_requested(self, ex: Execution, rows: builtins.list[dict[str, Any]]) -> None:
        self._e._housekeeping.approvals_requested(ex, rows)

    def released(self, ex: Execution, waiting_for: str | None = None) -> None:
        e = self._e
        with e._exec_lock:
            if e._executions.get(ex.id) is ex:
                del e._executions[ex.id]
        if waiting_for:
            e._waiting[ex.id] = waiting_for
        e._notify()

    def stalled(self, ex: Execution) -> None:
        self._e._housekeeping.orphaned(ex)

    def broke(self, workflow_id: str, step_name: str) -> int:
        return self._e._housekeeping.broke(workflow_id, step_name)

    def settled(self, ex: Execution, status: str) -> None:
        if status == "ROLLED_BACK" and not self._e._store.carried_pending(ex.id):
            # Every undo done: what they needed is no longer needed (unless a fork carried some).
            with contextlib.suppress(OSError):
                discard_undo_copies(undo_dir_for(self._e.db, ex.id))
        told = ex.parent_result
        if told.get("outcome"):  # this child's end was recorded on its parent's step
            ex.parent_result = {}
            self._e._waited(told["workflow_id"], told["step_name"], told["outputs"], told["error"], told["outcome"])

    def run_async(self, coro: Any, ex: Execution) -> Any:
        return self._e._async.run(
            coro, cancelled=ex.cancelled, should_cancel=lambda: ex.stopping == "cancel" or self._e._closing
        )

    def spawn(self, fn: Callable[[], Any]) -> None:
        self._e._spawn(fn)

    def prepare_child(self, ex: Execution, step: PlannedStep, inputs: dict[str, Any]) -> Any:
        return self._e._prepare_child(ex, step, inputs)

    def launch_child(self, child: Any) -> None:
        self._e._launch(child)

    def stop_child(self, child_id: str, kind: str, parent_id: str) -> None:
        try:
            stopping.stop(self, child_id, kind, f"workflow {parent_id}")
        except (WorkflowStateError, NotFoundError):
            pass  # settled already, or being rolled back

    def wait_child(self, child_id: str) -> str:
        return self._e._wait_child(child_id)

    def resettle_child(self, child_id: str) -> None:
        told = resettle(self, child_id)
        if told.get("outcome"):
            self._e._waited(told["workflow_id"], told["step_name"], told["outputs"], told["error"], told["outcome"])

    def plan_of(self, record: WorkflowRecord) -> Plan:
        return self._e._plan_from_json(record.spec, record.spec_hash)

    def waited(self, workflow_id: str, step_name: str, outputs: Any, error: str | None, outcome: str) -> None:
        self._e._waited(workflow_id, step_name, outputs, error, outcome)

    def undo_dir(self, workflow_id: str) -> str | None:
        return undo_dir_for(self._e.db, workflow_id)

    # DecisionHost
    @property
    def db(self) -> str:
        return self._e.db

    @property
    def user(self) -> str:
        return self._e.user

    @property
    def policy(self) -> Policy:
        return self._e._policy

    @property
    def webhook_url(self) -> str | None:
        webhook = self._e._webhook
        return webhook.url if webhook is not None else None

    @property
    def accepting(self) -> bool:
        return not self._e._closing

    def check_open(self) -> None:
        self._e._check_open()

    def status_of(self, workflow_id: str) -> str:
        return self._e.status_of(workflow_id)

    def runs_here(self, workflow_id: str) -> bool:
        return workflow_id in self._e._executions

    def audit_row(self, event: str, user: str, verdict: Any, **kw: Any) -> dict[str, Any]:
        return self._e._gate.row(event, user, verdict, **kw)

    def audit_now(self, event: str, user: str, verdict: Any, **kw: Any) -> None:
        self._e._gate.record(event, user, verdict, **kw)

    def decided(self, approval: ApprovalRecord, approved: bool, outputs: dict[str, Any], outcome: str) -> None:
        self._e._decided(approval, approved, outputs, outcome)

    # RecoveryHost
    @property
    def session(self) -> str:
        return self._e.session

    @property
    def home_grace(self) -> float:
        return self._e.home_grace

    @property
    def takes_work(self) -> bool:
        return self._e._recovering

    def execution(self, workflow_id: str) -> Execution | None:
        return self._e._executions.get(workflow_id)

    def adopt(self, workflow_id: str, *, lost_from: str | None = None) -> str | None:
        return adoption.adopt(self, workflow_id, lost_from=lost_from)

    def adopt_many(self, adopted: builtins.list[tuple[str, str | None]]) -> dict[str, str | Exception | None]:
        return adoption.adopt_many(self, adopted)

    def apply_decisions(self, ex: Execution) -> None:
        adoption.apply_decisions(self, ex)

    def expire_at(self, approval_id: str, due: float) -> None:
        self._e._housekeeping.expire_at(approval_id, due)

    def approval_timer_at(self, approval_id: str, kind: str, due: float) -> None:
        self._e._housekeeping.approval_timer_at(approval_id, kind, due)

    def expire_event_at(self, workflow_id: str, step_name: str, due: float) -> None:
        self._e._housekeeping.expire_event_at(workflow_id, step_name, due)

    # the engine's own parts (adoption, stopping, forking, housekeeping, newruns)
    @property
    def executions(self) -> dict[str, Execution]:
        """The executions this engine runs, by workflow id (changed only under :attr:`exec_lock`)."""
        return self._e._executions

    @property
    def exec_lock(self) -> threading.Lock:
        return self._e._exec_lock

    @property
    def waiting(self) -> dict[str, str]:
        """What workflows this engine gave back wait for (an action, a folder), by workflow id."""
        return self._e._waiting

    @property
    def stored_specs(self) -> set[str]:
        return self._e._stored_specs

    def plan_for(self, spec: WorkflowSpec) -> Plan:
        return self._e._plan_for(spec)

    def check_start(
        self, actor: str, plan: Plan, inputs: dict[str, Any], audit_rows: builtins.list[dict[str, Any]]
    ) -> builtins.list[dict[str, Any]]:
        return self._e._gate.check_start(actor, plan, inputs, audit_rows)

    def emit_status(self, workflow_id: str, status: str) -> None:
        self._e._emit_status(workflow_id, status)

    def kick_webhook(self) -> None:
        """Wake the webhook sender, if there is one (a delivery was queued)."""
        if self._e._webhook is not None:
            self._e._webhook.kick()
