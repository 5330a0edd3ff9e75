"""One workflow being executed by the engine that holds its lease.

The durable step protocol: a step is recorded RUNNING before its action runs
(in the same transaction that completed the step before it), the action runs
outside any transaction, and its completion, outputs, compensation intent and
the start of the steps it unblocks are committed in **one** transaction.
Failures, retries, pauses and compensations are transactions of their own.

An ``Execution`` is built the same way for a new run, a recovered run and a
run continued after an approval: from the steps' recorded statuses.  Steps
recorded RUNNING are (re)run with the attempt number they have, so a step
in flight at a crash runs again with the same idempotency key.

Locking: ``self.lock`` guards the in-memory state and is held while the
transaction that records a change is written, so that the database never
sees a workflow finish before a sibling step's checkpoint.  Write ops never
take this lock.
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
import traceback
import uuid
from typing import TYPE_CHECKING, Any

from . import events as ev
from .actions import Action, CompensationContext, StepContext, StepInterrupted
from .decisions import cancel_pending
from .errors import ActionError, PolicyError
from .expressions import ExpressionError
from .store.sqlite import LeaseLostError, Tx
from .timeutil import iso, now_iso
from .undocopies import undo_dir_for

if TYPE_CHECKING:
    from .engine import Engine
    from .plan import Plan, PlannedStep
    from .store.records import StepRecord, WorkflowRecord

log = logging.getLogger("airt_nb")

_DONE = ("COMPLETED",)
# json.dumps(obj, allow_nan=False) / (obj, default=str) without building an encoder on every call.
_dump_outputs = json.JSONEncoder(allow_nan=False).encode
_dump_inputs = json.JSONEncoder(default=str).encode


def format_error(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Abandon(Exception):
    """This engine must stop executing the workflow (lease lost or engine closing)."""


class Execution:
    def __init__(
        self,
        engine: Engine,
        record: WorkflowRecord,
        plan: Plan,
        steps: list[StepRecord] | None,
        *,
        inputs: dict[str, Any],
    ):
        self.engine = engine
        self.store = engine._store
        self.owner = engine._owner
        self.id = record.workflow_id
        self.name = record.name
        self.plan = plan
        self.status = record.status
        self.started_by = record.started_by
        self.lock = threading.RLock()
        self.state: dict[str, str] = {}
        self.attempt: dict[str, int] = {}
        self.started_at: dict[str, str | None] = {}
        self.step_state: dict[str, dict[str, Any]] = {}
        self.remaining: dict[str, int] = {}
        self.ready: list[tuple[int, str]] = []  # heap of (index, name)
        self.executing: set[str] = set()
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
        self.failure: str | None = None
        self.deferred_on: str | None = None
        self.abandoned = False
        self.finishing = False
        self.running_actions = 0  # action or compensation functions executing on worker threads now
        self.finish_first: set[str] = set()  # in flight at a crash: run again even though stopping
        self.cancelled = threading.Event()
        self._after: list[dict[str, Any]] = []
        self._load(steps)

    # -- building ----------------------------------------------------------------------------------

    def _load(self, steps: list[StepRecord] | None) -> None:
        rows = {r.step_name: r for r in steps} if steps is not None else {}
        for s in self.plan.steps:
            r = rows.get(s.name)
            status = r.status if r else "PENDING"
            self.state[s.name] = status
            self.attempt[s.name] = r.attempt if r else 0
            self.started_at[s.name] = r.started_at if r else None
            if r and r.state:
                self.step_state[s.name] = json.loads(r.state)
            if status in ("COMPLETED", "COMPENSATED", "COMPENSATION_FAILED") and r and r.outputs is not None:
                self.outputs[s.name] = {"outputs": json.loads(r.outputs)}
            elif status in ("COMPLETED",):
                self.outputs[s.name] = {"outputs": None}
            if status == "RUNNING":
                self.to_run.append(s.name)
            elif status == "RETRYING" and r and r.next_attempt_at:
                from .timeutil import to_epoch

                self.retry_due[s.name] = to_epoch(r.next_attempt_at)
        for s in self.plan.steps:
            self.remaining[s.name] = sum(1 for d in s.deps if self.state[d] not in _DONE)
            if self.state[s.name] == "PENDING" and self.remaining[s.name] == 0:
                heapq.heappush(self.ready, (s.index, s.name))

    def first_missing_action(self) -> str | None:
        """An action (or compensation) this workflow needs next that is not registered here."""
        registry = self.engine.registry
        if self.status == "ROLLING_BACK" or self.stopping == "rollback":
            for name in self.to_run:  # run again before the rollback goes on (see resume)
                action = self.plan.by_name[name].action
                if action and action not in registry:
                    return action
            for c in self.store.compensations(self.id, status="PENDING"):
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

    def _take_ready(self, tx_ops: list, now: str) -> list[str]:
        """Pop ready steps that may start now; queue their start (and approval requests) into ``tx_ops``."""
        started: list[str] = []
        if self.stopping or self.deferred_on or self.engine._closing:
            return started
        slots = self.plan.max_parallel - len(self.executing)
        keep: list[tuple[int, str]] = []
        while self.ready:
            index, name = heapq.heappop(self.ready)
            step = self.plan.steps[index]
            if step.is_approval:
                tx_ops.append(self._approval_op(step, now))
                self.state[name] = "WAITING"
                continue
            if slots <= 0:
                keep.append((index, name))
                continue
            slots -= 1
            attempt = self.attempt[name] + 1
            self.attempt[name] = attempt
            self.state[name] = "RUNNING"
            self.started_at[name] = now
            self.executing.add(name)
            started.append(name)
            tx_ops.append(lambda tx, n=name, a=attempt: tx.start_step(self.id, n, a, now))
        for item in keep:
            heapq.heappush(self.ready, item)
        return started

    def _approval_op(self, step: PlannedStep, now: str) -> Any:
        try:
            message = step.resolve_message(self.context)
        except ExpressionError as exc:
            message = f"{step.message} (could not fill in: {exc})"
        undone = {i["step"] for i in self.intents}
        context = {
            "depends_on": {d: self.outputs.get(d, {}).get("outputs") for d in step.deps},
            # What a rejection rolls back (newest first), and what it cannot undo.
            "undo": [{"step": i["step"], "action": i["action"], "inputs": i["inputs"]} for i in reversed(self.intents)],
            "not_undone": [
                s.name
                for s in self.plan.steps
                if self.state[s.name] == "COMPLETED" and not s.is_approval and s.name not in undone
            ],
            "started_by": self.started_by,
        }
        approval_id = uuid.uuid4().hex[:16]
        deadline = iso(time.time() + step.timeout) if step.timeout else None
        row = {
            "approval_id": approval_id,
            "workflow_id": self.id,
            "step_name": step.name,
            "message": message,
            "context": json.dumps(context, default=str),
            "approvers": json.dumps(list(step.approvers)),
            "requested_at": now,
            "deadline": deadline,
            "on_timeout": step.on_timeout,
        }
        self._after.append(row)
        deliveries = self.engine._webhook_rows("approval.requested", row, self.name)

        def op(tx: Tx) -> None:
            tx.wait_step(self.id, step.name, now)
            tx.insert_approval(row)
            for d in deliveries:
                tx.insert_delivery(d)

        return op

    def _settle_ops(self, tx_ops: list, now: str) -> str | None:
        """If nothing runs or can start, the status the workflow settles in (queued into ``tx_ops``)."""
        if self.executing or self.ready or self.stopping or self.deferred_on:
            return None
        if self.engine._closing:
            return None
        states = self.state.values()
        if any(s == "WAITING" for s in states):
            if self.status != "PAUSED":
                tx_ops.append(lambda tx: tx.set_status(self.id, "PAUSED", now, owner=self.owner, release=True))
                return "PAUSED"
            return None
        if all(s == "COMPLETED" for s in states):
            tx_ops.append(
                lambda tx: tx.set_status(self.id, "COMPLETED", now, owner=self.owner, finished=True, release=True)
            )
            return "COMPLETED"
        return None

    def _write(self, ops: list, touch_done: int = 0, now: str | None = None) -> None:
        """Commit ``ops`` (plus the lease fence) in one transaction; lose the workflow if fenced out."""
        stamp = now or now_iso()
        owner = self.owner
        wf = self.id

        def op(tx: Tx) -> None:
            tx.touch(wf, owner, stamp, touch_done)
            for o in ops:
                o(tx)

        try:
            self.store.write(op)
        except LeaseLostError:
            self._after = []
            self.abandon("another engine took over this workflow (its lease expired)")
            raise _Abandon from None
        except BaseException:
            self._after = []
            raise
        if self._after:
            rows, self._after = self._after, []
            self.engine._approvals_requested(self, rows)

    def abandon(self, why: str, *, retry: bool = False) -> None:
        """Stop executing here; with ``retry`` this engine rebuilds the workflow from the database later."""
        if not self.abandoned:
            self.abandoned = True
            log.warning("workflow %s: stopped here: %s", self.id, why)
            self.engine._forget(self)
            if retry:
                self.engine._orphaned(self)

    @contextlib.contextmanager
    def _running_action(self) -> Any:
        with self.lock:
            self.running_actions += 1
        try:
            yield
        finally:
            with self.lock:
                self.running_actions -= 1

    # -- entry points -----------------------------------------------------------------------------------

    def resume(self) -> None:
        """Continue from the recorded state (new run, recovery, or after a decision)."""
        in_flight: list[str] = []
        with self.lock:
            if self.status == "RUNNING" and self.stopping == "cancel":  # asked for before a crash
                self.to_run, self.retry_due = [], {}
                self.finishing = True
                self.engine._submit(self._finish_cancel)
                return
            if self.status == "ROLLING_BACK" or self.stopping == "rollback":
                self.stopping = self.stopping or "rollback"
                # A step in flight when a crash interrupted the rollback may have had its effect: it runs
                # again (same attempt, same idempotency key) so that its completion records what to undo,
                # as it would have without the crash.  Retries due are dropped, as on any rollback.
                in_flight = [n for n in self.to_run if self.attempt[n] > 0]
                self.to_run, self.retry_due = [], {}
                if not in_flight:
                    self.finishing = True
                    self.engine._submit(self._compensate)
                    return
                self.finish_first.update(in_flight)
                self.executing.update(in_flight)
        if in_flight:
            for name in in_flight:
                self.engine._emit_started(self, name)
                self.engine._submit(self.drive, name)
            return
        with self.lock:
            now = now_iso()
            ops: list = []
            for name in self.to_run:
                self.executing.add(name)
                if self.attempt[name] == 0:
                    self.attempt[name] = 1
                    ops.append(lambda tx, n=name: tx.start_step(self.id, n, 1, now))
            run_now = list(self.to_run)
            self.to_run = []
            for name, due in self.retry_due.items():
                self.executing.add(name)
                self.engine._timers.at(due, functools.partial(self.engine._submit, self._retry, name))
            self.retry_due = {}
            run_now += self._take_ready(ops, now)
            settled = self._settle_ops(ops, now)
            if ops:
                try:
                    self._write(ops, now=now)
                except _Abandon:
                    return
            if settled:
                self._set_status(settled)
            if self.status == "RUNNING" and not self.executing and not self.ready:
                self._maybe_finish()
        for name in run_now:
            self.engine._emit_started(self, name)
            self.engine._submit(self.drive, name)

    def drive(self, name: str | None) -> None:
        """Run ``name``, then keep running the next ready step on this thread."""
        while name is not None and not self.abandoned:
            try:
                name = self._run_step(name)
            except _Abandon:
                return
            except Exception:  # a bug of ours: never leave the workflow silently stuck
                log.exception("workflow %s: error while running step %s", self.id, name)
                self.abandon("error; this engine continues it from its last checkpoint shortly", retry=True)
                return

    # -- one step ---------------------------------------------------------------------------------------

    def _run_step(self, name: str) -> str | None:
        step = self.plan.by_name[name]
        finish_first = name in self.finish_first
        self.finish_first.discard(name)
        if (self.stopping and not finish_first) or self.abandoned or self.engine._closing:
            with self.lock:
                self.executing.discard(name)
                self._maybe_finish()
            return None
        engine = self.engine
        attempt = self.attempt[name]
        try:
            inputs = step.resolve_inputs(self.context)
        except ExpressionError as exc:
            return self._fail_step(name, None, f"cannot resolve inputs: {exc}")
        act = engine.registry.get(step.action)  # type: ignore[arg-type]
        if act is None:
            return self._defer_step(name, f"action {step.action}")
        allowed_paths = None
        if engine._policy.enforcing:
            try:
                allowed_paths = engine._check_step(self, step, inputs).paths
            except PolicyError as exc:
                return self._fail_step(name, inputs, f"refused by policy: {exc}")
        try:
            kwargs = act.validate(inputs)
        except ActionError as exc:
            return self._fail_step(name, inputs, f"{exc}; fix the step's inputs")
        if act.ctx_param:
            kwargs[act.ctx_param] = StepContext(
                workflow_id=self.id,
                workflow_name=self.name,
                step_name=name,
                attempt=attempt,
                state=self.step_state.get(name),
                saver=functools.partial(self._save_state, name),
                cancelled=self.cancelled,
                undo_dir=undo_dir_for(engine.db, self.id),
                allowed_paths=allowed_paths,
            )
        try:
            with self._running_action():
                result = act.fn(**kwargs)
        except _Abandon:
            raise
        except StepInterrupted:
            with self.lock:  # left RUNNING in the database: it runs again when resumed
                self.executing.discard(name)
                self._maybe_finish()
            return None
        except Exception as exc:
            return self._attempt_failed(name, inputs, exc)
        try:
            out_json = _dump_outputs(result)
        except (TypeError, ValueError) as exc:
            return self._fail_step(
                name,
                inputs,
                f"action {step.action!r} returned outputs that are not JSON ({exc}); return a dict, list, str, "
                "number, bool or None",
            )
        return self._complete(name, step, act, inputs, result, out_json)

    def _save_state(self, name: str, state: dict[str, Any]) -> None:
        text = json.dumps(state)
        self.step_state[name] = state
        with self.lock:
            self._write([lambda tx: tx.save_step_state(self.id, name, text)])

    def _complete(
        self, name: str, step: PlannedStep, act: Action, inputs: dict, result: Any, out_json: str
    ) -> str | None:
        in_json = _dump_inputs(inputs)
        engine = self.engine
        with self.lock:
            if self.abandoned:
                return None
            now = now_iso()
            outputs = json.loads(out_json) if isinstance(result, dict | list | tuple) else result
            self.state[name] = "COMPLETED"
            self.executing.discard(name)
            self.outputs[name] = {"outputs": outputs}
            ops: list = [lambda tx: tx.complete_step(self.id, name, now, in_json, out_json, act.fingerprint)]
            if act.is_compensable(inputs):
                state = self.step_state.get(name)
                state_json = json.dumps(state) if state else None
                ops.append(
                    lambda tx: tx.insert_compensation(self.id, name, act.name, in_json, out_json, state_json, now)
                )
                self.intents.append({"step": name, "action": act.name, "inputs": inputs})
            for dep in step.dependents:
                self.remaining[dep] -= 1
                if self.remaining[dep] == 0 and self.state[dep] == "PENDING":
                    heapq.heappush(self.ready, (self.plan.by_name[dep].index, dep))
            started = self._take_ready(ops, now)
            settled = self._settle_ops(ops, now)
            self._write(ops, touch_done=1, now=now)
            if settled:
                self._set_status(settled)
            elif not self.executing:
                self._maybe_finish()
        if engine._events:
            engine._events.emit(ev.StepFinished(self.id, name, self.attempt[name], "COMPLETED", outputs=outputs))
            for n in started:
                engine._emit_started(self, n)
        if not started:
            return None
        for extra in started[1:]:
            engine._submit(self.drive, extra)
        return started[0]

    def _attempt_failed(self, name: str, inputs: dict, exc: BaseException) -> str | None:
        step = self.plan.by_name[name]
        attempt = self.attempt[name]
        error = format_error(exc)
        retry = step.retry
        if retry is None or attempt >= retry.max_attempts or self.stopping or self.engine._closing:
            detail = "".join(traceback.format_exception(exc)[-3:]).strip()
            tries = f" after {attempt} attempts" if attempt > 1 else ""
            return self._fail_step(name, inputs, f"{error}{tries}", detail=detail)
        delay = retry.delay(attempt)
        if retry.jitter:
            delay *= random.uniform(0.8, 1.2)
        due = time.time() + delay
        in_json = json.dumps(inputs, default=str)
        with self.lock:
            if self.abandoned:
                return None
            now = now_iso()
            self.state[name] = "RETRYING"
            started = self.started_at[name]
            self._write(
                [
                    lambda tx: tx.record_attempt(self.id, name, attempt, "FAILED", started, now, error),
                    lambda tx: tx.schedule_retry(self.id, name, iso(due), error, now, in_json),
                ],
                now=now,
            )
        if self.engine._events:
            self.engine._events.emit(ev.StepFinished(self.id, name, attempt, "RETRYING", error=error))
        self.engine._timers.at(due, lambda: self.engine._submit(self._retry, name))
        return None

    def _retry(self, name: str) -> None:
        with self.lock:
            if self.abandoned:
                return
            if self.stopping or self.engine._closing:
                self.executing.discard(name)
                self._maybe_finish()
                return
            now = now_iso()
            attempt = self.attempt[name] + 1
            self.attempt[name] = attempt
            self.state[name] = "RUNNING"
            self.started_at[name] = now
            try:
                self._write([lambda tx: tx.start_step(self.id, name, attempt, now)], now=now)
            except _Abandon:
                return
        self.engine._emit_started(self, name)
        self.drive(name)

    def _fail_step(self, name: str, inputs: dict | None, error: str, detail: str | None = None) -> str | None:
        """Fail ``name`` for good; returns None (no next step) so callers can ``return`` it."""
        self._fail(name, inputs, error, detail)
        return None

    def _defer_step(self, name: str, what: str) -> str | None:
        self._defer(name, what)
        return None

    def _fail(self, name: str, inputs: dict | None, error: str, detail: str | None = None) -> None:
        in_json = json.dumps(inputs, default=str) if inputs is not None else None
        with self.lock:
            if self.abandoned:
                return
            now = now_iso()
            attempt = self.attempt[name]
            started = self.started_at[name]
            self.state[name] = "FAILED"
            self.executing.discard(name)
            self.failure = f"step {name!r} failed: {error}"
            first = self.stopping is None
            if first:
                self.stopping = "fail"
            ops = [
                lambda tx: tx.record_attempt(self.id, name, attempt, "FAILED", started, now, error),
                lambda tx: tx.fail_step(self.id, name, error, now, in_json),
            ]
            if first:
                failure = self.failure
                ops.append(lambda tx: tx.set_status(self.id, "ROLLING_BACK", now, owner=self.owner, error=failure))
            self._write(ops, now=now)
            if first:
                self._set_status("ROLLING_BACK", error=self.failure)
            self.engine._log_failure(self, name, error, detail)
            if self.engine._events:
                self.engine._events.emit(ev.StepFinished(self.id, name, attempt, "FAILED", error=error))
            self._maybe_finish()

    def _defer(self, name: str, what: str) -> None:
        with self.lock:
            self.executing.discard(name)
            self.to_run.append(name)
            if self.deferred_on is None:
                self.deferred_on = what
            self._maybe_finish()

    # -- ending -----------------------------------------------------------------------------------------

    def _maybe_finish(self) -> None:
        """Called with the lock held whenever a step stops executing."""
        if self.executing or self.abandoned or self.finishing:
            return
        if self.deferred_on:
            self.finishing = True
            what = self.deferred_on
            try:  # the same "action NAME" text as Engine._adopt: housekeeping skips it until NAME exists
                self.store.write(lambda tx: tx.release(self.id, self.owner, waiting_for=what))
            finally:
                self.engine._forget(self, waiting_for=what)
            log.info("workflow %s: waiting for %s to be defined", self.id, what)
            return
        if self.stopping == "cancel":
            self.finishing = True
            self._finish_cancel()
        elif self.stopping in ("fail", "rollback"):
            self.finishing = True
            self.engine._submit(self._compensate)
        elif self.engine._closing:
            self.engine._forget(self)

    def _finish_cancel(self) -> None:
        now = now_iso()
        by = self.engine._cancel_by.get(self.id, "system")
        try:

            def op(tx: Tx) -> None:
                tx.skip_unfinished_steps(self.id, "CANCELLED")
                cancel_pending(tx, self.id, self.name, now, by, "workflow cancelled")
                tx.set_status(self.id, "CANCELLED", now, owner=self.owner, finished=True, release=True)

            self.store.write(op)
        except LeaseLostError:
            self.abandon("lease lost while cancelling")
            return
        self._set_status("CANCELLED")
        self.engine._forget(self)

    def _compensate(self) -> None:
        """Undo completed steps, newest completion first, then settle the workflow."""
        engine = self.engine
        errors: list[str] = []
        with self.lock:
            if self.abandoned:
                return
            if self.status != "ROLLING_BACK":
                now = now_iso()
                try:
                    self._write([lambda tx: tx.set_status(self.id, "ROLLING_BACK", now, owner=self.owner)])
                except _Abandon:
                    return
                self._set_status("ROLLING_BACK")
        pending = sorted(self.store.compensations(self.id, status="PENDING"), key=lambda c: -c.compensation_id)
        for intent in pending:
            if self.abandoned or engine._closing:
                engine._forget(self)
                return
            act = engine.registry.get(intent.action)
            if act is None or act.compensation is None:
                self.deferred_on = f"action {intent.action}"
                self.executing.clear()
                self.finishing = False
                with self.lock:
                    self._maybe_finish()
                return
            ctx = CompensationContext(
                workflow_id=self.id,
                step_name=intent.step_name,
                state=json.loads(intent.state) if intent.state else None,
                undo_dir=undo_dir_for(engine.db, self.id),
            )
            inputs, outputs = json.loads(intent.inputs), json.loads(intent.outputs)
            error = None
            attempts = 0
            for attempts in range(1, engine.compensation_attempts + 1):
                try:
                    with self._running_action():
                        act.run_compensation(inputs, outputs, ctx)
                    error = None
                    break
                except Exception as exc:
                    error = format_error(exc)
                    if attempts < engine.compensation_attempts:
                        time.sleep(min(0.1 * 2 ** (attempts - 1), 2.0))
            status = "DONE" if error is None else "FAILED"
            now = now_iso()
            with self.lock:
                if self.abandoned:  # another execution of this workflow may own the record now
                    return
                try:
                    self._write(
                        [
                            lambda tx, i=intent, s=status, a=attempts, e=error: tx.finish_compensation(
                                i.compensation_id, s, a, e, now
                            ),
                            lambda tx, i=intent, s=status: tx.set_step_status(
                                self.id, i.step_name, "COMPENSATED" if s == "DONE" else "COMPENSATION_FAILED"
                            ),
                        ],
                        now=now,
                    )
                except _Abandon:
                    return
            if error:
                errors.append(f"{intent.step_name} ({intent.action}): {error}")
            if engine._events:
                engine._events.emit(ev.CompensationFinished(self.id, intent.step_name, status, error))
        previous_failures = [
            f"{c.step_name} ({c.action}): {c.error}" for c in self.store.compensations(self.id, status="FAILED")
        ]
        for e in previous_failures:
            if e not in errors:
                errors.append(e)
        failed_step = any(s == "FAILED" for s in self.state.values())
        final = "FAILED" if (failed_step or errors) else "ROLLED_BACK"
        error_text = self.failure
        if error_text is None:
            record = self.store.workflow(self.id)
            error_text = record.error.split("; compensation failed for ")[0] if record and record.error else None
        if errors:
            comp = "compensation failed for " + "; ".join(errors) + " (fix the cause, then roll back again)"
            error_text = f"{error_text}; {comp}" if error_text else comp
        now = now_iso()
        with self.lock:
            try:

                def op(tx: Tx) -> None:
                    tx.skip_unfinished_steps(self.id, "SKIPPED")
                    cancel_pending(tx, self.id, self.name, now, "system", "workflow rolled back")
                    tx.set_status(self.id, final, now, owner=self.owner, error=error_text, finished=True, release=True)

                self.store.write(op)
            except LeaseLostError:
                self.abandon("lease lost while finishing the rollback")
                return
            self._set_status(final, error=error_text)
            engine._forget(self)

    def _set_status(self, status: str, error: str | None = None) -> None:
        self.status = status
        engine = self.engine
        if status in ("PAUSED", "COMPLETED", "FAILED", "ROLLED_BACK", "CANCELLED"):
            engine._forget(self)
        if engine._events:
            engine._events.emit(ev.WorkflowStatusChanged(self.id, status, error))
        engine._notify()

    # -- requests from outside -----------------------------------------------------------------------------

    def request_stop(self, kind: str, by: str, *, record: bool = True) -> None:
        """Cancel or roll back: no new step starts; in-flight steps finish first.

        The request is recorded in the database first (unless it came from there),
        so that a crash before the in-flight steps finish does not forget it.
        """
        with self.lock:
            if self.abandoned or self.finishing:
                return
            if self.stopping in ("fail", "rollback") and kind == "cancel":
                return
            if record:
                try:
                    self._write([lambda tx: tx.request(self.id, kind)])
                except _Abandon:
                    return
            self.stopping = kind
            if kind == "cancel":
                self.engine._cancel_by[self.id] = by
            self.cancelled.set()
            for name in [n for n in self.executing if self.state[n] == "RETRYING"]:
                self.executing.discard(name)  # its back-off timer finds the workflow stopping
            self._maybe_finish()

    def on_decision(self, name: str, approved: bool, outputs: Any) -> None:
        """An approval of this (running, locally owned) workflow was decided."""
        with self.lock:
            if self.abandoned or self.state.get(name) != "WAITING":
                return
            if not approved:
                self.state[name] = "REJECTED"
                if self.stopping is None:
                    self.stopping = "rollback"
                    self._set_status("ROLLING_BACK")
                self._maybe_finish()
                return
            now = now_iso()
            self.state[name] = "COMPLETED"
            self.outputs[name] = {"outputs": outputs}
            for dep in self.plan.by_name[name].dependents:
                self.remaining[dep] -= 1
                if self.remaining[dep] == 0 and self.state[dep] == "PENDING":
                    heapq.heappush(self.ready, (self.plan.by_name[dep].index, dep))
            ops: list = []
            started = self._take_ready(ops, now)
            settled = self._settle_ops(ops, now)
            if ops:
                try:
                    self._write(ops, now=now)
                except _Abandon:
                    return
            if settled:
                self._set_status(settled)
        for n in started:
            self.engine._emit_started(self, n)
            self.engine._submit(self.drive, n)
