"""New workflows: the rows a start records and the execution that runs them.

``Engine.start``, a fork and a ``uses:`` step's child workflow build a new
workflow the same way: its inputs merged over the spec's defaults and
checked (:func:`merge_inputs`), the folder it runs in (:func:`workdir_for`),
and a :class:`NewRun` whose ``op`` the caller commits (in its own
transaction) before the engine launches it.

Works on the engine through :class:`~airt_nb.hosting.EngineHost`; imports no engine.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import SpecError
from .execution import Execution
from .expressions import ExpressionError, compile_value, find_references
from .limits import check_inputs, is_digit_limit
from .store.records import WorkflowRecord
from .timeutil import now_iso

if TYPE_CHECKING:
    from .actions import Registry
    from .hosting import EngineHost
    from .plan import Plan, PlannedStep
    from .store.writes import Tx

__all__ = ["NewRun", "check_step_inputs", "merge_inputs", "new_run", "workdir_for"]


@dataclass
class NewRun:
    """A workflow built but not yet running: commit ``op``, then launch it (``Engine._launch``)."""

    workflow_id: str
    ex: Execution
    op: Callable[[Tx], None]
    started: list[str]
    settled: str | None


def new_run(
    host: EngineHost,
    plan: Plan,
    merged: dict[str, Any],
    actor: str,
    folder: str,
    *,
    audit_rows: Sequence[dict[str, Any]] = (),
    parent: tuple[str, str] | None = None,
    detail: str | None = None,
) -> NewRun:
    """A new workflow, ready to be recorded (``op``, in the caller's transaction) and launched.

    ``parent`` is ``(workflow_id, step_name)`` for a child workflow.
    """
    name = plan.spec.name
    now = now_iso()
    workflow_id = uuid.uuid4().hex[:16]
    owner = host.owner_id
    record = WorkflowRecord(
        workflow_id=workflow_id,
        name=name,
        status="RUNNING",
        spec=plan.spec_json,
        spec_hash=plan.spec_hash,
        inputs=json.dumps(merged),
        created_at=now,
        updated_at=now,
        finished_at=None,
        error=None,
        started_by=actor,
        total_steps=len(plan.steps),
        done_steps=0,
        lease_owner=owner,
        lease_expires=None,
        requested=None,
        waiting_for=None,
        warnings=None,
        workdir=folder,
        session=host.session,
        home=owner,
        parent_id=parent[0] if parent else None,
        parent_step=parent[1] if parent else None,
    )
    ex = Execution(host, record, plan, None, inputs=merged)
    row = {
        "workflow_id": workflow_id,
        "name": name,
        "status": "RUNNING",
        "spec": record.spec,
        "spec_hash": record.spec_hash,
        "inputs": record.inputs,
        "created_at": now,
        "updated_at": now,
        "started_by": actor,
        "total_steps": record.total_steps,
        "lease_owner": owner,
        "workdir": folder,
        "session": host.session,
        "parent_id": record.parent_id,
        "parent_step": record.parent_step,
    }
    with ex.lock:
        ops, started, settled = ex.begin(now)
    step_rows = [(s.name, s.index, s.type, s.action) for s in plan.steps]
    began = dict.fromkeys(started, now)
    started_detail = detail or f"in {folder}"

    spec_stored = plan.spec_hash in host.stored_specs

    def op(tx: Tx) -> None:
        tx.insert_workflow(row, spec_stored=spec_stored)
        ids = tx.insert_steps(workflow_id, step_rows, began)
        for audit in audit_rows:
            tx.insert_audit({**audit, "workflow_id": workflow_id})
        tx.add_event(workflow_id, now, "started", actor, started_detail)
        for o in ops:
            o(tx)
        for s, step_id in zip(plan.steps, ids, strict=True):
            ex.step_id[s.name] = step_id

    return NewRun(workflow_id, ex, op, started, settled)


def workdir_for(workdir: str | os.PathLike[str] | None, workflow: str) -> str:
    """The absolute folder a workflow runs in: ``workdir`` (which must exist) or the current one."""
    if workdir is None:
        return os.getcwd()
    if not isinstance(workdir, str | os.PathLike):
        raise SpecError(
            [(None, "workdir", f"workdir= is a folder's path, not {type(workdir).__name__}")], workflow=workflow
        )
    try:
        folder = Path(workdir).expanduser()
        found = folder.is_dir()
    except (OSError, ValueError, TypeError):  # a NUL in it, a name too long for the system, bytes
        found = False
    if not found:
        shown = os.fspath(workdir)
        shown = shown if len(shown) <= 200 else f"{shown[:197]}..."
        raise SpecError(
            [(None, "workdir", f"{shown!r} is not an existing folder; create it or pass another")], workflow=workflow
        )
    return str(folder.resolve())


def check_step_inputs(plan: Plan, merged: Mapping[str, Any], registry: Registry) -> None:
    """Refuse a start whose workflow inputs do not fit the actions that take them (a
    :class:`~airt_nb.SpecError` naming the step, its input and the workflow input; nothing is written).

    Only what depends on the workflow's inputs alone is known before the run: an input that also
    looks up another step's outputs is checked when its step runs.
    """
    problems: list[tuple[int | None, str, str]] = []
    context = {"inputs": merged}
    for step in plan.steps:
        if not step.from_inputs or step.action is None:
            continue
        act = registry.get(step.action)
        if act is None:
            continue  # said when the step runs (the run waits for the action)
        values = dict(step.inputs)
        dynamic = set(_with_expressions(step))
        for key in step.from_inputs:
            resolve = compile_value(step.inputs[key])
            try:
                values[key] = resolve(context) if resolve is not None else step.inputs[key]
            except ExpressionError:
                continue  # a lookup inside an input that is not there: said when the step runs
            dynamic.discard(key)
        for message in act.check_inputs(values, dynamic=frozenset(dynamic)):
            key, _, text = message.partition(": ")
            names = sorted(
                {str(ref.parts[1]) for _, ref in find_references(step.inputs.get(key)) if len(ref.parts) > 1}
            )
            given = ", ".join(f"inputs.{n} = {_shown(merged.get(n))}" for n in names)
            problems.append(
                (
                    None,
                    f"steps[{step.index}].inputs.{key}",
                    f"{text} (from {given}); start it with a value that fits action {step.action!r}" if names else text,
                )
            )
    if problems:
        raise SpecError(problems, workflow=plan.spec.name)


def _with_expressions(step: PlannedStep) -> set[str]:
    return {k for k, v in step.inputs.items() if any(True for _ in find_references(v))}


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def merge_inputs(declared: Mapping[str, Any], given: Any, workflow: str) -> dict[str, Any]:
    """The spec's input defaults with ``given`` over them; refused unless every given name is declared
    and every value is plain JSON within the limits (:func:`airt_nb.limits.check_inputs`)."""
    given = check_inputs(given, workflow=workflow)
    merged = dict(declared)
    for key, value in given.items():
        if key not in merged:
            names = ", ".join(merged) or "none"
            raise SpecError(
                [(None, f"inputs.{key}", f"the workflow declares no input {key!r} (declared: {names})")],
                workflow=workflow,
            )
        merged[key] = value
    try:
        json.dumps(merged, allow_nan=False)
    except RecursionError:
        raise SpecError([(None, "inputs", "inputs are nested too deeply to be recorded")], workflow=workflow) from None
    except (TypeError, ValueError) as exc:
        field, why = "inputs", f"inputs must be JSON values ({exc})"
        for key, value in merged.items():  # name the input that cannot be recorded
            try:
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError) as one:
                field, why = f"inputs.{key}", _not_json(one)
                break
        raise SpecError([(None, field, why)], workflow=workflow) from None
    return merged


def _not_json(exc: BaseException) -> str:
    if is_digit_limit(exc):
        return "an integer of more than 4,300 digits cannot be recorded; pass it as text"
    return f"not a JSON value ({exc})"
