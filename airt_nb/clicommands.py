"""What each ``airt`` command does with an open engine: ``list``, ``show``, decisions, ``resume``...

Each command takes the engine and the parsed arguments and returns
``{"text": ..., "json": ...}``, what :func:`airt_nb.cli.main` prints, and
``"problem"``: a line for stderr when the run the command executed ended
FAILED or ROLLED_BACK against its wish, or was given up (exit status 1).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .clitext import (
    approval_json,
    approval_text,
    decoded,
    duration,
    event_json,
    event_text,
    fit,
    hanging,
    indent,
    table,
    terminal_width,
    when,
    workflow_json,
)
from .engine import Engine
from .errors import AirtError, ApprovalError, NotFoundError, SpecError
from .fields import parse_values
from .ownership import describe_owner
from .stopping import live_engines
from .store import redact
from .store.records import ACTIVE, SETTLED, TERMINAL
from .views import workflow_note
from .views.run import spec_facts
from .views.text import term_safe

if TYPE_CHECKING:
    from .store.records import EngineRecord, StepRecord, WorkflowRecord

__all__ = ["COMMANDS", "CliError"]


class CliError(AirtError):
    """Something the command itself cannot do (a spec file it cannot read, a schedule id it cannot find)."""


_KIND = {"human_approval": "approval", "wait_event": "event", "workflow": "workflow"}


# -- commands -----------------------------------------------------------------------------------


def _list(engine: Engine, args: argparse.Namespace) -> dict[str, Any]:
    records = engine.list(status=args.status, name=args.name, limit=args.limit)
    pending = {a.workflow_id: a for a in engine.store.approvals(status="PENDING")}
    live = _live_engines(engine) if any(r.status in ACTIVE for r in records) else {}
    events = _waited_events(engine, [r for r in records if r.workflow_id not in pending])
    rows = []
    for r in records:
        note = workflow_note(r, pending.get(r.workflow_id))
        if events.get(r.workflow_id):
            note = ", ".join(f"event {event!r}" for _, event in events[r.workflow_id])
        if _unattended(r, live):  # said first: nothing changes until someone acts
            note = "no engine runs it" + (f"; {note}" if note else "")
        rows.append(
            [
                r.workflow_id,
                r.name,
                r.status,
                f"{r.done_steps}/{r.total_steps}",
                when(r.created_at),
                r.started_by or "",
                note,
            ]
        )
    text = (
        table(["WORKFLOW", "NAME", "STATUS", "STEPS", "CREATED (UTC)", "BY", "NOTE"], rows, free=("NAME", "BY", "NOTE"))
        if rows
        else "no workflows" + _filters(args)
    )
    data = [
        {
            **workflow_json(r),
            "pending_approval": approval_json(pending.get(r.workflow_id)),
            "waiting_events": [event for _, event in events.get(r.workflow_id, [])],
            "no_engine_runs_it": _unattended(r, live),
        }
        for r in records
    ]
    return {"text": text, "json": data}


def _show(engine: Engine, args: argparse.Namespace) -> dict[str, Any]:
    workflow_id, _ = _resolve(engine, args.id)
    run = engine.get(workflow_id)
    rec = run.record
    steps = run.steps()
    approvals = run.approvals()
    deliveries = engine.store.deliveries(workflow_id=workflow_id)
    live = _live_engines(engine) if rec.status in ACTIVE else {}
    lines = [hanging([f"workflow {rec.workflow_id}  {term_safe(rec.name)}  {rec.status}"], 2)]
    fields = [
        ("started by", f"{term_safe(rec.started_by or '?')} at {when(rec.created_at)} UTC"),
        ("updated", f"{when(rec.updated_at)} UTC"),
        ("finished", f"{when(rec.finished_at)} UTC" if rec.finished_at else None),
        ("progress", f"{rec.done_steps}/{rec.total_steps} steps"),
        ("runner", _runner(rec, live, _airt(args), _missing_actions(engine, rec, steps))),
        ("inputs", rec.inputs),
        ("waiting for", rec.waiting_for),
        ("error", rec.error),
        *(("warning", w) for w in rec.warning_list),
    ]
    lines += [f"  {k:<12}{hanging([term_safe(v)], 14)}" for k, v in fields if v]
    lines += ["", "steps"]
    step_rows = [
        [
            str(s.position + 1),
            s.step_name,
            _KIND.get(s.type, s.action or ""),
            s.status,
            str(s.attempt or ""),
            duration(s.started_at, s.finished_at),
            s.error or "",
        ]
        for s in steps
    ]
    step_headers = ["#", "STEP", "ACTION", "STATUS", "ATTEMPT", "DURATION", "ERROR"]
    lines += indent(table(step_headers, step_rows, free=("STEP", "ACTION", "ERROR"), width=terminal_width() - 2))
    waits = _waited_events(engine, [rec], {workflow_id: steps}).get(workflow_id, [])
    on_timeout = _on_timeout(rec)
    for step, event in waits:
        lines += ["", *event_text(rec.workflow_id, step, event, on_timeout.get(step.step_name), airt=_airt(args))]
    decisions = engine.store.decisions(workflow_id=workflow_id)
    for a in approvals:
        lines += ["", *approval_text(a, rec, decisions, airt=_airt(args))]
    if deliveries:
        lines += ["", "webhook deliveries"]
        delivery_rows = [
            [d.event, d.status, str(d.attempts), str(d.last_status or ""), d.last_error or "", d.url or ""]
            for d in deliveries
        ]
        delivery_headers = ["EVENT", "STATUS", "ATTEMPTS", "HTTP", "LAST ERROR", "URL"]
        free = ("EVENT", "LAST ERROR", "URL")
        lines += indent(table(delivery_headers, delivery_rows, free=free, width=terminal_width() - 2))
    data = {
        "workflow": workflow_json(rec),
        "no_engine_runs_it": _unattended(rec, live),
        "steps": [decoded(asdict(s), "inputs", "outputs", "state") for s in steps],
        "approvals": [approval_json(a) for a in approvals],
        "waiting_events": [event_json(step, event, on_timeout.get(step.step_name)) for step, event in waits],
        "decisions": [decoded(asdict(d), "field_values") for d in decisions],
        "compensations": [decoded(asdict(c), "inputs", "outputs", "state") for c in run.compensations()],
        "deliveries": [
            {**decoded(asdict(d), "payload"), "history": _history(engine, d.delivery_id)} for d in deliveries
        ],
    }
    return {"text": "\n".join(fit(lines)), "json": data}


def _decide(approve: bool) -> Any:
    def command(engine: Engine, args: argparse.Namespace) -> dict[str, Any]:
        workflow_id, approval_id = _resolve(engine, args.id)
        decide = engine.approve if approve else engine.reject
        values = _typed_values(engine, workflow_id, approval_id, args.values)
        proven = engine.store.authenticated_user
        if args.as_user and proven and args.as_user != proven:
            # Said before deciding: a refusal that follows names the role, not the name typed.
            print(
                f"airt: --as {term_safe(args.as_user)} has no effect here: this database knows you as "
                f"{term_safe(proven)}, and records your decision as {term_safe(proven)}'s",
                file=sys.stderr,
            )
        approval = decide(workflow_id, by=args.as_user, reason=args.reason, approval_id=approval_id, values=values)
        status = engine.get(workflow_id).status
        verb = "approved" if approve else "rejected"
        # One of several approvals: the approval's own reason is the final one's; this one is the decision's.
        given = approval.reason if approval.status != "PENDING" else args.reason
        reason = f": {term_safe(given)}" if given else ""
        # The decision just recorded says under which name (one of several approvals leaves the
        # approval's own decided_by empty until the last one).
        mine = engine.store.decisions(approval_id=approval.approval_id)[-1:]
        recorded = mine[0] if mine else None
        who = term_safe(recorded.decided_by if recorded else approval.decided_by or engine.user)
        text = f"{verb} step {approval.step_name!r} of workflow {workflow_id} as {who}{reason}"
        nobody = None
        if approval.values:
            text += "\n  values " + ", ".join(f"{k}={json.dumps(v)}" for k, v in approval.values.items())
        if approval.status == "PENDING":
            more = approval.min_approvals - approval.approved_count
            text += (
                f"\n{approval.approved_count} of {approval.min_approvals} approvals: it waits for {more} more "
                "from other people"
            )
        elif status in ACTIVE:
            doing = "continues it" if approve else "rolls it back"
            nobody = _nobody_line(engine, workflow_id, status, _airt(args))
            text += "\n" + (
                nobody
                or f"workflow {workflow_id} is {status}: the engine that has this database open {doing} "
                f"(if none is running, open the notebook or run `{_airt(args)} resume {workflow_id}`)"
            )
        else:
            text += f"\nworkflow {workflow_id} is {status}"
        data = {**(approval_json(approval) or {}), "workflow_status": status, "no_engine_runs_it": bool(nobody)}
        if recorded is not None:
            data["decision"] = {
                "decided_by": recorded.decided_by,
                "auth": recorded.auth,
                "decided_at": recorded.decided_at,
            }
        return {"text": "\n".join(fit([text])), "json": data}

    return command


def _typed_values(engine: Engine, workflow_id: str, approval_id: str | None, texts: list[str]) -> dict[str, Any] | None:
    """``--value NAME=VALUE`` options, typed by the fields of the approval they decide."""
    if not texts:
        return None
    if approval_id:
        found = engine.store.approvals(approval_id=approval_id)
    else:
        found = engine.store.approvals(workflow_id=workflow_id, status="PENDING")
    fields = found[0].field_specs if found else {}
    try:
        return parse_values(fields, texts)
    except ValueError as exc:
        raise ApprovalError(str(exc), workflow_id=workflow_id) from None


def _resume(engine: Engine, args: argparse.Namespace) -> dict[str, Any]:
    workflow_id, _ = _resolve(engine, args.id)
    before = engine.status_of(workflow_id)
    outcome = engine.resume(workflow_id)
    run = engine.get(workflow_id)
    if outcome != "resumed":
        return {
            "text": f"workflow {workflow_id} is {outcome}; nothing to do here",
            "json": {"workflow_id": workflow_id, "outcome": outcome, "status": run.status},
        }
    # Runs here until it pauses, ends, waits for an action this process does not have, or loses its lease.
    status, waiting, gave_up = _run_here(engine, workflow_id, args.timeout)
    text = f"workflow {workflow_id} resumed here and is now {status}"
    if waiting and status not in TERMINAL:
        text += f", waiting for {waiting} (define it where the workflow was written and resume there)"
    if run.error and status in TERMINAL:
        text += f": {run.error}"
    # A rollback asked for (ROLLING_BACK when resumed) that ends ROLLED_BACK did what was asked.
    problem = _ended_badly(workflow_id, status, run.error, wanted_rollback=before == "ROLLING_BACK")
    if waiting and waiting.startswith("action ") and status not in TERMINAL:
        # Nothing ran that needed it, and nothing here can: exit 1, so that a script does not take the
        # run for carried on.
        problem = f"workflow {workflow_id} did not go on: {_needs([waiting[len('action ') :]])}"
    if gave_up:
        problem = _gave_up(workflow_id, args.timeout, _airt(args))
    return {
        "text": text,
        "json": {
            "workflow_id": workflow_id,
            "outcome": outcome,
            "status": status,
            "waiting_for": waiting,
            "gave_up": gave_up,
        },
        "problem": problem,
    }


def _rollback(engine: Engine, args: argparse.Namespace) -> dict[str, Any]:
    workflow_id, _ = _resolve(engine, args.id)
    outcome = engine.rollback(workflow_id)
    problem = None
    if outcome == "requested":
        text = f"asked the engine running workflow {workflow_id} to roll it back"
    elif engine.is_local(workflow_id) or engine.status_of(workflow_id) != "ROLLING_BACK":
        # Nobody ran it and its home engine is gone: this engine took the rollback up (DESIGN §8). It is
        # run to its end here; closing the engine half-way would leave it to chance how far it got.
        status, waiting, _ = _run_here(engine, workflow_id, None)
        run = engine.get(workflow_id)
        text = f"workflow {workflow_id} was rolled back here and is now {status}"
        if waiting and status not in TERMINAL:
            text += f", waiting for {waiting} (define it where the workflow was written; that engine takes it up)"
        if status == "FAILED":
            failed = [c.step_name for c in run.compensations() if c.status == "FAILED"]
            if failed:
                text += f": undoing {', '.join(failed)} failed: {run.error}"
                problem = f"the rollback of workflow {workflow_id} ended FAILED: undoing {', '.join(failed)} failed"
            else:
                text += " (nothing was left to undo: its completed steps were undone when it failed)"
        return {
            "text": text,
            "json": {"workflow_id": workflow_id, "outcome": "rolled back here", "status": status},
            "problem": problem,
        }
    else:
        text = (
            f"workflow {workflow_id} is ROLLING_BACK: the engine that has this database open undoes its steps "
            f"(if none is running, run `{_airt(args)} resume {workflow_id}` to do it here)"
        )
    return {
        "text": text,
        "json": {"workflow_id": workflow_id, "outcome": outcome, "status": engine.status_of(workflow_id)},
    }


def _cancel(engine: Engine, args: argparse.Namespace) -> dict[str, Any]:
    workflow_id, _ = _resolve(engine, args.id)
    outcome = engine.cancel(workflow_id)
    # Cancel stops without undoing: say so, and how to undo, or a user takes CANCELLED for "reverted".
    undo = f"`{_airt(args)} rollback {workflow_id}` undoes its completed steps"
    if outcome == "requested":
        text = f"asked the engine running workflow {workflow_id} to cancel it; nothing is undone ({undo})"
    else:
        text = f"workflow {workflow_id} is {engine.status_of(workflow_id)}; nothing was undone ({undo})"
    return {
        "text": "\n".join(fit([text])),
        "json": {"workflow_id": workflow_id, "outcome": outcome, "status": engine.status_of(workflow_id)},
    }


def _run_here(engine: Engine, workflow_id: str, timeout: float | None) -> tuple[str, str | None, bool]:
    """Run a workflow this engine executes until it pauses, ends, waits for an action, or ``timeout``.

    Returns its status, what it waits for, and whether ``timeout`` gave it up while it still ran here.
    """
    run = engine.get(workflow_id)
    deadline = None if timeout is None else time.monotonic() + timeout
    while engine.is_local(workflow_id) and run.status not in SETTLED:
        if deadline is not None and time.monotonic() > deadline:
            return run.status, run.waiting_for, True
        try:
            run.wait(timeout=0.2)
        except TimeoutError:
            pass
    return run.status, run.waiting_for, False


def _ended_badly(workflow_id: str, status: str, error: str | None, *, wanted_rollback: bool = False) -> str | None:
    """The stderr line (exit status 1) for a run this command executed that ended FAILED or ROLLED_BACK."""
    if status == "FAILED" or (status == "ROLLED_BACK" and not wanted_rollback):
        return f"workflow {workflow_id} ended {status}" + (f": {error}" if error else "")
    return None


def _gave_up(workflow_id: str, timeout: float | None, airt: str) -> str:
    return (
        f"gave up after {timeout:g}s; workflow {workflow_id} is left RUNNING for the next engine "
        f"({airt} resume {workflow_id}, or {airt} worker)"
    )


def _airt(args: argparse.Namespace) -> str:
    """How the commands this one suggests start: with the ``--db`` it was given, so that they work
    pasted anywhere (a database from ``$AIRT_DB`` or ``./airt.db`` is found again the same way)."""
    db = getattr(args, "db", None)
    return f"airt --db {shlex.quote(redact(db))}" if db else "airt"


def _missing_actions(engine: Engine, rec: WorkflowRecord, steps: list[StepRecord] | None = None) -> list[str]:
    """Actions (or undos) an active workflow still needs that this process does not define: a notebook's
    own actions, which only that notebook (or a module that defines them) can run.  ``steps``: the
    workflow's steps when the caller has read them already."""
    if rec.status not in ACTIVE:
        return []
    if rec.status == "ROLLING_BACK":
        needed = [c.action for c in engine.store.compensations(rec.workflow_id, status="PENDING")]
    else:
        needed = [
            s.action
            for s in (steps if steps is not None else engine.store.steps(rec.workflow_id))
            if s.action and s.type == "action" and s.status not in ("COMPLETED", "SKIPPED")
        ]
    return sorted({a for a in needed if a not in engine.registry})


def _read_spec(path: str) -> str:
    """The text of a spec file, or a :class:`CliError` that says why it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        why = f"it is not UTF-8 text (byte {exc.start}); save it as UTF-8"
    except IsADirectoryError:
        why = "it is a folder; give a YAML file"
    except FileNotFoundError:
        why = "no such file"
    except OSError as exc:
        why = (exc.strerror or str(exc)).lower()
    raise CliError(f"cannot read spec file {path}: {why}")


def _in_file(exc: SpecError, path: str) -> SpecError:
    """``exc`` with the file named where each problem is, ``bad.yaml:5: steps[0].action: ...``, as
    compilers say it: ``line 5`` alone does not say of what, and editors and terminals jump to
    ``FILE:LINE``.  A problem without a line (the inputs given, an unknown step) is left as it was:
    it may not be the file's.  Still a :class:`SpecError`, so that ``--json`` says the same type."""
    problems: list[tuple[int | None, str, str]] = [
        (None, f"{path}:{line}: {field or '(top level)'}", message) if line else (line, field, message)
        for line, field, message in exc.problems
    ]
    named = SpecError(exc.problems, workflow=exc.workflow)
    named.args = (str(SpecError(problems, workflow=exc.workflow)),)
    return named


def _filters(args: argparse.Namespace) -> str:
    """`` with status PAUSED and a name containing 'x'``: what emptied a list."""
    said = [f"status {args.status}" if args.status else "", f"a name containing {args.name!r}" if args.name else ""]
    said = [s for s in said if s]
    return (" with " + " and ".join(said)) if said else ""


def _fork(engine: Engine, args: argparse.Namespace) -> dict[str, Any]:
    workflow_id, _ = _resolve(engine, args.id)
    spec = _read_spec(args.spec) if args.spec else None
    try:
        run = engine.fork(workflow_id, args.from_step, args.inputs, spec=spec, check_actions=False)
    except SpecError as exc:
        if args.spec:
            raise _in_file(exc, args.spec) from None
        raise
    status, waiting, gave_up = _run_here(engine, run.id, args.timeout)
    text = f"forked workflow {workflow_id} from step {args.from_step!r} as {run.id}, now {status}"
    if waiting and status not in TERMINAL:
        text += f", waiting for {waiting} (define it where the workflow was written; that engine takes it up)"
    if run.error and status in TERMINAL:
        text += f": {run.error}"
    problem = _gave_up(run.id, args.timeout, _airt(args)) if gave_up else _ended_badly(run.id, status, run.error)
    return {
        "text": text,
        "json": {
            "workflow_id": run.id,
            "forked_from": workflow_id,
            "status": status,
            "waiting_for": waiting,
            "gave_up": gave_up,
        },
        "problem": problem,
    }


def _send(engine: Engine, args: argparse.Namespace) -> dict[str, Any]:
    workflow_id = engine.resolve_id(args.id)
    record = engine.send(workflow_id, args.event, args.data, by=args.as_user)
    status = engine.status_of(workflow_id)
    nobody = None
    if record.status == "RECEIVED":
        text = f"sent event {args.event!r} to workflow {workflow_id}: step {record.step_name!r} received it"
        if status == "RUNNING":
            nobody = _nobody_line(engine, workflow_id, status, _airt(args))
            text += f"\n{nobody}" if nobody else "; the engine that has this database open continues it"
    else:
        text = f"sent event {args.event!r} to workflow {workflow_id}: kept until its step is reached"
    data = {**asdict(record), "payload": record.data, "workflow_status": status, "no_engine_runs_it": bool(nobody)}
    return {"text": "\n".join(fit([text])), "json": data}


def _schedule(engine: Engine, args: argparse.Namespace) -> dict[str, Any]:
    if args.schedule_command == "add":
        text = _read_spec(args.spec)
        try:
            record = engine.schedule(
                text, args.cron, args.inputs, timezone=args.tz, workdir=args.workdir, check_actions=False
            )
        except SpecError as exc:
            raise _in_file(exc, args.spec) from None
        out = f"schedule {record.schedule_id}: {record.name} at {record.cron!r} ({record.timezone}), next {when(record.next_fire_at)} UTC"
        return {"text": out + "\n`airt worker` fires it (each slot once)", "json": asdict(record)}
    if args.schedule_command == "remove":
        found = [r.schedule_id for r in engine.schedules() if r.schedule_id.startswith(args.schedule_id)]
        try:
            engine.unschedule(args.schedule_id)
        except NotFoundError:
            raise CliError(
                f"no schedule {args.schedule_id!r} in {redact(str(engine.db))}; list them with `airt schedule list` and check the id"
            ) from None
        removed = found[0] if len(found) == 1 else args.schedule_id
        return {"text": f"removed schedule {removed}", "json": {"removed": removed}}
    records = engine.schedules()
    rows = [
        [
            r.schedule_id,
            r.name,
            r.cron,
            r.timezone,
            when(r.next_fire_at),
            when(r.last_fired_at),
            r.last_workflow_id or "",
        ]
        for r in records
    ]
    headers = ["SCHEDULE", "NAME", "CRON", "ZONE", "NEXT (UTC)", "LAST (UTC)", "LAST RUN"]
    text = table(headers, rows, free=("NAME",))
    return {"text": text if rows else "no schedules", "json": [asdict(r) for r in records]}


COMMANDS = {
    "fork": _fork,
    "send": _send,
    "schedule": _schedule,
    "list": _list,
    "show": _show,
    "approve": _decide(True),
    "reject": _decide(False),
    "resume": _resume,
    "rollback": _rollback,
    "cancel": _cancel,
}


# -- helpers --------------------------------------------------------------------------------------


def _resolve(engine: Engine, ident: str) -> tuple[str, str | None]:
    """``(workflow_id, approval_id or None)`` for a workflow id (or prefix) or an approval id (or prefix)."""
    try:
        return engine.resolve_id(ident), None
    except NotFoundError:
        exact = engine.store.approvals(approval_id=ident)
        matches = exact or [a for a in engine.store.approvals(status="PENDING") if a.approval_id.startswith(ident)]
        if len(ident) >= 4 and len(matches) == 1:
            return matches[0].workflow_id, matches[0].approval_id
        raise


def _live_engines(engine: Engine) -> dict[str, EngineRecord]:
    """The engines alive now other than this command's own: saying "no engine runs it" of a workflow
    one does run would be worse than silence, so an engine that cannot be judged counts as alive."""
    return live_engines(engine.store, besides=engine.owner_id)


def _unattended(rec: WorkflowRecord, live: dict[str, EngineRecord]) -> bool:
    """Whether nothing carries ``rec`` on until someone acts: it is RUNNING or ROLLING_BACK, no live
    engine holds its lease, its home is gone (or it has none), and no live engine takes up work
    (``airt worker``, a notebook's), which the home rules (:mod:`airt_nb.leases`) would let take it."""
    if rec.status not in ACTIVE or rec.lease_owner in live or rec.home in live:
        return False
    return not any(e.takes_work for e in live.values())


def _runner(rec: WorkflowRecord, live: dict[str, EngineRecord], airt: str, missing: list[str]) -> str | None:
    """``show``'s ``runner`` line of a RUNNING or ROLLING_BACK workflow: the engine that runs it, or
    who takes it up, or that nobody will and what to do."""
    if rec.status not in ACTIVE:
        return None
    if rec.lease_owner in live:
        return describe_owner(rec.lease_owner)
    if rec.home in live:
        return f"none at this moment; its home engine ({describe_owner(rec.home)}) takes it up"
    takers = [owner for owner, e in live.items() if e.takes_work]
    if takers:
        home = f"its home engine ({describe_owner(rec.home)}) is gone" if rec.home else "it has no home engine"
        return f"none yet: {home}; an engine that takes up work ({describe_owner(takers[0])}) takes it up"
    if missing:
        return f"none: no engine runs it; {_needs(missing)}"
    return f"none: no engine runs it; `{airt} resume {rec.workflow_id}` continues it here (or open its notebook)"


def _needs(missing: list[str]) -> str:
    names = ", ".join(repr(m) for m in missing)
    return (
        f"it needs action{'s' if len(missing) > 1 else ''} {names}, which airt does not define: open the notebook "
        "it was started from and run the cells that define them (it continues there by itself)"
    )


def _nobody_line(engine: Engine, workflow_id: str, status: str, airt: str) -> str | None:
    """After a decision or an event from this process: the line saying that no engine is left to
    carry the workflow on, or None when one is (or may be), for the generic wording."""
    rec = engine.store.workflow(workflow_id)
    if rec is None or not _unattended(rec, _live_engines(engine)):
        return None
    gone = f"its home engine, {describe_owner(rec.home)}, is gone" if rec.home else "it has no home engine"
    doing = "roll it back" if status == "ROLLING_BACK" else "continue it"
    missing = _missing_actions(engine, rec)
    then = _needs(missing) if missing else f"run `{airt} resume {workflow_id}` to {doing} here, or open its notebook"
    return (
        f"workflow {workflow_id} is {status} but no engine runs it: {gone} and no engine that takes up work "
        f"is open; {then}"
    )


# Ids per read of the steps of several workflows: far below any database's limit on parameters.
_STEPS_BATCH = 500


def _waited_events(
    engine: Engine, records: list[WorkflowRecord], steps: dict[str, list[StepRecord]] | None = None
) -> dict[str, list[tuple[StepRecord, str]]]:
    """``{workflow_id: [(step, event name)]}``: the ``wait_event`` steps of the PAUSED ``records`` that
    wait now, named as the notebook panel names them (the spec's ``event:``, :func:`spec_facts`).

    Only workflows whose spec has such a step are read, their steps in one read per
    :data:`_STEPS_BATCH` (``steps`` if the caller has them)."""
    kinds = {r.workflow_id: spec_facts(r)[1] for r in records if r.status == "PAUSED"}
    ids = [w for w, k in kinds.items() if any("event" in facts for facts in k.values())]
    if steps is None:
        steps = {}
        for start in range(0, len(ids), _STEPS_BATCH):
            steps.update(engine.store.steps_by_workflow(ids[start : start + _STEPS_BATCH]))
    found: dict[str, list[tuple[StepRecord, str]]] = {}
    for workflow_id in ids:
        waiting = [
            (s, kinds[workflow_id][s.step_name]["event"])
            for s in steps.get(workflow_id, [])
            if s.type == "wait_event" and s.status == "WAITING" and "event" in kinds[workflow_id].get(s.step_name, {})
        ]
        if waiting:
            found[workflow_id] = waiting
    return found


def _on_timeout(rec: WorkflowRecord) -> dict[str, str]:
    """``{step: on_timeout}`` of the steps of ``rec``'s spec that have a timeout (what its deadline does)."""
    try:
        spec = json.loads(rec.spec)
    except (TypeError, ValueError):
        return {}
    return {s["name"]: s.get("on_timeout") or "fail" for s in spec.get("steps", []) if s.get("timeout")}


def _history(engine: Engine, delivery_id: str) -> list[dict[str, Any]]:
    keys = ("attempt", "started_at", "finished_at", "outcome", "http_status", "error")
    return [dict(zip(keys, row, strict=True)) for row in engine.store.delivery_attempts(delivery_id)]
