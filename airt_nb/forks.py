"""Forking a run: which steps a fork keeps, and which run again.

``Engine.fork(workflow_id, from_step=...)`` makes a new workflow (``forked_from``
names the original) with the original's spec, or an edited one.  A step of
the fork *keeps* the original's record (status, attempt, inputs, outputs),
and does not run, when all of these hold:

* it is not ``from_step`` nor downstream of it (nor of a step that runs);
* it completed in the original (a step the original's rollback undid, or
  that never ran, runs again);
* its definition is the same in both specs;
* its inputs, resolved with the fork's inputs and the kept outputs, are the
  ones it was run with (``${{ workflow.id }}`` read as the original's id).

Everything else runs with today's code, as in any run.

What a kept step did belongs to the fork from then on: the original's
pending compensation intents of kept steps are *carried* into the fork
(marked ``CARRIED`` in the original), so that rolling the fork back undoes
them, once, and rolling the original back no longer does.  A carried
intent keeps its ``origin`` (the workflow whose step did it), whose undo
copies it uses.

Functions over records and plans (and the op that records a fork); imports no engine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import SpecError
from .expressions import ExpressionError
from .suggest import did_you_mean
from .timeutil import now_iso

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from .plan import Plan
    from .store.records import CompensationRecord, StepRecord
    from .store.writes import Tx

__all__ = ["ForkPlan", "fork_op", "plan_fork"]


@dataclass
class ForkPlan:
    """What a fork does with each step: ``kept`` (the original's record carried) or ``rerun``,
    with ``why`` a step that is not downstream of ``from_step`` runs again."""

    from_step: str
    kept: list[str] = field(default_factory=list)
    rerun: list[str] = field(default_factory=list)
    why: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """One line for the run's history."""
        kept = ", ".join(self.kept) or "none"
        again = "; ".join(f"{name} ({why})" for name, why in self.why.items())
        return f"from step {self.from_step}; kept: {kept}" + (f"; runs again too: {again}" if again else "")


def _same_definition(old: Plan, new: Plan, name: str) -> bool:
    a, b = old.spec.steps[old.by_name[name].index], new.spec.steps[new.by_name[name].index]
    return (
        a.model_dump(by_alias=True, exclude={"depends_on", "description"})
        == b.model_dump(by_alias=True, exclude={"depends_on", "description"})
        and old.by_name[name].deps == new.by_name[name].deps
    )


def plan_fork(
    original: list[StepRecord],
    old: Plan,
    new: Plan,
    from_step: str,
    inputs: dict[str, Any],
    original_id: str,
) -> ForkPlan:
    """Which steps of ``new`` keep the ``original`` run's records (see the module docstring).

    Raises :class:`~airt_nb.SpecError` if ``new`` has no step ``from_step``.
    """
    if from_step not in new.by_name:
        hint = did_you_mean(from_step, list(new.by_name))
        raise SpecError(
            [(None, "from_step", f"no step named {from_step!r}; {hint + ' ' if hint else ''}"
              f"steps are: {', '.join(new.by_name)}")],
            workflow=new.spec.name,
        )  # fmt: skip
    records = {r.step_name: r for r in original}
    result = ForkPlan(from_step)
    runs: set[str] = set()
    outputs: dict[str, dict[str, Any]] = {}
    context = {"inputs": inputs, "steps": outputs, "workflow": {"id": original_id, "name": new.spec.name}}
    for step in new.steps_in_dependency_order():
        name = step.name
        record = records.get(name)
        why = None
        if name == from_step:
            why = "from here"
        elif any(d in runs for d in step.deps):
            why = "downstream"
        elif record is None or record.status != "COMPLETED":
            if record is None:
                why = "new step"
            elif record.status in ("COMPENSATED", "COMPENSATION_FAILED"):
                why = "undone by the original's rollback"  # it completed, then was undone: not "not completed"
            else:
                why = "not completed in the original"
        elif old.by_name.get(name) is None or not _same_definition(old, new, name):
            why = "changed"
        elif step.resolver is not None and not _same_inputs(step, context, record):
            why = "inputs changed"
        if why is None:
            result.kept.append(name)
            outputs[name] = {"outputs": json.loads(record.outputs) if record and record.outputs else None}
            continue
        runs.add(name)
        if why not in ("from here", "downstream"):
            result.why[name] = why
    order = {s.name: s.index for s in new.steps}
    result.kept.sort(key=order.__getitem__)
    result.rerun = sorted(runs, key=order.__getitem__)
    return result


def _same_inputs(step: Any, context: dict[str, Any], record: StepRecord) -> bool:
    try:
        resolved = step.resolve_inputs(context)
    except ExpressionError:
        return False
    recorded = json.loads(record.inputs) if record.inputs else {}
    return bool(json.loads(json.dumps(resolved, default=str)) == recorded)


def fork_op(
    row: dict[str, Any],
    plan: Plan,
    original: list[StepRecord],
    chosen: ForkPlan,
    carried: Sequence[CompensationRecord],
    audit_rows: Sequence[dict[str, Any]],
) -> Callable[[Tx], None]:
    """The one transaction that records a fork: its row (``row``: the workflow's columns, running), its
    steps (the kept ones with the original's records), the intents it carries, and both histories."""
    fork_id, original_id = row["workflow_id"], row["forked_from"]
    now = now_iso()
    row = {**row, "created_at": now, "updated_at": now}
    step_rows = [(s.name, s.index, s.type, s.action) for s in plan.steps]
    by_name = {r.step_name: r for r in original}

    def op(tx: Tx) -> None:
        tx.insert_workflow(row)
        tx.insert_steps(fork_id, step_rows)
        for name in chosen.kept:
            r = by_name[name]
            tx.carry_step(
                fork_id,
                name,
                (r.status, r.attempt, r.started_at, r.finished_at, r.inputs, r.outputs, r.fingerprint, r.state),
            )
        for c in carried:
            tx.carry_compensation(
                fork_id, (c.step_name, c.action, c.inputs, c.outputs, c.state), c.origin or original_id, now
            )
            tx.mark_carried(c.compensation_id, f"carried to fork {fork_id}", now)
        for audit in audit_rows:
            tx.insert_audit({**audit, "workflow_id": fork_id})
        tx.add_event(fork_id, now, "forked", row["started_by"], f"fork of {original_id} {chosen.describe()}")
        tx.add_event(original_id, now, "forked", row["started_by"], f"forked as {fork_id} from step {chosen.from_step}")

    return op
