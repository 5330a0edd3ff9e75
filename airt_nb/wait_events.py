"""Events sent to workflows: ``type: wait_event`` steps, :func:`send`, and their deadlines.

A ``wait_event`` step waits for ``event: NAME``; :func:`send` (``Engine.send``,
``airt send``, the server's JSON API) delivers ``NAME`` with a JSON payload,
which becomes the step's outputs.  Events are durable like approvals:

* an event is a row of ``sent_events``, recorded in the transaction that
  checks it (first one of a name wins; a payload the step's ``schema``
  refuses is never recorded);
* sent while the step waits, the same transaction completes the step and
  continues the workflow exactly as a decision does (:mod:`.decisions`: it
  never moves a workflow; the home engine is woken or takes it);
* sent before the step is reached, it stays ``PENDING`` and the step
  receives it the moment it is reached, without pausing;
* sent while no engine runs, it is kept, and the workflow continues when an
  engine opens the database;
* a deadline (``timeout``) is kept in the step's row, armed by every engine
  (also after a restart) and applied once, as ``on_timeout`` says: ``fail``
  (the step fails, what was done is rolled back) or ``continue`` (the step
  completes with ``{"timed_out": true}``).

A step waiting for an event pauses its workflow (``PAUSED``), as an approval does.

Talks to the engine only through :class:`EventHost`; imports no engine.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

from .errors import EventError, NotFoundError
from .limits import value_problem
from .store.records import TERMINAL, SentEventRecord
from .timeutil import iso, now_iso

if TYPE_CHECKING:
    from collections.abc import Callable

    from .execution import Execution
    from .plan import Plan, PlannedStep
    from .store.protocol import Store
    from .store.records import WorkflowRecord
    from .store.writes import Tx

__all__ = ["EventHost", "continue_after_wait", "expire", "receive_op", "send", "wait_op"]

log = logging.getLogger("airt_nb")

TIMED_OUT = {"timed_out": True}


class EventHost(Protocol):
    """What sending an event (and expiring a wait) needs from the engine that records it."""

    @property
    def store(self) -> Store: ...

    @property
    def db(self) -> str: ...

    @property
    def owner_id(self) -> str: ...

    @property
    def accepting(self) -> bool:
        """The engine is open and may continue workflows itself."""
        ...

    def check_open(self) -> None: ...

    def runs_here(self, workflow_id: str) -> bool: ...

    def plan_of(self, record: WorkflowRecord) -> Plan: ...

    def waited(self, workflow_id: str, step_name: str, outputs: Any, error: str | None, outcome: str) -> None:
        """A waiting step of the workflow completed (``error`` None) or failed; ``outcome`` says who
        continues it, as for a decision (``adopt``, ``local``, ``woken``, ``released``)."""
        ...


# -- continuing a workflow whose waiting step ended ---------------------------------------------


def continue_after_wait(tx: Tx, host: Any, current: WorkflowRecord, now: str, *, error: str | None = None) -> str:
    """In the transaction that ended a waiting step: who continues the workflow (see :mod:`.decisions`).

    ``error`` set: the step failed, and the workflow turns ``ROLLING_BACK`` with it.  Returns
    ``adopt`` (this engine, its home, takes it), ``local`` (this engine runs it), ``woken`` (its
    running owner was woken) or ``released`` (its home, or whoever the home rules choose, takes it).
    """
    workflow_id, owner = current.workflow_id, host.owner_id
    new_status = "RUNNING" if error is None else "ROLLING_BACK"
    if current.status == "PAUSED":
        take = host.accepting and current.home == owner
        tx.set_status(workflow_id, new_status, now, error=error, new_owner=owner if take else None, release=not take)
        if take:
            return "adopt"
        if current.home:
            tx.wake(current.home)
        tx.announce_work()
        return "released"
    if error is not None:
        tx.set_status(workflow_id, new_status, now, error=error)
    if current.lease_owner == owner and host.runs_here(workflow_id):
        return "local"
    tx.request(workflow_id, "wake")
    if current.lease_owner:
        tx.wake(current.lease_owner)
    else:
        tx.announce_work()
    return "woken"


# -- in the execution: reaching a wait_event step -------------------------------------------------


def arrived(ex: Execution, step: PlannedStep) -> tuple[int, Any, str | None] | None:
    """``(event_id, payload, payload_json)`` of the event this step waits for if it was sent already."""
    found = ex.store.sent_events(workflow_id=ex.id, event=step.event, status="PENDING")
    if not found:
        return None
    record = found[0]
    return record.event_id, record.data, record.payload


def receive_op(ex: Execution, step: PlannedStep, now: str, event_id: int, payload_json: str | None) -> Callable:
    """The step receives an event sent before it was reached: it completes at once."""
    workflow_id, name, event = ex.id, step.name, step.event

    def op(tx: Tx) -> None:
        tx.wait_event_step(workflow_id, name, now, None)
        tx.receive_event(event_id, name, now)
        tx.complete_step(workflow_id, name, now, None, payload_json or "null", None)
        tx.add_event(workflow_id, now, "event_received", None, event)

    return op


def wait_op(ex: Execution, step: PlannedStep, now: str) -> Callable:
    """The step starts waiting; an event sent meanwhile (found in the same transaction) is delivered
    right after the commit, and a deadline is armed."""
    workflow_id, name, event = ex.id, step.name, step.event
    deadline = iso(time.time() + step.timeout) if step.timeout else None

    def op(tx: Tx) -> None:
        tx.wait_event_step(workflow_id, name, now, deadline)
        tx.add_event(workflow_id, now, "waiting_for_event", None, event)
        ex.after_commit.append(
            {"kind": "event_wait", "workflow_id": workflow_id, "step_name": name, "deadline": deadline}
        )
        if tx.pending_event(workflow_id, event or "") is not None:  # sent between our look and this transaction
            ex.after_commit.append({"kind": "late_event", "workflow_id": workflow_id, "step_name": name})

    return op


# -- sending -----------------------------------------------------------------------------------------


class _AlreadySentError(Exception):
    pass


def _waiting_step(host: EventHost, record: WorkflowRecord, event: str) -> PlannedStep:
    plan = host.plan_of(record)
    for step in plan.steps:
        if step.is_event and step.event == event:
            return step
    waits = [s.event for s in plan.steps if s.is_event]
    listed = ", ".join(repr(e) for e in waits) if waits else "none"
    raise EventError(
        f"workflow {record.workflow_id} ({record.name}) has no step waiting for event {event!r} "
        f"(events it waits for: {listed}); check the event's name",
        workflow_id=record.workflow_id,
        event=event,
    )


def check_payload(step: PlannedStep, workflow_id: str, payload: Any) -> str:
    """The payload as JSON text, or :class:`~airt_nb.EventError` saying what is wrong with it."""
    found = value_problem(payload)
    if found is not None:
        path, message = found
        where = "payload" + "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in path)
        raise EventError(f"event {step.event!r} for workflow {workflow_id}: {where}: {message}", event=step.event)
    if step.schema is not None:
        import jsonschema
        from referencing.exceptions import Unresolvable

        validator = jsonschema.validators.validator_for(step.schema)(step.schema)
        try:
            errors = sorted(validator.iter_errors(payload), key=lambda e: list(e.absolute_path))
        except Unresolvable as exc:  # a spec recorded before references were checked when it was loaded
            raise EventError(
                f"event {step.event!r} for workflow {workflow_id}: the schema of step {step.name!r} refers to "
                f"something it does not contain ({exc}), so no payload can be checked; cancel the workflow and "
                "start it again from a spec whose schema keeps its definitions under $defs",
                workflow_id=workflow_id,
                event=step.event,
            ) from None
        if errors:
            shown = "; ".join(f"payload{''.join(f'[{p!r}]' for p in e.absolute_path)}: {e.message}" for e in errors[:5])
            raise EventError(
                f"event {step.event!r} for workflow {workflow_id} (step {step.name!r}) does not match the step's "
                f"schema: {shown}; send a payload that does",
                workflow_id=workflow_id,
                event=step.event,
            )
    return json.dumps(payload, allow_nan=False)


def _over(workflow_id: str, name: str, status: str, event: str) -> EventError:
    return EventError(
        f"workflow {workflow_id} ({name}) is {status}: it no longer waits for events",
        workflow_id=workflow_id,
        event=event,
        conflict=True,
    )


def send(
    host: EventHost,
    workflow_id: str,
    event: str,
    payload: Any = None,
    *,
    by: str,
    auth: str | None = None,
) -> SentEventRecord:
    """Send ``event`` with ``payload`` to a workflow (see the module docstring); returns the recorded event.

    Raises :class:`~airt_nb.EventError` (nothing recorded) if no step of the workflow waits for
    ``event``, the payload is not JSON or fails the step's ``schema``, the event was sent already,
    its step is over, or the workflow is finished.
    """
    host.check_open()
    record = host.store.workflow(workflow_id)
    if record is None:
        raise NotFoundError("workflow", workflow_id, db=host.db)
    if record.status in TERMINAL or record.status == "ROLLING_BACK":  # said first: whatever the name, it is over
        raise _over(record.workflow_id, record.name, record.status, event)
    step = _waiting_step(host, record, event)
    payload_json = check_payload(step, workflow_id, payload)
    now = now_iso()
    row = {
        "workflow_id": workflow_id,
        "event": event,
        "payload": payload_json,
        "sent_at": now,
        "sent_by": by,
        "auth": auth,
    }

    def op(tx: Tx) -> str:
        current = tx.get_workflow(workflow_id)
        assert current is not None
        if current.status in TERMINAL or current.status == "ROLLING_BACK":  # it ended meanwhile
            raise _over(workflow_id, current.name, current.status, event)
        status = tx.step_status(workflow_id, step.name)
        if status not in ("PENDING", "WAITING"):
            raise EventError(
                f"step {step.name!r} of workflow {workflow_id} is {status}: it no longer waits for event {event!r}",
                workflow_id=workflow_id,
                event=event,
                conflict=True,
            )
        event_id = tx.insert_sent_event(row)
        if event_id is None:
            raise _AlreadySentError
        tx.add_event(workflow_id, now, "event_sent", by, event)
        if status != "WAITING":
            return "kept"  # the step receives it when the workflow reaches it
        tx.receive_event(event_id, step.name, now)
        tx.complete_step(workflow_id, step.name, now, None, payload_json, None)
        tx.bump_done(workflow_id)
        tx.add_event(workflow_id, now, "event_received", by, event)
        return continue_after_wait(tx, host, current, now)

    try:
        outcome = host.store.write(op)
    except _AlreadySentError:
        first = host.store.sent_events(workflow_id=workflow_id, event=event)[0]
        raise EventError(
            f"event {event!r} was sent to workflow {workflow_id} already, by {first.sent_by} at {first.sent_at}; "
            "an event is received once (the first one sent)",
            workflow_id=workflow_id,
            event=event,
            conflict=True,
        ) from None
    log.info("workflow %s: event %s sent by %s (%s)", workflow_id, event, by, outcome)
    if outcome != "kept":
        host.waited(workflow_id, step.name, json.loads(payload_json), None, outcome)
    return host.store.sent_events(workflow_id=workflow_id, event=event)[0]


def deliver_pending(host: EventHost, workflow_id: str, step_name: str) -> None:
    """Give a waiting step the event that was sent while it started waiting (see :func:`wait_op`)."""
    record = host.store.workflow(workflow_id)
    if record is None:
        return
    step = host.plan_of(record).by_name.get(step_name)
    if step is None or not step.is_event:
        return
    now = now_iso()
    result: dict[str, Any] = {}

    def op(tx: Tx) -> str | None:
        current = tx.get_workflow(workflow_id)
        if current is None or current.status not in ("PAUSED", "RUNNING"):
            return None
        if tx.step_status(workflow_id, step_name) != "WAITING":
            return None
        found = tx.pending_event(workflow_id, step.event or "")
        if found is None:
            return None
        event_id, payload_json = found
        result["outputs"] = json.loads(payload_json) if payload_json else None
        tx.receive_event(event_id, step_name, now)
        tx.complete_step(workflow_id, step_name, now, None, payload_json or "null", None)
        tx.bump_done(workflow_id)
        tx.add_event(workflow_id, now, "event_received", None, step.event)
        return continue_after_wait(tx, host, current, now)

    outcome = host.store.write(op)
    if outcome is not None:
        host.waited(workflow_id, step_name, result.get("outputs"), None, outcome)


def expire(host: EventHost, workflow_id: str, step_name: str) -> str | None:
    """Apply the deadline of a ``wait_event`` step that is still waiting (``on_timeout``).

    Returns the outcome, or ``None`` if the step no longer waits (its event came first).
    """
    record = host.store.workflow(workflow_id)
    if record is None:
        return None
    step = host.plan_of(record).by_name.get(step_name)
    if step is None or not step.is_event:
        return None
    now = now_iso()
    seconds = step.timeout or 0
    failed = step.on_timeout != "continue"
    error = (
        f"step {step_name!r} failed: no event {step.event!r} within {_duration(seconds)} (its timeout); "
        "send it earlier or give the step a longer timeout"
        if failed
        else None
    )
    outputs_json = json.dumps(TIMED_OUT)

    def op(tx: Tx) -> str | None:
        current = tx.get_workflow(workflow_id)
        if current is None or current.status not in ("PAUSED", "RUNNING"):
            return None
        if tx.step_status(workflow_id, step_name) != "WAITING":
            return None
        if tx.pending_event(workflow_id, step.event or "") is not None:
            return None  # sent just in time: its delivery is on its way
        tx.add_event(workflow_id, now, "event_timed_out", "system", step.event)
        if failed:
            tx.fail_step(workflow_id, step_name, f"no event {step.event!r} within {_duration(seconds)}", now, None)
            return continue_after_wait(tx, host, current, now, error=error)
        tx.complete_step(workflow_id, step_name, now, None, outputs_json, None)
        tx.bump_done(workflow_id)
        return continue_after_wait(tx, host, current, now)

    outcome = host.store.write(op)
    if outcome is not None:
        log.info("workflow %s: step %s timed out waiting for event %s", workflow_id, step_name, step.event)
        host.waited(workflow_id, step_name, None if failed else dict(TIMED_OUT), error, outcome)
    return outcome


def _duration(seconds: float) -> str:
    """``90`` -> ``"90 s"``, ``7200`` -> ``"2 h"``: a timeout as the spec likely said it."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} s"
