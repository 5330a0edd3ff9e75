"""Starting a fork: a finished workflow run again from one step (``Engine.fork``).

Which steps a fork keeps and the transaction that records it are
:mod:`airt_nb.forks`; this module checks the request as a start is checked
(spec, folder, inputs, policy), commits the fork and runs it on this engine.

Works on the engine through :class:`~airt_nb.hosting.EngineHost`; imports no engine.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import events as ev
from . import forks
from .errors import WorkflowStateError
from .execution import Execution
from .identity import current_user
from .limits import check_inputs
from .newruns import merge_inputs, workdir_for
from .spec import WorkflowSpec, load_spec
from .store.records import TERMINAL
from .subworkflows import check_uses

if TYPE_CHECKING:
    import os

    from .hosting import EngineHost

__all__ = ["fork"]


def fork(
    host: EngineHost,
    original_id: str,
    from_step: str,
    inputs: Mapping[str, Any] | None = None,
    *,
    spec: str | Mapping[str, Any] | WorkflowSpec | None = None,
    user: str | None = None,
    workdir: str | os.PathLike[str] | None = None,
    check_actions: bool = True,
) -> str:
    """Record and start the fork of the workflow ``original_id`` (see ``Engine.fork``); returns its id."""
    store = host.store
    record = store.workflow(original_id)
    assert record is not None
    if record.status not in TERMINAL:
        raise WorkflowStateError(
            f"workflow {original_id} ({record.name}) is {record.status}: only a finished run can be forked "
            "(wait for it, or cancel it first)",
            workflow_id=original_id,
            status=record.status,
        )
    old = host.plan_of(record)
    chosen_spec = old.spec if spec is None else spec
    plan = host.plan_for(load_spec(chosen_spec, registry=host.registry, check_actions=check_actions))
    folder = workdir_for(workdir if workdir is not None else record.workdir, plan.spec.name)
    if plan.has_children:
        check_uses(plan.spec, folder, host.registry)
    previous = {k: v for k, v in json.loads(record.inputs).items() if k in plan.spec.inputs}
    merged = merge_inputs(
        plan.spec.inputs, {**previous, **check_inputs(inputs, workflow=plan.spec.name)}, plan.spec.name
    )
    actor = current_user(user) if user else host.user
    audit_rows = host.check_start(actor, plan, merged, [])
    original = store.steps(original_id)
    chosen = forks.plan_fork(original, old, plan, from_step, merged, original_id)
    fork_id = uuid.uuid4().hex[:16]
    kept = set(chosen.kept)
    carried = [c for c in store.compensations(original_id, status="PENDING") if c.step_name in kept]
    row = {
        "workflow_id": fork_id, "name": plan.spec.name, "status": "RUNNING", "spec": plan.spec_json,
        "spec_hash": plan.spec_hash, "inputs": json.dumps(merged), "started_by": actor,
        "total_steps": len(plan.steps), "done_steps": len(kept), "lease_owner": host.owner_id, "workdir": folder,
        "session": host.session, "forked_from": original_id,
    }  # fmt: skip
    op = forks.fork_op(row, plan, original, chosen, carried, audit_rows)
    store.write(op)
    fresh = store.workflow(fork_id)
    assert fresh is not None
    ex = Execution(host, fresh, plan, store.steps(fork_id), inputs=merged)
    ex.done_written = ex.done
    if any(s.is_approval for s in plan.steps):
        ex.load_intents()
    with host.exec_lock:
        host.executions[fork_id] = ex
    if host.listening:
        host.emit(ev.WorkflowStatusChanged(fork_id, "RUNNING"))
    try:
        ex.resume()
    except Exception:
        ex.abandon("error while starting the fork; this engine tries again shortly", retry=True)
        raise
    return fork_id
