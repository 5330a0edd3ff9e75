"""Adoption: an engine takes up a workflow it just claimed and carries it on from its checkpoints.

A workflow comes to an engine by ``Engine.resume``, by a recovery sweep
(:mod:`airt_nb.recovery`), after a decision or a child's end that sends it
here, or when an execution stopped by an error is rebuilt
(:mod:`airt_nb.housekeeping`).  :func:`adopt` rebuilds its execution from
the database and continues it on a worker; a workflow whose action is not
defined in this process, or whose folder is not on this machine, is given
back and waits for them.

Works on the engine through :class:`~airt_nb.hosting.EngineHost`; imports no engine.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import WorkflowStateError
from .execution import Execution
from .ownership import describe_owner
from .stopping import live_owner
from .timeutil import now_iso

if TYPE_CHECKING:
    from .actions import Registry
    from .hosting import EngineHost
    from .store.records import WorkflowRecord
    from .store.writes import Tx

__all__ = ["adopt", "adopt_many", "apply_decisions", "code_changes", "resume", "resume_execution"]

log = logging.getLogger("airt_nb")


def resume(host: EngineHost, workflow_id: str) -> str:
    """Take over a RUNNING / ROLLING_BACK workflow that no live engine runs (see ``Engine.resume``)."""
    if host.runs_here(workflow_id):
        return "already running here"
    store = host.store
    owner = host.owner_id
    record = store.workflow(workflow_id)
    assert record is not None
    if record.status == "PAUSED":
        raise WorkflowStateError(
            f"workflow {workflow_id} ({record.name}) is PAUSED for an approval: approve or reject it",
            workflow_id=workflow_id,
            status=record.status,
        )
    if record.status not in ("RUNNING", "ROLLING_BACK"):
        raise WorkflowStateError(
            f"workflow {workflow_id} ({record.name}) is {record.status}: there is nothing to resume",
            workflow_id=workflow_id,
            status=record.status,
        )
    holder = record.lease_owner
    if holder and holder != owner and live_owner(host, holder):
        return "owned by another live engine"
    now = store.now()
    dead = [holder] if holder and holder != owner else []
    got = store.write(lambda tx: tx.claim(owner, [workflow_id], dead, now))
    if got:
        adopt(host, workflow_id, lost_from=describe_owner(holder) if holder else None)
        return "resumed"
    if host.runs_here(workflow_id):
        return "resumed"  # this engine's housekeeping took it up meanwhile
    return "owned by another live engine"


def adopt_many(host: EngineHost, adopted: list[tuple[str, str | None]]) -> dict[str, str | Exception | None]:
    """Adopt workflows this engine just claimed, ``(workflow_id, lost_from)``, reading them in two
    queries; returns, by id, what each waits for (or the error that stopped it)."""
    ids = [w for w, _ in adopted]
    records = host.store.workflows_by_id(ids)
    steps = host.store.steps_by_workflow(ids)
    out: dict[str, str | Exception | None] = {}
    for workflow_id, lost_from in adopted:
        try:
            out[workflow_id] = adopt(
                host, workflow_id, lost_from=lost_from, record=records.get(workflow_id), steps=steps.get(workflow_id)
            )
        except Exception as exc:  # one bad workflow never stops the others
            log.exception("workflow %s could not be resumed", workflow_id)
            out[workflow_id] = exc
    return out


def adopt(
    host: EngineHost,
    workflow_id: str,
    *,
    lost_from: str | None = None,
    record: WorkflowRecord | None = None,
    steps: list[Any] | None = None,
) -> str | None:
    """Build the execution of a workflow this engine just claimed and continue it.

    Returns what it has to wait for (a missing action's name, or a folder), if anything.
    """
    store = host.store
    owner = host.owner_id
    if record is None:
        record = store.workflow(workflow_id)
    if record is None or record.lease_owner != owner:
        return None
    if record.workdir and not os.path.isdir(record.workdir):
        what = f"folder {record.workdir}"
        store.write(lambda tx: tx.release(workflow_id, owner, waiting_for=what))
        host.waiting[workflow_id] = what
        log.info("workflow %s: waiting for its folder %s, which is not on this machine", workflow_id, record.workdir)
        return what
    plan = host.plan_of(record)
    if steps is None:
        steps = store.steps(workflow_id)
    ex = Execution(host, record, plan, steps, inputs=json.loads(record.inputs))
    if record.status == "RUNNING" and record.requested in ("cancel", "rollback"):
        ex.stopping = record.requested  # asked for before this engine took the workflow over
    if any(s.is_approval for s in plan.steps) or record.status == "ROLLING_BACK" or ex.stopping:
        ex.load_intents()
    missing = ex.first_missing_action()
    if missing:
        store.write(lambda tx: tx.release(workflow_id, owner, waiting_for=f"action {missing}"))
        host.waiting[workflow_id] = f"action {missing}"
        log.info("workflow %s: waiting for action %s to be defined", workflow_id, missing)
        return missing
    warnings = code_changes(host.registry, steps)
    now = now_iso()
    here = f"{describe_owner(owner)} in {record.workdir or os.getcwd()}"
    user = host.user

    def note(tx: Tx) -> None:  # written with the resume's first transaction
        for w in warnings:
            tx.add_warning(workflow_id, w)
        tx.add_event(workflow_id, now, "resumed", user, here)

    # The progress counter a lost engine had not written yet follows as any run's does: with the
    # progress of running workflows (housekeeping, every second), or when the run settles.
    for w in warnings:
        log.warning("workflow %s: %s", workflow_id, w)
    if lost_from:  # what an operator looks for after a machine died: who took what over
        # Recorded as running, or the one ready step whose start the lost engine implied (see execution).
        in_flight = sorted(ex.started_before)
        if ex.inferred and ex.inferred not in in_flight:
            in_flight.append(ex.inferred)
        log.info(
            "workflow %s (%s): taken over from %s, which is gone%s",
            workflow_id,
            record.name,
            lost_from,
            f"; {', '.join(in_flight)} may have been in flight: it runs again with the same idempotency key"
            if in_flight
            else "",
        )
    with host.exec_lock:
        old = host.executions.get(workflow_id)
        if old is not None and not old.abandoned:
            return None
        host.executions[workflow_id] = ex
    host.waiting.pop(workflow_id, None)
    # On a worker: workflows adopted together resume at once, and their first transactions share commits.
    host.submit(resume_execution, ex, lost_from, note)
    return None


def resume_execution(ex: Execution, lost_from: str | None, note: Callable[[Tx], None]) -> None:
    """Continue an adopted execution (on a worker, which then runs its first step); an error leaves it
    to be rebuilt shortly."""
    try:
        name = ex.resume(lost_from=lost_from, first=[note], keep=True)
    except Exception:
        log.exception("workflow %s could not be resumed", ex.id)
        ex.abandon("error while resuming; this engine tries again shortly", retry=True)
        return
    if name is not None:
        ex.host.run_guarded(ex.drive, name)


def code_changes(registry: Registry, steps: list[Any]) -> list[str]:
    """Warnings for steps whose action's code changed since they ran."""
    warnings = []
    for r in steps:
        if not r.fingerprint or not r.action:
            continue
        act = registry.get(r.action)
        if act is not None and act.fingerprint != r.fingerprint:
            warnings.append(
                f"the code of action {r.action!r} changed since step {r.step_name!r} ran; "
                "the workflow continues with the new code"
            )
    return warnings


def apply_decisions(host: EngineHost, ex: Execution) -> None:
    """Hand ``ex`` the decisions (and failed waits) recorded for its waiting steps."""
    for r in host.store.steps(ex.id):
        if ex.state.get(r.step_name) == "WAITING" and r.status in ("COMPLETED", "REJECTED", "PENDING"):
            # PENDING: a gated step asked again and approved (see gating); it runs now.
            outputs = json.loads(r.outputs) if r.outputs else None
            ex.on_decision(r.step_name, r.status != "REJECTED", outputs)
        elif ex.state.get(r.step_name) == "WAITING" and r.status == "FAILED":  # an event timed out, a child failed
            record = host.store.workflow(ex.id)
            ex.on_wait_failed(r.step_name, (record.error if record else None) or r.error or "failed")
