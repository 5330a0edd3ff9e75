"""Sub-workflows: ``type: workflow`` steps, which run the spec in ``uses:`` as a child workflow.

The child is a workflow of its own (its row names ``parent_id`` and
``parent_step``), started in the transaction that makes the parent's step
``WAITING``, so that a crash never leaves a step without its child nor
starts a second one (a unique index keeps one child per step).  The parent
stays ``RUNNING`` while its child runs (a child paused for an approval
shows in the inbox and nested in the parent's panel).

When the child settles, the same transaction ends the parent's step:

* ``COMPLETED``: the step completes with the child's outputs
  (``{step_name: outputs}``), and the parent records a compensation intent
  whose undo is the child's rollback;
* ``FAILED`` (the child rolled itself back first), ``ROLLED_BACK`` or
  ``CANCELLED``: the step fails and the parent rolls back.

Rolling a parent back rolls back its children: those still running first
(newest work first), then each completed one where its intent comes in the
saga's order.  A cancelled parent cancels its running children.

The child's spec file is read (and checked with its own children, for
cycles too) when the parent starts, and read again when the step runs: the
child runs today's file, like an action runs today's code.

Talks to the engine through the execution's host; imports no engine.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import AirtError, SpecError
from .limits import MAX_SPEC_CHARS
from .spec import load_spec
from .store.records import TERMINAL
from .timeutil import now_iso
from .wait_events import continue_after_wait

if TYPE_CHECKING:
    from .actions import Registry
    from .execution import Execution
    from .plan import PlannedStep
    from .spec import WorkflowSpec
    from .store.records import CompensationRecord, WorkflowRecord
    from .store.writes import Tx

__all__ = ["CHILD_ACTION", "MAX_NESTING", "check_uses", "parent_op", "read_child", "run_child_step"]

log = logging.getLogger("airt_nb")

CHILD_ACTION = "workflow"  # the action of a compensation intent that rolls a child back
MAX_NESTING = 10  # workflows within workflows, at most


def child_path(uses: str, workdir: str | None) -> Path:
    """Where ``uses`` points: relative to the workflow's working directory."""
    path = Path(uses).expanduser()
    return path if path.is_absolute() else Path(workdir or os.getcwd()) / path


def read_child(uses: str, workdir: str | None, registry: Registry, *, where: str = "uses") -> WorkflowSpec:
    """The child spec ``uses`` names, validated; :class:`~airt_nb.SpecError` naming ``where`` otherwise."""
    path = child_path(uses, workdir)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read(MAX_SPEC_CHARS + 1)
    except OSError as exc:
        raise SpecError(
            [(None, where, f"cannot read the child workflow {path}: {exc.strerror or exc}; check the path "
              "(relative to the working directory)")]
        ) from None  # fmt: skip
    except UnicodeDecodeError:
        raise SpecError([(None, where, f"the child workflow {path} is not UTF-8 text")]) from None
    try:
        return load_spec(text, registry=registry)
    except SpecError as exc:
        raise SpecError(
            [(None, where, f"{path}: {f'line {line}, ' if line else ''}{field or '(top level)'}: {message}")
             for line, field, message in exc.problems]
        ) from None  # fmt: skip


def check_uses(spec: WorkflowSpec, workdir: str | None, registry: Registry, *, _chain: tuple[str, ...] = ()) -> None:
    """Check every child spec of ``spec`` (and theirs): readable, valid, given only inputs it declares,
    no workflow using itself, at most :data:`MAX_NESTING` deep.  Raises :class:`~airt_nb.SpecError`."""
    problems: list[tuple[int | None, str, str]] = []
    for i, step in enumerate(spec.steps):
        if step.type != "workflow" or not step.uses:
            continue
        where = f"steps[{i}].uses"
        path = str(child_path(step.uses, workdir).resolve())
        if path in _chain:
            problems.append((None, where, f"{path} uses itself (through {' -> '.join(_chain)}); remove the cycle"))
            continue
        if len(_chain) >= MAX_NESTING:
            problems.append((None, where, f"workflows nest more than {MAX_NESTING} deep; flatten them"))
            continue
        try:
            child = read_child(step.uses, workdir, registry, where=where)
            for key in step.inputs:
                if key not in child.inputs:
                    declared = ", ".join(child.inputs) or "none"
                    problems.append(
                        (None, f"steps[{i}].inputs.{key}", f"{path} declares no input {key!r} (declared: {declared})")
                    )
            check_uses(child, workdir, registry, _chain=(*_chain, path))
        except SpecError as exc:
            problems.extend(exc.problems)
    if problems:
        raise SpecError(problems, workflow=spec.name)


# -- in the parent: running the step ----------------------------------------------------------------


def run_child_step(ex: Execution, name: str, step: PlannedStep, inputs: dict[str, Any]) -> None:
    """Start the child of step ``name`` (or find the one started before a crash); the step then waits."""
    host = ex.host
    existing = ex.store.child_of(ex.id, name)
    child = None
    if existing is None:
        try:
            child = host.prepare_child(ex, step, inputs)
        except AirtError as exc:
            ex.fail_step(name, inputs, " ".join(str(exc).split()))
            return
    now = now_iso()
    workflow_id, in_json = ex.id, json.dumps(inputs, default=str)
    with ex.lock:
        if ex.abandoned:
            return
        ops: list[Callable[[Tx], Any]] = [
            lambda tx: tx.wait_step(workflow_id, name, now),
            lambda tx: tx.set_step_inputs(workflow_id, name, in_json),
        ]
        if child is not None:
            ops.append(child.op)
            ops.append(lambda tx: tx.add_event(workflow_id, now, "child_started", None, child.workflow_id))
        ex.state[name] = "WAITING"
        ex.executing.discard(name)
        ex.implied.discard(name)
        from .failures import Abandon

        try:
            ex.write(ops, now=now)
        except Abandon:
            return
        if ex.stopping is None and not ex.executing and not ex.ready:
            ex.maybe_finish()
    if child is not None:
        host.launch_child(child)
    elif existing is not None and existing.status in TERMINAL:
        host.submit(host.resettle_child, existing.workflow_id)  # it ended before its parent's step recorded so


# -- in the child: telling the parent ------------------------------------------------------------------


def child_outputs(ex: Execution) -> dict[str, Any]:
    """What a completed child gives its parent's step: ``{step_name: outputs}``."""
    return {name: value.get("outputs") for name, value in ex.outputs.items()}


def parent_op(
    host: Any,
    child: WorkflowRecord | Execution,
    status: str,
    now: str,
    *,
    outputs: Any = None,
    error: str | None = None,
    result: dict[str, Any],
) -> Callable[[Tx], None]:
    """An op for the child's settling transaction: end the parent's waiting step as ``status`` says.

    Fills ``result`` (``workflow_id``, ``step_name``, ``outputs``, ``error``, ``outcome``) for the
    host to act on after the commit (see :func:`airt_nb.wait_events.continue_after_wait`).
    """
    child_id = child.workflow_id if hasattr(child, "workflow_id") else child.id
    parent_id, step_name, child_name = child.parent_id, child.parent_step, child.name
    assert parent_id is not None
    assert step_name is not None
    out_json = json.dumps(outputs, default=str, allow_nan=False) if status == "COMPLETED" else None
    what = {"FAILED": "failed", "ROLLED_BACK": "was rolled back", "CANCELLED": "was cancelled"}.get(status, status)

    def op(tx: Tx) -> None:
        result.clear()
        parent = tx.get_workflow(parent_id)
        if parent is None or parent.status not in ("PAUSED", "RUNNING") or parent.requested in ("cancel", "rollback"):
            return  # the parent stops (and stops its children itself)
        if tx.step_status(parent_id, step_name) != "WAITING":
            return
        if status == "COMPLETED":
            tx.end_wait(parent_id, step_name, "COMPLETED", now, out_json, None)
            tx.bump_done(parent_id)
            intent = json.dumps({"workflow_id": child_id})
            tx.insert_compensation(parent_id, step_name, CHILD_ACTION, intent, out_json or "null", None, now)
            tx.add_event(parent_id, now, "child_completed", None, child_id)
            outcome = continue_after_wait(tx, host, parent, now)
            result.update(outputs=outputs, error=None)
        else:
            text = f"child workflow {child_id} ({child_name}) {what}" + (f": {error}" if error else "")
            tx.end_wait(parent_id, step_name, "FAILED", now, None, text)
            tx.add_event(parent_id, now, "child_failed", None, child_id)
            failure = f"step {step_name!r} failed: {text}"
            outcome = continue_after_wait(tx, host, parent, now, error=failure)
            result.update(outputs=None, error=failure)
        result.update(workflow_id=parent_id, step_name=step_name, outcome=outcome)

    return op


# -- in the parent: stopping and undoing children ---------------------------------------------------------


def stop_running_children(ex: Execution, kind: str) -> None:
    """Cancel (``kind="cancel"``) or roll back the parent's children that have not settled.

    A rollback also rolls back cancelled children (they did work and undid nothing) and waits for
    each one: the children are the newest work, undone before the parent's own steps.
    """
    host = ex.host
    for child in reversed(ex.store.children(ex.id)):
        if kind == "cancel":
            if child.status in ("RUNNING", "PAUSED", "PENDING"):
                host.stop_child(child.workflow_id, "cancel", ex.id)
            continue
        if child.status in ("RUNNING", "PAUSED", "PENDING", "ROLLING_BACK", "CANCELLED"):
            host.stop_child(child.workflow_id, "rollback", ex.id)
            host.wait_child(child.workflow_id)
            if host.closing:
                return


def undo_child(ex: Execution, intent: CompensationRecord) -> str | None:
    """Roll back the completed child an intent names and wait for it; returns an error, or None."""
    host = ex.host
    child_id = json.loads(intent.inputs)["workflow_id"]
    record = ex.store.workflow(child_id)
    if record is None:
        return f"child workflow {child_id} is no longer in the database"
    if record.status != "ROLLED_BACK":
        host.stop_child(child_id, "rollback", ex.id)
        status = host.wait_child(child_id)
        if host.closing:
            return None  # not an outcome: the rollback goes on when an engine opens again
        if status != "ROLLED_BACK":
            record = ex.store.workflow(child_id)
            why = f": {record.error}" if record is not None and record.error else ""
            return f"child workflow {child_id} ended {status}{why}"
    return None


def resettle(host: Any, child_id: str) -> dict[str, Any]:
    """Tell the parent of a child that settled before its parent's step said it waited (after a crash)."""
    record = host.store.workflow(child_id)
    result: dict[str, Any] = {}
    if record is None or record.parent_id is None or record.status not in TERMINAL:
        return result
    outputs = None
    if record.status == "COMPLETED":
        outputs = {
            s.step_name: json.loads(s.outputs) if s.outputs else None
            for s in host.store.steps(child_id)
            if s.status == "COMPLETED"
        }
    op = parent_op(host, record, record.status, now_iso(), outputs=outputs, error=record.error, result=result)
    host.store.write(op)
    return result
