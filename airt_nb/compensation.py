"""How an execution ends when it does not complete: cancelling, and undoing completed steps.

Compensation runs the stored intents (action name + the step's inputs and
outputs), newest completion first, each outside any transaction, and records
each outcome (``DONE`` or ``FAILED``, with the compensation's note when it
gave one, e.g. "target changed since the step") in its own transaction.  The
workflow then settles ``ROLLED_BACK``, or ``FAILED`` when a step failed or an
undo did (a later rollback retries the failed undos).

Imports no engine: works on an :class:`~airt_nb.execution.Execution` and its host.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import events as ev
from . import subworkflows
from .actions import CompensationContext
from .decisions import cancel_pending
from .failures import Abandon, format_error
from .store.base import LeaseLostError
from .timeutil import now_iso

if TYPE_CHECKING:
    from .execution import Execution
    from .store.writes import Tx

__all__ = ["compensate", "finish_cancel"]


def _who_asked(ex: Execution, kind: str) -> str | None:
    """Who asked for the cancel or rollback: known here, or recorded by the engine that was asked."""
    if ex.stop_by:
        return ex.stop_by
    for event in reversed(ex.store.history(ex.id)):
        if event.event == f"{kind}_requested":
            return event.by
    return None


def _tell_parent(ex: Execution, status: str, now: str, error: str | None = None) -> Callable[[Tx], Any] | None:
    """The op that ends the parent's waiting step, for a child workflow (see :mod:`.subworkflows`)."""
    if not ex.parent_id:
        return None
    return subworkflows.parent_op(ex.host, ex, status, now, error=error, result=ex.parent_result)


def finish_cancel(ex: Execution) -> None:
    """Settle a cancelled workflow: nothing more starts, nothing is undone (its running children are
    cancelled too)."""
    if any(s.is_child for s in ex.plan.steps):
        subworkflows.stop_running_children(ex, "cancel")
    now = now_iso()
    by = _who_asked(ex, "cancel") or "system"
    tell_parent = _tell_parent(ex, "CANCELLED", now)

    def op(tx: Tx) -> None:
        tx.skip_unfinished_steps(ex.id, "CANCELLED")
        cancel_pending(tx, ex.id, ex.name, now, by, "workflow cancelled")
        tx.set_status(ex.id, "CANCELLED", now, owner=ex.owner, finished=True, release=True, done=ex.done)
        tx.add_event(ex.id, now, "cancelled", by)
        if tell_parent is not None:
            tell_parent(tx)

    try:
        ex.store.write(op)
    except LeaseLostError:
        ex.abandon("lease lost while cancelling")
        return
    ex.set_status("CANCELLED")


def compensate(ex: Execution) -> None:
    """Undo completed steps, newest completion first, then settle the workflow."""
    host = ex.host
    errors: list[str] = []
    with ex.lock:
        if ex.abandoned:
            return
        if ex.status != "ROLLING_BACK":
            now = now_iso()
            ops: list[Callable[[Tx], Any]] = []
            ex.write_implied(ops)
            ops.append(lambda tx: tx.set_status(ex.id, "ROLLING_BACK", now, owner=ex.owner))
            try:
                ex.write(ops)
            except Abandon:
                return
            ex.set_status("ROLLING_BACK")
    if any(s.is_child for s in ex.plan.steps):
        subworkflows.stop_running_children(ex, "rollback")  # the newest work: undone first
        if host.closing:
            host.released(ex)
            return
    pending = sorted(ex.store.compensations(ex.id, status="PENDING"), key=lambda c: -c.compensation_id)
    for intent in pending:
        if ex.abandoned or host.closing:
            host.released(ex)
            return
        if intent.action == subworkflows.CHILD_ACTION:
            error = subworkflows.undo_child(ex, intent)
            if host.closing:  # stopped waiting for the child because this engine closes: not an outcome
                host.released(ex)
                return
            if not _record_undo(ex, intent, error, None, 1, errors):
                return
            continue
        act = host.registry.get(intent.action)
        if act is None or act.compensation is None:
            ex.deferred_on = f"action {intent.action}"
            ex.executing.clear()
            ex.finishing = False
            with ex.lock:
                ex.maybe_finish()
            return
        done_by = intent.origin or ex.id  # a fork undoes what the original did with the original's copies
        ctx = CompensationContext(
            workflow_id=done_by,
            step_name=intent.step_name,
            state=json.loads(intent.state) if intent.state else None,
            workdir=ex.workdir,
            undo_dir=host.undo_dir(done_by),
        )
        inputs, outputs = json.loads(intent.inputs), json.loads(intent.outputs)
        error = note = None
        attempts = 0
        for attempts in range(1, host.compensation_attempts + 1):
            try:
                with ex.running_action():
                    note = act.run_compensation(inputs, outputs, ctx, run_async=lambda c: host.run_async(c, ex))
                error = None
                break
            except Exception as exc:
                error = format_error(exc)
                if attempts < host.compensation_attempts:
                    time.sleep(min(0.1 * 2 ** (attempts - 1), 2.0))
        if not _record_undo(ex, intent, error, note, attempts, errors):
            return
    for c in ex.store.compensations(ex.id, status="FAILED"):
        earlier = f"{c.step_name} ({c.action}): {c.error}"
        if earlier not in errors:
            errors.append(earlier)
    failed_step = any(s == "FAILED" for s in ex.state.values())
    final = "FAILED" if (failed_step or errors) else "ROLLED_BACK"
    error_text = ex.failure
    if error_text is None:
        record = ex.store.workflow(ex.id)
        error_text = record.error.split("; compensation failed for ")[0] if record and record.error else None
    if errors:
        comp = "compensation failed for " + "; ".join(errors) + " (fix the cause, then roll back again)"
        error_text = f"{error_text}; {comp}" if error_text else comp
    by = _who_asked(ex, "rollback") if ex.stopping == "rollback" else None
    now = now_iso()
    tell_parent = _tell_parent(ex, final, now, error_text)
    with ex.lock:

        def op(tx: Tx) -> None:
            tx.skip_unfinished_steps(ex.id, "SKIPPED")
            cancel_pending(tx, ex.id, ex.name, now, "system", "workflow rolled back")
            tx.set_status(
                ex.id, final, now, owner=ex.owner, error=error_text, finished=True, release=True, done=ex.done
            )
            if final == "ROLLED_BACK":
                tx.add_event(ex.id, now, "rolled_back", by, error_text)
            else:  # the failure itself is in the history already, from when the rollback began
                tx.add_event(
                    ex.id, now, "failed", by, f"finished after its rollback{': ' + error_text if error_text else ''}"
                )
            if tell_parent is not None:
                tell_parent(tx)

        try:
            ex.store.write(op)
        except LeaseLostError:
            ex.abandon("lease lost while finishing the rollback")
            return
        ex.set_status(final, error=error_text)


def _record_undo(
    ex: Execution, intent: Any, error: str | None, note: str | None, attempts: int, errors: list[str]
) -> bool:
    """Record one compensation's outcome in its own transaction; False if the workflow was lost."""
    status = "DONE" if error is None else "FAILED"
    now = now_iso()
    comp_id, step_name = intent.compensation_id, intent.step_name
    step_status = "COMPENSATED" if status == "DONE" else "COMPENSATION_FAILED"
    with ex.lock:
        if ex.abandoned:  # another execution of this workflow may own the record now
            return False
        try:
            done = functools.partial(_finished, ids=(comp_id, ex.id, step_name), outcome=(status, step_status))
            ex.write([functools.partial(done, attempts=attempts, error=error, note=note, now=now)], now=now)
        except Abandon:
            return False
    if error:
        errors.append(f"{intent.step_name} ({intent.action}): {error}")
    if ex.host.listening:
        ex.host.emit(ev.CompensationFinished(ex.id, intent.step_name, status, error))
    return True


def _finished(
    tx: Tx,
    *,
    ids: tuple[int, str, str],
    outcome: tuple[str, str],
    attempts: int,
    error: str | None,
    note: str | None,
    now: str,
) -> None:
    comp_id, workflow_id, step_name = ids
    status, step_status = outcome
    tx.finish_compensation(comp_id, status, attempts, error, now, note)
    tx.set_step_status(workflow_id, step_name, step_status)
