"""Approval requests, and the check that a gated step runs exactly what was approved.

An approval *gates* its dependents up to the next approval (``PlannedStep.gated``,
nearest first, at most :data:`~airt_nb.limits.MAX_PREVIEW_STEPS`).  When the
approval is asked for, :func:`request_row` records with it what each of those
steps will do (:func:`airt_nb.preview.step_preview`: resolved inputs, a diff for
``file.write``...) and a hash of each.  Inputs that look up steps not run yet
(or the approval's own values) stay ``${{ }}`` text in the preview, and stay
so when the hash is computed again.

Just before a gated step runs, :func:`changed` computes its entry again the
same way and compares the hash with the one of the latest approval that
covered it.  If they differ (the file was edited since the approver looked),
the step does not run on that decision: :func:`reask_row` builds a new
request for it, with the new preview and the reason, under the rules
(approvers, ``min_approvals``...) of the approval that gated it.  Only steps
that an approval gates ever pay for this (``PlannedStep.gates``).

Imports no engine: works on an :class:`~airt_nb.execution.Execution`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .expressions import ExpressionError, compile_value, find_references
from .preview import preview_hash, step_preview, what_changed
from .timeutil import iso

if TYPE_CHECKING:
    from .execution import Execution
    from .plan import PlannedStep
    from .store.records import ApprovalRecord

__all__ = ["changed", "gate_entries", "reask_row", "request_row"]


def _partial(
    step: PlannedStep, context: Mapping[str, Any], known: set[str]
) -> tuple[dict[str, Any], list[str], set[str], set[str]]:
    """``(inputs, unknown lookups, unknown steps, unknown keys)``: the step's inputs resolved as far as
    ``known`` steps allow; an input that looks up another step keeps its ``${{ }}`` text."""
    inputs: dict[str, Any] = {}
    lookups: list[str] = []
    steps: set[str] = set()
    keys: set[str] = set()
    for key, value in step.inputs.items():
        missing = [ref for _, ref in find_references(value) if ref.step is not None and ref.step not in known]
        if missing:
            inputs[key] = value
            keys.add(key)
            lookups += [ref.text for ref in missing]
            steps.update(str(ref.step) for ref in missing)
            continue
        resolver = compile_value(value)
        try:
            inputs[key] = resolver(context) if resolver else value
        except ExpressionError as exc:
            inputs[key] = value
            keys.add(key)
            lookups.append(str(exc))
    return inputs, lookups, steps, keys


def _entry(ex: Execution, step: PlannedStep, known: set[str]) -> dict[str, Any]:
    inputs, lookups, steps, keys = _partial(step, ex.context, known)
    entry = step_preview(
        step.name,
        step.action or "",
        inputs,
        unknown=lookups,
        unknown_steps=sorted(steps),
        unknown_keys=keys,
        workdir=ex.workdir,
    )
    if step.condition is not None:  # a branch: shown, not hashed (whether it runs is decided later)
        entry["when"] = step.condition.describe()
    return entry


def _known(ex: Execution) -> set[str]:
    return {name for name, state in ex.state.items() if state == "COMPLETED" and name in ex.outputs}


def _context(ex: Execution, step: PlannedStep) -> dict[str, Any]:
    undone = {i["step"] for i in ex.intents}
    return {
        "depends_on": {d: ex.outputs.get(d, {}).get("outputs") for d in step.deps},
        # What a rejection rolls back (newest first), and what it cannot undo.
        "undo": [{"step": i["step"], "action": i["action"], "inputs": i["inputs"]} for i in reversed(ex.intents)],
        "not_undone": [
            s.name
            for s in ex.plan.steps
            if ex.state[s.name] == "COMPLETED" and s.type == "action" and s.name not in undone
        ],
        "started_by": ex.started_by,
    }


def _rules(rules: PlannedStep, now: str) -> dict[str, Any]:
    """The columns an approval takes from the approval step whose rules apply."""
    start = time.time()
    return {
        "deadline": iso(start + rules.timeout) if rules.timeout else None,
        "on_timeout": rules.on_timeout,
        "min_approvals": rules.min_approvals,
        "exclude_requester": rules.exclude_requester,
        "authenticated": rules.authenticated,
        "remind_every": rules.remind_every,
        "next_reminder_at": iso(start + rules.remind_every) if rules.remind_every else None,
        "escalate_at": iso(start + rules.escalate_after) if rules.escalate_after else None,
        "escalate_to": json.dumps(list(rules.escalate_to)) if rules.escalate_to else None,
    }


def request_row(ex: Execution, step: PlannedStep, message: str | None, now: str) -> dict[str, Any]:
    """The approval row of an approval step reached now, with the preview of what it gates."""
    preview: dict[str, Any] | None = None
    digest = None
    if step.gated:
        known = _known(ex)
        entries = [_entry(ex, ex.plan.by_name[n], known) for n in step.gated if ex.plan.by_name[n].action]
        preview = {"steps": entries, "more": step.more_gated}
        digest = preview_hash(entries)
    return {
        "approval_id": uuid.uuid4().hex[:16],
        "workflow_id": ex.id,
        "step_name": step.name,
        "message": message,
        "context": json.dumps(_context(ex, step), default=str),
        "approvers": json.dumps(list(step.approvers)),
        "requested_at": now,
        "fields": json.dumps(step.fields) if step.fields else None,
        "preview": json.dumps(preview, default=str) if preview is not None else None,
        "preview_hash": digest,
        **_rules(step, now),
    }


# -- before a gated step runs ---------------------------------------------------------------------------


def gate_entries(ex: Execution) -> dict[str, tuple[ApprovalRecord, dict[str, Any]]]:
    """For each step an approval previewed, the latest approved approval that covers it and its entry.

    A fork keeps the approval steps of the run it was forked from, and their decisions stay in that
    run: they are looked up there too, so that a gated step a fork runs again (with other inputs, or
    an edited definition) runs only if it does what was approved, and is asked for again otherwise.
    """
    found: dict[str, tuple[ApprovalRecord, dict[str, Any]]] = {}
    for workflow_id in reversed(_lineage(ex)):  # the oldest run first: a later run's decisions win
        for approval in ex.store.approvals(workflow_id=workflow_id, status="APPROVED"):
            for entry in approval.preview_data.get("steps") or ():
                if isinstance(entry, dict) and "step" in entry and "hash" in entry:
                    found[entry["step"]] = (approval, entry)
    return found


def _lineage(ex: Execution) -> list[str]:
    """``ex``'s workflow, then the run it was forked from, and so on (a fork of a fork...)."""
    ids = [ex.id]
    record = ex.store.workflow(ex.id)
    while record is not None and record.forked_from and record.forked_from not in ids and len(ids) < 100:
        ids.append(record.forked_from)
        record = ex.store.workflow(record.forked_from)
    return ids


def changed(ex: Execution, step: PlannedStep, approved: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """``(why, the entry now)`` if what ``step`` would do now differs from the ``approved`` entry."""
    masked = set(approved.get("unknown_steps") or ())
    known = _known(ex) - masked
    now = _entry(ex, step, known)
    if now["hash"] == approved.get("hash"):
        return None
    return what_changed(approved, now), now


def reask_row(
    ex: Execution, step: PlannedStep, approval: ApprovalRecord, why: str, entry: dict[str, Any], now: str
) -> dict[str, Any]:
    """A new request for ``step``, which did not run because ``why``; under the rules of ``approval``."""
    rules = ex.plan.by_name.get(approval.rules_step)
    original = (approval.message or "").split(" First asked: ", 1)[-1] if approval.gate_step else approval.message
    first = f" First asked: {original}" if original else ""
    context = _context(ex, step)
    context["asked_again"] = {
        "approval_id": approval.approval_id,
        "approval_step": approval.rules_step,
        "approved_by": approval.decided_by,
        "reason": why,
    }
    if approval.values:
        context["values"] = approval.values
    row: dict[str, Any] = {
        "approval_id": uuid.uuid4().hex[:16],
        "workflow_id": ex.id,
        "step_name": step.name,
        "message": f"Asked again before step {step.name!r} runs: {why}.{first}",
        "context": json.dumps(context, default=str),
        "approvers": approval.approvers or "[]",
        "requested_at": now,
        "preview": json.dumps({"steps": [entry], "more": 0}, default=str),
        "preview_hash": preview_hash([entry]),
        "gate_step": approval.rules_step,
        "reasked_from": approval.approval_id,
    }
    if rules is not None:
        row.update(_rules(rules, now))
    else:  # the spec changed shape (should not happen): keep the recorded rules
        row.update(
            {
                "deadline": None,
                "on_timeout": approval.on_timeout,
                "min_approvals": approval.min_approvals,
                "exclude_requester": bool(approval.exclude_requester),
                "authenticated": bool(approval.authenticated),
            }
        )
    return row
