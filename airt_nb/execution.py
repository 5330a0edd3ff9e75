"""One workflow being executed by the engine that holds its lease.

The durable step protocol: a step's action runs outside any transaction, and
its completion, outputs, compensation intent and the start of the steps it
unblocks are committed in **one** transaction that only succeeds while this
engine holds the workflow's lease.  Failures, retries, pauses and
compensations are transactions of their own.

The completion of a step is one row (:meth:`Store.complete`).  The start of
the next step is *implied* rather than written when it is the only step
running: recovery finds a workflow whose one ready step has no recorded
start, and runs it with the same attempt number (so the same idempotency
key) as the lost run had.  Whenever a second step runs at once, a stop is
acknowledged, or a step runs for longer than a second, the starts are
written: recovery then knows exactly which steps were in flight, which a
rollback needs (a step in flight may have had its effect: it runs again, then
is undone).

An ``Execution`` is built the same way for a new run, a recovered run and a
run continued after an approval: from the steps' recorded statuses.

Locking: ``self.lock`` guards the in-memory state and is held while the
transaction that records a change is written, so that the database never
sees a workflow finish before a sibling step's checkpoint.  Write ops never
take this lock.

Talks to the engine only through :class:`ExecutionHost`; imports no engine.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import json
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from . import events as ev
from . import subworkflows, wait_events
from .actions import Action, StepContext, StepInterrupted
from .compensation import compensate, finish_cancel
from .errors import ActionError, PolicyError, StoreError
from .expressions import ExpressionError
from .failures import Abandon, format_error, format_traceback
from .gating import changed, gate_entries, reask_row, request_row
from .limits import is_digit_limit
from .store.base import Completion, LeaseLostError
from .timeutil import iso, now_iso, to_epoch

if TYPE_CHECKING:
    from .actions import Registry
    from .plan import Plan, PlannedStep
    from .policy import Verdict
    from .store.protocol import Store
    from .store.records import StepRecord, WorkflowRecord
    from .store.writes import Tx

__all__ = ["Execution", "ExecutionHost"]

log = logging.getLogger("airt_nb")

_DONE = ("COMPLETED", "SKIPPED")  # what lets the steps after it start
#: how many times our own code may break while running one step before the step fails (see drive)
MAX_BREAKS = 3
# json.dumps(obj, allow_nan=False) / (obj, default=str) without building an encoder on every call.
_dump_outputs = json.JSONEncoder(allow_nan=False).encode
_dump_inputs = json.JSONEncoder(default=str).encode
_SCALARS = (str, int, float, bool, type(None))
_FLAT = frozenset(_SCALARS)
IMPLIED_FOR = 1.0  # seconds a step may run on an implied start before its start is written


class ExecutionHost(Protocol):
    """What an :class:`Execution` needs from the engine that runs it, and nothing more."""

    @property
    def store(self) -> Store: ...

    @property
    def owner_id(self) -> str: ...

    @property
    def registry(self) -> Registry: ...

    @property
    def compensation_attempts(self) -> int: ...

    @property
    def policy_enforcing(self) -> bool:
        """Whether steps are checked against a policy before they run."""
        ...

    @property
    def closing(self) -> bool:
        """The engine is closing: start nothing new."""
        ...

    @property
    def listening(self) -> bool:
        """Someone subscribed to events (building them is skipped otherwise)."""
        ...

    def emit(self, event: ev.Event) -> None: ...

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on a worker thread."""
        ...

    def run_guarded(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on this (worker) thread, its errors handled as a worker handles them."""
        ...

    def call_at(self, due: float, fn: Callable[[], None]) -> None:
        """Call ``fn`` on the timer thread at epoch time ``due``."""
        ...

    def check_step(self, ex: Execution, step: PlannedStep, inputs: dict[str, Any]) -> Verdict | None:
        """Raise :class:`~airt_nb.PolicyError` if the policy forbids running this step now; returns
        the policy's verdict (the folders a file action may touch), None without a policy."""
        ...

    def webhook_rows(self, event: str, approval: dict[str, Any], workflow_name: str) -> list[dict[str, Any]]:
        """Outbox rows announcing ``event`` (committed with the approval)."""
        ...

    def approvals_requested(self, ex: Execution, rows: list[dict[str, Any]]) -> None:
        """Approvals were committed: arm their deadlines, tell listeners and webhooks."""
        ...

    def released(self, ex: Execution, waiting_for: str | None = None) -> None:
        """This execution stopped running here (settled, lost, or waiting for ``waiting_for``)."""
        ...

    def stalled(self, ex: Execution) -> None:
        """This execution stopped on an error: rebuild it from its last checkpoint later."""
        ...

    def broke(self, workflow_id: str, step_name: str) -> int:
        """Our code broke while running that step: how many times it has in this engine, this one included."""
        ...

    def settled(self, ex: Execution, status: str) -> None:
        """The workflow settled in ``status`` (its transaction is committed)."""
        ...

    def notify(self) -> None:
        """Wake ``wait()`` callers."""
        ...

    def undo_dir(self, workflow_id: str) -> str | None:
        """A private folder for what this workflow's steps keep to undo themselves."""
        ...

    @property
    def accepting(self) -> bool:
        """The engine is open and may continue workflows itself."""
        ...

    def runs_here(self, workflow_id: str) -> bool:
        """This engine executes that workflow right now."""
        ...

    def run_async(self, coro: Any, ex: Execution) -> Any:
        """Run an ``async def`` action's coroutine on the engine's event loop; cancelled with a cancel."""
        ...

    def spawn(self, fn: Callable[[], Any]) -> None:
        """Run ``fn()`` on a thread of its own (work that waits for other workflows)."""
        ...

    def prepare_child(self, ex: Execution, step: PlannedStep, inputs: dict[str, Any]) -> Any:
        """A child workflow ready to be recorded (its ``op``) and then launched; raises AirtError."""
        ...

    def launch_child(self, child: Any) -> None:
        """Start executing a child whose ``op`` has committed."""
        ...

    def stop_child(self, child_id: str, kind: str, parent_id: str) -> None:
        """Cancel or roll back a child workflow (nothing if it cannot be any more)."""
        ...

    def wait_child(self, child_id: str) -> str:
        """Wait until a child workflow is finished; returns its status."""
        ...

    def resettle_child(self, child_id: str) -> None:
        """Tell its parent about a child that settled before the parent's step recorded that it waits."""
        ...


class Execution:
    """The in-memory state of one workflow this engine runs (see the module docstring).

    Its parts in modules of their own (:mod:`airt_nb.compensation`,
    :mod:`airt_nb.subworkflows`, :mod:`airt_nb.wait_events`) use its public
    methods: :meth:`write`, :meth:`write_implied`, :meth:`set_status`,
    :meth:`fail_step`, :meth:`maybe_finish`, :meth:`running_action`, and
    :attr:`after_commit` (timer rows handed to the host once the checkpoint
    that needs them has committed).
    """

    def __init__(
        self,
        host: ExecutionHost,
        record: WorkflowRecord,
        plan: Plan,
        steps: list[StepRecord] | None,
        *,
        inputs: dict[str, Any],
    ):
        self.host = host
        self.store = host.store
        self.owner = host.owner_id
        self.registry = host.registry
        self.checked = host.policy_enforcing  # a policy to ask before each step
        self.id = record.workflow_id
        self.name = record.name
        self.plan = plan
        self.status = record.status
        self.started_by = record.started_by
        self.workdir = record.workdir
        self.parent_id = record.parent_id
        self.parent_step = record.parent_step
        self.parent_result: dict[str, Any] = {}  # filled by the settling transaction of a child
        self.requested = record.requested
        self.lock = threading.RLock()
        self.state: dict[str, str] = {}
        self.attempt: dict[str, int] = {}
        self.step_id: dict[str, int] = {}
        self.started_at: dict[str, str | None] = {}
        self.step_state: dict[str, dict[str, Any]] = {}
        self.remaining: dict[str, int] = {}
        self.ready: list[tuple[int, str]] = []  # heap of (index, name)
        self.executing: set[str] = set()
        self.implied: set[str] = set()  # running on a start that is not written (see the module docstring)
        self.to_run: list[str] = []
        self.retry_due: dict[str, float] = {}
        self.intents: list[dict[str, Any]] = []
        self.outputs: dict[str, dict[str, Any]] = {}
        self.context: dict[str, Any] = {
            "inputs": inputs,
            "steps": self.outputs,
            "workflow": {"id": self.id, "name": self.name},
        }
        self.stopping: str | None = None  # 'cancel' | 'rollback' | 'fail'
        self.stop_by: str | None = None
        self.failure: str | None = None
        self.deferred_on: str | None = None
        self.abandoned = False
        self.finishing = False
        self.running_actions = 0  # action or compensation functions executing on worker threads now
        self.finish_first: set[str] = set()  # in flight at a crash: run again even though stopping
        self.cancelled = threading.Event()
        self.done = 0  # completed steps, written in batches (see flush_progress)
        self.done_written = record.done_steps
        self.inferred: str | None = None  # the one ready step a lost engine may have been running
        self.after_commit: list[dict[str, Any]] = []  # rows for the host, once this checkpoint commits
        # History of an adoption (resumed, engine lost, interrupted attempts) that needs no commit of its
        # own: written with this execution's next transaction (see resume).
        self.carry: list[Callable[[Tx], Any]] = []
        self._settle_request: str | None = None
        self.bad_when: dict[str, str] = {}  # conditional steps whose when could not be looked up: they fail
        self.gate_cache: dict[str, Any] | None = None  # approved previews of gated steps (see gating)
        self.started_before: set[str] = set()  # recorded as running when this execution was built
        self._load(steps)

    # -- building ----------------------------------------------------------------------------------

    def _load(self, steps: list[StepRecord] | None) -> None:
        if steps is None:  # a new run: every step pending (thousands of steps: keep it lean)
            names = [s.name for s in self.plan.steps]
            self.state = dict.fromkeys(names, "PENDING")
            self.attempt = dict.fromkeys(names, 0)
            self.step_id = dict.fromkeys(names, 0)
            self.started_at = dict.fromkeys(names)
            self.remaining = {s.name: len(s.deps) for s in self.plan.steps}
            self.ready = [(s.index, s.name) for s in self.plan.steps if not s.deps]
            heapq.heapify(self.ready)
            return
        rows = {r.step_name: r for r in steps}
        for s in self.plan.steps:
            r = rows.get(s.name)
            status = r.status if r else "PENDING"
            self.state[s.name] = status
            self.attempt[s.name] = r.attempt if r else 0
            self.step_id[s.name] = r.step_id if r else 0
            self.started_at[s.name] = r.started_at if r else None
            if r and r.state:
                self.step_state[s.name] = json.loads(r.state)
            if status in ("COMPLETED", "COMPENSATED", "COMPENSATION_FAILED") and r and r.outputs is not None:
                self.outputs[s.name] = {"outputs": json.loads(r.outputs)}
            elif status == "COMPLETED":
                self.outputs[s.name] = {"outputs": None}
            if status in _DONE:
                self.done += 1
            if status == "RUNNING":
                self.to_run.append(s.name)
            elif status == "RETRYING" and r and r.next_attempt_at:
                self.retry_due[s.name] = to_epoch(r.next_attempt_at)
        self.started_before = set(self.to_run)
        for s in self.plan.steps:
            self.remaining[s.name] = sum(1 for d in s.deps if self.state[d] not in _DONE)
            if self.state[s.name] == "PENDING" and self.remaining[s.name] == 0:
                heapq.heappush(self.ready, (s.index, s.name))
        if steps is not None and not self.to_run and not self.retry_due and len(self.ready) == 1:
            index, name = self.ready[0]
            if not self.plan.steps[index].waits:
                self.inferred = name  # started by an implied start, if its engine got that far

    def first_missing_action(self) -> str | None:
        """An action (or compensation) this workflow needs next that is not registered here."""
        registry = self.host.registry
        if self.status == "ROLLING_BACK" or self.stopping == "rollback":
            for name in self.to_run:  # run again before the rollback goes on (see resume)
                action = self.plan.by_name[name].action
                if action and action not in registry:
                    return action
            for c in self.store.compensations(self.id, status="PENDING"):
                if c.action == subworkflows.CHILD_ACTION:
                    continue  # a child's rollback, not an action
                act = registry.get(c.action)
                if act is None or act.compensation is None:
                    return c.action
            return None
        names = [*self.to_run, *self.retry_due, *(n for _, n in self.ready)]
        for name in names:
            action = self.plan.by_name[name].action
            if action and action not in registry:
                return action
        return None

    def load_intents(self) -> None:
        for c in self.store.compensations(self.id, status="PENDING"):
            self.intents.append({"step": c.step_name, "action": c.action, "inputs": json.loads(c.inputs)})

    # -- scheduling ------------------------------------------------------------------------------------

    def begin(self, now: str) -> tuple[list[Callable[[Tx], Any]], list[str], str | None]:
        """A new run's first transaction: ``(ops, steps started, status settled in)``.

        The caller inserts the steps (those started as RUNNING, attempt 1),
        commits ``ops`` with them, then calls :meth:`committed` and runs the
        started steps with :meth:`drive`.
        """
        ops: list[Callable[[Tx], Any]] = []
        started = self._take_ready(ops, now)
        settled = self._settle_ops(ops, now)
        return ops, started, settled

    def committed(self, settled: str | None) -> None:
        """The first transaction is in the database: announce approvals, settle."""
        if self.after_commit:
            rows, self.after_commit = self.after_commit, []
            self.host.approvals_requested(self, rows)
        if settled:
            self._settled(settled)

    def emit_started(self, name: str) -> None:
        """Tell listeners that ``name`` started (once its start is committed or implied)."""
        if self.host.listening:
            self.host.emit(ev.StepStarted(self.id, name, self.attempt.get(name, 1)))

    def _take_ready(self, tx_ops: list[Callable[[Tx], Any]], now: str) -> list[str]:
        """Pop ready steps that may start now (their starts are written by :meth:`_start_ops`);
        queue approval requests into ``tx_ops``."""
        started: list[str] = []
        if self.stopping or self.deferred_on or self.host.closing:
            return started
        slots = self.plan.max_parallel - len(self.executing)
        keep: list[tuple[int, str]] = []
        while self.ready:
            index, name = heapq.heappop(self.ready)
            step = self.plan.steps[index]
            if step.conditional and self._skipped(step, tx_ops, now):
                continue
            if step.waits:
                if step.is_approval:
                    tx_ops.append(self._approval_op(step, now))
                    self.state[name] = "WAITING"
                    continue
                found = wait_events.arrived(self, step)
                if found is None:
                    tx_ops.append(wait_events.wait_op(self, step, now))
                    self.state[name] = "WAITING"
                else:  # sent before the step was reached: received now, no pause
                    event_id, payload, payload_json = found
                    tx_ops.append(wait_events.receive_op(self, step, now, event_id, payload_json))
                    self._received(name, payload)
                continue
            if slots <= 0:
                keep.append((index, name))
                continue
            slots -= 1
            self.attempt[name] += 1
            self.state[name] = "RUNNING"
            self.started_at[name] = now
            self.executing.add(name)
            started.append(name)
        for item in keep:
            heapq.heappush(self.ready, item)
        return started

    def _start_ops(self, tx_ops: list[Callable[[Tx], Any]], started: list[str], *, may_imply: bool) -> None:
        """Write the starts of ``started`` (and of steps running on an implied start) unless one
        step alone runs, in which case its start is implied (see the module docstring)."""
        if may_imply and len(started) == 1 and len(self.executing) == 1 and not self.ready and not self.stopping:
            self.implied.add(started[0])
            return
        self.write_implied(tx_ops)
        for name in started:
            tx_ops.append(self._start_op(name))

    def write_implied(self, tx_ops: list[Callable[[Tx], Any]]) -> None:
        """Write the starts of steps running on an implied start (a second step starts, a stop...)."""
        for name in self.implied:
            tx_ops.append(self._start_op(name))
        self.implied.clear()

    def _start_op(self, name: str) -> Callable[[Tx], Any]:
        step_id, attempt, started = self.step_id[name], self.attempt[name], self.started_at[name] or now_iso()
        return lambda tx: tx.start_step(step_id, attempt, started)

    def _skipped(self, step: PlannedStep, tx_ops: list[Callable[[Tx], Any]], now: str) -> bool:
        """Skip a conditional step that became ready, if it is not taken: it uses the outputs of a skipped
        step, or its ``when`` does not hold.  Its dependents then follow as if it had completed."""
        name = step.name
        why = next((f"it uses the outputs of step {u!r}, which was skipped" for u in step.looks_up
                    if self.state.get(u) == "SKIPPED"), None)  # fmt: skip
        if why is None and step.condition is not None:
            try:
                holds, value = step.condition.holds(self.context)
            except ExpressionError as exc:
                self.bad_when[name] = f"cannot look up when: {exc}"
                return False
            if holds:
                return False
            why = step.condition.why_not(value)
        if why is None:
            return False
        self.state[name] = "SKIPPED"
        self.done += 1
        tx_ops.append(functools.partial(_skip_step, workflow_id=self.id, step_name=name, now=now, why=why))
        for dep in step.dependents:
            self.remaining[dep] -= 1
            if self.remaining[dep] == 0 and self.state[dep] == "PENDING":
                heapq.heappush(self.ready, (self.plan.by_name[dep].index, dep))
        return True

    def _approval_op(self, step: PlannedStep, now: str) -> Callable[[Tx], Any]:
        try:
            message = step.resolve_message(self.context)
        except ExpressionError as exc:
            message = f"{step.message} (could not fill in: {exc})"
        if step.name in self.bad_when:
            message = f"{message or ''} ({self.bad_when.pop(step.name)}; decide whether it should go on)".strip()
        row = request_row(self, step, message, now)
        return self._request_op(row, lambda tx: tx.wait_step(self.id, step.name, now))

    def _request_op(self, row: dict[str, Any], hold: Callable[[Tx], Any]) -> Callable[[Tx], Any]:
        """The op that records an approval request (and its webhooks); announced once committed."""
        self.after_commit.append(row)
        deliveries = self.host.webhook_rows("approval.requested", row, self.name)

        def op(tx: Tx) -> None:
            hold(tx)
            tx.insert_approval(row)
            for d in deliveries:
                tx.insert_delivery(d)

        return op

    def _settle_ops(self, tx_ops: list[Callable[[Tx], Any]], now: str) -> str | None:
        """If nothing runs or can start, the status the workflow settles in (queued into ``tx_ops``)."""
        if self.executing or self.ready or self.stopping or self.deferred_on or self.host.closing:
            return None
        states = self.state.values()
        if any(s == "WAITING" for s in states):
            # An approval, an event, or a gated step asked again pauses the workflow; a child workflow
            # does not (it runs).
            pauses = any(st == "WAITING" and not self.plan.by_name[n].is_child for n, st in self.state.items())
            if pauses and self.status != "PAUSED":
                tx_ops.append(self._settle_op("PAUSED", now, finished=False))
                return "PAUSED"
            return None
        if all(s in _DONE for s in states):
            tx_ops.append(self._settle_op("COMPLETED", now, finished=True))
            return "COMPLETED"
        return None

    def _settle_op(self, status: str, now: str, *, finished: bool) -> Callable[[Tx], None]:
        """Pause or complete, unless a cancel or rollback was asked for meanwhile: read in the same
        transaction, so that a request another engine records while the last step runs is never
        overwritten by the completion."""
        done = self.done
        self._settle_request = None
        tell_parent = None
        if finished and self.parent_id:
            outputs = subworkflows.child_outputs(self)
            tell_parent = subworkflows.parent_op(
                self.host, self, status, now, outputs=outputs, result=self.parent_result
            )

        def op(tx: Tx) -> None:
            kind = tx.fence(self.id, self.owner)
            if kind in ("cancel", "rollback"):
                self._settle_request = kind
                return
            tx.set_status(self.id, status, now, owner=self.owner, finished=finished, release=True, done=done)
            tx.add_event(self.id, now, status.lower())
            if tell_parent is not None:
                tell_parent(tx)

        return op

    def _settled(self, status: str) -> None:
        """After the settling transaction: the new status, or the request that came first."""
        kind, self._settle_request = self._settle_request, None
        if kind is not None:
            self.request_stop(kind, None, record=False)
        else:
            self.done_written = self.done
            self.set_status(status)

    def write(self, ops: list[Callable[[Tx], Any]], now: str | None = None) -> None:
        """Commit ``ops`` (plus the lease fence) in one transaction; lose the workflow if fenced out."""
        wf, owner = self.id, self.owner

        if self.carry:
            ops = [*self._take_carry(), *ops]

        def op(tx: Tx) -> str | None:
            requested = tx.fence(wf, owner)
            for o in ops:
                o(tx)
            return requested

        try:
            requested = self.store.write(op)
        except LeaseLostError:
            self.after_commit = []
            self.abandon("another engine took over this workflow (its lease expired)")
            raise Abandon from None
        except BaseException:
            self.after_commit = []
            raise
        if self.after_commit:
            rows, self.after_commit = self.after_commit, []
            self.host.approvals_requested(self, rows)
        self._heard(requested)

    def _heard(self, requested: str | None) -> bool:
        """A checkpoint read the workflow's pending request: act on a cancel or rollback at once.

        Returns True if the workflow is stopping now because of it.
        """
        if requested not in ("cancel", "rollback") or self.stopping is not None or self.finishing:
            return False
        self.requested = requested
        self.request_stop(requested, None, record=False)
        return True

    def abandon(self, why: str, *, retry: bool = False) -> None:
        """Stop executing here; with ``retry`` this engine rebuilds the workflow from the database later."""
        if not self.abandoned:
            self.abandoned = True
            log.warning("workflow %s: stopped here: %s", self.id, why)
            self.host.released(self)
            if retry:
                self.host.stalled(self)

    @contextlib.contextmanager
    def running_action(self) -> Any:
        """Count an action (or an undo) as running while inside: an abandoned workflow is not taken up
        again here while one of its functions still runs."""
        with self.lock:
            self.running_actions += 1
        try:
            yield
        finally:
            with self.lock:
                self.running_actions -= 1

    # -- progress ------------------------------------------------------------------------------------

    def progress_op(self, now: str, cutoff: str) -> Callable[[Tx], Any] | None:
        """An op that brings the progress counter up to date and writes the starts of steps that have
        run on an implied start since before ``cutoff`` (so that other kernels see them running);
        None when there is nothing to write.  It writes nothing if the lease was lost meanwhile."""
        if not self.implied and self.done == self.done_written:
            return None  # most of thousands of executions, every second: no lock for them (a stale read waits a tick)
        ops: list[Callable[[Tx], Any]] = []
        with self.lock:
            if self.abandoned or self.finishing:
                return None
            for name in [n for n in self.implied if (self.started_at[n] or now) < cutoff]:
                ops.append(self._start_op(name))
                self.implied.discard(name)
            if self.done != self.done_written:
                done, wf, owner = self.done, self.id, self.owner
                ops.append(lambda tx: tx.progress(wf, owner, done, now))
                self.done_written = done
        return self._while_held(ops) if ops else None

    def _while_held(self, ops: list[Callable[[Tx], Any]]) -> Callable[[Tx], None]:
        """One op running ``ops`` only if this engine still holds the lease (else nothing, quietly)."""
        wf, owner = self.id, self.owner

        def op(tx: Tx) -> None:
            if tx.holds(wf, owner):
                for o in ops:
                    o(tx)

        return op

    # -- entry points -----------------------------------------------------------------------------------

    def resume(
        self, *, lost_from: str | None = None, first: list[Callable[[Tx], Any]] | None = None, keep: bool = False
    ) -> str | None:
        """Continue from the recorded state (new run, recovery, or after a decision).

        ``lost_from`` describes the engine that died while running it: its
        steps in flight are recorded as interrupted before they run again.
        ``first`` are ops to commit with the first transaction (the adopting engine's notes).
        ``keep``: the caller is a worker that runs the step returned itself (``drive``), rather than
        handing it to another worker; the other steps that can run go to the pool.
        """
        now = now_iso()
        ops: list[Callable[[Tx], Any]] = list(first or ())
        in_flight: list[str] = []
        with self.lock:
            if lost_from:
                self._interrupted_ops(ops, lost_from, now)
            if self.status == "RUNNING" and self.stopping == "cancel":  # asked for before a crash
                self.to_run, self.retry_due = [], {}
                self.finishing = True
                self._flush(ops, now)
                self.host.submit(self._finish_cancel)
                return None
            if self.status == "ROLLING_BACK" or self.stopping == "rollback":
                self.stopping = self.stopping or "rollback"
                # A step in flight when a crash interrupted the run may have had its effect: it runs
                # again (same attempt, same idempotency key) so that its completion records what to undo,
                # as it would have without the crash.  Retries due are dropped, as on any rollback.
                in_flight = [n for n in self.to_run if self.attempt[n] > 0]
                if self.status == "RUNNING" and self.inferred and not self.to_run:
                    in_flight = [self.inferred]  # the request came before its engine wrote any start
                    self.attempt[self.inferred] += 1
                    self.started_at[self.inferred] = now
                self.to_run, self.retry_due = [], {}
                if not in_flight:
                    self.finishing = True
                    self._flush(ops, now)
                    self._start_compensating()
                    return None
                self.finish_first.update(in_flight)
                self.executing.update(in_flight)
                for name in in_flight:
                    if self.state[name] != "RUNNING":  # the inferred step: its start was never written
                        self.state[name] = "RUNNING"
                        ops.append(self._start_op(name))
                ops.append(lambda tx: tx.set_status(self.id, "ROLLING_BACK", now, owner=self.owner))
                try:
                    self.write(ops, now=now)
                except Abandon:
                    return None
                self.status = "ROLLING_BACK"
        if in_flight:
            return self._hand_out(in_flight, keep)
        with self.lock:
            for name in self.to_run:
                self.executing.add(name)
                if self.attempt[name] == 0:
                    self.attempt[name] = 1
                    self.started_at[name] = now
                    ops.append(self._start_op(name))
            run_now = list(self.to_run)
            self.to_run = []
            for name, due in self.retry_due.items():
                self.executing.add(name)
                self.host.call_at(due, functools.partial(self.host.submit, self._retry, name))
            self.retry_due = {}
            notes = len(ops)
            started = self._take_ready(ops, now)
            self._start_ops(ops, started, may_imply=False)
            run_now += started
            settled = self._settle_ops(ops, now)
            if ops and keep and len(ops) == notes and self._writes_first(run_now):
                # Nothing here must be durable before the step runs (it was recorded as running, or its
                # start is implied): the notes go with its checkpoint, one commit fewer per adoption.
                self.carry, ops = ops, []
            if ops:
                try:
                    self.write(ops, now=now)
                except Abandon:
                    return None
            if settled:
                self._settled(settled)
            if self.status == "RUNNING" and not self.executing and not self.ready:
                self.maybe_finish()
        return self._hand_out(run_now, keep)

    def _writes_first(self, run_now: list[str]) -> bool:
        """Whether the first of ``run_now`` is a plain action step, whose run ends in a write of this
        execution (a completion, a failure, a retry) before anything else is written for it."""
        if not run_now:
            return False
        step = self.plan.by_name[run_now[0]]
        return step.action is not None and not (step.is_child or step.gates or step.waits or step.conditional)

    def _hand_out(self, names: list[str], keep: bool) -> str | None:
        """Announce ``names`` as started and give them to workers; with ``keep``, return the first for the
        calling worker (a hand-off to another thread costs a wake-up per resumed workflow)."""
        for name in names:
            self.emit_started(name)
        for name in names[1:] if keep else names:
            self.host.submit(self.drive, name)
        return names[0] if keep and names else None

    def _interrupted_ops(self, ops: list[Callable[[Tx], Any]], lost_from: str, now: str) -> None:
        """Record the attempts a dead engine left in flight as INTERRUPTED (the step's history)."""
        lost = [(n, self.attempt[n]) for n in self.to_run if self.attempt[n] > 0]
        if self.inferred and not self.to_run:
            lost.append((self.inferred, self.attempt[self.inferred] + 1))
        for name, attempt in lost:
            started = self.started_at[name]
            ops.append(
                functools.partial(
                    _record_attempt,
                    row=(self.id, name, attempt, "INTERRUPTED", started, now, f"engine lost: {lost_from}"),
                )
            )
        ops.append(lambda tx: tx.add_event(self.id, now, "engine_lost", None, lost_from))

    def _flush(self, ops: list[Callable[[Tx], Any]], now: str) -> None:
        if ops:
            with contextlib.suppress(Abandon):
                self.write(ops, now=now)
            ops.clear()

    def drive(self, name: str | None) -> None:
        """Run ``name``, then keep running the next ready step on this thread."""
        try:
            self._drive(name)
        finally:
            if self.carry:  # the step's run wrote nothing (it stopped, or broke): the notes go alone
                with contextlib.suppress(StoreError):
                    self.store.write(self._while_held(self._take_carry()))

    def _take_carry(self) -> list[Callable[[Tx], Any]]:
        with self.lock:
            ops, self.carry = self.carry, []
        return ops

    def _drive(self, name: str | None) -> None:
        while name is not None and not self.abandoned:
            running = name
            try:
                name = self._run_step(running)
            except Abandon:
                return
            except Exception as exc:  # a bug of ours: never leave the workflow silently stuck
                log.exception("workflow %s: error while running step %s", self.id, running)
                if self._give_up(running, exc):
                    return
                self.abandon("error; this engine continues it from its last checkpoint shortly", retry=True)
                return

    def _give_up(self, name: str, exc: Exception) -> bool:
        """Fail ``name`` once our own code has broken :data:`MAX_BREAKS` times while running it here:
        continuing from the last checkpoint runs its action again each time, so a fault that comes back
        would repeat the action's effect forever.  Failed, the workflow rolls back as on any failure.
        The database's errors are not counted (trying again later is right when it is away)."""
        if isinstance(exc, StoreError) or self.host.broke(self.id, name) < MAX_BREAKS:
            return False
        try:
            recorded = {r.step_name: r.status for r in self.store.steps(self.id)}
            if recorded.get(name) not in ("RUNNING", "PENDING"):
                return False  # its outcome is recorded already: nothing to fail
            self._fail(
                name,
                None,
                f"airt_nb failed {MAX_BREAKS} times while running this step ({format_error(exc)}); it is not run "
                "again: the traceback is kept with the step, please report it",
                format_traceback(exc),
            )
        except Exception:  # failing it broke too: leave it to be continued as before
            log.exception("workflow %s: step %s could not be failed", self.id, name)
            return False
        return True

    # -- one step ---------------------------------------------------------------------------------------

    def _run_step(self, name: str) -> str | None:
        step = self.plan.by_name[name]
        finish_first = name in self.finish_first
        self.finish_first.discard(name)
        if (self.stopping and not finish_first) or self.abandoned or self.host.closing:
            with self.lock:
                self.executing.discard(name)
                self.implied.discard(name)
                self.maybe_finish()
            return None
        host = self.host
        if step.conditional and name in self.bad_when:
            return self.fail_step(name, None, self.bad_when.pop(name))
        # Checked on a step's first start only: a retry, or a step that had started before a crash,
        # may have had its effect already (see gating).
        if (
            step.gates
            and self.attempt[name] == 1
            and name not in self.started_before
            and not finish_first
            and self._asked_again(name, step)
        ):
            return None
        try:
            inputs = step.resolve_inputs(self.context)
        except ExpressionError as exc:
            return self.fail_step(name, None, f"cannot resolve inputs: {exc}")
        if step.is_child:
            if self.stopping:  # run again after a crash only to record an effect; a child is not started now
                with self.lock:
                    self.executing.discard(name)
                    self.implied.discard(name)
                    self.maybe_finish()
                return None
            subworkflows.run_child_step(self, name, step, inputs)
            return None
        act = self.registry.get(step.action)  # type: ignore[arg-type]
        if act is None:
            return self._defer_step(name, f"action {step.action}")
        verdict = None
        if self.checked:
            try:
                verdict = host.check_step(self, step, act.intent_inputs(inputs, self.workdir))
            except PolicyError as exc:
                return self.fail_step(name, inputs, f"refused by policy: {exc}")
        try:
            kwargs = act.validate(inputs)
        except ActionError as exc:
            return self.fail_step(name, inputs, f"{exc}; fix the step's inputs")
        if act.ctx_param:
            kwargs[act.ctx_param] = StepContext(
                workflow_id=self.id,
                workflow_name=self.name,
                step_name=name,
                attempt=self.attempt[name],
                state=self.step_state.get(name),
                saver=functools.partial(self._save_state, name),
                cancelled=self.cancelled,
                workdir=self.workdir,
                undo_dir=host.undo_dir(self.id),
                allowed_paths=verdict.paths if verdict is not None else None,
            )
        lock = self.lock
        with lock:
            self.running_actions += 1
        try:
            try:
                result = act.fn(**kwargs)
                if act.is_async:
                    result = host.run_async(result, self)
            finally:
                with lock:
                    self.running_actions -= 1
        except Abandon:
            raise
        except StepInterrupted:
            with self.lock:  # its start is written: it runs again when resumed
                self.executing.discard(name)
                if name in self.implied:
                    self.implied.discard(name)
                    self._flush([self._start_op(name)], now_iso())
                self.maybe_finish()
            return None
        except Exception as exc:
            return self._attempt_failed(name, inputs, exc)
        except BaseException as exc:
            # KeyboardInterrupt, SystemExit...: recorded as the step's failure, never left running;
            # then raised again in this (worker) thread.
            self._fail(name, inputs, f"interrupted by {format_error(exc)}", format_traceback(exc))
            raise
        outputs: Any
        if type(result) is dict and not result:  # the most common outputs of all: nothing to encode
            out_json, outputs = "{}", {}
        elif result is None or isinstance(result, _SCALARS):
            try:
                out_json = _dump_outputs(result)
            except ValueError as exc:
                return self._bad_outputs(name, step, inputs, exc)
            outputs = result
        elif type(result) is dict and all(type(v) in _FLAT for v in result.values()):
            try:  # a flat dict (the usual outputs): a shallow copy is a full copy
                out_json = _dump_outputs(result)
            except (TypeError, ValueError) as exc:
                return self._bad_outputs(name, step, inputs, exc)
            outputs = dict(result)
        else:
            try:
                out_json = _dump_outputs(result)
            except (TypeError, ValueError, RecursionError) as exc:
                return self._bad_outputs(name, step, inputs, exc)
            outputs = json.loads(out_json)  # a copy: later steps cannot change what was recorded
        return self._complete(name, step, act, inputs, outputs, out_json)

    def _bad_outputs(self, name: str, step: PlannedStep, inputs: dict[str, Any], exc: BaseException) -> str | None:
        why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        if is_digit_limit(exc):  # not Python's advice to raise its limit: the value's fault
            why = "an integer of more than 4,300 digits; return it as text"
        return self.fail_step(
            name,
            inputs,
            f"action {step.action!r} returned outputs that are not JSON ({why}); return a dict, list, str, "
            "number, bool or None",
        )

    def _save_state(self, name: str, state: dict[str, Any]) -> None:
        text = json.dumps(state)
        self.step_state[name] = state
        with self.lock:
            step_id = self.step_id[name]
            ops: list[Callable[[Tx], Any]] = [lambda tx: tx.save_step_state(step_id, text)]
            if name in self.implied:  # state saved for a run must name the run's attempt
                self.implied.discard(name)
                ops.insert(0, self._start_op(name))
            self.write(ops)

    def _complete(
        self, name: str, step: PlannedStep, act: Action, inputs: dict[str, Any], outputs: Any, out_json: str
    ) -> str | None:
        in_json = _dump_inputs(inputs) if inputs else "{}"
        host = self.host
        with self.lock:
            if self.abandoned:
                return None
            now = now_iso()
            self.state[name] = "COMPLETED"
            self.executing.discard(name)
            self.implied.discard(name)
            self.outputs[name] = {"outputs": outputs}
            self.done += 1
            intent = None
            if act.is_compensable(inputs):
                state = self.step_state.get(name)
                # The intent names absolute paths: an undo run by any process undoes this very thing.
                intent_inputs = act.intent_inputs(inputs, self.workdir)
                intent_json = in_json if intent_inputs is inputs else _dump_inputs(intent_inputs)
                intent = (name, act.name, intent_json, out_json, json.dumps(state) if state else None)
                self.intents.append({"step": name, "action": act.name, "inputs": intent_inputs})
            for dep in step.dependents:
                self.remaining[dep] -= 1
                if self.remaining[dep] == 0 and self.state[dep] == "PENDING":
                    heapq.heappush(self.ready, (self.plan.by_name[dep].index, dep))
            more: list[Callable[[Tx], Any]] = []
            started = self._take_ready(more, now)
            self._start_ops(more, started, may_imply=True)
            implied_start = len(started) == 1 and started[0] in self.implied
            settled = self._settle_ops(more, now)
            if self.carry:
                more[:0] = self._take_carry()
            completion = Completion(
                self.id,
                self.owner,
                self.step_id[name],
                self.attempt[name],
                self.started_at[name] or now,
                now,
                in_json,
                out_json,
                act.fingerprint,
                intent,
                more or None,
            )
            try:
                requested = self.store.complete(completion)
            except LeaseLostError:
                self.after_commit = []
                self.abandon("another engine took over this workflow (its lease expired)")
                raise Abandon from None
            except BaseException:
                self.after_commit = []
                raise
            if self.after_commit:
                rows, self.after_commit = self.after_commit, []
                host.approvals_requested(self, rows)
            if settled:
                self._settled(settled)
            elif requested in ("cancel", "rollback") and self.stopping is None and not self.finishing:
                # Asked for while this step ran: the steps this checkpoint started do not run.
                self._unstart(started, explicit=not implied_start)
                started = []
                self._heard(requested)
            elif not self.executing:
                self.maybe_finish()
        if host.listening:
            host.emit(ev.StepFinished(self.id, name, self.attempt[name], "COMPLETED", outputs=outputs))
            for n in started:
                self.emit_started(n)
        if not started:
            return None
        for extra in started[1:]:
            host.submit(self.drive, extra)
        return started[0]

    def _unstart(self, names: list[str], *, explicit: bool) -> None:
        """Take back the start of ``names`` (nothing of them ran); written back if their start was."""
        ops: list[Callable[[Tx], Any]] = []
        for name in names:
            self.executing.discard(name)
            self.implied.discard(name)
            self.attempt[name] -= 1
            self.state[name] = "PENDING"
            self.started_at[name] = None
            heapq.heappush(self.ready, (self.plan.by_name[name].index, name))
            if explicit:
                step_id, attempt = self.step_id[name], self.attempt[name]
                ops.append(functools.partial(_unstart_step, step_id=step_id, attempt=attempt))
        self._flush(ops, now_iso())

    def _attempt_failed(self, name: str, inputs: dict[str, Any], exc: BaseException) -> str | None:
        step = self.plan.by_name[name]
        attempt = self.attempt[name]
        error = format_error(exc)
        detail = format_traceback(exc)
        retry = step.retry
        if retry is None or attempt >= retry.max_attempts or self.stopping or self.host.closing:
            return self.fail_step(name, inputs, error, detail=detail)
        delay = retry.delay(attempt)
        if retry.jitter:
            delay *= random.uniform(0.8, 1.2)
        due = time.time() + delay
        in_json = _dump_inputs(inputs)
        with self.lock:
            if self.abandoned:
                return None
            now = now_iso()
            self.state[name] = "RETRYING"
            self.implied.discard(name)
            started, step_id = self.started_at[name], self.step_id[name]
            self.write(
                [
                    lambda tx: tx.record_attempt(self.id, name, attempt, "FAILED", started, now, error, detail),
                    lambda tx: tx.schedule_retry(step_id, attempt, iso(due), error, now, in_json, detail),
                ],
                now=now,
            )
        if self.host.listening:
            self.host.emit(ev.StepFinished(self.id, name, attempt, "RETRYING", error=error))
        self.host.call_at(due, functools.partial(self.host.submit, self._retry, name))
        return None

    def _retry(self, name: str) -> None:
        with self.lock:
            if self.abandoned:
                return
            if self.stopping or self.host.closing:
                self.executing.discard(name)
                self.maybe_finish()
                return
            now = now_iso()
            self.attempt[name] += 1
            self.state[name] = "RUNNING"
            self.started_at[name] = now
            ops: list[Callable[[Tx], Any]] = [self._start_op(name)]
            self.write_implied(ops)
            try:
                self.write(ops, now=now)
            except Abandon:
                return
        self.emit_started(name)
        self.drive(name)

    def fail_step(self, name: str, inputs: dict[str, Any] | None, error: str, detail: str | None = None) -> str | None:
        """Fail ``name`` for good; returns None (no next step) so callers can ``return`` it."""
        self._fail(name, inputs, error, detail)
        return None

    def _defer_step(self, name: str, what: str) -> str | None:
        self._defer(name, what)
        return None

    def _fail(self, name: str, inputs: dict[str, Any] | None, error: str, detail: str | None = None) -> None:
        in_json = _dump_inputs(inputs) if inputs is not None else None
        with self.lock:
            if self.abandoned:
                return
            now = now_iso()
            attempt = self.attempt[name]
            started = self.started_at[name]
            self.state[name] = "FAILED"
            self.executing.discard(name)
            self.implied.discard(name)
            tries = f" after {attempt} attempts" if attempt > 1 else ""
            self.failure = f"step {name!r} failed{tries}: {error}"
            first = self.stopping is None
            if first:
                self.stopping = "fail"
            ops: list[Callable[[Tx], Any]] = [
                lambda tx: tx.record_attempt(self.id, name, attempt, "FAILED", started, now, error, detail),
                lambda tx: tx.fail_step(
                    self.id, name, error, now, in_json, attempt=attempt, started_at=started, traceback=detail
                ),
            ]
            if first:
                failure = self.failure
                self.write_implied(ops)  # a rollback must know every step in flight
                ops.append(lambda tx: tx.set_status(self.id, "ROLLING_BACK", now, owner=self.owner, error=failure))
                ops.append(lambda tx: tx.add_event(self.id, now, "failed", None, failure))
            self.write(ops, now=now)
            if first:
                self.set_status("ROLLING_BACK", error=self.failure)
            log.info("workflow %s (%s): step %s failed: %s", self.id, self.name, name, error)
            if self.host.listening:
                self.host.emit(ev.StepFinished(self.id, name, attempt, "FAILED", error=error))
            self.maybe_finish()

    def _defer(self, name: str, what: str) -> None:
        with self.lock:
            self.executing.discard(name)
            self.implied.discard(name)
            self.to_run.append(name)
            if self.deferred_on is None:
                self.deferred_on = what
            self.maybe_finish()

    # -- ending -----------------------------------------------------------------------------------------

    def maybe_finish(self) -> None:
        """Called with the lock held whenever a step stops executing."""
        if self.executing or self.abandoned or self.finishing:
            return
        if self.deferred_on:
            self.finishing = True
            what = self.deferred_on
            try:  # "action NAME": housekeeping skips the workflow until NAME exists
                self.store.write(lambda tx: tx.release(self.id, self.owner, waiting_for=what))
            finally:
                self.host.released(self, waiting_for=what)
            log.info("workflow %s: waiting for %s to be defined", self.id, what)
            return
        if self.stopping == "cancel":
            self.finishing = True
            self.host.submit(self._finish_cancel)
        elif self.stopping in ("fail", "rollback"):
            self.finishing = True
            self._start_compensating()
        elif self.host.closing:
            self.host.released(self)

    def _finish_cancel(self) -> None:
        finish_cancel(self)

    def _compensate(self) -> None:
        compensate(self)

    def _start_compensating(self) -> None:
        # Undoing a child waits for that child's rollback: on a thread of its own, never blocking
        # a worker the child's rollback may need.
        if self.plan.has_children:
            self.host.spawn(self._compensate)
        else:
            self.host.submit(self._compensate)

    def set_status(self, status: str, error: str | None = None) -> None:
        """After the transaction that recorded ``status``: tell listeners, then let ``wait()`` see it.

        Listeners (panels) hear it first, so that a cell waiting for the run never ends before the
        panel has shown the new status.
        """
        host = self.host
        settled = status in ("PAUSED", "COMPLETED", "FAILED", "ROLLED_BACK", "CANCELLED")
        if settled:
            host.settled(self, status)
        if host.listening:
            host.emit(ev.WorkflowStatusChanged(self.id, status, error))
        self.status = status
        if settled:
            host.released(self)
        host.notify()

    # -- requests from outside -----------------------------------------------------------------------------

    def request_stop(self, kind: str, by: str | None, *, record: bool = True) -> None:
        """Cancel or roll back: no new step starts; in-flight steps finish first.

        The request is recorded in the database first (unless it came from
        there), with the starts of every step in flight, so that a crash
        before they finish does not forget it.
        """
        with self.lock:
            if self.abandoned or self.finishing:
                return
            if self.stopping in ("fail", "rollback") and kind == "cancel":
                return
            if self.stopping == kind:
                return
            now = now_iso()
            ops: list[Callable[[Tx], Any]] = []
            self.write_implied(ops)
            if record:
                ops.append(lambda tx: tx.request(self.id, kind))
                ops.append(lambda tx: tx.add_event(self.id, now, f"{kind}_requested", by))
            previous = self.stopping
            self.stopping = kind
            self.stop_by = by
            if ops:
                try:
                    self.write(ops, now=now)
                except Abandon:
                    return
                except BaseException:
                    self.stopping = previous
                    raise
            self.cancelled.set()
            for name in [n for n in self.executing if self.state[n] == "RETRYING"]:
                self.executing.discard(name)  # its back-off timer finds the workflow stopping
            self.maybe_finish()

    def _asked_again(self, name: str, step: PlannedStep) -> bool:
        """A gated step about to run: if what it would do is not what was approved, it does not run; its
        approval is asked for again with the new preview (see :mod:`airt_nb.gating`).  True if so."""
        if self.gate_cache is None:
            self.gate_cache = gate_entries(self)
        found = self.gate_cache.get(name)
        if found is None:
            return False  # approved before previews were recorded, or beyond MAX_PREVIEW_STEPS
        approval, entry = found
        diff = changed(self, step, entry)
        if diff is None:
            return False
        why, now_entry = diff
        started: list[str] = []
        with self.lock:
            if self.abandoned:
                return True
            now = now_iso()
            self.executing.discard(name)
            self.implied.discard(name)
            self.attempt[name] -= 1
            self.state[name] = "WAITING"
            self.started_at[name] = None
            row = reask_row(self, step, approval, why, now_entry, now)
            step_id, attempt, wf = self.step_id[name], self.attempt[name], self.id
            ops: list[Callable[[Tx], Any]] = [
                self._request_op(row, lambda tx: tx.hold_step(step_id, attempt)),
                lambda tx: tx.add_event(wf, now, "asked_again", None, f"{name}: {why}"),
            ]
            started = self._take_ready(ops, now)
            self._start_ops(ops, started, may_imply=False)
            settled = self._settle_ops(ops, now)
            log.info("workflow %s: step %s did not run: %s; its approval is asked for again", wf, name, why)
            try:
                self.write(ops, now=now)
            except Abandon:
                return True
            if settled:
                self._settled(settled)
            elif not self.executing:
                self.maybe_finish()
        for n in started:
            self.emit_started(n)
            self.host.submit(self.drive, n)
        return True

    def _received(self, name: str, outputs: Any) -> None:
        """A waiting step completed in the transaction being built (with the lock held): its
        dependents may start in it too."""
        self.state[name] = "COMPLETED"
        self.done += 1
        self.outputs[name] = {"outputs": outputs}
        for dep in self.plan.by_name[name].dependents:
            self.remaining[dep] -= 1
            if self.remaining[dep] == 0 and self.state[dep] == "PENDING":
                heapq.heappush(self.ready, (self.plan.by_name[dep].index, dep))

    def on_wait_failed(self, name: str, error: str) -> None:
        """A waiting step of this (locally run) workflow failed: its event timed out, or its child
        workflow did not complete.  The step's failure and ROLLING_BACK are recorded already."""
        with self.lock:
            if self.abandoned or self.state.get(name) != "WAITING":
                return
            self.state[name] = "FAILED"
            self.failure = error
            if self.stopping is None:
                self.stopping = "fail"
                ops: list[Callable[[Tx], Any]] = []
                self.write_implied(ops)
                self._flush(ops, now_iso())
                self.set_status("ROLLING_BACK", error=error)
            self.maybe_finish()

    def on_decision(self, name: str, approved: bool, outputs: Any) -> None:
        """A waiting step of this (running, locally owned) workflow ended: an approval was decided, an
        event arrived, a child workflow completed, or a gated action step asked again was approved."""
        started: list[str] = []
        self.gate_cache = None  # a new approval may cover gated steps
        with self.lock:
            if self.abandoned or self.state.get(name) != "WAITING":
                return
            if not approved:
                self.state[name] = "REJECTED"
                if self.stopping is None:
                    self.stopping = "rollback"
                    ops: list[Callable[[Tx], Any]] = []
                    self.write_implied(ops)
                    self._flush(ops, now_iso())
                    self.set_status("ROLLING_BACK")
                self.maybe_finish()
                return
            now = now_iso()
            step = self.plan.by_name[name]
            if step.type == "action":  # a gated step asked again: approved, it runs now
                self.state[name] = "PENDING"
                if self.remaining[name] == 0:
                    heapq.heappush(self.ready, (step.index, name))
            else:
                self.state[name] = "COMPLETED"
                self.done += 1
                self.done_written += 1  # the decision's transaction counted it
                self.outputs[name] = {"outputs": outputs}
                for dep in step.dependents:
                    self.remaining[dep] -= 1
                    if self.remaining[dep] == 0 and self.state[dep] == "PENDING":
                        heapq.heappush(self.ready, (self.plan.by_name[dep].index, dep))
            ops = []
            started = self._take_ready(ops, now)
            self._start_ops(ops, started, may_imply=False)
            settled = self._settle_ops(ops, now)
            if ops:
                try:
                    self.write(ops, now=now)
                except Abandon:
                    return
            if settled:
                self._settled(settled)
        for n in started:
            self.emit_started(n)
            self.host.submit(self.drive, n)


def _record_attempt(tx: Tx, *, row: tuple[Any, ...]) -> None:
    tx.record_attempt(*row)


def _unstart_step(tx: Tx, *, step_id: int, attempt: int) -> None:
    tx.unstart_step(step_id, attempt)


def _skip_step(tx: Tx, *, workflow_id: str, step_name: str, now: str, why: str) -> None:
    tx.skip_step(workflow_id, step_name, now)
    tx.add_event(workflow_id, now, "skipped", None, f"{step_name}: {why}")
